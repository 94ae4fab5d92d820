"""The data generator: schema-valid records, determinism, labelled anomalies that really are in the data."""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.intervals import interval_range
from sentinel_core.model import SeriesKey
from sentinel_core.records import parse_timestamp, validate
from sentinel_core.spec import SpecError, get_preset
from typer.testing import CliRunner

from simulator.cli import app
from simulator.datagen import (
    Label,
    effect_factor,
    generate_dataset,
    generate_records,
    generate_rows,
    location_ids,
    plan_anomalies,
    read_labels,
    read_records,
    write_labels,
)

SPEC = get_preset("air-quality")
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def test_location_ids_are_unique_and_start_like_the_docs() -> None:
    ids = location_ids(300)
    assert ids[:2] == ["A-1002", "B-101"]
    assert len(set(ids)) == 300
    assert location_ids(5) == ids[:5]


def test_records_validate_against_the_preset_schema() -> None:
    n = 0
    for rec in generate_records(SPEC, T0, T0 + timedelta(days=1), 4, seed=1):
        r = validate(rec, SPEC)
        assert r.timestamp.strftime("%Y-%m-%d %H:%M:%S") == rec["TIMESTAMP"]
        assert all(v >= 0 for v in r.values.values())
        n += 1
    assert 0.95 * 288 * 4 <= n <= 288 * 4  # a few missing intervals, not many


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = list(generate_records(SPEC, T0, T0 + timedelta(hours=6), 3, seed=5))
    b = list(generate_records(SPEC, T0, T0 + timedelta(hours=6), 3, seed=5))
    c = list(generate_records(SPEC, T0, T0 + timedelta(hours=6), 3, seed=6))
    assert a == b
    assert a != c


def test_daily_and_weekly_seasonality_are_visible() -> None:
    by_hour: dict[int, list[float]] = {}
    by_weekend: dict[bool, list[float]] = {}
    for rec in generate_records(SPEC, T0, T0 + timedelta(days=14), 3, seed=2, missing=False):
        ts = parse_timestamp(rec["TIMESTAMP"])
        by_hour.setdefault(ts.hour, []).append(rec["CO"])
        by_weekend.setdefault(ts.weekday() >= 5, []).append(rec["CO"])

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    assert mean(by_hour[8]) > 1.3 * mean(by_hour[3])  # rush hour vs night
    assert mean(by_weekend[False]) > 1.1 * mean(by_weekend[True])


def test_anomalies_change_exactly_the_labelled_points() -> None:
    labels = [
        Label(T0 + timedelta(hours=2), T0 + timedelta(hours=2), "CO|LOCATION_ID=B-101", "spike", 2.0),
        Label(T0 + timedelta(hours=3), T0 + timedelta(hours=4), "NO2|LOCATION_ID=A-1002", "shift", -0.5),
        Label(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=25), "SO2|LOCATION_ID=C-174", "drift", 1.2),
    ]
    end = T0 + timedelta(hours=6)
    clean = list(generate_rows(SPEC, T0, end, 3, seed=9, missing=False))
    dirty = list(generate_rows(SPEC, T0, end, 3, seed=9, anomalies=labels, missing=False))
    assert len(clean) == len(dirty) == 72 * 3
    ents = location_ids(3)
    changed = set()
    for (ts, _, ei, a), (_, _, _, b) in zip(clean, dirty, strict=True):
        for mi, measure in enumerate(SPEC.measure_names):
            if a[mi] != b[mi]:
                changed.add((SeriesKey.of(measure, SPEC, (ents[ei],)).id, ts))
                lab = next(lb for lb in labels if lb.series_id == changed_id(measure, ents[ei]) and lb.covers(ts))
                n = len(interval_range(lab.start, lab.end + timedelta(minutes=5), "PT5M"))
                idx = int((ts - lab.start).total_seconds() // 300)
                assert b[mi] == pytest.approx(a[mi] * effect_factor(lab.kind, lab.magnitude, idx, n))
    expected = {
        (lb.series_id, ts) for lb in labels for ts in interval_range(lb.start, lb.end + timedelta(minutes=5), "PT5M")
    }
    assert changed == expected


def changed_id(measure: str, loc: str) -> str:
    return f"{measure}|LOCATION_ID={loc}"


def test_missing_intervals_exist_but_never_inside_a_label() -> None:
    end = T0 + timedelta(days=10)
    labels = plan_anomalies(SPEC, T0, end, 5, seed=3, count=6)
    seen: Counter[tuple[str, datetime]] = Counter()
    for ts, _, ei, _ in generate_rows(SPEC, T0, end, 5, seed=3, anomalies=labels):
        seen[(location_ids(5)[ei], ts)] += 1
    assert max(seen.values()) == 1
    full = 10 * 288 * 5
    assert 0.9 * full < len(seen) < full
    for lab in labels:
        loc = lab.series.dimension("LOCATION_ID")
        assert loc is not None
        for ts in interval_range(lab.start, lab.end + timedelta(minutes=5), "PT5M"):
            assert (loc, ts) in seen, f"{lab} has no data at {ts}"


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(0, 8),
    locations=st.integers(1, 6),
    days=st.integers(2, 6),
)
def test_planned_anomalies_are_in_range_and_never_overlap(seed: int, count: int, locations: int, days: int) -> None:
    start, end = T0, T0 + timedelta(days=days)
    warm = start + timedelta(days=1)
    labels = plan_anomalies(SPEC, start, end, locations, seed, count, not_before=warm)
    assert labels == plan_anomalies(SPEC, start, end, locations, seed, count, not_before=warm)
    events = {(lb.start, lb.end, lb.kind, lb.magnitude) for lb in labels}
    assert len(events) == count
    by_series: dict[str, list[Label]] = {}
    for lb in labels:
        assert warm <= lb.start <= lb.end < end
        assert lb.kind in ("spike", "shift", "drift")
        assert SeriesKey.parse(lb.series_id).measure in SPEC.measure_names
        by_series.setdefault(lb.series_id, []).append(lb)
    for items in by_series.values():
        items.sort()
        for a, b in itertools.pairwise(items):
            assert a.end < b.start


