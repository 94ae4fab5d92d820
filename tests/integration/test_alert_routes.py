"""Several alerts per detector (the ``alerts`` context key) on the real detector handler, against moto: each alert
with its own threshold, filters, target and format, each sent once through the ledger."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sentinel_core import alerts, routing, store

from tests.integration.test_detector_handler import DETECTOR, LIVE, SPEC, Env
from tests.integration.test_detector_handler import env as env
from tests.support.aws import REGION, create_topic_with_queue, drain

FN = "arn:aws:lambda:eu-west-1:123456789012:function:open-ticket"


def use_routes(monkeypatch: pytest.MonkeyPatch, routes: list[dict[str, Any]]) -> None:
    from detector import app

    monkeypatch.setenv("ALERT_ROUTES", routing.routes_to_json(routing.parse_routes(routes, SPEC)))
    app.runtime.cache_clear()


def test_alerts_routed_to_two_targets_with_different_thresholds_and_filters(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_topic, team_queue = create_topic_with_queue("facilities-team")
    use_routes(
        monkeypatch,
        [
            {"name": "everyone", "threshold": 50},  # the stack topic, the readable texts
            {"name": "facilities", "threshold": 60, "dimensions": {"LOCATION_ID": ["B-101"]}, "target": team_topic,
             "format": "lookout"},
            {"name": "other-site", "threshold": 10, "dimensions": {"LOCATION_ID": ["C-7"]}, "target": team_topic},
            {"name": "no2-only", "threshold": 50, "measures": ["NO2"]},
            {"name": "severe", "threshold": 90},  # the same group, too mild for this one
        ],
    )  # fmt: skip
    env.put_interval(LIVE, spike=2.74)  # CO at B-101, a mild spike (after 15 days of seeded history it scores 69.4)
    report = env.invoke(LIVE)
    (group,) = store.list_groups(env.ddb, env.table, DETECTOR)
    assert 60 <= group.score < 90, group.score  # between the thresholds of "facilities" and "severe"
    assert report["alerts_sent"] == 2 and report["alerts_filtered"] == 2  # other-site and no2-only
    (everyone,) = [alerts.parse_lookout_alert(m["Message"]) for m in drain(env.queue)]
    assert everyone["alertName"] == "everyone" and "sentinel" in everyone
    (facilities,) = [alerts.parse_lookout_alert(m["Message"]) for m in drain(team_queue)]
    assert facilities["alertName"] == "facilities" and "sentinel" not in facilities  # bare Lookout JSON
    assert facilities["alertEventId"] != everyone["alertEventId"]
    # one ledger item per alert name: a replay of the interval (a new run, same state) sends neither again
    for name in ("everyone", "facilities"):
        status = store.alert_status(env.ddb, env.table, DETECTOR, f"{group.group_id}#{name}", LIVE)
        assert status == "SENT"
    from detector import app, runner

    rt = app.runtime()
    raw = store.load_state(env.s3, rt.settings.bucket, SPEC)
    assert raw is not None
    found = [group]
    rerun = runner.RunReport()
    runner.publish_alerts(rt.clients, rt.settings, found, LIVE, rerun)
    assert (rerun.alerts_sent, rerun.alerts_already_sent) == (0, 2)
    assert drain(env.queue) == [] and drain(team_queue) == []


def test_a_lambda_target_is_invoked_once_with_the_lookout_json(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto runs no Lambda without Docker: the invoke is checked on a stubbed client (its exact request)."""
    env.put_interval(LIVE, spike=9.4)
    env.invoke(LIVE)  # the default alert; now route the same group to a function
    (group,) = store.list_groups(env.ddb, env.table, DETECTOR)
    from detector import app

    rt = app.runtime()
    routes = routing.parse_routes([{"name": "tickets", "target": FN, "format": "lookout"}], SPEC)
    client = boto3.client("lambda", region_name=REGION)
    stub = Stubber(client)
    stub.add_response(
        "invoke",
        {
            "StatusCode": 202,
            "Payload": io.BytesIO(b""),
            "ResponseMetadata": {"RequestId": "req-1", "HTTPStatusCode": 202},
        },
        {"FunctionName": FN, "InvocationType": "Event", "Payload": stub_any()},
    )
    ctx = rt.settings.alert_context(rt.settings.bucket)
    with stub:
        first = routing.route_group(rt.clients, rt.settings, routes, group, LIVE, ctx, lambda: client)
        again = routing.route_group(rt.clients, rt.settings, routes, group, LIVE, ctx, lambda: client)
    stub.assert_no_pending_responses()
    assert (first.sent, again.already_sent) == (["tickets"], ["tickets"])


def stub_any() -> Any:
    from botocore.stub import ANY

    return ANY


def test_without_alerts_the_default_alert_keeps_its_ledger_key(env: Env) -> None:
    env.put_interval(LIVE, spike=9.4)
    report = env.invoke(LIVE)
    (group,) = store.list_groups(env.ddb, env.table, DETECTOR)
    assert report["alerts_sent"] == 1
    assert store.alert_status(env.ddb, env.table, DETECTOR, group.group_id, LIVE) == "SENT"
    assert json.loads(drain(env.queue)[0]["Message"])["alertName"] == f"{DETECTOR}-alert"
