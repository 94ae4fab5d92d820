"""Anomaly groups: per measure, consecutive intervals, stable ids, contributions adding up to 100 % per dimension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.groups import GroupTracker, build_groups, contributions, is_anomalous, update_groups
from sentinel_core.model import AnomalyGroup, PointScore, SeriesKey
from sentinel_core.spec import get_preset

T0 = datetime(2024, 3, 1, tzinfo=UTC)
STEP = 300


def point(measure: str, loc: str, i: int, score: float, value: float = 10.0, expected: float = 5.0) -> PointScore:
    key = SeriesKey(measure, (("LOCATION_ID", loc),))
    return PointScore(key, T0 + timedelta(seconds=STEP * i), value, expected, expected - 1, expected + 1, score)


def test_groups_continue_over_consecutive_intervals_and_split_by_measure() -> None:
    by = {
        T0: [point("CO", "A", 0, 80), point("NO2", "A", 0, 90), point("CO", "B", 0, 10)],
        T0 + timedelta(seconds=STEP): [point("CO", "B", 1, 95)],
        T0 + timedelta(seconds=2 * STEP): [point("CO", "A", 2, 5)],
        T0 + timedelta(seconds=3 * STEP): [point("CO", "A", 3, 75)],
    }
    groups = build_groups(by, "det", STEP)
    assert [(g.measure, g.start, g.end, g.score) for g in groups] == [
        ("CO", T0, T0 + timedelta(seconds=STEP), 95.0),
        ("NO2", T0, T0, 90.0),
        ("CO", T0 + timedelta(seconds=3 * STEP), T0 + timedelta(seconds=3 * STEP), 75.0),
    ]
    assert groups[0].group_id == AnomalyGroup.make_id("det", "CO", T0)
    assert groups[0].series_ids == ["CO|LOCATION_ID=A", "CO|LOCATION_ID=B"]


def test_warming_up_points_are_never_anomalous() -> None:
    p = point("CO", "A", 0, 99)
    assert is_anomalous(p)
    assert not is_anomalous(PointScore(p.series, p.timestamp, 1, 1, 1, 1, 99, warming_up=True))


@given(
    devs=st.lists(
        st.tuples(st.sampled_from(["A", "B", "C", "D"]), st.floats(0, 1e6, allow_nan=False)), min_size=1, max_size=30
    )
)
@settings(max_examples=80, deadline=None)
def test_contributions_sum_to_100_per_dimension(devs: list[tuple[str, float]]) -> None:
    pts = [point("CO", loc, 0, 90, value=5.0 + dev) for loc, dev in devs]
    contrib = contributions(pts)
    assert {c.value for c in contrib} == {loc for loc, _ in devs}
    assert abs(sum(c.percent for c in contrib) - 100.0) < 0.1
    assert all(0 <= c.percent <= 100 for c in contrib)


def test_contribution_follows_the_deviation() -> None:
    contrib = contributions([point("CO", "A", 0, 90, value=35.0), point("CO", "B", 0, 90, value=15.0)])
    assert [(c.value, c.percent) for c in contrib] == [("A", 75.0), ("B", 25.0)]


def test_update_groups_keeps_open_groups_in_the_lambda_state() -> None:
    spec = get_preset("air-quality")
    state = SimpleNamespace(extra={})
    first = update_groups(state, [point("CO", "A", 0, 80)], "det", spec)
    second = update_groups(state, [point("CO", "B", 1, 85)], "det", spec)
    assert first[0].group_id == second[0].group_id and len(second[0].points) == 2
    assert update_groups(state, [], "det", spec) == []
    third = update_groups(state, [point("CO", "B", 3, 85)], "det", spec)
    assert third[0].group_id != first[0].group_id
    tracker = GroupTracker.from_state(state.extra["groups"])
    assert list(tracker.open) == ["CO"]


def test_silent_series_form_one_silent_group_per_measure_with_a_stable_id() -> None:
    from sentinel_core.groups import silent_groups
    from sentinel_core.model import SilentSeries

    at = T0 + timedelta(seconds=3 * STEP)
    silent = [
        SilentSeries(SeriesKey("CO", (("LOCATION_ID", loc),)), at, T0, 3, exp, 80.0)
        for loc, exp in (("B", 2.5), ("A", 3.0))
    ] + [SilentSeries(SeriesKey("NO2", (("LOCATION_ID", "A"),)), at, T0, 3, 55.0, 80.0)]
    co, no2 = silent_groups("det", silent)
    assert (co.measure, co.kind, co.start, co.end, co.score) == ("CO", "silent", at, at, 80.0)
    assert co.silent and co.series_ids == ["CO|LOCATION_ID=A", "CO|LOCATION_ID=B"]
    assert co.group_id == AnomalyGroup.make_id("det", "CO silent", at) != AnomalyGroup.make_id("det", "CO", at)
    assert [p.value for p in co.points] == [3.0, 2.5]  # no reading: the expected value stands in
    assert no2.measure == "NO2" and silent_groups("det", []) == []
    # build_groups (backtests) adds them beside the value groups; the kind survives a round trip
    by = {at: [point("CO", "A", 3, 90)]}
    groups = build_groups(by, "det", STEP, silent_by_interval={at: silent})
    assert sorted((g.measure, g.kind) for g in groups) == [("CO", "anomaly"), ("CO", "silent"), ("NO2", "silent")]
    assert AnomalyGroup.from_dict(co.to_dict()).kind == "silent"
    old = co.to_dict()
    del old["kind"]  # a group stored before kinds existed is a value anomaly
    assert AnomalyGroup.from_dict(old).kind == "anomaly"
    with pytest.raises(ValueError, match="kind 'odd'"):
        AnomalyGroup.from_dict({**co.to_dict(), "kind": "odd"})
