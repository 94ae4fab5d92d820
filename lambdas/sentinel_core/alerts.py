"""Alerts people can read, and the Lookout for Metrics JSON machines already parse.

One anomaly group at one interval becomes ONE SNS publish with ``MessageStructure=json``:

* ``sms``     one short line (location, measure, value vs expected, severity, time), 160 characters where possible;
* ``email``   a multi-line text: what, where, when, how severe, every affected series with its expected band, the
  dimension contributions in %, what to do, a link to the group's console page (``CONSOLE_BASE_URL``), a link
  to the data and the feedback command line;
* ``default`` the alert JSON of Amazon Lookout for Metrics, field for field as its documentation shows it
  (``alertName``, ``alertEventId``, ``anomalyDetectorArn``, ``alertArn``, ``alertDescription``, ``anomalyGroupId``,
  ``consoleUrl``, ``timestamp``, ``anomalyScore``, ``impactedMetric`` with ``metricName``, ``dimensionContribution``
  [{``dimensionName``, ``dimensionValueContributions`` [{``dimensionValue``, ``valueContribution``}]}] and
  ``relevantTimeSeries`` [{``timeSeriesId``, ``dimensions`` [{``dimensionName``, ``dimensionValue``}],
  ``metricValue``}]), so consumers written for Lookout keep working. What Lookout does not carry (expected value and
  band per series, interval, feedback command) sits in one extra object, ``sentinel``, that such consumers ignore.

The backtest job's one summary per uploaded file (:func:`render_backtest_summary`) is the same kind of
:class:`AlertMessage`, its ``default`` a JSON object of ``type`` ``backtestSummary``.

Standard library only (ships in every Lambda without bundling). The formatter is pure: the detector Lambda, the
automation Lambda, the backtest and the demo call the same functions.
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self
from urllib.parse import quote

from sentinel_core import layout
from sentinel_core.environment import (
    ALERT_FILTER,
    ALERT_TOPIC_ARN,
    ANOMALY_TABLE,
    CONSOLE_BASE_URL,
    DETECTOR_ID,
    SENTINEL_SPEC,
    ConfigError,
    Environment,
)
from sentinel_core.intervals import interval_seconds, to_utc
from sentinel_core.model import AnomalyGroup, Contribution, PointScore
from sentinel_core.spec import PipelineSpec

SMS_LIMIT = 160
SUBJECT_LIMIT = 100  # SNS e-mail subjects: at most 100 printable ASCII characters
MAX_JSON_SERIES = 50  # keeps the publish far below SNS's 256 KB
MAX_EMAIL_SERIES = 20
DEFAULT_CONSOLE_BASE = "https://s3.console.aws.amazon.com"
_ALERT_NAME = re.compile(r"[^A-Za-z0-9\-_]")
# Characters never written into an alert text as they are: control (Cc, incl. newline), format (Cf: bidi overrides,
# zero-width), surrogates (Cs: botocore cannot encode them), private use / unassigned, line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SUBJECT_SAFE = re.compile(r"[^\x20-\x7e]")  # SNS subjects: printable ASCII only


def safe_text(value: str) -> str:
    """``value`` with every unsafe character replaced by U+FFFD: one line, nothing that forges a block of the e-mail
    (ingest refuses such dimension values already; this is the second line of defence)."""
    if value.isascii() and value.isprintable():
        return value
    return "".join("\ufffd" if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in value)


def safe_subject(text: str) -> str:
    """An SNS ``Subject``: printable ASCII (anything else becomes '?'), at most ``SUBJECT_LIMIT`` characters."""
    return _SUBJECT_SAFE.sub("?", text).strip()[:SUBJECT_LIMIT] or "Sentinel alert"


class AlertFilterError(ConfigError):
    """``ALERT_FILTER`` is not the JSON ``{"measures": [...], "dimensions": {"NAME": [...]}}``."""


# ----------------------------------------------------------------------------------------------------------------
# Filters
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertFilter:
    """Lookout's alert criteria: measure in ``measures`` AND, for every filtered dimension, value in its list.

    Empty lists / an empty filter let everything through.
    """

    measures: frozenset[str] = frozenset()
    dimensions: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None, spec: PipelineSpec | None = None) -> AlertFilter:
        if text is None or not text.strip():
            return cls()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AlertFilterError(f"{ALERT_FILTER} is not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(raw, dict) or set(raw) - {"measures", "dimensions"}:
            raise AlertFilterError(f'{ALERT_FILTER} must be {{"measures": [...], "dimensions": {{"NAME": [...]}}}}')
        measures = raw.get("measures") or []
        dims = raw.get("dimensions") or {}
        if not isinstance(measures, list) or not all(isinstance(m, str) for m in measures):
            raise AlertFilterError(f"{ALERT_FILTER}.measures must be a list of measure names")
        if not isinstance(dims, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str | int | float) for x in v) for v in dims.values()
        ):
            raise AlertFilterError(f"{ALERT_FILTER}.dimensions must map a dimension name to a list of values")
        if spec is not None:
            unknown = [m for m in measures if m not in spec.measure_names]
            unknown += [d for d in dims if d not in spec.dimensions]
            if unknown:
                raise AlertFilterError(
                    f"{ALERT_FILTER} names {', '.join(unknown)}, not in the {spec.preset} schema "
                    f"(measures {', '.join(spec.measure_names)}; dimensions {', '.join(spec.dimensions) or 'none'})"
                )
        return cls(frozenset(measures), {k: frozenset(str(x) for x in v) for k, v in dims.items() if v})

    @classmethod
    def from_env(cls, spec: PipelineSpec | None = None, environ: Mapping[str, str] | None = None) -> AlertFilter:
        return cls.parse(Environment.current(environ).optional(ALERT_FILTER), spec)

    @property
    def is_empty(self) -> bool:
        return not self.measures and not self.dimensions

    def point_matches(self, point: PointScore) -> bool:
        if self.measures and point.series.measure not in self.measures:
            return False
        return all(point.series.dimension(name) in values for name, values in self.dimensions.items())

    def apply(self, group: AnomalyGroup) -> AnomalyGroup | None:
        """The group restricted to the series the filter lets through, or None when none is left."""
        if self.is_empty:
            return group
        if self.measures and group.measure not in self.measures:
            return None
        points = [p for p in group.points if self.point_matches(p)]
        if not points:
            return None
        kept_values = {(d, v) for p in points for d, v in p.series.dimensions}
        contributions = _renormalise([c for c in group.contributions if (c.dimension, c.value) in kept_values])
        return AnomalyGroup(
            group_id=group.group_id,
            detector_id=group.detector_id,
            measure=group.measure,
            start=group.start,
            end=group.end,
            score=max(p.score for p in points),
            points=points,
            contributions=contributions,
            feedback=dict(group.feedback),
            kind=group.kind,
        )


def _renormalise(contributions: Sequence[Contribution]) -> list[Contribution]:
    """Per dimension, scale the kept contributions back to 100 %."""
    totals: dict[str, float] = {}
    for c in contributions:
        totals[c.dimension] = totals.get(c.dimension, 0.0) + c.percent
    return [
        Contribution(c.dimension, c.value, round(100.0 * c.percent / totals[c.dimension], 2))
        if totals[c.dimension] > 0
        else c
        for c in contributions
    ]


# ----------------------------------------------------------------------------------------------------------------
# Context: who sends the alert, where the data is
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertContext:
    """Deployment facts the texts need. ``from_topic_arn`` takes region and account from the alert topic's ARN."""

    detector_id: str
    bucket: str = ""
    region: str = "eu-west-1"
    account: str = "000000000000"
    partition: str = "aws"
    console_base_url: str = DEFAULT_CONSOLE_BASE  # the AWS console (S3 links to the interval's data)
    alert_description: str = ""
    name: str = ""  # the alert's own name (``alerts`` context key); "" = ``<detector id>-alert``
    console_url: str = ""  # Metric Sentinel's console (``CONSOLE_BASE_URL``): alerts link to the group's page

    @classmethod
    def from_topic_arn(
        cls, detector_id: str, topic_arn: str, bucket: str = "", console_base_url: str | None = None
    ) -> AlertContext:
        parts = topic_arn.split(":")
        if len(parts) < 6 or parts[0] != "arn":
            raise ValueError(f"not an SNS topic ARN: {topic_arn!r}")
        return cls(
            detector_id=detector_id,
            bucket=bucket,
            region=parts[3],
            account=parts[4],
            partition=parts[1],
            console_url=(console_base_url or "").rstrip("/"),
        )

    @property
    def alert_name(self) -> str:
        name = _ALERT_NAME.sub("-", self.name or f"{self.detector_id}-alert").lstrip("-_") or "sentinel-alert"
        return name[:63]

    @property
    def detector_arn(self) -> str:
        if self.detector_id.startswith("arn:"):
            return self.detector_id
        return f"arn:{self.partition}:metric-sentinel:{self.region}:{self.account}:AnomalyDetector:{self.detector_id}"

    @property
    def alert_arn(self) -> str:
        return f"arn:{self.partition}:metric-sentinel:{self.region}:{self.account}:Alert:{self.alert_name}"

    def group_url(self, group_id: str) -> str | None:
        """The group's page in the console (None when no console is deployed)."""
        return f"{self.console_url}/#/group/{quote(group_id, safe='')}" if self.console_url else None

    def data_url(self, prefix: str) -> str:
        """Console link to an S3 folder (or the s3:// URI when the bucket is unknown)."""
        if not self.bucket:
            return f"s3://<bucket>/{prefix}"
        return (
            f"{self.console_base_url}/s3/buckets/{quote(self.bucket)}"
            f"?region={quote(self.region)}&prefix={quote(prefix, safe='')}&showversions=false"
        )


