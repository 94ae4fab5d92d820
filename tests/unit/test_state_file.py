"""The compact state file: per-series records round-trip exactly (identical scores after a save and load), the
file streams, damage is a clear error, shards are stable."""

from __future__ import annotations

import gzip
import io
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core import state_file
from sentinel_core.detector import Detector
from sentinel_core.model import SeriesKey

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def trained(n_series: int, intervals: int, seed: int = 1) -> Detector:
    rng = random.Random(seed)
    det = Detector(300)
    keys = [SeriesKey("CO", (("LOCATION_ID", f"L-{i}"),)) for i in range(n_series)]
    for t in range(intervals):
        det.score(
            T0 + timedelta(minutes=5 * t),
            {
                k: 2 + math.sin(t / 20 + i) + rng.gauss(0, 0.1) + (9 if t == intervals - 5 and i == 0 else 0)
                for i, k in enumerate(keys)
            },
        )
    return det


def round_trip(det: Detector) -> Detector:
    blob = state_file.to_bytes({"detector": det.to_state_header()}, det.iter_series_bytes())
    f = gzip.GzipFile(fileobj=io.BytesIO(blob))
    header = state_file.read_header(f)
    back = Detector.from_state({**header["detector"], "series": {}})
    for sid, rec in state_file.read_records(f):
        back.load_series(sid, rec)
    return back


def test_a_saved_and_loaded_detector_scores_identically() -> None:
    det = trained(5, 700)  # more than two days: seasonal profiles in use, held points, histograms filled
    back = round_trip(det)
    assert repr(back.to_state()) == repr(det.to_state())
    nxt = {SeriesKey("CO", (("LOCATION_ID", f"L-{i}"),)): 2.5 + i for i in range(5)}
    at = T0 + timedelta(minutes=5 * 700)
    assert det.score(at, nxt) == back.score(at, nxt)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=40), st.binary(max_size=5000), max_size=20))
def test_any_records_stream_back_in_order(records: dict[str, bytes]) -> None:
    header = {"format": 1, "scored": {"2024-01-01T00:00:00+00:00": ["k"]}}
    blob = state_file.to_bytes(header, sorted(records.items()))
    f = gzip.GzipFile(fileobj=io.BytesIO(blob))
    assert state_file.read_header(f) == header
    assert list(state_file.read_records(f)) == sorted(records.items())


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"NOPE\x01", "not a version"),
        (state_file.MAGIC + b"\x01\x10\x00\x00\x00{}", "cut short"),
    ],
)
def test_damaged_files_are_clear_errors(blob: bytes, message: str) -> None:
    with pytest.raises(state_file.StateFileError, match=message):
        state_file.read_header(io.BytesIO(blob))


def test_damaged_records_are_clear_errors() -> None:
    f = io.BytesIO(b"\x05\x00ab")
    with pytest.raises(state_file.StateFileError, match="cut short"):
        list(state_file.read_records(f))


def test_shards_are_stable_and_spread() -> None:
    assert state_file.shard_of(["B-101"], 1) == 0
    assert state_file.shard_of(["B-101"], 16) == state_file.shard_of(["B-101"], 16)
    assert state_file.shard_of(["B-101", "web"], 16) == 11  # pinned: a release must never move a series
    counts = [0] * 8
    for i in range(8000):
        counts[state_file.shard_of([f"L-{i}"], 8)] += 1
    assert min(counts) > 800
    with pytest.raises(ValueError, match="at least 1"):
        state_file.shard_of(["x"], 0)
