"""The demo's HTML report (every preset's): one self-contained file (inline PNG plots, inline CSS) that opens offline.

The report is built from plain data (:class:`ReportData`) so it can be rendered and tested without running the
pipeline. Plots use matplotlib's Agg backend (no display needed); PNGs are written without a timestamp, so the same
data gives the same bytes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import matplotlib

matplotlib.use("Agg")  # no display: set before pyplot is imported

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.colors import Normalize

from simulator.demo.result import format_delay

SEVERITY_CMAP = "YlOrRd"
_num = cast(Callable[[datetime], float], mdates.date2num)  # matplotlib's date2num is untyped


def _nums(ts: Sequence[datetime]) -> list[float]:
    return [_num(t) for t in ts]


KIND_COLOURS = {"spike": "#7b3294", "shift": "#008837", "drift": "#e66101", "silent": "#404040"}


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeriesPoint:
    """One interval of one series as the detector scored it."""

    timestamp: datetime
    value: float
    expected: float
    lower: float
    upper: float
    score: float
    anomalous: bool = False
    alerted: bool = False
    warming_up: bool = False
    live: bool = True  # False: a history interval shown for context (scored while warming up, never alerted)


@dataclass(frozen=True)
class InjectedWindow:
    """An anomaly the demo injected (``end`` is the start of the last anomalous interval, inclusive)."""

    start: datetime
    end: datetime
    kind: str
    magnitude: float


@dataclass
class SeriesPanel:
    """One plot: a series' values, expected band, anomalies and injected windows."""

    series_id: str
    title: str
    unit: str
    points: list[SeriesPoint]
    injected: list[InjectedWindow] = field(default_factory=list)
    interval_seconds: int = 300
    threshold: float = 70.0


@dataclass(frozen=True)
class DetectionRow:
    """Injected anomaly vs what the detector made of it."""

    series: str
    kind: str
    start: datetime
    end: datetime
    magnitude: float
    detected_at: datetime | None  # simulated time the first alert for it was delivered
    severity: float | None

    @property
    def minutes_to_detect(self) -> float | None:
        if self.detected_at is None:
            return None
        return (self.detected_at - self.start).total_seconds() / 60.0


@dataclass(frozen=True)
class AlertEntry:
    """An alert as its recipients received it."""

    delivered_at: datetime  # simulated time
    interval: datetime
    subject: str
    sms: str
    email: str
    severity: float
    measure: str
    where: str
    commands: tuple[str, ...] = ()  # "topic: payload" lines the automation sent back to devices


@dataclass(frozen=True)
class PrefixCount:
    """One node of the S3 tree: a prefix (ending in /) with the objects and bytes below it."""

    prefix: str
    objects: int
    size: int


@dataclass(frozen=True)
class ErrorEntry:
    """A rejected record (Firehose's error prefix, an IoT rule error, a backtest's per-row error report) with the
    reason."""

    key: str
    reason: str
    payload: str


@dataclass
class ReportData:
    title: str
    subtitle: str
    parameters: list[tuple[str, str]]
    summary: list[tuple[str, str]]
    detections: list[DetectionRow]
    panels: list[SeriesPanel]
    alerts: list[AlertEntry]
    bucket: str
    s3_tree: list[PrefixCount]
    errors: list[ErrorEntry]
    flow: list[str] = field(default_factory=list)  # the path the data took, one step per line
    notes: list[str] = field(default_factory=list)
    daily: bool = False  # daily data: times to detect in days, windows as dates


# ----------------------------------------------------------------------------------------------------------------
# S3 tree
# ----------------------------------------------------------------------------------------------------------------
def prefix_counts(objects: Iterable[tuple[str, int]]) -> list[PrefixCount]:
    """Every folder prefix of ``objects`` (key, size) with the number and total size of objects under it."""
    counts: dict[str, list[int]] = {}
    for key, size in objects:
        parts = key.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth]) + "/"
            c = counts.setdefault(prefix, [0, 0])
            c[0] += 1
            c[1] += size
    return [PrefixCount(p, n, s) for p, (n, s) in sorted(counts.items())]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _count(node: PrefixCount) -> str:
    noun = "object " if node.objects == 1 else "objects"
    return f"{node.objects:>7,} {noun} {_size(node.size):>10}"


