"""Interval arithmetic: every detector interval, UTC only (DST cannot move a boundary), offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core.intervals import (
    DETECTOR_INTERVALS,
    floor_to_interval,
    interval_range,
    interval_seconds,
    last_closed_interval,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT5M", 300), ("PT10M", 600), ("PT1H", 3600), ("P1D", 86400), ("PT90S", 90), ("P1W", 604800), ("p1dt1h", 90000)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "P", "PT", "P1DT", "PT0M", "P1Y", "P1M", "5M", "PT-5M", "PT5.5M"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("interval", "ts", "start"),
    [
        ("PT5M", "2026-03-23T10:07:59", "2026-03-23T10:05:00"),
        ("PT5M", "2026-03-23T10:05:00", "2026-03-23T10:05:00"),
        ("PT10M", "2026-03-23T10:19:59", "2026-03-23T10:10:00"),
        ("PT1H", "2026-03-23T10:59:59", "2026-03-23T10:00:00"),
        ("P1D", "2026-03-23T23:59:59", "2026-03-23T00:00:00"),
        # Europe's DST switch (2026-03-29 01:00 UTC) changes nothing: boundaries are UTC.
        ("PT1H", "2026-03-29T02:30:00+02:00", "2026-03-29T00:00:00"),
        ("P1D", "2026-10-25T01:30:00+01:00", "2026-10-25T00:00:00"),
        # Half-hour offsets: 10:07 at +05:30 is 04:37 UTC.
        ("PT5M", "2026-03-23T10:07:00+05:30", "2026-03-23T04:35:00"),
        ("PT1H", "2026-03-23T10:07:00+05:30", "2026-03-23T04:00:00"),
        ("P1D", "2026-03-23T03:00:00+05:30", "2026-03-22T00:00:00"),
        ("PT5M", "1969-12-31T23:58:00", "1969-12-31T23:55:00"),
    ],
)
def test_floor_to_interval(interval: str, ts: str, start: str) -> None:
    got = floor_to_interval(datetime.fromisoformat(ts), interval)
    assert got == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert got.tzinfo is not None


@given(
    st.sampled_from(DETECTOR_INTERVALS),
    st.datetimes(
        datetime(1971, 1, 1),
        datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=45))]),
    ),
)
def test_floor_properties(interval: str, ts: datetime) -> None:
    step = interval_seconds(interval)
    start = floor_to_interval(ts, interval)
    assert start <= ts < start + timedelta(seconds=step)
    assert int(start.timestamp()) % step == 0
    assert floor_to_interval(start, interval) == start
    assert floor_to_interval(ts, step) == start  # int and text give the same


def test_interval_range() -> None:
    start = datetime(2026, 3, 23, 10, 7, tzinfo=UTC)
    end = datetime(2026, 3, 23, 10, 20, tzinfo=UTC)
    assert interval_range(start, end, "PT5M") == [datetime(2026, 3, 23, 10, m, tzinfo=UTC) for m in (5, 10, 15)]
    assert interval_range(end, start, "PT5M") == []


@pytest.mark.parametrize(
    ("now", "delay", "expected"),
    [
        ("2026-03-23T10:05:00", 0, "2026-03-23T10:00:00"),
        ("2026-03-23T10:04:59", 0, "2026-03-23T09:55:00"),
        ("2026-03-23T10:06:00", 120, "2026-03-23T09:55:00"),
    ],
)
def test_last_closed_interval(now: str, delay: int, expected: str) -> None:
    got = last_closed_interval(datetime.fromisoformat(now), "PT5M", delay)
    assert got == datetime.fromisoformat(expected).replace(tzinfo=UTC)
