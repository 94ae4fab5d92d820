"""Loyalty backtest job: one uploaded CSV -> per-row error report, anomaly groups, one summary alert + top alerts.

Triggered by an S3 ``ObjectCreated`` notification on ``layout.upload_prefix(spec)`` (suffix ``.csv``). For each
uploaded object:

1. stream the CSV (``sentinel_core.csv_input``): good rows become records; each bad row (missing column, bad date,
   non-numeric value, duplicated day, ...) goes to ``<key>.errors.csv`` next to the input, with line, column,
   reason and message. A header without a required column makes the whole file an error (report written, no
   backtest);
2. feed the validated records straight into the detector's backtest core (``sentinel_core.backtest.run_records``,
   the same causal detector the scheduled Lambda uses — no copy; each measure aggregated with its own SUM/AVG):
   learn on the first ``1 - spec.backtest_fraction`` of the intervals, report anomaly groups on the rest;
3. store every group in the anomaly table (``sentinel_core.store.save_group``: the feedback CLI works on them);
4. publish ONE summary alert for the file, then one alert per group whose severity reaches the preset's threshold
   (91 for loyalty), most severe first, at most ``MAX_GROUP_ALERTS`` (the rest are named in the summary and the
   report); the texts are rendered by ``sentinel_core.alerts`` like every alert. Each goes out through
   ``store.publish_once`` (claimed in the alert ledger first), so a redelivered S3 event sends nothing twice;
5. write ``<key>.report.json`` (counts, windows, groups) next to the input.

The job's own outputs never match the trigger's suffix handling twice: ``<key>.errors.csv`` ends in ``.csv``, so
the notification fires for it, and :func:`is_job_output` makes the job skip it (counted, logged).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3Event
from sentinel_core import alerts, backtest, csv_input, layout, objects, routing, store
from sentinel_core import environment as env
from sentinel_core.intervals import interval_seconds, to_utc
from sentinel_core.model import AnomalyGroup
from sentinel_core.records import Record
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    pass

ERRORS_SUFFIX = ".errors.csv"
REPORT_SUFFIX = ".report.json"
MAX_GROUP_ALERTS = 20  # per file: an SMS flood helps nobody; the summary and the report list every group
MAX_REPORT_GROUPS = 500  # groups listed in the report object: a bounded JSON a person can still open
REQUIRED_ENV = alerts.ALERTING_ENV

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "backtest-job"), child=True)


@dataclass(frozen=True, kw_only=True)
class Settings(alerts.AlertSettings):
    max_group_alerts: int = MAX_GROUP_ALERTS

    routes: tuple[routing.AlertRoute, ...] = ()  # the ``alerts`` context key; () = the one default alert

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; a :class:`~sentinel_core.environment.ConfigError` names what is missing or wrong."""
        e = env.Environment.current(environ)
        settings = cls.read(e)
        return replace(settings, routes=routing.routes_from_env(settings.spec, e))


Clients = store.Clients


@dataclass
class JobReport:
    """What one file's job did (returned by the handler, written as ``<key>.report.json``)."""

    bucket: str
    key: str
    status: str = "ok"  # ok | rejected (unusable file) | skipped (not an input)
    message: str = ""
    rows: int = 0
    good_rows: int = 0
    bad_rows: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    errors_key: str | None = None
    first_day: str | None = None
    last_day: str | None = None
    learn_intervals: int = 0
    report_intervals: int = 0
    report_start: str | None = None
    series: int = 0
    groups: int = 0
    groups_at_threshold: int = 0
    alerts_sent: int = 0
    alerts_already_sent: int = 0
    alerts_filtered: int = 0
    alerts_capped: int = 0
    summary: str = ""
    group_list: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# Keys
# ----------------------------------------------------------------------------------------------------------------
def is_job_output(key: str) -> bool:
    return key.endswith((ERRORS_SUFFIX, REPORT_SUFFIX))


def errors_key(key: str) -> str:
    return key + ERRORS_SUFFIX


def report_key(key: str) -> str:
    return key + REPORT_SUFFIX


