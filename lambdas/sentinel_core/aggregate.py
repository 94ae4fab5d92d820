"""Records -> one value per interval and series, with the measure's aggregation (SUM or AVG).

This is what the detector scores: Lookout for Metrics aggregates the rows of one interval per combination of
dimension values the same way. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sentinel_core import filters
from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.model import SeriesKey
from sentinel_core.records import Record
from sentinel_core.spec import PipelineSpec


class Accumulator:
    """Streaming SUM/AVG per (interval start, series); ``result()`` gives the aggregated values."""

    def __init__(self, step_seconds: int, aggregations: Mapping[str, str]) -> None:
        if step_seconds <= 0:
            raise ValueError("the interval must be positive")
        for measure, how in aggregations.items():
            if how not in ("SUM", "AVG"):
                raise ValueError(f"aggregation of {measure} must be SUM or AVG, got {how!r}")
        self.step = step_seconds
        self.aggregations = dict(aggregations)
        self._sum: dict[datetime, dict[SeriesKey, list[float]]] = {}

    def add(self, ts: datetime, key: SeriesKey, value: float) -> datetime:
        """Add one value; returns the start of the interval it went to."""
        start = floor_to_interval(ts, self.step)
        cell = self._sum.setdefault(start, {}).setdefault(key, [0.0, 0.0])
        cell[0] += value
        cell[1] += 1.0
        return start

    def result(self) -> dict[datetime, dict[SeriesKey, float]]:
        out: dict[datetime, dict[SeriesKey, float]] = {}
        for start in sorted(self._sum):
            row: dict[SeriesKey, float] = {}
            for key, (total, count) in sorted(self._sum[start].items()):
                avg = self.aggregations.get(key.measure, "SUM") == "AVG"
                row[key] = total / count if avg else total
            out[start] = row
        return out


def aggregate(
    records: Iterable[Record], spec: PipelineSpec, interval: str | int | None = None
) -> dict[datetime, dict[SeriesKey, float]]:
    """Validated records -> {interval start: {SeriesKey: value}} using each measure's SUM/AVG, after the spec's
    dataset filter (``spec.dimension_filter``, see ``sentinel_core.filters``).

    ``interval`` overrides the spec's (backtests may use any ISO-8601 duration or a number of seconds).
    """
    step = (
        interval_seconds(spec.interval)
        if interval is None
        else interval
        if isinstance(interval, int)
        else interval_seconds(interval)
    )
    acc = Accumulator(step, {m.name: m.aggregation for m in spec.measures})
    # The dataset filter first: a value that is not monitored never becomes a series (live runs and backtests alike).
    for rec in filters.keep(records, spec.dimensions, spec.dimension_filter):
        dims = tuple(zip(spec.dimensions, rec.dimensions, strict=True))
        for m in spec.measures:
            if m.name in rec.values:
                acc.add(rec.timestamp, SeriesKey(m.name, dims), rec.values[m.name])
    return acc.result()
