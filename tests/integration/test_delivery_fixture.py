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

from local_aws import LocalPipeline
from local_aws.iot import RuleSql, RuleSqlError, topic_matches
from local_aws.schedule import Schedule

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
                        "Sql": SPEC.iot_rule_sql(),  # the stack's: payload wrapped with the thing name
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
    topic = SPEC.telemetry_topic("B-101")  # the device of location B-101 (thing name = location)
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
        p.publish(SPEC.telemetry_topic("B-101"), reading(7), now=T0)
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
    # The stack's form: any payload (JSON or not) wrapped opaque, so a payload field cannot shadow the thing name.
    wrap = RuleSql.parse(SPEC.iot_rule_sql())
    for payload in (b'{"CO": 1, "thing": "forged"}', b"not json at all\n", b""):
        env = json.loads(wrap.apply("sentinel/air-quality/s-9/telemetry", payload, T0) or b"null")
        assert env == {"payload": base64.b64encode(payload).decode(), "thing": "s-9"}
    with pytest.raises(RuleSqlError, match="only 'base64'"):
        RuleSql.parse("SELECT encode(*, 'hex') AS p FROM 'a/+'")


def test_schedules() -> None:
    rate = Schedule.parse("rate(5 minutes)")
    assert rate.fire_times(T0, T0 + timedelta(minutes=10)) == [T0.replace(minute=10), T0.replace(minute=15)]
    cron = Schedule.parse("cron(2/5 * * * ? *)")
    assert cron.fire_times(T0, T0 + timedelta(minutes=10)) == [T0.replace(minute=12), T0.replace(minute=17)]
    daily = Schedule.parse("cron(30 1 * * ? *)")
    assert daily.fire_times(T0, T0 + timedelta(days=1)) == [datetime(2026, 3, 24, 1, 30, tzinfo=UTC)]
    weekdays = Schedule.parse("cron(0 9 ? * MON-FRI *)")
    assert [t.weekday() for t in weekdays.fire_times(T0, T0 + timedelta(days=7))] == [1, 2, 3, 4, 0]


PROBE = """
import json, os
import boto3

def lambda_handler(event, context):
    s3 = boto3.client("s3")
    n = len(s3.list_objects_v2(Bucket=os.environ["DATA_BUCKET"], Prefix="probe/").get("Contents", []))
    s3.put_object(Bucket=os.environ["DATA_BUCKET"], Key=f"probe/{n:04d}-{context.function_name}.json",
                  Body=json.dumps(event).encode())
    if event.get("detail-type") == "Scheduled Event":
        boto3.client("sns").publish(TopicArn=os.environ["ALERT_TOPIC_ARN"], Message=json.dumps({"at": event["time"]}),
                                    Subject="tick")
    return {"ok": True}
"""


def _wide_template() -> dict[str, Any]:
    body = _template()
    res = body["Resources"]
    ecom = get_preset("ecommerce")
    res["Clicks"] = {"Type": "AWS::Kinesis::Stream", "Properties": {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}}}
    clicks_fh = json.loads(json.dumps(res["Stream"]))
    clicks_fh["Properties"]["DeliveryStreamType"] = "KinesisStreamAsSource"
    clicks_fh["Properties"]["KinesisStreamSourceConfiguration"] = {
        "KinesisStreamARN": {"Fn::GetAtt": ["Clicks", "Arn"]},
        "RoleARN": "arn:aws:iam::123456789012:role/x",
    }
    dest = clicks_fh["Properties"]["ExtendedS3DestinationConfiguration"]
    dest["Prefix"], dest["ErrorOutputPrefix"] = layout.firehose_prefix(ecom), layout.firehose_error_prefix(ecom)
    dest["ProcessingConfiguration"]["Processors"][0]["Parameters"][0]["ParameterValue"] = {
        "Fn::GetAtt": ["EcomTransform", "Arn"]
    }
    res["ClicksFirehose"] = clicks_fh
    ecom_fn = json.loads(json.dumps(res["Transform"]))
    ecom_fn["Properties"]["Environment"]["Variables"]["SENTINEL_SPEC"] = ecom.to_json()
    res["EcomTransform"] = ecom_fn
    res["Alerts"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    res["AlertQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    res["Probe"] = {
        "Type": "AWS::Lambda::Function",
        "Metadata": {"aws:asset:path": "asset.local"},
        "Properties": {
            "Handler": "probe.app.lambda_handler",
            "Timeout": 30,
            "Environment": {"Variables": {"DATA_BUCKET": {"Ref": "DataBucket"}, "ALERT_TOPIC_ARN": {"Ref": "Alerts"}}},
        },
    }
    res["ProbeSub"] = {
        "Type": "AWS::SNS::Subscription",
        "Properties": {
            "Protocol": "lambda",
            "TopicArn": {"Ref": "Alerts"},
            "Endpoint": {"Fn::GetAtt": ["Probe", "Arn"]},
        },
    }
    res["QueueSub"] = {
        "Type": "AWS::SNS::Subscription",
        "Properties": {
            "Protocol": "sqs",
            "TopicArn": {"Ref": "Alerts"},
            "Endpoint": {"Fn::GetAtt": ["AlertQueue", "Arn"]},
        },
    }
    res["Every5"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "ScheduleExpression": "rate(5 minutes)",
            "State": "ENABLED",
            "Targets": [{"Arn": {"Fn::GetAtt": ["Probe", "Arn"]}, "Id": "Target0"}],
        },
    }
    res["Table"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        },
    }
    return body


