"""Firehose's prefix, the transform's partition keys and the Lookout metric set agree for every interval.

Read from synthesized templates (air-quality, lookout engine, interval overridden to each of PT5M/PT10M/PT1H/P1D):
the delivery stream's ``Prefix`` is rendered the way Firehose renders it with the partition keys the REAL transform
returns for a record, and must equal the Lookout ``TemplatedPathList`` rendered for the same interval start and
``layout.interval_folder`` — so the detector (builtin or Lookout) reads exactly the folder Firehose wrote.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sentinel_core import layout
from sentinel_core.intervals import DETECTOR_INTERVALS, floor_to_interval
from transform import logic

from local_aws.firehose import render_firehose_prefix
from tests.infra.test_stack import render_join
from tests.support.assembly import Synth, SynthCache

TIMES = [
    datetime(2026, 3, 23, 10, 7, 31, tzinfo=UTC),
    datetime(2026, 3, 23, 10, 0, 0, tzinfo=UTC),  # on a boundary
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),  # last second of a year
    datetime(2028, 2, 29, 0, 9, 59, tzinfo=UTC),  # leap day
]


def render_lookout(template: str, start: datetime) -> str:
    return template.replace("{{yyyyMMdd}}", start.strftime("%Y%m%d")).replace("{{HHmm}}", start.strftime("%H%M"))


def iot_rule_output(payload: bytes, thing: str) -> bytes:
    """What the stack's topic rule hands Firehose for ``payload`` published by ``thing`` (spec.iot_rule_sql)."""
    return (json.dumps({"payload": base64.b64encode(payload).decode(), "thing": thing}) + "\n").encode()


def transform_keys(ts: datetime, synth: Synth) -> dict[str, str]:
    """Partition keys the transform returns for one record with timestamp ``ts`` (arriving 30 s later)."""
    spec = synth.spec()
    doc: dict[str, object] = {spec.timestamp_column: ts.strftime("%Y-%m-%d %H:%M:%S")}
    doc.update({d: f"{d.lower()}-1" for d in spec.dimensions})
    doc[spec.dimensions[0]] = "B-101"  # the location is the publishing thing's own (the identity binding)
    doc.update({m.name: 1.5 + i for i, m in enumerate(spec.measures)})
    arrival = ts + timedelta(seconds=30)
    event = {
        "invocationId": "agreement",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/x",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": "r1",
                "approximateArrivalTimestamp": int(arrival.timestamp() * 1000),
                "data": base64.b64encode(iot_rule_output(json.dumps(doc).encode(), "B-101")).decode(),
            }
        ],
    }
    response, _ = logic.transform_batch(event, spec)
    (rec,) = response["records"]
    assert rec["result"] == "Ok", rec
    return dict(rec["metadata"]["partitionKeys"])


# Lookout's limits: 10 measures x 10 dimensions in one metric set (the preset's 3 x 1 grown to the maximum).
TEN_BY_TEN = {
    "measures": ",".join(["CO", "SO2", "NO2", *(f"M{i}" for i in range(4, 11))]),
    "dimensions": ",".join(["LOCATION_ID", *(f"D{i}" for i in range(2, 11))]),
}


