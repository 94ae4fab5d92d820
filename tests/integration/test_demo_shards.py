"""`python -m simulator demo --shards N`: the same demo through the sharded detector (the Step Functions fan-out,
played by the local runtime) finds, loses and falsely alerts exactly what the single detector does."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.demo import DemoOptions, DemoResult, run_demo

pytestmark = pytest.mark.slow


def _run(tmp: Path, request: pytest.FixtureRequest, shards: int) -> DemoResult:
    cache = getattr(request.config, "cache", None)
    synth_dir = Path(str(cache.mkdir(f"demo-cdk-out-air-quality-{shards}shards"))) if cache else None
    options = DemoOptions(days=2, hours=3, locations=5, seed=11, anomalies=3, out=tmp, synth_dir=synth_dir)
    return run_demo(options if shards == 1 else DemoOptions(**{**options.__dict__, "shards": shards}))


def test_four_shards_give_the_single_detectors_figures(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    one = _run(tmp_path_factory.mktemp("one"), request, 1)
    four = _run(tmp_path_factory.mktemp("four"), request, 4)
    found = [(d.series, d.kind, d.start, d.detected_at, d.severity) for d in one.detections]
    assert any(d.detected_at is not None for d in one.detections), "the run must find something to compare"
    assert [(d.series, d.kind, d.start, d.detected_at, d.severity) for d in four.detections] == found
    figures = (one.counts.lost, one.false_alerts, len(one.alerts))
    assert (four.counts.lost, four.false_alerts, len(four.alerts)) == figures
    assert [a.sms for a in four.alerts] == [a.sms for a in one.alerts]
    assert four.counts.intervals_scored == one.counts.intervals_scored > 0
    assert four.state_matches  # the recomputed bands match the shards' saved models, put together


def test_the_demo_command_takes_shards() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "--shards" in result.output
    bad = CliRunner().invoke(app, ["demo", "--shards", "0"])
    assert bad.exit_code != 0
