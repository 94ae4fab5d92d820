/* Metric Sentinel console: three pages over the Lookout-shaped API (POST /api/<Operation>, JSON bodies with
 * Lookout for Metrics' field names). No framework: a hash router, small DOM helpers and uPlot for the plots. */
"use strict";

let CONFIG = null;

// -- helpers ---------------------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const view = () => document.getElementById("view");

/** Replace the page's content (arrays flattened, null/undefined left out, as el() does). */
function setView(...nodes) {
  view().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
}
const fmtTime = (iso) => (iso ? iso.replace("T", " ").replace(/(:00)?\+00:00$/, "") + " UTC" : "–");
const fmtNum = (x, d = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));

class ApiError extends Error {}

async function api(operation, body = {}) {
  if (Auth.expired()) return Auth.signIn();
  const resp = await fetch(`api/${operation}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...Auth.headers() },
    body: JSON.stringify(body),
  });
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401) return Auth.signIn();
  if (!resp.ok) throw new ApiError(`${operation}: ${data.Message || data.message || resp.statusText}`);
  return data;
}

function showError(err) {
  const banner = document.getElementById("banner");
  banner.textContent = String(err.message || err);
  banner.hidden = false;
  banner.classList.add("error");
}

function clearError() {
  const banner = document.getElementById("banner");
  if (banner.classList.contains("error")) {
    banner.hidden = true;
    banner.classList.remove("error");
  }
}

// -- groups list -----------------------------------------------------------------------------------------------
const listState = { threshold: 50, measure: "", dimension: "", value: "", from: "", to: "" };

function listBody() {
  const body = { SensitivityThreshold: listState.threshold, MaxResults: 25 };
  if (listState.measure) body.MetricName = listState.measure;
  if (listState.dimension && listState.value)
    body.DimensionFilterList = [{ DimensionName: listState.dimension, DimensionValue: listState.value }];
  if (listState.from) body.StartTime = new Date(listState.from + "Z").toISOString();
  if (listState.to) body.EndTime = new Date(listState.to + "Z").toISOString();
  return body;
}

async function groupsPage() {
  const measures = CONFIG.measures || [];
  const dims = CONFIG.dimensions || [];
  const slider = el("input", { type: "range", min: 0, max: 100, step: 1, value: listState.threshold, id: "severity" });
  const sliderValue = el("output", { id: "severity-value", text: String(listState.threshold) });
  const rows = el("tbody", { id: "groups-body" });
  const stats = el("p", { class: "muted", id: "groups-stats" });
  const more = el("button", { type: "button", id: "more", hidden: true, text: "Load more" });
  let token = null;

  async function load(reset) {
    clearError();
    const body = listBody();
    if (!reset && token) body.NextToken = token;
    try {
      const out = await api("ListAnomalyGroupSummaries", body);
      if (reset) rows.replaceChildren();
      for (const g of out.AnomalyGroupSummaryList) {
        rows.append(
          el(
            "tr",
            { class: "group-row", "data-group": g.AnomalyGroupId },
            el("td", {}, el("a", { href: `#/group/${g.AnomalyGroupId}`, text: fmtTime(g.StartTime) })),
            el("td", { text: fmtTime(g.EndTime) }),
            el("td", { text: g.PrimaryMetricName }),
            el("td", { class: "num" }, severityBadge(g.AnomalyGroupScore)),
            el("td", { class: "mono muted", text: g.AnomalyGroupId }),
          ),
        );
      }
      if (!rows.children.length)
        rows.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No anomaly group matches." })));
      const s = out.AnomalyGroupStatistics || {};
      const per = (s.ItemizedMetricStats || []).map((m) => `${m.MetricName}: ${m.OccurrenceCount}`).join(" · ");
      stats.textContent = `${s.TotalCount ?? 0} group(s) at severity ≥ ${listState.threshold}${per ? " — " + per : ""}`;
      token = out.NextToken || null;
      more.hidden = !token;
    } catch (err) {
      showError(err);
    }
  }

  let timer = null;
  slider.addEventListener("input", () => {
    listState.threshold = Number(slider.value);
    sliderValue.textContent = slider.value;
    clearTimeout(timer);
    timer = setTimeout(() => load(true), 200);
  });
  const select = (id, key, options, label) =>
    el(
      "select",
      { id, onchange: (e) => ((listState[key] = e.target.value), load(true)) },
      el("option", { value: "", text: label }),
      options.map((o) => el("option", { value: o, text: o, selected: listState[key] === o })),
    );
  const input = (id, key, type, placeholder) =>
    el("input", {
      id,
      type,
      placeholder,
      value: listState[key],
      onchange: (e) => ((listState[key] = e.target.value), load(true)),
    });
  more.addEventListener("click", () => load(false));

  setView(
    el("h1", { text: "Anomaly groups" }),
    el(
      "div",
      { class: "filters" },
      el("label", {}, "Severity ≥ ", slider, " ", sliderValue),
      el("label", {}, "Measure ", select("measure", "measure", measures, "any")),
      el(
        "label",
        {},
        "Dimension ",
        select("dimension", "dimension", dims, "any"),
        " = ",
        input("dimension-value", "value", "text", "value"),
      ),
      el("label", {}, "From ", input("from", "from", "datetime-local", "")),
      el("label", {}, "To ", input("to", "to", "datetime-local", "")),
    ),
    stats,
    el(
      "table",
      { class: "list", id: "groups" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ["Start", "Last interval", "Measure", "Severity", "Group id"].map((h) => el("th", { text: h })),
        ),
      ),
      rows,
    ),
    more,
  );
  await load(true);
}

