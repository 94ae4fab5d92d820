"""Firehose delivery through the REAL transform handler, played by the local runtime from a handcrafted minimal
cloud assembly (CloudFormation's standard shapes). The synthesized-stack version is test_delivery.py."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from sentinel_core import layout
from sentinel_core.spec import get_preset

from simulator.runtime import LocalPipeline
from simulator.runtime.iot import RuleSql, topic_matches
from simulator.runtime.schedule import Schedule

ROOT = Path(__file__).resolve().parents[2]
SPEC = get_preset("air-quality")
T0 = datetime(2026, 3, 23, 10, 7, tzinfo=UTC)


def _template(compression: str = "UNCOMPRESSED") -> dict[str, Any]:
    return {
        "Resources": {
            "DataBucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Transform": {
                "Type": "AWS::Lambda::Function",
                "Metadata": {"aws:asset:path": "asset.local", "aws:asset:property": "Code"},
                "Properties": {
                    "Handler": "transform.app.lambda_handler",
                    "Runtime": "python3.12",
                    "Timeout": 60,
                    "Environment": {
                        "Variables": {
                            "SENTINEL_SPEC": SPEC.to_json(),
                            "DATA_BUCKET": {"Ref": "DataBucket"},
                            "POWERTOOLS_SERVICE_NAME": "transform",
                            "POWERTOOLS_METRICS_NAMESPACE": "MetricSentinel",
                        }
                    },
                },
            },
            "Stream": {
                "Type": "AWS::KinesisFirehose::DeliveryStream",
                "Properties": {
                    "DeliveryStreamType": "DirectPut",
                    "ExtendedS3DestinationConfiguration": {
                        "BucketARN": {"Fn::GetAtt": ["DataBucket", "Arn"]},
                        "Prefix": layout.firehose_prefix(SPEC),
                        "ErrorOutputPrefix": layout.firehose_error_prefix(SPEC),
                        "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 64},
                        "CompressionFormat": compression,
                        "DynamicPartitioningConfiguration": {"Enabled": True},
                        "ProcessingConfiguration": {
                            "Enabled": True,
                            "Processors": [
                                {
                                    "Type": "Lambda",
                                    "Parameters": [
                                        {
                                            "ParameterName": "LambdaArn",
                                            "ParameterValue": {"Fn::GetAtt": ["Transform", "Arn"]},
                                        },
                                        {"ParameterName": "BufferSizeInMBs", "ParameterValue": "1"},
                                    ],
                                }
                            ],
                        },
                    },
                },
            },
            "Rule": {
                "Type": "AWS::IoT::TopicRule",
                "Properties": {
                    "TopicRulePayload": {
                        "Sql": f"SELECT * FROM '{SPEC.telemetry_topic_filter}'",  # noqa: S608
                        "AwsIotSqlVersion": "2016-03-23",
                        "Actions": [
                            {
                                "Firehose": {
                                    "DeliveryStreamName": {"Ref": "Stream"},
                                    "Separator": "\n",
                                    "RoleArn": "arn:aws:iam::123456789012:role/x",
                                }
                            }
                        ],
                        "ErrorAction": {"CloudwatchLogs": {"LogGroupName": "iot-errors", "RoleArn": "r"}},
                    }
                },
            },
        }
    }


def make_assembly(tmp: Path, compression: str = "UNCOMPRESSED") -> Path:
    out = tmp / "cdk.out"
    shutil.copytree(ROOT / "lambdas", out / "asset.local", ignore=shutil.ignore_patterns("__pycache__"))
    (out / "Local.template.json").write_text(json.dumps(_template(compression)))
    manifest = {
        "version": "36.0.0",
        "artifacts": {
            "Local": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://unknown-account/unknown-region",
                "properties": {"templateFile": "Local.template.json"},
            }
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[LocalPipeline]:
    with mock_aws():
        yield LocalPipeline.from_assembly(make_assembly(tmp_path)).start()


def objects(p: LocalPipeline, prefix: str) -> dict[str, bytes]:
    s3 = p.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=p.data_bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=p.data_bucket, Key=o["Key"])["Body"].read()
            out[o["Key"]] = gzip.decompress(body) if o["Key"].endswith(".gz") else body
    return out


def reading(minute: int, loc: str = "B-101", **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "TIMESTAMP": f"2026-03-23 10:{minute:02d}",
        "LOCATION_ID": loc,
        "CO": 2.6,
        "SO2": 62,
        "NO2": 57,
    }
    rec.update(over)
    return rec


def test_iot_publish_to_interval_folders_and_errors(pipeline: LocalPipeline) -> None:
    topic = SPEC.telemetry_topic("sensor-1")
    good = [reading(m) for m in (3, 4, 5, 7)]
    for i, rec in enumerate(good):
        pipeline.publish(topic, rec, now=T0 + timedelta(seconds=i))
    pipeline.publish(topic, b"{broken", now=T0 + timedelta(seconds=5))
    pipeline.publish(topic, reading(7, CO="NaN"), now=T0 + timedelta(seconds=6))
    pipeline.publish("other/topic", reading(7), now=T0 + timedelta(seconds=7))  # no rule matches
    assert pipeline.pending == 6 and not objects(pipeline, "")
    pipeline.flush(T0 + timedelta(seconds=59))
    assert pipeline.pending == 6  # buffer interval (60 s) not over yet
    pipeline.flush(T0 + timedelta(seconds=61))
    assert pipeline.pending == 0
    live = objects(pipeline, layout.live_root(SPEC))
    folders = {k.rsplit("/", 1)[0] + "/": v for k, v in live.items()}
    assert set(folders) == {"air-quality/live/20260323/1000/", "air-quality/live/20260323/1005/"}
    key = next(iter(k for k in live if "/1005/" in k))
    name = key.rsplit("/", 1)[1]
    assert name.startswith(pipeline.firehoses[next(iter(pipeline.firehoses))].name + "-1-2026-03-23-10-07-")
    lines = [json.loads(x) for x in folders["air-quality/live/20260323/1005/"].decode().splitlines()]
    assert [x["TIMESTAMP"] for x in lines] == ["2026-03-23 10:05:00", "2026-03-23 10:07:00"]
    errors = objects(pipeline, layout.error_root(SPEC))
    [(err_key, err_body)] = errors.items()
    assert err_key.startswith("air-quality/errors/processing-failed/2026/03/23/")
    docs = [json.loads(x) for x in err_body.decode().splitlines()]
    assert {d["errorCode"] for d in docs} == {"Lambda.ProcessingFailedStatus"}
    assert set(docs[0]) >= {
        "attemptsMade",
        "arrivalTimestamp",
        "errorMessage",
        "attemptEndingTimestamp",
        "rawData",
        "lambdaArn",
    }
    from transform.logic import explain_error_document

    assert sorted(explain_error_document(d, SPEC)[0] for d in docs) == ["bad_measure", "not_json"]
    assert base64.b64decode(docs[0]["rawData"]).endswith(b"\n")  # the IoT separator is part of the record
    ledger = pipeline.ledger
    assert ledger.records_in == 6 == ledger.delivered + ledger.failed + ledger.dropped + pipeline.pending
    assert (ledger.delivered, ledger.failed) == (4, 2)
    assert ledger.iot_messages == 7


def test_gzip_and_function_error_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        p = LocalPipeline.from_assembly(make_assembly(tmp_path, "GZIP")).start()
        fn = p.function("transform")
        calls = []

        def broken(event: Any, context: Any) -> Any:
            calls.append(event["invocationId"])
            raise RuntimeError("out of memory")

        fn._fn = broken
        p.put_firehose(next(iter(p.firehoses)), json.dumps(reading(7)), now=T0)
        p.flush(T0, force=True)
        assert len(calls) == 4  # first attempt + NumberOfRetries (default 3)
        [(key, body)] = objects(p, "").items()
        assert key.endswith(".gz") and "/processing-failed/" in key
        doc = json.loads(body)
        assert (doc["errorCode"], doc["attemptsMade"]) == ("Lambda.FunctionError", 4)
        assert "out of memory" in doc["errorMessage"]
        assert p.ledger.failed == 1 == p.ledger.records_in


def test_function_lookup_and_environment(pipeline: LocalPipeline) -> None:
    fn = pipeline.function("transform")
    assert pipeline.function("Transform") is fn and pipeline.function(fn.arn) is fn
    assert fn.environment["DATA_BUCKET"] == pipeline.data_bucket
    with pytest.raises(KeyError, match="known"):
        pipeline.function("nope")


def test_topic_filters_and_sql() -> None:
    assert topic_matches("a/+/c", "a/b/c") and not topic_matches("a/+/c", "a/b/d/c")
    assert topic_matches("a/#", "a") and topic_matches("a/#", "a/b/c") and not topic_matches("a/#/c", "a/b/c")
    sql = RuleSql.parse("SELECT *, topic(3) AS thing FROM 'sentinel/air-quality/+/telemetry'")
    out = sql.apply("sentinel/air-quality/s-9/telemetry", b'{"CO": 1}', T0)
    assert out is not None and json.loads(out) == {"CO": 1, "thing": "s-9"}
    assert sql.apply("sentinel/other/s-9/telemetry", b"{}", T0) is None


def test_schedules() -> None:
    rate = Schedule.parse("rate(5 minutes)")
    assert rate.fire_times(T0, T0 + timedelta(minutes=10)) == [T0.replace(minute=10), T0.replace(minute=15)]
    cron = Schedule.parse("cron(2/5 * * * ? *)")
    assert cron.fire_times(T0, T0 + timedelta(minutes=10)) == [T0.replace(minute=12), T0.replace(minute=17)]
    daily = Schedule.parse("cron(30 1 * * ? *)")
    assert daily.fire_times(T0, T0 + timedelta(days=1)) == [datetime(2026, 3, 24, 1, 30, tzinfo=UTC)]
    weekdays = Schedule.parse("cron(0 9 ? * MON-FRI *)")
    assert [t.weekday() for t in weekdays.fire_times(T0, T0 + timedelta(days=7))] == [1, 2, 3, 4, 0]
