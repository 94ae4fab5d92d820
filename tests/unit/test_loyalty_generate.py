"""generate --preset loyalty: one CSV in the preset's schema, labels in the backtest's report window, bad rows."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sentinel_core.csv_input import parse_csv
from sentinel_core.spec import get_preset
from typer.testing import CliRunner

from simulator.cli import app
from simulator.datagen import read_labels
from simulator.uploads import generate_upload

SPEC = get_preset("loyalty")
END = datetime(2026, 3, 19, tzinfo=UTC)


def test_file_follows_the_schema_and_labels_fall_in_the_report_window(tmp_path: Path) -> None:
    s = generate_upload(tmp_path, SPEC, days=120, locations=4, seed=3, end=END, anomalies=3)
    with s.file.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "location_id", "points_earned", "points_redeemed"]
    assert {r["location_id"] for r in rows} == {"A-1002", "B-101", "C-174", "D-211"}
    days = sorted({r["timestamp"][:10] for r in rows})
    assert days[0] == "2025-11-19" and days[-1] == "2026-03-18" and len(days) == 120
    records, report = parse_csv(s.file.open(), SPEC)
    assert report.errors == [] and len(records) == s.records
    assert s.labels and all(lab.start >= s.report_start for lab in s.labels)
    assert read_labels(s.labels_file) == s.labels


def test_weekly_pattern_busier_weekends_and_the_tuesday_promotion(tmp_path: Path) -> None:
    s = generate_upload(tmp_path, SPEC, days=84, locations=10, seed=1, end=END, anomalies=0)
    earned: Counter[int] = Counter()
    with s.file.open() as fh:
        for r in csv.DictReader(fh):
            earned[datetime.fromisoformat(r["timestamp"]).weekday()] += int(r["points_earned"])
    assert earned[1] > 1.3 * earned[0]  # double points Tuesday
    assert earned[6] > earned[0] and earned[5] > earned[0]  # weekends


def test_bad_rows_are_the_four_kinds_the_job_reports(tmp_path: Path) -> None:
    s = generate_upload(tmp_path, SPEC, days=30, locations=2, seed=2, end=END, anomalies=0, bad_rows=4)
    _, report = parse_csv(s.file.open(), SPEC)
    assert sorted(e.reason for e in report.errors) == ["bad_measure", "bad_timestamp", "duplicate", "missing_column"]


def test_cli_generate_loyalty(tmp_path: Path) -> None:
    args = ["generate", "--preset", "loyalty", "--days", "60", "--locations", "3", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--start", "2026-03-19", "--bad-rows", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "loyalty.csv").exists() and (tmp_path / "labels.csv").exists()
    assert "report on" in result.output
