"""Loyalty backtest job: a real S3 event shape against moto (S3, DynamoDB, SNS -> SQS), the real handler.

The generated file (a year, 12 stores, labelled anomalies in the last 30 %) plus known bad rows goes in; out come
the per-row error report next to the input, anomaly groups in the table, ONE summary alert and one alert per group
at or above the preset's threshold (91), and a report; a redelivered event sends nothing twice.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from moto import mock_aws
from sentinel_core import layout, store
from sentinel_core.alerts import parse_lookout_alert
from sentinel_core.spec import get_preset

from simulator.uploads import generate_upload
from tests.support.aws import REGION, create_anomaly_table, create_topic_with_queue, drain, lambda_context

SPEC = get_preset("loyalty")
BUCKET = "sentinel-data"
DETECTOR = "metric-sentinel-loyalty"
END = datetime(2026, 11, 23, tzinfo=UTC)


def s3_event(key: str, etag: str = "abc", size: int = 1) -> dict[str, Any]:
    """What S3 sends Lambda (keys are URL-encoded, spaces as '+')."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2026-11-23T08:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "backtest",
                    "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                    "object": {"key": quote_plus(key), "size": size, "eTag": etag, "sequencer": "0A1B"},
                },
            }
        ]
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        table = create_anomaly_table()
        topic, queue = create_topic_with_queue()
        env = {
            "SENTINEL_SPEC": SPEC.to_json(),
            "ALERT_TOPIC_ARN": topic,
            "ANOMALY_TABLE": table,
            "DETECTOR_ID": DETECTOR,
            "DATA_BUCKET": BUCKET,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        from backtest_job import app

        app.runtime.cache_clear()
        yield {**env, "QUEUE": queue}
        app.runtime.cache_clear()


@pytest.fixture(scope="module")
def loyalty_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("loyalty")
    summary = generate_upload(out, SPEC, days=365, locations=12, seed=11, end=END, anomalies=4, bad_rows=4)
    return out, summary


def _upload(key: str, body: bytes) -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=body)


def _get(key: str) -> str:
    return boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def test_upload_is_backtested_with_error_report_groups_and_alerts(aws: dict[str, str], loyalty_file: Any) -> None:
    from backtest_job import app

    _, summary = loyalty_file
    key = f"{layout.upload_prefix(SPEC)}2026 export/loyalty.csv"  # a space: S3 URL-encodes it in the event
    _upload(key, summary.file.read_bytes())
    out = app.lambda_handler(s3_event(key), lambda_context())  # type: ignore[arg-type]
    rep = out["files"][0]
    assert rep["status"] == "ok"
    assert rep["rows"] == summary.records + 4 and rep["good_rows"] == summary.records and rep["bad_rows"] == 4
    assert rep["bad_reasons"] == {"bad_measure": 1, "bad_timestamp": 1, "duplicate": 1, "missing_column": 1}

    # per-row error report next to the input
    errors = list(csv.DictReader(io.StringIO(_get(key + ".errors.csv"))))
    assert sorted(e["reason"] for e in errors) == ["bad_measure", "bad_timestamp", "duplicate", "missing_column"]
    assert all(int(e["line"]) > summary.records + 1 for e in errors)  # the appended rows, by their line numbers
    assert rep["errors_key"] == key + ".errors.csv"

    # learned on the first 70 %, reported on the last 30 %
    assert rep["report_start"] == summary.report_start.isoformat()
    assert rep["learn_intervals"] + rep["report_intervals"] == 365
    assert rep["series"] == 24

    # the labelled anomalies are found: a reported group on the label's series overlapping its days (the detector's
    # quality itself is measured by its own benchmark; here most labels must come out of the job)
    ddb = boto3.client("dynamodb", region_name=REGION)
    groups = store.list_groups(ddb, aws["ANOMALY_TABLE"], DETECTOR, limit=1000)
    assert len(groups) == rep["groups"] > 0
    assert all(g.start >= summary.report_start for g in groups)
    found = [
        lab
        for lab in summary.labels
        if any(
            lab.series_id in g.series_ids and g.start <= lab.end + timedelta(days=1) and g.end >= lab.start
            for g in groups
        )
    ]
    assert len(found) >= len(summary.labels) - 1, f"found {found} of {summary.labels}"

    # one summary + one alert per group at or above 91
    messages = drain(aws["QUEUE"])
    defaults = [json.loads(m["Message"]) for m in messages]
    summaries = [d for d in defaults if d.get("type") == "backtestSummary"]
    assert len(summaries) == 1
    assert summaries[0]["badRows"] == 4 and summaries[0]["errorReport"].endswith(".errors.csv")
    group_alerts = [parse_lookout_alert(d) for d in defaults if d.get("type") != "backtestSummary"]
    assert len(group_alerts) == rep["groups_at_threshold"] == rep["alerts_sent"] - 1
    assert all(a["anomalyScore"] >= 91 for a in group_alerts)
    assert rep["groups_at_threshold"] >= 1

    # the report next to the input
    written = json.loads(_get(key + ".report.json"))
    assert written["groups"] == rep["groups"] and written["summary"].startswith("Sentinel loyalty")

    # S3 delivers the event again: nothing is sent twice
    again = app.lambda_handler(s3_event(key), lambda_context())  # type: ignore[arg-type]
    assert again["files"][0]["alerts_sent"] == 0
    assert again["files"][0]["alerts_already_sent"] == rep["alerts_sent"]
    assert drain(aws["QUEUE"]) == []


