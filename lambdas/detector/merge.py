"""The sharded detector's merge step: the shards' results of one run put together, grouped ACROSS shards, stored,
recorded for the console and alerted once (plain functions; the Lambda is ``detector_merge``).

Input: the Map's results, one per shard: ``{"shard": k, "key": <its result in S3>, ...}`` for a shard that ran, or
``{"shard": k, "failed": true, "error": ...}`` for one whose iteration failed after its retries (the state
machine's Catch). The merge:

1. reads each result (``fanout.decode``; an unreadable one counts its shard as failed) and its own small state
   (``layout.merge_state_key``: the open groups, the (interval, shard) pairs merged recently, failed alerts, the
   result keys it has read); also the results of the last ``LATE_WINDOW`` runs it never read
   (``layout.shard_results_run_prefix``): a merge that failed for good (its execution failed after the retries)
   leaves shard results whose shards' states have moved on, and the next merge puts them in;
2. publishes the alerts earlier merges failed to publish (``runner.retry_alerts``);
3. per interval, oldest first, keeps only the (interval, shard) pairs it has not merged yet (a retried merge adds
   nothing twice), then:

   * an interval after the last one merged: every shard's points together are grouped with the open groups
     (``runner.finish_interval``: ``groups.update_groups`` and ``groups.silent_groups``), the groups stored, the
     interval's run record written (``store.put_run``, with the shards that did not report named in its
     ``failure_reason``), each group's alerts sent once through the ledger;
   * an interval merged before (a shard that failed then is catching up, from its own state): its points join the
     group of their measure that covered that interval or ended right before it (else a new group of that
     interval), its silent series the silent group of that interval; its counts and scores are added to the run
     record (``store.add_to_run``); alerts go through the same ledger, so what was sent is not sent again;

4. saves its state; returns the counts (the handler emits them: ``ShardsFailed`` is alarmed).

A late shard's points never reopen a group the other shards' later intervals closed: the groups can differ from
an unfailed run's only around a failure, and no alert is sent twice (the ledger's key is the group and interval).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from sentinel_core import fanout, groups, layout, objects, store
from sentinel_core.intervals import to_utc
from sentinel_core.model import AnomalyGroup

from detector import runner

logger = Logger(service="detector_merge", child=True)

MERGE_STATE_FORMAT = 1
MERGED_KEY = "merged"  # state: interval iso -> shards merged (the last LATE_WINDOW intervals)
RECENT_KEY = "recent"  # state: groups touched in the last LATE_WINDOW intervals (id, measure, kind, start, end)
LAST_KEY = "last"  # state: the newest interval merged
READ_KEY = "read"  # state: run (closed interval iso) -> result keys read (the last LATE_WINDOW runs)
# How far back a shard may catch up and still be merged into its interval's groups: the single detector's late
# window (12 intervals: an hour at PT5M); an older interval of a late shard opens its own groups.
LATE_WINDOW = runner.LATE_WINDOW


@dataclass
class MergeState:
    """The merge's own state (the open groups live in ``extra["groups"]``, as in the model state)."""

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last(self) -> datetime | None:
        raw = self.extra.get(LAST_KEY)
        return to_utc(datetime.fromisoformat(raw)) if raw else None

    def merged(self, start: datetime) -> set[int]:
        return {int(s) for s in self.extra.get(MERGED_KEY, {}).get(to_utc(start).isoformat(), [])}

    def note_merged(self, start: datetime, shards: set[int], step: int) -> None:
        done: dict[str, list[int]] = self.extra.setdefault(MERGED_KEY, {})
        iso = to_utc(start).isoformat()
        done[iso] = sorted(set(done.get(iso, [])) | shards)
        newest = max(to_utc(datetime.fromisoformat(k)) for k in done)
        cutoff = newest - timedelta(seconds=step * LATE_WINDOW)
        for k in [k for k in done if to_utc(datetime.fromisoformat(k)) < cutoff]:
            del done[k]

    def was_read(self, closed: datetime, key: str) -> bool:
        return key in self.extra.get(READ_KEY, {}).get(to_utc(closed).isoformat(), [])

    def note_read(self, closed: datetime, keys: list[str], step: int) -> None:
        done: dict[str, list[str]] = self.extra.setdefault(READ_KEY, {})
        iso = to_utc(closed).isoformat()
        done[iso] = sorted(set(done.get(iso, [])) | set(keys))
        cutoff = to_utc(closed) - timedelta(seconds=step * LATE_WINDOW)
        for k in [k for k in done if to_utc(datetime.fromisoformat(k)) < cutoff]:
            del done[k]

    def note_groups(self, found: list[AnomalyGroup], step: int) -> None:
        recent: dict[str, dict[str, str]] = self.extra.setdefault(RECENT_KEY, {})
        for g in found:
            recent[g.group_id] = {
                "measure": g.measure,
                "kind": g.kind,
                "start": to_utc(g.start).isoformat(),
                "end": to_utc(g.end).isoformat(),
            }
        if self.last is not None:
            cutoff = self.last - timedelta(seconds=step * (LATE_WINDOW + 1))
            for gid in [gid for gid, g in recent.items() if to_utc(datetime.fromisoformat(g["end"])) < cutoff]:
                del recent[gid]

    def covering_group(self, measure: str, start: datetime, step: int) -> str | None:
        """The recent anomaly group of ``measure`` that covered ``start`` or ended right before it."""
        for gid, g in sorted(self.extra.get(RECENT_KEY, {}).items(), key=lambda x: x[1]["start"]):
            if g["measure"] != measure or g["kind"] != "anomaly":
                continue
            first = to_utc(datetime.fromisoformat(g["start"]))
            end = to_utc(datetime.fromisoformat(g["end"]))
            if first <= start <= end + timedelta(seconds=step):
                return str(gid)
        return None


