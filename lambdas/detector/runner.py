"""The built-in detector's run: plain functions the thin Lambda handler (``app.py``) calls.

One run, triggered by the EventBridge schedule:

1. the closed interval is ``floor(event.time - SCHEDULE_OFFSET_SECONDS) - interval`` (the event's time, never the
   wall clock, so the offline runtime drives simulated time);
2. the model state is loaded from S3; without one the detector warms up on the historical prefix first;
3. pending feedback is applied to the model;
4. folders of recently scored intervals are re-listed: objects that appeared after their interval was scored are
   LATE — counted (metric ``LateRecords``) and logged with their keys, never scored (scores are causal and an alert
   already went out; the fix is a longer ``SCHEDULE_OFFSET_SECONDS``). Lateness is decided by object key, not by
   clocks: the state remembers which keys each recent interval was scored from;
5. every interval after the last scored one (or after the ``--skip`` resume marker of ``sentinel detector
   activate``, ``sentinel_core.activation``), up to the closed one, is scored in order (at most
   ``MAX_INTERVALS_PER_RUN`` per run, the rest on the next runs; a backlog beyond ``MAX_BACKLOG`` intervals is
   skipped with a warning): EXACTLY that interval's folder is read (gzip or not, JSON lines or CSV), lines are
   validated (bad ones counted by reason), filtered by the dataset filter and aggregated, scored, grouped; groups
   are stored in DynamoDB and each configured alert (``ALERT_ROUTES``; without it the one alert: the threshold and
   ``ALERT_FILTER``) is sent once per (group, interval, alert) through the ledger (``sentinel_core.routing``);
   each interval's execution record (status, data quality counts, every series' scores: ``store.put_run``) is
   written for the console, also for intervals that failed or were skipped, and late records are added to theirs;
6. the state is saved (also every ``CHECKPOINT_EVERY`` intervals during a long catch-up), then the applied feedback
   is marked as such.

Crash safety: a run that dies after publishing but before saving the state is retried from the old state; the same
intervals give the same groups (deterministic ids) and the ledger says the alert is SENT, so nothing is sent twice.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from sentinel_core import activation, alerts, groups, layout, objects, routing, store
from sentinel_core import aggregate as agg
from sentinel_core import environment as env
from sentinel_core.detector import Detector, StateError
from sentinel_core.intervals import floor_to_interval, interval_range, interval_seconds, last_closed_interval, to_utc
from sentinel_core.model import AnomalyGroup, PointScore, SeriesKey
from sentinel_core.records import Record, parse_timestamp
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "detector"), child=True)

STATE_FORMAT = 1
MAX_INTERVALS_PER_RUN = 288  # one day of PT5M
MAX_BACKLOG = 2880  # ten such runs; older intervals are skipped (logged) rather than replayed for days
CHECKPOINT_EVERY = 48
LATE_WINDOW = 12  # recent intervals whose folders are re-listed for late objects
# What :meth:`Settings.from_env` requires (the handler adds its idempotency table).
REQUIRED_ENV = (*alerts.ALERTING_ENV, env.DATA_BUCKET)
# Without SCHEDULE_OFFSET_SECONDS an interval is read as soon as it closes (the stack always sets it).
DEFAULT_OFFSET_SECONDS = 0


@dataclass(frozen=True, kw_only=True)
class Settings(alerts.AlertSettings):
    bucket: str
    offset_seconds: int = DEFAULT_OFFSET_SECONDS
    max_intervals_per_run: int = MAX_INTERVALS_PER_RUN
    max_backlog: int = MAX_BACKLOG
    routes: tuple[routing.AlertRoute, ...] = ()  # the ``alerts`` context key; () = the one default alert

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; a :class:`~sentinel_core.environment.ConfigError` names what is missing or wrong."""
        e = env.Environment.current(environ)
        e.require(*REQUIRED_ENV)
        settings = cls.read(
            e,
            bucket=e.required(env.DATA_BUCKET),
            offset_seconds=e.integer(env.SCHEDULE_OFFSET_SECONDS, DEFAULT_OFFSET_SECONDS),
        )
        return replace(settings, routes=routing.routes_from_env(settings.spec, e))

    @property
    def step(self) -> int:
        return interval_seconds(self.spec.interval)


Clients = store.Clients


