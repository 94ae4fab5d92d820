"""Loyalty CSV parsing: good rows used, each bad row reported with its line, column and reason."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.csv_input import (
    ERROR_COLUMNS,
    CsvHeaderError,
    ParseReport,
    error_report_csv,
    iter_rows,
    parse_csv,
)
from sentinel_core.spec import get_preset

SPEC = get_preset("loyalty")
HEADER = "timestamp,location_id,points_earned,points_redeemed"


def lines(text: str) -> list[str]:
    return io.StringIO(text).readlines()


def test_good_file_parses_every_row() -> None:
    recs, rep = parse_csv(lines(f"{HEADER}\n2024-01-01,A-1002,120,30\n2024-01-01,B-101,80.5,0\n"), SPEC)
    assert rep.rows == 2 and rep.good == 2 and rep.errors == []
    assert recs[0].timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    assert recs[0].dimensions == ("A-1002",)
    assert recs[1].values == {"points_earned": 80.5, "points_redeemed": 0.0}
    assert rep.first == rep.last == datetime(2024, 1, 1, tzinfo=UTC)


def test_each_kind_of_bad_row_is_reported_and_good_rows_kept() -> None:
    text = "\n".join(
        [
            HEADER,
            "2024-01-01,A-1002,120,30",  # line 2 ok
            "2024-01-02,A-1002,120",  # line 3 missing column
            "2024-13-40,A-1002,120,30",  # line 4 bad date
            "2024-01-03,A-1002,lots,30",  # line 5 non-numeric
            "2024-01-01,A-1002,99,1",  # line 6 duplicate of line 2
            "",  # blank: skipped, not an error
            "2024-01-04,,5,5",  # line 8 empty dimension
            "2024-01-05,A-1002,5,5,7",  # line 9 extra field
            "2024-01-06,A-1002,nan,1",  # line 10 not finite
            "2024-01-07,A-1002,10,20",  # line 11 ok
        ]
    )
    recs, rep = parse_csv(lines(text + "\n"), SPEC)
    assert [r.timestamp.day for r in recs] == [1, 7]
    got = [(e.line, e.column, e.reason) for e in rep.errors]
    assert got == [
        (3, "points_redeemed", "missing_column"),
        (4, "timestamp", "bad_timestamp"),
        (5, "points_earned", "bad_measure"),
        (6, "timestamp", "duplicate"),
        (8, "location_id", "missing_dimension"),
        (9, "", "extra_column"),
        (10, "points_earned", "bad_measure"),
    ]
    assert "duplicate of line 2" in rep.errors[3].message
    assert rep.rows == rep.good + rep.bad == 9
    assert rep.reasons()["bad_measure"] == 2


def test_error_report_is_a_readable_csv_naming_each_row() -> None:
    _, rep = parse_csv(lines(f"{HEADER}\n2024-01-01,A-1002,x,1\n"), SPEC)
    rows = list(csv.DictReader(io.StringIO(error_report_csv(rep.errors))))
    assert tuple(rows[0]) == ERROR_COLUMNS
    assert rows[0]["line"] == "2" and rows[0]["reason"] == "bad_measure"
    assert rows[0]["row"] == "2024-01-01,A-1002,x,1"
    assert "points_earned" in rows[0]["message"]


def test_header_missing_a_column_is_a_file_error() -> None:
    with pytest.raises(CsvHeaderError, match="points_redeemed"):
        parse_csv(lines("timestamp,location_id,points_earned\n2024-01-01,A,1\n"), SPEC)


def test_empty_file_is_a_file_error() -> None:
    with pytest.raises(CsvHeaderError, match="empty"):
        parse_csv([], SPEC)


def test_header_case_and_order_and_extra_columns_are_accepted() -> None:
    text = "Points_Redeemed,store_name,TIMESTAMP,location_id,points_earned\n3,Main st,2024-02-01,A-1,4\n"
    recs, rep = parse_csv(lines(text), SPEC)
    assert rep.errors == [] and recs[0].values == {"points_earned": 4.0, "points_redeemed": 3.0}


def test_duplicate_detection_is_per_day_not_per_text() -> None:
    # Two spellings of the same day (daily interval): the second is a duplicate.
    _, rep = parse_csv(lines(f"{HEADER}\n2024-01-01,A,1,1\n2024-01-01 13:00,A,2,2\n2024-01-01,B,1,1\n"), SPEC)
    assert [(e.line, e.reason) for e in rep.errors] == [(3, "duplicate")]


def test_iter_rows_streams() -> None:
    def gen() -> object:
        yield HEADER + "\n"
        for d in range(1, 29):
            yield f"2024-02-{d:02d},A,{d},0\n"

    rep = ParseReport()
    it = iter_rows(gen(), SPEC, rep)  # type: ignore[arg-type]
    first = next(it)
    assert first.values["points_earned"] == 1.0 and rep.good == 1
    assert sum(1 for _ in it) == 27 and rep.good == 28


cell = st.one_of(
    st.sampled_from(["2024-01-01", "2024-01-02", "bad", "", "A", "B", "1", "2.5", "-3", "x", "inf"]),
    st.text(alphabet='abc01,-" ', max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cell, min_size=0, max_size=6), max_size=25))
def test_property_every_row_is_either_used_or_reported(rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER.split(","))
    for r in rows:
        writer.writerow(r)
    recs, rep = parse_csv(lines(buf.getvalue()), SPEC)
    non_blank = sum(1 for r in rows if any(c.strip() for c in r))
    assert rep.rows == non_blank
    assert len(recs) == rep.good and rep.good + rep.bad == rep.rows
    keys = [(r.timestamp, r.dimensions) for r in recs]
    assert len(keys) == len(set(keys))
    assert all(e.line >= 2 and e.reason for e in rep.errors)