# What every function that stores groups and publishes alerts needs (the detector, the backtest job).
ALERTING_ENV = (SENTINEL_SPEC, ALERT_TOPIC_ARN, ANOMALY_TABLE, DETECTOR_ID)


@dataclass(frozen=True)
class AlertSettings:
    """The settings of an alerting function, read from its environment (``ALERTING_ENV`` plus the optional
    ``ALERT_FILTER`` and ``CONSOLE_BASE_URL``). Functions with more settings subclass it with keyword-only fields."""

    spec: PipelineSpec
    topic_arn: str
    table: str
    detector_id: str
    alert_filter: AlertFilter = field(default_factory=AlertFilter)  # no filter: every group alerts
    console_base_url: str | None = None  # None: no console deployed (alerts link to the data in the S3 console)

    @classmethod
    def read(cls, environ: Environment, **extra: Any) -> Self:
        """``cls`` from ``environ`` (a ``ConfigError`` names each missing variable); ``extra`` fills a subclass's
        own fields."""
        environ.require(*ALERTING_ENV)
        spec = PipelineSpec.from_env(environ.values)
        return cls(
            spec=spec,
            topic_arn=environ.required(ALERT_TOPIC_ARN),
            table=environ.required(ANOMALY_TABLE),
            detector_id=environ.required(DETECTOR_ID),
            alert_filter=AlertFilter.from_env(spec, environ.values),
            console_base_url=environ.optional(CONSOLE_BASE_URL),
            **extra,
        )

    def alert_context(self, bucket: str) -> AlertContext:
        return AlertContext.from_topic_arn(self.detector_id, self.topic_arn, bucket, self.console_base_url)


