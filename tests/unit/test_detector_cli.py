"""`sentinel detector` against moto: the stack found by name (CloudFormation outputs), the rule flipped, the
marker written or cleared, and every operator mistake one line with its exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sentinel_core import activation
from typer.testing import CliRunner

from simulator.cli import app
from simulator.errors import EXIT_NOT_FOUND, EXIT_USAGE

REGION = "eu-west-1"
RULE, BUCKET, KEY = "metric-sentinel-schedule", "sentinel-data", "air-quality/detector/resume.json"
OUTPUTS = {"DetectorScheduleRuleName": RULE, "DataBucketName": BUCKET, "DetectorResumeKey": KEY}
cli = CliRunner()


@pytest.fixture
def stack() -> Iterator[str]:
    with mock_aws():
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": v} for k, v in OUTPUTS.items()},
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName="MetricSentinel-air-quality", TemplateBody=json.dumps(template)
        )
        boto3.client("events", region_name=REGION).put_rule(
            Name=RULE, ScheduleExpression="cron(2/5 * * * ? *)", State="ENABLED"
        )
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield "MetricSentinel-air-quality"


def run(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, ["detector", *args, "--region", REGION])
    return result.exit_code, result.output


def state() -> str:
    return str(boto3.client("events", region_name=REGION).describe_rule(Name=RULE)["State"])


def test_deactivate_and_activate_by_stack_name(stack: str) -> None:
    assert run("deactivate", "--stack", stack)[0] == 0 and state() == "DISABLED"
    code, out = run("activate", "--stack", stack, "--skip", "--at", "2026-03-02T12:07:00Z")
    assert code == 0 and state() == "ENABLED" and "skipping intervals before 2026-03-02 12:07" in out
    s3 = boto3.client("s3", region_name=REGION)
    assert activation.read_skip_before(s3, BUCKET, KEY) is not None
    assert run("activate", "--stack", stack)[0] == 0  # --catch-up (default) clears the marker
    assert activation.read_skip_before(s3, BUCKET, KEY) is None
    assert "resume marker: none" in run("status", "--stack", stack)[1]


def test_operator_mistakes_are_one_line_with_their_exit_code(stack: str, tmp_path: Path) -> None:
    code, out = run("status")
    assert code == EXIT_USAGE and "exactly one of --stack-outputs FILE" in out
    lookout = tmp_path / "lookout.json"
    lookout.write_text(json.dumps({"MetricSentinel-air-quality": {"DataBucketName": BUCKET}}))
    code, out = run("status", "--stack-outputs", str(lookout))
    assert code == EXIT_USAGE and "only engine=builtin stacks have a detector schedule" in out
    gone = tmp_path / "gone.json"
    gone.write_text(json.dumps({**OUTPUTS, "DetectorScheduleRuleName": "deleted-rule"}))
    code, out = run("deactivate", "--stack-outputs", str(gone))
    assert code == EXIT_NOT_FOUND and "'deleted-rule' does not exist" in out
    code, out = run("status", "--stack", "NoSuchStack")
    assert code == EXIT_NOT_FOUND and "does not exist" in out
    code, out = run("activate", "--stack", stack, "--skip", "--at", "yesterday")
    assert code == EXIT_USAGE and "--at must be an ISO-8601 time" in out
