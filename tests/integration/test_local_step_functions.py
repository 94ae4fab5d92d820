"""The local runtime plays the state machine CDK synthesizes: an EventBridge schedule starts it, a Distributed Map
fans out over items to a real in-process Lambda handler, Retry absorbs a flaky item, Catch routes a failing one,
and a merge task receives every item's result (the shape of the detector's fan-out)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from local_aws import LocalPipeline, offline

HANDLERS = """
import json, os

CALLS = {"flaky": 0}

def items(event, context):
    return {"shards": list(range(int(os.environ["SHARDS"]))), "time": event["time"]}

def shard(event, context):
    n = event["shard"]
    if n == 1:
        CALLS["flaky"] += 1
        if CALLS["flaky"] == 1:
            raise TimeoutError("shard 1 took too long the first time")
    if n == 3:
        raise ValueError("shard 3 is corrupt")
    return {"shard": n, "series": 10 * n, "time": event["time"]}

def merge(event, context):
    done = [r for r in event["results"] if "shard" in r]
    failed = [r for r in event["results"] if "Error" in r]
    return {"series": sum(r["series"] for r in done), "shards_ok": len(done), "shards_failed": len(failed)}
"""


def build(outdir: Path, code: Path) -> None:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "FanOut", env=cdk.Environment(account="123456789012", region="eu-west-1"))

    def fn(name: str, **env: str) -> lambda_.Function:
        return lambda_.Function(
            stack, name, runtime=lambda_.Runtime.PYTHON_3_12, handler=f"fanout.{name}",
            code=lambda_.Code.from_asset(str(code)), environment=env,
        )  # fmt: skip

    plan = tasks.LambdaInvoke(stack, "Plan", lambda_function=fn("items", SHARDS="4"), payload_response_only=True)
    score = tasks.LambdaInvoke(
        stack, "Score", lambda_function=fn("shard"), payload_response_only=True,
        retry_on_service_exceptions=False,
    )  # fmt: skip
    score.add_retry(errors=["TimeoutError"], max_attempts=2, interval=cdk.Duration.seconds(1))
    caught = sfn.Pass(stack, "ShardFailed", parameters={"Error.$": "$.Error", "Cause.$": "$.Cause"})
    score.add_catch(caught, errors=["States.ALL"])
    fan = sfn.DistributedMap(
        stack, "Shards", items_path="$.shards", max_concurrency=100,
        item_selector={"shard.$": "$$.Map.Item.Value", "time.$": "$.time"}, result_path="$.results",
    )  # fmt: skip
    fan.item_processor(score)
    merge = tasks.LambdaInvoke(stack, "Merge", lambda_function=fn("merge"), payload_response_only=True)
    machine = sfn.StateMachine(stack, "Detector", definition_body=sfn.DefinitionBody.from_chainable(
        plan.next(fan).next(merge)))  # fmt: skip
    rule = events.Rule(stack, "Every5", schedule=events.Schedule.rate(cdk.Duration.minutes(5)))
    rule.add_target(targets.SfnStateMachine(machine))
    app.synth()


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sfn")
    code = root / "code" / "fanout"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text(textwrap.dedent(HANDLERS))
    build(root / "cdk.out", root / "code")
    return root / "cdk.out"


@pytest.fixture
def pipeline(assembly: Path) -> Iterator[LocalPipeline]:
    with offline(LocalPipeline.from_assembly(assembly)) as p:
        yield p


def test_the_synthesized_definition_is_what_is_played(pipeline: LocalPipeline) -> None:
    (sm,) = pipeline.state_machines.values()
    states = sm.definition["States"]
    assert states["Shards"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert {s["Type"] for s in states.values()} == {"Task", "Map"}
    assert pipeline.unsupported == []


def test_a_schedule_runs_the_fan_out_with_retry_and_catch(pipeline: LocalPipeline) -> None:
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    fired = pipeline.tick(t0)  # a rate(5 minutes) rule fires on the 5-minute marks
    assert len(fired) == 1
    name, at, summary = fired[0]
    assert summary["status"] == "SUCCEEDED", summary
    # shard 1 failed once and was retried; shard 3 failed and was caught; 0 + 10 + 20 from the others
    assert summary["output"] == {"series": 30, "shards_ok": 3, "shards_failed": 1}
    assert summary["retries"] == 1 and at == t0
    (execution,) = pipeline.state_machine(name).executions
    assert execution.input["detail-type"] == "Scheduled Event" and execution.task_calls == 1 + 5 + 1
    assert json.loads(json.dumps(execution.to_dict()))["status"] == "SUCCEEDED"
    later = pipeline.tick(t0 + timedelta(minutes=5))  # the same warm functions: shard 1 is no longer slow
    assert [s["retries"] for _, _, s in later] == [0]
    assert (pipeline.ledger.executions, pipeline.ledger.executions_failed) == (2, 0)


def test_a_failed_execution_is_counted_not_raised(pipeline: LocalPipeline) -> None:
    sm = next(iter(pipeline.state_machines.values()))
    ex = pipeline.start_execution(sm.arn, {"no": "time"})  # the plan task needs event["time"]
    assert (ex.status, ex.error) == ("FAILED", "KeyError")
    assert pipeline.ledger.executions_failed == 1
