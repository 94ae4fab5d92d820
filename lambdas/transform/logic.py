"""Firehose transform logic: plain functions, no AWS, no Powertools (the handler in ``app.py`` is a thin shell).

One Firehose record in, one outcome out:

* ``Ok``: the payload validated against the pipeline spec; ``data`` is the normalised JSON line(s) and the
  dynamic-partitioning keys name the interval of the record's OWN timestamp (``layout.partition_keys``).
* ``ProcessingFailed``: the payload is unusable. The reason code and message are logged and counted by the handler.

**Identity (IoT pipelines).** The topic rule does not forward the device's bytes as they are: it wraps them in an
envelope ``{"payload": "<the MQTT payload, base64>", "thing": "<topic level of the thing name>"}``
(``SELECT encode(*, 'base64') AS payload, topic(N) AS thing``, see ``spec.iot_rule_sql``). The payload is opaque
inside it, so a device cannot set or shadow ``thing``; the topic level is the thing name because the device policy
lets a certificate publish on its own thing's topic only. Every document's location (the spec's identity
dimension) must be one the thing may report for (``PipelineSpec.allowed_locations``: its own name, or its gateway
list), else the record fails with ``identity_mismatch``; a record without the envelope fails with
``missing_identity`` (it did not come through the rule).

Reason codes of this module, beside those of ``sentinel_core.records``: ``not_base64``, ``missing_identity``,
``identity_mismatch``, ``too_many_documents``, ``mixed_intervals``, ``mixed_shards``, ``response_too_large``,
``internal_error``.

**Shards** (``DETECTOR_SHARDS`` > 1, the detector's fan-out): the record's shard is ``state_file.shard_of`` of its
dimension values in ``spec.dimensions`` order (every measure of a record goes to the same shard) and becomes the
``shard`` partition key (``layout.partition_keys``). A record holding documents of several shards fails with
``mixed_shards``, as one of several intervals does: Firehose gives one record one folder.

Where does the failure reason end up? The Firehose response schema has no per-record reason field (only
``recordId``, ``result``, ``data`` and ``metadata``), and Firehose's ``processing-failed`` error documents carry
``errorCode``/``errorMessage`` of *Firehose's* observation (``Lambda.ProcessingFailedStatus``) plus ``rawData`` and
``arrivalTimestamp`` of the record it received. So failed records are returned with their ORIGINAL ``data``
unchanged (whatever Firehose writes as ``rawData``, it is the producer's bytes, never lost), the reason goes to
the function's structured log and a per-reason metric, and :func:`explain_error_document` re-derives the exact
reason from an error document: validation is deterministic given ``rawData`` and ``arrivalTimestamp``.

Speed: a record is decoded once, its interval computed once (integer arithmetic on the epoch), the output line
is assembled from cached pieces (``Record.to_json_line``), partition keys and their serialised size are cached
per interval, and response sizes are computed arithmetically, never by serialising.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sentinel_core import layout, state_file
from sentinel_core.records import Record, RecordError, latest_accepted, validate_until
from sentinel_core.spec import IOT_ENVELOPE_PAYLOAD, IOT_ENVELOPE_THING, THING_NAME, PipelineSpec

OK = "Ok"
FAILED = "ProcessingFailed"
INTERNAL_ERROR = "internal_error"
RESPONSE_TOO_LARGE = "response_too_large"
# Synchronous Lambda response limit: 6 MB (6,291,456 bytes), with a small margin for the runtime's framing. A failed
# entry ({recordId, result, data}) is smaller than the request entry ({recordId, approximateArrivalTimestamp, data}),
# so failing every record always fits when the request did.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 - 1024
_COMPACT = (",", ":")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3 us a record; nothing mutates it
class Outcome:
    """What became of one Firehose record."""

    record_id: str
    original_b64: str  # the ``data`` Firehose sent, returned unchanged when the record fails
    in_bytes: int  # decoded payload size
    ok: bool
    lines: str = ""  # normalised JSON lines (Ok only)
    partition_keys: dict[str, str] = field(default_factory=dict)
    records: int = 0  # JSON documents in the payload (Ok only; usually 1)
    timestamp: datetime | None = None  # the record's own time (Ok only)
    late: bool = False  # arrived after its interval closed (+ tolerance): delivered, but the detector may miss it
    reason: str = ""
    message: str = ""
    thing: str = ""  # IoT: the publishing thing (from the rule's envelope)

    @property
    def result(self) -> str:
        return OK if self.ok else FAILED


def arrival_datetime(arrival_ms: float) -> datetime:
    return datetime.fromtimestamp(arrival_ms / 1000.0, tz=UTC)


# ------------------------------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------------------------------
def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError("not_json", f"{what} is not JSON: {exc.msg} at line {exc.lineno} col {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:  # integers beyond Python's digit limit, absurd nesting
        raise RecordError("not_json", f"{what} is not usable JSON: {str(exc)[:200]}") from None


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("not_utf8", f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text or text.isspace():
        raise RecordError("empty", "payload is empty")
    return text


def split_documents(text: str, limit: int) -> list[Any]:
    """The JSON documents of one payload: one object, or several separated by whitespace (the IoT rule's
    ``separator``, a Kinesis producer batching lines). At most ``limit`` (``too_many_documents``)."""
    try:
        return [_loads(text, "payload")]
    except RecordError as exc:
        cause = exc.__cause__
        if not isinstance(cause, json.JSONDecodeError) or not cause.msg.startswith("Extra data"):
            raise
    decoder = json.JSONDecoder()
    out: list[Any] = []
    idx, n = 0, len(text)
    while True:
        while idx < n and text[idx] in " \t\r\n":
            idx += 1
        if idx >= n:
            return out
        if len(out) >= limit:
            raise RecordError(
                "too_many_documents",
                f"the message holds more than {limit} JSON documents (max_documents_per_message); send fewer "
                "readings per message",
            )
        try:
            obj, idx = decoder.raw_decode(text, idx)
        except json.JSONDecodeError as err:
            raise RecordError(
                "not_json", f"document {len(out) + 1} is not JSON: {err.msg} at line {err.lineno} col {err.colno}"
            ) from None
        except (ValueError, RecursionError) as err:
            raise RecordError("not_json", f"document {len(out) + 1} is not usable JSON: {str(err)[:200]}") from None
        out.append(obj)


def unwrap_iot_envelope(raw: bytes) -> tuple[str, bytes]:
    """(thing name, device payload) of the IoT rule's envelope; ``missing_identity`` when it is not one."""
    try:
        env = json.loads(raw)
    except (ValueError, RecursionError):
        env = None
    thing = env.get(IOT_ENVELOPE_THING) if isinstance(env, dict) else None
    payload = env.get(IOT_ENVELOPE_PAYLOAD) if isinstance(env, dict) else None
    if not isinstance(thing, str) or not isinstance(payload, str):
        raise RecordError(
            "missing_identity",
            f"the record did not come through the stack's IoT rule (no {IOT_ENVELOPE_THING!r}/"
            f"{IOT_ENVELOPE_PAYLOAD!r} envelope): the publishing device is unknown, so it is not accepted",
        )
    if not THING_NAME.fullmatch(thing):
        raise RecordError("missing_identity", f"the envelope's thing {thing[:140]!r} is not an AWS IoT thing name")
    try:
        return thing, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordError("not_base64", f"envelope payload: {exc}") from None


