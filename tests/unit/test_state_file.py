"""The compact state file: per-series records round-trip exactly (identical scores after a save and load), the
file streams, damage is a clear error, shards are stable."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import math
import random
import struct
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


# ------------------------------------------------------------------------------------------------------------------
# The blocked writer and reader (issue 16 performance work): the same bytes and the same records as one call per record
# ------------------------------------------------------------------------------------------------------------------
def _reference_file(header: dict[str, object], records: list[tuple[str, bytes]]) -> bytes:
    """The file as the first release wrote it: one gzip write per record (the format's plain definition)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=state_file.COMPRESS_LEVEL, mtime=0) as gz:
        head = json.dumps(header, separators=(",", ":")).encode()
        gz.write(state_file.MAGIC + bytes([state_file.FILE_VERSION]) + struct.pack("<I", len(head)) + head)
        for sid, blob in records:
            key = sid.encode()
            gz.write(struct.pack("<H", len(key)) + key + struct.pack("<I", len(blob)) + blob)
    return out.getvalue()


def _reference_records(raw: bytes) -> list[tuple[str, bytes]]:
    """Records cut out of the decompressed bytes after the header, by the format's definition."""
    (n,) = struct.unpack_from("<I", raw, 5)
    pos, out = 9 + n, []
    while pos < len(raw):
        (k,) = struct.unpack_from("<H", raw, pos)
        sid = raw[pos + 2 : pos + 2 + k].decode()
        (m,) = struct.unpack_from("<I", raw, pos + 2 + k)
        out.append((sid, raw[pos + 6 + k : pos + 6 + k + m]))
        pos += 6 + k + m
    return out


_RECORDS = st.dictionaries(st.text(min_size=1, max_size=30), st.binary(max_size=3000), max_size=25).map(
    lambda d: sorted(d.items())
)


@settings(max_examples=60, deadline=None)
@given(_RECORDS, st.integers(min_value=1, max_value=9000))
def test_blocked_writer_and_reader_give_the_formats_bytes_and_records(
    records: list[tuple[str, bytes]], block: int
) -> None:
    header: dict[str, object] = {"format": 1, "detector": {"last": 7}}
    blob = state_file.to_bytes(header, records)
    assert blob == _reference_file(header, records)  # byte-identical to one write per record
    f = gzip.GzipFile(fileobj=io.BytesIO(blob))
    assert state_file.read_header(f) == header
    got = list(state_file.read_records(f, block=block))  # any block size: records straddle the block edges
    assert got == records == _reference_records(gzip.decompress(blob))
    assert state_file.to_bytes(header, got) == blob  # read back and written again: the same file


@settings(max_examples=40, deadline=None)
@given(_RECORDS.filter(bool), st.integers(min_value=1, max_value=64), st.data())
def test_a_stream_cut_anywhere_gives_whole_records_then_a_clear_error(
    records: list[tuple[str, bytes]], block: int, data: st.DataObject
) -> None:
    body = b"".join(
        len(k.encode()).to_bytes(2, "little") + k.encode() + len(v).to_bytes(4, "little") + v for k, v in records
    )
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    ends = set(itertools.accumulate(6 + len(k.encode()) + len(v) for k, v in records))
    reader = state_file.read_records(io.BytesIO(body[:cut]), block=block)
    if cut in ends or cut == 0:  # a cut at a record's end reads as a shorter file (the gzip trailer catches that)
        assert list(reader) == records[: sorted(ends | {0}).index(cut)]
    else:
        with pytest.raises(state_file.StateFileError, match="cut short"):
            list(reader)


def test_a_detectors_state_round_trips_byte_identically_and_scores_the_same() -> None:
    det = trained(40, 700, seed=3)
    header = {"detector": det.to_state_header()}
    blob = state_file.to_bytes(header, det.iter_series_bytes())
    back = round_trip(det)
    assert state_file.to_bytes({"detector": back.to_state_header()}, back.iter_series_bytes()) == blob
    at = T0 + timedelta(minutes=5 * 700)
    nxt = {SeriesKey("CO", (("LOCATION_ID", f"L-{i}"),)): 2.0 + (6 if i % 7 == 0 else 0) for i in range(40)}
    assert det.score(at, nxt) == back.score(at, nxt)