def render_tree(bucket: str, nodes: Sequence[PrefixCount], max_children: int = 4) -> str:
    """A text tree of the prefixes; long runs of sibling folders (one per interval) are elided in the middle."""
    children: dict[str, list[PrefixCount]] = {}
    for node in nodes:
        parent = node.prefix[: node.prefix[:-1].rfind("/") + 1]
        children.setdefault(parent, []).append(node)
    total = sum(n.objects for n in children.get("", []))
    size = sum(n.size for n in children.get("", []))
    lines = [f"s3://{bucket}/".ljust(52) + _count(PrefixCount("", total, size))]

    def walk(parent: str, indent: str) -> None:
        kids = children.get(parent, [])
        shown: list[PrefixCount | int] = list(kids)
        if len(kids) > max_children + 1:
            head = max(1, max_children - 1)
            shown = [*kids[:head], len(kids) - head - 1, kids[-1]]
        for i, item in enumerate(shown):
            last = i == len(shown) - 1
            branch = "└── " if last else "├── "
            if isinstance(item, int):
                lines.append(f"{indent}{branch}… {item} more folders like these")
                continue
            node = item
            while len(children.get(node.prefix, [])) == 1 and children[node.prefix][0].objects == node.objects:
                node = children[node.prefix][0]  # a chain of single folders reads better on one line
            label = f"{indent}{branch}{node.prefix[len(parent) :]}"
            lines.append(label.ljust(52) + _count(node))
            walk(node.prefix, indent + ("    " if last else "│   "))

    walk("", "")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------
def plot_panel(panel: SeriesPanel) -> bytes:
    """PNG of one series: values, expected band, injected windows, anomalies coloured by severity, severity bars."""
    fig, (ax, sev) = plt.subplots(
        2, 1, figsize=(11, 4.2), dpi=90, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    try:
        pts = sorted(panel.points, key=lambda p: p.timestamp)
        ts = [p.timestamp for p in pts]
        norm = Normalize(vmin=0, vmax=100)
        cmap = plt.get_cmap(SEVERITY_CMAP)
        width = panel.interval_seconds / 86400.0
        history = [p for p in pts if not p.live]
        if history:
            live_from = min((p.timestamp for p in pts if p.live), default=history[-1].timestamp)
            for a in (ax, sev):
                a.axvspan(_num(history[0].timestamp), _num(live_from), color="#e9e9e9", alpha=0.7, lw=0)
                a.axvline(_num(live_from), color="#777777", lw=0.8, ls="--")
            ax.annotate(
                "history: learned from, no alerts",
                xy=(_num(history[0].timestamp), 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, -10),
                textcoords="offset points",
                ha="left",
                fontsize=7.5,
                color="#555555",
            )
        for w in panel.injected:
            for a in (ax, sev):
                a.axvspan(
                    _num(w.start),
                    _num(w.end) + width,
                    color=KIND_COLOURS.get(w.kind, "#888888"),
                    alpha=0.13,
                    lw=0,
                )
            ax.annotate(
                f"injected {w.kind} {w.magnitude:+.0%}",
                xy=(_num(w.start), 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, 4),
                textcoords="offset points",
                fontsize=8,
                color=KIND_COLOURS.get(w.kind, "#555555"),
            )
        if pts:
            ax.fill_between(
                ts,
                [p.lower for p in pts],
                [p.upper for p in pts],
                color="#9ecae1",
                alpha=0.45,
                lw=0,
                step="post",
                label="expected band",
            )
            ax.plot(ts, [p.expected for p in pts], color="#3182bd", lw=0.9, ls="--", label="expected")
            ax.plot(ts, [p.value for p in pts], color="#252525", lw=1.1, label="value")
            anomalous = [p for p in pts if p.anomalous]
            if anomalous:
                ax.scatter(
                    [p.timestamp for p in anomalous],
                    [p.value for p in anomalous],
                    c=[p.score for p in anomalous],
                    cmap=cmap,
                    norm=norm,
                    s=[70 if p.alerted else 28 for p in anomalous],
                    edgecolors=["#a50f15" if p.alerted else "#555555" for p in anomalous],
                    linewidths=1.2,
                    zorder=5,
                    label="anomaly (colour = severity)",
                )
                top = max(anomalous, key=lambda p: (p.score, p.timestamp))
                ax.annotate(
                    f"sev {top.score:.0f}",
                    xy=(_num(top.timestamp), top.value),
                    xytext=(6, 4),
                    textcoords="offset points",
                    fontsize=8,
                    color="#a50f15",
                    fontweight="bold",
                )
            # One filled step line (not a bar per interval: hundreds of patches make the plot slow to draw).
            edges = [*ts, ts[-1] + timedelta(seconds=panel.interval_seconds)]
            sev.stairs([p.score for p in pts], _nums(edges), fill=True, color="#fdae61", alpha=0.8)
            hot = [p for p in pts if p.score >= panel.threshold]
            if hot:
                sev.scatter(
                    [p.timestamp for p in hot],
                    [p.score for p in hot],
                    c=[p.score for p in hot],
                    cmap=cmap,
                    norm=norm,
                    s=14,
                    zorder=4,
                )
        sev.axhline(panel.threshold, color="#a50f15", lw=0.8, ls=":")
        sev.text(
            1.0,
            panel.threshold,
            f" alert ≥ {panel.threshold:.0f}",
            transform=sev.get_yaxis_transform(),
            fontsize=7,
            color="#a50f15",
            va="center",
        )
        sev.set_ylim(0, 100)
        sev.set_yticks([0, 50, 100])
        sev.set_ylabel("severity", fontsize=8)
        ax.set_ylabel(panel.unit or "value", fontsize=9)
        ax.set_title(panel.title, fontsize=11, loc="left")
        ax.grid(alpha=0.25)
        sev.grid(alpha=0.25)
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
        sev.xaxis.set_major_locator(locator)
        sev.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        for a in (ax, sev):
            a.tick_params(labelsize=8)
            a.spines["top"].set_visible(False)
            a.spines["right"].set_visible(False)
        fig.subplots_adjust(left=0.07, right=0.93, top=0.9, bottom=0.12)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 14px}