function severityBadge(score) {
  const level = score >= 90 ? "high" : score >= 70 ? "medium" : "low";
  return el("span", { class: `sev sev-${level}`, text: fmtNum(score, 0) });
}

// -- group page ------------------------------------------------------------------------------------------------
async function groupPage(groupId) {
  clearError();
  const { AnomalyGroup: g } = await api("GetAnomalyGroup", { AnomalyGroupId: groupId });
  const series = [];
  let token = null;
  let ts = null;
  do {
    const body = { AnomalyGroupId: groupId, MetricName: g.PrimaryMetricName, MaxResults: 50 };
    if (token) body.NextToken = token;
    ts = await api("ListAnomalyGroupTimeSeries", body);
    series.push(...ts.TimeSeriesList);
    token = ts.NextToken;
  } while (token);
  const feedback = await loadFeedback(groupId);
  const impact = g.MetricLevelImpactList[0] || { ContributionMatrix: { DimensionContributionList: [] } };

  setView(
    el("p", {}, el("a", { href: "#/groups", text: "← all groups" })),
    el("h1", {}, `${g.PrimaryMetricName} anomaly `, severityBadge(g.AnomalyGroupScore)),
    el(
      "p",
      { class: "muted", id: "group-meta" },
      `${fmtTime(g.StartTime)} → ${fmtTime(g.EndTime)} · ${impact.NumTimeSeries} time series · group ${g.AnomalyGroupId}`,
    ),
    el("h2", { text: "Contribution by dimension value" }),
    contributionBars(impact.ContributionMatrix.DimensionContributionList),
    el("h2", { text: "Affected time series" }),
    el(
      "p",
      { class: "muted" },
      "Grey: expected band · blue: value · orange: severity (right axis) · shaded: the group's window. " +
        "Feedback is applied by the detector's next run.",
    ),
    series.map((s) => seriesCard(g, ts, s, feedback[s.TimeSeriesId])),
  );
  for (const s of series) drawPlot(ts, s);
}

async function loadFeedback(groupId) {
  const out = {};
  let token = null;
  do {
    const body = { AnomalyGroupTimeSeriesFeedback: { AnomalyGroupId: groupId }, MaxResults: 100 };
    if (token) body.NextToken = token;
    const page = await api("GetFeedback", body);
    for (const f of page.AnomalyGroupTimeSeriesFeedback) out[f.TimeSeriesId] = f;
    token = page.NextToken;
  } while (token);
  return out;
}

function contributionBars(dims) {
  if (!dims.length) return el("p", { class: "muted", text: "No dimensions." });
  return el(
    "div",
    { class: "contrib" },
    dims.map((d) =>
      el(
        "div",
        { class: "contrib-dim" },
        el("h3", { text: d.DimensionName }),
        d.DimensionValueContributionList.map((v) =>
          el(
            "div",
            { class: "bar-row" },
            el("span", { class: "bar-label", text: v.DimensionValue }),
            el("meter", { class: "bar", min: 0, max: 100, value: v.ContributionScore }),
            el("span", { class: "bar-value", text: `${fmtNum(v.ContributionScore, 1)} %` }),
          ),
        ),
      ),
    ),
  );
}

function slug(id) {
  return id.replace(/[^A-Za-z0-9]+/g, "-");
}

