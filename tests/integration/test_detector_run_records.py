"""The detector's per-interval execution records (what the console's runs and data-quality pages read), on moto:
scored intervals with their counts and scores, late records added to their interval, skipped and failed ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from detector import runner
from moto import mock_aws
from sentinel_core import layout, store
from sentinel_core.spec import get_preset

from tests.integration.test_console_api import TABLE, create_table
from tests.support.aws import REGION, create_topic_with_queue

SPEC = get_preset("air-quality")
BUCKET = "sentinel-data"
DETECTOR = "sentinel-air-quality"
LIVE = datetime(2022, 3, 20, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


def rows(start: datetime, locs: tuple[str, ...], co: float = 2.5) -> bytes:
    out = []
    for m in range(5):
        for loc in locs:
            ts = start + timedelta(minutes=m)
            out.append({"TIMESTAMP": f"{ts:%Y-%m-%d %H:%M:%S}", "LOCATION_ID": loc, "CO": co, "SO2": 60, "NO2": 55})
    return "".join(json.dumps(r) + "\n" for r in out).encode()


@pytest.fixture
def env() -> Iterator[tuple[runner.Clients, runner.Settings]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb)
        topic, _ = create_topic_with_queue()
        clients = runner.Clients(s3=s3, ddb=ddb, sns=boto3.client("sns", region_name=REGION))
        settings = runner.Settings(spec=SPEC, bucket=BUCKET, topic_arn=topic, table=TABLE, detector_id=DETECTOR)
        yield clients, settings


def put(clients: runner.Clients, start: datetime, body: bytes, name: str = "part-0") -> None:
    clients.s3.put_object(Bucket=BUCKET, Key=f"{layout.interval_folder(start, SPEC)}{name}", Body=body)


def runs(clients: runner.Clients) -> dict[datetime, store.StoredRun]:
    found, _ = store.query_runs(clients.ddb, TABLE, DETECTOR, None, None)
    return {r.interval: r for r in found}


def test_each_scored_interval_has_its_counts_and_scores(env: Any) -> None:
    clients, settings = env
    put(clients, LIVE, rows(LIVE, ("A-1002", "B-101")) + b"not json\n")
    runner.run(clients, settings, LIVE)
    put(clients, LIVE + STEP, rows(LIVE + STEP, ("A-1002",)))
    put(clients, LIVE, rows(LIVE, ("C-7",)), name="part-late")  # arrives after LIVE was scored
    report = runner.run(clients, settings, LIVE + STEP)
    got = runs(clients)
    first, second = got[LIVE], got[LIVE + STEP]
    assert first.status == store.RUN_COMPLETED and first.failure_reason == ""
    assert first.counts["records"] == 10 and first.counts["rejected"] == {"not_json": 1}
    assert first.counts["series_seen"] == 6 and first.counts["silent"] == 0
    assert first.late == 5  # the late object's records, added to the interval they belong to
    assert second.counts["series_seen"] == 3  # B-101 sent nothing
    assert second.counts["silent"] == report.silent_series  # the detector's verdict (regular reporters only)
    scores = second.scores()
    assert "CO|LOCATION_ID=B-101" not in scores and scores["CO|LOCATION_ID=A-1002"][0] == 2.5


def test_skipped_and_failed_intervals_are_recorded(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clients, settings = env
    runner.run(clients, settings, LIVE)
    small = replace(settings, max_backlog=3)
    later = LIVE + 10 * STEP
    runner.run(clients, small, later)
    got = runs(clients)
    skipped = [t for t, r in got.items() if r.status == store.RUN_SKIPPED]
    assert skipped == [LIVE + k * STEP for k in range(1, 8)]
    assert all("backlog" in got[t].failure_reason for t in skipped)
    assert [t for t, r in got.items() if r.status == store.RUN_COMPLETED] == [
        LIVE,
        *(LIVE + k * STEP for k in (8, 9, 10)),
    ]

    def broken(*_: Any, **__: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(runner.IntervalValues, "add", broken)  # a failure the runner does not contain
    put(clients, later + STEP, rows(later + STEP, ("A-1002",)))
    with pytest.raises(OSError, match="disk on fire"):
        runner.run(clients, settings, later + STEP)
    failed = runs(clients)[later + STEP]
    assert failed.status == store.RUN_FAILED and "disk on fire" in failed.failure_reason
