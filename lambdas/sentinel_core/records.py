"""Record validation and normalisation, shared by the Firehose transform, the detector and the simulator.

A valid record becomes one JSON line with the timestamp as ``yyyy-MM-dd HH:mm:ss`` (UTC), dimensions as
strings and measures as floats, in schema order. An invalid one raises ``RecordError`` whose ``reason`` is a
stable code (for metrics) and whose message says what is wrong in words a person can act on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sentinel_core.intervals import to_utc
from sentinel_core.spec import PipelineSpec

OUTPUT_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
LOOKOUT_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
MAX_DIMENSION_LENGTH = 256

# Formats tried in order after ISO-8601 (datetime.fromisoformat covers 'YYYY-MM-DD[ T]HH:MM[:SS[.ffffff]][+HH:MM|Z]').
_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d", "%d/%m/%Y %H:%M", "%Y%m%d")


class RecordError(ValueError):
    """A record that cannot be used. ``reason`` is a short code, ``str(err)`` the explanation."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Record:
    timestamp: datetime  # UTC, aware
    dimensions: tuple[str, ...]  # in spec.dimensions order
    values: dict[str, float]  # every measure of the spec

    def to_dict(self, spec: PipelineSpec) -> dict[str, Any]:
        out: dict[str, Any] = {spec.timestamp_column: self.timestamp.strftime(OUTPUT_TIMESTAMP_FORMAT)}
        out.update(zip(spec.dimensions, self.dimensions, strict=True))
        out.update({m: self.values[m] for m in spec.measure_names})
        return out

    def to_json_line(self, spec: PipelineSpec) -> str:
        return json.dumps(self.to_dict(spec), separators=(",", ":")) + "\n"


def parse_timestamp(value: Any) -> datetime:
    """Parse a record timestamp into an aware UTC datetime.

    Accepts ISO-8601 (``2022-03-20 00:00``, ``2022-03-20T00:00:00Z``, with offsets), ``yyyy/MM/dd[ HH:mm[:ss]]``,
    ``yyyyMMdd`` and Unix epoch seconds or milliseconds. Naive times are UTC.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"timestamp must be a string or epoch number, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"timestamp is not finite: {value!r}")
        secs = value / 1000.0 if abs(value) >= 1e11 else float(value)
        return datetime.fromtimestamp(secs, tz=UTC)
    text = str(value).strip()
    if not text:
        raise ValueError("timestamp is empty")
    if text.replace(".", "", 1).isdigit() and len(text) >= 9:
        return parse_timestamp(float(text))
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return to_utc(datetime.fromisoformat(iso))
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"timestamp {text!r} is not in an accepted format (e.g. '2022-03-20 00:05' or ISO-8601)")


def parse_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, int | float):
        try:
            f = float(value)
        except OverflowError:  # a JSON integer beyond float range (e.g. 1e400 written out) is not a usable reading
            raise ValueError("integer is too large to be a number") from None
    elif isinstance(value, str) and value.strip():
        f = float(value.strip())
    else:
        raise ValueError(f"{value!r} is not a number")
    if not math.isfinite(f):
        raise ValueError(f"{value!r} is not a finite number")
    return f


def validate(obj: Any, spec: PipelineSpec, now: datetime | None = None) -> Record:
    """Validate one decoded record against ``spec``; raise ``RecordError`` with the reason."""
    if not isinstance(obj, dict):
        raise RecordError("not_an_object", f"record must be a JSON object, got {type(obj).__name__}")
    if spec.timestamp_column not in obj:
        raise RecordError("missing_timestamp", f"field {spec.timestamp_column!r} is missing")
    try:
        ts = parse_timestamp(obj[spec.timestamp_column])
    except (ValueError, OverflowError, OSError) as exc:
        raise RecordError("bad_timestamp", f"field {spec.timestamp_column!r}: {exc}") from None
    if now is not None and ts - to_utc(now) > timedelta(seconds=spec.future_tolerance_seconds):
        raise RecordError(
            "future_timestamp",
            f"timestamp {ts:%Y-%m-%d %H:%M:%S} UTC is more than {spec.future_tolerance_seconds}s ahead of "
            f"the receiver's clock ({to_utc(now):%Y-%m-%d %H:%M:%S} UTC): check the device clock",
        )
    dims: list[str] = []
    for d in spec.dimensions:
        raw = obj.get(d)
        if raw is None or isinstance(raw, dict | list | bool):
            raise RecordError("missing_dimension", f"dimension {d!r} is missing or not a plain value")
        text = str(raw).strip()
        if not text:
            raise RecordError("missing_dimension", f"dimension {d!r} is empty")
        if len(text) > MAX_DIMENSION_LENGTH:
            raise RecordError("bad_dimension", f"dimension {d!r} is longer than {MAX_DIMENSION_LENGTH} characters")
        dims.append(text)
    values: dict[str, float] = {}
    for m in spec.measures:
        if m.name not in obj or obj[m.name] is None or obj[m.name] == "":
            if m.default is None:
                raise RecordError("missing_measure", f"measure {m.name!r} is missing")
            values[m.name] = float(m.default)
            continue
        try:
            values[m.name] = parse_number(obj[m.name])
        except ValueError as exc:
            raise RecordError("bad_measure", f"measure {m.name!r}: {exc}") from None
    return Record(ts, tuple(dims), values)


def decode_and_validate(data: bytes, spec: PipelineSpec, now: datetime | None = None) -> Record:
    """Decode one UTF-8 JSON payload and validate it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("not_utf8", f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = text.strip()
    if not text:
        raise RecordError("empty", "payload is empty")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError("not_json", f"payload is not JSON: {exc.msg} at line {exc.lineno} col {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # integers beyond Python's digit limit, absurd nesting
        raise RecordError("not_json", f"payload is not usable JSON: {str(exc)[:200]}") from None
    return validate(obj, spec, now)
