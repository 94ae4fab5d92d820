"""The sharded detector end to end on the local runtime: the synthesized stack's schedule starts the state
machine, its Map runs the real shard Lambdas over their own folders and states, the merge groups across shards and
alerts once. The same data through one detector and through four shards give the same anomaly groups (ids,
scores, contributions, points) and the same alerts; a shard that fails is retried, caught, alarmed (its failure
counted by the merge), the others' anomalies still go out, and it catches up on its next run without sending any
alert twice."""

from __future__ import annotations

import importlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sentinel_core import layout, state_file, store
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline, offline
from simulator.demo.readback import sns_notifications
from tests.support.assembly import SynthCache

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
HISTORY_DAYS = 2
LIVE_HOURS = 3
LOCATIONS = tuple(f"L-{i:02d}" for i in range(10))
SHARDS = 4
SPIKE_K = 20  # the live interval (5 minutes each) of the spike
SILENT_K = 26  # one location stops reporting from this live interval on


def shard_of(loc: str) -> int:
    return state_file.shard_of((loc,), SHARDS)


# Two spiked locations in different shards, and the shard that fails in the failure test.
SPIKED = sorted({shard_of(loc): loc for loc in LOCATIONS}.values())[:2]
FAILING_SHARD = shard_of(SPIKED[0])
SILENT = next(loc for loc in LOCATIONS if loc not in SPIKED)


def reading(spec: PipelineSpec, ts: datetime, loc: str, rng: random.Random, spike: bool) -> dict[str, Any]:
    hour = ts.hour + ts.minute / 60
    base = 1.0 + 0.4 * (1 if 7 <= hour < 19 else 0) + 0.05 * LOCATIONS.index(loc)
    doc: dict[str, Any] = {spec.timestamp_column: ts.strftime("%Y-%m-%d %H:%M:%S"), "LOCATION_ID": loc}
    for i, m in enumerate(spec.measures):
        value = base * (1 + i) + rng.gauss(0, 0.02)
        doc[m.name] = round(value * (6 if spike and m.name == spec.measures[0].name else 1), 4)
    return doc


@dataclass
class Outcome:
    groups: list[dict[str, Any]]
    alerts: list[str]
    executions: list[dict[str, Any]]
    failed_executions: list[dict[str, Any]]
    pipeline_runs: int
    runs: list[tuple[Any, ...]]  # the console's run records: interval, status, counts, every series' scores


def drive(pipeline: LocalPipeline, on_tick: Callable[[int], None] | None = None) -> Outcome:
    """History uploaded, then live readings published interval by interval, the schedule ticking along."""
    spec = PipelineSpec.from_json(next(iter(pipeline.functions.values())).environment["SENTINEL_SPEC"])
    rng = random.Random(7)
    live = T0 + timedelta(days=HISTORY_DAYS)
    lines = []
    ts = T0
    while ts < live:
        lines += [json.dumps(reading(spec, ts, loc, rng, False)) for loc in LOCATIONS]
        ts += timedelta(minutes=5)
    pipeline.upload(pipeline.data_bucket, f"{layout.historical_prefix(spec)}history.json", "\n".join(lines), now=live)
    pipeline.tick(live)
    results: list[tuple[str, datetime, Any]] = []
    for k in range(LIVE_HOURS * 12):
        if on_tick is not None:
            on_tick(k)
        at = live + timedelta(minutes=5 * k, seconds=10)
        for loc in LOCATIONS:
            if loc == SILENT and k >= SILENT_K:
                continue
            spike = loc in SPIKED and k == SPIKE_K
            pipeline.publish(spec.telemetry_topic(loc), reading(spec, at, loc, rng, spike), now=at)
        results += pipeline.tick(at + timedelta(minutes=5))
    results += pipeline.tick(live + timedelta(hours=LIVE_HOURS, minutes=15))
    env = next(fn.environment for fn in pipeline.functions.values() if "ALERT_TOPIC_ARN" in fn.environment)
    found = store.list_groups(pipeline.client("dynamodb"), env["ANOMALY_TABLE"], env["DETECTOR_ID"], limit=1000)
    arn = env["ALERT_TOPIC_ARN"]
    stored, _ = store.query_runs(pipeline.client("dynamodb"), env["ANOMALY_TABLE"], env["DETECTOR_ID"], None, None)
    runs = [(r.interval, r.status, r.counts, r.late, r.scores_truncated, r.scores()) for r in stored]
    return Outcome(
        groups=sorted((g.to_dict() for g in found), key=lambda g: g["group_id"]),
        alerts=[m for m, _ in sns_notifications(pipeline, arn)],
        executions=[r for _, _, r in results if isinstance(r, dict) and "status" in r and "output" in r],
        failed_executions=[r for _, _, r in results if isinstance(r, dict) and r.get("status") == "FAILED"],
        pipeline_runs=len(results),
        runs=runs,
    )


def run(synth_cache: SynthCache, patch: Callable[[int], None] | None = None, **context: Any) -> Outcome:
    with offline(LocalPipeline.from_assembly(synth_cache("air-quality", **context).outdir)) as pipeline:
        return drive(pipeline, patch)


@pytest.fixture(scope="module")
def single(synth_cache: SynthCache) -> Outcome:
    return run(synth_cache)


@pytest.fixture(scope="module")
def sharded(synth_cache: SynthCache) -> Outcome:
    return run(synth_cache, detector_shards=SHARDS)


def _without_feedback(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in g.items() if k != "feedback"} for g in groups]


