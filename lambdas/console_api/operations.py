"""The console API's operations: Lookout for Metrics' requests and responses over the anomaly table.

Each operation takes the request body (a dict with Lookout's field names) and returns the response body; bad input
raises ``ApiError`` (a 4xx with Lookout's error type and a message naming the field). Field names follow Lookout's
API so code written for ``boto3.client("lookoutmetrics")`` responses keeps working; fields Lookout does not have are
extensions, listed per operation in ``OPERATIONS``' docstrings and the README. Everything reads keys or indexes of
the anomaly table (``sentinel_core.store``), never a Scan.

``AnomalyDetectorArn`` is optional here (one detector per stack); when given, its last ``:``/``/`` part must be
this stack's detector id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel_core import store
from sentinel_core.intervals import interval_seconds, to_utc
from sentinel_core.model import AnomalyGroup, SeriesKey
from sentinel_core.records import parse_timestamp
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_RESULTS = 100  # Lookout's upper bound for MaxResults in the List* operations
DEFAULT_RESULTS = 50  # a page a person reads; clients ask for more with MaxResults
DEFAULT_CONTEXT_INTERVALS = 24  # intervals plotted before and after a group: 2 h of PT5M, a day of PT1H
MAX_CONTEXT_INTERVALS = 288  # a day of PT5M: bounds the Query of run records behind one time series page
MAX_TOKEN_CHARS = 4096


class ApiError(Exception):
    """A request the API answers with a 4xx; ``kind`` is Lookout's error type."""

    def __init__(self, message: str, kind: str = "ValidationException", status: int = 400) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    def body(self) -> dict[str, str]:
        return {"__type": self.kind, "Message": str(self)}


def not_found(message: str) -> ApiError:
    return ApiError(message, "ResourceNotFoundException", 404)


@dataclass(frozen=True)
class Context:
    """What every operation needs: the table client and this stack's detector."""

    ddb: DynamoDBClient
    table: str
    detector_id: str
    spec: PipelineSpec

    @property
    def step(self) -> int:
        return interval_seconds(self.spec.interval)