function seriesCard(g, ts, s, fb) {
  const label = s.DimensionList.map((d) => `${d.DimensionName}=${d.DimensionValue}`).join(", ");
  const status = el("span", { class: "fb-status", "data-status": fb ? fb.Status : "NONE" }, feedbackText(fb));
  const send = async (isAnomaly) => {
    try {
      clearError();
      await api("PutFeedback", {
        AnomalyGroupTimeSeriesFeedback: { AnomalyGroupId: g.AnomalyGroupId, TimeSeriesId: s.TimeSeriesId, IsAnomaly: isAnomaly },
      });
      const now = await loadFeedback(g.AnomalyGroupId);
      status.dataset.status = now[s.TimeSeriesId] ? now[s.TimeSeriesId].Status : "NONE";
      status.textContent = feedbackText(now[s.TimeSeriesId]);
    } catch (err) {
      showError(err);
    }
  };
  return el(
    "section",
    { class: "series", "data-series": s.TimeSeriesId },
    el("h3", {}, `${g.PrimaryMetricName} · ${label || "all"}`),
    el("div", { class: "plot", id: `plot-${slug(s.TimeSeriesId)}` }),
    el(
      "div",
      { class: "feedback" },
      el("button", { type: "button", class: "fb-yes", onclick: () => send(true), text: "Anomaly" }),
      el("button", { type: "button", class: "fb-no", onclick: () => send(false), text: "Not an anomaly" }),
      status,
    ),
  );
}

function feedbackText(fb) {
  if (!fb) return "No feedback yet";
  const verdict = fb.IsAnomaly ? "Marked an anomaly" : "Marked not an anomaly";
  return fb.Status === "APPLIED"
    ? `${verdict} · applied by the detector ${fmtTime(fb.AppliedAt)}`
    : `${verdict} · pending: the detector's next run applies it`;
}

function drawPlot(ts, s) {
  const host = document.getElementById(`plot-${slug(s.TimeSeriesId)}`);
  const xs = ts.TimestampList.map((t) => Date.parse(t) / 1000);
  const g0 = Date.parse(ts.GroupStartTime) / 1000;
  const g1 = Date.parse(ts.GroupEndTime) / 1000 + ts.IntervalSeconds;
  const shadeWindow = (u) => {
    const ctx = u.ctx;
    const left = u.valToPos(g0, "x", true);
    const right = u.valToPos(g1, "x", true);
    ctx.save();
    ctx.fillStyle = "rgba(220, 53, 69, 0.10)";
    ctx.fillRect(left, u.bbox.top, right - left, u.bbox.height);
    ctx.restore();
  };
  const opts = {
    width: Math.max(320, host.clientWidth || 800),
    height: 220,
    scales: { x: { time: true }, sev: { range: [0, 100] } },
    series: [
      {},
      { label: "lower", stroke: "rgba(108,117,125,0.6)", width: 1 },
      { label: "upper", stroke: "rgba(108,117,125,0.6)", width: 1 },
      { label: "expected", stroke: "#6c757d", width: 1, dash: [4, 4] },
      { label: "value", stroke: "#0d6efd", width: 2, spanGaps: false },
      { label: "severity", stroke: "#fd7e14", width: 1, scale: "sev", paths: uPlot.paths.stepped({ align: 1 }) },
    ],
    bands: [{ series: [2, 1], fill: "rgba(108,117,125,0.15)" }],
    axes: [{}, { label: "" }, { scale: "sev", side: 1, grid: { show: false }, label: "severity" }],
    hooks: { drawClear: [shadeWindow] },
    legend: { live: true },
  };
  const data = [xs, s.LowerBoundList, s.UpperBoundList, s.ExpectedValueList, s.MetricValueList, s.SeverityList];
  host.replaceChildren();
  new uPlot(opts, data, host);
}

