"""Firehose transform logic: plain functions, no AWS, no Powertools (the handler in ``app.py`` is a thin shell).

One Firehose record in, one outcome out:

* ``Ok``: the payload validated against the pipeline spec; ``data`` is the normalised JSON line(s) and the
  dynamic-partitioning keys name the interval of the record's OWN timestamp (``layout.partition_keys``).
* ``ProcessingFailed``: the payload is unusable. The reason code and message are logged and counted by the handler.

Where does the failure reason end up? The Firehose response schema has no per-record reason field (only
``recordId``, ``result``, ``data`` and ``metadata``), and Firehose's ``processing-failed`` error documents carry
``errorCode``/``errorMessage`` of *Firehose's* observation (``Lambda.ProcessingFailedStatus``) plus ``rawData`` and
``arrivalTimestamp`` of the record it received. So failed records are returned with their ORIGINAL ``data``
unchanged (whatever Firehose writes as ``rawData``, it is the producer's bytes, never lost), the reason goes to
the function's structured log and a per-reason metric, and :func:`explain_error_document` re-derives the exact
reason from an error document: validation is deterministic given ``rawData`` and ``arrivalTimestamp``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sentinel_core import layout
from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.records import Record, RecordError, decode_and_validate, validate
from sentinel_core.spec import PipelineSpec

OK = "Ok"
FAILED = "ProcessingFailed"
INTERNAL_ERROR = "internal_error"
RESPONSE_TOO_LARGE = "response_too_large"
# Synchronous Lambda response limit: 6 MB (6,291,456 bytes), with a small margin for the runtime's framing. A failed
# entry ({recordId, result, data}) is smaller than the request entry ({recordId, approximateArrivalTimestamp, data}),
# so failing every record always fits when the request did.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 - 1024


@dataclass(frozen=True)
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

    @property
    def result(self) -> str:
        return OK if self.ok else FAILED


def arrival_datetime(arrival_ms: float) -> datetime:
    return datetime.fromtimestamp(arrival_ms / 1000.0, tz=UTC)


def decode_documents(data: bytes, spec: PipelineSpec, now: datetime) -> list[Record]:
    """Validate one payload: usually one JSON object, possibly several (newline-separated like the IoT rule's
    ``separator`` or a Kinesis producer batching lines). Raises ``RecordError`` with the first problem."""
    try:
        return [decode_and_validate(data, spec, now=now)]
    except RecordError as exc:
        if exc.reason != "not_json" or "Extra data" not in str(exc):
            raise
    text = data.decode("utf-8")  # decode_and_validate proved it is UTF-8
    decoder = json.JSONDecoder()
    out: list[Record] = []
    idx, n = 0, len(text)
    while True:
        while idx < n and text[idx] in " \t\r\n":
            idx += 1
        if idx >= n:
            break
        try:
            obj, idx = decoder.raw_decode(text, idx)
        except json.JSONDecodeError as err:
            raise RecordError(
                "not_json", f"document {len(out) + 1} is not JSON: {err.msg} at line {err.lineno} col {err.colno}"
            ) from None
        except (ValueError, RecursionError) as err:
            raise RecordError("not_json", f"document {len(out) + 1} is not usable JSON: {str(err)[:200]}") from None
        try:
            out.append(validate(obj, spec, now))
        except RecordError as err:
            raise RecordError(err.reason, f"document {len(out) + 1}: {err}") from None
    return out


def is_late(ts: datetime, arrival: datetime, spec: PipelineSpec, tolerance_seconds: int) -> bool:
    """True when the record arrived after its interval closed plus ``tolerance_seconds``."""
    close = floor_to_interval(ts, spec.interval) + timedelta(seconds=interval_seconds(spec.interval))
    return arrival > close + timedelta(seconds=tolerance_seconds)


def transform_record(
    record_id: str, data_b64: str, arrival_ms: float, spec: PipelineSpec, late_tolerance_seconds: int = 0
) -> Outcome:
    """Validate and normalise one Firehose record; invalid input becomes a failed ``Outcome`` with its reason."""
    try:
        raw = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        return Outcome(record_id, data_b64, len(data_b64), False, reason="not_base64", message=f"data: {exc}")
    arrival = arrival_datetime(arrival_ms)
    try:
        docs = decode_documents(raw, spec, arrival)
        starts = {floor_to_interval(r.timestamp, spec.interval) for r in docs}
        if len(starts) > 1:
            shown = ", ".join(sorted(f"{s:%Y-%m-%d %H:%M}" for s in starts))
            raise RecordError(
                "mixed_intervals",
                f"one Firehose record holds documents of {len(starts)} intervals ({shown}); "
                "send one record per document so each lands in its own interval folder",
            )
    except RecordError as exc:
        return Outcome(record_id, data_b64, len(raw), False, reason=exc.reason, message=str(exc))
    first = docs[0]
    return Outcome(
        record_id,
        data_b64,
        len(raw),
        True,
        lines="".join(r.to_json_line(spec) for r in docs),
        partition_keys=layout.partition_keys(first.timestamp, spec),
        records=len(docs),
        timestamp=first.timestamp,
        late=any(is_late(r.timestamp, arrival, spec, late_tolerance_seconds) for r in docs),
    )


def safe_transform(record: Mapping[str, Any], spec: PipelineSpec, late_tolerance_seconds: int = 0) -> Outcome:
    """``transform_record`` for one raw Firehose record dict; an unexpected exception fails only this record."""
    record_id = str(record["recordId"])
    data = record.get("data")
    try:
        if not isinstance(data, str):
            raise TypeError(f"record data must be a base64 string, got {type(data).__name__}")
        return transform_record(
            record_id, data, float(record["approximateArrivalTimestamp"]), spec, late_tolerance_seconds
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


def _ok_entry(o: Outcome) -> dict[str, Any]:
    return {
        "recordId": o.record_id,
        "result": OK,
        "data": base64.b64encode(o.lines.encode("utf-8")).decode("ascii"),
        "metadata": {"partitionKeys": dict(o.partition_keys)},
    }


def _failed_entry(o: Outcome) -> dict[str, Any]:
    return {"recordId": o.record_id, "result": FAILED, "data": o.original_b64}


_COMPACT = (",", ":")
_OK_FRAME = len(
    json.dumps({"recordId": "", "result": OK, "data": "", "metadata": {"partitionKeys": ""}}, separators=_COMPACT)
)
_FAILED_FRAME = len(json.dumps({"recordId": "", "result": FAILED, "data": ""}, separators=_COMPACT))


def _size(entry: Mapping[str, Any]) -> int:
    """Serialised size of one response entry (+1 for the separator), without serialising the base64 payload."""
    rid = len(json.dumps(entry["recordId"])) - 2
    data = len(entry["data"])  # base64: never escaped
    if entry["result"] == OK:
        keys = len(json.dumps(entry["metadata"]["partitionKeys"], separators=_COMPACT)) - 2  # replaces the ""
        return _OK_FRAME + rid + data + keys + 1
    return _FAILED_FRAME + rid + data + 1


def build_response(
    outcomes: Sequence[Outcome], max_bytes: int = MAX_RESPONSE_BYTES
) -> tuple[dict[str, Any], list[Outcome]]:
    """The Firehose response, kept under the Lambda response limit, and the outcomes as finally returned.

    Normalisation can make a record longer (epoch numbers become dates, ints become floats). Each record's
    fallback — failing it with its original data — is reserved up front, so an Ok record is only emitted when the
    rest of the batch still fits; records that do not fit fail with ``response_too_large`` (kept in the error
    prefix) instead of the whole invocation failing.
    """
    fallback = [_size(_failed_entry(o)) for o in outcomes]
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
    for o, fb, rs in zip(outcomes, fallback, reserve, strict=True):
        reserved -= rs
        if o.ok:
            entry = _ok_entry(o)
            size = _size(entry)
            if used + size + reserved > max_bytes:
                o = Outcome(
                    o.record_id,
                    o.original_b64,
                    o.in_bytes,
                    False,
                    reason=RESPONSE_TOO_LARGE,
                    message=f"normalised batch would exceed the {max_bytes}-byte Lambda response limit",
                )
                entry, size = _failed_entry(o), fb
        else:
            entry, size = _failed_entry(o), fb
        used += size
        entries.append(entry)
        final.append(o)
    return {"records": entries}, final


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
            s.bytes_out += len(o.lines.encode("utf-8"))
        else:
            s.failed += 1
            s.failed_by_reason[o.reason] = s.failed_by_reason.get(o.reason, 0) + 1
    return s


def transform_batch(
    event: Mapping[str, Any],
    spec: PipelineSpec,
    late_tolerance_seconds: int = 0,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> tuple[dict[str, Any], list[Outcome]]:
    """Transform a whole Firehose event (Direct PUT or Kinesis-stream source). Every recordId comes back once."""
    records = event.get("records")
    if not isinstance(records, list):
        raise ValueError("not a Firehose transformation event: 'records' list missing")
    outcomes = [safe_transform(r, spec, late_tolerance_seconds) for r in records]
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
