"""Backtest core and CLI: column detection, bad rows reported and kept, one output row per input row."""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sentinel_core import backtest as core
from sentinel_core.aggregate import aggregate
from sentinel_core.records import Record
from sentinel_core.spec import Measure, PipelineSpec, get_preset
from typer.testing import CliRunner

from simulator.cli import app

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def make_csv(path: Path, n: int = 600, spike_at: int = 500, bad: bool = True) -> int:
    """Two locations, two measures, every 5 minutes; a spike at one location. Returns the data row count."""
    rnd = random.Random(4)
    rows = [["timestamp", "location", "co", "no2"]]
    for i in range(n):
        ts = (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
        for loc in ("A", "B"):
            co = 5 + math.sin(i / 20) + rnd.gauss(0, 0.1)
            if loc == "A" and i == spike_at:
                co += 30
            rows.append([ts, loc, f"{co:.3f}", f"{40 + rnd.gauss(0, 1):.2f}"])
    if bad:
        rows.insert(50, ["not a time", "A", "1", "2"])
        rows.insert(60, [rows[59][0], "B", "abc", "2"])
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return len(rows) - 1


def test_detect_columns() -> None:
    header = ["value", "timestamp", "host"]
    sample = [["1.5", "2024-01-01 00:00", "a"], ["2", "2024-01-01 00:05", "b"]]
    cols = core.detect_columns(header, sample)
    assert cols == core.Columns("timestamp", ("host",), ("value",))
    with pytest.raises(core.BacktestError, match="timestamp"):
        core.detect_columns(["a", "b"], [["x", "1"]])
    with pytest.raises(core.BacktestError, match="not in the header"):
        core.detect_columns(header, sample, measures=["nope"])


def test_cli_end_to_end_with_bad_rows(tmp_path: Path) -> None:
    src, out, groups = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "groups.json"
    n = make_csv(src)
    result = CliRunner().invoke(
        app, ["backtest", str(src), "--interval", "PT5M", "--out", str(out), "--groups-out", str(groups)]
    )
    assert result.exit_code == 0, result.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n
    assert rows[49]["anomaly_score"] == ""  # "not a time" (line 51)
    assert "line 51" in result.output and "line 61" in result.output
    assert rows[59]["anomaly_score"] != ""  # bad co, good no2: still scored
    spike = [r for r in rows if r["location"] == "A" and r["co"] and float(r["co"]) > 20]
    assert len(spike) == 1 and float(spike[0]["anomaly_score"]) >= 90
    assert all(0 <= float(r["anomaly_score"]) <= 100 for r in rows if r["anomaly_score"])
    found = json.loads(groups.read_text())
    co_groups = [g for g in found if g["measure"] == "co" and g["score"] >= 90]
    assert co_groups and co_groups[0]["contributions"][0]["value"] == "A"


def test_backtest_mode_reports_only_the_last_part(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    make_csv(src, bad=False, spike_at=100)
    with src.open() as f:
        header, rows, lines = core.read_csv(f)
    res = core.run(header, rows, 300, backtest_fraction=0.3, line_numbers=lines)
    assert res.report_from is not None
    assert res.columns.dimensions == ("location",) and res.columns.measures == ("co", "no2")
    early = [s for r, s in zip(rows, res.scores, strict=True) if r[0] < res.report_from.strftime("%Y-%m-%d %H:%M")]
    assert early and all(s == 0 for s in early)  # learned, not reported: the spike at 100 is not reported
    assert all(g.start >= res.report_from for g in res.groups)


def test_irregular_timestamps_and_named_columns(tmp_path: Path) -> None:
    src = tmp_path / "nab.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["when", "value"])
        for i in range(1200):  # 32 hours: past the learning day (DetectorConfig.learning_seconds)
            w.writerow([(T0 + timedelta(seconds=97 * i)).isoformat(), "1.0" if i != 1100 else "50"])
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            str(src),
            "--interval",
            "PT10M",
            "--timestamp-column",
            "when",
            "--measure",
            "value",
            "--out",
            str(out),
            "--aggregation",
            "SUM",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1200 and float(rows[1100]["anomaly_score"]) >= 90


def test_unusable_input_fails_clearly(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("a,b\nx,y\n")
    result = CliRunner().invoke(app, ["backtest", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2 and "timestamp" in result.output
    result = CliRunner().invoke(app, ["backtest", str(src), "--out", str(tmp_path / "o.csv"), "--interval", "P1Y"])
    assert result.exit_code != 0


def test_aggregate_sum_and_avg_per_interval_and_series() -> None:
    from sentinel_core.aggregate import aggregate
    from sentinel_core.model import SeriesKey
    from sentinel_core.records import Record
    from sentinel_core.spec import get_preset

    spec = get_preset("loyalty")  # SUM, daily
    recs = [
        Record(T0 + timedelta(hours=1), ("S1",), {"points_earned": 10.0, "points_redeemed": 1.0}),
        Record(T0 + timedelta(hours=5), ("S1",), {"points_earned": 5.0, "points_redeemed": 2.0}),
        Record(T0 + timedelta(days=1), ("S2",), {"points_earned": 7.0, "points_redeemed": 0.0}),
    ]
    out = aggregate(recs, spec)
    assert list(out) == [T0, T0 + timedelta(days=1)]
    assert out[T0][SeriesKey("points_earned", (("location_id", "S1"),))] == 15.0
    avg = aggregate(recs, spec.with_overrides(measures=tuple(m.__class__(m.name, "AVG") for m in spec.measures)))
    assert avg[T0][SeriesKey("points_redeemed", (("location_id", "S1"),))] == 1.5
    hourly = aggregate(recs, spec, interval="PT1H")
    assert len(hourly) == 3


def _loyalty_records(spec: PipelineSpec, days: int = 120) -> list[Record]:
    rnd = random.Random(7)
    out = []
    for d in range(days):
        for loc in ("S1", "S2"):
            earned = 100 + 10 * math.sin(d / 7) + rnd.gauss(0, 2) + (300 if (loc, d) == ("S1", 110) else 0)
            out.append(
                Record(T0 + timedelta(days=d), (loc,), {"points_earned": round(earned, 3), "points_redeemed": 20.0})
            )
    return out


def test_records_path_equals_the_csv_text_path() -> None:
    """The backtest job's records path scores exactly like the CLI's text path (what the job used to do)."""
    spec = get_preset("loyalty")
    records = _loyalty_records(spec)
    header = [spec.timestamp_column, *spec.dimensions, *spec.measure_names]
    rows = [
        [r.timestamp.strftime("%Y-%m-%d %H:%M:%S"), *r.dimensions, *(repr(r.values[m]) for m in spec.measure_names)]
        for r in records
    ]
    text = core.run(
        header,
        rows,
        86400,
        timestamp=spec.timestamp_column,
        dimensions=list(spec.dimensions),
        measures=list(spec.measure_names),
        aggregation="SUM",
        backtest_fraction=spec.backtest_fraction,
        detector_id="d",
    )
    direct = core.run_records(iter(records), spec, detector_id="d")
    assert (direct.series, direct.intervals, direct.report_from) == (text.series, text.intervals, text.report_from)
    assert [g.to_dict() for g in direct.groups] == [g.to_dict() for g in text.groups]
    assert any(g.score >= spec.severity_threshold for g in direct.groups)


def test_mixed_sum_and_avg_measures_are_each_aggregated_their_own_way() -> None:
    base = get_preset("loyalty")
    spec = replace(
        base, measures=(Measure("points_earned", "SUM", "points"), Measure("points_redeemed", "AVG", "points"))
    )
    twice = [r for r in _loyalty_records(spec, days=40) for _ in range(2)]  # every reading twice per day
    direct = core.run_records(twice, spec, detector_id="d")
    by_interval = aggregate(twice, spec)
    day = next(iter(by_interval.values()))
    assert {k.measure: v for k, v in day.items() if k.dimensions == (("location_id", "S2"),)}["points_redeemed"] == 20.0
    assert direct.intervals == 40 and direct.series == 4
