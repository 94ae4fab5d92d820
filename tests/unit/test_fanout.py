"""The sharded detector's plain parts: shard assignment, the shard result file, merging shard results, the layout's
shard keys and the derived shard count."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core import capacity, fanout, groups, layout, state_file
from sentinel_core.model import PointScore, SeriesKey, SilentSeries
from sentinel_core.spec import get_preset

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STEP = 300
SPEC = get_preset("ecommerce")  # three dimensions: the shard of a record is the hash of all of them


# -- shard assignment ---------------------------------------------------------------------------------------------
def test_shard_of_is_stable_across_processes_and_releases() -> None:
    """BLAKE2b of the values: fixed numbers (a change here would move every series to another shard)."""
    assert state_file.shard_of(("B-101",), 1) == 0
    pinned = {v: state_file.shard_of((v,), 16) for v in ("B-101", "B-102", "checkout")}
    assert pinned == {"B-101": 3, "B-102": 14, "checkout": 0}
    assert state_file.shard_of(("checkout", "web", "US"), 20) == 10
    assert len({state_file.shard_of(("a", "b"), 1000), state_file.shard_of(("ab",), 1000)}) == 2  # separator


@pytest.mark.parametrize("shards", [2, 4, 20, 64])
def test_shards_are_balanced(shards: int) -> None:
    """50,000 series over n shards: every shard within 5 standard deviations of the mean (binomial)."""
    n = 50_000
    counts = Counter(state_file.shard_of((f"dev-{i}", "site"), shards) for i in range(n))
    mean = n / shards
    sd = math.sqrt(n * (1 / shards) * (1 - 1 / shards))
    assert set(counts) == set(range(shards))
    assert max(abs(c - mean) for c in counts.values()) < 5 * sd


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3), st.integers(1, 200))
def test_shard_of_is_in_range(values: list[str], shards: int) -> None:
    assert 0 <= state_file.shard_of(values, shards) < shards


def test_derived_shard_count() -> None:
    assert capacity.shards_for(1) == 1
    assert capacity.shards_for(36_000) == 1  # 90 % of the default 40,000
    assert capacity.shards_for(36_001) == 2
    assert capacity.shards_for(1_000_000, 60_000) == 19
    with pytest.raises(ValueError):
        capacity.shards_for(0)


# -- layout -------------------------------------------------------------------------------------------------------
def test_one_shard_keeps_todays_keys() -> None:
    spec = get_preset("air-quality")
    assert layout.firehose_prefix(spec) == layout.firehose_prefix(spec, 1)
    assert "shard" not in layout.firehose_prefix(spec, 1)
    assert layout.partition_keys(T0, spec) == {"interval_date": "20260302", "interval_time": "1000"}
    assert layout.state_key(spec) == "air-quality/detector/model/state.bin.gz"
    assert layout.records_folder(T0, spec, None) == layout.interval_folder(T0, spec)


def test_shard_keys() -> None:
    spec = get_preset("air-quality")
    assert layout.firehose_prefix(spec, 4).endswith("/shard=!{partitionKeyFromLambda:shard}/")
    assert layout.partition_keys(T0, spec, 7)["shard"] == "0007"
    assert layout.shard_folder(T0, spec, 7) == "air-quality/live/20260302/1000/shard=0007/"
    assert layout.parse_interval_folder(layout.shard_folder(T0, spec, 7) + "x.json", spec) == T0
    assert layout.state_key(spec, 7) == "air-quality/detector/model/shard=0007/state.bin.gz"
    result = layout.shard_result_key(spec, T0, 3)
    assert result.startswith(layout.shard_results_prefix(spec)) and result.startswith(layout.state_prefix(spec))
    assert layout.merge_state_key(spec).startswith(layout.state_prefix(spec))


# -- results and merging ------------------------------------------------------------------------------------------
LOCATIONS = [f"L{i}" for i in range(12)]
MEASURES = ["views", "carts"]


def _series(measure: str, loc: str) -> SeriesKey:
    return SeriesKey(measure, (("page_type", loc), ("platform", "web"), ("marketplace", "US")))


def _shard(key: SeriesKey, shards: int) -> int:
    return state_file.shard_of([v for _, v in key.dimensions], shards)


point_args = st.tuples(
    st.integers(0, 5),  # interval
    st.sampled_from(MEASURES),
    st.sampled_from(LOCATIONS),
    st.floats(0, 100, allow_nan=False),  # score
    st.floats(-1e6, 1e6, allow_nan=False),  # value
    st.booleans(),  # warming up
)


def _points(raw: list[tuple[int, str, str, float, float, bool]]) -> dict[datetime, list[PointScore]]:
    seen: dict[tuple[int, str, str], PointScore] = {}
    for k, m, loc, score, value, warming in raw:
        ts = T0 + timedelta(seconds=STEP * k)
        seen[(k, m, loc)] = PointScore(_series(m, loc), ts, value, value / 2, value / 2 - 1, value / 2 + 1,
                                       round(score, 2), warming)  # fmt: skip
    out: dict[datetime, list[PointScore]] = {}
    for p in sorted(seen.values(), key=lambda p: (p.timestamp, p.series.id)):
        out.setdefault(p.timestamp, []).append(p)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(point_args, max_size=80), st.integers(2, 6), st.integers(0, 20))
def test_merging_shard_results_groups_like_all_points_at_once(
    raw: list[tuple[int, str, str, float, float, bool]], shards: int, max_scores: int
) -> None:
    """Each shard hands over its points (all, or only the anomalous ones above ``max_scores``), through the file;
    the merge's grouping of the combined points equals grouping every series at once."""
    by_interval = _points(raw)
    expected = groups.build_groups(by_interval, "det", STEP)
    results = []
    for k in range(shards):
        intervals = []
        for start, points in sorted(by_interval.items()):
            mine = [p for p in points if _shard(p.series, shards) == k]
            counts = {"series_seen": len(mine), "anomalies": sum(groups.is_anomalous(p) for p in mine)}
            intervals.append(
                fanout.shard_interval(start, counts, {}, mine, [], groups.ANOMALY_THRESHOLD, max_scores=max_scores)
            )
        results.append(fanout.decode(fanout.encode(fanout.ShardResult(k, T0, intervals))))
    merged = fanout.combine(results)
    tracker = groups.GroupTracker("det", STEP)
    seen = {}
    for start in sorted(merged):
        for g in tracker.update(start, merged[start].points):
            seen[g.group_id] = g
        assert merged[start].counts["series_seen"] == len(by_interval[start])
    got = sorted(seen.values(), key=lambda g: (g.start, g.measure, g.group_id))
    assert [g.to_dict() for g in got] == [g.to_dict() for g in expected]


