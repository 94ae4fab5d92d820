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

One bad thing fails only itself (nothing an input does can stall the detector):

* a publish that fails fails THAT alert (``alerts_failed``, metric ``AlertsFailed``): its ledger claim stays
  PENDING and it is kept in the state, so the next runs publish it again (at most ``ALERT_RETRY_RUNS`` times);
  the run goes on, other alerts go out, the state is saved;
* an object whose reading raises, a group that cannot be stored, a series whose scoring raises are quarantined:
  counted (``objects_quarantined`` / ``groups_failed`` / ``series_quarantined``), logged with the key or id, and
  the interval completes without them;
* cardinality is bounded: at most ``max_series`` series in the model and ``max_new_series`` started per interval
  (the excess is ``series_refused``, never scored, never in memory between runs);
* time is bounded: an event more than ``FUTURE_TOLERANCE_SECONDS`` ahead of the wall clock is refused (a console
  test event dated next month must not expire every series), and nothing is planned past the wall clock;
* an unreadable or implausible state falls back to the previous versions of the state object, else the detector
  re-warms from history (``state_recovered``).
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger
from sentinel_core import activation, alerts, capacity, filters, groups, layout, objects, routing, state_file, store
from sentinel_core import aggregate as agg
from sentinel_core import environment as env
from sentinel_core.detector import Detector
from sentinel_core.intervals import floor_to_interval, interval_range, interval_seconds, last_closed_interval, to_utc
from sentinel_core.model import AnomalyGroup, PointScore, SeriesKey, SilentSeries
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
# Caps on the series (13.4): the defaults and their reasons are in ``sentinel_core.capacity``.
DEFAULT_MAX_SERIES = capacity.DEFAULT_MAX_SERIES
DEFAULT_MAX_NEW_SERIES = capacity.DEFAULT_MAX_NEW_SERIES
# An EventBridge scheduled event carries the time it fired, seconds from the wall clock (retries keep the original,
# older time). Ten minutes covers clock skew and slow invocations; anything further ahead is a hand-made event.
FUTURE_TOLERANCE_SECONDS = 600
ALERT_RETRY_RUNS = 12  # a failed alert is published again on this many following runs (an hour at PT5M)
MAX_ALERT_RETRIES = 100  # failed alerts kept for a retry at once (the oldest are given up first, logged)
MAX_LOGGED_IDS = 20  # quarantined / refused ids listed in one log line and in the report (all are counted)