def load_merge_state(clients: runner.Clients, settings: runner.Settings) -> tuple[MergeState, list[str]]:
    """The merge state; a new one when there is none, or when it is unreadable (logged; returned as a problem:
    open groups restart, the ledger still sends nothing twice)."""
    key = layout.merge_state_key(settings.spec)
    try:
        body = clients.s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
    except clients.s3.exceptions.NoSuchKey:
        return MergeState(), []
    try:
        doc = json.loads(gzip.decompress(body))
        if not isinstance(doc, dict) or doc.get("format") != MERGE_STATE_FORMAT:
            raise ValueError(f"merge state format {doc.get('format') if isinstance(doc, dict) else doc!r}")
        return MergeState(dict(doc["extra"])), []
    except Exception as exc:  # an unusable merge state must not stop the detector
        problem = f"{type(exc).__name__}: {exc}"[:300]
        logger.error("merge state unusable: starting a new one", extra={"key": key, "error": problem})
        return MergeState(), [problem]


def save_merge_state(clients: runner.Clients, settings: runner.Settings, state: MergeState) -> None:
    doc = {"format": MERGE_STATE_FORMAT, "extra": state.extra}
    body = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=1, mtime=0)
    clients.s3.put_object(Bucket=settings.bucket, Key=layout.merge_state_key(settings.spec), Body=body)


@dataclass
class MergeReport(runner.RunReport):
    """What one merge did (the run report's alert and group counts, plus the shards')."""

    shards_ok: int = 0
    shards_failed: int = 0
    failed_shards: list[int] = field(default_factory=list)
    shard_errors: list[str] = field(default_factory=list)
    intervals_merged: int = 0
    late_intervals: int = 0  # intervals a catching-up shard reported after they were merged
    earlier_results: int = 0  # results of earlier runs whose merge failed for good, merged by this one
    merge_state_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_result(clients: runner.Clients, settings: runner.Settings, key: str) -> fanout.ShardResult:
    """One shard's result file (``layout.shard_result_key``)."""
    return fanout.decode(clients.s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read())


def read_results(
    clients: runner.Clients, settings: runner.Settings, items: list[Any], report: MergeReport
) -> list[fanout.ShardResult]:
    """The shard results the Map's items point at; a failed item or an unreadable result counts its shard failed."""
    out: list[fanout.ShardResult] = []
    for item in items:
        shard = item.get("shard") if isinstance(item, dict) else None
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("failed") or not isinstance(key, str):
            error = str(item.get("error", "no result")) if isinstance(item, dict) else repr(item)[:200]
            _shard_failed(report, shard, error)
            continue
        try:
            out.append(read_result(clients, settings, key))
            report.shards_ok += 1
        except Exception as exc:  # one unreadable result fails that shard only
            _shard_failed(report, shard, f"result {key}: {type(exc).__name__}: {exc}")
    return out


def unread_earlier_results(
    clients: runner.Clients, settings: runner.Settings, state: MergeState, closed: datetime, report: MergeReport
) -> list[fanout.ShardResult]:
    """Results of the last ``LATE_WINDOW`` runs this merge never read (their merge failed for good: see the module
    doc). One listing per earlier run; a result that cannot be read is logged and left for the next merge."""
    out: list[fanout.ShardResult] = []
    for back in range(1, LATE_WINDOW + 1):
        run_closed = to_utc(closed) - timedelta(seconds=settings.step * back)
        prefix = layout.shard_results_run_prefix(settings.spec, run_closed)
        keys = [k for k in objects.list_keys(clients.s3, settings.bucket, prefix) if not state.was_read(run_closed, k)]
        read: list[str] = []
        for key in keys:
            try:
                out.append(read_result(clients, settings, key))
                read.append(key)
            except Exception as exc:  # left for the next merge; this one goes on
                logger.error(
                    "earlier shard result unreadable", extra={"key": key, "error": f"{type(exc).__name__}: {exc}"}
                )
        if read:
            report.earlier_results += len(read)
            logger.warning(
                "shard results of an earlier run that was never merged: merging them now",
                extra={"run": run_closed.isoformat(), "keys": read[: runner.MAX_LOGGED_IDS]},
            )
            state.note_read(run_closed, read, settings.step)
    return out


