"""Loyalty backtest job: one uploaded CSV -> per-row error report, anomaly groups, one summary alert + top alerts.

Triggered by an S3 ``ObjectCreated`` notification on ``layout.upload_prefix(spec)`` (suffix ``.csv``). For each
uploaded object:

1. stream the CSV (``sentinel_core.csv_input``): good rows become records; each bad row (missing column, bad date,
   non-numeric value, duplicated day, ...) goes to ``<key>.errors.csv`` next to the input, with line, column,
   reason and message. A header without a required column makes the whole file an error (report written, no
   backtest);
2. run the detector's backtest core (``sentinel_core.backtest``, the same causal detector the scheduled Lambda
   uses — no copy): learn on the first ``1 - spec.backtest_fraction`` of the intervals, report anomaly groups on
   the rest;
3. store every group in the anomaly table (``sentinel_core.store.save_group``: the feedback CLI works on them);
4. publish ONE summary alert for the file, then one alert per group whose severity reaches the preset's threshold
   (91 for loyalty), most severe first, at most ``MAX_GROUP_ALERTS`` (the rest are named in the summary and the
   report). Each publish is claimed in the alert ledger first (``store.claim_alert``), so a redelivered S3 event
   sends nothing twice;
5. write ``<key>.report.json`` (counts, windows, groups) next to the input.

The job's own outputs never match the trigger's suffix handling twice: ``<key>.errors.csv`` ends in ``.csv``, so
the notification fires for it, and :func:`is_job_output` makes the job skip it (counted, logged).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from sentinel_core import alerts, backtest, csv_input, layout, store
from sentinel_core.intervals import interval_seconds, to_utc
from sentinel_core.model import AnomalyGroup
from sentinel_core.records import OUTPUT_TIMESTAMP_FORMAT, Record
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

ERRORS_SUFFIX = ".errors.csv"
REPORT_SUFFIX = ".report.json"
MAX_GROUP_ALERTS = 20  # per file: an SMS flood helps nobody; the summary and the report list every group
MAX_REPORT_GROUPS = 500

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "backtest-job"), child=True)


class ConfigError(ValueError):
    """A missing environment variable; the message names it."""


@dataclass(frozen=True)
class Settings:
    spec: PipelineSpec
    topic_arn: str
    table: str
    detector_id: str
    alert_filter: alerts.AlertFilter = field(default_factory=alerts.AlertFilter)
    console_base_url: str | None = None
    max_group_alerts: int = MAX_GROUP_ALERTS

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        spec = PipelineSpec.from_env(env)
        missing = [k for k in ("ALERT_TOPIC_ARN", "ANOMALY_TABLE", "DETECTOR_ID") if not env.get(k)]
        if missing:
            raise ConfigError(f"environment variable(s) {', '.join(missing)} not set (the CDK stack sets them)")
        return cls(
            spec=spec,
            topic_arn=env["ALERT_TOPIC_ARN"],
            table=env["ANOMALY_TABLE"],
            detector_id=env["DETECTOR_ID"],
            alert_filter=alerts.AlertFilter.from_env(spec, env),
            console_base_url=env.get("CONSOLE_BASE_URL") or None,
        )

    def context(self, bucket: str) -> alerts.AlertContext:
        return alerts.AlertContext.from_topic_arn(self.detector_id, self.topic_arn, bucket, self.console_base_url)


@dataclass
class Clients:
    s3: S3Client
    ddb: DynamoDBClient
    sns: SNSClient


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


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(bucket, key, etag-or-version) of every record of an S3 notification event; keys are URL-decoded."""
    out: list[tuple[str, str, str]] = []
    for rec in event.get("Records", []) or []:
        s3 = rec.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        if not bucket or "key" not in obj:
            raise ValueError("not an S3 event notification record (no s3.bucket.name / s3.object.key)")
        out.append((str(bucket), unquote_plus(str(obj["key"])), str(obj.get("versionId") or obj.get("eTag") or "")))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------
def object_lines(s3: S3Client, bucket: str, key: str) -> Iterator[str]:
    """The object's text lines, streamed (gzip-compressed uploads are accepted; a UTF-8 BOM is dropped)."""
    body: Any = s3.get_object(Bucket=bucket, Key=key)["Body"]
    head = body.read(2)
    rest: Any = body
    if head == b"\x1f\x8b":
        rest = gzip.GzipFile(fileobj=cast(Any, _Prepend(head, body)), mode="rb")
        head = b""
    reader = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    pending = reader.decode(head)
    while True:
        chunk = rest.read(1 << 16)
        if not chunk:
            break
        pending += reader.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line + "\n"
    pending += reader.decode(b"", final=True)
    if pending:
        yield pending


