"""Detector run pieces without AWS: object parsing (gzip / JSON lines / CSV), interval planning, closed interval."""

from __future__ import annotations

import gzip
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from detector import runner
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.alerts import AlertFilter
from sentinel_core.environment import ConfigError
from sentinel_core.spec import get_preset

AQ = get_preset("air-quality")
LOYALTY = get_preset("loyalty")
T = datetime(2022, 3, 20, 12, 0, tzinfo=UTC)


def cfg(**kw: int) -> runner.Settings:
    return runner.Settings(
        spec=AQ,
        bucket="b",
        topic_arn="arn:aws:sns:eu-west-1:123456789012:t",
        table="tbl",
        detector_id="det",
        offset_seconds=120,
        alert_filter=AlertFilter(),
        **kw,
    )


GOOD = b'{"TIMESTAMP": "2022-03-20 12:01:00", "LOCATION_ID": "B-101", "CO": 2.6, "SO2": 62, "NO2": 57}\n'


def test_json_lines_plain_and_gzip_read_the_same() -> None:
    body = GOOD * 3 + b"\n"
    plain, gz = runner.parse_object(body, AQ), runner.parse_object(gzip.compress(body), AQ)
    assert len(plain.records) == len(gz.records) == 3
    assert plain.records == gz.records and not plain.bad


def test_bad_lines_are_counted_by_reason_and_good_ones_kept() -> None:
    body = GOOD + b"{oops\n" + b'{"TIMESTAMP": "x", "LOCATION_ID": "B", "CO": 1, "SO2": 1, "NO2": 1}\n' + b"[1]\n"
    read = runner.parse_object(body, AQ)
    assert len(read.records) == 1
    assert read.bad == {"not_json": 1, "bad_timestamp": 1, "not_an_object": 1}


def test_csv_objects_are_read_with_the_csv_rules() -> None:
    text = "timestamp,location_id,points_earned,points_redeemed\n2022-03-20,L-1,100,20\n2022-03-21,L-1,abc,3\n"
    read = runner.parse_object(text.encode(), LOYALTY)
    assert [r.values["points_earned"] for r in read.records] == [100.0]
    assert read.bad == {"bad_measure": 1}
    assert runner.parse_object(b"a,b\n1,2\n", LOYALTY).bad == {"bad_csv_header": 1}


def test_unreadable_object_is_counted() -> None:
    assert runner.parse_object(b"\x1f\x8b\x08garbage", AQ).bad == {"unreadable_object": 1}
    assert runner.parse_object(b"", AQ).records == []
    truncated = runner.parse_object(gzip.compress(GOOD * 2000)[:-40], AQ)  # an object cut short
    assert truncated.bad == {"unreadable_object": 1}
    assert 0 < len(truncated.records) < 2000  # what was readable is kept


def test_closed_interval_uses_the_event_time_minus_the_offset() -> None:
    s = cfg()
    assert runner.closed_interval({"time": "2022-03-20T12:07:00Z"}, s) == T  # 12:05 - 5 min
    assert runner.closed_interval({"time": "2022-03-20T12:06:59Z"}, s) == T - timedelta(minutes=5)
    with pytest.raises(ValueError, match="time"):
        runner.closed_interval({}, s)


def test_plan_starts_at_the_closed_interval_when_nothing_was_scored() -> None:
    rep = runner.RunReport()
    assert runner.plan_intervals(None, T, cfg(), rep) == [T]


def test_plan_bounds_each_run_and_skips_an_overlong_backlog() -> None:
    step = timedelta(minutes=5)
    rep = runner.RunReport()
    todo = runner.plan_intervals(T - 10 * step, T, cfg(max_intervals_per_run=4, max_backlog=8), rep)
    assert todo == [T - 7 * step + i * step for i in range(4)]  # the oldest 4 of the newest 8
    assert rep.skipped_intervals == 2 and rep.backlog_left == 4
    assert runner.plan_intervals(T, T, cfg(), runner.RunReport()) == []  # already scored


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=300))
def test_plan_is_in_order_contiguous_bounded_and_ends_at_or_before_closed(behind: int, per_run: int) -> None:
    step = timedelta(minutes=5)
    rep = runner.RunReport()
    todo = runner.plan_intervals(T - behind * step, T, cfg(max_intervals_per_run=per_run), rep)
    assert len(todo) == min(behind, per_run, runner.MAX_BACKLOG)
    assert all(b - a == step for a, b in itertools.pairwise(todo))
    assert not todo or (todo[-1] <= T and todo[0] > T - behind * step)
    assert len(todo) + rep.backlog_left + rep.skipped_intervals == behind


def test_settings_from_env_names_what_is_missing() -> None:
    env = {"SENTINEL_SPEC": AQ.to_json(), "DATA_BUCKET": "b"}
    with pytest.raises(ConfigError, match="ALERT_TOPIC_ARN, ANOMALY_TABLE, DETECTOR_ID"):
        runner.Settings.from_env(env)
    env |= {"ALERT_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t", "ANOMALY_TABLE": "t", "DETECTOR_ID": "d"}
    env["SCHEDULE_OFFSET_SECONDS"] = "2 minutes"
    with pytest.raises(ConfigError, match="SCHEDULE_OFFSET_SECONDS"):
        runner.Settings.from_env(env)
    env["SCHEDULE_OFFSET_SECONDS"] = "150"
    env["ALERT_FILTER"] = '{"measures": ["CO"]}'
    s = runner.Settings.from_env(env)
    assert s.offset_seconds == 150 and s.alert_filter.measures == {"CO"}
