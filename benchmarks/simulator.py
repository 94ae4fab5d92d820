"""Generator speed and memory: 30 days x 100 locations x 5 minutes (~864,000 rows) streamed to disk.

Prints rows/s for the file path (``generate_dataset``: what ``python -m simulator generate`` runs) and for the
dict path (``generate_records``: what the demo and the detector benchmark import), and the process's peak RSS,
which must stay flat because rows are streamed, never held.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# This file is named like the package it measures; drop its own folder from the path so that
# ``import simulator`` finds the package, not this script.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

from sentinel_core.spec import get_preset  # noqa: E402

from simulator.datagen import generate_dataset, generate_records  # noqa: E402


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    spec = get_preset("air-quality")
    start = datetime(2026, 11, 23, tzinfo=UTC)
    base_rss = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = generate_dataset(Path(tmp), spec, days=30, locations=100, seed=1, live_start=start, live_hours=0)
        elapsed = time.perf_counter() - t0
        size_mb = summary.history_file.stat().st_size / 1e6
    rows = summary.history_records
    print(f"generate (files): {rows:,} rows in {elapsed:.2f}s = {rows / elapsed:,.0f} rows/s, {size_mb:.0f} MB JSON")
    print(f"peak RSS after files: {peak_rss_mb():.0f} MB (interpreter + imports before: {base_rss:.0f} MB)")

    t0 = time.perf_counter()
    n = sum(1 for _ in generate_records(spec, start - timedelta(days=30), start, 100, seed=1))
    elapsed = time.perf_counter() - t0
    print(f"generate_records (dicts, in memory, not kept): {n:,} rows in {elapsed:.2f}s = {n / elapsed:,.0f} rows/s")
    print(f"peak RSS at the end: {peak_rss_mb():.0f} MB")
    print("target: well under 10 s for ~864,000 rows, memory flat (streamed)")


if __name__ == "__main__":
    main()
