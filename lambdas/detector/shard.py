"""One shard of the sharded detector (``detector_shards`` > 1): the single detector's run (``detector.runner``) on
one shard's folders and state, handing its scored intervals to the merge instead of grouping and alerting.

What the shard does is ``runner.run`` with ``settings.for_shard(k)``: it reads only ``<interval folder>/shard=k/``
(``layout.shard_folder``) and its own state (``layout.state_key(spec, k)``), warms up on the history's records of
its own series, applies the feedback on its own series (and marks it applied), applies the caps
(``max_series`` / ``max_new_series``) to itself, and checks its own folders for late objects. Each interval it
scores becomes a ``fanout.ShardInterval``; the run's intervals are written as one ``fanout.ShardResult`` to
``layout.shard_result_key`` BEFORE the state is saved, so a shard that dies in between hands the same intervals
over again on its retry. A shard that failed (its Map iteration retried, then caught) has not moved its state: its
next run scores every interval it missed, from its own state, and the merge adds them (``detector.merge``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sentinel_core import fanout, groups, layout

from detector import runner


@dataclass(frozen=True)
class ShardRun:
    """What the shard returns to the state machine (small: the results themselves are in S3)."""

    shard: int
    key: str
    intervals: int
    report: runner.RunReport

    def to_payload(self) -> dict[str, Any]:
        return {"shard": self.shard, "key": self.key, "intervals": self.intervals}


def shard_of_event(event: dict[str, Any], shards: int) -> int:
    """The shard a Map iteration scores (``event["shard"]``, an integer in 0 .. shards-1)."""
    raw = event.get("shard")
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"the shard event needs an integer 'shard', got {raw!r}")
    if not 0 <= raw < shards:
        raise ValueError(f"shard {raw} is not one of the detector's {shards} shards")
    return raw


def run_shard(
    clients: runner.Clients,
    settings: runner.Settings,
    closed: datetime,
    time_left_ms: Any = None,
    wall_now: datetime | None = None,
) -> ShardRun:
    """Score shard ``settings.shard`` up to ``closed`` and write its results (see the module doc)."""
    if settings.shard is None:
        raise ValueError("run_shard needs settings scoped to a shard (Settings.for_shard)")
    shard = settings.shard
    result = fanout.ShardResult(shard, closed)
    key = layout.shard_result_key(settings.spec, closed, shard)

    def keep(scored: runner.ScoredInterval) -> None:
        run = scored.run
        counts = {k: int(v) for k, v in run.counts().items() if k in fanout.COUNT_FIELDS}
        result.intervals.append(
            fanout.shard_interval(
                scored.start, counts, run.rejected, run.scores, scored.silent, groups.ANOMALY_THRESHOLD
            )
        )

    def write() -> None:
        clients.s3.put_object(
            Bucket=settings.bucket, Key=key, Body=fanout.encode(result), ContentType="application/gzip"
        )

    report = runner.run(clients, settings, closed, time_left_ms, wall_now, on_scored=keep, before_save=write)
    return ShardRun(shard, key, len(result.intervals), report)
