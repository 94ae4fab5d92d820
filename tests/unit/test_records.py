"""Record validation edge cases: formats, offsets, epoch, bad JSON, NaN, bool, empty dimension, future clock."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core.records import RecordError, decode_and_validate, parse_number, parse_timestamp, validate
from sentinel_core.spec import get_preset

SPEC = get_preset("air-quality")
NOW = datetime(2026, 3, 23, 10, 8, tzinfo=UTC)


def rec(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"TIMESTAMP": "2022-03-20 00:00", "LOCATION_ID": "B-101", "CO": 2.6, "SO2": 62, "NO2": 57}
    r.update(over)
    return {k: v for k, v in r.items() if v is not ...}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-03-20 00:00", "2022-03-20T00:00:00+00:00"),
        ("2022-03-20 00:05:07", "2022-03-20T00:05:07+00:00"),
        ("2022-03-20T00:05:07Z", "2022-03-20T00:05:07+00:00"),
        ("2022-03-20T00:05:07.250z", "2022-03-20T00:05:07.250000+00:00"),
        ("2022-03-20T10:35:00+05:30", "2022-03-20T05:05:00+00:00"),
        ("2022-03-19T20:05:00-04:00", "2022-03-20T00:05:00+00:00"),
        ("2022/03/20 00:05", "2022-03-20T00:05:00+00:00"),
        ("2022/03/20", "2022-03-20T00:00:00+00:00"),
        ("20/03/2022 00:05", "2022-03-20T00:05:00+00:00"),
        ("20220320", "2022-03-20T00:00:00+00:00"),
        (1647734700, "2022-03-20T00:05:00+00:00"),
        (1647734700000, "2022-03-20T00:05:00+00:00"),
        (1647734700.5, "2022-03-20T00:05:00.500000+00:00"),
        ("1647734700000", "2022-03-20T00:05:00+00:00"),
        ("  2022-03-20 00:05  ", "2022-03-20T00:05:00+00:00"),
    ],
)
def test_parse_timestamp_formats(value: Any, expected: str) -> None:
    assert parse_timestamp(value) == datetime.fromisoformat(expected)


@pytest.mark.parametrize("value", [None, True, "", "  ", "yesterday", "2022-13-01", float("nan"), float("inf"), [1]])
def test_parse_timestamp_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("value", "expected"), [(1, 1.0), (2.5, 2.5), ("3", 3.0), (" -4.5 ", -4.5), ("1e3", 1000.0), (0, 0.0)]
)
def test_parse_number(value: Any, expected: float) -> None:
    assert parse_number(value) == expected


@pytest.mark.parametrize(
    "value", [True, False, None, "", "abc", "nan", "inf", float("nan"), float("-inf"), [1], 10**400]
)
def test_parse_number_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_number(value)


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1], "not_an_object"),
        ("x", "not_an_object"),
        (rec(TIMESTAMP=...), "missing_timestamp"),
        (rec(TIMESTAMP="not a date"), "bad_timestamp"),
        (rec(TIMESTAMP=10**400), "bad_timestamp"),
        (rec(TIMESTAMP="2026-03-23 10:30"), "future_timestamp"),  # 22 min ahead of NOW, tolerance 15
        (rec(LOCATION_ID=...), "missing_dimension"),
        (rec(LOCATION_ID=""), "missing_dimension"),
        (rec(LOCATION_ID="   "), "missing_dimension"),
        (rec(LOCATION_ID=None), "missing_dimension"),
        (rec(LOCATION_ID=True), "missing_dimension"),
        (rec(LOCATION_ID={"a": 1}), "missing_dimension"),
        (rec(LOCATION_ID="x" * 257), "bad_dimension"),
        (rec(CO=...), "missing_measure"),
        (rec(CO=None), "missing_measure"),
        (rec(CO=""), "missing_measure"),
        (rec(CO=True), "bad_measure"),
        (rec(CO=float("nan")), "bad_measure"),
        (rec(CO="NaN"), "bad_measure"),
        (rec(CO=10**400), "bad_measure"),
    ],
)
def test_validate_reasons(obj: Any, reason: str) -> None:
    with pytest.raises(RecordError) as err:
        validate(obj, SPEC, now=NOW)
    assert err.value.reason == reason
    assert str(err.value)  # a message a person can act on


def test_future_tolerance_boundary() -> None:
    assert validate(rec(TIMESTAMP="2026-03-23 10:23"), SPEC, now=NOW).timestamp.minute == 23  # exactly 15 min
    with pytest.raises(RecordError):
        validate(rec(TIMESTAMP="2026-03-23 10:23:01"), SPEC, now=NOW)
    assert validate(rec(TIMESTAMP="2099-01-01 00:00"), SPEC).timestamp.year == 2099  # no clock given: no check


def test_normalised_line() -> None:
    r = validate(rec(TIMESTAMP="2022-03-20T05:35:00+05:30", LOCATION_ID=101, SO2="62"), SPEC)
    line = r.to_json_line(SPEC)
    assert line == '{"TIMESTAMP":"2022-03-20 00:05:00","LOCATION_ID":"101","CO":2.6,"SO2":62.0,"NO2":57.0}\n'


def test_default_measure_of_event_streams() -> None:
    ecom = get_preset("ecommerce")
    r = validate({"event_time": 1647734700, "page_type": "cart", "platform": "web", "marketplace": "US"}, ecom)
    assert r.values == {"views": 1.0}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"{not json", "not_json"),
        (b"{}{}", "not_json"),
        (b"[" * 100000, "not_json"),
        (b'{"CO": ' + b"1" * 5000 + b"}", "not_json"),
    ],
)
def test_decode_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(RecordError) as err:
        decode_and_validate(data, SPEC)
    assert err.value.reason == reason


def test_decode_accepts_nan_token_but_rejects_value() -> None:
    with pytest.raises(RecordError) as err:
        decode_and_validate(json.dumps(rec(NO2=float("nan"))).encode(), SPEC)
    assert err.value.reason == "bad_measure"


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_but_record_error(data: bytes) -> None:
    with contextlib.suppress(RecordError):
        decode_and_validate(data, SPEC, now=NOW)


@given(
    st.dictionaries(
        st.sampled_from(["TIMESTAMP", "LOCATION_ID", "CO", "SO2", "NO2", "x"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=8)
        | st.lists(st.integers(), max_size=2),
    )
)
def test_validate_never_raises_anything_but_record_error(obj: dict[str, Any]) -> None:
    with contextlib.suppress(RecordError):
        validate(obj, SPEC, now=NOW)
