"""E-commerce ingest through the SYNTHESIZED stack: page views -> Kinesis (PutRecords) -> Firehose (Kinesis source)
-> the real transform -> S3 interval folders by each event's OWN time, bad events in the error prefix.

The stream command's sender drives the local runtime through ``LocalKinesis`` (moto keeps the stream; the runtime
forwards each record to the delivery stream that reads it, as Firehose would).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sentinel_core import layout
from sentinel_core.intervals import floor_to_interval
from sentinel_core.records import parse_timestamp
from sentinel_core.spec import PipelineSpec

from local_aws import LocalKinesis, LocalPipeline
from simulator.datagen import resolve_entities
from simulator.streaming import Event, KinesisSender, broken_checkout, event_arrival, page_view_events
from tests.support.aws import Play

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def pipeline(play: Play) -> LocalPipeline:
    return play("ecommerce")


def spec_of(p: LocalPipeline) -> PipelineSpec:
    return PipelineSpec.from_json(p.env_of("transform")["SENTINEL_SPEC"])


def read_all(p: LocalPipeline, prefix: str) -> dict[str, bytes]:
    s3 = p.client("s3")
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=p.data_bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=p.data_bucket, Key=o["Key"])["Body"].read()
    return out


def stream_name(p: LocalPipeline) -> str:
    (stream,) = p.template.of_type("AWS::Kinesis::Stream")
    return stream.physical


def test_the_delivery_stream_reads_the_kinesis_stream(pipeline: LocalPipeline) -> None:
    (fh,) = pipeline.firehoses.values()
    assert (
        fh.source_stream_arn == f"arn:aws:kinesis:{pipeline.region}:{pipeline.account}:stream/{stream_name(pipeline)}"
    )
    kinesis = pipeline.client("kinesis")
    desc = kinesis.describe_stream_summary(StreamName=stream_name(pipeline))["StreamDescriptionSummary"]
    assert desc["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"


def test_page_views_land_in_their_own_interval_folders(pipeline: LocalPipeline) -> None:
    spec = spec_of(pipeline)
    ents = resolve_entities(spec, 9)
    labels = broken_checkout(spec, ents, T0 + timedelta(minutes=20), 10)
    events = list(page_view_events(spec, T0, T0 + timedelta(minutes=30), 9, seed=3, labels=labels, scale=0.2))
    # late and bad events: one from the previous interval arriving now, one with a broken clock, one not JSON
    late = Event(
        json.dumps({"event_time": "2026-11-23 08:55:00", "page_type": "cart", "platform": "web", "marketplace": "US"})
        .encode(),
        "late",
        T0 + timedelta(minutes=29),
    )  # fmt: skip
    future = Event(
        json.dumps({"event_time": "2026-11-23 12:00:00", "page_type": "cart", "platform": "web", "marketplace": "US"})
        .encode(),
        "future",
        T0 + timedelta(minutes=29),
    )  # fmt: skip
    garbage = Event(b'{"event_time": "2026-11-23 09:29:00", "page_type": ', "bad", T0 + timedelta(minutes=29))
    sent = [*events, late, future, garbage]
    stats = KinesisSender(LocalKinesis(pipeline, event_arrival(spec)), stream_name(pipeline), rate=None).send(events)
    assert stats.records == len(events) and stats.calls >= 1 and not stats.failed
    # the odd ones arrive at 09:29 by the pipeline's clock, whatever their own time says
    odd = LocalKinesis(pipeline, lambda _data: T0 + timedelta(minutes=29))
    assert KinesisSender(odd, stream_name(pipeline), rate=None).send([late, future, garbage]).records == 3
    pipeline.flush(T0 + timedelta(minutes=40), force=True)
    assert pipeline.pending == 0

    live = read_all(pipeline, layout.live_root(spec))
    counts: Counter[str] = Counter()
    pages: Counter[tuple[str, str]] = Counter()
    for key, body in live.items():
        folder = key.rsplit("/", 1)[0] + "/"
        for line in body.decode().splitlines():
            row = json.loads(line)
            ts = parse_timestamp(row["event_time"])
            assert layout.interval_folder(ts, spec) == folder  # partitioned by the event's own time
            assert row["views"] == 1.0  # Measure.default: the transform counts one view per event
            assert set(row) == {"event_time", "page_type", "platform", "marketplace", "views"}
            counts[folder] += 1
            pages[(folder, row["page_type"])] += 1
    expected = Counter(layout.interval_folder(e.time, spec) for e in events)
    expected["ecommerce/live/20261123/0850/"] += 1  # the late event, in ITS interval
    assert counts == expected
    # the injected broken checkout shows in the folders (checkout views per interval collapse at 09:20)
    during = pages[("ecommerce/live/20261123/0920/", "checkout")]
    before = pages[("ecommerce/live/20261123/0910/", "checkout")]
    assert before > 0 and during < 0.4 * before

    errors = read_all(pipeline, layout.error_root(spec))
    docs = [json.loads(line) for body in errors.values() for line in body.decode().splitlines()]
    from transform.logic import explain_error_document

    assert sorted(explain_error_document(d, spec)[0] for d in docs) == ["future_timestamp", "not_json"]
    ledger = pipeline.ledger
    assert ledger.kinesis_records == len(sent)
    assert ledger.records_in == len(sent) == ledger.delivered + ledger.failed + ledger.dropped
    assert ledger.failed == 2


def test_interval_of_each_event_is_its_own_time_floor(pipeline: LocalPipeline) -> None:
    spec = spec_of(pipeline)
    evs = list(page_view_events(spec, T0, T0 + timedelta(minutes=20), 3, seed=9, scale=0.1))
    assert evs and {floor_to_interval(e.time, spec.interval) for e in evs} == {T0, T0 + timedelta(minutes=10)}
