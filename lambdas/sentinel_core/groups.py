"""Anomaly groups like Lookout for Metrics': anomalous series of one measure over consecutive intervals.

Per interval, every point scoring at least the grouping threshold joins the open group of its measure, or opens one.
A group stays open while each following interval has at least one anomalous point of that measure; the first
interval without one closes it. A group carries its points (the relevant time series), its score (the highest
severity), start/end (interval starts) and the **dimension contribution**: for each dimension, the share in % of
the group's absolute deviation from the expected value carried by each dimension value (Lookout's
``dimensionContribution``; the shares of one dimension add up to 100). Ids are stable: ``AnomalyGroup.make_id``
of (detector, measure, start), so a replay gives the same ids.

Standard library only; the open groups are plain JSON (kept in the detector Lambda's state between runs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sentinel_core.intervals import interval_seconds, to_utc
from sentinel_core.model import KIND_SILENT, AnomalyGroup, Contribution, PointScore, SilentSeries
from sentinel_core.spec import PipelineSpec

# Points at or above this severity are anomalies and form groups (Lookout lists anomalies from a low severity on;
# alerts go out at the pipeline's own, usually higher, severity_threshold).
ANOMALY_THRESHOLD = 50.0
MAX_GROUP_POINTS = 2000  # points kept per group (the newest); keeps a stored group far below DynamoDB's 400 KB
STATE_KEY = "groups"


def is_anomalous(point: PointScore, threshold: float = ANOMALY_THRESHOLD) -> bool:
    return not point.warming_up and point.score >= threshold


def contributions(points: Iterable[PointScore]) -> list[Contribution]:
    """Share (%) of the absolute deviation carried by each dimension value, per dimension; 100 % per dimension.

    Sorted by dimension, then by share (largest first). When every deviation is zero the shares are equal.
    """
    weight: dict[str, dict[str, float]] = {}
    for p in points:
        dev = abs(p.value - p.expected)
        for name, value in p.series.dimensions:
            per = weight.setdefault(name, {})
            per[value] = per.get(value, 0.0) + dev
    out: list[Contribution] = []
    for name in sorted(weight):
        per = weight[name]
        total = sum(per.values())
        shares = {v: (100.0 * w / total if total > 0 else 100.0 / len(per)) for v, w in per.items()}
        out.extend(
            Contribution(name, v, round(pct, 2)) for v, pct in sorted(shares.items(), key=lambda i: (-i[1], i[0]))
        )
    return out


def _finish(group: AnomalyGroup) -> AnomalyGroup:
    group.points.sort(key=lambda p: (to_utc(p.timestamp), p.series.id))
    del group.points[:-MAX_GROUP_POINTS]
    group.score = round(max((p.score for p in group.points), default=0.0), 2)
    group.contributions = contributions(group.points)
    return group


def extend_group(group: AnomalyGroup, points: Iterable[PointScore]) -> AnomalyGroup:
    """``group`` with more points (a point of the same series and interval replaced); score, end and
    contributions recomputed. The sharded detector's merge adds a late shard's points of an interval with it."""
    new = list(points)
    keys = {(p.series.id, to_utc(p.timestamp)) for p in new}
    group.points = [p for p in group.points if (p.series.id, to_utc(p.timestamp)) not in keys] + new
    ends = [to_utc(p.timestamp) for p in group.points]
    if ends:
        group.end = max(to_utc(group.end), *ends)
    return _finish(group)


class GroupTracker:
    """Open groups per measure, fed one interval at a time (online, like the detector)."""

    def __init__(self, detector_id: str, step_seconds: int, threshold: float = ANOMALY_THRESHOLD) -> None:
        self.detector_id = detector_id
        self.step = step_seconds
        self.threshold = threshold
        self.open: dict[str, AnomalyGroup] = {}

    def update(self, start: datetime, scores: Sequence[PointScore]) -> list[AnomalyGroup]:
        """Feed the scores of the interval starting at ``start``; return the groups with points in it (new or
        continued), sorted by measure. Groups of measures without an anomalous point here are closed."""
        start = to_utc(start)
        by_measure: dict[str, list[PointScore]] = {}
        for p in scores:
            if is_anomalous(p, self.threshold):
                by_measure.setdefault(p.series.measure, []).append(p)
        prev = start - timedelta(seconds=self.step)
        for measure in list(self.open):
            group = self.open[measure]
            if measure not in by_measure or to_utc(group.end) != prev:
                del self.open[measure]
        touched: list[AnomalyGroup] = []
        for measure in sorted(by_measure):
            current = self.open.get(measure)
            if current is None:
                current = AnomalyGroup(
                    group_id=AnomalyGroup.make_id(self.detector_id, measure, start),
                    detector_id=self.detector_id,
                    measure=measure,
                    start=start,
                    end=start,
                    score=0.0,
                )
                self.open[measure] = current
            current.end = start
            current.points.extend(by_measure[measure])
            touched.append(_finish(current))
        return touched

    def to_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "threshold": self.threshold,
            "detector_id": self.detector_id,
            "open": {m: g.to_dict() for m, g in sorted(self.open.items())},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GroupTracker:
        tracker = cls(str(state["detector_id"]), int(state["step"]), float(state.get("threshold", ANOMALY_THRESHOLD)))
        tracker.open = {m: AnomalyGroup.from_dict(g) for m, g in state.get("open", {}).items()}
        return tracker


def update_groups(state: Any, scores: Sequence[PointScore], detector_id: str, spec: PipelineSpec) -> list[AnomalyGroup]:
    """One interval of grouping for the detector Lambda; the open groups live in ``state.extra['groups']``.

    ``state`` is any object with an ``extra`` dict (the Lambda's model state) or a mutable mapping itself. The
    interval is the scores' timestamp; an interval without scores closes every open group.
    """
    store: MutableMapping[str, Any] = state.extra if hasattr(state, "extra") else state
    step = interval_seconds(spec.interval)
    raw = store.get(STATE_KEY)
    tracker = (
        GroupTracker.from_state(raw)
        if raw and raw.get("detector_id") == detector_id and int(raw.get("step", 0)) == step
        else GroupTracker(detector_id, step)
    )
    if scores:
        found = tracker.update(scores[0].timestamp, scores)
    else:
        tracker.open.clear()
        found = []
    store[STATE_KEY] = tracker.to_state()
    return found


def silent_groups(detector_id: str, silent: Sequence[SilentSeries]) -> list[AnomalyGroup]:
    """One ``kind="silent"`` group per measure of the series found silent in one interval (the detector reports a
    silence once, so such a group never continues). Its id is made from ``"<measure> silent"``: it never collides
    with the value-anomaly group of the same measure and interval, and a replay gives the same id. Each point holds
    the series' expected value (value, band) and the silence's severity: there is no reading to show."""
    by_measure: dict[str, list[SilentSeries]] = {}
    for q in silent:
        by_measure.setdefault(q.series.measure, []).append(q)
    out: list[AnomalyGroup] = []
    for measure in sorted(by_measure):
        items = by_measure[measure]
        start = to_utc(items[0].timestamp)
        points = [
            PointScore(q.series, to_utc(q.timestamp), q.expected, q.expected, q.expected, q.expected, q.score)
            for q in items
        ]
        group = AnomalyGroup(
            group_id=AnomalyGroup.make_id(detector_id, f"{measure} silent", start),
            detector_id=detector_id,
            measure=measure,
            start=start,
            end=start,
            score=0.0,
            points=points,
            kind=KIND_SILENT,
        )
        out.append(_finish(group))
    return out


def build_groups(
    scores_by_interval: Mapping[datetime, Sequence[PointScore]],
    detector_id: str,
    step_seconds: int,
    threshold: float = ANOMALY_THRESHOLD,
    silent_by_interval: Mapping[datetime, Sequence[SilentSeries]] | None = None,
) -> list[AnomalyGroup]:
    """Every group of a whole run (backtests): intervals in time order; missing intervals close groups. The series
    found silent (``silent_by_interval``) form their own ``silent`` groups."""
    tracker = GroupTracker(detector_id, step_seconds, threshold)
    seen: dict[str, AnomalyGroup] = {}
    for start in sorted(scores_by_interval):
        for g in tracker.update(start, scores_by_interval[start]):
            seen[g.group_id] = g
    for start in sorted(silent_by_interval or {}):
        for g in silent_groups(detector_id, (silent_by_interval or {})[start]):
            seen[g.group_id] = g
    return sorted(seen.values(), key=lambda g: (to_utc(g.start), g.measure, g.group_id))
