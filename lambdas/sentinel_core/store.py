"""Persistence of the built-in detector: model state in S3, anomaly groups, alert ledger and feedback in DynamoDB.

Plain functions taking boto3 clients (low-level ``s3`` / ``dynamodb`` / ``sns`` clients; :class:`Clients` bundles
them), so the detector Lambda, the backtest job, the feedback CLI, the demo and the tests share them. Standard
library only at run time (the attribute marshalling for the few types used here is done by hand); boto3 types are
imported for the type checker only.

DynamoDB table (``ANOMALY_TABLE``): partition key ``pk`` (S), sort key ``sk`` (S), TTL attribute ``ttl``. Items of
one detector share ``pk = DET#<detector id>``:

* ``sk = GROUP#<group id>``      an anomaly group: gzip JSON of ``AnomalyGroup.to_dict`` in ``data`` (binary, so
  large groups stay far under DynamoDB's 400 KB), ``start``/``end``/``score``/``measure``/``series_ids`` for
  listing, and ``feedback``: map series id -> bool, written only by feedback (re-saving a group keeps it).
* ``sk = ALERT#<group id>#<interval start>``   the alert ledger: ``status`` PENDING then SENT, ``event_id``,
  ``message_id``. It makes alerts at-most-once per (group, interval) across retries: every alerting function
  publishes through ``publish_once`` (claim, publish, mark; the one duplicate window is in ``claim_alert``).
* ``sk = FEEDBACK#<group id>#<series id>``   a person's verdict on one series of one group, ``status`` pending
  until the detector has applied it (then applied), with the interval starts the verdict covers.

TTL is storage retention, so it uses the wall clock (never the simulated event time).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sentinel_core import layout, objects, state_file
from sentinel_core.intervals import to_utc
from sentinel_core.model import AnomalyGroup
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

    from sentinel_core.alerts import AlertMessage

DAY = 86400
GROUP_TTL_DAYS = 90
ALERT_TTL_DAYS = 30
FEEDBACK_TTL_DAYS = 90
STATE_FILE = "model/state.bin.gz"  # sentinel_core.state_file
LEGACY_STATE_FILE = "model/state.json.gz"  # the JSON state of earlier releases (read, never written)


ALERT_NEW = "new"  # claimed now: publish
ALERT_PENDING = "pending"  # a previous attempt claimed it but did not confirm the publish: publish again
ALERT_SENT = "sent"  # already published: skip


@dataclass
class Clients:
    """The low-level boto3 clients of a function that reads the lake, stores groups and publishes alerts."""

    s3: S3Client
    ddb: DynamoDBClient
    sns: SNSClient


class StoreError(RuntimeError):
    """A lookup that cannot be answered (unknown group, series not in the group, ...); the message says why."""


# ----------------------------------------------------------------------------------------------------------------
# DynamoDB attribute values (the few types used here)
# ----------------------------------------------------------------------------------------------------------------
def to_attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(float(value)) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_attr(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_attr(attr: Mapping[str, Any]) -> Any:
    (kind, value), *_ = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        f = float(value)
        return int(f) if f.is_integer() and "." not in str(value) and "e" not in str(value).lower() else f
    if kind == "BOOL":
        return bool(value)
    if kind == "B":
        return value if isinstance(value, bytes) else base64.b64decode(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "SS":
        return list(value)
    raise TypeError(f"unsupported DynamoDB attribute type {kind}")


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: from_attr(v) for k, v in item.items()}


def pk(detector_id: str) -> str:
    return f"DET#{detector_id}"


def _key(detector_id: str, kind: str, *parts: str) -> dict[str, Any]:
    """The primary key of one item of a detector: ``sk = KIND#part#part`` (see the module doc)."""
    return {"pk": {"S": pk(detector_id)}, "sk": {"S": "#".join((kind, *parts))}}


def _ttl(days: int, now: float | None = None) -> int:
    return int((time.time() if now is None else now) + days * DAY)


def _iso(ts: datetime) -> str:
    return to_utc(ts).isoformat()


# ----------------------------------------------------------------------------------------------------------------
# Model state (S3)
# ----------------------------------------------------------------------------------------------------------------
def state_key(spec: PipelineSpec) -> str:
    return layout.state_prefix(spec) + STATE_FILE