@dataclass(frozen=True, kw_only=True)
class Settings(alerts.AlertSettings):
    bucket: str
    offset_seconds: int = DEFAULT_OFFSET_SECONDS
    max_intervals_per_run: int = MAX_INTERVALS_PER_RUN
    max_backlog: int = MAX_BACKLOG
    max_series: int = DEFAULT_MAX_SERIES
    max_new_series: int = DEFAULT_MAX_NEW_SERIES
    routes: tuple[routing.AlertRoute, ...] = ()  # the ``alerts`` context key; () = the one default alert
    # The sharded detector (``detector.shard``): this run scores shard ``shard`` of ``shards`` only (its folder,
    # its state, its share of feedback and history). None: the single detector, today's layout.
    shard: int | None = None
    shards: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; a :class:`~sentinel_core.environment.ConfigError` names what is missing or wrong."""
        e = env.Environment.current(environ)
        e.require(*REQUIRED_ENV)
        max_series = e.integer(env.MAX_SERIES, DEFAULT_MAX_SERIES)
        max_new = e.integer(env.MAX_NEW_SERIES, DEFAULT_MAX_NEW_SERIES)
        for name, value in ((env.MAX_SERIES, max_series), (env.MAX_NEW_SERIES, max_new)):
            if value < 1:
                raise env.ConfigError(f"{name} must be at least 1, got {value}")
        shards = e.integer(env.DETECTOR_SHARDS, 1)
        if shards < 1:
            raise env.ConfigError(f"{env.DETECTOR_SHARDS} must be at least 1, got {shards}")
        settings = cls.read(
            e,
            bucket=e.required(env.DATA_BUCKET),
            offset_seconds=e.integer(env.SCHEDULE_OFFSET_SECONDS, DEFAULT_OFFSET_SECONDS),
            max_series=max_series,
            max_new_series=max_new,
            shards=shards,
        )
        return replace(settings, routes=routing.routes_from_env(settings.spec, e))

    @property
    def step(self) -> int:
        return interval_seconds(self.spec.interval)

    def for_shard(self, shard: int) -> Settings:
        """These settings scoped to one shard (the caps apply to it alone)."""
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} is not one of the detector's {self.shards} shards")
        return replace(self, shard=shard)

    def owns(self, dimension_values: Iterable[str]) -> bool:
        """Whether this run scores the series of these dimension values (always, unsharded)."""
        return self.shard is None or state_file.shard_of(dimension_values, self.shards) == self.shard


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
    alerts_failed: int = 0  # publishes that raised: kept for the next runs (ledger claim PENDING)
    alerts_retried: int = 0  # earlier failed alerts published by this run
    alerts_given_up: int = 0  # failed alerts dropped after ALERT_RETRY_RUNS runs (logged with their group)
    groups_failed: int = 0
    objects_quarantined: int = 0
    quarantined_objects: list[str] = field(default_factory=list)
    series_quarantined: int = 0
    quarantined_series: list[str] = field(default_factory=list)
    series_refused: int = 0  # values of series beyond max_series / max_new_series (never scored)
    refused_series: list[str] = field(default_factory=list)
    state_recovered: bool = False  # the saved state was unusable: an older version was used, or history re-warmed
    state_version: str | None = None  # the older version used
    state_problems: list[str] = field(default_factory=list)
    state_bytes: int = 0  # size of the state file saved
    future_event: bool = False  # the event was too far ahead of the wall clock: refused, nothing done
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
def event_time(event: dict[str, Any]) -> datetime:
    raw = event.get("time")
    if not raw:
        raise ValueError("event has no 'time': the detector runs on EventBridge scheduled events")
    return parse_timestamp(raw)


def closed_interval(event: dict[str, Any], settings: Settings) -> datetime:
    """The newest closed interval for a scheduled event (``time``, ISO-8601)."""
    return last_closed_interval(event_time(event), settings.spec.interval, settings.offset_seconds)


def too_far_ahead(event: dict[str, Any], wall_now: datetime) -> bool:
    """The event's time is more than ``FUTURE_TOLERANCE_SECONDS`` after the wall clock (refuse the run)."""
    return (event_time(event) - to_utc(wall_now)).total_seconds() > FUTURE_TOLERANCE_SECONDS


def refused_report(event: dict[str, Any], wall_now: datetime) -> RunReport:
    """What a refused future event reports (the handler alarms on ``future_event``); nothing is read or moved."""
    logger.error(
        "event time is ahead of the wall clock: refused (nothing scored, the state is not moved)",
        extra={"event_time": event.get("time"), "wall_clock": to_utc(wall_now).isoformat()},
    )
    return RunReport(future_event=True)


class HasExtra(Protocol):
    """What keeps the open groups and the failed alerts between runs: the model state, or the merge's state."""

    extra: dict[str, Any]


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


def _note(ids: list[str], new: str) -> None:
    if len(ids) < MAX_LOGGED_IDS:
        ids.append(new)


def quarantine_object(report: RunReport, key: str, exc: Exception) -> None:
    report.objects_quarantined += 1
    _note(report.quarantined_objects, key)
    logger.error(
        "object quarantined: reading it raised; the interval completes without it",
        extra={"key": key, "error": f"{type(exc).__name__}: {exc}"},
    )


def read_or_quarantine(clients: Clients, settings: Settings, key: str, report: RunReport) -> ObjectRead:
    """:func:`read_object`, or nothing (quarantined, see the module doc) when reading raises."""
    try:
        return read_object(clients.s3, settings.bucket, key, settings.spec)
    except Exception as exc:  # one object must not stop the interval
        quarantine_object(report, key, exc)
        return ObjectRead()