# ----------------------------------------------------------------------------------------------------------------
# The message
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlertMessage:
    """Everything one SNS publish needs."""

    event_id: str
    group_id: str
    interval: datetime
    subject: str
    sms: str
    email: str
    default: dict[str, Any]

    @property
    def message(self) -> str:
        """The ``Message`` of a ``MessageStructure=json`` publish."""
        return json.dumps(
            {"default": json.dumps(self.default, separators=(",", ":")), "sms": self.sms, "email": self.email},
            ensure_ascii=False,
        )

    def publish_kwargs(self, topic_arn: str) -> dict[str, Any]:
        return {
            "TopicArn": topic_arn,
            "MessageStructure": "json",
            "Message": self.message,
            "Subject": self.subject,
        }


def fmt_number(value: float) -> str:
    """Readable figures: 9.4, 62, 1,250, 0.034."""
    a = abs(value)
    if a >= 100:
        text = f"{value:,.0f}"
    elif a >= 1:
        text = f"{value:.1f}"
    elif a == 0:
        text = "0"
    else:
        text = f"{value:.2g}"
    return text[:-2] if text.endswith(".0") else text


def fmt_time(ts: datetime, spec: PipelineSpec, *, with_date: bool = True) -> str:
    ts = to_utc(ts)
    if interval_seconds(spec.interval) >= 86400:
        return f"{ts:%Y-%m-%d}"
    return f"{ts:%Y-%m-%d %H:%M} UTC" if with_date else f"{ts:%H:%M} UTC"


