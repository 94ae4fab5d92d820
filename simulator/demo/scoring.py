"""What the demo makes of the read-back: expected bands recomputed by the detector core, injected vs detected,
one plot per affected series, the summary cards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sentinel_core.aggregate import aggregate
from sentinel_core.detector import Detector
from sentinel_core.groups import is_anomalous
from sentinel_core.intervals import interval_range, interval_seconds, to_utc
from sentinel_core.model import PointScore, SeriesKey
from sentinel_core.records import Record
from sentinel_core.spec import PipelineSpec

from simulator import datagen
from simulator.demo import report
from simulator.demo.result import Counts, ReceivedAlert, format_delay

# An alert this many intervals after an injected window still counts for it: the detector may need a couple of
# intervals to be sure of a drift, and a shift's first interval can be scored just under the threshold.
DETECTION_GRACE_INTERVALS = 3


def replay_scores(
    spec: PipelineSpec,
    history: Sequence[Record],
    live: Sequence[Record],
    live_start: datetime,
    last_interval: datetime,
    context_from: datetime | None = None,
) -> tuple[dict[str, list[PointScore]], dict[str, Any]]:
    """Score like the detector Lambda does (warm-up on the history, then each live interval in order).

    Returns the point scores per series id — the live ones, preceded by the history's from ``context_from`` (what
    the plots show as context) — and the final model state (to compare with the Lambda's).
    """
    step = interval_seconds(spec.interval)
    detector = Detector(step, timezone=spec.timezone)
    zero = {m.name for m in spec.measures if m.aggregation == "SUM"}  # as the runner: no record of a count is 0
    by_interval = aggregate(history, spec)
    out: dict[str, list[PointScore]] = {}
    if by_interval:
        starts = sorted(by_interval)
        for start in interval_range(starts[0], starts[-1] + timedelta(seconds=step), step):
            scored = detector.score_valid(start, by_interval.get(start, {}), zero_fill=zero)[0].points
            if context_from is not None and start >= context_from:
                for p in scored:
                    out.setdefault(p.series.id, []).append(p)
    live_by = aggregate(live, spec)
    for start in interval_range(live_start, last_interval + timedelta(seconds=step), step):
        for p in detector.score_valid(start, live_by.get(start, {}), zero_fill=zero)[0].points:
            out.setdefault(p.series.id, []).append(p)
    return out, detector.to_state()


def last_interval(state: dict[str, Any]) -> datetime | None:
    """The last interval the detector Lambda scored, from the model state it saved."""
    if not state:
        return None
    last = Detector.from_state(state).last_interval
    return to_utc(last) if last is not None else None


def detection_row(lab: datagen.Label, detected_at: datetime | None, severity: float | None) -> report.DetectionRow:
    return report.DetectionRow(lab.series.label, lab.kind, lab.start, lab.end, lab.magnitude, detected_at, severity)


def match_detections(
    labels: Sequence[datagen.Label], alerts: Sequence[ReceivedAlert], step: int
) -> tuple[list[report.DetectionRow], int]:
    """Each injected label with the first alert naming its series within its window (plus a short grace); and
    the number of alerts that matched no label (the summary of a backtest is not an alert on a series)."""
    grace = timedelta(seconds=DETECTION_GRACE_INTERVALS * step)
    rows: list[report.DetectionRow] = []
    used: set[int] = set()
    for lab in labels:
        first: ReceivedAlert | None = None
        worst: float | None = None
        for i, a in enumerate(alerts):
            hits = [
                s for s in a.series if s["timeSeriesId"] == lab.series_id and lab.start <= a.interval <= lab.end + grace
            ]
            if not hits:
                continue
            used.add(i)
            first = first or a
            top = max(float(s["score"]) for s in hits)
            worst = top if worst is None else max(worst, top)
        rows.append(detection_row(lab, first.delivered_at if first else None, worst))
    return rows, sum(1 for i, a in enumerate(alerts) if i not in used and not a.is_summary)


def build_panels(
    spec: PipelineSpec,
    labels: Sequence[datagen.Label],
    alerts: Sequence[ReceivedAlert],
    scores: dict[str, list[PointScore]],
    step: int,
    live_start: datetime,
) -> list[report.SeriesPanel]:
    """One plot per series with an injected anomaly or an alert, in the order they first happened."""
    alerted: dict[tuple[str, datetime], float] = {}
    for a in alerts:
        for s in a.series:
            alerted[(s["timeSeriesId"], a.interval)] = float(s["score"])
    first_event: dict[str, datetime] = {}
    for lab in labels:
        first_event[lab.series_id] = min(first_event.get(lab.series_id, lab.start), lab.start)
    for sid, ts in alerted:
        first_event[sid] = min(first_event.get(sid, ts), ts)
    panels: list[report.SeriesPanel] = []
    for sid in sorted(first_event, key=lambda s: (first_event[s], s)):
        key = SeriesKey.parse(sid)
        unit = spec.measure(key.measure).unit if key.measure in spec.measure_names else ""
        points = [
            report.SeriesPoint(
                timestamp=p.timestamp,
                value=p.value,
                expected=p.expected,
                lower=p.lower,
                upper=p.upper,
                score=p.score,
                anomalous=is_anomalous(p) and to_utc(p.timestamp) >= live_start,
                alerted=(sid, to_utc(p.timestamp)) in alerted,
                warming_up=p.warming_up,
                live=to_utc(p.timestamp) >= live_start,
            )
            for p in scores.get(sid, [])
            if p.value == p.value  # a missing interval has no value to draw
        ]
        panels.append(
            report.SeriesPanel(
                series_id=sid,
                title=f"{key.label} ({unit})" if unit else key.label,
                unit=unit,
                points=points,
                injected=[
                    report.InjectedWindow(lb.start, lb.end, lb.kind, lb.magnitude)
                    for lb in labels
                    if lb.series_id == sid
                ],
                interval_seconds=step,
                threshold=spec.severity_threshold,
            )
        )
    return panels


def summary_cards(
    counts: Counts, detections: Sequence[report.DetectionRow], false_alerts: int, source: str, daily: bool = False
) -> list[tuple[str, str]]:
    found = sum(1 for d in detections if d.detected_at is not None)
    delays = [d.minutes_to_detect for d in detections if d.minutes_to_detect is not None]
    median = sorted(delays)[len(delays) // 2] if delays else None
    return [
        (source, f"{counts.published:,}"),
        ("records delivered", f"{counts.s3_data_lines:,}"),
        ("records failed (error output)", f"{counts.s3_error_lines + counts.rule_errors:,}"),
        ("records lost", f"{counts.lost:,}"),
        ("intervals scored", f"{counts.intervals_scored:,}"),
        ("alerts sent", f"{counts.alerts:,}"),
        ("injected anomalies detected", f"{found} / {len(detections)}"),
        ("median time to detect", format_delay(median, daily) if median is not None else "–"),
        ("alerts outside injected windows", f"{false_alerts:,}"),
        ("commands sent to devices", f"{counts.commands:,}"),
    ]