# ----------------------------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class State:
    detector: Detector
    scored: dict[str, list[str]] = field(default_factory=dict)  # interval start -> keys it was scored from
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        """The run state without the series (the state file's header)."""
        return {
            "format": STATE_FORMAT,
            "detector": self.detector.to_state_header(),
            "scored": self.scored,
            **self.extra,
        }

    def records(self) -> Iterator[tuple[str, bytes]]:
        """The series' records (the model's own per-series bytes), one at a time."""
        return self.detector.iter_series_bytes()

    @classmethod
    def from_parts(cls, header: dict[str, Any], series: Iterator[tuple[str, bytes]]) -> State:
        if header.get("format") != STATE_FORMAT:
            raise ValueError(f"model state format {header.get('format')!r} is not {STATE_FORMAT}")
        extra = {k: v for k, v in header.items() if k not in ("format", "detector", "scored")}
        detector = Detector.from_state({**header["detector"], "series": {}})
        for sid, data in series:
            detector.load_series(sid, data)
        return cls(detector, dict(header.get("scored", {})), extra)

    @classmethod
    def read(cls, body: objects.Readable) -> State:
        """A saved state object, streamed (either encoding, see ``store.read_state``)."""
        return cls.from_parts(*store.read_state(body))

    def save(self, clients: Clients, settings: Settings) -> int:
        """Write the state file; returns its size in bytes."""
        return store.save_state(
            clients.s3, settings.bucket, settings.spec, self.header(), self.records(), shard=settings.shard
        )

    def check(self, settings: Settings, wall_now: datetime) -> State:
        """Raise ValueError when this state cannot be the detector's (see :func:`load_state`)."""
        if self.detector.interval_seconds != settings.step:
            raise ValueError(f"state interval {self.detector.interval_seconds}s is not the spec's {settings.step}s")
        last = self.detector.last_interval
        if last is not None and (last - to_utc(wall_now)).total_seconds() > FUTURE_TOLERANCE_SECONDS:
            raise ValueError(f"state's last interval {last.isoformat()} is after the wall clock")
        # The model keeps its last interval twice (number and start): damaged apart, every later interval would
        # be refused as "not after the last one" and the detector would stall.
        index = self.detector.to_state_header()["last"]
        if (index is None) != (last is None) or (last is not None and self.detector._index(last) != index):
            raise ValueError(f"state's last interval {index!r} does not match its start {last!r}")
        if not isinstance(self.scored, dict) or not all(isinstance(v, list) for v in self.scored.values()):
            raise ValueError("state 'scored' is not a map of interval -> keys")
        return self

    def remember(self, start: datetime, keys: list[str]) -> None:
        self.scored[to_utc(start).isoformat()] = keys
        for old in sorted(self.scored)[:-LATE_WINDOW]:
            del self.scored[old]


def load_state(clients: Clients, settings: Settings, wall_now: datetime, report: RunReport) -> State | None:
    """The saved state, or an older version of it when it is unreadable or implausible (its interval is not the
    spec's, its last interval is after the wall clock, a part does not parse); None when there is none usable
    (the caller warms up from history). A recovery is logged and reported (metric ``StateRecovered``)."""
    found = store.recover_state(
        clients.s3,
        settings.bucket,
        settings.spec,
        lambda body: State.read(body).check(settings, wall_now),
        shard=settings.shard,
    )
    if found.recovered:
        report.state_recovered = True
        report.rewarmed = found.state is None  # e.g. a model of another version (an upgrade): warmed up again
        report.state_version = found.version_id
        report.state_problems = found.problems[:MAX_LOGGED_IDS]
        logger.error(
            "model state unusable: "
            + ("continuing from an older version" if found.state is not None else "re-warming from history"),
            extra={"version": found.version_id, "problems": found.problems[:MAX_LOGGED_IDS]},
        )
    return found.state


