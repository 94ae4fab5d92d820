"""Detector Lambda against moto: warm-up on history, one alert for an injected spike, idempotent per interval,
crash-safe between publish and state save, catch-up, late and bad records, filters and feedback."""

from __future__ import annotations

import gzip
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sentinel_core import layout, store
from sentinel_core.alerts import parse_lookout_alert
from sentinel_core.environment import ConfigError
from sentinel_core.spec import get_preset

from tests.support.aws import (
    REGION,
    create_anomaly_table,
    create_idempotency_table,
    create_topic_with_queue,
    drain,
    lambda_context,
)

SPEC = get_preset("air-quality")
STEP = timedelta(minutes=5)
OFFSET = 120
LIVE = datetime(2022, 3, 20, 12, 0, tzinfo=UTC)  # first live interval
HISTORY_DAYS = 15  # past the young weeks of the detector (DetectorConfig.young_week_check)
LOCATIONS = ("A-1002", "B-101", "C-7")
BUCKET = "sentinel-data"
DETECTOR = "sentinel-air-quality"


def reading(loc: str, ts: datetime, rng: random.Random, co_override: float | None = None) -> dict[str, Any]:
    hour = ts.hour + ts.minute / 60
    base = {"A-1002": 2.0, "B-101": 2.6, "C-7": 3.1}[loc]
    co = base + 0.3 * math.sin(2 * math.pi * hour / 24) + rng.gauss(0, 0.05)
    return {
        "TIMESTAMP": ts.strftime("%Y-%m-%d %H:%M:%S"),
        "LOCATION_ID": loc,
        "CO": round(co if co_override is None else co_override, 3),
        "SO2": round(60 + 5 * math.sin(2 * math.pi * hour / 24) + rng.gauss(0, 0.5), 2),
        "NO2": round(55 + 4 * math.cos(2 * math.pi * hour / 24) + rng.gauss(0, 0.5), 2),
    }