@dataclass
class RunReport:
    """What one run did; the handler turns it into metrics and returns it."""

    closed_interval: str = ""
    intervals_scored: int = 0
    first_interval: str | None = None
    last_interval: str | None = None
    backlog_left: int = 0
    skipped_intervals: int = 0
    warmup_intervals: int = 0
    warmup_records: int = 0
    series_scored: int = 0
    anomalies: int = 0
    groups: int = 0
    alerts_sent: int = 0
    alerts_already_sent: int = 0
    alerts_filtered: int = 0
    records: int = 0
    bad_records: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    late_records: int = 0
    duplicate_records: int = 0
    rewarmed: bool = False  # the saved model was of another version or time zone: warmed up again on history
    silent_series: int = 0  # series that reported regularly and went silent (DetectorConfig.silent_intervals)
    late_objects: list[str] = field(default_factory=list)
    feedback_applied: int = 0
    stopped_early: bool = False
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# Reading S3 objects
# ----------------------------------------------------------------------------------------------------------------
def closed_interval(event: dict[str, Any], settings: Settings) -> datetime:
    """The newest closed interval for a scheduled event (``time``, ISO-8601)."""
    raw = event.get("time")
    if not raw:
        raise ValueError("event has no 'time': the detector runs on EventBridge scheduled events")
    now = parse_timestamp(raw)
    return last_closed_interval(now, settings.spec.interval, settings.offset_seconds)


@dataclass
class ObjectRead:
    records: list[Record] = field(default_factory=list)
    bad: Counter[str] = field(default_factory=Counter)


def _log_bad(bad: objects.BadLines) -> None:
    for b in bad.samples:
        logger.warning("bad record", extra={"key": bad.key, "line": b.line, "reason": b.reason, "error": b.message})


def iter_records(body: objects.Readable, spec: PipelineSpec, key: str, bad: Counter[str]) -> Iterator[Record]:
    """Valid records of one object, streamed (``sentinel_core.objects``); bad lines counted in ``bad`` by reason,
    the first ``objects.MAX_SAMPLES`` of each object logged with key and line number."""
    lines = objects.BadLines(key)
    try:
        yield from objects.iter_records(objects.open_text(body), spec, lines)
    finally:
        bad.update(lines.counts)
        _log_bad(lines)


def parse_object(body: bytes, spec: PipelineSpec, key: str = "") -> ObjectRead:
    out = ObjectRead()
    out.records = list(iter_records(io.BytesIO(body), spec, key, out.bad))
    return out


def read_object(s3: S3Client, bucket: str, key: str, spec: PipelineSpec) -> ObjectRead:
    out = ObjectRead()
    out.records = list(iter_records(s3.get_object(Bucket=bucket, Key=key)["Body"], spec, key, out.bad))
    return out


# ----------------------------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class State:
    detector: Detector
    scored: dict[str, list[str]] = field(default_factory=dict)  # interval start -> keys it was scored from
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "detector": self.detector.to_state(), "scored": self.scored, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"model state format {data.get('format')!r} is not {STATE_FORMAT}")
        extra = {k: v for k, v in data.items() if k not in ("format", "detector", "scored")}
        return cls(Detector.from_state(data["detector"]), dict(data.get("scored", {})), extra)

    def remember(self, start: datetime, keys: list[str]) -> None:
        self.scored[to_utc(start).isoformat()] = keys
        for old in sorted(self.scored)[:-LATE_WINDOW]:
            del self.scored[old]


def warm_up(clients: Clients, settings: Settings, detector: Detector, report: RunReport) -> None:
    """Teach a new detector the history under the historical prefix (no groups, no alerts).

    Objects are streamed into the aggregation (records are not kept), so a large history fits in memory.
    """
    spec = settings.spec
    keys = objects.list_keys(clients.s3, settings.bucket, layout.historical_prefix(spec))
    bad: Counter[str] = Counter()

    def records() -> Iterator[Record]:
        for key in keys:
            body = clients.s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
            for rec in iter_records(body, spec, key, bad):
                report.warmup_records += 1
                yield rec

    by_interval = agg.aggregate(records(), spec)
    _add_bad(report, bad)
    if not by_interval:
        logger.info("no historical data: the detector starts cold", extra={"prefix": layout.historical_prefix(spec)})
        return
    starts = sorted(by_interval)
    zero = zero_fill_measures(spec)
    for start in interval_range(starts[0], starts[-1] + timedelta(seconds=settings.step), settings.step):
        _, invalid = detector.score_valid(start, by_interval.pop(start, {}), zero_fill=zero)
        _add_invalid(report, invalid)
        report.warmup_intervals += 1
    logger.info(
        "warmed up on history",
        extra={"objects": len(keys), "records": report.warmup_records, "intervals": report.warmup_intervals},
    )


