"""Transform handler with real Firehose event shapes (Direct PUT, IoT rule with separator, Kinesis source)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sentinel_core.spec import get_preset
from transform import app, logic

SPEC = get_preset("air-quality")
ECOM = get_preset("ecommerce")
ARRIVAL = datetime(2026, 3, 23, 10, 8, 30, tzinfo=UTC)


@dataclass
class FakeContext:
    function_name: str = "transform"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:transform"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def b64(payload: bytes | str) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    return base64.b64encode(raw).decode()


def reading(ts: str = "2026-03-23 10:07", loc: str = "B-101", **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"TIMESTAMP": ts, "LOCATION_ID": loc, "CO": 2.6, "SO2": 62, "NO2": 57}
    rec.update(over)
    return rec


def envelope(payload: bytes | str, thing: str = "B-101") -> bytes:
    """What the stack's IoT rule hands Firehose (``spec.iot_rule_sql``): the MQTT payload, base64, and the thing
    name from the topic, followed by the Firehose action's separator."""
    raw = payload.encode() if isinstance(payload, str) else payload
    return (json.dumps({"payload": base64.b64encode(raw).decode(), "thing": thing}) + "\n").encode()


def direct_put_event(
    payloads: list[bytes | str], arrival: datetime = ARRIVAL, thing: str | None = "B-101"
) -> dict[str, Any]:
    """Shape of the Firehose -> Lambda event (Direct PUT), as in the AWS Lambda developer guide; each payload as the
    IoT rule wraps it for ``thing`` (``thing=None``: the bytes as they are)."""
    return {
        "invocationId": "invocationIdExample",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/air-quality",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": f"49546986683135544286507457936321625675700192471156785154{i:04d}",
                "approximateArrivalTimestamp": ms(arrival),
                "data": b64(envelope(p, thing) if thing is not None else p),
            }
            for i, p in enumerate(payloads)
        ],
    }


def kinesis_source_event(payloads: list[bytes | str], arrival: datetime = ARRIVAL) -> dict[str, Any]:
    """Firehose with a Kinesis data stream as source: ``sourceKinesisStreamArn`` and ``kinesisRecordMetadata``."""
    return {
        "invocationId": "invoked123",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/ecommerce",
        "sourceKinesisStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/ecommerce",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": f"rec-{i}",
                "approximateArrivalTimestamp": ms(arrival),
                "data": b64(p),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "4d1ad2b9-24f8-4b9d-a088-76e9947c317a",
                    "approximateArrivalTimestamp": ms(arrival),
                    "sequenceNumber": f"4954581443340834022707719101286716233286093893957058{i:04d}",
                    "subsequenceNumber": "",
                },
            }
            for i, p in enumerate(payloads)
        ],
    }


@pytest.fixture
def spec_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SENTINEL_SPEC", SPEC.to_json())
    yield


def scalar(v: Any) -> float:
    """EMF values are a number or a list of numbers."""
    return float(sum(v)) if isinstance(v, list) else float(v)


def by_id(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["recordId"]: r for r in response["records"]}


def decoded(entry: dict[str, Any]) -> str:
    return base64.b64decode(entry["data"]).decode()


def test_ok_record_goes_to_its_own_interval_folder(spec_env: None) -> None:
    event = direct_put_event([json.dumps(reading())])
    out = app.lambda_handler(event, FakeContext())
    [entry] = out["records"]
    assert entry["result"] == "Ok"
    assert entry["metadata"]["partitionKeys"] == {"interval_date": "20260323", "interval_time": "1005"}
    line = decoded(entry)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {
        "TIMESTAMP": "2026-03-23 10:07:00",
        "LOCATION_ID": "B-101",
        "CO": 2.6,
        "SO2": 62.0,
        "NO2": 57.0,
    }


def test_partition_is_record_time_not_arrival(spec_env: None) -> None:
    # Arrives at 10:08:30 but was measured at 09:52: belongs to the 09:50 folder.
    out = app.lambda_handler(direct_put_event([json.dumps(reading("2026-03-23T09:52:10Z"))]), FakeContext())
    assert out["records"][0]["metadata"]["partitionKeys"]["interval_time"] == "0950"


