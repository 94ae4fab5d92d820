"""The detector's WHOLE run per series, in steady state, on moto: state read from S3 and decoded, the interval folder
listed and read, records validated, aggregated, scored, grouped, groups to DynamoDB, alerts, state encoded and saved.

Run: ``.venv/bin/python benchmarks/detector_scale.py [--sizes 5000,50000,200000] [--fanout 1000000:16] [--json]``.

Each size runs in a fresh subprocess (so its memory figures are its own), in two steps:

1. *setup* (not measured): a steady-state model (64 air-quality series of different levels trained for ~2.5
   days, so their seasonal profiles, calibration and histograms are filled, cloned to N series; neighbouring
   records come from different prototypes, so the state does not compress unrealistically) is written as the
   compact state file, and the next PT5M interval's
   data as five Firehose-like gzip JSON-lines objects (every location reports once a minute; 3 measures per
   location, so N / 3 locations);
2. *run* (measured): moto's S3 / DynamoDB / SNS in process, the files uploaded, then ``detector.runner.run`` once.
   CPU is ``time.process_time`` of the run (it includes moto's own S3 work, which a real Lambda does not do, so it
   is an upper bound), wall is ``time.perf_counter``, peak memory is the process's high-water RSS (``ru_maxrss``,
   reached during the run: before it the process only uploaded files) minus its RSS just before the run, per
   series. moto keeps object bodies in this process (the state body read whole, not streamed as from S3), so
   the figure is an upper bound too.

``--fanout TOTAL:SHARDS``: TOTAL series split over SHARDS shard runs executed one after another (each a whole run
over its own state and data, what one shard Lambda does); prints the slowest shard and the total CPU, and the wall
time with shards in parallel (= the slowest shard). ``merge_s`` is null: the cross-shard merge step is not built
yet (see the report of branch ``scale``).

``--json``: the last line is one JSON object with ``series``, ``ms_per_series``, ``peak_kb_per_series``,
``state_bytes_per_series`` (of the largest size run), ``shards``, ``slowest_shard_s``, ``merge_s``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
sys.path.insert(0, str(ROOT / "lambdas"))
for k, v in {
    "POWERTOOLS_METRICS_NAMESPACE": "MetricSentinelBench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}.items():
    os.environ.setdefault(k, v)

REGION = "eu-west-1"
BUCKET = "bench-data"
STEP = 300
CLOSED = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # the interval scored (the state ends one interval before)
TRAIN_INTERVALS = 720  # 2.5 days of PT5M: the seasonal profile is filled and in use
PROTOTYPES = 64  # distinct trained series the state is cloned from (different levels and noise)
MEASURES = ("CO", "SO2", "NO2")


def _page_rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# ----------------------------------------------------------------------------------------------------------------
# Setup (subprocess 1): state file + interval objects on disk
# ----------------------------------------------------------------------------------------------------------------
def setup(n_series: int, out: Path, seed: int = 7) -> dict[str, Any]:
    import math

    from detector.runner import State
    from sentinel_core import state_file
    from sentinel_core.detector import Detector
    from sentinel_core.model import SeriesKey

    rng = random.Random(seed)
    proto = Detector(STEP)
    keys = [SeriesKey("CO", (("LOCATION_ID", f"proto-{i}"),)) for i in range(PROTOTYPES)]
    scale = [0.5 + rng.random() for _ in keys]
    start = CLOSED - timedelta(seconds=STEP * TRAIN_INTERVALS)
    for t in range(TRAIN_INTERVALS):
        at = start + timedelta(seconds=STEP * t)
        hour = at.hour + at.minute / 60
        base = 10 + 2 * math.sin(2 * math.pi * hour / 24)
        proto.score(at, {k: f * base + rng.gauss(0, 0.2) for k, f in zip(keys, scale, strict=True)})
    templates = [proto.series_bytes(k.id) for k in keys]
    locations = [f"L-{i:07d}" for i in range(-(-n_series // len(MEASURES)))]
    header = State(proto).header()
    factors = {loc: scale[i % PROTOTYPES] for i, loc in enumerate(locations)}

    def records() -> Any:
        ids = sorted(SeriesKey(m, (("LOCATION_ID", loc),)).id for loc in locations for m in MEASURES)
        for sid in ids[:n_series]:
            # the prototype of the series' location (its values match the interval's data below); neighbouring
            # records come from different prototypes, so gzip sees no repeats within its window
            loc = sid.split("LOCATION_ID=", 1)[1]
            yield sid, templates[int(loc[2:]) % PROTOTYPES]

    with open(out / "state.bin.gz", "wb") as fh:
        count = state_file.write(fh, header, records())
    folder_ts = CLOSED
    for minute in range(5):
        ts = (folder_ts + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")
        lines = []
        for loc in locations:
            f = factors[loc]
            hour = folder_ts.hour + folder_ts.minute / 60
            v = round(f * (10 + 2 * math.sin(2 * math.pi * hour / 24)) + rng.gauss(0, 0.2), 3)
            lines.append(f'{{"TIMESTAMP":"{ts}","LOCATION_ID":"{loc}","CO":{v},"SO2":{v},"NO2":{v}}}\n')
        (out / f"part-{minute}.gz").write_bytes(gzip.compress("".join(lines).encode(), compresslevel=1))
    return {"series": count, "state_bytes": (out / "state.bin.gz").stat().st_size, "locations": len(locations)}


# ----------------------------------------------------------------------------------------------------------------
# Run (subprocess 2): the measured whole run on moto
# ----------------------------------------------------------------------------------------------------------------
def measure(n_series: int, folder: Path) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        from detector import runner
        from sentinel_core import layout, store
        from sentinel_core.spec import get_preset

        spec = get_preset("air-quality")
        s3 = boto3.client("s3", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        ddb.create_table(
            TableName="anomalies",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        s3.upload_file(str(folder / "state.bin.gz"), BUCKET, store.state_key(spec))
        prefix = layout.interval_folder(CLOSED, spec)
        for part in sorted(folder.glob("part-*.gz")):
            s3.upload_file(str(part), BUCKET, prefix + part.name)
        settings = runner.Settings.from_env(
            {
                "SENTINEL_SPEC": spec.to_json(),
                "DATA_BUCKET": BUCKET,
                "ALERT_TOPIC_ARN": topic,
                "ANOMALY_TABLE": "anomalies",
                "DETECTOR_ID": "bench",
                "MAX_SERIES": str(max(n_series, 1)),
            }
        )
        clients = runner.Clients(s3=s3, ddb=ddb, sns=sns)
        import gc

        gc.collect()
        base = _page_rss_kb()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = runner.run(clients, settings, CLOSED, wall_now=CLOSED + timedelta(minutes=10))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux: the run's high-water mark
        if report.series_scored != n_series or report.intervals_scored != 1:
            raise SystemExit(f"unexpected run: {report.to_dict()}")
        return {
            "series": n_series,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "peak_mb": round((peak - base) / 1024, 1),
            "state_bytes": report.state_bytes,
            "records": report.records,
        }


def one(n_series: int) -> dict[str, Any]:
    """Setup and run in two fresh subprocesses."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--setup", str(n_series), tmp], check=True)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(n_series), tmp], check=True, capture_output=True, text=True
        )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="5000,50000,200000")
    ap.add_argument("--fanout", default="", help="TOTAL:SHARDS, e.g. 1000000:16")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--setup", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--measure", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup:
        setup(int(args.setup[0]), Path(args.setup[1]))
        return
    if args.measure:
        print(json.dumps(measure(int(args.measure[0]), Path(args.measure[1]))))
        return
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    cols = ("series", "cpu s", "wall s", "ms/series", "peak MB", "KB/series", "state B/series")
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, (9, 8, 8, 10, 8, 10, 15), strict=True)))
    last: dict[str, Any] = {}
    for n in [int(x) for x in args.sizes.split(",") if x]:
        r = one(n)
        ms = 1000 * r["cpu_s"] / n
        kb = 1024 * r["peak_mb"] / n
        sb = r["state_bytes"] / n
        print(f"{n:>9} {r['cpu_s']:>8.2f} {r['wall_s']:>8.2f} {ms:>10.3f} {r['peak_mb']:>8.1f} {kb:>10.2f} {sb:>15.0f}")
        last = {
            "series": n,
            "ms_per_series": round(ms, 4),
            "peak_kb_per_series": round(kb, 3),
            "state_bytes_per_series": round(sb, 1),
        }
    fan = {"shards": 1, "slowest_shard_s": None, "merge_s": None}
    if args.fanout:
        total, shards = (int(x) for x in args.fanout.split(":"))
        per = -(-total // shards)
        runs = [one(per) for _ in range(shards)]
        slowest = max(r["wall_s"] for r in runs)
        print(
            f"fan-out: {total} series over {shards} shards of {per}, one after another: slowest shard {slowest:.2f} s "
            f"wall, total CPU {sum(r['cpu_s'] for r in runs):.1f} s, wall with shards in parallel {slowest:.2f} s; "
            "merge: not built (merge_s null)"
        )
        fan = {"shards": shards, "slowest_shard_s": round(slowest, 3), "merge_s": None}
    if args.json:
        print(json.dumps({**last, **fan}))


if __name__ == "__main__":
    main()
