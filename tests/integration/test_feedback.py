"""Feedback CLI against moto DynamoDB: stored in the group's map and as a pending item; listing; clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sentinel_core import store
from sentinel_core.model import AnomalyGroup, Contribution, PointScore, SeriesKey
from typer.testing import CliRunner

from simulator.cli import app
from tests.support.aws import REGION, create_anomaly_table

T0 = datetime(2022, 3, 20, 10, 0, tzinfo=UTC)
runner = CliRunner()


def make_group(detector: str = "det-aq") -> AnomalyGroup:
    b101 = SeriesKey("CO", (("LOCATION_ID", "B-101"),))
    a1002 = SeriesKey("CO", (("LOCATION_ID", "A-1002"),))
    pts = [
        PointScore(b101, T0, 9.0, 2.6, 2.1, 3.1, 90),
        PointScore(b101, T0 + timedelta(minutes=5), 9.4, 2.6, 2.1, 3.1, 93),
        PointScore(a1002, T0, 5.0, 2.6, 2.1, 3.1, 75),
    ]
    return AnomalyGroup(
        AnomalyGroup.make_id(detector, "CO", T0),
        detector,
        "CO",
        T0,
        T0 + timedelta(minutes=5),
        93,
        pts,
        [Contribution("LOCATION_ID", "B-101", 70), Contribution("LOCATION_ID", "A-1002", 30)],
    )


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        name = create_anomaly_table()
        store.save_group(boto3.client("dynamodb", region_name=REGION), name, make_group())
        yield name


def test_not_anomaly_is_stored_in_the_group_and_as_pending_feedback(table: str) -> None:
    g = make_group()
    result = runner.invoke(
        app, ["feedback", "--table", table, "--group", g.group_id, "--series", "CO|LOCATION_ID=B-101", "--not-anomaly"]
    )
    assert result.exit_code == 0, result.output
    assert "NOT an anomaly" in result.output
    ddb = boto3.client("dynamodb", region_name=REGION)
    stored = store.get_group(ddb, table, "det-aq", g.group_id)
    assert stored is not None and stored.feedback == {"CO|LOCATION_ID=B-101": False}
    (fb,) = store.list_feedback(ddb, table, "det-aq", pending_only=True)
    assert (fb.series_id, fb.is_anomaly, fb.status) == ("CO|LOCATION_ID=B-101", False, "pending")
    assert fb.timestamps == (T0, T0 + timedelta(minutes=5))
    # re-saving the group (the detector does, while the anomaly goes on) keeps the verdict
    store.save_group(ddb, table, make_group())
    again = store.get_group(ddb, table, "det-aq", g.group_id)
    assert again is not None and again.feedback == {"CO|LOCATION_ID=B-101": False}


def test_anomaly_confirmation_with_stack_outputs_file(table: str, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"SentinelStack": {"AnomalyTableName": table, "DetectorId": "det-aq"}}))
    g = make_group()
    result = runner.invoke(
        app,
        [
            "feedback",
            "--stack-outputs",
            str(outputs),
            "--group",
            g.group_id,
            "--series",
            "CO|LOCATION_ID=A-1002",
            "--anomaly",
        ],
    )
    assert result.exit_code == 0, result.output
    (fb,) = store.list_feedback(boto3.client("dynamodb", region_name=REGION), table, "det-aq")
    assert fb.is_anomaly and fb.timestamps == (T0,)


def test_marking_applied_respects_a_changed_verdict(table: str) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    g = make_group()
    first = store.put_feedback(ddb, table, g, "CO|LOCATION_ID=B-101", False, now=1_700_000_000)
    store.put_feedback(ddb, table, g, "CO|LOCATION_ID=B-101", True, now=1_700_000_060)  # changed their mind
    assert not store.mark_feedback_applied(ddb, table, first, "2026-01-01T00:00:00Z")
    (pending,) = store.list_feedback(ddb, table, "det-aq", pending_only=True)
    assert pending.is_anomaly
    assert store.mark_feedback_applied(ddb, table, pending, "2026-01-01T00:00:00Z")
    assert store.list_feedback(ddb, table, "det-aq", pending_only=True) == []


def test_list_shows_groups_and_series_ids(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["feedback", "--table", table, "--list"])
    assert result.exit_code == 0, result.output
    assert make_group().group_id in result.output
    assert "CO|LOCATION_ID=B-101" in result.output and "CO|LOCATION_ID=A-1002" in result.output


def test_unknown_group_or_series_is_a_clear_error(table: str) -> None:
    g = make_group()
    bad_group = runner.invoke(app, ["feedback", "--table", table, "--group", "nope", "--series", "CO", "--anomaly"])
    assert bad_group.exit_code == 2
    assert "no anomaly group 'nope'" in bad_group.output
    bad_series = runner.invoke(
        app, ["feedback", "--table", table, "--group", g.group_id, "--series", "NO2|LOCATION_ID=B-101", "--anomaly"]
    )
    assert bad_series.exit_code == 2
    assert "is not part of anomaly group" in bad_series.output and "CO|LOCATION_ID=B-101" in bad_series.output


def test_missing_verdict_or_table_is_refused(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    res = runner.invoke(app, ["feedback", "--table", table, "--group", make_group().group_id, "--series", "CO"])
    assert res.exit_code != 0 and "--not-anomaly or --anomaly" in res.output
    monkeypatch.delenv("ANOMALY_TABLE", raising=False)
    res = runner.invoke(app, ["feedback", "--list"])
    assert res.exit_code != 0 and "which anomaly table" in res.output