def test_mixed_batch_keeps_every_record_id_and_reason(
    spec_env: None, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    payloads: list[bytes | str] = [
        json.dumps(reading()),
        "{not json",
        json.dumps(reading(CO="NaN")),
        json.dumps(reading(LOCATION_ID="")),
        json.dumps(reading(ts="2026-03-23 11:30")),  # 81 minutes in the future of the arrival clock
        b"\xff\xfe",
        json.dumps(reading(SO2=True)),
        "",
        json.dumps([1, 2]),
    ]
    event = direct_put_event(payloads)
    out = app.lambda_handler(event, FakeContext())
    ids_in = [r["recordId"] for r in event["records"]]
    assert [r["recordId"] for r in out["records"]] == ids_in
    results = [r["result"] for r in out["records"]]
    assert results == ["Ok"] + ["ProcessingFailed"] * 8
    # Failed records carry their original bytes, so the error prefix keeps the producer's data.
    for inp, res in zip(event["records"][1:], out["records"][1:], strict=True):
        assert res["data"] == inp["data"]
        assert "metadata" not in res
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "record rejected"]
    assert reasons == [
        "not_json",
        "bad_measure",
        "missing_dimension",
        "future_timestamp",
        "not_utf8",
        "bad_measure",
        "empty",
        "not_an_object",
    ]
    metrics_blobs = [entry for entry in logged if "_aws" in entry]
    by_reason = {
        blob["reason"]: scalar(blob["RecordsFailedByReason"])
        for blob in metrics_blobs
        if "RecordsFailedByReason" in blob
    }
    assert by_reason == {
        "not_json": 1,
        "bad_measure": 2,
        "missing_dimension": 1,
        "future_timestamp": 1,
        "not_utf8": 1,
        "empty": 1,
        "not_an_object": 1,
    }
    main = next(blob for blob in metrics_blobs if "RecordsIn" in blob)
    assert (scalar(main["RecordsIn"]), scalar(main["RecordsOk"]), scalar(main["RecordsFailed"])) == (9, 1, 8)


def test_iot_rule_separator_payload(spec_env: None) -> None:
    # The device's own trailing newline inside the envelope, the Firehose action's separator after it.
    out = app.lambda_handler(direct_put_event([json.dumps(reading()) + "\n"]), FakeContext())
    assert out["records"][0]["result"] == "Ok"
    assert decoded(out["records"][0]).count("\n") == 1


GATEWAY = SPEC.with_overrides(thing_locations={"gw-1": ("L5", "L6", "L9")})


def test_several_lines_in_one_record_same_interval_from_a_gateway() -> None:
    body = "\n".join(json.dumps(reading(ts=f"2026-03-23 10:0{m}", loc=f"L{m}")) for m in (5, 6, 9)) + "\n"
    outcome = logic.transform_record("r", b64(envelope(body, "gw-1")), ms(ARRIVAL), GATEWAY)
    assert outcome.ok and outcome.records == 3 and outcome.thing == "gw-1"
    assert [json.loads(x)["LOCATION_ID"] for x in outcome.lines.splitlines()] == ["L5", "L6", "L9"]
    # The same message from a plain sensor, or naming a location the gateway does not serve, is refused.
    assert logic.transform_record("r", b64(envelope(body, "L5")), ms(ARRIVAL), GATEWAY).reason == "identity_mismatch"
    other = body + json.dumps(reading(ts="2026-03-23 10:07", loc="B-101"))
    refused = logic.transform_record("r", b64(envelope(other, "gw-1")), ms(ARRIVAL), GATEWAY)
    assert refused.reason == "identity_mismatch" and refused.message.startswith("document 4:")


def test_several_lines_across_intervals_fail_whole_record(spec_env: None) -> None:
    body = json.dumps(reading(ts="2026-03-23 10:04")) + "\n" + json.dumps(reading(ts="2026-03-23 10:05"))
    outcome = logic.transform_record("r", b64(envelope(body)), ms(ARRIVAL), SPEC)
    assert not outcome.ok and outcome.reason == "mixed_intervals"
    bad_second = json.dumps(reading()) + "\n" + json.dumps(reading(CO="x"))
    outcome = logic.transform_record("r", b64(envelope(bad_second)), ms(ARRIVAL), SPEC)
    assert (outcome.reason, outcome.message.startswith("document 2:")) == ("bad_measure", True)


def test_kinesis_source_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_SPEC", ECOM.to_json())
    ev = {"event_time": "2026-03-23T10:17:00+00:00", "page_type": "cart", "platform": "web", "marketplace": "US"}
    out = app.lambda_handler(kinesis_source_event([json.dumps(ev), "oops"]), FakeContext())
    ok, bad = out["records"]
    assert ok["result"] == "Ok" and bad["result"] == "ProcessingFailed"
    assert ok["metadata"]["partitionKeys"] == {"interval_date": "20260323", "interval_time": "1010"}
    assert json.loads(decoded(ok))["views"] == 1.0  # default measure of an event stream