// -- runs and data quality -------------------------------------------------------------------------------------
async function runsPage() {
  clearError();
  const rows = el("tbody", { id: "runs-body" });
  const more = el("button", { type: "button", id: "runs-more", hidden: true, text: "Load more" });
  const note = el("p", { class: "muted", id: "runs-note" });
  let token = null;

  async function load(reset) {
    const body = { MaxResults: 48 };
    if (!reset && token) body.NextToken = token;
    const out = await api("DescribeAnomalyDetectionExecutions", body);
    if (reset) rows.replaceChildren();
    const stamps = out.ExecutionList.map((e) => e.Timestamp);
    const reasons = {};
    if (stamps.length) {
      let qt = null;
      do {
        const q = { StartTime: stamps[stamps.length - 1], EndTime: stamps[0], MaxResults: 100 };
        if (qt) q.NextToken = qt;
        const dq = await api("GetDataQualityMetrics", q);
        for (const entry of dq.AnomalyDetectorDataQualityMetricList) {
          const list = entry.MetricSetDataQualityMetricList[0].DataQualityMetricList;
          reasons[entry.StartTimestamp] = list
            .filter((m) => m.MetricType === "INVALID_ROWS_COMPLIANCE")
            .map((m) => `${m.RelatedColumnName}: ${m.MetricValue}`)
            .join(", ");
        }
        qt = dq.NextToken;
      } while (qt);
    }
    for (const e of out.ExecutionList) {
      rows.append(
        el(
          "tr",
          { class: `run run-${e.Status.toLowerCase()}`, "data-time": e.Timestamp },
          el("td", { text: fmtTime(e.Timestamp) }),
          el("td", {}, el("span", { class: `status status-${e.Status.toLowerCase()}`, text: statusText(e.Status) })),
          el("td", { class: "num", text: e.RecordsProcessed }),
          el("td", { class: "num", text: e.RecordsRejected, title: reasons[e.Timestamp] || "" }),
          el("td", { class: "muted", text: reasons[e.Timestamp] || "" }),
          el("td", { class: "num", text: e.LateRecords }),
          el("td", { class: "num", text: e.DuplicateRecords }),
          el("td", { class: "num", text: e.TimeSeriesCount }),
          el("td", { class: "num", text: e.SilentTimeSeries }),
          el("td", { class: "num", text: e.Anomalies }),
          el("td", { class: "num", text: e.AnomalyGroups }),
          el("td", { class: "muted", text: e.FailureReason }),
        ),
      );
    }
    if (!rows.children.length)
      rows.append(el("tr", {}, el("td", { colspan: 12, class: "muted", text: "No detector run recorded yet." })));
    token = out.NextToken || null;
    more.hidden = !token;
  }
  more.addEventListener("click", () => load(false).catch(showError));

  const offline = CONFIG.mode === "offline";
  const runNext = offline
    ? el("button", {
        type: "button",
        id: "run-next",
        text: "Run the detector for the next interval (offline)",
        onclick: async (e) => {
          e.target.disabled = true;
          try {
            const resp = await fetch("local/RunDetector", { method: "POST" });
            const report = await resp.json();
            if (!resp.ok) throw new Error(report.Message || resp.statusText);
            await load(true);
            note.textContent =
              `Scored ${fmtTime(report.last_interval || report.closed_interval)}: ${report.intervals_scored} ` +
              `interval(s), ${report.feedback_applied} feedback verdict(s) applied, ${report.anomalies} anomalous ` +
              "point(s).";
          } catch (err) {
            showError(err);
          } finally {
            e.target.disabled = false;
          }
        },
      })
    : null;

  setView(
    el("h1", { text: "Runs & data quality" }),
    el(
      "p",
      { class: "muted" },
      "One detector execution per interval: COMPLETED (scored), FAILED, FAILED_TO_SCHEDULE (skipped). " +
        "Late records arrived after their interval was scored (counted, not scored); silent series sent nothing.",
    ),
    runNext,
    note,
    el(
      "table",
      { class: "list", id: "runs" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          [
            "Interval",
            "Status",
            "Records",
            "Rejected",
            "Rejected by reason",
            "Late",
            "Duplicates",
            "Series seen",
            "Silent",
            "Anomalies",
            "Groups",
            "Failure",
          ].map((h) => el("th", { text: h })),
        ),
      ),
      rows,
    ),
    more,
  );
  await load(true);
}

function statusText(status) {
  return { COMPLETED: "scored", FAILED: "failed", FAILED_TO_SCHEDULE: "skipped" }[status] || status.toLowerCase();
}

// -- router ----------------------------------------------------------------------------------------------------
async function route() {
  const hash = window.location.hash || "#/groups";
  document.getElementById("nav-groups").classList.toggle("active", !hash.startsWith("#/runs"));
  document.getElementById("nav-runs").classList.toggle("active", hash.startsWith("#/runs"));
  try {
    const m = hash.match(/^#\/group\/([A-Za-z0-9_-]+)$/);
    if (m) await groupPage(m[1]);
    else if (hash.startsWith("#/runs")) await runsPage();
    else await groupsPage();
    document.body.dataset.ready = hash;
  } catch (err) {
    showError(err);
    document.body.dataset.ready = "error";
  }
}

async function main() {
  try {
    const resp = await fetch("config.json", { cache: "no-store" });
    if (!resp.ok) throw new Error(`config.json: ${resp.status}`);
    CONFIG = await resp.json();
  } catch (err) {
    showError(new Error(`The console has no configuration (${err.message}).`));
    return;
  }
  const mode = document.getElementById("mode");
  if (CONFIG.mode === "offline") {
    mode.textContent = "OFFLINE · no sign-in · local demo state";
    mode.classList.add("offline");
    const banner = document.getElementById("banner");
    banner.textContent =
      `Offline console over the last demo's state (${CONFIG.source || "out/demo"}): ` +
      "nothing here reaches AWS and there is no sign-in. Feedback is stored in the local state.";
    banner.hidden = false;
  } else {
    mode.textContent = `detector ${CONFIG.detectorId || ""}`;
  }
  await Auth.init(CONFIG);
  window.addEventListener("hashchange", route);
  await route();
}

document.addEventListener("DOMContentLoaded", main);
