"""ISO-8601 durations and interval arithmetic (UTC, aligned to the Unix epoch like Lookout for Metrics)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

# The intervals Lookout for Metrics (and so the deployed detector) accepts.
DETECTOR_INTERVALS: tuple[str, ...] = ("PT5M", "PT10M", "PT1H", "P1D")

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=64)  # pure and hot: the transform floors every record (timedelta is immutable)
def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration made of weeks, days, hours, minutes and seconds (``PT5M``, ``P1D``, ``PT90S``).

    Years and months are rejected: they have no fixed length, so intervals could not be aligned.
    """
    m = _DURATION.match(text.strip().upper()) if text else None
    if not m or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
        raise ValueError(f"not an ISO-8601 duration of weeks/days/hours/minutes/seconds: {text!r} (e.g. PT5M, P1D)")
    parts = {k: int(v) for k, v in m.groupdict().items() if v}
    delta = timedelta(
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )
    if delta <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    return delta


def interval_seconds(interval: str) -> int:
    return int(parse_duration(interval).total_seconds())


def to_utc(ts: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def floor_to_interval(ts: datetime, interval: str | int) -> datetime:
    """Start of the interval ``ts`` falls in (intervals are aligned to the epoch, so P1D starts at 00:00 UTC)."""
    step = interval if isinstance(interval, int) else interval_seconds(interval)
    ts = to_utc(ts)
    secs = int((ts - _EPOCH).total_seconds() // step) * step
    return _EPOCH + timedelta(seconds=secs)


def interval_range(start: datetime, end: datetime, interval: str | int) -> list[datetime]:
    """Interval starts from the interval holding ``start`` up to, not including, ``end``."""
    step = interval if isinstance(interval, int) else interval_seconds(interval)
    cur = floor_to_interval(start, step)
    end = to_utc(end)
    out: list[datetime] = []
    while cur < end:
        out.append(cur)
        cur += timedelta(seconds=step)
    return out


def last_closed_interval(now: datetime, interval: str | int, delay_seconds: int = 0) -> datetime:
    """Start of the newest interval that had closed ``delay_seconds`` before ``now`` (the Firehose buffer margin)."""
    step = interval if isinstance(interval, int) else interval_seconds(interval)
    return floor_to_interval(to_utc(now) - timedelta(seconds=delay_seconds), step) - timedelta(seconds=step)