def s3_objects(event: S3Event) -> list[tuple[str, str, str]]:
    """(bucket, key, version-or-etag) of every record of an S3 notification (Powertools' ``S3Event``); keys are
    URL-decoded (S3 sends them ``+``-encoded)."""
    out: list[tuple[str, str, str]] = []
    if not event.get("Records"):  # nothing to do (as S3's own test notification)
        return out
    try:
        for rec in event.records:
            obj = rec.s3.get_object
            out.append((rec.s3.bucket.name, unquote_plus(obj.key), obj.version_id or obj.etag))
    except (KeyError, TypeError, AttributeError):
        raise ValueError("not an S3 event notification record (no s3.bucket.name / s3.object.key)") from None
    return out


# ----------------------------------------------------------------------------------------------------------------
# Alerts
# ----------------------------------------------------------------------------------------------------------------
def _peak(group: AnomalyGroup) -> datetime:
    return to_utc(max(group.points, key=lambda p: (p.score, p.timestamp)).timestamp)


def summary_facts(report: JobReport, max_group_alerts: int = MAX_GROUP_ALERTS) -> alerts.BacktestFacts:
    """The report's counts the summary alert shows."""
    return alerts.BacktestFacts(
        key=report.key,
        report_key=report_key(report.key),
        errors_key=report.errors_key,
        rows=report.rows,
        good_rows=report.good_rows,
        bad_rows=report.bad_rows,
        first_day=report.first_day,
        last_day=report.last_day,
        series=report.series,
        learn_intervals=report.learn_intervals,
        report_intervals=report.report_intervals,
        report_start=report.report_start,
        max_group_alerts=max_group_alerts,
    )


def _summary_id(detector_id: str, bucket: str, key: str, version: str) -> str:
    digest = hashlib.sha256(f"{detector_id}|{bucket}|{key}|{version}".encode()).hexdigest()[:20]
    return f"backtest-{digest}"


def publish(
    clients: Clients,
    settings: Settings,
    report: JobReport,
    groups: list[AnomalyGroup],
    bucket: str,
    version: str,
    report_from: datetime,
) -> None:
    spec = settings.spec
    ctx = settings.alert_context(bucket)

    def once(message: alerts.AlertMessage) -> None:
        status = store.publish_once(
            clients.ddb, clients.sns, settings.table, settings.detector_id, message, settings.topic_arn
        )
        if status == store.ALERT_SENT:
            report.alerts_already_sent += 1
        else:
            report.alerts_sent += 1

    # 1. the summary, once per uploaded object version
    sid = _summary_id(settings.detector_id, bucket, report.key, version)
    facts = summary_facts(report, settings.max_group_alerts)
    once(alerts.render_backtest_summary(groups, spec, ctx, facts, sid, report_from))
    # 2. one alert per group at or above the threshold, most severe first
    ranked = sorted(groups, key=lambda g: (-g.score, g.start, g.group_id))
    sent = 0
    routes = settings.routes or (routing.default_route(settings),)
    for group in ranked:
        at = _peak(group)
        if not any(alerts.should_alert(group, spec, at, r.threshold) for r in routes):
            continue
        if sent >= settings.max_group_alerts:
            report.alerts_capped += 1
            continue
        # each configured alert with its own threshold and filters (``sentinel_core.routing``), once each
        out = routing.route_group(clients, settings, settings.routes, group, at, ctx)
        sent += 1 if out.sent or out.already_sent else 0
        report.alerts_sent += len(out.sent)
        report.alerts_already_sent += len(out.already_sent)
        report.alerts_filtered += len(out.filtered)


# ----------------------------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------------------------
def run_backtest(records: Iterable[Record], spec: PipelineSpec, detector_id: str) -> backtest.Scored:
    """The detector's backtest core on validated records (the same causal ``Detector`` as the live engine).

    ``records`` may be a generator: they are aggregated as they stream, not kept.
    """
    return backtest.run_records(records, spec, detector_id=detector_id)


