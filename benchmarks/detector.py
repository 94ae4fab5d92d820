"""Detector quality on the simulator's labelled data, and speed / memory per series.

Quality: the simulator's air-quality generator (fixed seed) writes 14 days for 20 locations (60 series) with
labelled spikes, shifts and drifts; every interval is scored in order like the detector Lambda does. An *alert
event* is a run of points of one series at or above the alert threshold (70, the preset's) with gaps of at most
``MERGE`` intervals; it is a true positive when it overlaps a label (from its start to ``TOLERANCE`` intervals
after its end). Per kind: recall = labels detected / labels, precision = TP events of the kind / (those + the
false-positive events in proportion of the kind's labels), F1, and the median time to detect.

Speed: 5,000 series scored in one interval after a warm-up (Lookout's limit is 5,000 series per 5 minutes), on
one core; memory per series with tracemalloc and the gzip JSON state size per series.

NAB (``--nab``): the backtest CLI over the 28 labelled NAB files of ``../shared/nab-dev`` scored with NAB's own
sweeper, all three profiles (a few minutes; the same as ``make nab``).

    python benchmarks/detector.py [--nab]
"""

from __future__ import annotations

import gzip
import json
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

from sentinel_core.aggregate import aggregate  # noqa: E402
from sentinel_core.detector import Detector  # noqa: E402
from sentinel_core.intervals import interval_range, interval_seconds  # noqa: E402
from sentinel_core.model import PointScore, SeriesKey  # noqa: E402
from sentinel_core.records import validate  # noqa: E402
from sentinel_core.spec import get_preset  # noqa: E402

from simulator.datagen import ANOMALY_KINDS, Label, generate_records, plan_anomalies  # noqa: E402

SEED = 7
DAYS = 14
LOCATIONS = 20
EVENTS = 45
THRESHOLD = 70.0
MERGE = 3
TOLERANCE = 6


def quality() -> None:
    spec = get_preset("air-quality")
    step = interval_seconds(spec.interval)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    end = start + timedelta(days=DAYS)
    labels = plan_anomalies(spec, start, end, LOCATIONS, SEED, EVENTS, not_before=start + timedelta(days=4))
    records = [validate(r, spec) for r in generate_records(spec, start, end, LOCATIONS, SEED, labels)]
    by_interval = aggregate(records, spec)
    det = Detector(step)
    points: dict[str, list[PointScore]] = defaultdict(list)
    for ts in interval_range(start, end, step):
        for p in det.score(ts, by_interval.get(ts, {})):
            points[p.series.id].append(p)

    # alert events per series
    events: list[tuple[str, datetime, datetime]] = []
    gap = timedelta(seconds=MERGE * step)
    for sid, pts in points.items():
        cur: list[datetime] = []
        for p in pts:
            if p.score < THRESHOLD:
                continue
            if cur and p.timestamp - cur[-1] > gap:
                events.append((sid, cur[0], cur[-1]))
                cur = []
            cur.append(p.timestamp)
        if cur:
            events.append((sid, cur[0], cur[-1]))
    tol = timedelta(seconds=TOLERANCE * step)

    def matches(label: Label, ev: tuple[str, datetime, datetime]) -> bool:
        return ev[0] == label.series_id and ev[1] <= label.end + tol and ev[2] >= label.start

    fp = sum(1 for ev in events if not any(matches(lb, ev) for lb in labels))
    print(
        f"quality: {len(points)} series x {DAYS} days of PT5M, {len(labels)} labels, "
        f"{len(events)} alert events, {fp} false"
    )
    print(f"{'kind':6} {'labels':>6} {'found':>5} {'recall':>6} {'precision':>9} {'F1':>5} {'detect (median)':>15}")
    for kind in ANOMALY_KINDS:
        mine = [lb for lb in labels if lb.kind == kind]
        if not mine:
            continue
        found, delays = 0, []
        tp_events = 0
        for lb in mine:
            hits = [ev for ev in events if matches(lb, ev)]
            if hits:
                found += 1
                first = min(ev[1] for ev in hits)
                delays.append(max(0.0, (first - lb.start).total_seconds() / 60))
            tp_events += len(hits)
        recall = found / len(mine)
        fp_share = fp * len(mine) / len(labels)
        precision = tp_events / (tp_events + fp_share) if tp_events + fp_share else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        delay = f"{statistics.median(delays):.0f} min" if delays else "-"
        print(f"{kind:6} {len(mine):6d} {found:5d} {recall:6.2f} {precision:9.2f} {f1:5.2f} {delay:>15}")


def speed(series: int = 5000, warm: int = 60, timed: int = 5) -> None:
    rnd = random.Random(SEED)
    keys = [SeriesKey("CO", (("LOCATION_ID", f"L-{i:05d}"),)) for i in range(series)]
    base = [rnd.uniform(1, 100) for _ in keys]
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    det = Detector(300)
    for i in range(warm):
        det.score(t0 + timedelta(minutes=5 * i), {k: b + rnd.gauss(0, 1) for k, b in zip(keys, base, strict=True)})
    mem = (tracemalloc.get_traced_memory()[0] - before) / series
    tracemalloc.stop()
    batches = [{k: b + rnd.gauss(0, 1) for k, b in zip(keys, base, strict=True)} for _ in range(timed)]
    elapsed = []
    for j, batch in enumerate(batches):
        s = time.perf_counter()
        det.score(t0 + timedelta(minutes=5 * (warm + j)), batch)
        elapsed.append(time.perf_counter() - s)
    per = statistics.median(elapsed)
    state = json.dumps(det.to_state(), separators=(",", ":")).encode()
    print(
        f"speed: {series} series in one interval: {per:.2f} s ({series / per:,.0f} series/s, one core); "
        f"memory {mem / 1024:.1f} KiB/series (tracemalloc, after {warm} intervals); "
        f"state {len(state) / series / 1024:.1f} KiB/series JSON, {len(gzip.compress(state)) / series / 1024:.1f} "
        f"KiB/series gzip"
    )


NAB_SCORE = Path(__file__).resolve().parents[1].parent / "shared" / "nab-dev" / "score.py"


def nab() -> None:
    if not NAB_SCORE.exists():
        print(f"nab: {NAB_SCORE} not found, skipped")
        return
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(NAB_SCORE), "backtest", sys.executable], cwd=root, capture_output=True, text=True
    )
    if done.returncode:
        print(f"nab: score.py failed: {(done.stderr or done.stdout)[-500:]}")
        return
    for line in done.stdout.splitlines():
        print(f"nab {line}")


def main() -> None:
    quality()
    speed()
    if "--nab" in sys.argv[1:]:
        nab()


if __name__ == "__main__":
    main()
