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
* ``sk = RUN#<interval start>``   one detector execution of one interval (the console's run status and data quality):
  ``status`` (COMPLETED / FAILED / FAILED_TO_SCHEDULE), counts (records, rejected by reason, late, duplicates, series
  seen, silent, anomalies, groups) and, gzip JSON in ``scores``, every series' value / expected / band / severity
  that interval (what the console plots around a group; see ``put_run``).

Group items also carry ``gsi_start`` (``<start>#<group id>``) and ``dims`` (``NAME=VALUE`` tokens): the sort key
of the ``GROUPS_BY_START`` index (partition ``pk``), so the console lists groups by time range with a Query, never
a Scan, and filters them by score, measure and dimension value.

TTL is storage retention, so it uses the wall clock (never the simulated event time).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from sentinel_core import capacity, layout, objects, state_file
from sentinel_core.intervals import to_utc
from sentinel_core.model import AnomalyGroup, PointScore
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
RUN_TTL_DAYS = 90  # like the groups: the console shows the runs and data quality of the groups it shows
STATE_FILE = layout.STATE_FILE  # sentinel_core.state_file
LEGACY_STATE_FILE = "model/state.json.gz"  # the JSON state of earlier releases (read, never written)
GROUPS_BY_START = "groups-by-start"  # GSI: pk + gsi_start (infra/state.py declares it)
# Series whose scores a run item keeps in full; beyond, only the anomalous ones (gzip JSON of ~60 bytes a series:
# 5000 stay far below DynamoDB's 400 KB item limit).
MAX_RUN_SERIES = 5000

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
def state_key(spec: PipelineSpec, shard: int | None = None) -> str:
    """The single detector's state, or one shard's (``layout.state_key``)."""
    return layout.state_key(spec, shard)


def legacy_state_key(spec: PipelineSpec) -> str:
    """Where releases before the compact state file kept it (one gzip-9 JSON object): read once, then replaced."""
    return layout.state_prefix(spec) + LEGACY_STATE_FILE


SeriesRecords = Iterator[tuple[str, bytes]]
# The state is the detector's own output, not input data: the gzip-bomb cap of input objects (1 GiB) does not fit it
# (a function at Lambda's 10,240 MB holds ~500,000 series, ~2.3 KB each unpacked: more than 1 GiB). Its unpacked size
# is bounded by the model the function holds, so the cap is the largest memory a Lambda function can have.
STATE_MAX_DECOMPRESSED = capacity.MAX_LAMBDA_MEMORY_MB << 20


def read_state(body: objects.Readable) -> tuple[dict[str, Any], SeriesRecords]:
    """A state object, streamed: (the run state without the series, the series one by one as (id, the model's
    per-series record)). Both encodings are read: the compact state file (``sentinel_core.state_file``) and the
    JSON state of earlier releases (base64 records; its series are then in memory already)."""
    f = objects.open_binary(body, max_decompressed=STATE_MAX_DECOMPRESSED)
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


def load_state(s3: S3Client, bucket: str, spec: PipelineSpec, shards: int = 1) -> dict[str, Any] | None:
    """The saved state as one JSON-shaped dict (series records base64-encoded under ``detector.series``, as
    ``Detector.to_state``), or None when the detector never ran. For tools and tests: the detector itself streams
    it (:func:`recover_state`). ``shards`` > 1: the sharded detector's states as one (shard 0's header, every
    shard's series; None while any shard has none)."""
    if shards > 1:
        parts = [_load_one(s3, bucket, [state_key(spec, k)]) for k in range(shards)]
        found = [p for p in parts if p is not None]
        if len(found) < shards:
            return None
        for p in found[1:]:
            found[0]["detector"]["series"].update(p["detector"]["series"])
        return found[0]
    return _load_one(s3, bucket, [state_key(spec), legacy_state_key(spec)])


def _load_one(s3: S3Client, bucket: str, keys: list[str]) -> dict[str, Any] | None:
    for key in keys:
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
    s3: S3Client, bucket: str, spec: PipelineSpec, parse: Callable[[objects.Readable], T], shard: int | None = None
) -> RecoveredState[T]:
    """The saved state parsed by ``parse`` from the object's body (``parse`` raises on an unreadable or implausible
    state); when the current object is not usable, its previous versions (the bucket is versioned), newest first,
    at most ``MAX_STATE_VERSIONS``; when none is usable ``state`` is None (the caller re-warms from history).

    No state object at all is not a problem: ``RecoveredState(None)`` with no problems (the detector never ran); a
    state of an earlier release (``legacy_state_key``) is read when there is no compact one yet. ``shard``: one
    shard's state of the sharded detector (no legacy state: shards came with the compact file).
    """
    key = state_key(spec, shard)
    out: RecoveredState[T] = RecoveredState(None)
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        if shard is not None:
            return out
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
    s3: S3Client,
    bucket: str,
    spec: PipelineSpec,
    header: Mapping[str, Any],
    records: Iterable[tuple[str, bytes]],
    shard: int | None = None,
) -> int:
    """Write the compact state file (one PUT: readers see the old or the new state, never half); returns its size.

    ``header``: the run state without the series; ``records``: (series id, packed series) in id order."""
    # Written to a temporary file (Lambda's /tmp), not memory: the compressed state is never held beside the model.
    # Its CRC32 is taken as it is written and sent with the PUT: S3 checks the object against it, and botocore does
    # not read the file again to compute one (over HTTPS its aws-chunked wrapper re-copies a 1 MiB buffer per 16 KiB
    # sent: ~0.2 s of CPU per 75 MB, the state of 50,000 series).
    with tempfile.TemporaryFile() as fh:
        crc = _Crc32Writer(fh)
        state_file.write(crc, dict(header), records)
        size = fh.tell()
        fh.seek(0)
        s3.put_object(
            Bucket=bucket,
            Key=state_key(spec, shard),
            Body=fh,
            ContentType="application/octet-stream",
            ChecksumCRC32=crc.checksum(),
        )
    return size


