"""Delivery through the SYNTHESIZED stack: real CDK synth, the local runtime reads the template, the real transform
handler (imported from the stack's code asset, with the stack's environment) runs on moto.

Good and malformed MQTT messages go IoT rule -> Firehose -> transform -> S3 interval folders / error prefix; every
record is accounted for (in == delivered + failed) and every failure keeps its reason.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sentinel_core import layout
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from tests.support.aws import Play

T0 = datetime(2026, 3, 23, 10, 7, tzinfo=UTC)


@pytest.fixture
def pipeline(play: Play) -> LocalPipeline:
    return play("air-quality")


def spec_of(p: LocalPipeline) -> PipelineSpec:
    return PipelineSpec.from_json(p.env_of("transform")["SENTINEL_SPEC"])


def read_all(p: LocalPipeline, prefix: str) -> dict[str, bytes]:
    import gzip

    s3 = p.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=p.data_bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=p.data_bucket, Key=o["Key"])["Body"].read()
            out[o["Key"]] = gzip.decompress(body) if o["Key"].endswith(".gz") else body
    return out


def test_template_is_what_the_runtime_plays(pipeline: LocalPipeline) -> None:
    spec = spec_of(pipeline)
    [fh] = pipeline.firehoses.values()
    assert fh.prefix == layout.firehose_prefix(spec) and fh.error_prefix == layout.firehose_error_prefix(spec)
    assert fh.dynamic_partitioning and fh.lambda_arn == pipeline.function("transform").arn
    [rule] = pipeline.rules
    assert rule.sql.topic_filter == spec.telemetry_topic_filter
    assert rule.firehose_actions == [(fh.name, "\n", False)] and rule.error_action
    assert {f.package for f in pipeline.functions.values()} >= {"transform", "detector", "automation"}
    assert pipeline.data_bucket in {r.physical for r in pipeline.template.of_type("AWS::S3::Bucket")}


def test_iot_messages_land_in_their_interval_folders_and_errors_keep_reasons(pipeline: LocalPipeline) -> None:
    spec = spec_of(pipeline)
    # (expected reason, publishing thing, payload): each device publishes on its own thing's topic, as the device
    # policy enforces; the last ones speak for a location that is not theirs.
    sent: list[tuple[str, str, Any]] = [
        ("ok", "B-101", {"TIMESTAMP": "2026-03-23 10:04:59", "LOCATION_ID": "B-101", "CO": 2.6, "SO2": 62, "NO2": 57}),
        ("ok", "B-101", {"TIMESTAMP": "2026-03-23T10:05:00Z", "LOCATION_ID": "B-101", "CO": 2.7, "SO2": 61, "NO2": 55}),
        (
            "ok",
            "B-102",
            {"TIMESTAMP": "2026-03-23T15:37:00+05:30", "LOCATION_ID": "B-102", "CO": 1, "SO2": 1, "NO2": 1},
        ),
        ("ok", "B-103", {"TIMESTAMP": 1774260420000, "LOCATION_ID": "B-103", "CO": "3.5", "SO2": 60, "NO2": 50}),
        ("not_json", "B-101", b'{"TIMESTAMP": "2026-03-23 10:05", "LOCATION_ID": '),
        (
            "bad_measure",
            "B-101",
            {"TIMESTAMP": "2026-03-23 10:06", "LOCATION_ID": "B-101", "CO": "NaN", "SO2": 1, "NO2": 1},
        ),
        (
            "missing_dimension",
            "B-101",
            {"TIMESTAMP": "2026-03-23 10:06", "LOCATION_ID": "", "CO": 1, "SO2": 1, "NO2": 1},
        ),
        (
            "future_timestamp",
            "B-1",
            {"TIMESTAMP": "2026-03-23 12:00", "LOCATION_ID": "B-1", "CO": 1, "SO2": 1, "NO2": 1},
        ),
        ("bad_measure", "B-1", {"TIMESTAMP": "2026-03-23 10:06", "LOCATION_ID": "B-1", "CO": True, "SO2": 1, "NO2": 1}),
        (
            "identity_mismatch",
            "sensor-7",
            {"TIMESTAMP": "2026-03-23 10:06", "LOCATION_ID": "B-101", "CO": 1, "SO2": 1, "NO2": 1},
        ),
        # A "thing" field of its own changes nothing: the rule wraps the payload, it cannot shadow the topic's thing.
        (
            "identity_mismatch",
            "sensor-7",
            {"TIMESTAMP": "2026-03-23 10:06", "LOCATION_ID": "B-101", "thing": "B-101", "CO": 1, "SO2": 1, "NO2": 1},
        ),
    ]
    for i, (_, thing, payload) in enumerate(sent):
        topic = spec.telemetry_topic(thing)
        assert pipeline.publish(topic, payload, now=T0 + timedelta(seconds=i), client_id=thing) == 1
    pipeline.flush(T0 + timedelta(minutes=5))  # past the stream's buffering interval
    assert pipeline.pending == 0

    live = read_all(pipeline, layout.live_root(spec))
    by_folder: dict[str, list[dict[str, Any]]] = {}
    for key, body in live.items():
        folder, name = key.rsplit("/", 1)
        assert name.startswith(f"{next(iter(pipeline.firehoses))}-1-2026-03-23-10-07-")
        by_folder.setdefault(folder + "/", []).extend(json.loads(x) for x in body.decode().splitlines())
    assert {k: sorted(r["TIMESTAMP"] for r in v) for k, v in by_folder.items()} == {
        "air-quality/live/20260323/1000/": ["2026-03-23 10:04:59"],
        "air-quality/live/20260323/1005/": ["2026-03-23 10:05:00", "2026-03-23 10:07:00", "2026-03-23 10:07:00"],
    }
    for rows in by_folder.values():
        for row in rows:
            assert list(row) == [spec.timestamp_column, *spec.dimensions, *spec.measure_names]
            assert all(isinstance(row[m], float) for m in spec.measure_names)

    errors = read_all(pipeline, layout.error_root(spec))
    assert all(k.startswith("air-quality/errors/processing-failed/2026/03/23/") for k in errors)
    docs = [json.loads(line) for body in errors.values() for line in body.decode().splitlines()]
    from transform.logic import explain_error_document

    expected = sorted(reason for reason, _, _ in sent if reason != "ok")
    assert sorted(explain_error_document(d, spec)[0] for d in docs) == expected
    for d in docs:
        assert d["errorCode"] == "Lambda.ProcessingFailedStatus"
        assert d["lambdaArn"] == pipeline.function("transform").arn
        raw = base64.b64decode(d["rawData"])
        assert raw.endswith(b"\n")  # the rule's envelope + its separator
        assert set(json.loads(raw)) == {"payload", "thing"}  # the producer's bytes are kept inside it, base64

    ledger = pipeline.ledger
    assert ledger.records_in == len(sent) == ledger.delivered + ledger.failed + ledger.dropped + pipeline.pending
    assert (ledger.delivered, ledger.failed) == (4, 7)
    assert ledger.lambda_invocations[pipeline.function("transform").name] == 1


def test_messages_on_other_topics_do_not_enter(pipeline: LocalPipeline) -> None:
    spec = spec_of(pipeline)
    assert pipeline.publish(f"{spec.topic_root}/sensor-1/commands", b"{}", now=T0) == 0
    assert pipeline.publish(f"{spec.topic_root}/a/b/telemetry", b"{}", now=T0) == 0
    pipeline.flush(T0 + timedelta(minutes=5), force=True)
    assert pipeline.ledger.records_in == 0 and not read_all(pipeline, "")


def test_kinesis_stream_feeds_firehose_of_the_synthesized_stack(play: Play) -> None:
    p = play("ecommerce")
    spec = spec_of(p)
    [stream] = p.template.of_type("AWS::Kinesis::Stream")
    [fh] = p.firehoses.values()
    assert fh.source_stream_arn == stream.arn and fh.prefix == layout.firehose_prefix(spec)
    at = datetime(2026, 3, 23, 10, 17, 30, tzinfo=UTC)
    view = {"event_time": "2026-03-23T10:17:00Z", "page_type": "cart", "platform": "web", "marketplace": "US"}
    seq = p.put_kinesis(stream.physical, json.dumps(view), "user-1", now=at)
    p.put_kinesis(stream.physical, json.dumps({**view, "page_type": ""}), "user-2", now=at)
    p.flush(at + timedelta(minutes=5))
    [(key, body)] = read_all(p, layout.live_root(spec)).items()
    assert key.startswith("ecommerce/live/20260323/1010/")
    assert json.loads(body) == {**view, "event_time": "2026-03-23 10:17:00", "views": 1.0}
    [err] = [json.loads(line) for b in read_all(p, layout.error_root(spec)).values() for line in b.splitlines()]
    from transform.logic import explain_error_document

    assert explain_error_document(err, spec)[0] == "missing_dimension"
    assert err["sequenceNumber"] and seq  # Kinesis-sourced error documents name the record's sequence number
    # moto kept the records on the stream too (other consumers could read them).
    shard = p.client("kinesis").list_shards(StreamName=stream.physical)["Shards"][0]["ShardId"]
    it = p.client("kinesis").get_shard_iterator(
        StreamName=stream.physical, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert len(p.client("kinesis").get_records(ShardIterator=it)["Records"]) >= 1
    assert p.ledger.records_in == 2 == p.ledger.delivered + p.ledger.failed and p.ledger.kinesis_records == 2