def test_not_base64_and_internal_error_fail_only_their_record(spec_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    event = direct_put_event([json.dumps(reading()), json.dumps(reading()), json.dumps(reading())])
    event["records"][1]["data"] = "***not base64***"
    event["records"][2]["approximateArrivalTimestamp"] = "yesterday"  # a shape bug: float() raises
    out = app.lambda_handler(event, FakeContext())
    assert [r["result"] for r in out["records"]] == ["Ok", "ProcessingFailed", "ProcessingFailed"]
    outcomes = [logic.safe_transform(r, SPEC) for r in event["records"]]
    assert [o.reason for o in outcomes] == ["", "not_base64", "internal_error"]
    assert "ValueError" in outcomes[2].message


def test_unexpected_exception_in_logic_becomes_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> logic.Outcome:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(logic, "transform_record", boom)
    o = logic.safe_transform({"recordId": "x", "data": b64("{}"), "approximateArrivalTimestamp": 0}, SPEC)
    assert (o.ok, o.reason, o.message, o.original_b64) == (False, "internal_error", "RuntimeError: kaboom", b64("{}"))


def test_not_a_firehose_event_is_a_clear_error(spec_env: None) -> None:
    with pytest.raises(ValueError, match="records"):
        logic.transform_batch({"invocationId": "x"}, SPEC)


def test_late_records_are_delivered_and_counted(spec_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # 09:52 closes at 09:55; arrival 10:08:30 is late unless the tolerance covers 13.5 minutes.
    o = logic.transform_record("r", b64(envelope(json.dumps(reading("2026-03-23 09:52")))), ms(ARRIVAL), SPEC, 0)
    assert o.ok and o.late
    o = logic.transform_record("r", b64(envelope(json.dumps(reading("2026-03-23 09:52")))), ms(ARRIVAL), SPEC, 900)
    assert o.ok and not o.late
    o = logic.transform_record("r", b64(envelope(json.dumps(reading("2026-03-23 10:07")))), ms(ARRIVAL), SPEC, 0)
    assert not o.late


def test_response_limit_fails_overflow_records_not_the_batch() -> None:
    # Epoch-second timestamps grow when normalised to dates: with a tight limit, later records must fail with a
    # reason instead of the response overflowing.
    payload = json.dumps({"event_time": 1774260420, "page_type": 1, "platform": 1, "marketplace": 1})
    event = kinesis_source_event([payload] * 50)
    fallback_size = sum(
        len(json.dumps({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]}))
        for r in event["records"]
    )
    limit = fallback_size + 2000
    response, outcomes = logic.transform_batch(event, ECOM, max_bytes=limit)
    assert len(json.dumps(response, separators=(",", ":"))) <= limit
    reasons = {o.reason for o in outcomes if not o.ok}
    assert reasons == {"response_too_large"}
    assert 0 < sum(o.ok for o in outcomes) < 50
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    # With the real 6 MB limit the same batch is all Ok.
    response, outcomes = logic.transform_batch(event, ECOM)
    assert all(o.ok for o in outcomes)


def test_explain_error_document_rederives_reason() -> None:
    doc = {
        "attemptsMade": 1,
        "arrivalTimestamp": ms(ARRIVAL),
        "errorCode": "Lambda.ProcessingFailedStatus",
        "errorMessage": "ProcessingFailed status returned by the Lambda function",
        "attemptEndingTimestamp": ms(ARRIVAL) + 1000,
        "rawData": b64(envelope(json.dumps(reading(ts="2026-03-23 11:30")))),
        "lambdaArn": "arn:aws:lambda:eu-west-1:123456789012:function:transform:$LATEST",
    }
    reason, message = logic.explain_error_document(doc, SPEC)
    assert reason == "future_timestamp" and "device clock" in message
    doc["rawData"] = b64(envelope(json.dumps(reading())))
    assert logic.explain_error_document(doc, SPEC)[0] == "Lambda.ProcessingFailedStatus"


def test_missing_spec_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_SPEC", raising=False)
    with pytest.raises(ValueError, match="SENTINEL_SPEC"):
        app.lambda_handler(direct_put_event([json.dumps(reading())]), FakeContext())


def test_response_limit_below_even_the_fallback_keeps_what_fits() -> None:
    event = direct_put_event([json.dumps(reading())] * 20)
    response, outcomes = logic.transform_batch(event, SPEC, max_bytes=1000)
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    assert 0 < sum(o.ok for o in outcomes) < 20
    assert {o.reason for o in outcomes if not o.ok} == {"response_too_large"}


def test_late_metric_uses_the_schedule_offset(
    spec_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 09:52 closes at 09:55; arrival 10:08:30. Offset 300 s: still late; offset 900 s: in time.
    payloads: list[bytes | str] = [json.dumps(reading("2026-03-23 09:52")), json.dumps(reading("2026-03-23 10:07"))]
    for offset, late in (("300", 1), ("900", 0)):
        monkeypatch.setenv("SCHEDULE_OFFSET_SECONDS", offset)
        capsys.readouterr()
        app.lambda_handler(direct_put_event(payloads), FakeContext())
        blobs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{") and "_aws" in x]
        main = next(b for b in blobs if "RecordsLate" in b)
        assert scalar(main["RecordsLate"]) == late