def lookout_timestamp(ts: datetime) -> str:
    """Lookout's alert timestamp format: ``2022-01-15T04:25Z[UTC]``."""
    return f"{to_utc(ts):%Y-%m-%dT%H:%MZ}[UTC]"


def event_id(ctx: AlertContext, group_id: str, interval: datetime) -> str:
    """Stable per (group, interval): a retry of the same alert carries the same id (consumers dedupe on it)."""
    return f"{ctx.alert_arn}:event/{group_id}-{to_utc(interval):%Y%m%dT%H%MZ}"


def points_at(group: AnomalyGroup, interval: datetime) -> list[PointScore]:
    """The group's anomalous points of one interval, most severe first."""
    ts = to_utc(interval)
    return sorted((p for p in group.points if to_utc(p.timestamp) == ts), key=lambda p: (-p.score, p.series.id))


def should_alert(group: AnomalyGroup, spec: PipelineSpec, interval: datetime, threshold: float | None = None) -> bool:
    """Lookout's rule: alert when the severity reaches the threshold (>=), for points of ``interval``."""
    limit = spec.severity_threshold if threshold is None else threshold
    pts = points_at(group, interval)
    return bool(pts) and max(p.score for p in pts) >= limit


def _unit(spec: PipelineSpec, measure: str) -> str:
    try:
        return spec.measure(measure).unit
    except KeyError:
        return ""


def _with_unit(value: float, unit: str) -> str:
    return f"{fmt_number(value)} {unit}".strip()


def _direction(p: PointScore) -> str:
    if p.value > p.upper or (p.value >= p.lower and p.value > p.expected):
        return "high"
    return "low"


def _where(p: PointScore) -> str:
    return safe_text(" / ".join(v for _, v in p.series.dimensions)) or "all data"


def _advice(spec: PipelineSpec, direction: str) -> str:
    command = spec.labels.get("command")
    place = spec.labels.get("dimension", "location")
    if spec.ingest == "iot" and command:
        return (
            f"Check the affected {place}(s) now. If automation is subscribed, a '{command}' command has been sent to "
            f"each affected {place}'s command topic ({spec.command_topic('<thing>')}). Confirm on site that "
            f"the readings come back to the expected band; if the sensor is faulty, mark the series as not an anomaly."
        )
    verb = "jump" if direction == "high" else "drop"
    return (
        f"Look at what changed for the affected {place}(s) at that time (a campaign, an outage, a data feed problem) "
        f"that explains the {verb}. If it is expected business, mark the series as not an anomaly so the detector "
        f"learns it."
    )


def feedback_command(group_id: str, series_id: str, is_anomaly: bool = False) -> str:
    flag = "--anomaly" if is_anomaly else "--not-anomaly"
    series_id = safe_text(series_id)
    return f"python -m simulator feedback --group {shlex.quote(group_id)} --series {shlex.quote(series_id)} {flag}"


def render_sms(group: AnomalyGroup, spec: PipelineSpec, interval: datetime) -> str:
    pts = points_at(group, interval) or sorted(group.points, key=lambda p: -p.score)
    top = pts[0]
    unit = _unit(spec, group.measure)
    sev = round(max(p.score for p in pts))
    more = f" +{len(pts) - 1} more" if len(pts) > 1 else ""
    when = fmt_time(interval, spec, with_date=False)
    if group.silent:
        line = f"Sentinel ALERT sev {sev}: {group.measure} at {_where(top)}: series went silent{more} {when}"
    else:
        line = (
            f"Sentinel ALERT sev {sev}: {group.measure} at {_where(top)} = {_with_unit(top.value, unit)} "
            f"(expected {fmt_number(top.expected)}){more} {when}"
        )
    if len(line) > SMS_LIMIT:  # long dimension values: shorten the place, keep the figures
        room = max(8, len(_where(top)) - (len(line) - SMS_LIMIT) - 1)
        line = line.replace(_where(top), _where(top)[:room] + "~", 1)
    return line


