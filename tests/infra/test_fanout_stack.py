"""The sharded detector's stack (``detector_shards`` > 1): the schedule starts a state machine whose Map (inline, or
Distributed above 40 shards) runs the shard function with Retry and Catch, then the merge; logs encrypted, X-Ray
on, timeouts under the interval; each role exactly what its function does. Resources are found by marker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sentinel_core import layout

from infra.detector_fanout import INLINE_MAP_MAX_SHARDS, MAX_CONCURRENCY, MERGE_TIMEOUT_SECONDS
from infra.storage import SHARD_RESULTS_DAYS
from tests.infra.conftest import SHARDED
from tests.support.assembly import Synth, SynthCache


def definition(synth: Synth) -> dict[str, Any]:
    """The state machine's ASL with the template's references replaced by ``<logical id>``."""
    _, sm = synth.by_marker("detector-state-machine")
    parts = sm["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else f"<{p['Fn::GetAtt'][0]}>" for p in parts)
    return dict(json.loads(text))


def statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for res in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in res["Properties"]["Roles"]:
            out += res["Properties"]["PolicyDocument"]["Statement"]
    return out


def actions(stmts: list[dict[str, Any]]) -> set[str]:
    return {a for s in stmts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


@pytest.fixture(params=sorted(SHARDED), ids=lambda p: f"{p}-{SHARDED[p]}shards")
def sharded(request: pytest.FixtureRequest, synth_cache: SynthCache) -> Synth:
    return synth_cache(request.param, "builtin", detector_shards=SHARDED[request.param])


def test_the_schedule_starts_the_state_machine(sharded: Synth) -> None:
    sm_id, _ = sharded.by_marker("detector-state-machine")
    _, rule = sharded.by_marker("detector-schedule")
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": sm_id}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2 and "DeadLetterConfig" in target
    assert not sharded.markers() & {"detector"}  # no single detector beside it


def test_plan_map_shard_and_merge(sharded: Synth) -> None:
    shards = sharded.shards()
    asl = definition(sharded)
    states = asl["States"]
    assert asl["StartAt"] == "Plan"
    assert states["Plan"]["Parameters"]["shards.$"] == f"States.ArrayRange(0, {shards - 1}, 1)"
    fan = states["Shards"]
    mode = fan["ItemProcessor"]["ProcessorConfig"]["Mode"]
    assert mode == ("INLINE" if shards <= INLINE_MAP_MAX_SHARDS else "DISTRIBUTED")
    assert fan["MaxConcurrency"] == min(shards, MAX_CONCURRENCY)
    assert fan["ItemSelector"] == {"shard.$": "$$.Map.Item.Value", "time.$": "$.time"}
    score = fan["ItemProcessor"]["States"]["Score shard"]
    shard_id, shard_fn = sharded.by_marker("detector_shard")
    merge_id, merge_fn = sharded.by_marker("detector_merge")
    assert score["Resource"] == f"<{shard_id}>"
    retried = [e for r in score["Retry"] for e in r["ErrorEquals"]]
    assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "States.TaskFailed"} <= set(retried)
    (catch,) = score["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "Shard failed"
    assert fan["ItemProcessor"]["States"]["Shard failed"]["Parameters"]["failed"] is True
    merge = states[fan["Next"]]
    assert merge["Resource"] == f"<{merge_id}>" and merge["Parameters"]["results.$"] == "$.results"
    # Timeouts: each task within its function's, the whole run before the next interval's run
    assert score["TimeoutSeconds"] > shard_fn["Properties"]["Timeout"]
    assert merge["TimeoutSeconds"] > merge_fn["Properties"]["Timeout"] == MERGE_TIMEOUT_SECONDS
    interval = {"air-quality": 300, "ecommerce": 600, "loyalty": 86400}[sharded.preset]
    assert asl["TimeoutSeconds"] <= interval - 60
    assert merge_fn["Properties"]["ReservedConcurrentExecutions"] == 1


def test_logs_are_encrypted_and_traced(sharded: Synth) -> None:
    _, sm = sharded.by_marker("detector-state-machine")
    props = sm["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    (dest,) = props["LoggingConfiguration"]["Destinations"]
    log_id = dest["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    key_id, _ = sharded.by_marker("detector-fanout-logs-key")
    assert sharded.resources[log_id]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_each_role_does_only_its_part(sharded: Synth) -> None:
    spec = sharded.spec()
    _, shard_fn = sharded.by_marker("detector_shard")
    _, merge_fn = sharded.by_marker("detector_merge")
    shard_role = shard_fn["Properties"]["Role"]["Fn::GetAtt"][0]
    merge_role = merge_fn["Properties"]["Role"]["Fn::GetAtt"][0]
    shard_stmts, merge_stmts = statements(sharded, shard_role), statements(sharded, merge_role)
    # the shard never alerts; it writes under the state prefix only
    assert "sns:Publish" not in actions(shard_stmts)
    (write,) = [s for s in shard_stmts if s.get("Sid") == "WriteState"]
    assert json.dumps(write["Resource"]).endswith(f'/{layout.state_prefix(spec)}*"]]}}')
    # the merge reads the shard results and its own state, writes its own state only, and alerts
    assert "sns:Publish" in actions(merge_stmts)
    reads = [s for s in merge_stmts if "s3:GetObject" in actions([s])]
    shown = json.dumps(reads)
    assert layout.shard_results_prefix(spec) in shown and layout.merge_state_key(spec) in shown
    assert layout.live_root(spec) not in shown and layout.historical_prefix(spec) not in shown
    (writes,) = [s for s in merge_stmts if "s3:PutObject" in actions([s])]
    assert json.dumps(writes["Resource"]).endswith(f'/{layout.merge_state_key(spec)}"]]}}')


def test_the_transform_partitions_by_shard(sharded: Synth) -> None:
    if sharded.spec().ingest == "s3":
        pytest.skip("uploads are backtested, not partitioned by Firehose's transform")
    _, stream = sharded.by_marker("delivery-stream")
    prefix = stream["Properties"]["ExtendedS3DestinationConfiguration"]["Prefix"]
    assert prefix == layout.firehose_prefix(sharded.spec(), sharded.shards())
    _, transform = sharded.by_marker("transform")
    assert transform["Properties"]["Environment"]["Variables"]["DETECTOR_SHARDS"] == str(sharded.shards())


def test_the_merge_lists_only_its_state_and_the_shard_results(sharded: Synth) -> None:
    spec = sharded.spec()
    _, merge_fn = sharded.by_marker("detector_merge")
    stmts = statements(sharded, merge_fn["Properties"]["Role"]["Fn::GetAtt"][0])
    (listing,) = [s for s in stmts if "s3:ListBucket" in actions([s])]
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert sorted(prefixes) == sorted([layout.merge_state_key(spec), f"{layout.shard_results_prefix(spec)}*"])


def _lifecycle_rules(synth: Synth) -> list[dict[str, Any]]:
    _, bucket = synth.by_marker("data-bucket")
    return list(bucket["Properties"]["LifecycleConfiguration"]["Rules"])


def test_shard_results_expire_and_one_shard_has_no_such_rule(sharded: Synth, synth_cache: SynthCache) -> None:
    spec = sharded.spec()
    (rule,) = [r for r in _lifecycle_rules(sharded) if r.get("Prefix") == layout.shard_results_prefix(spec)]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == SHARD_RESULTS_DAYS
    single = synth_cache(spec.preset, "builtin")
    assert all(r.get("Id") != "ExpireShardResults" for r in _lifecycle_rules(single))