# ----------------------------------------------------------------------------------------------------------------
# Request fields
# ----------------------------------------------------------------------------------------------------------------
def _check_fields(body: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(f"unknown field(s) {', '.join(unknown)}; this operation accepts {', '.join(sorted(allowed))}")


def _str(body: Mapping[str, Any], name: str, required: bool = False, max_len: int = 1024) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise ApiError(f"{name} is longer than {max_len} characters")
    return value


def _int(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ApiError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise ApiError(f"{name} must be from {low} to {high}, got {value}")
    return int(value)


def _bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise ApiError(f"{name} is required and must be true or false, got {value!r}")
    return value


def _time(body: Mapping[str, Any], name: str) -> datetime | None:
    raw = body.get(name)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ApiError(f"{name} must be an ISO-8601 time or epoch seconds, got {raw!r}")
    try:
        return to_utc(parse_timestamp(raw))
    except (ValueError, OverflowError, OSError):
        raise ApiError(f"{name} must be an ISO-8601 time (e.g. 2026-03-19T10:00:00Z), got {raw!r}") from None


def _time_range(body: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    start, end = _time(body, "StartTime"), _time(body, "EndTime")
    if start and end and end < start:
        raise ApiError(f"EndTime {end.isoformat()} is before StartTime {start.isoformat()}")
    return start, end


def _detector(ctx: Context, body: Mapping[str, Any]) -> None:
    arn = _str(body, "AnomalyDetectorArn", max_len=256)
    if arn is not None and re.split(r"[:/]", arn)[-1] != ctx.detector_id:
        raise not_found(f"no anomaly detector {arn!r} here; this console serves detector {ctx.detector_id!r}")


def _iso(ts: datetime) -> str:
    return to_utc(ts).isoformat()


# ----------------------------------------------------------------------------------------------------------------
# Pagination: NextToken carries DynamoDB's key (or an offset), bound to the request it belongs to
# ----------------------------------------------------------------------------------------------------------------
def _fingerprint(op: str, body: Mapping[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k not in ("NextToken", "MaxResults")}
    return hashlib.sha256(json.dumps([op, rest], sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_token(op: str, body: Mapping[str, Any], position: Any) -> str:
    raw = json.dumps({"q": _fingerprint(op, body), "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(ctx: Context, op: str, body: Mapping[str, Any]) -> Any:
    token = body.get("NextToken")
    if token is None:
        return None
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise ApiError("NextToken must be the string a previous response returned")
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise ApiError("NextToken is not a token this API issued") from None
    if not isinstance(doc, dict) or doc.get("q") != _fingerprint(op, body):
        raise ApiError("NextToken belongs to another request: repeat the same fields, only MaxResults may change")
    position = doc.get("p")
    if isinstance(position, dict):  # a DynamoDB key: only string attributes of this detector's partition
        if not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in position.values()):
            raise ApiError("NextToken is not a token this API issued")
        if position.get("pk", {}).get("S") != store.pk(ctx.detector_id):
            raise ApiError("NextToken belongs to another detector")
    elif not isinstance(position, int) or position < 0:
        raise ApiError("NextToken is not a token this API issued")
    return position


# ----------------------------------------------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------------------------------------------
def group_summary(g: AnomalyGroup) -> dict[str, Any]:
    return {
        "StartTime": _iso(g.start),
        "EndTime": _iso(g.end),
        "AnomalyGroupId": g.group_id,
        "AnomalyGroupScore": g.score,
        "PrimaryMetricName": g.measure,
    }


def _contribution_matrix(g: AnomalyGroup) -> dict[str, Any]:
    dims: dict[str, list[dict[str, Any]]] = {}
    for c in g.contributions:
        dims.setdefault(c.dimension, []).append({"DimensionValue": c.value, "ContributionScore": c.percent})
    return {
        "DimensionContributionList": [
            {"DimensionName": name, "DimensionValueContributionList": values} for name, values in dims.items()
        ]
    }


def group_detail(g: AnomalyGroup) -> dict[str, Any]:
    """Lookout's ``AnomalyGroup``; extensions: ``TimeSeriesIdList`` and ``TimeSeriesFeedback``."""
    return {
        **group_summary(g),
        "MetricLevelImpactList": [
            {
                "MetricName": g.measure,
                "NumTimeSeries": len(g.series_ids),
                "ContributionMatrix": _contribution_matrix(g),
            }
        ],
        "TimeSeriesIdList": g.series_ids,
        "TimeSeriesFeedback": [{"TimeSeriesId": sid, "IsAnomaly": v} for sid, v in sorted(g.feedback.items())],
    }


def _feedback_shape(fb: store.Feedback) -> dict[str, Any]:
    return {
        "AnomalyGroupId": fb.group_id,
        "TimeSeriesId": fb.series_id,
        "IsAnomaly": fb.is_anomaly,
        "Status": fb.status.upper(),  # PENDING until the detector's next run applied it, then APPLIED
        "CreatedAt": fb.created_at,
        "AppliedAt": fb.extra.get("applied_at"),
    }


def _load_group(ctx: Context, group_id: str) -> AnomalyGroup:
    group = store.get_group(ctx.ddb, ctx.table, ctx.detector_id, group_id)
    if group is None:
        raise not_found(
            f"no anomaly group {group_id!r} for detector {ctx.detector_id} (groups expire from the table after "
            f"{store.GROUP_TTL_DAYS} days; older ones are in the S3 history)"
        )
    return group


# ----------------------------------------------------------------------------------------------------------------
# Operations
# ----------------------------------------------------------------------------------------------------------------
def list_anomaly_group_summaries(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """Groups at or above ``SensitivityThreshold`` (required, 0-100), newest first.

    Extensions: ``StartTime``/``EndTime`` (groups starting in that range), ``MetricName``, ``DimensionFilterList``
    (``[{"DimensionName", "DimensionValue"}]``, all must match a series of the group).
    """
    op = "ListAnomalyGroupSummaries"
    _check_fields(
        body,
        {
            "AnomalyDetectorArn",
            "SensitivityThreshold",
            "MaxResults",
            "NextToken",
            "StartTime",
            "EndTime",
            "MetricName",
            "DimensionFilterList",
        },
    )
    _detector(ctx, body)
    if body.get("SensitivityThreshold") is None:
        raise ApiError("SensitivityThreshold is required (0-100: the lowest group score listed)")
    threshold = _int(body, "SensitivityThreshold", 0, 0, 100)
    limit = _int(body, "MaxResults", DEFAULT_RESULTS, 1, MAX_RESULTS)
    start, end = _time_range(body)
    measure = _str(body, "MetricName", max_len=255)
    if measure is not None and measure not in ctx.spec.measure_names:
        raise ApiError(
            f"MetricName {measure!r} is not a measure of this detector ({', '.join(ctx.spec.measure_names)})"
        )
    dims = _dimension_tokens(ctx, body.get("DimensionFilterList"))
    position = decode_token(ctx, op, body)
    filters: dict[str, Any] = {
        "start": start,
        "end": end,
        "min_score": float(threshold),
        "measure": measure,
        "dimensions": dims,
    }
    found, last = store.query_groups(
        ctx.ddb, ctx.table, ctx.detector_id, limit=limit, start_key=position if position else None, **filters
    )
    counts, earliest, complete = store.count_groups(ctx.ddb, ctx.table, ctx.detector_id, **filters)
    out: dict[str, Any] = {
        "AnomalyGroupSummaryList": [group_summary(g) for g in found],
        "AnomalyGroupStatistics": {
            "EvaluationStartDate": _iso(start) if start else earliest,
            "TotalCount": sum(counts.values()),
            "ItemizedMetricStats": [{"MetricName": m, "OccurrenceCount": n} for m, n in sorted(counts.items())],
            "Complete": complete,  # extension: False when the count stopped at its page bound
        },
    }
    if last:
        out["NextToken"] = encode_token(op, body, last)
    return out


def _dimension_tokens(ctx: Context, raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > 10:
        raise ApiError('DimensionFilterList must be a list of up to 10 {"DimensionName", "DimensionValue"} objects')
    tokens: list[str] = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"DimensionName", "DimensionValue"}:
            raise ApiError(f'each DimensionFilterList item is {{"DimensionName", "DimensionValue"}}, got {item!r}')
        name, value = item["DimensionName"], item["DimensionValue"]
        if name not in ctx.spec.dimensions:
            raise ApiError(
                f"DimensionName {name!r} is not a dimension of this detector ({', '.join(ctx.spec.dimensions)})"
            )
        if not isinstance(value, str) or not value:
            raise ApiError(f"DimensionValue of {name} must be a non-empty string, got {value!r}")
        tokens.append(f"{name}={value}")
    return tokens


def get_anomaly_group(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    _check_fields(body, {"AnomalyDetectorArn", "AnomalyGroupId"})
    _detector(ctx, body)
    group_id = _str(body, "AnomalyGroupId", required=True, max_len=63)
    assert group_id is not None
    return {"AnomalyGroup": group_detail(_load_group(ctx, group_id))}


def list_anomaly_group_time_series(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """The group's series over its window and ``ContextIntervals`` (extension, default 24) intervals either side.

    ``MetricValueList`` has one value per ``TimestampList`` entry (null: no data that interval). Extensions per
    series: ``ExpectedValueList``, ``LowerBoundList``, ``UpperBoundList``, ``SeverityList`` (0-100),
    ``AnomalousTimestampList`` (the intervals the series is in the group); on the response: ``GroupStartTime``,
    ``GroupEndTime``, ``IntervalSeconds``.
    """
    op = "ListAnomalyGroupTimeSeries"
    _check_fields(
        body, {"AnomalyDetectorArn", "AnomalyGroupId", "MetricName", "MaxResults", "NextToken", "ContextIntervals"}
    )
    _detector(ctx, body)
    group_id = _str(body, "AnomalyGroupId", required=True, max_len=63)
    measure = _str(body, "MetricName", required=True, max_len=255)
    limit = _int(body, "MaxResults", DEFAULT_RESULTS, 1, MAX_RESULTS)
    context = _int(body, "ContextIntervals", DEFAULT_CONTEXT_INTERVALS, 0, MAX_CONTEXT_INTERVALS)
    assert group_id is not None
    group = _load_group(ctx, group_id)
    if measure != group.measure:
        raise ApiError(f"anomaly group {group_id} is about {group.measure!r}, not {measure!r} (MetricName)")
    offset = decode_token(ctx, op, body) or 0
    if not isinstance(offset, int):
        raise ApiError("NextToken is not a token this API issued")
    step = timedelta(seconds=ctx.step)
    t0, t1 = to_utc(group.start) - context * step, to_utc(group.end) + context * step
    runs, _ = store.query_runs(ctx.ddb, ctx.table, ctx.detector_id, t0, t1)
    series_ids = group.series_ids
    page = series_ids[offset : offset + limit]
    rows: dict[datetime, dict[str, list[float | None]]] = {to_utc(r.interval): r.scores() for r in runs}
    anomalous: dict[str, set[datetime]] = {}
    for p in group.points:  # the group's own points: present even when a run record expired or predates them
        ts = to_utc(p.timestamp)
        anomalous.setdefault(p.series.id, set()).add(ts)
        rows.setdefault(ts, {}).setdefault(p.series.id, [p.value, p.expected, p.lower, p.upper, p.score])
    stamps = sorted(rows)
    series: list[dict[str, Any]] = []
    for sid in page:
        cells = [rows[t].get(sid) or [None, None, None, None, None] for t in stamps]
        series.append(
            {
                "TimeSeriesId": sid,
                "DimensionList": [
                    {"DimensionName": k, "DimensionValue": v} for k, v in SeriesKey.parse(sid).dimensions
                ],
                "MetricValueList": [c[0] for c in cells],
                "ExpectedValueList": [c[1] for c in cells],
                "LowerBoundList": [c[2] for c in cells],
                "UpperBoundList": [c[3] for c in cells],
                "SeverityList": [c[4] for c in cells],
                "AnomalousTimestampList": [_iso(t) for t in sorted(anomalous.get(sid, ()))],
            }
        )
    out: dict[str, Any] = {
        "AnomalyGroupId": group.group_id,
        "MetricName": group.measure,
        "TimestampList": [_iso(t) for t in stamps],
        "TimeSeriesList": series,
        "GroupStartTime": _iso(group.start),
        "GroupEndTime": _iso(group.end),
        "IntervalSeconds": ctx.step,
    }
    if offset + limit < len(series_ids):
        out["NextToken"] = encode_token(op, body, offset + limit)
    return out


def _feedback_target(body: Mapping[str, Any], series_required: bool) -> tuple[str, str | None, dict[str, Any]]:
    fb = body.get("AnomalyGroupTimeSeriesFeedback")
    if not isinstance(fb, dict):
        raise ApiError("AnomalyGroupTimeSeriesFeedback is required: {AnomalyGroupId, TimeSeriesId, ...}")
    group_id = _str(fb, "AnomalyGroupId", required=True, max_len=63)
    series_id = _str(fb, "TimeSeriesId", required=series_required, max_len=1024)
    assert group_id is not None
    return group_id, series_id, fb


def put_feedback(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """Record (or change: put the other verdict) whether a series of a group is an anomaly.

    The very record the feedback CLI writes and the detector applies on its next run (``store.put_feedback``).
    """
    _check_fields(body, {"AnomalyDetectorArn", "AnomalyGroupTimeSeriesFeedback"})
    _detector(ctx, body)
    group_id, series_id, fb = _feedback_target(body, series_required=True)
    _check_fields(fb, {"AnomalyGroupId", "TimeSeriesId", "IsAnomaly"})
    is_anomaly = _bool(fb, "IsAnomaly")
    group = _load_group(ctx, group_id)
    assert series_id is not None
    try:
        store.put_feedback(ctx.ddb, ctx.table, group, series_id, is_anomaly)
    except store.StoreError as exc:
        raise ApiError(str(exc)) from None
    return {}


def get_feedback(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """The verdicts on a group (or one series); extensions per item: ``Status``, ``CreatedAt``, ``AppliedAt``."""
    op = "GetFeedback"
    _check_fields(body, {"AnomalyDetectorArn", "AnomalyGroupTimeSeriesFeedback", "MaxResults", "NextToken"})
    _detector(ctx, body)
    group_id, series_id, fb = _feedback_target(body, series_required=False)
    _check_fields(fb, {"AnomalyGroupId", "TimeSeriesId"})
    limit = _int(body, "MaxResults", DEFAULT_RESULTS, 1, MAX_RESULTS)
    offset = decode_token(ctx, op, body) or 0
    if not isinstance(offset, int):
        raise ApiError("NextToken is not a token this API issued")
    _load_group(ctx, group_id)
    items = store.group_feedback(ctx.ddb, ctx.table, ctx.detector_id, group_id, series_id)
    out: dict[str, Any] = {
        "AnomalyGroupTimeSeriesFeedback": [_feedback_shape(f) for f in items[offset : offset + limit]]
    }
    if offset + limit < len(items):
        out["NextToken"] = encode_token(op, body, offset + limit)
    return out


def _run_page(ctx: Context, op: str, body: Mapping[str, Any], with_scores: bool = False) -> tuple[Any, str | None]:
    limit = _int(body, "MaxResults", DEFAULT_RESULTS, 1, MAX_RESULTS)
    start, end = _time_range(body)
    if "Timestamp" in body:
        start = end = _time(body, "Timestamp")
    position = decode_token(ctx, op, body)
    runs, last = store.query_runs(
        ctx.ddb,
        ctx.table,
        ctx.detector_id,
        start,
        end,
        newest_first=True,
        limit=limit,
        start_key=position if isinstance(position, dict) else None,
        with_scores=with_scores,
    )
    return runs, encode_token(op, body, last) if last else None


def describe_anomaly_detection_executions(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """One entry per interval, newest first: ``Status`` COMPLETED (scored), FAILED, FAILED_TO_SCHEDULE (skipped).

    Extensions: ``StartTime``/``EndTime`` on the request; per execution ``RecordsProcessed``, ``RecordsRejected``,
    ``LateRecords``, ``DuplicateRecords``, ``TimeSeriesCount``, ``SilentTimeSeries``, ``Anomalies``,
    ``AnomalyGroups``.
    """
    op = "DescribeAnomalyDetectionExecutions"
    _check_fields(body, {"AnomalyDetectorArn", "Timestamp", "MaxResults", "NextToken", "StartTime", "EndTime"})
    _detector(ctx, body)
    runs, token = _run_page(ctx, op, body)
    executions = []
    for r in runs:
        c = r.counts
        executions.append(
            {
                "Timestamp": _iso(r.interval),
                "Status": r.status,
                "FailureReason": r.failure_reason,
                "RecordsProcessed": int(c.get("records", 0)),
                "RecordsRejected": sum(int(v) for v in (c.get("rejected") or {}).values()),
                "LateRecords": r.late,
                "DuplicateRecords": int(c.get("duplicates", 0)),
                "TimeSeriesCount": int(c.get("series_seen", 0)),
                "SilentTimeSeries": int(c.get("silent", 0)),
                "Anomalies": int(c.get("anomalies", 0)),
                "AnomalyGroups": int(c.get("groups", 0)),
            }
        )
    out: dict[str, Any] = {"ExecutionList": executions}
    if token:
        out["NextToken"] = token
    return out


QUALITY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("ROWS_PROCESSED", "records", "Valid records scored in the interval"),
    ("TIME_SERIES_COUNT", "series_seen", "Time series with a value in the interval"),
    ("SILENT_TIME_SERIES", "silent", "Known time series that sent nothing in the interval (extension)"),
    ("DUPLICATE_ROWS", "duplicates", "Identical records counted once (at-least-once delivery) (extension)"),
)


def get_data_quality_metrics(ctx: Context, body: Mapping[str, Any]) -> dict[str, Any]:
    """Lookout's shape, one ``StartTimestamp`` per interval (newest first); ``MetricSetArn`` is this detector's.

    Metric types: Lookout's ``ROWS_PROCESSED``, ``TIME_SERIES_COUNT``, ``INVALID_ROWS_COMPLIANCE`` (rejected lines,
    one per reason in ``RelatedColumnName``), and extensions ``LATE_ROWS``, ``DUPLICATE_ROWS``,
    ``SILENT_TIME_SERIES``. Request extensions: ``StartTime``, ``EndTime``, ``MaxResults``, ``NextToken``.
    """
    op = "GetDataQualityMetrics"
    _check_fields(body, {"AnomalyDetectorArn", "MetricSetArn", "StartTime", "EndTime", "MaxResults", "NextToken"})
    _detector(ctx, body)
    metric_set = _str(body, "MetricSetArn", max_len=256) or f"{ctx.detector_id}/metric-set"
    runs, token = _run_page(ctx, op, body)
    entries = []
    for r in runs:
        c = r.counts
        metrics = [
            {
                "MetricType": kind,
                "MetricDescription": text,
                "RelatedColumnName": "",
                "MetricValue": float(c.get(key, 0)),
            }
            for kind, key, text in QUALITY_METRICS
        ]
        metrics.append(
            {
                "MetricType": "LATE_ROWS",
                "MetricDescription": "Records that arrived after the interval was scored (counted, not scored)",
                "RelatedColumnName": "",
                "MetricValue": float(r.late),
            }
        )
        for reason, n in sorted((c.get("rejected") or {}).items()):
            metrics.append(
                {
                    "MetricType": "INVALID_ROWS_COMPLIANCE",
                    "MetricDescription": f"Lines rejected: {reason}",
                    "RelatedColumnName": reason,
                    "MetricValue": float(n),
                }
            )
        entries.append(
            {
                "StartTimestamp": _iso(r.interval),
                "MetricSetDataQualityMetricList": [{"MetricSetArn": metric_set, "DataQualityMetricList": metrics}],
            }
        )
    out: dict[str, Any] = {"AnomalyDetectorDataQualityMetricList": entries}
    if token:
        out["NextToken"] = token
    return out


Operation = Callable[[Context, Mapping[str, Any]], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    "ListAnomalyGroupSummaries": list_anomaly_group_summaries,
    "GetAnomalyGroup": get_anomaly_group,
    "ListAnomalyGroupTimeSeries": list_anomaly_group_time_series,
    "PutFeedback": put_feedback,
    "GetFeedback": get_feedback,
    "DescribeAnomalyDetectionExecutions": describe_anomaly_detection_executions,
    "GetDataQualityMetrics": get_data_quality_metrics,
}


def dispatch(ctx: Context, operation: str, body: Any) -> dict[str, Any]:
    """Run one operation on a parsed JSON body (the offline server and the Lambda both call this)."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise ApiError(
            f"unknown operation {operation!r}; this API has {', '.join(OPERATIONS)}", "UnknownOperationException", 404
        )
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object with Lookout's field names")
    return handler(ctx, body)
