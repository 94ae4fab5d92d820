"""The publishing loop without a network: injection, validation of what is sent, clean stop, dry run."""

from __future__ import annotations

import concurrent.futures
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sentinel_core.records import validate
from sentinel_core.spec import get_preset
from typer.testing import CliRunner

from simulator.cli import app
from simulator.datagen import generate_dataset, generate_records
from simulator.publisher import Injection, Pacing, Publisher

SPEC = get_preset("air-quality")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Collect:
    """A publish function that acknowledges at once and keeps the payloads (what --dry-run does)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def __call__(self, payload: bytes) -> concurrent.futures.Future[Any]:
        self.payloads.append(payload)
        f: concurrent.futures.Future[Any] = concurrent.futures.Future()
        f.set_result({"packet_id": len(self.payloads)})
        return f


def test_injection_hits_only_its_location_measure_and_window() -> None:
    inj = Injection.build(SPEC, "spike", ["B-101"], "NO2", magnitude=2.0, after=2)
    records = list(generate_records(SPEC, T0, T0 + timedelta(hours=1), 3, seed=1, missing=False))
    sink = Collect()
    Publisher(SPEC, sink, Pacing(), inj).run(records)
    sent = [json.loads(p) for p in sink.payloads]
    assert len(sent) == len(records)
    spike_ts = (T0 + timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
    for src, out in zip(records, sent, strict=True):
        for m in SPEC.measure_names:
            hit = src["LOCATION_ID"] == "B-101" and m == "NO2" and src["TIMESTAMP"] == spike_ts
            assert out[m] == pytest.approx(src[m] * 3.0 if hit else src[m]), (src, m)
    [label] = inj.labels(SPEC, T0)
    assert label.series_id == "NO2|LOCATION_ID=B-101"
    assert label.start == label.end == T0 + timedelta(minutes=10)


def test_drift_injection_ramps() -> None:
    inj = Injection.build(SPEC, "drift", ["A-1002"], "CO", magnitude=1.0, after=0, duration=4)
    records = [r for r in generate_records(SPEC, T0, T0 + timedelta(minutes=30), 1, seed=2, missing=False)]
    sink = Collect()
    Publisher(SPEC, sink, Pacing(), inj).run(records)
    ratios = [json.loads(p)["CO"] / r["CO"] for p, r in zip(sink.payloads, records, strict=True)]
    assert ratios == pytest.approx([1.25, 1.5, 1.75, 2.0, 1.0, 1.0], rel=1e-3)


def test_bad_injections_are_refused() -> None:
    with pytest.raises(ValueError, match="--inject must be one of"):
        Injection.build(SPEC, "wobble", ["A-1002"])
    with pytest.raises(ValueError, match="--inject-measure"):
        Injection.build(SPEC, "spike", ["A-1002"], "PM25")
    with pytest.raises(ValueError, match="--location"):
        Injection.build(SPEC, "spike", [])


def test_invalid_records_are_counted_and_explained_never_sent() -> None:
    good = next(generate_records(SPEC, T0, T0 + timedelta(minutes=5), 1, seed=1))
    records = [good, {**good, "CO": "n/a"}, {"LOCATION_ID": "X"}, good]
    sink = Collect()
    stats = Publisher(SPEC, sink, Pacing()).run(records, total=4)
    assert (stats.sent, stats.acked, stats.invalid, stats.not_sent) == (2, 2, 2, 0)
    assert "record 2: measure 'CO'" in stats.invalid_examples[0]
    assert "record 3" in stats.invalid_examples[1]
    for p in sink.payloads:
        validate(json.loads(p), SPEC)


def test_stop_takes_no_new_record_and_says_where_to_resume() -> None:
    records = list(generate_records(SPEC, T0, T0 + timedelta(hours=2), 2, seed=3, missing=False))
    sink = Collect()
    pub = Publisher(SPEC, sink, Pacing())

    def on_progress(stats: Any) -> None:
        if stats.acked == 10:
            pub.stop.set()

    pub._on_progress = on_progress
    stats = pub.run(records, total=len(records))
    assert stats.stopped_early
    assert stats.sent == stats.acked == stats.resume_skip == len(sink.payloads) == 10
    assert stats.not_sent == len(records) - 10
    assert [json.loads(p) for p in sink.payloads] == [validate(r, SPEC).to_dict(SPEC) for r in records[:10]]


def test_dry_run_prints_payloads(tmp_path: Path) -> None:
    s = generate_dataset(tmp_path, SPEC, days=0.05, locations=2, seed=1, live_start=T0, live_hours=0.5)
    result = CliRunner().invoke(
        app, ["publish", "--dry-run", "--file", str(s.live_file), "--thing", "dev-9", "--count", "4"]
    )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("sentinel/")]
    assert len(lines) == 4
    topic, payload = lines[0].split(" ", 1)
    assert topic == "sentinel/air-quality/dev-9/telemetry"
    assert validate(json.loads(payload), SPEC).timestamp == T0
    missing = CliRunner().invoke(app, ["publish", "--file", str(s.live_file), "--thing", "dev-9"])
    assert missing.exit_code == 2
    assert "--endpoint" in missing.output
