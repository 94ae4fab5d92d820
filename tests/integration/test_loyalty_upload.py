"""Loyalty upload through the SYNTHESIZED stack: putting a CSV under the upload prefix fires the bucket's S3
notification (prefix + .csv suffix from the template) into the real backtest job with the stack's environment.

A file with bad rows: the per-row error report lands next to it, groups in the stack's anomaly table, one summary
and the top alerts on the stack's alert topic (read back through an SQS subscription); the job's own
``.errors.csv`` re-triggers the notification and is skipped; files outside the prefix trigger nothing.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sentinel_core import layout, store
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from simulator.uploads import generate_upload
from tests.support.aws import Play

END = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture
def pipeline(play: Play) -> LocalPipeline:
    return play("loyalty")


def inbox(p: LocalPipeline) -> str:
    """Subscribe an SQS queue to the stack's alert topic (as an e-mail reader would be)."""
    (topic,) = [t for t in p.template.of_type("AWS::SNS::Topic") if t.metadata.get("sentinel:role") == "alert-topic"]
    sqs, sns = p.client("sqs"), p.client("sns")
    url = sqs.create_queue(QueueName="alert-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic.arn, Protocol="sqs", Endpoint=arn)
    return str(url)


def drain(p: LocalPipeline, url: str) -> list[dict[str, Any]]:
    sqs = p.client("sqs")
    out: list[dict[str, Any]] = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in msgs:
            out.append(json.loads(json.loads(m["Body"])["Message"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def test_the_upload_trigger_is_the_templates(pipeline: LocalPipeline) -> None:
    spec = PipelineSpec.from_json(pipeline.env_of("backtest_job")["SENTINEL_SPEC"])
    (trigger,) = pipeline.s3_triggers
    assert (trigger.bucket, trigger.prefix, trigger.suffix) == (
        pipeline.data_bucket,
        layout.upload_prefix(spec),
        ".csv",
    )
    assert trigger.function_arn == pipeline.function("backtest_job").arn


def test_a_csv_upload_is_backtested_by_the_stack(pipeline: LocalPipeline, tmp_path: Path) -> None:
    spec = PipelineSpec.from_json(pipeline.env_of("backtest_job")["SENTINEL_SPEC"])
    env = pipeline.env_of("backtest_job")
    url = inbox(pipeline)
    summary = generate_upload(tmp_path, spec, days=200, locations=6, seed=5, end=END, anomalies=3, bad_rows=4)
    key = f"{layout.upload_prefix(spec)}loyalty.csv"
    # the upload fires the job (one notification, one invocation)
    assert pipeline.upload(pipeline.data_bucket, key, summary.file.read_bytes(), now=END) == 1
    s3 = pipeline.client("s3")
    errors_key = key + ".errors.csv"
    report = json.loads(s3.get_object(Bucket=pipeline.data_bucket, Key=key + ".report.json")["Body"].read())
    assert report["status"] == "ok" and report["bad_rows"] == 4 and report["errors_key"] == errors_key
    errors = list(
        csv.DictReader(io.StringIO(s3.get_object(Bucket=pipeline.data_bucket, Key=errors_key)["Body"].read().decode()))
    )
    assert sorted(e["reason"] for e in errors) == ["bad_measure", "bad_timestamp", "duplicate", "missing_column"]

    groups = store.list_groups(pipeline.client("dynamodb"), env["ANOMALY_TABLE"], env["DETECTOR_ID"], limit=500)
    assert len(groups) == report["groups"] > 0
    messages = drain(pipeline, url)
    assert sum(1 for m in messages if m.get("type") == "backtestSummary") == 1
    assert len(messages) == report["alerts_sent"] == 1 + report["groups_at_threshold"]

    # in AWS the job's own .errors.csv (it ends in .csv) fires the same notification: it is skipped, not backtested
    invocations = pipeline.ledger.lambda_invocations[pipeline.function("backtest_job").name]
    assert pipeline.upload(pipeline.data_bucket, errors_key, b"line,column,reason,message,row\n", now=END) == 1
    assert pipeline.ledger.lambda_invocations[pipeline.function("backtest_job").name] == invocations + 1
    assert drain(pipeline, url) == []
    # outside the prefix, or not .csv: no trigger
    assert pipeline.upload(pipeline.data_bucket, "elsewhere/loyalty.csv", b"x", now=END) == 0
    assert pipeline.upload(pipeline.data_bucket, f"{layout.upload_prefix(spec)}notes.txt", b"x", now=END) == 0