def decode_documents(data: bytes, spec: PipelineSpec, now: datetime) -> list[Record]:
    """Validate one payload (no envelope): its documents as records. Raises ``RecordError`` with the first problem."""
    docs = split_documents(_text(data), spec.max_documents_per_message)
    return _validate_all(docs, spec, latest_accepted(spec, now))


def _validate_all(docs: list[Any], spec: PipelineSpec, latest: datetime) -> list[Record]:
    out: list[Record] = []
    for i, obj in enumerate(docs, 1):
        try:
            out.append(validate_until(obj, spec, latest))
        except RecordError as err:
            raise RecordError(err.reason, f"document {i}: {err}") from None
    return out


def check_identity(records: Sequence[Record], thing: str, spec: PipelineSpec) -> None:
    """Every record's location must be one ``thing`` may report for (``identity_mismatch`` otherwise)."""
    allowed = spec.allowed_locations(thing)
    for i, r in enumerate(records, 1):
        location = r.dimensions[0]
        if location not in allowed:
            where = f"document {i}: " if len(records) > 1 else ""
            shown = ", ".join(allowed[:5]) + (" ..." if len(allowed) > 5 else "")
            raise RecordError(
                "identity_mismatch",
                f"{where}{spec.identity_dimension} {location!r} is not a location of the publishing thing "
                f"{thing!r} (it may report for: {shown}); a device speaks only for its own location",
            )


