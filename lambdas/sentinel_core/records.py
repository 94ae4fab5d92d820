"""Record validation and normalisation, shared by the Firehose transform, the detector and the simulator.

A valid record becomes one JSON line with the timestamp as ``yyyy-MM-dd HH:mm:ss`` (UTC), dimensions as
strings and measures as floats, in schema order. An invalid one raises ``RecordError`` whose ``reason`` is a
stable code (for metrics) and whose message says what is wrong in words a person can act on.

Parsing is strict on purpose: anything that is not clearly one of the documented forms is refused rather than
guessed, because a guess is silent (``"202603231007"`` read as epoch milliseconds is a 1976 reading).

* **Timestamps**: ISO-8601 ``YYYY-MM-DD[(T| )HH:MM[:SS[.ffffff]]][Z|±HH:MM|±HHMM]``, ``YYYY/MM/DD[ HH:MM[:SS]]``,
  ``DD/MM/YYYY HH:MM``, ``YYYYMMDD``, and Unix epoch seconds (10 digits: 2001-09-09 to 2286-11-20) or
  milliseconds (13 digits, same range) as a JSON number or a digit string. Naive times are UTC. Four-digit years,
  ASCII digits only.
* **Numbers**: a JSON number, or a string in plain decimal notation (``-12``, ``3.5``, ``1e3``; ASCII digits, no
  ``_``, no ``nan``/``inf``). Non-finite values (JSON ``NaN``/``Infinity``, ``1e400``, integers beyond float range)
  are ``bad_measure``; a finite value beyond ``MAX_ABS_VALUE`` or outside the measure's plausible range
  (``Measure.minimum``/``maximum``) is ``out_of_range``.
* **Dimension values**: the schema of :func:`sentinel_core.spec.dimension_problem` (reason ``bad_dimension``).

Reason codes (stable, counted by the transform per reason): ``not_an_object``, ``missing_timestamp``,
``bad_timestamp``, ``future_timestamp``, ``missing_dimension``, ``bad_dimension``, ``missing_measure``,
``bad_measure``, ``out_of_range``, plus ``empty``/``not_utf8``/``not_json`` from :func:`decode_and_validate`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from math import isfinite
from typing import Any

from sentinel_core.intervals import to_utc
from sentinel_core.spec import KNOWN_GOOD_DIMENSIONS, MAX_DIMENSION_BYTES, PipelineSpec, dimension_problem

MAX_DIMENSION_LENGTH = MAX_DIMENSION_BYTES  # former name, kept for callers

OUTPUT_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
LOOKOUT_TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"
# Largest magnitude of a reading. Beyond 1e15 float64 no longer holds every integer (2^53 ~ 9.0e15), and sums and
# squares of a million such readings (1e21, 1e42) stay far from overflow, so the detector's arithmetic is safe.
MAX_ABS_VALUE = 1e15
# Epoch numbers accepted: 2001-09-09 .. 2286-11-20, in seconds or in milliseconds. Outside it a number is far more
# likely a wrong field (a counter, 0, a yyyyMMddHHmm written as a number) than a time.
EPOCH_SECONDS = (1_000_000_000, 10_000_000_000)
EPOCH_MILLIS = (1_000_000_000_000, 10_000_000_000_000)

_ISO = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"(?:[T ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{1,6}))?)?)?"
    r"(?P<tz>[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)
_SLASH_YMD = re.compile(
    r"(?P<y>[0-9]{4})/(?P<mo>[0-9]{2})/(?P<d>[0-9]{2})(?: (?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2}))?)?"
)
_SLASH_DMY = re.compile(r"(?P<d>[0-9]{2})/(?P<mo>[0-9]{2})/(?P<y>[0-9]{4}) (?P<h>[0-9]{2}):(?P<mi>[0-9]{2})")
_COMPACT_DATE = re.compile(r"(?P<y>[0-9]{4})(?P<mo>[0-9]{2})(?P<d>[0-9]{2})")
_EPOCH_TEXT = re.compile(r"[0-9]{10}(?:\.[0-9]{1,6})?|[0-9]{13}")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
FORMATS_HELP = (
    "ISO-8601 like '2026-03-23 10:05' or '2026-03-23T10:05:00Z', 'YYYY/MM/DD[ HH:MM[:SS]]', 'DD/MM/YYYY HH:MM', "
    "'YYYYMMDD', or Unix epoch seconds (10 digits) / milliseconds (13 digits)"
)


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
        out: dict[str, Any] = {spec.timestamp_column: format_timestamp(self.timestamp)}
        out.update(zip(spec.dimensions, self.dimensions, strict=True))
        out.update({m: self.values[m] for m in spec.measure_names})
        return out

    def to_json_line(self, spec: PipelineSpec) -> str:
        """The normalised JSON line; byte-for-byte ``json.dumps(self.to_dict(spec), separators=(",", ":"))``.

        Built from cached pieces (column keys, dimension values, the timestamp text) because the transform writes
        one per record: the values are validated (finite floats, allowed characters), so this is exact JSON.
        """
        template = _line_template(spec)
        return template % (
            format_timestamp(self.timestamp),
            *[_json_string(v) for v in self.dimensions],
            *[self.values[m] for m in spec.measure_names],
        )


_KEYS_CACHE: dict[int, tuple[PipelineSpec, str]] = {}
_CACHE_LIMIT = 65_536  # entries per formatting cache (least recently used go first: bounded memory, any input)


def _line_template(spec: PipelineSpec) -> str:
    """``%``-template of one normalised line: column names are [A-Za-z0-9_] (no escaping, no '%'), dimension values
    are inserted JSON-encoded, measures with ``%r`` (float repr, exactly what json.dumps writes)."""
    hit = _KEYS_CACHE.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    template = (
        '{"'
        + spec.timestamp_column
        + '":"%s"'
        + "".join(',"' + d + '":%s' for d in spec.dimensions)
        + "".join(',"' + m + '":%r' for m in spec.measure_names)
        + "}\n"
    )
    if len(_KEYS_CACHE) > 64:
        _KEYS_CACHE.clear()
    _KEYS_CACHE[id(spec)] = (spec, template)
    return template


@lru_cache(maxsize=_CACHE_LIMIT)
def _json_string(value: str) -> str:
    return json.dumps(value)


@lru_cache(maxsize=_CACHE_LIMIT)
def format_timestamp(ts: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` of a UTC datetime (cached: records of one batch share a few hundred seconds)."""
    return ts.strftime(OUTPUT_TIMESTAMP_FORMAT)


