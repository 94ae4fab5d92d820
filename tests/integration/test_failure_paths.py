"""Failure paths, offline: the synthesized air-quality stack played by the local runtime on moto, real handlers.

Every test drives MQTT publishes through the IoT rule, Firehose (buffering, the transform Lambda, dynamic
partitioning, error prefix) and the EventBridge schedule into the detector and SNS, in simulated time, and then
reads back what a user would look at: S3 objects, error documents, alerts on the topic, the dead-letter queue.
Failures are injected where they happen in AWS (a record the transform chokes on, an invocation that raises, an
S3 or SNS call that errors through the real boto3 client), never by replacing a part with a mock.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sentinel_core import layout, store
from sentinel_core.alerts import parse_lookout_alert
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from tests.support.aws import Play

pytestmark = pytest.mark.slow

STEP = timedelta(minutes=5)
LIVE = datetime(2026, 3, 23, 12, 0, tzinfo=UTC)  # first live interval
LOCATIONS = ("A-1002", "B-101", "C-7")
HISTORY_DAYS = 2


def reading(loc: str, ts: datetime, rng: random.Random, co: float | None = None) -> dict[str, Any]:
    hour = ts.hour + ts.minute / 60
    base = {"A-1002": 2.0, "B-101": 2.6, "C-7": 3.1}[loc]
    value = base + 0.3 * math.sin(2 * math.pi * hour / 24) + rng.gauss(0, 0.05)
    return {
        "TIMESTAMP": ts.strftime("%Y-%m-%d %H:%M:%S"),
        "LOCATION_ID": loc,
        "CO": round(value if co is None else co, 3),
        "SO2": round(60 + 5 * math.sin(2 * math.pi * hour / 24) + rng.gauss(0, 0.5), 2),
        "NO2": round(55 + 4 * math.cos(2 * math.pi * hour / 24) + rng.gauss(0, 0.5), 2),
    }


class Harness:
    """The pipeline plus the read-backs the tests need."""

    def __init__(self, pipe: LocalPipeline) -> None:
        self.pipe = pipe
        self.s3 = pipe.client("s3")
        self.bucket = pipe.data_bucket
        env = pipe.env_of("detector")
        self.spec = PipelineSpec.from_json(env["SENTINEL_SPEC"])
        self.offset = timedelta(seconds=int(env["SCHEDULE_OFFSET_SECONDS"]))
        self.topic_arn = env["ALERT_TOPIC_ARN"]
        self.table = env["ANOMALY_TABLE"]
        self.detector_id = env["DETECTOR_ID"]
        self.reports: list[Any] = []
        self.published: list[dict[str, Any]] = []

    # -- input ----------------------------------------------------------------------------------------------------
    def publish(self, payload: dict[str, Any] | bytes, at: datetime, loc: str = "B-101") -> None:
        if isinstance(payload, dict):
            self.published.append(payload)
        assert self.pipe.publish(self.spec.telemetry_topic(loc), payload, now=at, client_id=loc) == 1

    def interval(self, start: datetime, co: float | None = None) -> int:
        """Each location reports once a minute, 2 s after the minute; ``co`` overrides B-101's CO."""
        rng = random.Random(start.timestamp())
        n = 0
        for m in range(5):
            for loc in LOCATIONS:
                ts = start + timedelta(minutes=m)
                self.publish(reading(loc, ts, rng, co if loc == "B-101" else None), ts + timedelta(seconds=2), loc)
                n += 1
        return n

    def upload_history(self) -> None:
        rng = random.Random(7)
        rows: list[str] = []
        t = LIVE - timedelta(days=HISTORY_DAYS)
        while t < LIVE:
            rows.extend(json.dumps(reading(loc, t, rng)) + "\n" for loc in LOCATIONS)
            t += timedelta(minutes=1)
        key = f"{layout.historical_prefix(self.spec)}historical_data.json.gz"
        self.pipe.upload(self.bucket, key, gzip.compress("".join(rows).encode()), now=LIVE - timedelta(hours=1))

    def run_detector_after(self, start: datetime) -> dict[str, Any] | BaseException:
        """Advance to the schedule that scores ``start`` (fires ``offset`` after the next interval begins)."""
        fired = self.pipe.tick(start + STEP + self.offset)
        mine = [r for name, _, r in fired if self.pipe.function(name).package == "detector"]
        assert mine, f"no detector run fired by {start + STEP + self.offset}"
        self.reports.extend(mine)
        return mine[-1]  # type: ignore[no-any-return]

    # -- read-backs ----------------------------------------------------------------------------------------------
    def objects(self, prefix: str) -> list[tuple[str, bytes]]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                out.append((o["Key"], gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body))
        return out

    def live_lines(self, start: datetime | None = None) -> list[dict[str, Any]]:
        prefix = layout.interval_folder(start, self.spec) if start else layout.live_root(self.spec)
        return [json.loads(line) for _, body in self.objects(prefix) for line in body.decode().splitlines() if line]

    def error_docs(self) -> list[dict[str, Any]]:
        root = layout.error_root(self.spec)
        return [json.loads(line) for _, body in self.objects(root) for line in body.decode().splitlines() if line]

    def alerts(self) -> list[dict[str, Any]]:
        from moto.sns.models import sns_backends

        topic = sns_backends[self.pipe.account][self.pipe.region].topics[self.topic_arn]
        out = []
        for _, message, *_ in topic.sent_notifications:
            doc = json.loads(message)  # MessageStructure=json: one text per protocol, 'default' is the Lookout JSON
            out.append(parse_lookout_alert(doc["default"] if isinstance(doc.get("default"), str) else doc))
        return out

    def raw(self, doc: dict[str, Any]) -> bytes:
        """The producer's bytes of an error document: inside the IoT rule's envelope (``spec.iot_rule_sql``)."""
        envelope = json.loads(base64.b64decode(doc["rawData"]))
        return base64.b64decode(envelope["payload"])