def legacy_state_key(spec: PipelineSpec) -> str:
    """Where releases before the compact state file kept it (one gzip-9 JSON object): read once, then replaced."""
    return layout.state_prefix(spec) + LEGACY_STATE_FILE


SeriesRecords = Iterator[tuple[str, bytes]]


def read_state(body: objects.Readable) -> tuple[dict[str, Any], SeriesRecords]:
    """A state object, streamed: (the run state without the series, the series one by one as (id, the model's
    per-series record)). Both encodings are read: the compact state file (``sentinel_core.state_file``) and the
    JSON state of earlier releases (base64 records; its series are then in memory already)."""
    f = objects.open_binary(body)
    if state_file.is_state_file(f.peek(5)[:5]):
        header = state_file.read_header(f)
        return header, state_file.read_records(f)
    data = json.load(io.TextIOWrapper(f, encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("detector"), dict):
        raise StoreError("the state object is not a JSON object with a 'detector'")
    series = data["detector"].pop("series", {})
    if not isinstance(series, dict):
        raise StoreError("the state's detector series are not a map")
    return data, ((str(sid), base64.b64decode(rec, validate=True)) for sid, rec in series.items())


def load_state(s3: S3Client, bucket: str, spec: PipelineSpec) -> dict[str, Any] | None:
    """The saved state as one JSON-shaped dict (series records base64-encoded under ``detector.series``, as
    ``Detector.to_state``), or None when the detector never ran. For tools and tests: the detector itself streams
    it (:func:`recover_state`)."""
    for key in (state_key(spec), legacy_state_key(spec)):
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            continue
        header, series = read_state(obj["Body"])
        header.setdefault("detector", {})["series"] = {
            sid: base64.b64encode(rec).decode("ascii") for sid, rec in series
        }
        return header
    return None


MAX_STATE_VERSIONS = 10  # older versions tried before re-warming: ~50 minutes of PT5M saves, far past a bad deploy


@dataclass
class RecoveredState[T]:
    """What :func:`recover_state` found: the parsed state (None: nothing usable, re-warm from history), the version
    it came from (None: the current object) and, when the current object was not usable, why."""

    state: T | None
    version_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return bool(self.problems)


def recover_state[T](
    s3: S3Client, bucket: str, spec: PipelineSpec, parse: Callable[[objects.Readable], T]
) -> RecoveredState[T]:
    """The saved state parsed by ``parse`` from the object's body (``parse`` raises on an unreadable or implausible
    state); when the current object is not usable, its previous versions (the bucket is versioned), newest first,
    at most ``MAX_STATE_VERSIONS``; when none is usable ``state`` is None (the caller re-warms from history).

    No state object at all is not a problem: ``RecoveredState(None)`` with no problems (the detector never ran); a
    state of an earlier release (``legacy_state_key``) is read when there is no compact one yet.
    """
    key = state_key(spec)
    out: RecoveredState[T] = RecoveredState(None)
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        try:
            obj = s3.get_object(Bucket=bucket, Key=legacy_state_key(spec))
        except s3.exceptions.NoSuchKey:
            return out
        key = legacy_state_key(spec)
    try:
        out.state = parse(obj["Body"])
        return out
    except Exception as exc:  # any unreadable or implausible state falls back (and is reported)
        out.problems.append(f"current: {type(exc).__name__}: {exc}"[:300])
    current = obj.get("VersionId")
    versions: list[dict[str, Any]] = []
    try:
        resp: Any = s3.list_object_versions(Bucket=bucket, Prefix=key, MaxKeys=MAX_STATE_VERSIONS + 1)
        versions = [
            v for v in resp.get("Versions", []) if v["Key"] == key and v.get("VersionId") not in (current, "null")
        ]
    except Exception as exc:  # no version listing: re-warm (reported)
        out.problems.append(f"versions: {type(exc).__name__}: {exc}"[:300])
    versions.sort(key=lambda v: v["LastModified"], reverse=True)
    for v in versions[:MAX_STATE_VERSIONS]:
        vid = str(v["VersionId"])
        try:
            older = s3.get_object(Bucket=bucket, Key=key, VersionId=vid)
            out.state = parse(older["Body"])
            out.version_id = vid
            return out
        except Exception as exc:  # try the next older one
            out.problems.append(f"version {vid}: {type(exc).__name__}: {exc}"[:300])
    return out


def save_state(
    s3: S3Client, bucket: str, spec: PipelineSpec, header: Mapping[str, Any], records: Iterable[tuple[str, bytes]]
) -> int:
    """Write the compact state file (one PUT: readers see the old or the new state, never half); returns its size.

    ``header``: the run state without the series; ``records``: (series id, packed series) in id order."""
    # Written to a temporary file (Lambda's /tmp), not memory: the compressed state is never held beside the model.
    with tempfile.TemporaryFile() as fh:
        state_file.write(fh, dict(header), records)
        size = fh.tell()
        fh.seek(0)
        s3.put_object(Bucket=bucket, Key=state_key(spec), Body=fh, ContentType="application/octet-stream")
    return size


# ----------------------------------------------------------------------------------------------------------------
# Anomaly groups
# ----------------------------------------------------------------------------------------------------------------
def _pack_group(group: AnomalyGroup) -> bytes:
    return gzip.compress(json.dumps(group.to_dict(), separators=(",", ":")).encode(), mtime=0)


def _unpack_group(item: Mapping[str, Any]) -> AnomalyGroup:
    raw = from_item(item)
    group = AnomalyGroup.from_dict(json.loads(gzip.decompress(raw["data"])))
    group.feedback = {str(k): bool(v) for k, v in (raw.get("feedback") or {}).items()}
    return group


def save_group(ddb: DynamoDBClient, table: str, group: AnomalyGroup, now: float | None = None) -> None:
    """Insert or update a group; the feedback map people wrote is kept."""
    ddb.update_item(
        TableName=table,
        Key=_key(group.detector_id, "GROUP", group.group_id),
        UpdateExpression=(
            "SET #data = :data, #start = :start, #end = :end, score = :score, measure = :measure, "
            "series_ids = :series, #ttl = :ttl, group_id = :gid, feedback = if_not_exists(feedback, :empty)"
        ),
        ExpressionAttributeNames={"#data": "data", "#start": "start", "#end": "end", "#ttl": "ttl"},
        ExpressionAttributeValues={
            ":data": {"B": _pack_group(group)},
            ":start": {"S": _iso(group.start)},
            ":end": {"S": _iso(group.end)},
            ":score": to_attr(float(group.score)),
            ":measure": {"S": group.measure},
            ":series": to_attr(group.series_ids),
            ":ttl": {"N": str(_ttl(GROUP_TTL_DAYS, now))},
            ":gid": {"S": group.group_id},
            ":empty": {"M": {}},
        },
    )


def get_group(ddb: DynamoDBClient, table: str, detector_id: str, group_id: str) -> AnomalyGroup | None:
    resp = ddb.get_item(TableName=table, Key=_key(detector_id, "GROUP", group_id), ConsistentRead=True)
    return _unpack_group(resp["Item"]) if "Item" in resp else None


def _scan(ddb: DynamoDBClient, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, **kwargs}
    while True:
        resp: Any = ddb.scan(**request)
        items.extend(resp.get("Items", []))
        if not resp.get("LastEvaluatedKey"):
            return items
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _query(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    prefix: str,
    values: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": pk(detector_id)}, ":prefix": {"S": prefix}, **(values or {})},
        **kwargs,
    }
    while True:
        resp: Any = ddb.query(**request)
        items.extend(resp.get("Items", []))
        if not resp.get("LastEvaluatedKey"):
            return items
        request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def find_group(ddb: DynamoDBClient, table: str, group_id: str, detector_id: str | None = None) -> AnomalyGroup:
    """The group with this id; without a detector id the table is scanned (a CLI convenience, small tables)."""
    if detector_id:
        group = get_group(ddb, table, detector_id, group_id)
    else:
        items = _scan(
            ddb,
            table,
            FilterExpression="sk = :sk",
            ExpressionAttributeValues={":sk": {"S": f"GROUP#{group_id}"}},
        )
        if len(items) > 1:
            owners = ", ".join(sorted(str(from_attr(i["pk"])) for i in items))
            raise StoreError(f"anomaly group {group_id} exists for several detectors ({owners}): name the detector")
        group = _unpack_group(items[0]) if items else None
    if group is None:
        raise StoreError(
            f"no anomaly group {group_id!r} in table {table}"
            + (f" for detector {detector_id}" if detector_id else "")
            + " (see `python -m simulator feedback --list`; groups expire after "
            + f"{GROUP_TTL_DAYS} days)"
        )
    return group


def list_groups(ddb: DynamoDBClient, table: str, detector_id: str | None = None, limit: int = 20) -> list[AnomalyGroup]:
    """The newest groups first (by start time)."""
    if detector_id:
        items = _query(ddb, table, detector_id, "GROUP#")
    else:
        items = _scan(
            ddb, table, FilterExpression="begins_with(sk, :p)", ExpressionAttributeValues={":p": {"S": "GROUP#"}}
        )
    groups = [_unpack_group(i) for i in items]
    groups.sort(key=lambda g: (to_utc(g.start), g.group_id), reverse=True)
    return groups[:limit] if limit > 0 else groups


# ----------------------------------------------------------------------------------------------------------------
# Alert ledger
# ----------------------------------------------------------------------------------------------------------------
def _alert_key(detector_id: str, group_id: str, interval: datetime) -> dict[str, Any]:
    return _key(detector_id, "ALERT", group_id, _iso(interval))


def claim_alert(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    group_id: str,
    interval: datetime,
    event_id: str,
    now: float | None = None,
) -> str:
    """Record the intent to publish, BEFORE publishing (conditional put); say what to do.

    Returns ``ALERT_NEW`` (first attempt: publish), ``ALERT_PENDING`` (an earlier attempt claimed it and crashed
    before ``mark_alert_sent``: publish again — nothing is lost; a duplicate is only possible when a run died in
    the instant between SNS accepting the message and the ledger update) or ``ALERT_SENT`` (skip).
    """
    try:
        ddb.put_item(
            TableName=table,
            Item={
                **_alert_key(detector_id, group_id, interval),
                "status": {"S": "PENDING"},
                "event_id": {"S": event_id},
                "claimed_at": {"N": str(int(time.time() if now is None else now))},
                "ttl": {"N": str(_ttl(ALERT_TTL_DAYS, now))},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return ALERT_NEW
    except ddb.exceptions.ConditionalCheckFailedException:
        pass
    resp = ddb.get_item(TableName=table, Key=_alert_key(detector_id, group_id, interval), ConsistentRead=True)
    status = from_attr(resp["Item"]["status"]) if "Item" in resp else "PENDING"
    return ALERT_SENT if status == "SENT" else ALERT_PENDING


def mark_alert_sent(
    ddb: DynamoDBClient, table: str, detector_id: str, group_id: str, interval: datetime, message_id: str
) -> None:
    ddb.update_item(
        TableName=table,
        Key=_alert_key(detector_id, group_id, interval),
        UpdateExpression="SET #status = :sent, message_id = :mid",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":sent": {"S": "SENT"}, ":mid": {"S": message_id}},
    )


def publish_once(
    ddb: DynamoDBClient, sns: SNSClient, table: str, detector_id: str, message: AlertMessage, topic_arn: str
) -> str:
    """Publish ``message`` at most once per (``message.group_id``, ``message.interval``): claim, publish, mark.

    Returns what :func:`claim_alert` said: ``ALERT_SENT`` means nothing was published (an earlier attempt did it);
    ``ALERT_NEW`` or ``ALERT_PENDING`` means it was published now. The one duplicate window is the one
    :func:`claim_alert` documents: a run dying between SNS accepting the message and :func:`mark_alert_sent`.
    """
    return send_once(
        ddb, table, detector_id, message, lambda: sns.publish(**message.publish_kwargs(topic_arn))["MessageId"]
    )


def send_once(ddb: DynamoDBClient, table: str, detector_id: str, message: AlertMessage, send: Callable[[], str]) -> str:
    """:func:`publish_once` for any target: claim, ``send()`` (returns the delivery's message id), mark. The ledger
    key is (``message.group_id``, ``message.interval``); ``sentinel_core.routing`` keys each named alert apart."""
    status = claim_alert(ddb, table, detector_id, message.group_id, message.interval, message.event_id)
    if status == ALERT_SENT:
        return status
    message_id = send()
    mark_alert_sent(ddb, table, detector_id, message.group_id, message.interval, message_id)
    return status


def alert_status(ddb: DynamoDBClient, table: str, detector_id: str, group_id: str, interval: datetime) -> str | None:
    resp = ddb.get_item(TableName=table, Key=_alert_key(detector_id, group_id, interval), ConsistentRead=True)
    return str(from_attr(resp["Item"]["status"])) if "Item" in resp else None


# ----------------------------------------------------------------------------------------------------------------
# Feedback
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Feedback:
    detector_id: str
    group_id: str
    series_id: str
    is_anomaly: bool
    timestamps: tuple[datetime, ...]  # interval starts of the series' points in the group
    created_at: str
    status: str = "pending"
    extra: dict[str, Any] = field(default_factory=dict)


def _feedback_key(detector_id: str, group_id: str, series_id: str) -> dict[str, Any]:
    return _key(detector_id, "FEEDBACK", group_id, series_id)


def put_feedback(
    ddb: DynamoDBClient,
    table: str,
    group: AnomalyGroup,
    series_id: str,
    is_anomaly: bool,
    now: float | None = None,
) -> Feedback:
    """Store a verdict: in the group's feedback map and as a pending feedback item the detector applies."""
    stamps = sorted({to_utc(p.timestamp) for p in group.points if p.series.id == series_id})
    if not stamps:
        raise StoreError(
            f"series {series_id!r} is not part of anomaly group {group.group_id}; its series are: "
            + ", ".join(group.series_ids)
        )
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    ddb.update_item(
        TableName=table,
        Key=_key(group.detector_id, "GROUP", group.group_id),
        UpdateExpression="SET feedback.#sid = :v",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#sid": series_id},
        ExpressionAttributeValues={":v": {"BOOL": is_anomaly}},
    )
    ddb.put_item(
        TableName=table,
        Item={
            **_feedback_key(group.detector_id, group.group_id, series_id),
            "group_id": {"S": group.group_id},
            "series_id": {"S": series_id},
            "is_anomaly": {"BOOL": is_anomaly},
            "timestamps": to_attr([_iso(t) for t in stamps]),
            "created_at": {"S": created},
            "status": {"S": "pending"},
            "ttl": {"N": str(_ttl(FEEDBACK_TTL_DAYS, now))},
        },
    )
    group.feedback[series_id] = is_anomaly
    return Feedback(group.detector_id, group.group_id, series_id, is_anomaly, tuple(stamps), created)


def _feedback_from_item(detector_id: str, item: Mapping[str, Any]) -> Feedback:
    raw = from_item(item)
    return Feedback(
        detector_id=detector_id,
        group_id=str(raw["group_id"]),
        series_id=str(raw["series_id"]),
        is_anomaly=bool(raw["is_anomaly"]),
        timestamps=tuple(datetime.fromisoformat(t) for t in raw.get("timestamps", [])),
        created_at=str(raw.get("created_at", "")),
        status=str(raw.get("status", "pending")),
    )


def list_feedback(ddb: DynamoDBClient, table: str, detector_id: str, pending_only: bool = False) -> list[Feedback]:
    kwargs: dict[str, Any] = {}
    if pending_only:
        kwargs = {
            "FilterExpression": "#status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "values": {":pending": {"S": "pending"}},
        }
    items = _query(ddb, table, detector_id, "FEEDBACK#", **kwargs)
    out = [_feedback_from_item(detector_id, i) for i in items]
    out.sort(key=lambda f: (f.created_at, f.group_id, f.series_id))
    return out


def mark_feedback_applied(ddb: DynamoDBClient, table: str, fb: Feedback, applied_at: str) -> bool:
    """Mark applied unless the person changed the verdict meanwhile (then it stays pending for the next run)."""
    try:
        ddb.update_item(
            TableName=table,
            Key=_feedback_key(fb.detector_id, fb.group_id, fb.series_id),
            UpdateExpression="SET #status = :applied, applied_at = :at",
            ConditionExpression="created_at = :created AND is_anomaly = :verdict",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":applied": {"S": "applied"},
                ":at": {"S": applied_at},
                ":created": {"S": fb.created_at},
                ":verdict": {"BOOL": fb.is_anomaly},
            },
        )
        return True
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