class _Crc32Writer:
    """A write-through file that keeps the CRC32 of what passed (S3's ``ChecksumCRC32``: base64 of big-endian)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._crc = 0

    def write(self, data: bytes, /) -> int:
        self._crc = zlib.crc32(data, self._crc)
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()

    def checksum(self) -> str:
        return base64.b64encode(self._crc.to_bytes(4, "big")).decode("ascii")


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


def group_from_item(item: Mapping[str, Any]) -> AnomalyGroup:
    """A group from its DynamoDB item (attribute values, e.g. a stream record's new image)."""
    return _unpack_group(item)


def save_group(ddb: DynamoDBClient, table: str, group: AnomalyGroup, now: float | None = None) -> None:
    """Insert or update a group; the feedback map people wrote is kept."""
    ddb.update_item(
        TableName=table,
        Key=_key(group.detector_id, "GROUP", group.group_id),
        UpdateExpression=(
            "SET #data = :data, #start = :start, #end = :end, score = :score, measure = :measure, "
            "series_ids = :series, #ttl = :ttl, group_id = :gid, feedback = if_not_exists(feedback, :empty), "
            "gsi_start = :gsi, dims = :dims"
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
            ":gsi": {"S": f"{_iso(group.start)}#{group.group_id}"},
            ":dims": to_attr(dimension_tokens(group)),
        },
    )


def dimension_tokens(group: AnomalyGroup) -> list[str]:
    """``NAME=VALUE`` of every dimension value in the group's series (a list: ``contains`` filters on it)."""
    return sorted({f"{name}={value}" for p in group.points for name, value in p.series.dimensions})


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
        extra={"applied_at": str(raw["applied_at"])} if raw.get("applied_at") else {},
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


# ----------------------------------------------------------------------------------------------------------------
# Detector executions (run status and data quality per interval)
# ----------------------------------------------------------------------------------------------------------------
RUN_COMPLETED = "COMPLETED"
RUN_FAILED = "FAILED"
RUN_SKIPPED = "FAILED_TO_SCHEDULE"  # Lookout's status for an interval that was never run (here: backlog skipped)


@dataclass
class RunRecord:
    """What the detector did with one interval (Lookout's execution status + its data quality metrics)."""

    interval: datetime
    status: str = RUN_COMPLETED
    failure_reason: str = ""
    records: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> lines
    late: int = 0  # records that arrived after the interval was scored (counted, not scored)
    duplicates: int = 0
    series_seen: int = 0  # series with a value this interval
    silent: int = 0  # series the model knows that sent nothing this interval
    anomalies: int = 0
    groups: int = 0
    scores: list[PointScore] = field(default_factory=list)
    scores_truncated: bool = False

    def counts(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "rejected": dict(sorted(self.rejected.items())),
            "late": self.late,
            "duplicates": self.duplicates,
            "series_seen": self.series_seen,
            "silent": self.silent,
            "anomalies": self.anomalies,
            "groups": self.groups,
        }


def _run_key(detector_id: str, interval: datetime) -> dict[str, Any]:
    return {"pk": {"S": pk(detector_id)}, "sk": {"S": f"RUN#{_iso(interval)}"}}


def _num(x: float) -> float | None:
    return None if x != x else round(x, 6)  # NaN (no value this interval) -> null


def _pack_scores(points: Sequence[PointScore]) -> bytes:
    rows = {p.series.id: [_num(p.value), _num(p.expected), _num(p.lower), _num(p.upper), p.score] for p in points}
    return gzip.compress(json.dumps(rows, separators=(",", ":")).encode(), mtime=0)


def put_run(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    run: RunRecord,
    anomaly_threshold: float,
    now: float | None = None,
) -> None:
    """Write (replace) the execution record of one interval; ``late`` is kept when a replay rewrites it."""
    points = run.scores
    truncated = run.scores_truncated
    if len(points) > MAX_RUN_SERIES:
        points = [p for p in points if not p.warming_up and p.score >= anomaly_threshold][:MAX_RUN_SERIES]
        truncated = True
    counts = run.counts()
    ddb.update_item(
        TableName=table,
        Key=_run_key(detector_id, run.interval),
        UpdateExpression=(
            "SET #status = :status, failure_reason = :reason, counts = :counts, scores = :scores, "
            "scores_truncated = :trunc, late = if_not_exists(late, :zero), #ttl = :ttl"
        ),
        ExpressionAttributeNames={"#status": "status", "#ttl": "ttl"},
        ExpressionAttributeValues={
            ":status": {"S": run.status},
            ":reason": {"S": run.failure_reason},
            ":counts": to_attr(counts),
            ":scores": {"B": _pack_scores(points)},
            ":trunc": {"BOOL": truncated},
            ":zero": {"N": "0"},
            ":ttl": {"N": str(_ttl(RUN_TTL_DAYS, now))},
        },
    )


def add_to_run(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    run: RunRecord,
    anomaly_threshold: float,
    now: float | None = None,
) -> None:
    """Add a part of an interval to its execution record (the sharded detector: a shard that failed scores the
    interval on a later run): counts are added, scores joined (the anomalous ones only beyond ``MAX_RUN_SERIES``);
    without a record yet this is :func:`put_run`. ``run.failure_reason`` replaces the record's."""
    got = ddb.get_item(TableName=table, Key=_run_key(detector_id, run.interval), ConsistentRead=True).get("Item")
    if not got:
        put_run(ddb, table, detector_id, run, anomaly_threshold, now)
        return
    old = _run_from_item(got)
    counts = dict(old.counts)
    for k, v in run.counts().items():
        if k == "rejected":
            merged = {str(r): int(n) for r, n in dict(counts.get("rejected") or {}).items()}
            for r, n in v.items():
                merged[r] = merged.get(r, 0) + int(n)
            counts["rejected"] = dict(sorted(merged.items()))
        else:
            counts[k] = int(counts.get(k, 0) or 0) + int(v)
    rows = old.scores()
    rows.update(json.loads(gzip.decompress(_pack_scores(run.scores))))
    truncated = old.scores_truncated or run.scores_truncated
    if len(rows) > MAX_RUN_SERIES:
        rows = {k: r for k, r in rows.items() if float(r[4] or 0.0) >= anomaly_threshold}
        truncated = True
    ddb.update_item(
        TableName=table,
        Key=_run_key(detector_id, run.interval),
        UpdateExpression="SET failure_reason = :reason, counts = :counts, scores = :scores, scores_truncated = :trunc",
        ExpressionAttributeValues={
            ":reason": {"S": run.failure_reason},
            ":counts": to_attr(counts),
            ":scores": {"B": gzip.compress(json.dumps(rows, separators=(",", ":")).encode(), mtime=0)},
            ":trunc": {"BOOL": truncated},
        },
    )


def put_skipped_runs(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    intervals: Sequence[datetime],
    reason: str,
    now: float | None = None,
) -> None:
    """Execution records for intervals that were never scored (one PutItem each: the detector's grant has no
    batch writes, and a backlog is skipped rarely — at most ``MAX_BACKLOG`` items once)."""
    for t in intervals:
        ddb.put_item(
            TableName=table,
            Item={
                **_run_key(detector_id, t),
                "status": {"S": RUN_SKIPPED},
                "failure_reason": {"S": reason},
                "counts": to_attr(RunRecord(t).counts()),
                "ttl": {"N": str(_ttl(RUN_TTL_DAYS, now))},
            },
        )


def add_late(ddb: DynamoDBClient, table: str, detector_id: str, interval: datetime, records: int) -> None:
    """Count records that arrived after ``interval`` was scored (an ADD: safe when retried only as often as the run)."""
    ddb.update_item(
        TableName=table,
        Key=_run_key(detector_id, interval),
        UpdateExpression="ADD late :n",
        ExpressionAttributeValues={":n": {"N": str(int(records))}},
    )


@dataclass(frozen=True)
class StoredRun:
    interval: datetime
    status: str
    failure_reason: str
    counts: dict[str, Any]
    late: int
    scores_truncated: bool
    raw_scores: bytes | None

    def scores(self) -> dict[str, list[float | None]]:
        """series id -> [value, expected, lower, upper, severity] (value None when the series sent nothing)."""
        if not self.raw_scores:
            return {}
        data = json.loads(gzip.decompress(self.raw_scores))
        return data if isinstance(data, dict) else {}


def _run_from_item(item: Mapping[str, Any]) -> StoredRun:
    raw = from_item(item)
    return StoredRun(
        interval=datetime.fromisoformat(str(raw["sk"])[len("RUN#") :]),
        status=str(raw.get("status", RUN_COMPLETED)),
        failure_reason=str(raw.get("failure_reason", "")),
        counts=dict(raw.get("counts") or {}),
        late=int(raw.get("late", 0) or 0),
        scores_truncated=bool(raw.get("scores_truncated", False)),
        raw_scores=raw.get("scores"),
    )


def query_runs(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    start: datetime | None,
    end: datetime | None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
    start_key: Mapping[str, Any] | None = None,
    with_scores: bool = True,
) -> tuple[list[StoredRun], dict[str, Any] | None]:
    """Execution records with ``start <= interval <= end`` (a key range Query; None = unbounded); at most ``limit``.

    Returns the runs and DynamoDB's LastEvaluatedKey (None on the last page).
    """
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": {
            ":pk": {"S": pk(detector_id)},
            ":a": {"S": f"RUN#{_iso(start)}" if start else "RUN#"},
            ":b": {"S": f"RUN#{_iso(end)}" if end else "RUN#~"},
        },
        "ScanIndexForward": not newest_first,
    }
    if not with_scores:
        request["ProjectionExpression"] = "sk, #status, failure_reason, counts, late, scores_truncated"
        request["ExpressionAttributeNames"] = {"#status": "status"}
    if start_key:
        request["ExclusiveStartKey"] = dict(start_key)
    runs: list[StoredRun] = []
    while True:
        if limit is not None:
            request["Limit"] = limit - len(runs)
        resp: Any = ddb.query(**request)
        runs.extend(_run_from_item(i) for i in resp.get("Items", []))
        last = resp.get("LastEvaluatedKey")
        if not last or (limit is not None and len(runs) >= limit):
            return runs, last or None
        request["ExclusiveStartKey"] = last