def test_labels_round_trip(tmp_path: Path) -> None:
    labels = plan_anomalies(SPEC, T0, T0 + timedelta(days=3), 4, seed=11, count=4)
    write_labels(tmp_path / "labels.csv", labels)
    assert read_labels(tmp_path / "labels.csv") == labels
    (tmp_path / "bad.csv").write_text("series_id,start,end,kind,magnitude\nCO|LOCATION_ID=X,2026-01-01,x,spike,1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_labels(tmp_path / "bad.csv")


def test_dataset_files(tmp_path: Path) -> None:
    start = datetime(2026, 11, 23, 20, 3, 17, tzinfo=UTC)
    s = generate_dataset(tmp_path, SPEC, days=2, locations=3, seed=4, live_start=start, live_hours=1)
    assert s.live_start == datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    assert s.history_start == s.live_start - timedelta(days=2)
    hist = list(read_records(s.history_file))
    assert len(hist) == s.history_records
    for rec in hist:
        r = validate(rec, SPEC)
        assert s.history_start <= r.timestamp < s.live_start
    with s.live_file.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["TIMESTAMP", "LOCATION_ID", "CO", "SO2", "NO2"]
    assert rows[0]["TIMESTAMP"] == "2026-11-23 20:00:00"
    assert len(rows) == s.live_records
    for row in rows:
        assert s.live_start <= validate(row, SPEC).timestamp < s.live_end
    labels = read_labels(s.labels_file)
    assert labels == s.labels
    assert any(lb.start >= s.live_start for lb in labels)  # one live anomaly by default
    assert any(lb.start < s.live_start for lb in labels)
    # Deterministic for a seed and a start.
    again = generate_dataset(tmp_path / "again", SPEC, days=2, locations=3, seed=4, live_start=start, live_hours=1)
    for name in ("historical_data.json", "live_data.csv", "labels.csv"):
        assert (tmp_path / name).read_bytes() == (again.out_dir / name).read_bytes()


def test_history_lines_are_compact_json_in_schema_order(tmp_path: Path) -> None:
    s = generate_dataset(tmp_path, SPEC, days=0.1, locations=1, seed=1, live_start=T0, live_hours=0)
    line = s.history_file.read_text().splitlines()[0]
    assert list(json.loads(line)) == ["TIMESTAMP", "LOCATION_ID", "CO", "SO2", "NO2"]


def test_presets_without_a_generator_fail_clearly() -> None:
    with pytest.raises(SpecError, match="no data generator"):
        custom = get_preset("ecommerce").with_overrides(preset="custom")  # loyalty/ecommerce have models now
        list(generate_records(custom, T0, T0 + timedelta(hours=1), 1, seed=1))


def test_cli_generate(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--days",
            "1",
            "--locations",
            "2",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
            "--start",
            "2026-05-01T10:00:00Z",
            "--interval",
            "PT10M",
        ],
    )
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "historical_data.json").read_text().splitlines()[0])
    assert first["TIMESTAMP"] == "2026-04-30 10:00:00"
    second = json.loads((tmp_path / "historical_data.json").read_text().splitlines()[2])
    assert second["TIMESTAMP"] == "2026-04-30 10:10:00" or second["LOCATION_ID"] != first["LOCATION_ID"]
    bad = CliRunner().invoke(app, ["generate", "--out", str(tmp_path), "--interval", "PT7M"])
    assert bad.exit_code == 2
    assert "interval must be one of" in bad.output


def test_a_new_preset_plugs_in_with_a_small_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What issue 7 does for ecommerce: an event-stream preset registers a model whose ``expand`` emits events."""
    from sentinel_core.spec import Measure, PipelineSpec

    from simulator import datagen

    spec = PipelineSpec(
        preset="toy-events",
        ingest="kinesis",
        interval="PT10M",
        timestamp_column="event_time",
        dimensions=("page_type",),
        measures=(Measure("views", "SUM", "views", default=1.0),),
        data_prefix="toy",
    )

    def expand(row: datagen.Row, rng: random.Random) -> list[datagen.Row]:
        ts, _, ei, (views,) = row
        return [(ts, ts.strftime("%Y-%m-%d %H:%M:%S"), ei, (1.0,)) for _ in range(round(views))]

    def model(s: PipelineSpec) -> datagen.PresetModel:
        return datagen.PresetModel(
            spec=s,
            measures={"views": datagen.MeasureModel(base=5.0, daily=0.5, noise=0.1, decimals=0)},
            entities=lambda n: [(p,) for p in ("product", "cart", "checkout")[:n]],
            missing_rate=0.0,
            expand=expand,
        )

    monkeypatch.setitem(datagen.MODELS, "toy-events", model)
    events = list(generate_records(spec, T0, T0 + timedelta(hours=1), 3, seed=1))
    rows = list(generate_rows(spec, T0, T0 + timedelta(hours=1), 3, seed=1))
    assert len(events) == sum(round(v[0]) for *_, v in rows) > len(rows)
    assert all(validate(e, spec).values == {"views": 1.0} for e in events)
    n = datagen.write_records(tmp_path / "e.json", spec, iter(rows), datagen.resolve_entities(spec, 3), "jsonl", 1)
    assert n == len(events)
