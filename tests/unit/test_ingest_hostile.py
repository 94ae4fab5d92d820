"""Issue 13's hostile inputs, each through the REAL Firehose transform handler (IoT envelope or Kinesis record),
the alert formatter and the automation logic: every one is refused with its stable reason, counted by reason, and
what is sanitised anyway (alert texts, subjects, command topics) stays safe."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core import alerts
from sentinel_core.model import AnomalyGroup, Contribution, PointScore, SeriesKey
from sentinel_core.records import RecordError, parse_number, parse_timestamp, validate
from sentinel_core.spec import MAX_DIMENSION_BYTES, THING_NAME, PipelineSpec, SpecError, dimension_problem, get_preset
from transform import app, logic

from tests.unit.test_transform import FakeContext, envelope, kinesis_source_event, ms, reading, scalar

AQ = get_preset("air-quality")
ECOM = get_preset("ecommerce")
ARRIVAL = datetime(2026, 3, 23, 10, 8, 30, tzinfo=UTC)


def iot_event(items: list[tuple[str, bytes | str]], arrival: datetime = ARRIVAL) -> dict[str, Any]:
    """A Firehose event as the stack's IoT rule fills it: (publishing thing, MQTT payload) per record."""
    return {
        "invocationId": "inv",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/air-quality",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": f"r{i}",
                "approximateArrivalTimestamp": ms(arrival),
                "data": base64.b64encode(envelope(payload, thing)).decode(),
            }
            for i, (thing, payload) in enumerate(items)
        ],
    }