def render_subject(group: AnomalyGroup, spec: PipelineSpec, interval: datetime) -> str:
    pts = points_at(group, interval) or group.points
    top = pts[0]
    where = _where(top) + (f" +{len(pts) - 1}" if len(pts) > 1 else "")
    what = "went silent" if group.silent else _direction(top)
    text = f"Sentinel alert sev {round(max(p.score for p in pts))}: {group.measure} {what} at {where}"
    return safe_subject(text)


def _subject(text: str) -> str:
    """An SNS e-mail subject: printable ASCII, one line, at most ``SUBJECT_LIMIT`` characters."""
    return safe_subject(text)


def render_email(
    group: AnomalyGroup, spec: PipelineSpec, ctx: AlertContext, interval: datetime, threshold: float | None = None
) -> str:
    pts = points_at(group, interval) or sorted(group.points, key=lambda p: -p.score)
    unit = _unit(spec, group.measure)
    limit = spec.severity_threshold if threshold is None else threshold
    top = pts[0]
    direction = _direction(top)
    place = spec.labels.get("dimension", "series")
    sev = max(p.score for p in pts)
    folder = layout.interval_folder(interval, spec)
    ongoing = f"; anomalous since {fmt_time(group.start, spec)}" if to_utc(group.start) < to_utc(interval) else ""
    if group.silent:
        return _silent_email(group, spec, ctx, interval, pts, limit)
    lines = [
        f"Metric Sentinel found an anomaly in {group.measure} ({spec.preset}).",
        "",
        f"What:      {group.measure} {'higher' if direction == 'high' else 'lower'} than expected in {len(pts)} series",
        f"Where:     {', '.join(dict.fromkeys(_where(p) for p in pts))}"
        + (f" ({', '.join(spec.dimensions)})" if spec.dimensions else ""),
        f"When:      {fmt_time(interval, spec)} (interval {spec.interval}{ongoing})",
        f"Severity:  {fmt_number(round(sev))} / 100 (alert threshold {fmt_number(limit)})",
        "",
        "Affected series (value vs expected band):",
    ]
    for p in pts[:MAX_EMAIL_SERIES]:
        pct = f"{p.deviation * 100:+.0f}%"
        lines.append(
            f"  - {safe_text(p.series.label)}: {_with_unit(p.value, unit)}, expected {_with_unit(p.expected, unit)} "
            f"(band {fmt_number(p.lower)} to {fmt_number(p.upper)}), {pct}, severity {round(p.score)}"
        )
    if len(pts) > MAX_EMAIL_SERIES:
        lines.append(f"  ... and {len(pts) - MAX_EMAIL_SERIES} more series (all of them are in the JSON alert)")
    if group.contributions:
        lines += ["", "What drove it (dimension contributions):"]
        for dim, items in _by_dimension(group.contributions).items():
            parts = ", ".join(f"{safe_text(c.value)} {c.percent:.0f}%" for c in items)
            lines.append(f"  {dim}: {parts}")
    lines += [
        "",
        "What to do:",
        *textwrap.wrap(_advice(spec, direction), 110, initial_indent="  ", subsequent_indent="  "),
        "",
        *([f"Open in the console: {ctx.group_url(group.group_id)}"] if ctx.console_url else []),
        f"Data of this interval: {ctx.data_url(folder)}",
        f"  (s3://{ctx.bucket or '<bucket>'}/{folder})",
        f"Anomaly group: {group.group_id}   detector: {ctx.detector_id}",
        "",
        f"Not an anomaly? Tell the detector so it learns this {place} behaviour as normal:",
    ]
    for p in pts[:3]:
        lines.append(f"  {feedback_command(group.group_id, p.series.id)}")
    lines.append("(use --anomaly instead to confirm it.)")
    return "\n".join(lines) + "\n"