def warm_up(clients: Clients, settings: Settings, detector: Detector, report: RunReport) -> None:
    """Teach a new detector the history under the historical prefix (no groups, no alerts).

    Objects are streamed into the aggregation (records are not kept), so a large history fits in memory.
    """
    spec = settings.spec
    keys = objects.list_keys(clients.s3, settings.bucket, layout.historical_prefix(spec))
    bad: Counter[str] = Counter()

    def records() -> Iterator[Record]:
        for key in keys:
            try:
                body = clients.s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
                for rec in iter_records(body, spec, key, bad):
                    if settings.shard is not None and not settings.owns(rec.dimensions):
                        continue  # another shard's series: the history is one prefix for all shards
                    report.warmup_records += 1
                    yield rec
            except Exception as exc:  # the records read so far are kept, the object quarantined
                quarantine_object(report, key, exc)

    by_interval = agg.aggregate(records(), spec)
    _add_bad(report, bad)
    if not by_interval:
        logger.info("no historical data: the detector starts cold", extra={"prefix": layout.historical_prefix(spec)})
        return
    starts = sorted(by_interval)
    admitted: set[SeriesKey] = set()
    zero = zero_fill_measures(spec)
    for start in interval_range(starts[0], starts[-1] + timedelta(seconds=settings.step), settings.step):
        values = admit_history(by_interval.pop(start, {}), admitted, settings, report)
        _, invalid = detector.score_valid(start, values, zero_fill=zero, on_error=_quarantine(report))
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
        folder = layout.records_folder(datetime.fromisoformat(iso), settings.spec, settings.shard)
        known = set(seen)
        new = [k for k in objects.list_keys(clients.s3, settings.bucket, folder) if k not in known]
        if not new:
            continue
        n = 0
        for key in new:
            read = read_or_quarantine(clients, settings, key, report)
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


def _dimension_values(series_id: str) -> list[str]:
    """The dimension values of a series id (``CO|LOCATION_ID=B-101`` -> ``["B-101"]``), in the spec's order; an
    unreadable id has none (one shard owns it: it logs it as unknown and marks it applied, once)."""
    try:
        return [v for _, v in SeriesKey.parse(series_id).dimensions]
    except ValueError:
        return []


def apply_feedback(clients: Clients, settings: Settings, state: State, report: RunReport) -> list[store.Feedback]:
    """Apply pending feedback to the model; returns it, to be marked applied once the state is saved.

    The state remembers which verdicts it already contains, so a crash between the state save and the marking
    never applies a verdict twice.
    """
    pending = store.list_feedback(clients.ddb, settings.table, settings.detector_id, pending_only=True)
    done: list[str] = state.extra.setdefault("feedback_applied", [])
    if settings.shard is not None:  # each verdict is applied, and marked applied, by the shard owning its series
        pending = [fb for fb in pending if settings.owns(_dimension_values(fb.series_id))]
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


def plan_intervals(
    last: datetime | None,
    closed: datetime,
    settings: Settings,
    report: RunReport,
    wall_now: datetime | None = None,
) -> list[datetime]:
    """Intervals to score, oldest first: after ``last`` up to ``closed``, bounded (see the module doc); never an
    interval that has not closed by the wall clock ``wall_now``."""
    step = settings.step
    if wall_now is not None:
        closed = min(closed, last_closed_interval(to_utc(wall_now), settings.spec.interval, settings.offset_seconds))
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
RETRY_KEY = "alert_retries"  # state.extra: failed alerts [{"group": group dict, "interval": iso, "runs": n}]