def test_a_result_round_trips_exactly() -> None:
    key = _series("views", "L1")
    nan = float("nan")
    p = PointScore(key, T0, nan, 1.0 / 3, -0.1, 2e300, 71.25, False)
    q = SilentSeries(key, T0, T0 - timedelta(seconds=900), 3, 12.5, 80.0)
    result = fanout.ShardResult(2, T0, [fanout.ShardInterval(T0, {"records": 4}, {"bad_number": 1}, [p], True, [q])])
    back = fanout.decode(fanout.encode(result))
    (i,) = back.intervals
    assert back.shard == 2 and i.rejected == {"bad_number": 1} and i.counts["records"] == 4
    assert math.isnan(i.points[0].value) and i.points[0].expected == 1.0 / 3 and i.points[0].upper == 2e300
    assert i.silent == [q]


def test_an_unreadable_result_is_a_result_error() -> None:
    for bad in (b"", b"not gzip", fanout.encode(fanout.ShardResult(0, T0))[:-4]):
        with pytest.raises(fanout.ResultError):
            fanout.decode(bad)


def test_a_shard_above_the_run_record_size_hands_over_its_anomalies_only() -> None:
    key = _series("views", "L1")
    points = [PointScore(_series("views", f"X{i}"), T0, 1, 1, 0, 2, 10.0) for i in range(5)]
    points.append(PointScore(key, T0, 9, 1, 0, 2, 90.0))
    small = fanout.shard_interval(T0, {}, {}, points, [], 50.0, max_scores=10)
    large = fanout.shard_interval(T0, {}, {}, points, [], 50.0, max_scores=5)
    assert small.all_scores and len(small.points) == 6
    assert not large.all_scores and [p.series for p in large.points] == [key]
    merged = fanout.combine([fanout.ShardResult(0, T0, [small]), fanout.ShardResult(1, T0, [large])])
    assert not merged[T0].all_scores  # the run record says its scores are the anomalous ones only


def test_a_large_shard_hands_over_the_points_groups_keep() -> None:
    """Above MAX_SCORES series a shard hands over, per measure, the last MAX_GROUP_POINTS anomalous points by
    series id: 3 shards of 3,000 anomalous series each group exactly like the 9,000 at once (a group keeps only
    the newest MAX_GROUP_POINTS), while the merge reads at most 3 x MAX_GROUP_POINTS points."""
    every = [
        PointScore(_series(m, f"S{i:05d}"), T0, float(i), 0.0, -1.0, 1.0, 60.0 + (i * 7919) % 40)
        for i in range(9000)
        for m in ("views", "carts")
    ]
    expected = groups.build_groups({T0: sorted(every, key=lambda p: p.series.id)}, "det", STEP)
    results = []
    for k in range(3):
        mine = [p for p in every if int(p.series.dimensions[0][1][1:]) % 3 == k]
        i = fanout.shard_interval(T0, {"anomalies": len(mine)}, {}, mine, [], groups.ANOMALY_THRESHOLD)
        assert not i.all_scores and len(i.points) == 2 * groups.MAX_GROUP_POINTS
        results.append(fanout.decode(fanout.encode(fanout.ShardResult(k, T0, [i]))))
    merged = fanout.combine(results)
    got = groups.GroupTracker("det", STEP).update(T0, merged[T0].points)
    assert [g.to_dict() for g in got] == [g.to_dict() for g in expected]
    assert merged[T0].counts["anomalies"] == len(every)
