"""Activate / deactivate on the local runtime: a deployed-disabled schedule is not run, `sentinel detector`
flips the rule in moto (what the local runtime reads at every tick), and `--skip` makes the detector leave the
paused intervals unscored while `--catch-up` scores them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel_core import activation
from typer.testing import CliRunner

from local_aws import LocalPipeline
from simulator.cli import app
from tests.support.aws import Play

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
cli = CliRunner()


def outputs_file(pipeline: LocalPipeline, tmp_path: Path) -> Path:
    """What `cdk deploy --outputs-file` writes, resolved by the local runtime's template."""
    t = pipeline.template
    values = {k: str(t.resolve(v["Value"])) for k, v in t.body.get("Outputs", {}).items()}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({t.stack_name: values}))
    return path


def detector_runs(results: list[tuple[str, datetime, Any]], pipeline: LocalPipeline) -> list[dict[str, Any]]:
    name = pipeline.function("detector").name
    runs = [r for n, _, r in results if n == name]
    assert all(isinstance(r, dict) for r in runs), runs
    return runs


def sentinel(*args: str) -> str:
    result = cli.invoke(app, ["detector", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_deactivated_schedule_is_not_run_until_activated(play: Play, tmp_path: Path) -> None:
    pipeline = play("air-quality", detector_active="false")
    outputs = outputs_file(pipeline, tmp_path)
    pipeline.tick(T0)
    assert detector_runs(pipeline.tick(T0 + timedelta(hours=1)), pipeline) == []  # deployed disabled
    assert "DISABLED" in sentinel("status", "--stack-outputs", str(outputs))

    assert "ENABLED" in sentinel("activate", "--stack-outputs", str(outputs))
    first = detector_runs(pipeline.tick(T0 + timedelta(hours=1, minutes=10)), pipeline)
    assert len(first) == 2  # PT5M: two runs in ten minutes

    sentinel("deactivate", "--stack-outputs", str(outputs))
    assert detector_runs(pipeline.tick(T0 + timedelta(hours=3)), pipeline) == []  # paused: nothing ran
    last_before_pause = first[-1]["last_interval"]

    # --catch-up: the first run after the pause scores every missed interval, in order
    sentinel("activate", "--catch-up", "--stack-outputs", str(outputs))
    (caught_up,) = detector_runs(pipeline.tick(T0 + timedelta(hours=3, minutes=5)), pipeline)
    missed = (datetime.fromisoformat(caught_up["last_interval"]) - datetime.fromisoformat(last_before_pause)) // (
        timedelta(minutes=5)
    )
    assert caught_up["intervals_scored"] == missed > 20 and caught_up["skipped_intervals"] == 0

    # --skip: the paused intervals are left unscored, the detector resumes at the last closed one
    sentinel("deactivate", "--stack-outputs", str(outputs))
    pipeline.tick(T0 + timedelta(hours=5))
    resume_at = T0 + timedelta(hours=5)
    sentinel("activate", "--skip", "--at", resume_at.isoformat(), "--stack-outputs", str(outputs))
    assert "skip intervals before" in sentinel("status", "--stack-outputs", str(outputs))
    (resumed,) = detector_runs(pipeline.tick(resume_at + timedelta(minutes=5)), pipeline)
    assert resumed["intervals_scored"] <= 2 and resumed["skipped_intervals"] > 20
    s3 = pipeline.client("s3")
    key = activation.resume_key(pipeline_spec(pipeline))
    assert activation.read_skip_before(s3, pipeline.data_bucket, key) == resume_at  # kept, now inert


def pipeline_spec(pipeline: LocalPipeline) -> Any:
    from sentinel_core.spec import PipelineSpec

    fn = pipeline.function("detector")
    return PipelineSpec.from_json(fn.environment["SENTINEL_SPEC"])