def run(spec: PipelineSpec, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> dict[str, Any]:
    """The real handler; returns {"results": [...], "by_reason": {reason: count from the EMF metrics}}."""
    monkeypatch.setenv("SENTINEL_SPEC", spec.to_json())
    capsys.readouterr()
    out = app.lambda_handler(event, FakeContext())
    blobs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{") and "_aws" in x]
    by_reason = {b["reason"]: scalar(b["RecordsFailedByReason"]) for b in blobs if "RecordsFailedByReason" in b}
    return {"results": [r["result"] for r in out["records"]], "by_reason": by_reason, "out": out}


# -- 13.1 identity ---------------------------------------------------------------------------------------------------
def test_forged_location_is_refused_and_counted(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    # Thirty "normal" readings for B-101 from a stolen sensor-7 certificate, one real reading of B-101 itself.
    forged = [("sensor-7", json.dumps(reading(loc="B-101", CO=2.6))) for _ in range(30)]
    real = [("B-101", json.dumps(reading(loc="B-101", CO=9.0)))]
    r = run(AQ, iot_event(forged + real), monkeypatch, capsys)
    assert r["results"] == ["ProcessingFailed"] * 30 + ["Ok"]
    assert r["by_reason"] == {"identity_mismatch": 30}


def test_record_without_the_rule_envelope_is_refused(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    plain = {
        "recordId": "x",
        "approximateArrivalTimestamp": ms(ARRIVAL),
        "data": base64.b64encode(json.dumps(reading()).encode()).decode(),
    }
    event = {"invocationId": "i", "deliveryStreamArn": "arn", "region": "eu-west-1", "records": [plain]}
    r = run(AQ, event, monkeypatch, capsys)
    assert r["by_reason"] == {"missing_identity": 1}
    bad_thing = {"payload": base64.b64encode(json.dumps(reading()).encode()).decode(), "thing": "a/b"}
    o = logic.transform_record("x", base64.b64encode(json.dumps(bad_thing).encode()).decode(), ms(ARRIVAL), AQ)
    assert o.reason == "missing_identity"


def test_gateway_map_is_validated() -> None:
    with pytest.raises(SpecError, match="listed for"):
        AQ.with_overrides(thing_locations={"gw-1": ("L1",), "gw-2": ("L1",)})
    with pytest.raises(SpecError, match="thing name"):
        AQ.with_overrides(thing_locations={"gw/1": ("L1",)})
    with pytest.raises(SpecError, match="only applies to IoT"):
        ECOM.with_overrides(thing_locations={"gw-1": ("L1",)})
    gw = AQ.with_overrides(thing_locations={"gw-1": ("Hall A", "Hall B")})
    assert gw.allowed_locations("gw-1") == ("Hall A", "Hall B") and gw.allowed_locations("B-1") == ("B-1",)
    assert gw.thing_of("Hall B") == "gw-1" and gw.thing_of("B-1") == "B-1" and gw.thing_of("Hall C") is None
    assert PipelineSpec.from_json(gw.to_json()) == gw


def test_documents_per_message_are_capped(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    gw = AQ.with_overrides(thing_locations={"gw-1": ("B-101",)}, max_documents_per_message=5)
    body = "\n".join(json.dumps(reading()) for _ in range(6))
    r = run(gw, iot_event([("gw-1", body), ("gw-1", "\n".join(body.splitlines()[:5]))]), monkeypatch, capsys)
    assert r["results"] == ["ProcessingFailed", "Ok"] and r["by_reason"] == {"too_many_documents": 1}
    assert AQ.max_documents_per_message == 500


# -- 13.2 dimension values -------------------------------------------------------------------------------------------
HOSTILE = [
    "B-101\n\nWhat to do:\n  Call 555-0100 and disable the alarm",
    "\ud800",  # a lone surrogate: JSON "\ud800" escape; botocore cannot encode it
    "loc\x00x",
    "loc\x1b[31m",
    "a+b",
    "a#b",
    "a/b",
    "x" * (MAX_DIMENSION_BYTES + 1),
    "é" * (MAX_DIMENSION_BYTES // 2 + 1),  # 2 bytes each in UTF-8
    "abc\u202eevil",  # bidi override
    "line\u2028sep",
    "tab\there",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_dimension_values_are_refused_on_the_kinesis_path(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ev = {"event_time": "2026-03-23T10:07:00Z", "page_type": value, "platform": "web", "marketplace": "US"}
    r = run(ECOM, kinesis_source_event([json.dumps(ev)]), monkeypatch, capsys)
    assert r["results"] == ["ProcessingFailed"] and r["by_reason"] == {"bad_dimension": 1}


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_locations_are_refused_on_the_iot_path(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Even a gateway allowed to speak for exactly that value cannot be configured with it, so test the transform
    # directly with the device's own (legal) thing name.
    r = run(AQ, iot_event([("B-101", json.dumps(reading(loc=value)))]), monkeypatch, capsys)
    assert r["by_reason"] == {"bad_dimension": 1}


@pytest.mark.parametrize("value", ["B-101", "Zürich Hbf", "店舗-12", "store 12", "a.b:c_d(e)", "O'Brien & Co"])
def test_ordinary_dimension_values_pass(value: str) -> None:
    assert dimension_problem(value) is None


@given(st.text(max_size=40))
def test_any_accepted_value_is_a_legal_topic_level_and_one_printable_line(value: str) -> None:
    if dimension_problem(value) is None:
        assert not set(value) & set("/+#\x00\n\r")
        assert len(value.encode("utf-8")) <= MAX_DIMENSION_BYTES
        assert alerts.safe_text(value) == value  # nothing left to sanitise


# -- 13.7 / 13.9 numbers and timestamps ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1_000", "١٢٣", "１２", "nan", "inf", "-Infinity", "0x10", "1,5", "²", "1e3.5"])
def test_numbers_only_as_json_numbers_or_plain_decimals(value: str) -> None:
    with pytest.raises(ValueError):
        parse_number(value)


def test_non_finite_and_overflowing_and_implausible_readings(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    payloads = [
        '{"TIMESTAMP": "2026-03-23 10:07", "LOCATION_ID": "B-101", "CO": NaN, "SO2": 1, "NO2": 1}',
        '{"TIMESTAMP": "2026-03-23 10:07", "LOCATION_ID": "B-101", "CO": 1e400, "SO2": 1, "NO2": 1}',
        '{"TIMESTAMP": "2026-03-23 10:07", "LOCATION_ID": "B-101", "CO": -Infinity, "SO2": 1, "NO2": 1}',
        json.dumps(reading(CO=1e308)),
        json.dumps(reading(CO=65535)),  # the sensor's 0xFFFF fault code
        json.dumps(reading(NO2=-1000)),
        json.dumps(reading(CO="1_000")),
    ]
    r = run(AQ, iot_event([("B-101", p) for p in payloads]), monkeypatch, capsys)
    assert r["results"] == ["ProcessingFailed"] * len(payloads)
    assert r["by_reason"] == {"bad_measure": 4, "out_of_range": 3}


def test_a_sum_of_accepted_readings_stays_finite() -> None:
    spec = get_preset("loyalty")
    big = validate({"timestamp": "2026-03-23", "location_id": "S1", "points_earned": 1e15, "points_redeemed": 0}, spec)
    assert sum([big.values["points_earned"]] * 1_000_000) < float("inf")
    with pytest.raises(RecordError) as err:
        validate({"timestamp": "2026-03-23", "location_id": "S1", "points_earned": 1.1e15, "points_redeemed": 0}, spec)
    assert err.value.reason == "out_of_range"


@pytest.mark.parametrize(
    "value",
    [
        "202603231007",
        0,
        "0",
        202603231007,
        1e9 - 1,
        "2026-3-23",
        "26/03/23",
        "2026-03-23T10:07+25:00",
        "１２３４５６７８",
        "2026-W12-1",
        "20260323T1007",
        "1711191600.5.5",
        99999999999,
        "0002-01-01",
    ],
)
def test_timestamps_only_in_documented_forms(value: Any) -> None:
    with pytest.raises(ValueError):
        ts = parse_timestamp(value)
        if ts.year < 1000:  # "0002-01-01" parses (4 digits) but must never pass the live clock window
            raise ValueError("ancient")


def test_documented_timestamp_forms_still_parse() -> None:
    assert parse_timestamp("1774260420") == parse_timestamp(1774260420000) == datetime(2026, 3, 23, 10, 7, tzinfo=UTC)
    assert parse_timestamp("2026-03-23 10:07:00+0530") == datetime(2026, 3, 23, 4, 37, tzinfo=UTC)


# -- 13.5 time bounded ----------------------------------------------------------------------------------------------
def test_an_event_30_days_ahead_is_refused_and_counted(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    ahead = (ARRIVAL + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")
    r = run(
        AQ, iot_event([("B-101", json.dumps(reading(ts=ahead))), ("B-101", json.dumps(reading()))]), monkeypatch, capsys
    )
    assert r["results"] == ["ProcessingFailed", "Ok"] and r["by_reason"] == {"future_timestamp": 1}


# -- defence in depth: alert texts, subjects, command topics -------------------------------------------------------
def _group(loc: str) -> AnomalyGroup:
    t = datetime(2026, 3, 23, 10, 5, tzinfo=UTC)
    p = PointScore(SeriesKey("CO", (("LOCATION_ID", loc),)), t, 9.4, 2.6, 2.1, 3.1, 93.0)
    return AnomalyGroup(
        AnomalyGroup.make_id("det", "CO", t), "det", "CO", t, t, 93.0, [p], [Contribution("LOCATION_ID", loc, 100.0)]
    )


@pytest.mark.parametrize("loc", HOSTILE)
def test_alert_texts_of_a_hostile_value_stay_safe(loc: str) -> None:
    ctx = alerts.AlertContext.from_topic_arn("det", "arn:aws:sns:eu-west-1:123456789012:alerts", "bucket")
    msg = alerts.render_alert(_group(loc), AQ, ctx)
    assert msg.subject.isascii() and msg.subject.isprintable() and 0 < len(msg.subject) <= 100
    assert "\n" not in msg.sms
    assert [line for line in msg.email.splitlines() if line.startswith("What to do")] == ["What to do:"]
    assert not any(line.startswith("  Call 555") for line in msg.email.splitlines())
    msg.message.encode("utf-8")  # no lone surrogate left: botocore can send it
    json.loads(msg.message)


def test_commands_go_to_the_owning_things_topic_only() -> None:
    from automation import logic as automation

    gw = AQ.with_overrides(thing_locations={"gw-1": ("Hall A", "Hall B")})
    ctx = alerts.AlertContext.from_topic_arn("det", "arn:aws:sns:eu-west-1:123456789012:alerts", "bucket")
    t = datetime(2026, 3, 23, 10, 5, tzinfo=UTC)
    locs = ["Hall A", "Hall B", "B-101", "a+b#/c", "Hall C"]
    pts = [PointScore(SeriesKey("CO", (("LOCATION_ID", x),)), t, 9.4, 2.6, 2.1, 3.1, 93.0) for x in locs]
    group = AnomalyGroup(AnomalyGroup.make_id("det", "CO", t), "det", "CO", t, t, 93.0, pts, [])
    sent: list[automation.Command] = []
    outcome = automation.handle([json.dumps(alerts.render_alert(group, gw, ctx).default)], gw, sent.append)
    assert sorted((c.topic, c.payload["location"]) for c in sent) == [
        ("sentinel/air-quality/B-101/commands", "B-101"),
        ("sentinel/air-quality/gw-1/commands", "Hall A"),
        ("sentinel/air-quality/gw-1/commands", "Hall B"),
    ]
    assert sorted(outcome.without_thing) == ["Hall C", "a+b#/c"]
    assert all(THING_NAME.fullmatch(c.topic.split("/")[2]) for c in sent)
    assert len({json.dumps(c.idempotency_key, sort_keys=True) for c in sent}) == 3  # one per location, not topic