def route_alert(clients: Clients, settings: Settings, group: AnomalyGroup, start: datetime, report: RunReport) -> bool:
    """Send one group's alerts (every route it qualifies for, once each through the ledger); False when sending
    raised. The failure is logged and counted (``alerts_failed``); the ledger claim of the route that failed stays
    PENDING and routes already sent are SENT, so a later attempt (:func:`retry_alerts`) sends only what is missing.
    """
    try:
        out = routing.route_group(
            clients, settings, settings.routes, group, start, settings.alert_context(settings.bucket)
        )
    except Exception as exc:  # one alert must not stop the others nor the state save
        report.alerts_failed += 1
        logger.error(
            "alert failed: kept for the next runs",
            extra={
                "group": group.group_id,
                "interval": to_utc(start).isoformat(),
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        return False
    report.alerts_sent += len(out.sent)
    report.alerts_already_sent += len(out.already_sent)
    report.alerts_filtered += len(out.filtered)
    if out.filtered:
        logger.info("alert filtered out", extra={"group": group.group_id, "alerts": out.filtered})
    if out.already_sent:
        logger.info("alert already sent for this group and interval", extra={"group": group.group_id})
    if out.sent:
        logger.info("alert sent", extra={"group": group.group_id, "alerts": out.sent, "at": start.isoformat()})
    return True


def _keep_for_retry(state: HasExtra, shown: AnomalyGroup, start: datetime, runs: int = 0) -> None:
    pending: list[dict[str, Any]] = state.extra.setdefault(RETRY_KEY, [])
    pending.append({"group": shown.to_dict(), "interval": to_utc(start).isoformat(), "runs": runs})
    for dropped in pending[:-MAX_ALERT_RETRIES]:
        logger.error("too many failed alerts kept: the oldest is given up", extra={"group": dropped["group"]})
    del pending[:-MAX_ALERT_RETRIES]


def retry_alerts(clients: Clients, settings: Settings, state: HasExtra, report: RunReport) -> None:
    """Publish the alerts earlier runs failed to publish (once each through the ledger), before this run's."""
    pending: list[dict[str, Any]] = state.extra.pop(RETRY_KEY, [])
    for item in pending:
        try:
            group = AnomalyGroup.from_dict(item["group"])
            start = datetime.fromisoformat(str(item["interval"]))
            runs = int(item.get("runs", 0)) + 1
        except (KeyError, TypeError, ValueError) as exc:
            logger.error(
                "unreadable failed alert in the state: dropped", extra={"item": str(item)[:300], "error": str(exc)}
            )
            continue
        if route_alert(clients, settings, group, start, report):
            report.alerts_retried += 1
        elif runs >= ALERT_RETRY_RUNS:
            report.alerts_given_up += 1
            logger.error(
                "alert given up after failing on every retry",
                extra={"group": group.group_id, "interval": start.isoformat(), "runs": runs},
            )
        else:
            _keep_for_retry(state, group, start, runs)


def publish_alerts(
    clients: Clients,
    settings: Settings,
    found: Iterable[AnomalyGroup],
    start: datetime,
    report: RunReport,
    state: HasExtra | None = None,
) -> None:
    """Each group's alert to every configured alert it qualifies for (``sentinel_core.routing``), once each; a
    group whose sending raises is kept in ``state`` for the next runs (see :func:`route_alert`)."""
    for group in found:
        if not route_alert(clients, settings, group, start, report) and state is not None:
            _keep_for_retry(state, group, start)


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------
def interval_records(
    clients: Clients, settings: Settings, keys: Iterable[str], bad: Counter[str], report: RunReport
) -> Iterator[Record]:
    """The valid records of the interval's objects, streamed in key order (nothing is held per record). An object
    whose reading raises is quarantined (see the module doc); the records it gave before the error are kept."""
    for key in keys:
        try:
            body = clients.s3.get_object(Bucket=settings.bucket, Key=key)["Body"]
            yield from iter_records(body, settings.spec, key, bad)
        except Exception as exc:  # one object must not stop the interval
            quarantine_object(report, key, exc)


class _Cell:
    """One admitted series' running aggregate (its key built once, when the series is first seen)."""

    __slots__ = ("count", "key", "total")

    def __init__(self, key: SeriesKey) -> None:
        self.key = key
        self.total = 0.0
        self.count = 0.0


@dataclass
class IntervalValues:
    """One interval aggregated (SUM / AVG per series) with the admission of new series done while streaming, so
    memory holds the admitted series only, whatever the number of invented ones (13.4).

    Cells are found by the record's dimension values, then by measure (plain tuples and strings: their hashes are
    C-level); a ``SeriesKey`` and its id are built once per series, not once per record and measure."""

    start: datetime
    step: int
    aggregations: dict[str, str]
    dimensions: tuple[str, ...]
    detector: Detector
    room: int  # new series this interval may still start
    dedupe: bool
    cells: dict[tuple[str, ...], dict[str, _Cell]] = field(default_factory=dict)  # dimension values -> measure ->
    seen: set[int] = field(default_factory=set)  # hashes of the records kept (duplicates dropped)
    refused: set[int] = field(default_factory=set)  # hashes of the refused series (counted once each)
    refused_sample: list[str] = field(default_factory=list)
    records: int = 0
    wrong_interval: int = 0
    duplicates: int = 0
    # The last timestamp checked against the interval and its verdict: records come in runs of one timestamp
    # (parse_timestamp hands out one datetime per distinct text), one floor computation per run, bounded memory.
    _last_ts: datetime | None = field(default=None, init=False, repr=False)
    _last_ok: bool = field(default=False, init=False, repr=False)

    def add(self, rec: Record) -> None:
        ts = rec.timestamp
        if ts is not self._last_ts:
            self._last_ts, self._last_ok = ts, floor_to_interval(ts, self.step) == self.start
        if not self._last_ok:
            self.wrong_interval += 1
            return
        if self.dedupe:
            # Identical records (same timestamp, dimension values and measure values) count once: IoT Core (QoS 1)
            # and Firehose deliver at least once, so a redelivered message lands in S3 twice; counted twice it would
            # double a SUM and skew an AVG. Two genuinely different readings never share all of these fields
            # (timestamps are kept to the second). A hash is kept, not the record.
            h = hash((ts, rec.dimensions, tuple(sorted(rec.values.items()))))
            if h in self.seen:
                self.duplicates += 1
                return
            self.seen.add(h)
        self.records += 1
        row = self.cells.get(rec.dimensions)
        dims: tuple[tuple[str, str], ...] | None = None  # built for a new series, shared by the record's measures
        for measure, value in rec.values.items():
            cell = row.get(measure) if row is not None else None
            if cell is None:
                if dims is None:
                    dims = tuple(zip(self.dimensions, rec.dimensions, strict=True))
                key = SeriesKey(measure, dims)
                if not self.detector.has_series(key.id):
                    if self.room <= 0:
                        h = hash(key)
                        if h not in self.refused:
                            self.refused.add(h)
                            _note(self.refused_sample, key.id)
                        continue
                    self.room -= 1
                if row is None:  # a row only for admitted series (a refused one leaves nothing but its hash)
                    row = self.cells[rec.dimensions] = {}
                cell = row[measure] = _Cell(key)
            cell.total += value
            cell.count += 1.0

    def values(self) -> dict[SeriesKey, float]:
        """The aggregates in series order (``SeriesKey`` order is (measure, dimension values) with the same names
        everywhere: sorted here on plain tuples, so the detector's own sort finds them in order)."""
        cells = sorted(
            (((measure, dims), cell) for dims, row in self.cells.items() for measure, cell in row.items()),
            key=itemgetter(0),
        )
        return {
            c.key: (c.total / c.count if self.aggregations.get(c.key.measure, "SUM") == "AVG" else c.total)
            for _, c in cells
        }


@dataclass
class ScoredInterval:
    """One interval read, aggregated and scored, before grouping: what the single detector groups and alerts on
    at once, and what a shard hands to the merge (``detector.shard``). ``run`` has the console's counts and every
    series' score; ``run.groups`` is set by whoever groups."""

    start: datetime
    run: store.RunRecord
    silent: list[SilentSeries]


def read_and_score(
    clients: Clients, settings: Settings, state: State, start: datetime, report: RunReport
) -> ScoredInterval:
    """Read EXACTLY the interval's folder (the shard's folder, sharded), aggregate (admitting new series within the
    caps), score; the state remembers the keys read (see the module doc)."""
    spec = settings.spec
    keys = objects.list_keys(clients.s3, settings.bucket, layout.records_folder(start, spec, settings.shard))
    run = store.RunRecord(start)
    bad: Counter[str] = Counter()
    # Event-count presets (a measure defaulted per event, e.g. ecommerce views): two page views of the same page in
    # the same second are two views, not a redelivery, so nothing is dropped there.
    counts_events = any(m.default is not None for m in spec.measures)
    acc = IntervalValues(
        start=start,
        step=settings.step,
        aggregations={m.name: m.aggregation for m in spec.measures},
        dimensions=tuple(spec.dimensions),
        detector=state.detector,
        room=min(settings.max_new_series, max(0, settings.max_series - state.detector.series_count)),
        dedupe=not counts_events,
    )
    # The dataset filter first, as in every aggregation (sentinel_core.aggregate): a value that is not monitored
    # never becomes a series.
    for rec in filters.keep(
        interval_records(clients, settings, keys, bad, report), spec.dimensions, spec.dimension_filter
    ):
        acc.add(rec)
    if acc.wrong_interval:
        bad["wrong_interval"] += acc.wrong_interval
        logger.warning(
            "records outside their folder's interval (not scored)",
            extra={"interval": start.isoformat(), "count": acc.wrong_interval},
        )
    if acc.duplicates:
        report.duplicate_records += acc.duplicates
        run.duplicates = acc.duplicates
        logger.info(
            "identical records counted once (IoT QoS 1 and Firehose deliver at least once)",
            extra={"interval": start.isoformat(), "duplicates": acc.duplicates},
        )
    if acc.refused:
        report.series_refused += len(acc.refused)
        for sid in acc.refused_sample:
            _note(report.refused_series, sid)
        _log_refused(report, report.series_refused - len(acc.refused), settings)
    _add_bad(report, bad)
    report.records += acc.records
    n_records = acc.records
    values = acc.values()
    del acc
    result, invalid = state.detector.score_valid(
        start, values, zero_fill=zero_fill_measures(spec), on_error=_quarantine(report)
    )
    _add_invalid(report, invalid)
    scores: list[PointScore] = result.points
    if result.silent:  # counted, logged and alerted as their own "silent" groups
        report.silent_series += len(result.silent)
        logger.warning(
            "series went silent",
            extra={"interval": start.isoformat(), "series": [q.series.id for q in result.silent][:20]},
        )
    state.remember(start, keys)
    report.intervals_scored += 1
    report.series_scored += len(scores)
    anomalies = sum(1 for p in scores if groups.is_anomalous(p))
    report.anomalies += anomalies
    # The console's run status and data quality for this interval, and the scores it plots around a group.
    run.records, run.rejected, run.scores = n_records, dict(bad), scores
    run.series_seen = len(scores)  # the series scored this interval (SUM measures zero-filled included)
    run.silent = len(result.silent)  # the detector's own verdict: series that reported regularly and went silent
    run.anomalies = anomalies
    return ScoredInterval(start, run, list(result.silent))


def finish_interval(
    clients: Clients, settings: Settings, state: HasExtra, scored: ScoredInterval, report: RunReport
) -> list[AnomalyGroup]:
    """Group one scored interval (the open groups live in ``state.extra``), store the groups and the console's run
    record, alert once per group and alert through the ledger."""
    found = groups.update_groups(state, scored.run.scores, settings.detector_id, settings.spec)
    found += groups.silent_groups(settings.detector_id, scored.silent)
    stored = [g for g in found if save_group(clients, settings, g, report)]
    report.groups += len(stored)
    scored.run.groups = len(found)
    store.put_run(clients.ddb, settings.table, settings.detector_id, scored.run, groups.ANOMALY_THRESHOLD)
    publish_alerts(clients, settings, found, scored.start, report, state)
    return found


def score_interval(
    clients: Clients, settings: Settings, state: State, start: datetime, report: RunReport
) -> list[AnomalyGroup]:
    """Score one interval: read EXACTLY its folder, aggregate (admitting new series within the caps), score, group,
    store the groups and the console's run record, alert (see the module doc)."""
    return finish_interval(clients, settings, state, read_and_score(clients, settings, state, start, report), report)


def save_group(clients: Clients, settings: Settings, group: AnomalyGroup, report: RunReport) -> bool:
    """Store one group; a failure is logged and counted (``groups_failed``), its alert still goes out."""
    try:
        store.save_group(clients.ddb, settings.table, group)
        return True
    except Exception as exc:  # one group must not stop the interval
        report.groups_failed += 1
        logger.error(
            "anomaly group not stored", extra={"group": group.group_id, "error": f"{type(exc).__name__}: {exc}"}
        )
        return False


def _quarantine(report: RunReport) -> Callable[[SeriesKey, Exception], None]:
    def note(key: SeriesKey, exc: Exception) -> None:
        report.series_quarantined += 1
        _note(report.quarantined_series, key.id)
        logger.error(
            "series quarantined: scoring it raised; it restarts from its next value",
            extra={"series": key.id, "error": f"{type(exc).__name__}: {exc}"},
        )

    return note


def _refuse(report: RunReport, key: SeriesKey) -> None:
    report.series_refused += 1
    _note(report.refused_series, key.id)


def _log_refused(report: RunReport, before: int, settings: Settings) -> None:
    if report.series_refused > before:
        logger.warning(
            "series refused: the model holds at most max_series series and starts at most max_new_series per interval",
            extra={
                "refused": report.series_refused - before,
                "max_series": settings.max_series,
                "max_new_series": settings.max_new_series,
                "sample": report.refused_series,
            },
        )


def admit_history(
    values: Mapping[SeriesKey, float], admitted: set[SeriesKey], settings: Settings, report: RunReport
) -> dict[SeriesKey, float]:
    """Warm-up: the history teaches at most ``max_series`` series (the first seen, in series order)."""
    before = report.series_refused
    out: dict[SeriesKey, float] = {}
    for key in sorted(values):
        if key in admitted or len(admitted) < settings.max_series:
            admitted.add(key)
            out[key] = values[key]
        else:
            _refuse(report, key)
    _log_refused(report, before, settings)
    return out


def run(
    clients: Clients,
    settings: Settings,
    closed: datetime,
    time_left_ms: Callable[[], int] | None = None,
    wall_now: datetime | None = None,
    on_scored: Callable[[ScoredInterval], None] | None = None,
    before_save: Callable[[], None] | None = None,
) -> RunReport:
    """Score every interval up to ``closed`` that is not scored yet; see the module doc. ``wall_now`` (default:
    the clock) bounds the plan: nothing past it is scored.

    ``on_scored`` (a shard, ``settings.shard`` set): each scored interval goes to it instead of being grouped,
    stored and alerted here (the merge does that across shards); failed alerts are the merge's too."""
    wall = to_utc(wall_now) if wall_now is not None else datetime.now(UTC)
    report = RunReport(closed_interval=to_utc(closed).isoformat())
    loaded = load_state(clients, settings, wall, report)
    if loaded is not None and loaded.detector.timezone.key != settings.spec.timezone:
        logger.warning(
            "time zone changed: re-warming from history",
            extra={"was": loaded.detector.timezone.key, "now": settings.spec.timezone},
        )
        loaded, report.rewarmed = None, True
    if loaded is not None and settings.shard is not None and loaded.extra.get("shards") != settings.shards:
        # Series are spread by a hash modulo the shard count: with another count this state holds other series.
        logger.warning(
            "shard count changed: re-warming the shard from history",
            extra={"was": loaded.extra.get("shards"), "now": settings.shards, "shard": settings.shard},
        )
        loaded, report.rewarmed = None, True
    if loaded is None:
        state = State(Detector(settings.step, timezone=settings.spec.timezone))
        if settings.shard is not None:
            state.extra["shards"] = settings.shards
        warm_up(clients, settings, state.detector, report)
    else:
        state = loaded
        check_late(clients, settings, state, report)
    feedback = apply_feedback(clients, settings, state, report)
    if on_scored is None:
        retry_alerts(clients, settings, state, report)
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
    todo = plan_intervals(resumed, to_utc(closed), settings, report, wall)
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
            if on_scored is None:
                score_interval(clients, settings, state, start, report)
            else:
                on_scored(read_and_score(clients, settings, state, start, report))
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
        if i % CHECKPOINT_EVERY == 0 and i < len(todo) and on_scored is None:
            state.save(clients, settings)
        if time_left_ms is not None and time_left_ms() < 30_000 and i < len(todo):
            report.stopped_early = True
            report.backlog_left += len(todo) - i
            logger.warning(
                "stopping early to save the state before the Lambda times out", extra={"left": len(todo) - i}
            )
            break
    if before_save is not None:
        before_save()
    report.state_bytes = state.save(clients, settings)
    applied_at = datetime.now().astimezone().isoformat(timespec="seconds")
    for fb in feedback:
        store.mark_feedback_applied(clients.ddb, settings.table, fb, applied_at)
    logger.info("run finished", extra={"report": report.to_dict()})
    return report
