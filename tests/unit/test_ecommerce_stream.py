"""E-commerce stream: page-view events, PutRecords batching, retry of failed entries only, rate limit."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from sentinel_core.intervals import floor_to_interval
from sentinel_core.records import decode_and_validate
from sentinel_core.spec import get_preset
from typer.testing import CliRunner

from simulator.cli import app
from simulator.datagen import read_labels, resolve_entities
from simulator.streaming import (
    MAX_BATCH_BYTES,
    Event,
    KinesisSender,
    TokenBucket,
    broken_checkout,
    page_view_events,
)

SPEC = get_preset("ecommerce")
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def events(n: int, size: int = 40) -> list[Event]:
    return [Event(json.dumps({"i": i, "pad": "x" * size}).encode(), f"k{i}", T0) for i in range(n)]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


# -- traffic ---------------------------------------------------------------------------------------------------
def test_events_are_valid_page_views_in_time_order_without_a_views_field() -> None:
    evs = list(page_view_events(SPEC, T0, T0 + timedelta(minutes=30), 18, seed=3))
    assert len(evs) > 1000
    assert [e.time for e in evs] == sorted(e.time for e in evs)
    assert all(T0 <= e.time < T0 + timedelta(minutes=30) for e in evs)
    for e in evs[:200]:
        body = json.loads(e.data)
        assert "views" not in body and body["page_type"] in ("product_page", "cart", "checkout")
        rec = decode_and_validate(e.data, SPEC, now=e.time)
        assert rec.values == {"views": 1.0}  # Measure.default: one view per event
    pages = Counter(json.loads(e.data)["page_type"] for e in evs)
    assert pages["product_page"] > pages["cart"] > pages["checkout"] > 0  # the funnel


def test_daily_seasonality_night_is_quieter_than_evening() -> None:
    night = sum(1 for _ in page_view_events(SPEC, T0.replace(hour=3), T0.replace(hour=4), 9, seed=1))
    evening = sum(1 for _ in page_view_events(SPEC, T0.replace(hour=20), T0.replace(hour=21), 9, seed=1))
    assert evening > 2 * night


def test_broken_checkout_drops_checkout_views_only() -> None:
    ents = resolve_entities(SPEC, 18)
    labels = broken_checkout(SPEC, ents, T0 + timedelta(minutes=60), 30)
    assert len(labels) == 6 and all("checkout" in lab.series_id for lab in labels)
    evs = list(page_view_events(SPEC, T0, T0 + timedelta(minutes=90), 18, seed=5, labels=labels))
    by = Counter(
        (floor_to_interval(e.time, 600) >= T0 + timedelta(minutes=60), json.loads(e.data)["page_type"]) for e in evs
    )
    # per 10 minutes: before (6 intervals) vs during (3 intervals)
    assert by[(True, "checkout")] / 3 < 0.3 * by[(False, "checkout")] / 6
    assert by[(True, "cart")] / 3 > 0.7 * by[(False, "cart")] / 6
    one = broken_checkout(SPEC, ents, T0, 10, platform="ios")
    assert {lab.series.dimension("platform") for lab in one} == {"ios"}
    with pytest.raises(ValueError, match="platform"):
        broken_checkout(SPEC, ents, T0, 10, platform="fax")


# -- batching --------------------------------------------------------------------------------------------------
def test_batches_respect_the_count_and_byte_limits() -> None:
    sender = KinesisSender(object(), "s", rate=None)  # type: ignore[arg-type]
    assert [len(b) for b in sender.batches(events(1200))] == [500, 500, 200]
    big = events(120, size=100_000)
    batches = list(sender.batches(big))
    assert sum(len(b) for b in batches) == 120
    assert all(sum(len(e.data) + len(e.partition_key) for e in b) <= MAX_BATCH_BYTES for b in batches)
    with pytest.raises(ValueError, match="1 MiB"):
        list(sender.batches(events(1, size=1_100_000)))


@mock_aws
def test_every_event_reaches_a_moto_stream() -> None:
    kinesis = boto3.client("kinesis", region_name="eu-west-1")
    kinesis.create_stream(StreamName="views", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    evs = events(1234)
    stats = KinesisSender(kinesis, "views", rate=None).send(evs)
    assert stats.records == 1234 and stats.calls == 3 and not stats.failed
    got: list[bytes] = []
    for shard in kinesis.list_shards(StreamName="views")["Shards"]:
        it = kinesis.get_shard_iterator(StreamName="views", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        resp = kinesis.get_records(ShardIterator=it["ShardIterator"], Limit=10000)
        got.extend(r["Data"] for r in resp["Records"])
    assert sorted(got) == sorted(e.data for e in evs)


# -- retry -----------------------------------------------------------------------------------------------------
def _entries(evs: list[Event]) -> list[dict[str, Any]]:
    return [{"Data": e.data, "PartitionKey": e.partition_key} for e in evs]


def _ok(n: int) -> dict[str, Any]:
    return {"SequenceNumber": str(n), "ShardId": "shardId-000000000000"}


def _fail(code: str = "ProvisionedThroughputExceededException") -> dict[str, Any]:
    return {"ErrorCode": code, "ErrorMessage": "Rate exceeded for shard"}


def test_only_the_failed_entries_are_retried() -> None:
    client = boto3.client("kinesis", region_name="eu-west-1")
    evs = events(4)
    ft = FakeTime()
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            {"FailedRecordCount": 2, "Records": [_ok(1), _fail(), _ok(2), _fail("InternalFailure")]},
            {"StreamName": "s", "Records": _entries(evs)},
        )
        stub.add_response(
            "put_records",
            {"Records": [_ok(3), _ok(4)]},
            {"StreamName": "s", "Records": _entries([evs[1], evs[3]])},  # exactly the two that failed
        )
        sender = KinesisSender(client, "s", rate=None, sleep=ft.sleep, clock=ft.clock, rng=random.Random(1))
        stats = sender.send(evs)
        stub.assert_no_pending_responses()
    assert stats.records == 4 and stats.calls == 2 and stats.retried_entries == 2 and stats.throttled == 1
    assert stats.errors == {"ProvisionedThroughputExceededException": 1, "InternalFailure": 1}
    assert len(ft.sleeps) == 1 and 0 <= ft.sleeps[0] <= 0.2  # one backoff, within base * 2**1


def test_a_throttled_call_is_retried_whole_and_other_errors_raise() -> None:
    client = boto3.client("kinesis", region_name="eu-west-1")
    evs = events(3)
    ft = FakeTime()
    with Stubber(client) as stub:
        stub.add_client_error("put_records", "ProvisionedThroughputExceededException", http_status_code=400)
        stub.add_response(
            "put_records",
            {"Records": [_ok(1), _ok(2), _ok(3)]},
            {"StreamName": "s", "Records": _entries(evs)},
        )
        stats = KinesisSender(client, "s", rate=None, sleep=ft.sleep, clock=ft.clock).send(evs)
        assert stats.records == 3 and stats.failed_calls == 1
        stub.add_client_error("put_records", "ResourceNotFoundException", http_status_code=400)
        with pytest.raises(Exception, match="ResourceNotFound"):
            KinesisSender(client, "s", rate=None, sleep=ft.sleep, clock=ft.clock).send(evs)


def test_entries_that_keep_failing_are_kept_with_their_error_and_backoff_grows_to_the_cap() -> None:
    client = boto3.client("kinesis", region_name="eu-west-1")
    evs = events(2)
    ft = FakeTime()
    with Stubber(client) as stub:
        stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [_ok(1), _fail()]})
        for _ in range(4):
            stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [_fail()]})
        sender = KinesisSender(
            client, "s", rate=None, max_attempts=5, base_delay=1.0, max_delay=3.0, sleep=ft.sleep, clock=ft.clock
        )
        stats = sender.send(evs)
    assert stats.records == 1 and stats.calls == 5
    assert [(e.partition_key, err.split(":")[0]) for e, err in stats.failed] == [
        ("k1", "ProvisionedThroughputExceededException")
    ]
    assert len(ft.sleeps) == 4 and all(0 <= s <= 3.0 for s in ft.sleeps)


# -- rate limit ------------------------------------------------------------------------------------------------
def test_token_bucket_holds_the_rate() -> None:
    ft = FakeTime()
    bucket = TokenBucket(100, clock=ft.clock, sleep=ft.sleep)
    for _ in range(10):
        bucket.take(100)
    assert sum(ft.sleeps) == pytest.approx(9.0)  # 1000 records at 100/s with a 100-record burst
    with pytest.raises(ValueError):
        TokenBucket(0)


@mock_aws
def test_sender_is_rate_limited() -> None:
    kinesis = boto3.client("kinesis", region_name="eu-west-1")
    kinesis.create_stream(StreamName="views", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    ft = FakeTime()
    stats = KinesisSender(kinesis, "views", rate=200, batch_records=100, sleep=ft.sleep, clock=ft.clock).send(
        events(1000)
    )
    assert stats.records == 1000
    assert ft.now == pytest.approx(4.0)  # (1000 - 200 burst) / 200 per second
    assert stats.waited_seconds == pytest.approx(4.0)


# -- CLI -------------------------------------------------------------------------------------------------------
def test_cli_dry_run_and_missing_stream_name(tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    args = ["stream", "--dry-run", "--minutes", "20", "--start", "2026-11-23 12:00", "--labels", str(labels)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "records generated" in result.output and "broken checkout" in result.output
    assert len(read_labels(labels)) == 6
    result = CliRunner().invoke(
        app, ["stream", "--minutes", "20", "--labels", str(labels)], env={"SENTINEL_STREAM_NAME": ""}
    )
    assert result.exit_code == 2 and "--stream-name" in result.output
    result = CliRunner().invoke(app, ["stream", "--preset", "loyalty", "--dry-run"])
    assert result.exit_code == 2 and "Kinesis" in result.output


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400_000), max_size=60), st.integers(min_value=1, max_value=500))
def test_property_batches_keep_order_and_limits(sizes: list[int], per_batch: int) -> None:
    evs = [Event(b"x" * n, f"k{i}", T0) for i, n in enumerate(sizes)]
    sender = KinesisSender(object(), "s", rate=None, batch_records=per_batch)  # type: ignore[arg-type]
    batches = list(sender.batches(evs))
    assert [e for b in batches for e in b] == evs
    assert all(1 <= len(b) <= per_batch for b in batches)
    assert all(sum(len(e.data) + len(e.partition_key) for e in b) <= MAX_BATCH_BYTES for b in batches)
