"""Anomaly groups: per measure, consecutive intervals, stable ids, contributions adding up to 100 % per dimension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

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