# ------------------------------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------------------------------
def check_dimension_value(name: str, raw: Any) -> str:
    """The dimension value as text, or ``RecordError`` (``missing_dimension`` / ``bad_dimension``)."""
    if raw.__class__ is str and raw in KNOWN_GOOD_DIMENSIONS:  # the common case: a value seen before
        return str(raw)
    if raw is None or isinstance(raw, dict | list | bool):
        raise RecordError("missing_dimension", f"dimension {name!r} is missing or not a plain value")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise RecordError("bad_dimension", f"dimension {name!r} is not a finite number")
    text = (raw if isinstance(raw, str) else str(raw)).strip()
    if not text:
        raise RecordError("missing_dimension", f"dimension {name!r} is empty")
    problem = dimension_problem(text)
    if problem is not None:
        raise RecordError("bad_dimension", f"dimension {name!r} {problem}")
    return text


def _epoch(value: float) -> datetime:
    if EPOCH_SECONDS[0] <= value < EPOCH_SECONDS[1]:
        return datetime.fromtimestamp(value, tz=UTC)
    if EPOCH_MILLIS[0] <= value < EPOCH_MILLIS[1]:
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    raise ValueError(
        f"number {value!r} is not a Unix epoch in seconds (10 digits) or milliseconds (13 digits) of 2001-2286"
    )


def _from_parts(m: re.Match[str], tz: timezone = UTC) -> datetime:
    g = m.groupdict()
    frac = g.get("f") or ""
    return datetime(
        int(g["y"]),
        int(g["mo"]),
        int(g["d"]),
        int(g.get("h") or 0),
        int(g.get("mi") or 0),
        int(g.get("s") or 0),
        int(frac.ljust(6, "0")) if frac else 0,
        tzinfo=tz,
    )


def _offset(text: str | None) -> timezone:
    if not text or text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"time zone offset {text!r} is not valid")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


_TS_PARSE_CACHE: dict[str, datetime] = {}


def parse_timestamp(value: Any) -> datetime:
    """Parse a record timestamp into an aware UTC datetime; only the documented forms (module doc) are accepted."""
    if value.__class__ is str:
        hit = _TS_PARSE_CACHE.get(value)
        if hit is None:
            hit = _parse_timestamp(value)
            if len(_TS_PARSE_CACHE) >= _CACHE_LIMIT:
                _TS_PARSE_CACHE.clear()
            _TS_PARSE_CACHE[value] = hit
        return hit
    return _parse_timestamp(value)


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"timestamp must be a string or epoch number, got {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"timestamp is not finite: {value!r}")
        return _epoch(value)
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string or epoch number, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("timestamp is empty")
    m = _ISO.fullmatch(text)
    if m is not None:
        tz = m.group("tz")
        if tz is None or tz == "Z" or (tz[0] in "+-" and ":" in tz):  # forms fromisoformat reads exactly (fast, C)
            parsed = datetime.fromisoformat(text)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        return _from_parts(m, _offset(tz)).astimezone(UTC)
    m = _SLASH_YMD.fullmatch(text) or _SLASH_DMY.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if m is not None:
        return _from_parts(m)
    if _EPOCH_TEXT.fullmatch(text):
        return _epoch(float(text) if "." in text else int(text))
    raise ValueError(f"timestamp {text[:40]!r} is not in an accepted format ({FORMATS_HELP})")