def _silent_email(
    group: AnomalyGroup,
    spec: PipelineSpec,
    ctx: AlertContext,
    interval: datetime,
    pts: Sequence[PointScore],
    limit: float,
) -> str:
    """A silence has no value and no band: the e-mail says which series stopped reporting and what they usually
    report, and asks for a look at the device or the feed (no command is sent for it)."""
    unit = _unit(spec, group.measure)
    place = spec.labels.get("dimension", "series")
    lines = [
        f"Metric Sentinel: series went silent in {group.measure} ({spec.preset}).",
        "",
        f"What:      {len(pts)} series of {group.measure} that reported regularly sent nothing for several intervals",
        f"Where:     {', '.join(dict.fromkeys(_where(p) for p in pts))}"
        + (f" ({', '.join(spec.dimensions)})" if spec.dimensions else ""),
        f"When:      found at {fmt_time(interval, spec)} (interval {spec.interval})",
        f"Severity:  {fmt_number(round(max(p.score for p in pts)))} / 100 (alert threshold {fmt_number(limit)})",
        "",
        "Silent series (what they would report now):",
    ]
    for p in pts[:MAX_EMAIL_SERIES]:
        lines.append(f"  - {safe_text(p.series.label)}: no value, expected about {_with_unit(p.expected, unit)}")
    if len(pts) > MAX_EMAIL_SERIES:
        lines.append(f"  ... and {len(pts) - MAX_EMAIL_SERIES} more series (all of them are in the JSON alert)")
    advice = (
        f"Check the affected {place}(s): power, network, the sensor or the data feed. No device command is sent for "
        "a silent series; the detector scores it again as soon as values arrive."
    )
    lines += [
        "",
        "What to do:",
        *textwrap.wrap(advice, 110, initial_indent="  ", subsequent_indent="  "),
        "",
        f"Anomaly group: {group.group_id}   detector: {ctx.detector_id}",
    ]
    return "\n".join(lines) + "\n"


def _by_dimension(contributions: Iterable[Contribution]) -> dict[str, list[Contribution]]:
    out: dict[str, list[Contribution]] = {}
    for c in contributions:
        out.setdefault(c.dimension, []).append(c)
    for items in out.values():
        items.sort(key=lambda c: (-c.percent, c.value))
    return out


def render_lookout_json(
    group: AnomalyGroup, spec: PipelineSpec, ctx: AlertContext, interval: datetime
) -> dict[str, Any]:
    pts = points_at(group, interval) or sorted(group.points, key=lambda p: -p.score)
    folder = layout.interval_folder(interval, spec)
    score = max(p.score for p in pts)
    what = "series went silent" if group.silent else "anomaly"
    description = ctx.alert_description or (
        f"Metric Sentinel {spec.preset}: {group.measure} {what}, severity >= {fmt_number(spec.severity_threshold)}"
    )
    return {
        "alertName": ctx.alert_name,
        "alertEventId": event_id(ctx, group.group_id, interval),
        "anomalyDetectorArn": ctx.detector_arn,
        "alertArn": ctx.alert_arn,
        "alertDescription": description[:256],
        "anomalyGroupId": group.group_id,
        "consoleUrl": ctx.group_url(group.group_id) or ctx.data_url(folder),
        "impactedMetric": {
            "metricName": group.measure,
            "dimensionContribution": [
                {
                    "dimensionName": dim,
                    "dimensionValueContributions": [
                        {"dimensionValue": c.value, "valueContribution": round(c.percent, 2)} for c in items
                    ],
                }
                for dim, items in _by_dimension(group.contributions).items()
            ],
            "relevantTimeSeries": [
                {
                    "timeSeriesId": p.series.id,
                    "dimensions": [{"dimensionName": k, "dimensionValue": v} for k, v in p.series.dimensions],
                    "metricValue": None if group.silent else p.value,  # a silent series has no value
                }
                for p in pts[:MAX_JSON_SERIES]
            ],
        },
        "timestamp": lookout_timestamp(interval),
        "anomalyScore": round(score, 2),
        "sentinel": {
            "kind": group.kind,  # "anomaly" or "silent" (automation sends no device command for a silence)
            "preset": spec.preset,
            "interval": spec.interval,
            "intervalStart": to_utc(interval).isoformat(),
            "groupStart": to_utc(group.start).isoformat(),
            "groupEnd": to_utc(group.end).isoformat(),
            "severityThreshold": spec.severity_threshold,
            "unit": _unit(spec, group.measure),
            "dataPrefix": folder,
            "truncatedSeries": max(0, len(pts) - MAX_JSON_SERIES),
            "series": [
                {
                    "timeSeriesId": p.series.id,
                    "value": None if group.silent else p.value,
                    "expected": p.expected,
                    "lower": p.lower,
                    "upper": p.upper,
                    "score": round(p.score, 2),
                }
                for p in pts[:MAX_JSON_SERIES]
            ],
            "feedbackCommand": feedback_command(group.group_id, pts[0].series.id),
        },
    }