def _shard_failed(report: MergeReport, shard: Any, error: str) -> None:
    report.shards_failed += 1
    if isinstance(shard, int):
        report.failed_shards.append(shard)
    if len(report.shard_errors) < runner.MAX_LOGGED_IDS:
        report.shard_errors.append(f"shard {shard}: {error}"[:300])
    logger.error(
        "shard failed: merging the others; it catches up on its next run", extra={"shard": shard, "error": error}
    )


def _run_record(m: fanout.MergedInterval, reason: str = "") -> store.RunRecord:
    run = store.RunRecord(m.start, failure_reason=reason)
    run.records, run.duplicates = m.counts["records"], m.counts["duplicates"]
    run.series_seen, run.silent, run.anomalies = m.counts["series_seen"], m.counts["silent"], m.counts["anomalies"]
    run.rejected = dict(m.rejected)
    run.scores = list(m.points)
    run.scores_truncated = not m.all_scores
    return run


def _missing_reason(settings: runner.Settings, shards: set[int]) -> str:
    missing = sorted(set(range(settings.shards)) - shards)
    if not missing:
        return ""
    shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
    return f"shard(s) {shown} of {settings.shards} did not report: their series are added when they catch up"


def merge_late(
    clients: runner.Clients,
    settings: runner.Settings,
    state: MergeState,
    m: fanout.MergedInterval,
    report: MergeReport,
) -> list[AnomalyGroup]:
    """A catching-up shard's interval that was merged before (see the module doc)."""
    step, det = settings.step, settings.detector_id
    by_measure: dict[str, list[Any]] = {}
    for p in m.anomalous(groups.ANOMALY_THRESHOLD):
        by_measure.setdefault(p.series.measure, []).append(p)
    found: list[AnomalyGroup] = []
    for measure in sorted(by_measure):
        gid = state.covering_group(measure, m.start, step) or AnomalyGroup.make_id(det, measure, m.start)
        group = store.get_group(clients.ddb, settings.table, det, gid) or AnomalyGroup(
            gid, det, measure, m.start, m.start, 0.0
        )
        found.append(groups.extend_group(group, by_measure[measure]))
    for silent in groups.silent_groups(det, m.silent):
        existing = store.get_group(clients.ddb, settings.table, det, silent.group_id)
        found.append(groups.extend_group(existing, silent.points) if existing else silent)
    stored = [g for g in found if runner.save_group(clients, settings, g, report)]
    report.groups += len(stored)
    run = _run_record(m)
    run.groups = len(found)
    store.add_to_run(clients.ddb, settings.table, det, run, groups.ANOMALY_THRESHOLD)
    runner.publish_alerts(clients, settings, found, m.start, report, state)
    state.note_groups(found, step)
    return found


def run_merge(clients: runner.Clients, settings: runner.Settings, closed: datetime, items: list[Any]) -> MergeReport:
    """Merge one run of the shards (see the module doc)."""
    report = MergeReport(closed_interval=to_utc(closed).isoformat())
    state, problems = load_merge_state(clients, settings)
    report.merge_state_problems = problems
    results = unread_earlier_results(clients, settings, state, closed, report)
    results += read_results(clients, settings, items, report)
    state.note_read(
        closed, [i["key"] for i in items if isinstance(i, dict) and isinstance(i.get("key"), str)], settings.step
    )
    runner.retry_alerts(clients, settings, state, report)
    # Only what was not merged yet: a retried merge, or a shard reporting an interval twice, adds nothing twice.
    for r in results:
        r.intervals = [i for i in r.intervals if r.shard not in state.merged(i.start)]
    merged = fanout.combine(results)
    for start in sorted(merged):
        m = merged[start]
        last = state.last
        if last is None or start > last:
            scored = runner.ScoredInterval(start, _run_record(m, _missing_reason(settings, m.shards)), m.silent)
            found = runner.finish_interval(clients, settings, state, scored, report)
            state.extra[LAST_KEY] = to_utc(start).isoformat()
            state.note_groups(found, settings.step)
            report.intervals_merged += 1
        else:
            merge_late(clients, settings, state, m, report)
            report.late_intervals += 1
            logger.warning(
                "a shard caught up on an interval merged before: its points joined that interval's groups",
                extra={"interval": start.isoformat(), "shards": sorted(m.shards)},
            )
        state.note_merged(start, m.shards, settings.step)
        report.intervals_scored += 1
        report.series_scored += m.counts["series_seen"]
        report.anomalies += m.counts["anomalies"]
        report.records += m.counts["records"]
        report.silent_series += m.counts["silent"]
        report.first_interval = report.first_interval or start.isoformat()
        report.last_interval = start.isoformat()
    save_merge_state(clients, settings, state)
    logger.info("merge finished", extra={"report": report.to_dict()})
    return report