def _put_text(clients: Clients, bucket: str, key: str, text: str, content_type: str) -> None:
    clients.s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)


def _reject(clients: Clients, report: JobReport, exc: Exception) -> JobReport:
    """A file that cannot be read at all: a one-line error report and the job report, no backtest."""
    report.status = "rejected"
    report.message = f"the file cannot be read: {exc}"
    report.errors_key = errors_key(report.key)
    _put_text(clients, report.bucket, report.errors_key, csv_input.header_error_csv(report.message), "text/csv")
    text = json.dumps(report.to_dict(), indent=2)
    _put_text(clients, report.bucket, report_key(report.key), text, "application/json")
    logger.error("upload rejected", extra={"key": report.key, "error": report.message})
    return report


def process_object(clients: Clients, settings: Settings, bucket: str, key: str, version: str = "") -> JobReport:
    """Run the job for one uploaded object (see the module doc); returns what it did."""
    spec = settings.spec
    report = JobReport(bucket=bucket, key=key)
    if is_job_output(key) or not key.startswith(layout.upload_prefix(spec)) or not key.endswith(".csv"):
        report.status = "skipped"
        report.message = "not an input file (the job's own report, or outside the upload prefix)"
        logger.info("skipped", extra={"key": key, "reason": report.message})
        return report
    parse = csv_input.ParseReport()
    result: backtest.Scored | None = None
    failure = "no usable row: nothing to backtest (see the error report)"
    try:
        result = run_backtest(
            csv_input.iter_rows(objects.get_text(clients.s3, bucket, key), spec, parse), spec, settings.detector_id
        )
    except backtest.BacktestError as exc:  # e.g. no good row at all
        if parse.good:
            failure = f"the backtest cannot run: {exc}"
    except csv_input.CsvHeaderError as exc:
        return _reject(clients, report, exc)
    except objects.READ_ERRORS as exc:
        return _reject(clients, report, exc)
    report.rows, report.good_rows, report.bad_rows = parse.rows, parse.good, parse.bad
    report.bad_reasons = parse.reasons()
    if parse.errors:
        report.errors_key = errors_key(key)
        _put_text(clients, bucket, report.errors_key, csv_input.error_report_csv(parse), "text/csv")
        logger.warning(
            "rows rejected (good rows still processed)",
            extra={"key": key, "bad_rows": parse.bad, "reasons": report.bad_reasons, "errors_key": report.errors_key},
        )
    report.first_day = parse.first.isoformat() if parse.first else None
    report.last_day = parse.last.isoformat() if parse.last else None
    if result is None or not parse.good:
        report.status = "rejected"
        report.message = failure
        _put_text(clients, bucket, report_key(key), json.dumps(report.to_dict(), indent=2), "application/json")
        logger.error("upload has no usable row", extra={"key": key})
        return report

    report_from = result.report_from or (parse.first or datetime.now().astimezone())
    step = interval_seconds(spec.interval)
    total = int((to_utc(parse.last or report_from) - to_utc(parse.first or report_from)).total_seconds() // step) + 1
    report.report_intervals = max(
        0, int((to_utc(parse.last or report_from) - to_utc(report_from)).total_seconds() // step) + 1
    )
    report.learn_intervals = total - report.report_intervals
    report.report_start = to_utc(report_from).isoformat()
    report.series = result.series
    groups = [g for g in result.groups if g.points]
    for g in groups:
        store.save_group(clients.ddb, settings.table, g)
    report.groups = len(groups)
    report.groups_at_threshold = sum(1 for g in groups if g.score >= spec.severity_threshold)
    report.summary = alerts.summary_alert(groups, spec)
    ranked = sorted(groups, key=lambda g: (-g.score, g.start, g.group_id))
    report.group_list = [dict(row) for row in backtest.groups_summary(ranked[:MAX_REPORT_GROUPS])]
    publish(clients, settings, report, groups, bucket, version, to_utc(report_from))
    _put_text(clients, bucket, report_key(key), json.dumps(report.to_dict(), indent=2, default=str), "application/json")
    return report