def render_alert(
    group: AnomalyGroup,
    spec: PipelineSpec,
    ctx: AlertContext,
    interval: datetime | None = None,
    threshold: float | None = None,
) -> AlertMessage:
    """The three texts and the subject of the alert for ``group`` at ``interval`` (default: its last interval)."""
    if not group.points:
        raise ValueError(f"anomaly group {group.group_id} has no points to alert on")
    at = to_utc(interval if interval is not None else group.end)
    return AlertMessage(
        event_id=event_id(ctx, group.group_id, at),
        group_id=group.group_id,
        interval=at,
        subject=render_subject(group, spec, at),
        sms=render_sms(group, spec, at),
        email=render_email(group, spec, ctx, at, threshold),
        default=render_lookout_json(group, spec, ctx, at),
    )


def parse_lookout_alert(message: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse a Lookout-style alert (the SNS ``Message`` a subscriber receives) and check its required fields."""
    data = json.loads(message) if isinstance(message, str) else dict(message)
    if not isinstance(data, dict):
        raise ValueError("alert is not a JSON object")
    missing = [k for k in ("alertEventId", "anomalyScore", "impactedMetric", "timestamp") if k not in data]
    if missing or not isinstance(data.get("impactedMetric"), dict):
        raise ValueError(f"not a Lookout for Metrics alert: missing {', '.join(missing) or 'impactedMetric object'}")
    return data


def summary_alert(
    groups: Sequence[AnomalyGroup], spec: PipelineSpec, *, threshold: float | None = None, limit: int = 3
) -> str:
    """One line summing up anomaly groups (backtest reports): count, worst severity, the worst few."""
    floor = spec.severity_threshold if threshold is None else threshold
    alerting = sorted((g for g in groups if g.score >= floor), key=lambda g: (-g.score, g.start, g.group_id))
    if not alerting:
        return (
            f"Sentinel {spec.preset}: no anomaly at or above severity {fmt_number(floor)} "
            f"({len(groups)} group(s) below it)"
        )
    parts = []
    for g in alerting[:limit]:
        top = max(g.points, key=lambda p: p.score) if g.points else None
        where = f" at {_where(top)}" if top is not None and top.series.dimensions else ""
        parts.append(f"{g.measure}{where} {fmt_time(g.start, spec)} (sev {round(g.score)})")
    more = f"; +{len(alerting) - limit} more" if len(alerting) > limit else ""
    return (
        f"Sentinel {spec.preset}: {len(alerting)} anomaly group(s) at or above severity {fmt_number(floor)}, "
        f"worst {round(alerting[0].score)}: {'; '.join(parts)}{more}"
    )


# ----------------------------------------------------------------------------------------------------------------
# The backtest job's summary alert (one per uploaded file)
# ----------------------------------------------------------------------------------------------------------------
MAX_SUMMARY_EMAIL_GROUPS = 30  # groups listed in the e-mail; the report object lists every one
MAX_SUMMARY_JSON_GROUPS = 50  # groups in the summary JSON: keeps the publish far below SNS's 256 KB
BACKTEST_SUMMARY_TYPE = "backtestSummary"  # the ``type`` of its ``default`` JSON (consumers tell it from alerts)


def _shorten_sms(line: str, name: str) -> str:
    """``line`` within ``SMS_LIMIT``: cut, then the file's name (itself cut to half the SMS at most)."""
    if len(line) <= SMS_LIMIT:
        return line
    half = SMS_LIMIT // 2
    shown = name if len(name) <= half - 6 else name[: half - 7] + "~"
    suffix = f"... ({shown})"
    return line[: SMS_LIMIT - len(suffix)] + suffix


@dataclass(frozen=True)
class BacktestFacts:
    """What the backtest job learned about one uploaded file (``ctx.bucket`` holds it), for its summary alert."""

    key: str
    report_key: str
    errors_key: str | None
    rows: int
    good_rows: int
    bad_rows: int
    first_day: str | None
    last_day: str | None
    series: int
    learn_intervals: int
    report_intervals: int
    report_start: str | None
    max_group_alerts: int


def render_backtest_summary(
    groups: Sequence[AnomalyGroup],
    spec: PipelineSpec,
    ctx: AlertContext,
    facts: BacktestFacts,
    summary_id: str,
    interval: datetime,
) -> AlertMessage:
    """The summary publish of one backtested file: SMS line from :func:`summary_alert`, a readable e-mail listing
    the groups, a JSON ``default`` of ``type`` ``backtestSummary``; ``summary_id`` is its ledger id and event id."""
    line = summary_alert(groups, spec)
    name = facts.key.rsplit("/", 1)[-1]
    sms = _shorten_sms(line, name)
    ranked = sorted(groups, key=lambda g: (-g.score, g.start, g.group_id))
    at_threshold = sum(1 for g in groups if g.score >= spec.severity_threshold)
    s3 = f"s3://{ctx.bucket}"
    lines = [
        f"Metric Sentinel backtest of {s3}/{facts.key} ({spec.preset}, interval {spec.interval}).",
        "",
        line,
        "",
        f"Rows:      {facts.rows:,} read, {facts.good_rows:,} used, {facts.bad_rows:,} rejected",
    ]
    if facts.errors_key:
        lines.append(f"           per-row error report: {s3}/{facts.errors_key}")
    lines += [
        f"Data:      {facts.first_day} to {facts.last_day}, {facts.series} series",
        f"Learned:   the first {facts.learn_intervals} intervals; reported on the last {facts.report_intervals} "
        f"(from {facts.report_start})",
        f"Groups:    {len(groups)} anomaly group(s), {at_threshold} at or above severity "
        f"{fmt_number(spec.severity_threshold)} (one alert each, at most {facts.max_group_alerts})",
        "",
    ]
    for g in ranked[:MAX_SUMMARY_EMAIL_GROUPS]:
        top = max(g.points, key=lambda p: p.score)
        where = ", ".join(sorted({v for p in g.points for _, v in p.series.dimensions})) or "all"
        until = f" to {fmt_time(g.end, spec)}" if g.end != g.start else ""
        lines.append(
            f"  - sev {round(g.score):>3}  {g.measure} at {where}  {fmt_time(g.start, spec)}{until}  "
            f"(value {fmt_number(top.value)}, expected {fmt_number(top.expected)})  group {g.group_id}"
        )
    if len(ranked) > MAX_SUMMARY_EMAIL_GROUPS:
        lines.append(f"  ... and {len(ranked) - MAX_SUMMARY_EMAIL_GROUPS} more in {s3}/{facts.report_key}")
    lines += ["", f"Full report: {s3}/{facts.report_key}", f"Detector: {ctx.detector_id}"]
    default = {
        "type": BACKTEST_SUMMARY_TYPE,
        "alertName": ctx.alert_name,
        "anomalyDetectorArn": ctx.detector_arn,
        "input": f"{s3}/{facts.key}",
        "summary": line,
        "rows": facts.rows,
        "badRows": facts.bad_rows,
        "errorReport": f"{s3}/{facts.errors_key}" if facts.errors_key else None,
        "reportStart": facts.report_start,
        "anomalyGroups": [
            {
                "anomalyGroupId": g.group_id,
                "metricName": g.measure,
                "anomalyScore": round(g.score, 2),
                "startTime": g.start.isoformat(),
                "endTime": g.end.isoformat(),
                "timeSeriesIds": g.series_ids,
            }
            for g in ranked[:MAX_SUMMARY_JSON_GROUPS]
        ],
    }
    subject = f"Sentinel {spec.preset} backtest: {at_threshold} anomaly group(s) in {name}"
    lines = [safe_text(x) for x in lines]  # file names and dimension values: one line each, whatever they hold
    sms = safe_text(sms)
    return AlertMessage(
        event_id=summary_id,
        group_id=summary_id,
        interval=to_utc(interval),
        subject=_subject(subject),
        sms=sms,
        email="\n".join(lines) + "\n",
        default=default,
    )
