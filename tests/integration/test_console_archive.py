"""Console history archive on moto: stream images of group and feedback items become daily JSON lines in S3 that
match the Glue tables' columns; a retried batch overwrites its own objects; other items are ignored."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sentinel_core import environment, store

from infra.console import FEEDBACK_COLUMNS, GROUP_COLUMNS
from tests.integration.test_console_api import DETECTOR, GROUPS, TABLE, create_table, make_group
from tests.support.aws import REGION, lambda_context

BUCKET = "sentinel-data"
PREFIX = "console-history/"


def stream_image(item: dict[str, Any]) -> dict[str, Any]:
    """An item as a DynamoDB stream record carries it: binary attributes base64-encoded."""

    def enc(v: dict[str, Any]) -> dict[str, Any]:
        (kind, val), *_ = v.items()
        if kind == "B":
            return {"B": base64.b64encode(val).decode()}
        if kind == "M":
            return {"M": {k: enc(x) for k, x in val.items()}}
        if kind == "L":
            return {"L": [enc(x) for x in val]}
        return v

    return {k: enc(v) for k, v in item.items()}


def record(item: dict[str, Any], seq: int, name: str = "MODIFY") -> dict[str, Any]:
    return {
        "eventID": f"e{seq}",
        "eventName": name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "NewImage": stream_image(item),
            "SequenceNumber": str(1000 + seq),
            "StreamViewType": "NEW_IMAGE",
        },
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        create_table(ddb)
        monkeypatch.setenv("DATA_BUCKET", BUCKET)
        monkeypatch.setenv("HISTORY_PREFIX", PREFIX)
        from console_archive import app

        app.s3.cache_clear()
        yield ddb, s3
        app.s3.cache_clear()


def items(ddb: Any) -> list[dict[str, Any]]:
    return ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": store.pk(DETECTOR)}},
    )["Items"]


def read(s3: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
        out[obj["Key"]] = [json.loads(line) for line in body.splitlines()]
    return out


def test_groups_and_feedback_land_in_daily_partitions(env: tuple[Any, Any]) -> None:
    from console_archive import app

    ddb, s3 = env
    g = make_group(3)  # a fresh object: put_feedback records the verdict on it
    store.save_group(ddb, TABLE, g)
    store.put_feedback(ddb, TABLE, g, g.series_ids[0], False)
    store.put_run(ddb, TABLE, DETECTOR, store.RunRecord(g.start), 50)  # not archived
    records = [record(i, n) for n, i in enumerate(items(ddb))]
    out = app.lambda_handler({"Records": records}, lambda_context("archive"))
    assert out["objects"] == 2
    objects = read(s3)
    day = g.start.strftime("%Y-%m-%d")
    (gkey,) = [k for k in objects if k.startswith(f"{PREFIX}groups/day={day}/")]
    (fkey,) = [k for k in objects if k.startswith(f"{PREFIX}feedback/day=")]
    (row,) = objects[gkey]
    assert row["group_id"] == g.group_id and row["feedback"] == {g.series_ids[0]: False}
    assert set(row) == {c for c, _ in GROUP_COLUMNS}
    (fb,) = objects[fkey]
    assert fb["is_anomaly"] is False and fb["series_id"] == g.series_ids[0] and fb["detector_id"] == DETECTOR
    assert set(fb) == {c for c, _ in FEEDBACK_COLUMNS}
    # the same batch again (a retry): the same objects, no duplicate lines
    app.lambda_handler({"Records": records}, lambda_context("archive"))
    assert {k: len(v) for k, v in read(s3).items()} == {k: len(v) for k, v in objects.items()}


def test_deletes_and_other_items_write_nothing(env: tuple[Any, Any]) -> None:
    from console_archive import app

    ddb, s3 = env
    store.put_run(ddb, TABLE, DETECTOR, store.RunRecord(GROUPS[0].start), 50)
    (run,) = items(ddb)
    removed = {"eventName": "REMOVE", "dynamodb": {"Keys": {"pk": run["pk"], "sk": run["sk"]}}}
    out = app.lambda_handler({"Records": [record(run, 1), removed]}, lambda_context("archive"))
    assert out["objects"] == 0 and read(s3) == {}


def test_missing_configuration_is_a_clear_error(env: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from console_archive import app

    monkeypatch.delenv("DATA_BUCKET")
    with pytest.raises(environment.ConfigError, match="DATA_BUCKET"):
        app.lambda_handler({"Records": []}, lambda_context("archive"))
