"""The offline console's state file: a demo's table items (binary attributes too), indexes and detector state
survive the round trip into a fresh moto; a missing or foreign file is a clear not-found error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sentinel_core import environment as env
from sentinel_core import layout, store
from sentinel_core.spec import get_preset

from simulator.console_state import STATE_FILE, ConsoleState, ConsoleStateError
from simulator.errors import EXIT_NOT_FOUND
from tests.integration.test_console_api import DETECTOR, GROUPS, TABLE, create_table, make_group
from tests.support.aws import REGION

SPEC = get_preset("air-quality")
BUCKET = "demo-data"
ENV = {
    env.SENTINEL_SPEC: SPEC.to_json(),
    env.ANOMALY_TABLE: TABLE,
    env.DATA_BUCKET: BUCKET,
    env.DETECTOR_ID: DETECTOR,
    env.ALERT_TOPIC_ARN: f"arn:aws:sns:{REGION}:123456789012:demo-alerts",
}


def clients() -> tuple[Any, Any, Any]:
    return tuple(boto3.client(s, region_name=REGION) for s in ("dynamodb", "s3", "sns"))


def test_a_demo_state_round_trips_into_a_fresh_moto(tmp_path: Path) -> None:
    with mock_aws():
        ddb, s3, _ = clients()
        create_table(ddb)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        for g in GROUPS:
            store.save_group(ddb, TABLE, g)
        store.save_state(s3, BUCKET, SPEC, {"format": 1, "detector": {"x": 1}}, [("CO|LOCATION_ID=B-101", b"\x01\x02")])
        path = ConsoleState.capture(ddb, s3, ENV, REGION).save(tmp_path / STATE_FILE)
    with mock_aws():
        ddb, s3, sns = clients()
        ConsoleState.load(path).restore(ddb, s3, sns)
        found, _ = store.query_groups(ddb, TABLE, DETECTOR, limit=100)
        assert sorted(g.group_id for g in found) == sorted(g.group_id for g in GROUPS)  # the index came back
        assert store.get_group(ddb, TABLE, DETECTOR, GROUPS[3].group_id) == make_group(3)
        assert store.load_state(s3, BUCKET, SPEC) == {
            "format": 1,
            "detector": {"x": 1, "series": {"CO|LOCATION_ID=B-101": "AQI="}},
        }
        assert layout.state_prefix(SPEC) in next(iter(ConsoleState.load(path).objects))


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"format": 99})])
def test_no_usable_state_says_to_run_the_demo(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / STATE_FILE
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConsoleStateError, match="make demo") as info:
        ConsoleState.load(path)
    assert info.value.exit_code == EXIT_NOT_FOUND