class _Prepend:
    """A read()-able that first returns ``head`` then the rest of ``body`` (to sniff gzip magic bytes)."""

    def __init__(self, head: bytes, body: Any) -> None:
        self.head = head
        self.body = body

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            if n < 0:
                return out + bytes(self.body.read())
            return out + bytes(self.body.read(max(0, n - len(out))))
        return bytes(self.body.read(n))


# ----------------------------------------------------------------------------------------------------------------
# Alerts
# ----------------------------------------------------------------------------------------------------------------
def _peak(group: AnomalyGroup) -> datetime:
    return to_utc(max(group.points, key=lambda p: (p.score, p.timestamp)).timestamp)


def summary_message(
    report: JobReport, groups: list[AnomalyGroup], spec: PipelineSpec, ctx: alerts.AlertContext
) -> dict[str, Any]:
    """The summary publish: SMS line from ``alerts.summary_alert``, a readable e-mail, a JSON ``default``."""
    line = alerts.summary_alert(groups, spec)
    name = report.key.rsplit("/", 1)[-1]
    sms = f"{line[: alerts.SMS_LIMIT - len(name) - 4]}... ({name})" if len(line) > alerts.SMS_LIMIT else line
    ranked = sorted(groups, key=lambda g: (-g.score, g.start, g.group_id))
    lines = [
        f"Metric Sentinel backtest of s3://{report.bucket}/{report.key} ({spec.preset}, interval {spec.interval}).",
        "",
        line,
        "",
        f"Rows:      {report.rows:,} read, {report.good_rows:,} used, {report.bad_rows:,} rejected",
    ]
    if report.errors_key:
        lines.append(f"           per-row error report: s3://{report.bucket}/{report.errors_key}")
    lines += [
        f"Data:      {report.first_day} to {report.last_day}, {report.series} series",
        f"Learned:   the first {report.learn_intervals} intervals; reported on the last {report.report_intervals} "
        f"(from {report.report_start})",
        f"Groups:    {report.groups} anomaly group(s), {report.groups_at_threshold} at or above severity "
        f"{alerts.fmt_number(spec.severity_threshold)} (one alert each, at most {MAX_GROUP_ALERTS})",
        "",
    ]
    for g in ranked[:30]:
        top = max(g.points, key=lambda p: p.score)
        where = ", ".join(sorted({v for p in g.points for _, v in p.series.dimensions})) or "all"
        until = f" to {alerts.fmt_time(g.end, spec)}" if g.end != g.start else ""
        lines.append(
            f"  - sev {round(g.score):>3}  {g.measure} at {where}  {alerts.fmt_time(g.start, spec)}{until}  "
            f"(value {alerts.fmt_number(top.value)}, expected {alerts.fmt_number(top.expected)})  group {g.group_id}"
        )
    if len(ranked) > 30:
        lines.append(f"  ... and {len(ranked) - 30} more in s3://{report.bucket}/{report_key(report.key)}")
    lines += ["", f"Full report: s3://{report.bucket}/{report_key(report.key)}", f"Detector: {ctx.detector_id}"]
    default = {
        "type": "backtestSummary",
        "alertName": ctx.alert_name,
        "anomalyDetectorArn": ctx.detector_arn,
        "input": f"s3://{report.bucket}/{report.key}",
        "summary": line,
        "rows": report.rows,
        "badRows": report.bad_rows,
        "errorReport": f"s3://{report.bucket}/{report.errors_key}" if report.errors_key else None,
        "reportStart": report.report_start,
        "anomalyGroups": [
            {
                "anomalyGroupId": g.group_id,
                "metricName": g.measure,
                "anomalyScore": round(g.score, 2),
                "startTime": g.start.isoformat(),
                "endTime": g.end.isoformat(),
                "timeSeriesIds": g.series_ids,
            }
            for g in ranked[:50]
        ],
    }
    subject = f"Sentinel {spec.preset} backtest: {report.groups_at_threshold} anomaly group(s) in {name}"
    return {
        "Subject": subject.encode("ascii", "replace").decode()[: alerts.SUBJECT_LIMIT],
        "MessageStructure": "json",
        "Message": json.dumps(
            {"default": json.dumps(default, separators=(",", ":")), "sms": sms, "email": "\n".join(lines) + "\n"}
        ),
    }


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
    ctx = settings.context(bucket)
    # 1. the summary, once per uploaded object version
    sid = _summary_id(settings.detector_id, bucket, report.key, version)
    status = store.claim_alert(clients.ddb, settings.table, settings.detector_id, sid, report_from, sid)
    if status == store.ALERT_SENT:
        report.alerts_already_sent += 1
    else:
        resp = clients.sns.publish(TopicArn=settings.topic_arn, **summary_message(report, groups, spec, ctx))
        store.mark_alert_sent(clients.ddb, settings.table, settings.detector_id, sid, report_from, resp["MessageId"])
        report.alerts_sent += 1
    # 2. one alert per group at or above the threshold, most severe first
    ranked = sorted(groups, key=lambda g: (-g.score, g.start, g.group_id))
    sent = 0
    for group in ranked:
        at = _peak(group)
        if not alerts.should_alert(group, spec, at):
            continue
        shown = settings.alert_filter.apply(group)
        if shown is None or not alerts.should_alert(shown, spec, at):
            report.alerts_filtered += 1
            continue
        if sent >= settings.max_group_alerts:
            report.alerts_capped += 1
            continue
        message = alerts.render_alert(shown, spec, ctx, at)
        status = store.claim_alert(
            clients.ddb, settings.table, settings.detector_id, group.group_id, at, message.event_id
        )
        sent += 1
        if status == store.ALERT_SENT:
            report.alerts_already_sent += 1
            continue
        resp = clients.sns.publish(**message.publish_kwargs(settings.topic_arn))
        store.mark_alert_sent(clients.ddb, settings.table, settings.detector_id, group.group_id, at, resp["MessageId"])
        report.alerts_sent += 1