@pytest.fixture
def h(play: Play) -> Harness:
    return Harness(play("air-quality"))  # the offline harness starts every handler cold


def loaded(module: str) -> Any:
    """A module of a handler the runtime already imported (the code that actually runs)."""
    assert module in sys.modules, f"{module} is not loaded yet: invoke its function first"
    return sys.modules[module]


def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric documents the handlers printed (what the dashboard and alarms read)."""
    out = []
    for line in capsys.readouterr().out.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            out.append(doc)
    return out


def metric_sum(docs: list[dict[str, Any]], name: str, **dims: str) -> float:
    total = 0.0
    for d in docs:
        if name in d and all(d.get(k) == v for k, v in dims.items()):
            value = d[name]
            total += sum(value) if isinstance(value, list) else float(value)
    return total


# -- transform ----------------------------------------------------------------------------------------------------
def test_transform_raising_for_one_record_fails_only_that_record(
    h: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    h.publish(reading("A-1002", LIVE, random.Random(1)), LIVE + timedelta(seconds=1), "A-1002")
    h.pipe.flush(force=True)  # the transform is loaded now
    logic = loaded("transform.logic")
    real = logic.transform_record

    def chokes_on_poison(record_id: str, data_b64: str, *args: Any, **kwargs: Any) -> Any:
        envelope = json.loads(base64.b64decode(data_b64))  # the rule's {"payload", "thing"}
        if b"POISON" in base64.b64decode(envelope["payload"]):
            raise RuntimeError("injected: the transform has a bug for this record")
        return real(record_id, data_b64, *args, **kwargs)

    monkeypatch.setattr(logic, "transform_record", chokes_on_poison)
    capsys.readouterr()
    sent = h.interval(LIVE)
    poison = {**reading("C-7", LIVE + timedelta(minutes=3), random.Random(2)), "NOTE": "POISON"}
    h.publish(poison, LIVE + timedelta(minutes=3, seconds=5), "C-7")
    h.pipe.flush(force=True)

    assert len(h.live_lines(LIVE)) == sent + 1  # every other record delivered, in its interval's folder
    (doc,) = h.error_docs()
    assert json.loads(h.raw(doc)) == poison  # the producer's bytes, kept
    assert doc["errorCode"] == "Lambda.ProcessingFailedStatus"
    metrics = emitted_metrics(capsys)
    assert metric_sum(metrics, "RecordsFailedByReason", reason="internal_error") == 1
    assert metric_sum(metrics, "RecordsFailed") == 1 and metric_sum(metrics, "RecordsOk") == sent
    ledger = h.pipe.ledger
    assert ledger.records_in == ledger.delivered + ledger.failed and ledger.failed == 1 and ledger.dropped == 0


def test_whole_batch_failing_is_retried_then_kept_in_the_error_prefix(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h.publish(reading("A-1002", LIVE, random.Random(1)), LIVE, "A-1002")
    h.pipe.flush(force=True)
    logic = loaded("transform.logic")
    (stream,) = h.pipe.firehoses.values()
    assert stream.retries >= 1, "the template must configure processor retries"
    calls: list[int] = []

    def down(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise TimeoutError("injected: the transform timed out")

    monkeypatch.setattr(logic, "transform_batch", down)
    before = len(h.published)
    sent = h.interval(LIVE + STEP)
    batch = h.published[before:]
    h.pipe.flush(force=True)
    # every buffer flush (one per minute here) invoked the transform 1 + retries times
    assert calls and len(calls) % (stream.retries + 1) == 0
    docs = h.error_docs()
    assert len(docs) == sent  # nothing lost: every record is in the error prefix
    assert all(d["errorCode"] == "Lambda.FunctionError" and d["attemptsMade"] == stream.retries + 1 for d in docs)
    assert all("injected" in d["errorMessage"] for d in docs)

    def canon(doc: dict[str, Any]) -> str:
        return json.dumps(doc, sort_keys=True)

    assert sorted(canon(json.loads(h.raw(d))) for d in docs) == sorted(map(canon, batch))  # the producers' records
    assert h.live_lines(LIVE + STEP) == []
    root = layout.error_root(h.spec)
    assert all(k.startswith(f"{root}processing-failed/") for k, _ in h.objects(root))


def test_transient_batch_failure_is_retried_and_delivered(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.publish(reading("A-1002", LIVE, random.Random(1)), LIVE, "A-1002")
    h.pipe.flush(force=True)
    logic = loaded("transform.logic")
    real = logic.transform_batch
    failures: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if len(failures) < 1:
            failures.append(1)
            raise ConnectionResetError("injected: transient failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(logic, "transform_batch", flaky)
    sent = h.interval(LIVE + STEP)
    h.pipe.flush(force=True)
    assert failures == [1]
    assert len(h.live_lines(LIVE + STEP)) == sent and h.error_docs() == []


def test_future_device_clock_beyond_tolerance_is_rejected_with_reason(h: Harness) -> None:
    from transform.logic import explain_error_document

    tolerance = timedelta(seconds=h.spec.future_tolerance_seconds)
    arrival = LIVE + timedelta(seconds=30)
    ahead_ok = reading("A-1002", arrival + tolerance - timedelta(seconds=60), random.Random(3))
    too_far = reading("B-101", arrival + tolerance + timedelta(minutes=5), random.Random(4))
    h.publish(ahead_ok, arrival, "A-1002")
    h.publish(too_far, arrival, "B-101")
    h.pipe.flush(force=True)
    assert [r["LOCATION_ID"] for r in h.live_lines()] == ["A-1002"]
    (doc,) = h.error_docs()
    assert json.loads(h.raw(doc)) == too_far
    reason, message = explain_error_document(doc, h.spec)
    assert reason == "future_timestamp" and f"{h.spec.future_tolerance_seconds}s ahead" in message


# -- detector -----------------------------------------------------------------------------------------------------
def test_empty_interval_is_scored_without_alert_and_the_schedule_moves_on(h: Harness) -> None:
    h.upload_history()
    h.interval(LIVE)
    first = h.run_detector_after(LIVE)
    assert isinstance(first, dict) and first["intervals_scored"] == 1
    # LIVE + STEP: every device is silent
    empty = h.run_detector_after(LIVE + STEP)
    assert isinstance(empty, dict)
    assert empty["intervals_scored"] == 1 and empty["records"] == 0 and empty["alerts_sent"] == 0
    h.interval(LIVE + 2 * STEP)
    after = h.run_detector_after(LIVE + 2 * STEP)
    assert isinstance(after, dict) and after["last_interval"] == (LIVE + 2 * STEP).isoformat()
    assert after["records"] == 15 and h.alerts() == []
    state = store.load_state(h.s3, h.bucket, h.spec)
    assert state is not None and (LIVE + STEP).isoformat() in state["scored"]


def test_duplicate_records_count_once(h: Harness) -> None:
    h.upload_history()
    sent = h.interval(LIVE)
    rng = random.Random(LIVE.timestamp())
    first = reading("A-1002", LIVE, rng)  # what interval() published first (same seed, same order)
    h.publish(first, LIVE + timedelta(minutes=4, seconds=30), "A-1002")  # QoS 1 redelivery of the same message
    h.publish(first, LIVE + timedelta(minutes=4, seconds=31), "A-1002")
    report = h.run_detector_after(LIVE)
    assert isinstance(report, dict)
    assert len(h.live_lines(LIVE)) == sent + 2  # Firehose is at-least-once: S3 holds the copies
    assert report["records"] == sent and report["duplicate_records"] == 2
    again = h.run_detector_after(LIVE + STEP)  # the next run does not count LIVE again
    assert isinstance(again, dict) and again["first_interval"] == (LIVE + STEP).isoformat()


def test_late_record_is_stored_counted_and_reported_not_rescored(
    h: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h.upload_history()
    h.interval(LIVE)
    scored = h.run_detector_after(LIVE)
    assert isinstance(scored, dict) and scored["last_interval"] == LIVE.isoformat()
    capsys.readouterr()
    late = reading("C-7", LIVE + timedelta(minutes=4), random.Random(5), co=None)
    h.publish(late, LIVE + STEP + h.offset + timedelta(seconds=40), "C-7")  # after LIVE was scored
    h.interval(LIVE + STEP)
    nxt = h.run_detector_after(LIVE + STEP)
    assert isinstance(nxt, dict)
    stored = [r for r in h.live_lines(LIVE) if r["LOCATION_ID"] == "C-7" and r["TIMESTAMP"] == late["TIMESTAMP"]]
    assert len(stored) == 2 and late["CO"] in [r["CO"] for r in stored]  # the on-time one and the late one
    metrics = emitted_metrics(capsys)
    assert metric_sum(metrics, "RecordsLate", service="transform") == 1  # the transform counted it
    assert metric_sum(metrics, "LateRecords", service="detector") == 1  # and the detector reported it
    assert nxt["late_records"] == 1 and len(nxt["late_objects"]) == 1
    assert nxt["late_objects"][0].startswith(layout.interval_folder(LIVE, h.spec))
    assert nxt["first_interval"] == (LIVE + STEP).isoformat()  # LIVE is not scored again
    assert nxt["intervals_scored"] == 1


def _warm_then_spike(h: Harness) -> datetime:
    h.upload_history()
    for i in range(3):
        h.interval(LIVE + i * STEP)
        quiet = h.run_detector_after(LIVE + i * STEP)
        assert isinstance(quiet, dict) and quiet["alerts_sent"] == 0
    spike = LIVE + 3 * STEP
    h.interval(spike, co=9.4)
    return spike


def test_detector_crash_halfway_retry_sends_no_second_alert_and_keeps_state(h: Harness) -> None:
    spike = _warm_then_spike(h)
    app = loaded("detector.app")
    clients = app.runtime().clients
    state_key = store.state_key(h.spec)
    crashes: list[str] = []

    def crash_on_state_save_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == state_key and not crashes:
            crashes.append(params["Key"])
            raise ConnectionError("injected: S3 unreachable while saving the model state")

    clients.s3.meta.events.register("provide-client-params.s3.PutObject", crash_on_state_save_once)
    report = h.run_detector_after(spike)  # attempt 1 publishes, then crashes; Lambda's async retry runs again
    assert crashes == [state_key]
    assert isinstance(report, dict), f"the retry should have succeeded: {report!r}"
    assert report["alerts_sent"] == 0 and report["alerts_already_sent"] == 1
    (alert,) = h.alerts()  # exactly one alert, from the first attempt
    assert alert["impactedMetric"]["relevantTimeSeries"][0]["timeSeriesId"] == "CO|LOCATION_ID=B-101"
    state = store.load_state(h.s3, h.bucket, h.spec)
    assert state is not None and spike.isoformat() in state["scored"]  # no lost state
    (group,) = store.list_groups(h.pipe.client("dynamodb"), h.table, h.detector_id)
    assert store.alert_status(h.pipe.client("dynamodb"), h.table, h.detector_id, group.group_id, spike) == "SENT"
    nxt = h.run_detector_after(spike + STEP)
    assert isinstance(nxt, dict) and nxt["first_interval"] == (spike + STEP).isoformat()
    assert len(h.alerts()) == 1


def test_sns_publish_failure_fails_the_alert_not_the_run_and_the_next_run_sends_it(h: Harness) -> None:
    spike = _warm_then_spike(h)
    app = loaded("detector.app")
    sns_client = app.runtime().clients.sns
    attempts: list[str] = []
    outage = {"on": True}

    def sns_down(params: dict[str, Any], **_: Any) -> None:
        if outage["on"]:
            attempts.append(str(params.get("TopicArn")))
            raise ClientError(
                {"Error": {"Code": "KMSThrottlingException", "Message": "injected: SNS cannot encrypt"}}, "Publish"
            )

    sns_client.meta.events.register("provide-client-params.sns.Publish", sns_down)
    result = h.run_detector_after(spike)
    # The run succeeds (no Lambda retry, nothing dead-lettered): the alert failed alone, the state is saved.
    assert isinstance(result, dict) and result["alerts_failed"] == 1 and result["alerts_sent"] == 0
    assert attempts == [h.topic_arn] and h.alerts() == []
    state = store.load_state(h.s3, h.bucket, h.spec)
    assert state is not None and spike.isoformat() in state["scored"]
    dlq_arn = h.pipe.template.props(h.pipe.function("detector").resource)["DeadLetterConfig"]["TargetArn"]
    sqs = h.pipe.client("sqs")
    url = sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[-1])["QueueUrl"]
    assert not sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages")
    # SNS is back: the next scheduled run scores the next interval and publishes the kept alert once.
    outage["on"] = False
    recovered = h.run_detector_after(spike + STEP)
    assert isinstance(recovered, dict)
    assert recovered["first_interval"] == (spike + STEP).isoformat()  # nothing re-scored, nothing stalled
    assert recovered["alerts_retried"] == 1 and recovered["alerts_sent"] == 1
    (alert,) = h.alerts()
    assert alert["impactedMetric"]["metricName"] == "CO"
    later = h.run_detector_after(spike + 2 * STEP)
    assert isinstance(later, dict) and later["alerts_retried"] == 0
    assert later["alerts_sent"] == 0 and len(h.alerts()) == 1  # sent once
