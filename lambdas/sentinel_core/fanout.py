"""The sharded detector's hand-off: what one shard reports for each interval it scored, and how the merge puts
the shards' reports of one interval back together (plain functions; the Lambdas are ``detector_shard`` and
``detector_merge``, the plumbing ``detector.shard`` / ``detector.merge``).

A shard scores only its own series (``layout.shard_folder``, ``layout.state_key(spec, shard)``), so it cannot group:
an anomaly group is one measure across ALL series. It writes, per interval, the points the merge needs to group
(every point at or above ``groups.ANOMALY_THRESHOLD``), the series found silent, and the console's counts; and every
series' score too while the shard has at most ``store.MAX_RUN_SERIES`` of them (the console plots around a group;
above that the single detector keeps only the anomalous scores as well, see ``store.put_run``). The file is gzip-1
JSON under ``layout.shard_result_key`` (a shard of 50,000 series can have far more anomalous points than Step
Functions' 256 KB payload holds): the state machine passes only its key.

Grouping the merged points of an interval with ``groups.update_groups`` gives exactly the groups of grouping every
series at once: grouping looks at the anomalous points of one interval per measure, in series order, and the merge
sorts the union by series id (``tests/unit/test_fanout.py`` proves it as a property).

Standard library only.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sentinel_core import groups, store
from sentinel_core.intervals import to_utc
from sentinel_core.model import PointScore, SeriesKey, SilentSeries

RESULT_FORMAT = 1
COMPRESS_LEVEL = 1  # written and read once: speed over size (as the state file)
COUNT_FIELDS = ("records", "duplicates", "series_seen", "silent", "anomalies")
# A shard's own scores are all kept while it has at most as many series as one run record holds: the merged run
# record then holds them all when the whole detector has at most as many (as the single detector's).
MAX_SCORES = store.MAX_RUN_SERIES


class ResultError(ValueError):
    """A shard result that is not one of this format (the merge counts the shard as failed)."""


@dataclass
class ShardInterval:
    """One interval as one shard scored it."""

    start: datetime
    counts: dict[str, int] = field(default_factory=dict)  # COUNT_FIELDS
    rejected: dict[str, int] = field(default_factory=dict)  # bad lines by reason
    points: list[PointScore] = field(default_factory=list)  # anomalous points, or every point (``all_scores``)
    all_scores: bool = True
    silent: list[SilentSeries] = field(default_factory=list)


@dataclass
class ShardResult:
    """What one shard's run reports: the intervals it scored (usually one; more while it catches up)."""

    shard: int
    closed: datetime
    intervals: list[ShardInterval] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def is_anomalous(p: PointScore, threshold: float) -> bool:
    return not p.warming_up and p.score >= threshold


def shard_interval(
    start: datetime,
    counts: Mapping[str, int],
    rejected: Mapping[str, int],
    scores: Sequence[PointScore],
    silent: Sequence[SilentSeries],
    threshold: float,
    max_scores: int = MAX_SCORES,
) -> ShardInterval:
    """The hand-off of one scored interval: every score while there are at most ``max_scores``, else the
    anomalous ones only (the only ones grouping reads), and of those per measure only the last
    ``groups.MAX_GROUP_POINTS`` in series-id order: a group keeps its newest points in (interval, series id)
    order, at most that many, so the union of every shard's last ones holds every point any group keeps. The
    merge's work is then bounded by shards x measures x MAX_GROUP_POINTS, whatever the share of anomalous series."""
    keep_all = len(scores) <= max_scores
    if keep_all:
        points = list(scores)
    else:
        by_measure: dict[str, list[PointScore]] = {}
        for p in scores:
            if is_anomalous(p, threshold):
                by_measure.setdefault(p.series.measure, []).append(p)
        points = []
        for measure in sorted(by_measure):
            mine = sorted(by_measure[measure], key=lambda p: p.series.id)
            points += mine[-groups.MAX_GROUP_POINTS :]
    return ShardInterval(
        to_utc(start),
        {k: int(counts.get(k, 0)) for k in COUNT_FIELDS},
        dict(rejected),
        points,
        keep_all,
        list(silent),
    )