# ----------------------------------------------------------------------------------------------------------------
# The job
# ----------------------------------------------------------------------------------------------------------------
def _aggregation(spec: PipelineSpec) -> str:
    kinds = {m.aggregation for m in spec.measures}
    if len(kinds) != 1:
        raise ValueError(
            f"the backtest job needs one aggregation for all measures, the {spec.preset} spec mixes {sorted(kinds)}"
        )
    return kinds.pop()


def run_backtest(records: Iterable[Record], spec: PipelineSpec, detector_id: str) -> backtest.BacktestResult:
    """The detector's backtest core on validated records (the same causal ``Detector`` as the live engine).

    ``records`` may be a generator: only the text rows the core needs are kept, not the records.
    """
    header = list(csv_input.required_columns(spec))
    names = spec.measure_names
    rows = [
        [r.timestamp.strftime(OUTPUT_TIMESTAMP_FORMAT), *r.dimensions, *(repr(r.values[m]) for m in names)]
        for r in records
    ]
    return backtest.run(
        header,
        rows,
        interval_seconds(spec.interval),
        timestamp=spec.timestamp_column,
        dimensions=list(spec.dimensions),
        measures=list(spec.measure_names),
        aggregation=_aggregation(spec),
        backtest_fraction=spec.backtest_fraction,
        detector_id=detector_id,
    )


def _put_text(clients: Clients, bucket: str, key: str, text: str, content_type: str) -> None:
    clients.s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)


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
    result: backtest.BacktestResult | None = None
    failure = "no usable row: nothing to backtest (see the error report)"
    try:
        result = run_backtest(
            csv_input.iter_rows(object_lines(clients.s3, bucket, key), spec, parse), spec, settings.detector_id
        )
    except backtest.BacktestError as exc:  # e.g. no good row at all
        if parse.good:
            failure = f"the backtest cannot run: {exc}"
    except (csv_input.CsvHeaderError, UnicodeDecodeError, OSError, EOFError) as exc:
        report.status = "rejected"
        report.message = f"the file cannot be read: {exc}"
        report.errors_key = errors_key(key)
        _put_text(clients, bucket, report.errors_key, csv_input.header_error_csv(report.message), "text/csv")
        _put_text(clients, bucket, report_key(key), json.dumps(report.to_dict(), indent=2), "application/json")
        logger.error("upload rejected", extra={"key": key, "error": report.message})
        return report
    report.rows, report.good_rows, report.bad_rows = parse.rows, parse.good, parse.bad
    report.bad_reasons = parse.reasons()
    if parse.errors:
        report.errors_key = errors_key(key)
        _put_text(clients, bucket, report.errors_key, csv_input.error_report_csv(parse.errors), "text/csv")
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