def test_four_shards_give_the_groups_and_alerts_of_one_detector(single: Outcome, sharded: Outcome) -> None:
    assert SPIKED and shard_of(SPIKED[0]) != shard_of(SPIKED[1])  # the spike spans two shards
    kinds = {g["kind"] for g in single.groups}
    assert single.groups and kinds == {"anomaly", "silent"}, single.groups
    spiked_group = [g for g in single.groups if {p["series"].split("=")[-1] for p in g["points"]} >= set(SPIKED)]
    assert spiked_group, "one group holds both spiked locations (across shards)"
    assert single.alerts
    assert _without_feedback(sharded.groups) == _without_feedback(single.groups)
    assert sharded.alerts == single.alerts
    # the console's executions, data quality and time series read the same run records
    assert len(single.runs) >= LIVE_HOURS * 12 and sharded.runs == single.runs
    assert sharded.executions and all(e["status"] == "SUCCEEDED" for e in sharded.executions)
    assert all(e["output"]["shards_failed"] == 0 for e in sharded.executions)


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """Shard FAILING_SHARD raises on the runs that score the spike's interval and the next (retried, then caught),
    then recovers. Patched in the ``detector.shard`` module the local runtime's handlers use (a cold start of the
    single detector re-imports the ``detector`` package from its asset)."""
    state: dict[str, Any] = {"tick": 0, "patched": None}

    def tick(k: int) -> None:
        state["tick"] = k
        module = importlib.import_module("detector.shard")
        if state["patched"] is module:
            return
        real = module.run_shard

        def flaky(clients: Any, settings: Any, closed: datetime, *a: Any, **kw: Any) -> Any:
            if settings.shard == FAILING_SHARD and SPIKE_K + 1 <= state["tick"] <= SPIKE_K + 2:
                raise ConnectionError(f"shard {settings.shard}: S3 unreachable")
            return real(clients, settings, closed, *a, **kw)

        monkeypatch.setattr(module, "run_shard", flaky)
        state["patched"] = module

    yield tick


def test_a_failing_shard_is_caught_and_catches_up_without_duplicates(
    synth_cache: SynthCache, single: Outcome, failing: Callable[[int], None]
) -> None:
    out = run(synth_cache, failing, detector_shards=SHARDS)
    failed_runs = [e for e in out.executions if e["output"]["shards_failed"]]
    assert len(failed_runs) == 2 and all(e["status"] == "SUCCEEDED" for e in out.executions)
    assert all(e["output"]["failed_shards"] == [FAILING_SHARD] for e in failed_runs)
    assert any(e["retries"] for e in failed_runs)  # the iteration was retried before it was caught
    caught_up = [e for e in out.executions if e["output"]["late_intervals"]]
    assert caught_up, "the failed shard's missed intervals were merged when it caught up"
    # The other shard's spiked location was grouped and alerted while FAILING_SHARD was down.
    spiked = [g for g in out.groups if g["kind"] == "anomaly" and any(SPIKED[1] in p["series"] for p in g["points"])]
    assert spiked
    # ... and the failed shard's spike joined the group when it caught up: the same group as one detector's
    ours = {g["group_id"]: g for g in out.groups}
    for g in single.groups:
        if g["kind"] == "anomaly" and any(SPIKED[0] in p["series"] for p in g["points"]):
            assert g["group_id"] in ours
            assert {p["series"] for p in ours[g["group_id"]]["points"]} == {p["series"] for p in g["points"]}
    # No alert twice: each (group, interval, alert) once
    keys = [_alert_key(m) for m in out.alerts]
    assert len(keys) == len(set(keys)), keys
    assert {k[0] for k in keys} <= {g["group_id"] for g in out.groups}


def _alert_key(message: str) -> tuple[str, str]:
    doc = json.loads(json.loads(message)["default"])
    return str(doc["anomalyGroupId"]), str(doc["timestamp"])


@pytest.fixture
def failing_merge(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], None]]:
    """The merge raises on the run that scores the spike (a function error: not one of the transient Lambda errors
    the merge task retries, so the execution fails), then recovers. The shards' results of that run are written;
    their states moved on."""
    state: dict[str, Any] = {"tick": 0, "patched": None, "raised": 0}

    def tick(k: int) -> None:
        state["tick"] = k
        module = importlib.import_module("detector.merge")
        if state["patched"] is module:
            return
        real = module.run_merge

        def broken(clients: Any, settings: Any, closed: datetime, items: Any) -> Any:
            if state["tick"] == SPIKE_K + 1:
                state["raised"] += 1
                raise ConnectionError("DynamoDB unreachable")
            return real(clients, settings, closed, items)

        monkeypatch.setattr(module, "run_merge", broken)
        state["patched"] = module

    tick.state = state  # type: ignore[attr-defined]
    yield tick


def test_a_merge_that_fails_for_good_is_made_up_by_the_next_one(
    synth_cache: SynthCache, single: Outcome, failing_merge: Callable[[int], None]
) -> None:
    out = run(synth_cache, failing_merge, detector_shards=SHARDS)
    assert failing_merge.state["raised"] >= 1  # type: ignore[attr-defined]
    assert [e for e in out.failed_executions if "DynamoDB unreachable" in str(e.get("cause"))], "a failed execution"
    made_up = [e for e in out.executions if e["status"] == "SUCCEEDED" and e["output"].get("earlier_results")]
    assert made_up and made_up[0]["output"]["earlier_results"] == SHARDS
    # The spike the failed run scored is grouped and alerted as one detector does, once.
    assert _without_feedback(out.groups) == _without_feedback(single.groups)
    assert sorted(out.alerts) == sorted(single.alerts)
