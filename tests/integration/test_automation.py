"""Automation Lambda against moto: a real alert (formatter -> SNS -> the subscriber's view) becomes one IoT command
per affected location on that location's command topic, once, whatever the retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sentinel_core import alerts
from sentinel_core.model import AnomalyGroup, Contribution, PointScore, SeriesKey
from sentinel_core.spec import get_preset

from local_aws import published_iot, route_account_iot_endpoint
from tests.support.aws import REGION, create_idempotency_table, create_topic_with_queue, drain, lambda_context

T0 = datetime(2022, 3, 20, 10, 5, tzinfo=UTC)


def group_at(locations: list[str], measure: str = "CO") -> AnomalyGroup:
    pts = [
        PointScore(SeriesKey(measure, (("LOCATION_ID", loc),)), T0, 9.4 + i, 2.6, 2.1, 3.1, 93.0 - i)
        for i, loc in enumerate(locations)
    ]
    share = 100.0 / len(locations)
    return AnomalyGroup(
        group_id=AnomalyGroup.make_id("det", measure, T0),
        detector_id="det",
        measure=measure,
        start=T0,
        end=T0,
        score=93.0,
        points=pts,
        contributions=[Contribution("LOCATION_ID", loc, share) for loc in locations],
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with mock_aws(), route_account_iot_endpoint():
        topic, queue = create_topic_with_queue()
        table = create_idempotency_table()
        monkeypatch.setenv("IDEMPOTENCY_TABLE", table)
        monkeypatch.setenv("SENTINEL_SPEC", get_preset("air-quality").to_json())
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sentinel-automation")
        from automation import app

        app.runtime.cache_clear()
        yield {"topic": topic, "queue": queue}
        app.runtime.cache_clear()


def delivered_event(topic: str, queue: str, group: AnomalyGroup) -> dict[str, Any]:
    """Publish the alert like the detector does and build the Lambda SNS event from what SNS delivered."""
    spec = get_preset("air-quality")
    ctx = alerts.AlertContext.from_topic_arn("det", topic, "bucket")
    msg = alerts.render_alert(group, spec, ctx, T0)
    boto3.client("sns", region_name=REGION).publish(**msg.publish_kwargs(topic))
    (envelope,) = drain(queue)
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "Sns": {"Type": "Notification", "TopicArn": topic, "Message": envelope["Message"]},
            }
        ]
    }


def test_alert_becomes_one_command_per_location(aws: dict[str, str]) -> None:
    from automation import app

    event = delivered_event(aws["topic"], aws["queue"], group_at(["B-101", "A-1002"]))
    result = app.lambda_handler(event, lambda_context())
    assert result["alerts"] == 1
    sent = published_iot()
    assert [t for t, _ in sent] == ["sentinel/air-quality/B-101/commands", "sentinel/air-quality/A-1002/commands"]
    first = json.loads(sent[0][1])
    assert first["action"] == "ventilate"
    assert first["measure"] == "CO"
    assert first["severity"] == 93.0
    assert json.loads(sent[1][1])["severity"] == 92.0  # each location's own severity
    assert first["alertEventId"].endswith(f"event/{group_at(['B-101']).group_id}-20220320T1005Z")
    assert "B-101" in first["reason"] and "9.4 ppm" in first["reason"] and "expected 2.6" in first["reason"]


def test_a_silent_series_alert_sends_no_device_command(aws: dict[str, str]) -> None:
    from automation import app

    group = group_at(["B-101"])
    group.kind = "silent"
    event = delivered_event(aws["topic"], aws["queue"], group)
    result = app.lambda_handler(event, lambda_context())
    assert result["alerts"] == 1 and result["commands"] == [] and result["ignored_silent"] == 1
    assert published_iot() == []


def test_redelivered_alert_sends_no_second_command(aws: dict[str, str]) -> None:
    from automation import app

    event = delivered_event(aws["topic"], aws["queue"], group_at(["B-101"]))
    app.lambda_handler(event, lambda_context())
    app.lambda_handler(event, lambda_context())  # SNS at-least-once: the same alert again
    assert len(published_iot()) == 1


def test_non_iot_preset_is_ignored_and_counted(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from automation import app

    event = delivered_event(aws["topic"], aws["queue"], group_at(["B-101"]))
    monkeypatch.setenv("SENTINEL_SPEC", get_preset("loyalty").to_json())
    app.runtime.cache_clear()
    result = app.lambda_handler(event, lambda_context())
    assert result == {"alerts": 1, "commands": [], "ignored_non_iot": 1, "ignored_silent": 0}
    assert published_iot() == []


def test_a_message_that_is_not_an_alert_fails_loudly(aws: dict[str, str]) -> None:
    from automation import app, logic

    event = {"Records": [{"Sns": {"Message": json.dumps({"hello": "world"})}}]}
    with pytest.raises(logic.AlertParseError, match="not a Lookout alert"):
        app.lambda_handler(event, lambda_context())
    assert published_iot() == []