table{border-collapse:collapse;background:#fff;font-size:13.5px}
th,td{border:1px solid #e1e4e8;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 4px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card span{color:#666;font-size:12.5px}
.ok{color:#1a7f37;font-weight:600}.miss{color:#cf222e;font-weight:600}
figure{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:0 0 16px;padding:8px}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:12.5px;color:#555;padding:4px 6px 0}
pre{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:10px 12px;font-size:12.5px;
 overflow-x:auto;line-height:1.35}
.sms{font-family:ui-monospace,Menlo,Consolas,monospace;background:#e7f5e9;border-radius:12px;padding:6px 10px;
 display:inline-block;font-size:12.5px}
details{margin:4px 0}summary{cursor:pointer;color:#0b5cad}
.flow li{margin:2px 0}
.legend span{display:inline-block;margin-right:14px;font-size:12.5px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-1px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt_ts(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")


def _detections_html(rows: Sequence[DetectionRow], daily: bool = False) -> str:
    if not rows:
        return "<p>No anomaly was injected in this run.</p>"
    out = [
        "<table><tr><th>Series</th><th>Injected</th><th>Window (UTC)</th><th>Detected</th>"
        "<th>Time to detect</th><th>Severity</th></tr>"
    ]
    for r in rows:
        if r.detected_at is None:
            found, delay, sev = '<span class="miss">missed</span>', "–", "–"
        else:
            found = f'<span class="ok">yes</span>, alert at {_e(_fmt_ts(r.detected_at))}'
            delay = format_delay(r.minutes_to_detect, daily) if r.minutes_to_detect is not None else "–"
            sev = f"{r.severity:.0f}" if r.severity is not None else "–"
        out.append(
            f"<tr><td>{_e(r.series)}</td><td>{_e(r.kind)} {r.magnitude:+.0%}</td>"
            f"<td>{_e(_fmt_ts(r.start))} → {_e(r.end.strftime('%H:%M'))}</td><td>{found}</td>"
            f'<td class="num">{delay}</td><td class="num">{sev}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def _alerts_html(alerts: Sequence[AlertEntry]) -> str:
    if not alerts:
        return "<p>No alert was sent in this run.</p>"
    out = [
        "<table><tr><th>Delivered (sim. UTC)</th><th>Severity</th><th>Measure</th><th>Where</th>"
        "<th>SMS text (e-mail and device command below)</th></tr>"
    ]
    for a in alerts:
        commands = "".join(f"<div><code>{_e(c)}</code></div>" for c in a.commands) or "<div>none</div>"
        out.append(
            f"<tr><td>{_e(_fmt_ts(a.delivered_at))}</td><td class='num'>{a.severity:.0f}</td><td>{_e(a.measure)}</td>"
            f"<td>{_e(a.where)}</td><td><div class='sms'>{_e(a.sms)}</div>"
            f"<details><summary>E-mail: {_e(a.subject)}</summary><pre>{_e(a.email)}</pre></details>"
            f"<details><summary>Command sent back to the device(s)</summary>{commands}</details></td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _errors_html(errors: Sequence[ErrorEntry]) -> str:
    if not errors:
        return "<p>No record was rejected.</p>"
    out = ["<table><tr><th>Reason</th><th>Record as the source sent it</th><th>Where it is kept</th></tr>"]
    for err in errors:
        out.append(
            f"<tr><td>{_e(err.reason)}</td><td><code>{_e(err.payload)}</code></td><td><code>{_e(err.key)}</code></td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _panel_html(panel: SeriesPanel) -> str:
    png = base64.b64encode(plot_panel(panel)).decode("ascii")
    n_anom = sum(1 for p in panel.points if p.anomalous and p.live)
    n_alert = sum(1 for p in panel.points if p.alerted)
    injected = ", ".join(f"{w.kind} {w.magnitude:+.0%} from {_fmt_ts(w.start)}" for w in panel.injected) or "none"
    return (
        f'<figure id="{_e(panel.series_id)}"><img alt="{_e(panel.title)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{_e(panel.series_id)} — injected: {_e(injected)}; anomalous intervals: {n_anom}, "
        f"alerted: {n_alert}</figcaption></figure>"
    )


def render_html(data: ReportData) -> str:
    """The whole report as one HTML string (no external resources)."""
    cards = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in data.summary)
    params = " · ".join(f"{_e(k)} <b>{_e(v)}</b>" for k, v in data.parameters)
    flow = "".join(f"<li>{_e(step)}</li>" for step in data.flow)
    legend = (
        '<p class="legend"><span><i class="sw" style="background:#252525"></i>value</span>'
        '<span><i class="sw" style="background:#9ecae1"></i>expected band</span>'
        + "".join(
            f'<span><i class="sw" style="background:{c};opacity:.35"></i>injected {k}</span>'
            for k, c in KIND_COLOURS.items()
        )
        + '<span><i class="sw" style="background:#fd8d3c"></i>anomaly, colour = severity '
        "(large, red-rimmed = alert sent)</span></p>"
    )
    panels = "".join(_panel_html(p) for p in data.panels) or "<p>No series was anomalous or injected.</p>"
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(data.title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(data.title)}</h1>
<p class="sub">{_e(data.subtitle)}</p>
<p class="sub">{params}</p>
<div class="cards">{cards}</div>
<h2>Injected anomalies vs detected</h2>
{_detections_html(data.detections, data.daily)}
<h2>Affected series</h2>
<p class="sub">One plot per series with an injected or detected anomaly. Top: the interval values and the band the
detector expected (learned from the history and the live data before each point). Bottom: the severity (0-100) of
every interval; an alert is sent at or above the threshold. The grey part on the left is the end of the uploaded history
(the detector learned from it; no alerts there), the rest is the live part (streamed, or the share of an upload the
backtest reports on).</p>
{legend}
{panels}
<h2>Alerts as recipients received them</h2>
{_alerts_html(data.alerts)}
<h2>Rejected records (error output)</h2>
{_errors_html(data.errors)}
<h2>What the pipeline wrote to S3</h2>
<pre>{_e(render_tree(data.bucket, data.s3_tree))}</pre>
<h2>How the data flowed</h2>
<ol class="flow">{flow}</ol>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</main></body></html>
"""


def title(preset: str) -> str:
    return f"Metric Sentinel — offline demo ({preset})"


def write_report(data: ReportData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return path
