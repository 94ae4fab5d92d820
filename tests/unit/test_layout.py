"""The S3 layout is one source of truth: Firehose prefix, transform keys, Lookout template and folders agree."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core import layout
from sentinel_core.intervals import DETECTOR_INTERVALS, floor_to_interval, interval_seconds
from sentinel_core.spec import PRESETS, PipelineSpec

from local_aws.firehose import render_firehose_prefix

SPECS = [s.with_overrides(interval=i) for s in PRESETS.values() for i in DETECTOR_INTERVALS]
ARRIVAL = datetime(2026, 3, 23, 23, 59, 30, tzinfo=UTC)


def lookout_render(template: str, start: datetime) -> str:
    """Fill Lookout's {{yyyyMMdd}}/{{HHmm}} placeholders the way the service does."""
    return template.replace("{{yyyyMMdd}}", start.strftime("%Y%m%d")).replace("{{HHmm}}", start.strftime("%H%M"))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.preset}-{s.interval}")
def test_everything_agrees_for_every_interval(spec: PipelineSpec) -> None:
    ts = datetime(2026, 3, 23, 10, 7, 42, tzinfo=UTC)
    start = floor_to_interval(ts, spec.interval)
    keys = layout.partition_keys(ts, spec)
    folder = layout.interval_folder(ts, spec)
    firehose = render_firehose_prefix(layout.firehose_prefix(spec), keys, ARRIVAL)
    lookout = lookout_render(layout.lookout_path_template("bucket", spec), start)
    assert firehose == folder
    assert lookout == f"s3://bucket/{folder}".rstrip("/")
    assert layout.parse_interval_folder(folder + "part-0001", spec) == start
    assert folder.startswith(layout.live_root(spec))
    if interval_seconds(spec.interval) >= 86400:
        assert keys == {"interval_date": "20260323"} and "{{HHmm}}" not in layout.lookout_path_template("b", spec)
    else:
        assert keys["interval_time"] == start.strftime("%H%M")


def test_example_from_issue() -> None:
    spec = PRESETS["air-quality"]
    ts = datetime(2026, 3, 23, 10, 7, tzinfo=UTC)
    assert layout.interval_folder(ts, spec) == "air-quality/live/20260323/1005/"
    assert layout.firehose_prefix(spec) == (
        "air-quality/live/!{partitionKeyFromLambda:interval_date}/!{partitionKeyFromLambda:interval_time}/"
    )
    assert layout.lookout_path_template("b", spec) == "s3://b/air-quality/live/{{yyyyMMdd}}/{{HHmm}}"


@given(st.sampled_from(SPECS), st.datetimes(datetime(1971, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_folder_round_trip_and_order(spec: PipelineSpec, ts: datetime) -> None:
    folder = layout.interval_folder(ts, spec)
    start = floor_to_interval(ts, spec.interval)
    assert layout.parse_interval_folder(folder + "obj", spec) == start
    nxt = layout.interval_folder(start + timedelta(seconds=interval_seconds(spec.interval)), spec)
    assert nxt > folder  # lexicographic key order is time order (S3 listings come back in time order)


def test_error_prefix_and_other_roots() -> None:
    spec = PRESETS["air-quality"]
    rendered = render_firehose_prefix(layout.firehose_error_prefix(spec), {}, ARRIVAL, "processing-failed")
    assert rendered == "air-quality/errors/processing-failed/2026/03/23/"
    roots = {
        layout.live_root(spec),
        layout.historical_prefix(spec),
        layout.error_root(spec),
        layout.state_prefix(spec),
        layout.upload_prefix(spec),
    }
    assert len(roots) == 5
    for a in roots:
        for b in roots - {a}:
            assert not a.startswith(b)  # no root is inside another: listings never mix


def test_render_firehose_prefix_expressions() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert render_firehose_prefix("x/!{timestamp:yyyy-MM-dd HH:mm:ss}/", {}, at) == "x/2026-01-02 03:04:05/"
    assert render_firehose_prefix("!{partitionKeyFromQuery:k}/", {"k": "v"}, at) == "v/"
    assert re.fullmatch(r"\w+/", render_firehose_prefix("!{firehose:random-string}/", {}, at))
    with pytest.raises(KeyError, match="missing"):
        render_firehose_prefix("!{partitionKeyFromLambda:nope}/", {}, at)
    with pytest.raises(ValueError, match="unsupported"):
        render_firehose_prefix("!{bogus:x}/", {}, at)


@pytest.mark.parametrize(
    "key", ["other/live/20260323/1005/x", "air-quality/live/2026/x", "air-quality/live/20261399/1005/x"]
)
def test_parse_interval_folder_rejects(key: str) -> None:
    assert layout.parse_interval_folder(key, PRESETS["air-quality"]) is None