def lines(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@dataclass
class Env:
    topic: str
    queue: str
    table: str
    idem: str
    s3: Any
    ddb: Any

    def put_interval(
        self,
        start: datetime,
        spike: float | None = None,
        name: str = "part-0",
        gz: bool = True,
        without: tuple[str, ...] = (),
    ) -> None:
        """One Firehose-like object in the interval's folder: each location (but ``without``) reports once a minute."""
        rng = random.Random(start.timestamp())
        rows = [
            reading(loc, start + timedelta(minutes=m), rng, spike if (loc == "B-101" and spike is not None) else None)
            for m in range(5)
            for loc in LOCATIONS
            if loc not in without
        ]
        body = gzip.compress(lines(rows)) if gz else lines(rows)
        key = f"{layout.interval_folder(start, SPEC)}{name}{'.gz' if gz else ''}"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def invoke(self, closed: datetime) -> dict[str, Any]:
        from detector import app

        event = scheduled_event(closed)
        return app.lambda_handler(event, lambda_context("sentinel-detector"))

    def alerts(self) -> list[dict[str, Any]]:
        return [parse_lookout_alert(env["Message"]) for env in drain(self.queue)]

    def state(self) -> dict[str, Any]:
        st = store.load_state(self.s3, BUCKET, SPEC)
        assert st is not None
        return st


def scheduled_event(closed: datetime) -> dict[str, Any]:
    """The EventBridge event that fires OFFSET seconds after the interval after ``closed`` began."""
    fire = closed + STEP + timedelta(seconds=OFFSET)
    return {
        "version": "0",
        "id": f"evt-{fire:%H%M}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": fire.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": ["arn:aws:events:eu-west-1:123456789012:rule/sentinel-detector"],
        "detail": {},
    }


def upload_history(s3: Any) -> None:
    rng = random.Random(7)
    rows = []
    t = LIVE - timedelta(days=HISTORY_DAYS)
    while t < LIVE:
        rows.extend(reading(loc, t, rng) for loc in LOCATIONS)
        t += timedelta(minutes=1)
    s3.put_object(
        Bucket=BUCKET, Key=f"{layout.historical_prefix(SPEC)}historical_data.json.gz", Body=gzip.compress(lines(rows))
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        topic, queue = create_topic_with_queue()
        table, idem = create_anomaly_table(), create_idempotency_table()
        for k, v in {
            "SENTINEL_SPEC": SPEC.to_json(),
            "DATA_BUCKET": BUCKET,
            "ALERT_TOPIC_ARN": topic,
            "ANOMALY_TABLE": table,
            "IDEMPOTENCY_TABLE": idem,
            "DETECTOR_ID": DETECTOR,
            "SCHEDULE_OFFSET_SECONDS": str(OFFSET),
            "AWS_LAMBDA_FUNCTION_NAME": "sentinel-detector",
        }.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("ALERT_FILTER", raising=False)
        from detector import app

        app.runtime.cache_clear()
        upload_history(s3)
        yield Env(topic, queue, table, idem, s3, boto3.client("dynamodb", region_name=REGION))
        app.runtime.cache_clear()


def test_spike_after_warm_up_gives_exactly_one_alert(env: Env) -> None:
    for i in range(3):
        env.put_interval(LIVE + i * STEP)
    spike_at = LIVE + 3 * STEP
    env.put_interval(spike_at, spike=9.4)
    report = env.invoke(spike_at)
    assert report["warmup_intervals"] == HISTORY_DAYS * 288
    assert report["intervals_scored"] == 4  # history ends where live starts: catch up the live intervals
    assert report["first_interval"] == LIVE.isoformat()
    (alert,) = env.alerts()
    assert alert["impactedMetric"]["metricName"] == "CO"
    (series,) = alert["impactedMetric"]["relevantTimeSeries"]
    assert series["timeSeriesId"] == "CO|LOCATION_ID=B-101"
    assert series["metricValue"] == pytest.approx(9.4)
    assert alert["timestamp"] == "2022-03-20T12:15Z[UTC]"
    assert alert["anomalyScore"] >= SPEC.severity_threshold
    assert report["alerts_sent"] == 1 and report["anomalies"] >= 1
    groups = store.list_groups(env.ddb, env.table, DETECTOR)
    assert [g.group_id for g in groups] == [alert["anomalyGroupId"]]
    assert env.state()["scored"]


def test_quiet_intervals_give_no_alert_and_catch_up_in_order(env: Env) -> None:
    env.put_interval(LIVE)
    assert env.invoke(LIVE)["intervals_scored"] == 1
    for i in range(1, 4):
        env.put_interval(LIVE + i * STEP)
    report = env.invoke(LIVE + 3 * STEP)  # two schedules were missed
    assert report["intervals_scored"] == 3
    assert report["first_interval"] == (LIVE + STEP).isoformat()
    assert report["last_interval"] == (LIVE + 3 * STEP).isoformat()
    assert env.alerts() == []


def test_a_sensor_gone_silent_is_one_silent_alert_after_three_intervals(env: Env) -> None:
    for i in range(5):
        env.put_interval(LIVE + i * STEP, without=("B-101",) if i >= 1 else ())
    report = env.invoke(LIVE + 4 * STEP)
    assert report["silent_series"] == 3  # CO, SO2 and NO2 of B-101, once, at the third silent interval
    alerts = env.alerts()
    assert sorted(a["impactedMetric"]["metricName"] for a in alerts) == ["CO", "NO2", "SO2"]
    for alert in alerts:
        assert alert["sentinel"]["kind"] == "silent"
        assert "went silent" in alert["alertDescription"]
        (series,) = alert["impactedMetric"]["relevantTimeSeries"]
        assert series["timeSeriesId"].endswith("LOCATION_ID=B-101") and series["metricValue"] is None
        assert alert["timestamp"] == "2022-03-20T12:15Z[UTC]"
    kinds = {g.kind for g in store.list_groups(env.ddb, env.table, DETECTOR)}
    assert kinds == {"silent"}


def test_same_interval_twice_sends_no_duplicate(env: Env) -> None:
    env.put_interval(LIVE, spike=9.4)
    first = env.invoke(LIVE)
    second = env.invoke(LIVE)  # double schedule / redelivered event
    assert first["alerts_sent"] == 1
    assert second.get("replayed") is True
    assert len(env.alerts()) == 1


def test_crash_between_publish_and_state_save_retries_without_duplicate(env: Env) -> None:
    from detector import app

    env.put_interval(LIVE, spike=9.4)
    rt = app.runtime()
    failures = []

    def fail_state_save_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == store.state_key(SPEC) and not failures:
            failures.append(params["Key"])
            raise ConnectionError("injected: S3 unreachable while saving the model state")

    rt.clients.s3.meta.events.register("provide-client-params.s3.PutObject", fail_state_save_once)
    with pytest.raises(ConnectionError, match="injected"):
        env.invoke(LIVE)
    assert failures and len(env.alerts()) == 1  # published before the crash
    assert store.load_state(env.s3, BUCKET, SPEC) is None  # state not saved
    retry = env.invoke(LIVE)  # Lambda's async retry: same event
    assert retry.get("replayed") is not True
    assert retry["alerts_sent"] == 0 and retry["alerts_already_sent"] == 1
    assert env.alerts() == []
    state = env.state()
    assert (LIVE.isoformat()) in state["scored"]
    (group,) = store.list_groups(env.ddb, env.table, DETECTOR)
    assert store.alert_status(env.ddb, env.table, DETECTOR, group.group_id, LIVE) == "SENT"


def test_late_and_bad_records_are_counted(env: Env) -> None:
    env.put_interval(LIVE)
    env.s3.put_object(
        Bucket=BUCKET,
        Key=f"{layout.interval_folder(LIVE, SPEC)}part-bad",
        Body=b'{"TIMESTAMP": "2022-03-20 12:01:00", "LOCATION_ID": "B-101", "CO": "high", "SO2": 1, "NO2": 2}\n'
        b"not json\n",
    )
    first = env.invoke(LIVE)
    assert first["bad_records"] == 2
    assert first["bad_reasons"] == {"bad_measure": 1, "not_json": 1}
    env.put_interval(LIVE, name="part-late", gz=False)  # arrives after LIVE was scored
    env.put_interval(LIVE + STEP)
    second = env.invoke(LIVE + STEP)
    assert second["late_records"] == 15
    assert second["late_objects"] == [f"{layout.interval_folder(LIVE, SPEC)}part-late"]
    third_event = env.invoke(LIVE + 2 * STEP)
    assert third_event["late_records"] == 0  # counted once


def test_alert_filter_drops_other_locations(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from detector import app

    monkeypatch.setenv("ALERT_FILTER", json.dumps({"dimensions": {"LOCATION_ID": ["A-1002"]}}))
    app.runtime.cache_clear()
    env.put_interval(LIVE, spike=9.4)
    report = env.invoke(LIVE)
    assert report["alerts_sent"] == 0 and report["alerts_filtered"] == 1
    assert env.alerts() == []
    assert len(store.list_groups(env.ddb, env.table, DETECTOR)) == 1  # still recorded


def test_missing_configuration_is_a_clear_error(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from detector import app

    monkeypatch.delenv("DATA_BUCKET")
    app.runtime.cache_clear()
    with pytest.raises(ConfigError, match="DATA_BUCKET"):
        env.invoke(LIVE)


@pytest.mark.parametrize("verdict", [None, "--not-anomaly"])
def test_feedback_not_anomaly_is_honoured_on_the_next_run(env: Env, verdict: str | None) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    env.put_interval(LIVE, spike=6.0)
    first = env.invoke(LIVE)
    (alert,) = env.alerts()
    assert first["alerts_sent"] == 1
    if verdict:
        cli = CliRunner().invoke(
            app,
            [
                "feedback",
                "--table",
                env.table,
                "--group",
                alert["anomalyGroupId"],
                "--series",
                "CO|LOCATION_ID=B-101",
                verdict,
            ],
        )
        assert cli.exit_code == 0, cli.output
    later = LIVE + 100 * STEP  # the same behaviour again, after any alert cool-down has passed
    env.put_interval(later, spike=6.0)
    second = env.invoke(later)
    if verdict:
        assert second["feedback_applied"] == 1
        assert second["anomalies"] == 0  # learned as normal: inside the band now
        assert store.list_feedback(env.ddb, env.table, DETECTOR, pending_only=True) == []
        third = env.invoke(later + STEP)
        assert third["feedback_applied"] == 0  # applied once
    else:
        assert second["feedback_applied"] == 0
        assert second["anomalies"] == 1  # without feedback the same value is still an anomaly


def test_a_state_of_an_older_detector_version_re_warms_instead_of_failing_every_run(env: Env) -> None:
    env.put_interval(LIVE)
    env.invoke(LIVE)
    old = env.state()
    v1_series = {"CO|LOCATION_ID=B-101": [0, 1]}
    old["detector"] = {"version": 1, "interval_seconds": int(STEP.total_seconds()), "series": v1_series}
    # the JSON state of that release, at the state key (the detector reads either encoding)
    env.s3.put_object(Bucket=BUCKET, Key=store.state_key(SPEC), Body=gzip.compress(json.dumps(old).encode()))
    env.put_interval(LIVE + STEP)
    report = env.invoke(LIVE + STEP)
    assert report["rewarmed"] is True and report["warmup_intervals"] == HISTORY_DAYS * 288
    assert report["last_interval"] == (LIVE + STEP).isoformat()
    assert env.state()["detector"]["version"] == 2
