"""Several alerts on the loyalty backtest job (the upload engine routes the same ``alerts`` as the detector): each
alert's threshold, filters, target and format, each once through the ledger across a redelivered S3 event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sentinel_core import layout, routing
from sentinel_core.alerts import parse_lookout_alert

from tests.integration.test_loyalty_backtest_job import SPEC, _upload, s3_event
from tests.integration.test_loyalty_backtest_job import aws as aws
from tests.integration.test_loyalty_backtest_job import loyalty_file as loyalty_file
from tests.support.aws import create_topic_with_queue, drain, lambda_context


def test_upload_alerts_routed_by_threshold_measure_and_target(
    aws: dict[str, str], loyalty_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backtest_job import app

    team_topic, team_queue = create_topic_with_queue("redemptions-team")
    routes = [
        {"name": "all-stores", "threshold": 91},
        {"name": "redemptions", "threshold": 50, "measures": ["points_redeemed"], "target": team_topic,
         "format": "lookout"},
        {"name": "nowhere", "threshold": 0, "dimensions": {"location_id": ["no-such-store"]}},
    ]  # fmt: skip
    monkeypatch.setenv("ALERT_ROUTES", routing.routes_to_json(routing.parse_routes(routes, SPEC)))
    app.runtime.cache_clear()
    _, summary = loyalty_file
    key = f"{layout.upload_prefix(SPEC)}routes/loyalty.csv"
    _upload(key, summary.file.read_bytes())
    rep = app.lambda_handler(s3_event(key), lambda_context())["files"][0]  # type: ignore[arg-type]
    assert rep["status"] == "ok"

    stack = [json.loads(m["Message"]) for m in drain(aws["QUEUE"])]
    group_alerts = [parse_lookout_alert(d) for d in stack if d.get("type") != "backtestSummary"]
    assert len(stack) - len(group_alerts) == 1  # the file's summary still goes to the stack topic
    assert group_alerts and all(a["anomalyScore"] >= 91 and a["alertName"] == "all-stores" for a in group_alerts)
    team = [parse_lookout_alert(m["Message"]) for m in drain(team_queue)]
    assert team, "no redemption alert at severity 50"
    assert all(a["impactedMetric"]["metricName"] == "points_redeemed" and a["anomalyScore"] >= 50 for a in team)
    assert all("sentinel" not in a and a["alertName"] == "redemptions" for a in team)
    assert rep["alerts_sent"] == 1 + len(group_alerts) + len(team)
    assert rep["alerts_filtered"] >= len(group_alerts)  # "nowhere" filters out every group

    again = app.lambda_handler(s3_event(key), lambda_context())["files"][0]  # type: ignore[arg-type]
    assert again["alerts_sent"] == 0 and again["alerts_already_sent"] == rep["alerts_sent"]
    assert drain(aws["QUEUE"]) == [] and drain(team_queue) == []