def zero_fill_measures(spec: PipelineSpec) -> frozenset[str]:
    """SUM measures: an interval without records of a recently seen series is a 0 (an outage), not a gap."""
    return frozenset(m.name for m in spec.measures if m.aggregation == "SUM")


def _add_invalid(report: RunReport, invalid: list[SeriesKey]) -> None:
    """Aggregates the detector refused (non-finite: e.g. a SUM that overflowed) are bad records, counted."""
    if invalid:
        report.bad_records += len(invalid)
        report.bad_reasons["non_finite_aggregate"] = report.bad_reasons.get("non_finite_aggregate", 0) + len(invalid)
        logger.warning("non-finite aggregates not scored", extra={"series": [k.id for k in invalid][:20]})


def _add_bad(report: RunReport, bad: Counter[str]) -> None:
    report.bad_records += sum(bad.values())
    for reason, n in bad.items():
        report.bad_reasons[reason] = report.bad_reasons.get(reason, 0) + n


def check_late(clients: Clients, settings: Settings, state: State, report: RunReport) -> None:
    """Objects that appeared in the last ``LATE_WINDOW`` scored folders since they were scored: count and log them."""
    for iso, seen in sorted(state.scored.items()):
        folder = layout.interval_folder(datetime.fromisoformat(iso), settings.spec)
        known = set(seen)
        new = [k for k in objects.list_keys(clients.s3, settings.bucket, folder) if k not in known]
        if not new:
            continue
        n = 0
        for key in new:
            read = read_object(clients.s3, settings.bucket, key, settings.spec)
            n += len(read.records) + sum(read.bad.values())
        report.late_records += n
        report.late_objects.extend(new)
        state.scored[iso] = sorted([*seen, *new])
        store.add_late(clients.ddb, settings.table, settings.detector_id, datetime.fromisoformat(iso), n)
        logger.warning(
            "late records: objects arrived after their interval was scored; counted, not scored "
            "(raise SCHEDULE_OFFSET_SECONDS if this repeats)",
            extra={"interval": iso, "objects": new, "records": n},
        )


def _feedback_token(fb: store.Feedback) -> str:
    return f"{fb.group_id}|{fb.series_id}|{fb.created_at}|{int(fb.is_anomaly)}"


def apply_feedback(clients: Clients, settings: Settings, state: State, report: RunReport) -> list[store.Feedback]:
    """Apply pending feedback to the model; returns it, to be marked applied once the state is saved.

    The state remembers which verdicts it already contains, so a crash between the state save and the marking
    never applies a verdict twice.
    """
    pending = store.list_feedback(clients.ddb, settings.table, settings.detector_id, pending_only=True)
    done: list[str] = state.extra.setdefault("feedback_applied", [])
    for fb in pending:
        token = _feedback_token(fb)
        if token in done:
            continue
        known = [state.detector.apply_feedback(fb.series_id, ts, fb.is_anomaly) for ts in fb.timestamps]
        done.append(token)
        report.feedback_applied += 1
        logger.info(
            "feedback applied" if any(known) else "feedback for a series the model no longer knows (expired)",
            extra={"group": fb.group_id, "series": fb.series_id, "is_anomaly": fb.is_anomaly},
        )
    del done[:-500]
    return pending


def plan_intervals(last: datetime | None, closed: datetime, settings: Settings, report: RunReport) -> list[datetime]:
    """Intervals to score, oldest first: after ``last`` up to ``closed``, bounded (see the module doc)."""
    step = settings.step
    first = closed if last is None else to_utc(last) + timedelta(seconds=step)
    todo = interval_range(first, closed + timedelta(seconds=step), step)
    if len(todo) > settings.max_backlog:
        report.skipped_intervals += len(todo) - settings.max_backlog
        logger.warning(
            "backlog too long: skipping the oldest intervals",
            extra={
                "skipped": report.skipped_intervals,
                "from": todo[0].isoformat(),
                "max_backlog": settings.max_backlog,
            },
        )
        todo = todo[-settings.max_backlog :]
    if len(todo) > settings.max_intervals_per_run:
        report.backlog_left = len(todo) - settings.max_intervals_per_run
        logger.info(
            "catching up: scoring the oldest intervals now, the rest on the next runs",
            extra={"this_run": settings.max_intervals_per_run, "left": report.backlog_left},
        )
        todo = todo[: settings.max_intervals_per_run]
    return todo