def is_late(ts: datetime, arrival: datetime, spec: PipelineSpec, tolerance_seconds: int) -> bool:
    """True when the record arrived after its interval closed plus ``tolerance_seconds``."""
    step = spec.step_seconds
    close = _start_of(ts, step) + step
    return arrival.timestamp() > close + tolerance_seconds


def _start_of(ts: datetime, step: int) -> int:
    """Epoch second of the interval start ``ts`` falls in (intervals are aligned to the epoch)."""
    return int(ts.timestamp() // step) * step


_KEYS: dict[tuple[int, int, int], tuple[dict[str, str], int]] = {}


def _partition(spec: PipelineSpec, start: int, shard: int = -1) -> tuple[dict[str, str], int]:
    """Partition keys of the interval starting at epoch ``start`` (and of ``shard``; -1: not sharded) and their
    compact-JSON length (cached per interval and shard)."""
    key = (id(spec), start, shard)
    hit = _KEYS.get(key)
    if hit is None:
        if len(_KEYS) > 4096:
            _KEYS.clear()
        keys = layout.partition_keys(datetime.fromtimestamp(start, tz=UTC), spec, None if shard < 0 else shard)
        hit = _KEYS[key] = (keys, len(json.dumps(keys, separators=_COMPACT)))
    return hit


_SHARDS: dict[tuple[tuple[str, ...], int], int] = {}


def shard_of_record(record: Record, shards: int) -> int:
    """The record's shard (its dimension values, ``spec.dimensions`` order); cached: a fleet repeats its values."""
    key = (record.dimensions, shards)
    hit = _SHARDS.get(key)
    if hit is None:
        if len(_SHARDS) > 65536:
            _SHARDS.clear()
        hit = _SHARDS[key] = state_file.shard_of(record.dimensions, shards)
    return hit


# ------------------------------------------------------------------------------------------------------------------
# One record
# ------------------------------------------------------------------------------------------------------------------
def transform_record(
    record_id: str,
    data_b64: str,
    arrival_ms: float,
    spec: PipelineSpec,
    late_tolerance_seconds: int = 0,
    shards: int = 1,
) -> Outcome:
    """Validate and normalise one Firehose record; invalid input becomes a failed ``Outcome`` with its reason."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        return Outcome(record_id, data_b64, len(data_b64), False, reason="not_base64", message=f"data: {exc}")
    thing = ""
    try:
        payload = raw
        if spec.ingest == "iot":
            thing, payload = unwrap_iot_envelope(raw)
        latest = datetime.fromtimestamp(arrival_ms / 1000.0 + spec.future_tolerance_seconds, tz=UTC)
        objs = split_documents(_text(payload), spec.max_documents_per_message)
        docs = [validate_until(objs[0], spec, latest)] if len(objs) == 1 else _validate_all(objs, spec, latest)
        if thing:
            check_identity(docs, thing, spec)
        step = spec.step_seconds
        start = _start_of(docs[0].timestamp, step)
        if len(docs) > 1:
            starts = {_start_of(r.timestamp, step) for r in docs}
            if len(starts) > 1:
                shown = ", ".join(sorted(f"{datetime.fromtimestamp(s, tz=UTC):%Y-%m-%d %H:%M}" for s in starts))
                raise RecordError(
                    "mixed_intervals",
                    f"one Firehose record holds documents of {len(starts)} intervals ({shown}); "
                    "send one record per document so each lands in its own interval folder",
                )
        shard = -1
        if shards > 1:
            shard = shard_of_record(docs[0], shards)
            if len(docs) > 1 and any(shard_of_record(r, shards) != shard for r in docs):
                raise RecordError(
                    "mixed_shards",
                    f"one Firehose record holds documents of several of the detector's {shards} shards; send one "
                    "record per document so each lands in its own shard folder",
                )
    except RecordError as exc:
        return Outcome(record_id, data_b64, len(raw), False, reason=exc.reason, message=str(exc), thing=thing)
    keys, _ = _partition(spec, start, shard)
    late = arrival_ms / 1000.0 > start + step + late_tolerance_seconds
    lines = docs[0].to_json_line(spec) if len(docs) == 1 else "".join(r.to_json_line(spec) for r in docs)
    return Outcome(
        record_id,
        data_b64,
        len(raw),
        True,
        lines=lines,
        partition_keys=keys,
        records=len(docs),
        timestamp=docs[0].timestamp,
        late=late,
        thing=thing,
    )


def safe_transform(
    record: Mapping[str, Any], spec: PipelineSpec, late_tolerance_seconds: int = 0, shards: int = 1
) -> Outcome:
    """``transform_record`` for one raw Firehose record dict; an unexpected exception fails only this record."""
    record_id = str(record["recordId"])
    data = record.get("data")
    try:
        if not isinstance(data, str):
            raise TypeError(f"record data must be a base64 string, got {type(data).__name__}")
        return transform_record(
            record_id, data, float(record["approximateArrivalTimestamp"]), spec, late_tolerance_seconds, shards
        )
    except Exception as exc:  # a bug or an odd event must not fail the whole batch
        return Outcome(
            record_id,
            data if isinstance(data, str) else "",
            0,
            False,
            reason=INTERNAL_ERROR,
            message=f"{type(exc).__name__}: {exc}",
        )


# ------------------------------------------------------------------------------------------------------------------
# The response
# ------------------------------------------------------------------------------------------------------------------
_OK_FRAME = len(
    json.dumps({"recordId": "", "result": OK, "data": "", "metadata": {"partitionKeys": ""}}, separators=_COMPACT)
)
_FAILED_FRAME = len(json.dumps({"recordId": "", "result": FAILED, "data": ""}, separators=_COMPACT))


def _id_size(record_id: str) -> int:
    """Serialised length of a record id without its quotes (Firehose's ids are plain ASCII: no escaping)."""
    if record_id.isascii() and record_id.isalnum():
        return len(record_id)
    return len(json.dumps(record_id)) - 2


def _size(entry: Mapping[str, Any]) -> int:
    """Serialised size of one response entry (+1 for the separator), without serialising the base64 payload."""
    rid = _id_size(entry["recordId"])
    data = len(entry["data"])  # base64: never escaped
    if entry["result"] == OK:
        keys = len(json.dumps(entry["metadata"]["partitionKeys"], separators=_COMPACT)) - 2  # replaces the ""
        return _OK_FRAME + rid + data + keys + 1
    return _FAILED_FRAME + rid + data + 1


def _b64_len(n: int) -> int:
    return (n + 2) // 3 * 4


def build_response(
    outcomes: Sequence[Outcome], max_bytes: int = MAX_RESPONSE_BYTES
) -> tuple[dict[str, Any], list[Outcome]]:
    """The Firehose response, kept under the Lambda response limit, and the outcomes as finally returned.

    Normalisation can make a record longer (epoch numbers become dates, ints become floats). Each record's
    fallback — failing it with its original data — is reserved up front, so an Ok record is only emitted when the
    rest of the batch still fits; records that do not fit fail with ``response_too_large`` (kept in the error
    prefix) instead of the whole invocation failing.
    """
    ids = [_id_size(o.record_id) for o in outcomes]
    fallback = [_FAILED_FRAME + rid + len(o.original_b64) + 1 for o, rid in zip(outcomes, ids, strict=True)]
    reserve = list(fallback)
    reserved = sum(reserve) + 64
    if reserved > max_bytes:
        # Cannot happen for a request Lambda accepted (see MAX_RESPONSE_BYTES); if it does, reserving is pointless:
        # keep records Ok while they fit rather than failing all of them.
        reserve = [0] * len(reserve)
        reserved = 0
    used = 0
    entries: list[dict[str, Any]] = []
    final: list[Outcome] = []
    for o, rid, fb, rs in zip(outcomes, ids, fallback, reserve, strict=True):
        reserved -= rs
        if o.ok:
            body = o.lines.encode("utf-8")
            start_keys = o.partition_keys
            size = _OK_FRAME + rid + _b64_len(len(body)) + _keys_len(start_keys) - 2 + 1
            if used + size + reserved > max_bytes:
                o = Outcome(
                    o.record_id,
                    o.original_b64,
                    o.in_bytes,
                    False,
                    reason=RESPONSE_TOO_LARGE,
                    message=f"normalised batch would exceed the {max_bytes}-byte Lambda response limit",
                    thing=o.thing,
                )
                entries.append({"recordId": o.record_id, "result": FAILED, "data": o.original_b64})
                size = fb
            else:
                entries.append(
                    {
                        "recordId": o.record_id,
                        "result": OK,
                        "data": base64.b64encode(body).decode("ascii"),
                        "metadata": {"partitionKeys": start_keys},  # shared per interval, serialised as is
                    }
                )
        else:
            entries.append({"recordId": o.record_id, "result": FAILED, "data": o.original_b64})
            size = fb
        used += size
        final.append(o)
    return {"records": entries}, final


_KEYS_LEN: dict[int, tuple[Mapping[str, str], int]] = {}


def _keys_len(keys: Mapping[str, str]) -> int:
    """Compact-JSON length of a partition-keys dict. Outcomes share the dicts of ``_partition`` (a batch spans a
    handful of intervals), so the length is remembered per dict object (held, so its id cannot be reused)."""
    hit = _KEYS_LEN.get(id(keys))
    if hit is not None and hit[0] is keys:
        return hit[1]
    size = len(json.dumps(dict(keys), separators=_COMPACT))
    if len(_KEYS_LEN) > 4096:
        _KEYS_LEN.clear()
    _KEYS_LEN[id(keys)] = (keys, size)
    return size


@dataclass
class BatchSummary:
    records_in: int = 0
    ok: int = 0
    failed: int = 0
    late: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    documents: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)


def summarise(outcomes: Iterable[Outcome]) -> BatchSummary:
    s = BatchSummary()
    for o in outcomes:
        s.records_in += 1
        s.bytes_in += o.in_bytes
        if o.ok:
            s.ok += 1
            s.documents += o.records
            s.late += int(o.late)
            s.bytes_out += len(o.lines) if o.lines.isascii() else len(o.lines.encode("utf-8"))
        else:
            s.failed += 1
            s.failed_by_reason[o.reason] = s.failed_by_reason.get(o.reason, 0) + 1
    return s


def transform_batch(
    event: Mapping[str, Any],
    spec: PipelineSpec,
    late_tolerance_seconds: int = 0,
    max_bytes: int = MAX_RESPONSE_BYTES,
    shards: int = 1,
) -> tuple[dict[str, Any], list[Outcome]]:
    """Transform a whole Firehose event (Direct PUT or Kinesis-stream source). Every recordId comes back once."""
    records = event.get("records")
    if not isinstance(records, list):
        raise ValueError("not a Firehose transformation event: 'records' list missing")
    outcomes = [safe_transform(r, spec, late_tolerance_seconds, shards) for r in records]
    return build_response(outcomes, max_bytes)


def explain_error_document(doc: Mapping[str, Any], spec: PipelineSpec) -> tuple[str, str]:
    """Reason code and message of one Firehose ``processing-failed`` error document.

    Re-runs the validation on ``rawData`` at ``arrivalTimestamp``; if the record validates now, the failure was not
    the record's fault and Firehose's own ``errorCode``/``errorMessage`` (e.g. the invocation failed) are returned.
    """
    outcome = transform_record("explain", str(doc.get("rawData", "")), float(doc.get("arrivalTimestamp", 0)), spec)
    if not outcome.ok:
        return outcome.reason, outcome.message
    return str(doc.get("errorCode", "unknown")), str(doc.get("errorMessage", ""))
