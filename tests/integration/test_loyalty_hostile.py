"""Issue 13.8's hostile uploads through the REAL parser, the REAL backtest job handler on moto, and the CLI core:
absurd dates do not crash the job nor move its 70/30 split, formula cells are defused in errors.csv, row errors
are bounded, headers are checked in linear time, gzip input is capped."""

from __future__ import annotations

import csv
import gzip
import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from sentinel_core import backtest as core
from sentinel_core import csv_input, layout, objects
from sentinel_core.spec import get_preset

from tests.integration.test_loyalty_backtest_job import _get, _upload, aws, s3_event  # noqa: F401 (fixture)
from tests.support.aws import lambda_context

SPEC = get_preset("loyalty")
HEADER = "timestamp,location_id,points_earned,points_redeemed"
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def sixty_days() -> list[str]:
    return [f"{DAY0 + timedelta(days=d):%Y-%m-%d},A-1002,{1000 + (d % 7) * 10},{300 + d % 3}" for d in range(60)]


def test_absurd_dates_neither_crash_the_job_nor_move_the_split(aws: dict[str, str]) -> None:  # noqa: F811
    from backtest_job import app

    rows = [HEADER, *sixty_days()[:30], "9999-12-31,A-1002,5,1", "2100-01-01,A-1002,5,1", "1900-01-01,A-1002,5,1"]
    rows += sixty_days()[30:]
    key = f"{layout.upload_prefix(SPEC)}typos.csv"
    _upload(key, ("\n".join(rows) + "\n").encode())
    rep = app.lambda_handler(s3_event(key), lambda_context())["files"][0]  # type: ignore[arg-type]
    assert rep["status"] == "ok" and rep["good_rows"] == 60
    assert rep["bad_reasons"] == {"future_timestamp": 2, "out_of_window": 1}
    assert (rep["learn_intervals"], rep["report_intervals"]) == (42, 18)  # as without the typos
    assert rep["first_day"].startswith("2026-01-01") and rep["last_day"].startswith("2026-03-01")


def test_error_report_is_spreadsheet_safe(aws: dict[str, str]) -> None:  # noqa: F811
    from backtest_job import app

    evil = ['=cmd|"/C calc"!A0,A-1002,5,1', "2026-01-05,A-1002,@SUM(A1),1", "+1,A-1002,5,1", "-2+3,A-1002,5,1"]
    key = f"{layout.upload_prefix(SPEC)}formulas.csv"
    _upload(key, ("\n".join([HEADER, *sixty_days(), *evil]) + "\n").encode())
    app.lambda_handler(s3_event(key), lambda_context())  # type: ignore[arg-type]
    cells = [c for row in csv.reader(io.StringIO(_get(key + ".errors.csv"))) for c in row]
    assert len(cells) >= 5 * 4
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    assert any("=cmd|" in c for c in cells)  # the formula is in the report, defused (quoted or prefixed)
    assert any(c.startswith("'") for c in cells)  # a message or row that started like a formula got its prefix


def test_row_errors_are_bounded_and_counted() -> None:
    lines = [HEADER, *sixty_days(), *(f"2026-02-{d % 28 + 1:02d},A-1002,x{d},1" for d in range(5000))]
    report = csv_input.ParseReport()
    good = list(csv_input.iter_rows(lines, SPEC, report))
    assert len(good) == 60 and report.bad == 5000 and len(report.errors) == csv_input.MAX_KEPT_ERRORS
    assert report.reasons() == {"bad_measure": 5000} and report.omitted == 5000 - csv_input.MAX_KEPT_ERRORS
    text = csv_input.error_report_csv(report)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == csv_input.MAX_KEPT_ERRORS + 1 and rows[-1]["reason"] == "omitted"
    assert "4000 more" in rows[-1]["message"]


def test_duplicate_header_check_is_linear() -> None:
    header = ",".join([*HEADER.split(","), *(f"c{i}" for i in range(100_000)), "c7"])
    t0 = time.perf_counter()
    with pytest.raises(csv_input.CsvHeaderError, match="c7 more than once"):
        list(csv_input.iter_rows([header], SPEC))
    assert time.perf_counter() - t0 < 5  # was 600 s with list.count per column


def test_gzip_input_is_capped(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from backtest_job import app

    monkeypatch.setattr(objects, "MAX_DECOMPRESSED_BYTES", 100_000)
    bomb = gzip.compress(("\n".join([HEADER, *sixty_days() * 100]) + "\n").encode())  # ~200 KB unpacked
    assert len(bomb) < 20_000
    key = f"{layout.upload_prefix(SPEC)}bomb.csv"
    _upload(key, bomb)
    rep = app.lambda_handler(s3_event(key), lambda_context())["files"][0]  # type: ignore[arg-type]
    assert rep["status"] == "rejected" and "decompresses to more than 100,000 bytes" in rep["message"]
    with pytest.raises(objects.TooLargeError):
        objects.open_binary(io.BytesIO(bomb), max_decompressed=1000).read()
    assert objects.open_binary(io.BytesIO(bomb), max_decompressed=10**7).read().startswith(HEADER.encode())


def test_cli_backtest_core_applies_the_same_window() -> None:
    header, rows, lines = core.read_csv([HEADER, *sixty_days(), "2100-01-01,A-1002,5,1", "1900-01-01,B-1,5,1"])
    res = core.run(
        header,
        rows,
        86400,
        timestamp="timestamp",
        dimensions=["location_id"],
        backtest_fraction=0.3,
        line_numbers=lines,
    )
    assert res.intervals == 60
    assert [p.line for p in res.problems] == [62, 63] and all("typo in the year" in p.message for p in res.problems)
    hostile = core.run(
        header,
        [["2026-01-02", "A\n\nWhat to do:", "1", "1"], *rows],
        86400,
        timestamp="timestamp",
        dimensions=["location_id"],
    )
    assert hostile.problems and "not allowed" in hostile.problems[0].message