def parse_number(value: Any) -> float:
    """A JSON number or a plain decimal string as a finite float; anything else is ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, float):
        f = value
    elif isinstance(value, int):
        try:
            f = float(value)
        except OverflowError:  # a JSON integer beyond float range (e.g. 1e400 written out) is not a usable reading
            raise ValueError("integer is too large to be a number") from None
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise ValueError(f"{shown!r} is not a number in plain decimal notation (e.g. 12, -3.5, 1e3)")
        f = float(text)
    else:
        raise ValueError(f"{type(value).__name__} is not a number")
    if not math.isfinite(f):
        raise ValueError(f"{value!r} is not a finite number")
    return f


# ------------------------------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------------------------------
def validate(obj: Any, spec: PipelineSpec, now: datetime | None = None) -> Record:
    """Validate one decoded record against ``spec``; raise ``RecordError`` with the reason."""
    return validate_until(obj, spec, None if now is None else latest_accepted(spec, now), now)


def latest_accepted(spec: PipelineSpec, now: datetime) -> datetime:
    """The latest event time accepted when the receiver's clock reads ``now`` (``future_tolerance_seconds``)."""
    return to_utc(now) + timedelta(seconds=spec.future_tolerance_seconds)


def validate_until(obj: Any, spec: PipelineSpec, latest: datetime | None, now: datetime | None = None) -> Record:
    """``validate`` with the future limit computed once per batch (``latest_accepted``): the transform's hot path."""
    if not isinstance(obj, dict):
        raise RecordError("not_an_object", f"record must be a JSON object, got {type(obj).__name__}")
    col = spec.timestamp_column
    if col not in obj:
        raise RecordError("missing_timestamp", f"field {col!r} is missing")
    try:
        ts = parse_timestamp(obj[col])
    except (ValueError, OverflowError, OSError) as exc:
        raise RecordError("bad_timestamp", f"field {col!r}: {exc}") from None
    if latest is not None and ts > latest:
        clock = to_utc(now) if now is not None else latest - timedelta(seconds=spec.future_tolerance_seconds)
        raise RecordError(
            "future_timestamp",
            f"timestamp {ts:%Y-%m-%d %H:%M:%S} UTC is more than {spec.future_tolerance_seconds}s ahead of "
            f"the receiver's clock ({clock:%Y-%m-%d %H:%M:%S} UTC): check the device clock",
        )
    dims = tuple([check_dimension_value(d, obj.get(d)) for d in spec.dimensions])
    values: dict[str, float] = {}
    for m in spec.measures:
        raw: Any = obj.get(m.name)
        cls = raw.__class__
        if cls is float or cls is int:  # the common case, without parse_number's type checks
            v = float(raw) if cls is float or -_EXACT_INT < raw < _EXACT_INT else parse_or_refuse(m.name, raw)
            if not isfinite(v):
                parse_or_refuse(m.name, raw)  # raises: not finite
        elif raw is None or raw == "":
            if m.default is None:
                raise RecordError("missing_measure", f"measure {m.name!r} is missing")
            values[m.name] = float(m.default)
            continue
        else:
            v = parse_or_refuse(m.name, raw)
        if not -MAX_ABS_VALUE <= v <= MAX_ABS_VALUE:
            raise RecordError(
                "out_of_range", f"measure {m.name!r}: {v!r} is beyond ±{MAX_ABS_VALUE:g}, not a usable reading"
            )
        if (m.minimum is not None and v < m.minimum) or (m.maximum is not None and v > m.maximum):
            raise RecordError(
                "out_of_range",
                f"measure {m.name!r}: {v:g}{' ' + m.unit if m.unit else ''} is outside its plausible range "
                f"{m.minimum if m.minimum is not None else -math.inf:g} to "
                f"{m.maximum if m.maximum is not None else math.inf:g} (a sensor fault code?)",
            )
        values[m.name] = v
    return Record(ts, dims, values)


_EXACT_INT = 2**53  # ints below this convert to float exactly and never overflow


def parse_or_refuse(name: str, raw: Any) -> float:
    """``parse_number`` of measure ``name``; ``RecordError("bad_measure")`` when it is not a finite number."""
    try:
        return parse_number(raw)
    except ValueError as exc:
        raise RecordError("bad_measure", f"measure {name!r}: {exc}") from None


def decode_and_validate(data: bytes, spec: PipelineSpec, now: datetime | None = None) -> Record:
    """Decode one UTF-8 JSON payload and validate it."""
    return validate(decode_json(data), spec, now)


def decode_json(data: bytes) -> Any:
    """One UTF-8 JSON document, or ``RecordError`` (``not_utf8``, ``empty``, ``not_json``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("not_utf8", f"payload is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = text.strip()
    if not text:
        raise RecordError("empty", "payload is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError("not_json", f"payload is not JSON: {exc.msg} at line {exc.lineno} col {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # integers beyond Python's digit limit, absurd nesting
        raise RecordError("not_json", f"payload is not usable JSON: {str(exc)[:200]}") from None