def test_the_jobs_own_outputs_and_other_prefixes_are_skipped(aws: dict[str, str]) -> None:
    from backtest_job import app

    key = f"{layout.upload_prefix(SPEC)}loyalty.csv.errors.csv"
    _upload(key, b"line,column,reason,message,row\n")
    out = app.lambda_handler(s3_event(key), lambda_context())  # type: ignore[arg-type]
    assert out["files"][0]["status"] == "skipped"
    assert drain(aws["QUEUE"]) == []


def test_a_file_without_a_required_column_is_rejected_with_a_report(aws: dict[str, str]) -> None:
    from backtest_job import app

    key = f"{layout.upload_prefix(SPEC)}wrong.csv"
    _upload(key, b"timestamp,location_id,points\n2026-01-01,A-1002,5\n")
    out = app.lambda_handler(s3_event(key), lambda_context())  # type: ignore[arg-type]
    rep = out["files"][0]
    assert rep["status"] == "rejected" and "points_earned" in rep["message"]
    errors = list(csv.DictReader(io.StringIO(_get(key + ".errors.csv"))))
    assert errors[0]["reason"] == "bad_header" and "points_redeemed" in errors[0]["message"]
    assert drain(aws["QUEUE"]) == []


def test_gzip_upload_with_bom_is_read(aws: dict[str, str]) -> None:
    import gzip

    from backtest_job import app

    rows = ["\ufefftimestamp,location_id,points_earned,points_redeemed"]
    day0 = datetime(2026, 1, 1, tzinfo=UTC)
    for d in range(60):
        rows.append(f"{day0 + timedelta(days=d):%Y-%m-%d},A-1002,{1000 + (d % 7) * 10},{300 + d % 3}")
    key = f"{layout.upload_prefix(SPEC)}small.csv"
    _upload(key, gzip.compress(("\n".join(rows) + "\n").encode()))
    rep = app.lambda_handler(s3_event(key), lambda_context())["files"][0]  # type: ignore[arg-type]
    assert rep["status"] == "ok" and rep["good_rows"] == 60 and rep["bad_rows"] == 0
    assert rep["learn_intervals"] == 42 and rep["report_intervals"] == 18
    assert len([m for m in drain(aws["QUEUE"]) if json.loads(m["Message"]).get("type") == "backtestSummary"]) == 1


def test_a_file_with_only_bad_rows_is_rejected_with_every_row_reported(aws: dict[str, str]) -> None:
    from backtest_job import app

    key = f"{layout.upload_prefix(SPEC)}all-bad.csv"
    _upload(key, b"timestamp,location_id,points_earned,points_redeemed\nyesterday,A-1002,5,1\n2026-01-02,A-1002,x,1\n")
    rep = app.lambda_handler(s3_event(key), lambda_context())["files"][0]  # type: ignore[arg-type]
    assert rep["status"] == "rejected" and "no usable row" in rep["message"]
    errors = list(csv.DictReader(io.StringIO(_get(key + ".errors.csv"))))
    assert [(e["line"], e["reason"]) for e in errors] == [("2", "bad_timestamp"), ("3", "bad_measure")]
    assert drain(aws["QUEUE"]) == []