# ----------------------------------------------------------------------------------------------------------------
# Alerts
# ----------------------------------------------------------------------------------------------------------------
def publish_alerts(
    clients: Clients, settings: Settings, found: Iterable[AnomalyGroup], start: datetime, report: RunReport
) -> None:
    """Each group's alert to every configured alert it qualifies for (``sentinel_core.routing``), once each."""
    ctx = settings.alert_context(settings.bucket)
    for group in found:
        out = routing.route_group(clients, settings, settings.routes, group, start, ctx)
        report.alerts_sent += len(out.sent)
        report.alerts_already_sent += len(out.already_sent)
        report.alerts_filtered += len(out.filtered)
        if out.filtered:
            logger.info("alert filtered out", extra={"group": group.group_id, "alerts": out.filtered})
        if out.already_sent:
            logger.info("alert already sent for this group and interval", extra={"group": group.group_id})
        if out.sent:
            logger.info("alert sent", extra={"group": group.group_id, "alerts": out.sent, "at": start.isoformat()})


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------
def drop_duplicates(records: list[Record]) -> list[Record]:
    """Keep the first of identical records (same timestamp, dimension values and measure values).

    IoT Core (QoS 1) and Firehose deliver at least once, so a redelivered message lands in S3 twice; counted twice it
    would double a SUM and skew an AVG. Two genuinely different readings never share all of these fields (the
    timestamp is kept to the second); producers that can send identical readings must add a dimension telling them
    apart.
    """
    seen: set[tuple[object, ...]] = set()
    out: list[Record] = []
    for r in records:
        key = (r.timestamp, r.dimensions, tuple(sorted(r.values.items())))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def score_interval(
    clients: Clients, settings: Settings, state: State, start: datetime, report: RunReport
) -> list[AnomalyGroup]:
    spec = settings.spec
    keys = objects.list_keys(clients.s3, settings.bucket, layout.interval_folder(start, spec))
    run = store.RunRecord(start)
    records: list[Record] = []
    bad: Counter[str] = Counter()
    for key in keys:
        read = read_object(clients.s3, settings.bucket, key, spec)
        records.extend(read.records)
        bad.update(read.bad)
    inside = [r for r in records if floor_to_interval(r.timestamp, settings.step) == start]
    if len(inside) != len(records):
        bad["wrong_interval"] += len(records) - len(inside)
        logger.warning(
            "records outside their folder's interval (not scored)",
            extra={"interval": start.isoformat(), "count": len(records) - len(inside)},
        )
        records = inside
    # Event-count presets (a measure defaulted per event, e.g. ecommerce views): two page views of the same page in
    # the same second are two views, not a redelivery, so nothing is dropped there.
    counts_events = any(m.default is not None for m in spec.measures)
    unique = records if counts_events else drop_duplicates(records)
    if len(unique) != len(records):
        report.duplicate_records += len(records) - len(unique)
        run.duplicates = len(records) - len(unique)
        logger.info(
            "identical records counted once (IoT QoS 1 and Firehose deliver at least once)",
            extra={"interval": start.isoformat(), "duplicates": len(records) - len(unique)},
        )
        records = unique
    _add_bad(report, bad)
    report.records += len(records)
    values = agg.aggregate(records, spec).get(start, {}) if records else {}
    result, invalid = state.detector.score_valid(start, values, zero_fill=zero_fill_measures(spec))
    _add_invalid(report, invalid)
    scores: list[PointScore] = result.points
    if result.silent:  # counted, logged and alerted as their own "silent" groups
        report.silent_series += len(result.silent)
        logger.warning(
            "series went silent",
            extra={"interval": start.isoformat(), "series": [q.series.id for q in result.silent][:20]},
        )
    found = groups.update_groups(state, scores, settings.detector_id, spec)
    found += groups.silent_groups(settings.detector_id, result.silent)
    state.remember(start, keys)
    report.intervals_scored += 1
    report.series_scored += len(scores)
    report.anomalies += sum(1 for p in scores if groups.is_anomalous(p))
    for group in found:
        store.save_group(clients.ddb, settings.table, group)
    report.groups += len(found)
    # The console's run status and data quality for this interval, and the scores it plots around a group.
    run.records, run.rejected, run.scores, run.groups = len(records), dict(bad), scores, len(found)
    run.series_seen = len(scores)  # the series scored this interval (SUM measures zero-filled included)
    run.silent = len(result.silent)  # the detector's own verdict: series that reported regularly and went silent
    run.anomalies = sum(1 for p in scores if groups.is_anomalous(p))
    store.put_run(clients.ddb, settings.table, settings.detector_id, run, groups.ANOMALY_THRESHOLD)
    publish_alerts(clients, settings, found, start, report)
    return found