@pytest.mark.parametrize(
    ("interval", "size"), [*((i, "preset") for i in DETECTOR_INTERVALS), ("PT5M", "10x10"), ("P1D", "10x10")]
)
def test_prefix_keys_and_lookout_template_agree(interval: str, size: str, synth_cache: SynthCache) -> None:
    # The preset's own interval reuses the plain synth; the others override it.
    extra: dict[str, str] = {} if interval == "PT5M" else {"interval": interval}
    if size == "10x10":
        extra |= TEN_BY_TEN
    s = synth_cache("air-quality", "lookout", **extra)
    spec = s.spec()
    assert spec.interval == interval
    if size == "10x10":
        assert (len(spec.measures), len(spec.dimensions)) == (10, 10)
    bucket_id, _ = s.by_marker("data-bucket")
    _, stream = s.by_marker("delivery-stream")
    prefix = stream["Properties"]["ExtendedS3DestinationConfiguration"]["Prefix"]
    _, det = s.by_marker("lookout-detector")
    (ms,) = det["Properties"]["MetricSetList"]
    assert ms["MetricSetFrequency"] == interval
    assert ms["DimensionList"] == list(spec.dimensions) and len(ms["MetricList"]) == len(spec.measures)
    (templated,) = ms["MetricSource"]["S3SourceConfig"]["TemplatedPathList"]
    lookout = render_join(templated, {bucket_id: "BUCKET"})
    for ts in TIMES:
        start = floor_to_interval(ts, interval)
        keys = transform_keys(ts, s)
        assert keys == layout.partition_keys(ts, spec)
        # Firehose renders the prefix at arrival (later, maybe in the next interval): only the keys matter.
        written = render_firehose_prefix(prefix, keys, arrival=ts + timedelta(minutes=7))
        read_by_lookout = render_lookout(lookout, start).removeprefix("s3://BUCKET/") + "/"
        assert written == read_by_lookout == layout.interval_folder(ts, spec), (interval, ts)
        assert layout.parse_interval_folder(written + "part-0001", spec) == start


@pytest.mark.parametrize("location", ["B-101", "B-102", "C-7", "hall-12"])
def test_sharded_prefix_keys_runner_and_local_runtime_agree(location: str, synth_cache: SynthCache) -> None:
    """``detector_shards`` > 1: the transform (its shard count from the synthesized environment) picks the shard of
    the record's dimension values, the synthesized Firehose prefix (rendered by the local runtime, as Firehose does)
    writes ``<interval folder>/shard=k/``, and that is the folder the shard k run reads (``runner``), the shard
    ``state_file.shard_of`` says."""
    from detector import runner
    from sentinel_core import state_file

    s = synth_cache("air-quality", "builtin", detector_shards=4)
    spec = s.spec()
    _, stream = s.by_marker("delivery-stream")
    prefix = stream["Properties"]["ExtendedS3DestinationConfiguration"]["Prefix"]
    _, tf = s.by_marker("transform")
    shards = int(tf["Properties"]["Environment"]["Variables"]["DETECTOR_SHARDS"])
    _, shard_fn = s.by_marker("detector_shard")
    assert shard_fn["Properties"]["Environment"]["Variables"]["DETECTOR_SHARDS"] == str(shards) == "4"
    for ts in TIMES:
        doc: dict[str, object] = {spec.timestamp_column: ts.strftime("%Y-%m-%d %H:%M:%S"), "LOCATION_ID": location}
        doc.update({m.name: 1.5 + i for i, m in enumerate(spec.measures)})
        record = {
            "recordId": "r1",
            "approximateArrivalTimestamp": int((ts + timedelta(seconds=30)).timestamp() * 1000),
            "data": base64.b64encode(iot_rule_output(json.dumps(doc).encode(), location)).decode(),
        }
        response, _ = logic.transform_batch({"records": [record]}, spec, shards=shards)
        (rec,) = response["records"]
        assert rec["result"] == "Ok", rec
        keys = dict(rec["metadata"]["partitionKeys"])
        shard = state_file.shard_of((location,), shards)
        assert keys == layout.partition_keys(ts, spec, shard)
        written = render_firehose_prefix(prefix, keys, arrival=ts + timedelta(minutes=7))
        settings = runner.Settings(spec=spec, bucket="b", topic_arn="t", table="x", detector_id="d", shards=shards)
        read = layout.records_folder(ts, spec, settings.for_shard(shard).shard)
        assert written == read == layout.shard_folder(ts, spec, shard)
        assert written.startswith(layout.interval_folder(ts, spec))
        assert layout.parse_interval_folder(written + "part-0001", spec) == floor_to_interval(ts, spec.interval)