# ----------------------------------------------------------------------------------------------------------------
# The file
# ----------------------------------------------------------------------------------------------------------------
def _point(p: PointScore) -> list[Any]:
    return [p.series.id, p.value, p.expected, p.lower, p.upper, p.score, p.warming_up]


def _silent(q: SilentSeries) -> list[Any]:
    return [q.series.id, q.last_seen.isoformat(), q.intervals, q.expected, q.score]


def encode(result: ShardResult) -> bytes:
    """gzip-1 JSON (floats as Python writes them: every value survives the round trip exactly, NaN included)."""
    doc = {
        "format": RESULT_FORMAT,
        "shard": result.shard,
        "closed": to_utc(result.closed).isoformat(),
        "report": result.report,
        "intervals": [
            {
                "start": i.start.isoformat(),
                "counts": i.counts,
                "rejected": i.rejected,
                "all_scores": i.all_scores,
                "points": [_point(p) for p in i.points],
                "silent": [_silent(q) for q in i.silent],
            }
            for i in result.intervals
        ],
    }
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=COMPRESS_LEVEL, mtime=0)


def decode(data: bytes) -> ShardResult:
    """A shard result written by :func:`encode`; :class:`ResultError` on anything else."""
    try:
        doc = json.loads(gzip.decompress(data))
        if doc.get("format") != RESULT_FORMAT:
            raise ResultError(f"shard result format {doc.get('format')!r} is not {RESULT_FORMAT}")
        intervals = []
        for raw in doc["intervals"]:
            start = to_utc(datetime.fromisoformat(raw["start"]))
            points = [
                PointScore(SeriesKey.parse(r[0]), start, float(r[1]), float(r[2]), float(r[3]), float(r[4]),
                           float(r[5]), bool(r[6]))
                for r in raw["points"]
            ]  # fmt: skip
            silent = [
                SilentSeries(SeriesKey.parse(r[0]), start, to_utc(datetime.fromisoformat(r[1])), int(r[2]),
                             float(r[3]), float(r[4]))
                for r in raw["silent"]
            ]  # fmt: skip
            intervals.append(
                ShardInterval(
                    start,
                    {k: int(raw["counts"].get(k, 0)) for k in COUNT_FIELDS},
                    {str(k): int(v) for k, v in raw["rejected"].items()},
                    points,
                    bool(raw["all_scores"]),
                    silent,
                )
            )
        return ShardResult(int(doc["shard"]), to_utc(datetime.fromisoformat(doc["closed"])), intervals, doc["report"])
    except ResultError:
        raise
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ResultError(f"unreadable shard result: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------------------------------------------------------
# Merging
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class MergedInterval:
    """One interval over every shard that reported it."""

    start: datetime
    shards: set[int] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_FIELDS, 0))
    rejected: dict[str, int] = field(default_factory=dict)
    points: list[PointScore] = field(default_factory=list)  # sorted by series id
    all_scores: bool = True
    silent: list[SilentSeries] = field(default_factory=list)  # sorted by series id

    def anomalous(self, threshold: float) -> list[PointScore]:
        return [p for p in self.points if is_anomalous(p, threshold)]


def combine(results: Iterable[ShardResult]) -> dict[datetime, MergedInterval]:
    """The shards' intervals merged per interval start (a shard reporting an interval twice counts once: the
    later report wins, as a retried run's would)."""
    seen: dict[tuple[datetime, int], ShardInterval] = {}
    for r in results:
        for i in r.intervals:
            seen[(i.start, r.shard)] = i
    out: dict[datetime, MergedInterval] = {}
    for (start, shard), i in sorted(seen.items(), key=lambda x: (x[0][0], x[0][1])):
        m = out.setdefault(start, MergedInterval(start))
        m.shards.add(shard)
        for k in COUNT_FIELDS:
            m.counts[k] += i.counts.get(k, 0)
        for reason, n in i.rejected.items():
            m.rejected[reason] = m.rejected.get(reason, 0) + n
        m.points.extend(i.points)
        m.all_scores = m.all_scores and i.all_scores
        m.silent.extend(i.silent)
    for m in out.values():
        m.points.sort(key=lambda p: p.series.id)
        m.silent.sort(key=lambda q: q.series.id)
        if m.all_scores and len(m.points) > MAX_SCORES:
            m.all_scores = False  # the run record keeps the anomalous ones (store.put_run), as unsharded
    return out
