"""The detector run's interval aggregation (``runner.IntervalValues``) gives exactly what its first, plain version
gave (a SeriesKey per record and measure), whatever the records: the same values (so the same scores), the same
refused, duplicate and wrong-interval counts, the same admission order under the caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from detector import runner
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.detector import Detector
from sentinel_core.intervals import floor_to_interval
from sentinel_core.model import SeriesKey
from sentinel_core.records import Record

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
STEP = 300
DIMS = ("site", "line")
AGG = {"a": "SUM", "b": "AVG", "c": "AVG"}


def reference(records: list[Record], detector: Detector, room: int, dedupe: bool) -> dict[str, Any]:
    """The first release's IntervalValues.add / values, kept verbatim as the definition."""
    cells: dict[SeriesKey, list[float]] = {}
    seen: set[int] = set()
    refused: set[int] = set()
    sample: list[str] = []
    n = wrong = dups = 0
    for rec in records:
        if floor_to_interval(rec.timestamp, STEP) != START:
            wrong += 1
            continue
        if dedupe:
            h = hash((rec.timestamp, rec.dimensions, tuple(sorted(rec.values.items()))))
            if h in seen:
                dups += 1
                continue
            seen.add(h)
        n += 1
        dims = tuple(zip(DIMS, rec.dimensions, strict=True))
        for measure, value in rec.values.items():
            key = SeriesKey(measure, dims)
            cell = cells.get(key)
            if cell is None:
                if not detector.has_series(key.id):
                    if room <= 0:
                        h = hash(key)
                        if h not in refused:
                            refused.add(h)
                            if len(sample) < runner.MAX_LOGGED_IDS:
                                sample.append(key.id)
                        continue
                    room -= 1
                cell = cells[key] = [0.0, 0.0]
            cell[0] += value
            cell[1] += 1.0
    values = {k: (t / c if AGG.get(k.measure, "SUM") == "AVG" else t) for k, (t, c) in cells.items()}
    return {
        "values": values,
        "refused": len(refused),
        "sample": sample,
        "records": n,
        "wrong": wrong,
        "dups": dups,
        "room": room,
    }


_VALUE = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
_RECORD = st.builds(
    lambda minute, dims, values: Record(START + timedelta(minutes=minute), dims, values),
    st.integers(min_value=-2, max_value=7),  # some before or after the interval
    st.tuples(st.sampled_from(["s1", "s2", "s|3"]), st.sampled_from(["l1", "l=2", "l,3", "L1"])),
    st.dictionaries(st.sampled_from(sorted(AGG)), _VALUE, min_size=1, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_RECORD, max_size=40).flatmap(lambda rs: st.permutations(rs + rs[: len(rs) // 3])),  # redeliveries
    st.integers(min_value=0, max_value=12),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(sorted(AGG)), st.sampled_from(["s1", "s2"]), st.sampled_from(["l1", "L1"]))),
)
def test_the_aggregation_is_the_plain_definitions(
    records: list[Record], room: int, dedupe: bool, known: list[tuple[str, str, str]]
) -> None:
    det = Detector(STEP)
    if known:  # series the model holds already are admitted outside the room
        det.score(
            START - timedelta(seconds=STEP), {SeriesKey(m, (("site", s), ("line", ln))): 1.0 for m, s, ln in known}
        )
    want = reference(records, det, room, dedupe)
    acc = runner.IntervalValues(
        start=START, step=STEP, aggregations=AGG, dimensions=DIMS, detector=det, room=room, dedupe=dedupe
    )
    for rec in records:
        acc.add(rec)
    got = acc.values()
    assert got == want["values"]  # the same floats: summed in the same record order
    assert list(got) == sorted(got)  # handed over in series order
    assert (len(acc.refused), acc.refused_sample, acc.records, acc.wrong_interval, acc.duplicates, acc.room) == (
        want["refused"],
        want["sample"],
        want["records"],
        want["wrong"],
        want["dups"],
        want["room"],
    )
    # ... so the detector scores them identically (two detectors in the same state)
    twin = Detector(STEP)
    if known:
        twin.score(
            START - timedelta(seconds=STEP), {SeriesKey(m, (("site", s), ("line", ln))): 1.0 for m, s, ln in known}
        )
    zero = frozenset({"a"})
    assert det.score_interval(START, got, zero_fill=zero) == twin.score_interval(START, want["values"], zero_fill=zero)
