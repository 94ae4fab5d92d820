"""Hypothesis properties of the transform over arbitrary batches."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentinel_core import layout
from sentinel_core.intervals import floor_to_interval
from sentinel_core.records import decode_and_validate, parse_timestamp
from sentinel_core.spec import PRESETS, PipelineSpec
from transform import logic

from local_aws.firehose import render_firehose_prefix

BASE = datetime(2026, 3, 23, tzinfo=UTC)

timestamps = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6), st.text(max_size=4), st.booleans()
)


def ts_forms(ts: datetime) -> st.SearchStrategy[Any]:
    return st.sampled_from(
        [
            ts.strftime("%Y-%m-%d %H:%M:%S"),
            ts.isoformat(),
            ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ts.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
            int(ts.timestamp()),
            int(ts.timestamp() * 1000),
        ]
    )


@st.composite
def payloads(draw: st.DrawFn, spec: PipelineSpec, arrival: datetime) -> bytes:
    kind = draw(st.sampled_from(["good", "good", "good", "mutated", "garbage"]))
    if kind == "garbage":
        return (
            iot_envelope(spec, draw(st.binary(max_size=40)), "x", draw)
            if draw(st.booleans())
            else draw(st.binary(max_size=40))
        )
    # Mostly shortly before arrival (like real devices), sometimes anywhere (late, or a wrong clock).
    ts = draw(st.integers(-3600, 3 * 86400).map(lambda s: arrival - timedelta(seconds=s)) | timestamps)
    rec: dict[str, Any] = {spec.timestamp_column: draw(ts_forms(ts))}
    for d in spec.dimensions:
        rec[d] = draw(st.text(alphabet="ABC-12", min_size=1, max_size=6))
    for m in spec.measures:
        rec[m.name] = draw(st.floats(-1e6, 1e6, allow_nan=False) | st.integers(0, 1000))
    if kind == "mutated":
        victim = draw(st.sampled_from(sorted(rec)))
        if draw(st.booleans()):
            del rec[victim]
        else:
            rec[victim] = draw(numbers)
    text = json.dumps(rec)  # may emit NaN/Infinity tokens, as careless producers do
    body = (text + draw(st.sampled_from(["", "\n"]))).encode()
    return iot_envelope(spec, body, str(rec.get(spec.dimensions[0], "x")), draw)


def iot_envelope(spec: PipelineSpec, body: bytes, location: str, draw: st.DrawFn) -> bytes:
    """What the IoT rule hands Firehose: the payload wrapped with the publishing thing (mostly the location's own
    thing, sometimes another one: a forgery the transform must refuse)."""
    if spec.ingest != "iot":
        return body
    thing = draw(st.sampled_from([location.strip() or "x", location.strip() or "x", "sensor-9"]))
    env = {"payload": base64.b64encode(body).decode(), "thing": thing}
    return (json.dumps(env) + "\n").encode()


@st.composite
def batches(draw: st.DrawFn) -> tuple[PipelineSpec, dict[str, Any]]:
    spec = draw(st.sampled_from(sorted(PRESETS.values(), key=lambda s: s.preset)))
    interval = draw(st.sampled_from(["PT5M", "PT10M", "PT1H", "P1D"]))
    spec = spec.with_overrides(interval=interval)
    arrival = draw(timestamps)
    arrival_ms = int(arrival.timestamp()) * 1000
    data = draw(st.lists(payloads(spec, arrival), max_size=25))
    ids = draw(st.lists(st.text(min_size=1, max_size=12), min_size=len(data), max_size=len(data), unique=True))
    records = [
        {"recordId": rid, "approximateArrivalTimestamp": arrival_ms, "data": base64.b64encode(d).decode()}
        for rid, d in zip(ids, data, strict=True)
    ]
    return spec, {"invocationId": "i", "deliveryStreamArn": "arn", "region": "eu-west-1", "records": records}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_record_returned_once_and_counts_add_up(case: tuple[PipelineSpec, dict[str, Any]]) -> None:
    spec, event = case
    response, outcomes = logic.transform_batch(event, spec)
    ids_in = [r["recordId"] for r in event["records"]]
    ids_out = [r["recordId"] for r in response["records"]]
    assert ids_out == ids_in  # each exactly once, same order
    s = logic.summarise(outcomes)
    assert s.ok + s.failed == s.records_in == len(ids_in)
    assert sum(s.failed_by_reason.values()) == s.failed
    assert {r["result"] for r in response["records"]} <= {"Ok", "ProcessingFailed"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_ok_output_revalidates_and_is_partitioned_by_own_interval(case: tuple[PipelineSpec, dict[str, Any]]) -> None:
    spec, event = case
    response, _ = logic.transform_batch(event, spec)
    arrival = logic.arrival_datetime(event["records"][0]["approximateArrivalTimestamp"]) if event["records"] else BASE
    for inp, out in zip(event["records"], response["records"], strict=True):
        if out["result"] != "Ok":
            assert out["data"] == inp["data"]  # failed records keep their original bytes
            continue
        text = base64.b64decode(out["data"]).decode()
        assert text.endswith("\n")
        for line in text.splitlines():
            rec = decode_and_validate(line.encode(), spec, now=arrival)  # normalised output re-validates
            assert json.loads(rec.to_json_line(spec)) == json.loads(line)  # and is a fixed point
            start = floor_to_interval(rec.timestamp, spec.interval)
            assert out["metadata"]["partitionKeys"] == layout.partition_keys(start, spec)
            folder = render_firehose_prefix(layout.firehose_prefix(spec), out["metadata"]["partitionKeys"], arrival)
            assert folder == layout.interval_folder(rec.timestamp, spec)
            assert layout.parse_interval_folder(folder + "x", spec) == start
            assert parse_timestamp(json.loads(line)[spec.timestamp_column]) == rec.timestamp


@settings(max_examples=40, deadline=None)
@given(batches(), st.integers(min_value=0, max_value=20000))
def test_response_never_exceeds_limit_when_fallback_fits(case: tuple[PipelineSpec, dict[str, Any]], slack: int) -> None:
    spec, event = case
    fallback = sum(
        len(
            json.dumps(
                {"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]}, separators=(",", ":")
            )
        )
        + 1
        for r in event["records"]
    )
    limit = fallback + 64 + slack
    response, _ = logic.transform_batch(event, spec, max_bytes=limit)
    assert len(json.dumps(response, separators=(",", ":"))) <= limit
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