def run(
    clients: Clients,
    settings: Settings,
    closed: datetime,
    time_left_ms: Callable[[], int] | None = None,
) -> RunReport:
    """Score every interval up to ``closed`` that is not scored yet; see the module doc."""
    report = RunReport(closed_interval=to_utc(closed).isoformat())
    raw = store.load_state(clients.s3, settings.bucket, settings.spec)
    loaded: State | None = None
    if raw is not None:
        try:
            loaded = State.from_json(raw)
        except StateError as exc:  # a model of another version (an upgrade): start again from the history
            logger.warning("detector state not readable by this version: re-warming", extra={"error": str(exc)})
            report.rewarmed = True
        if loaded is not None and loaded.detector.timezone.key != settings.spec.timezone:
            logger.warning(
                "time zone changed: re-warming from history",
                extra={"was": loaded.detector.timezone.key, "now": settings.spec.timezone},
            )
            loaded, report.rewarmed = None, True
    if loaded is None:
        state = State(Detector(settings.step, timezone=settings.spec.timezone))
        warm_up(clients, settings, state.detector, report)
    else:
        state = loaded
        check_late(clients, settings, state, report)
    feedback = apply_feedback(clients, settings, state, report)
    last = state.detector.last_interval
    resumed = activation.resume_after(
        last,
        activation.read_skip_before(clients.s3, settings.bucket, activation.resume_key(settings.spec)),
        settings.spec.interval,
        settings.offset_seconds,
    )
    if resumed != last and last is not None:  # activated with --skip: the paused intervals are not scored
        skipped = int((to_utc(resumed) - to_utc(last)).total_seconds()) // settings.step if resumed else 0
        report.skipped_intervals += skipped
        logger.warning("resumed with --skip: missed intervals not scored", extra={"skipped": skipped})
    todo = plan_intervals(resumed, to_utc(closed), settings, report)
    if report.skipped_intervals and todo:  # the intervals right before the first planned one were not scored
        not_scored = [todo[0] - timedelta(seconds=settings.step * k) for k in range(report.skipped_intervals, 0, -1)]
        store.put_skipped_runs(
            clients.ddb,
            settings.table,
            settings.detector_id,
            not_scored,
            f"not scored: backlog beyond {settings.max_backlog} intervals, or resumed with --skip",
        )
    for i, start in enumerate(todo, 1):
        try:
            score_interval(clients, settings, state, start, report)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:500]
            try:  # the console shows the failed interval; the retry (same interval) overwrites it
                failed = store.RunRecord(start, status=store.RUN_FAILED, failure_reason=reason)
                store.put_run(clients.ddb, settings.table, settings.detector_id, failed, groups.ANOMALY_THRESHOLD)
            except Exception:
                logger.exception("could not record the failed interval", extra={"interval": start.isoformat()})
            raise
        report.first_interval = report.first_interval or start.isoformat()
        report.last_interval = start.isoformat()
        if i % CHECKPOINT_EVERY == 0 and i < len(todo):
            store.save_state(clients.s3, settings.bucket, settings.spec, state.to_json())
        if time_left_ms is not None and time_left_ms() < 30_000 and i < len(todo):
            report.stopped_early = True
            report.backlog_left += len(todo) - i
            logger.warning(
                "stopping early to save the state before the Lambda times out", extra={"left": len(todo) - i}
            )
            break
    store.save_state(clients.s3, settings.bucket, settings.spec, state.to_json())
    applied_at = datetime.now().astimezone().isoformat(timespec="seconds")
    for fb in feedback:
        store.mark_feedback_applied(clients.ddb, settings.table, fb, applied_at)
    logger.info("run finished", extra={"report": report.to_dict()})
    return report