def _group_query(
    table: str,
    detector_id: str,
    start: datetime | None,
    end: datetime | None,
    min_score: float,
    measure: str | None,
    dimensions: Sequence[str],
) -> dict[str, Any]:
    """A Query on ``GROUPS_BY_START``: groups starting in [start, end] with the score / measure / dimension filters."""
    values: dict[str, Any] = {
        ":pk": {"S": pk(detector_id)},
        ":t": to_attr(float(min_score)),
        ":a": {"S": _iso(start) if start else "0"},  # every ISO-8601 time sorts after "0" and before "~"
        ":b": {"S": f"{_iso(end)}#~" if end else "~"},
    }
    filters = ["score >= :t"]
    if measure:
        filters.append("measure = :m")
        values[":m"] = {"S": measure}
    for i, token in enumerate(dimensions):
        filters.append(f"contains(dims, :d{i})")
        values[f":d{i}"] = {"S": token}
    return {
        "TableName": table,
        "IndexName": GROUPS_BY_START,
        "KeyConditionExpression": "pk = :pk AND gsi_start BETWEEN :a AND :b",
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeValues": values,
    }


def query_groups(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    min_score: float = 0.0,
    measure: str | None = None,
    dimensions: Sequence[str] = (),
    limit: int = 100,
    start_key: Mapping[str, Any] | None = None,
    max_pages: int = 20,
) -> tuple[list[AnomalyGroup], dict[str, Any] | None]:
    """Groups starting in [start, end], newest first, through the ``GROUPS_BY_START`` index (Query, never Scan).

    ``min_score``/``measure``/``dimensions`` (``NAME=VALUE``, all must match) are filter expressions, so a page
    may hold fewer than ``limit`` groups; at most ``max_pages`` reads per call bound the latency. Returns the
    groups and the key to continue from (None when there is nothing more).
    """
    request = _group_query(table, detector_id, start, end, min_score, measure, dimensions)
    request["ScanIndexForward"] = False
    if start_key:
        request["ExclusiveStartKey"] = dict(start_key)
    found: list[AnomalyGroup] = []
    for _ in range(max_pages):
        request["Limit"] = limit - len(found)
        resp: Any = ddb.query(**request)
        found.extend(_unpack_group(i) for i in resp.get("Items", []))
        last = resp.get("LastEvaluatedKey")
        if not last:
            return found, None
        if len(found) >= limit:
            return found, last
        request["ExclusiveStartKey"] = last
    return found, request.get("ExclusiveStartKey")