def test_kinesis_source_schedule_sns_fanout_and_tables(tmp_path: Path) -> None:
    out = make_assembly(tmp_path)
    (out / "asset.local" / "probe").mkdir()
    (out / "asset.local" / "probe" / "__init__.py").write_text("")
    (out / "asset.local" / "probe" / "app.py").write_text(PROBE)
    (out / "Local.template.json").write_text(json.dumps(_wide_template()))
    with mock_aws():
        p = LocalPipeline.from_assembly(out).start()
        ecom = get_preset("ecommerce")
        stream = p.physical_name("Clicks")
        ok = {"event_time": "2026-03-23T10:17:00Z", "page_type": "cart", "platform": "web", "marketplace": "US"}
        p.put_kinesis(stream, json.dumps(ok), "u1", now=T0 + timedelta(minutes=11))
        p.put_kinesis(stream, "garbage", "u2", now=T0 + timedelta(minutes=11))
        # Schedule: 10:07 -> 10:21 fires at 10:10, 10:15, 10:20; the Firehose buffer (due 10:19) is delivered first.
        p.tick(T0)
        fired = p.tick(T0 + timedelta(minutes=14))
        assert [t.strftime("%H:%M") for _, t, _ in fired] == ["10:10", "10:15", "10:20"]
        live = objects(p, layout.live_root(ecom))
        assert [k.rsplit("/", 1)[0] for k in live] == ["ecommerce/live/20260323/1010"]
        [err] = objects(p, layout.error_root(ecom)).values()
        doc = json.loads(err)
        assert doc["errorCode"] == "Lambda.ProcessingFailedStatus" and doc["sequenceNumber"]
        probes = objects(p, "probe/")
        events = [json.loads(v) for _, v in sorted(probes.items())]
        scheduled = [e for e in events if e.get("detail-type") == "Scheduled Event"]
        assert [e["time"] for e in scheduled] == [
            "2026-03-23T10:10:00Z",
            "2026-03-23T10:15:00Z",
            "2026-03-23T10:20:00Z",
        ]
        assert scheduled[0]["resources"] == [p.resource("Every5").arn]
        sns_events = [e for e in events if "Records" in e]
        assert len(sns_events) == 3  # each scheduled run published once; SNS -> Lambda delivered each
        assert sns_events[0]["Records"][0]["Sns"]["Subject"] == "tick"
        assert json.loads(sns_events[0]["Records"][0]["Sns"]["Message"]) == {"at": "2026-03-23T10:10:00Z"}
        queue = p.client("sqs").receive_message(QueueUrl=p.resource("AlertQueue").ref, MaxNumberOfMessages=10)
        assert len(queue.get("Messages", [])) == 3  # SNS -> SQS by moto itself
        ttl = p.client("dynamodb").describe_time_to_live(TableName=p.physical_name("Table"))
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
        assert p.ledger.records_in == 2 == p.ledger.delivered + p.ledger.failed
        assert p.ledger.scheduled_invocations == 3 and p.ledger.sns_deliveries == 3