def group_feedback(
    ddb: DynamoDBClient, table: str, detector_id: str, group_id: str, series_id: str | None = None
) -> list[Feedback]:
    """The verdicts on one group (or one of its series): a key prefix Query."""
    prefix = f"FEEDBACK#{group_id}#" + (series_id or "")
    items = _query(ddb, table, detector_id, prefix)
    out = [_feedback_from_item(detector_id, i) for i in items]
    if series_id is not None:
        out = [f for f in out if f.series_id == series_id]
    return sorted(out, key=lambda f: f.series_id)


def count_groups(
    ddb: DynamoDBClient,
    table: str,
    detector_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    min_score: float = 0.0,
    measure: str | None = None,
    dimensions: Sequence[str] = (),
    max_pages: int = 50,
) -> tuple[dict[str, int], str | None, bool]:
    """Groups per measure matching ``query_groups``' filters (only ``measure``/``gsi_start`` read), the earliest
    start, and whether the count is complete (False when ``max_pages`` index pages did not reach the end)."""
    counts: dict[str, int] = {}
    earliest: str | None = None
    key: dict[str, Any] | None = None
    for _ in range(max_pages):
        request = _group_query(table, detector_id, start, end, min_score, measure, dimensions)
        request["ProjectionExpression"] = "measure, gsi_start"
        if key:
            request["ExclusiveStartKey"] = key
        resp: Any = ddb.query(**request)
        for item in resp.get("Items", []):
            m = str(from_attr(item["measure"]))
            counts[m] = counts.get(m, 0) + 1
            first = str(from_attr(item["gsi_start"])).split("#")[0]
            earliest = first if earliest is None or first < earliest else earliest
        key = resp.get("LastEvaluatedKey")
        if not key:
            return counts, earliest, True
    return counts, earliest, False
