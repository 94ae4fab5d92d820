"""The detector's WHOLE run per series, in steady state, on a moto server: state read from S3 and decoded, the
interval folder listed and read, records validated, aggregated, scored, grouped, groups to DynamoDB, alerts, state
encoded and saved.

Run: ``.venv/bin/python benchmarks/detector_scale.py [--sizes 5000,50000,200000] [--fanout 1000000:16] [--json]``.

Each size runs in a fresh subprocess (so its memory figures are its own), in two steps:

1. *setup* (not measured): a steady-state model (64 air-quality series of different levels trained for ~2.5
   days, so their seasonal profiles, calibration and histograms are filled, cloned to N series; neighbouring
   records come from different prototypes, so the state does not compress unrealistically) is written as the
   compact state file, and the next PT5M interval's
   data as five Firehose-like gzip JSON-lines objects (every location reports once a minute; 3 measures per
   location, so N / 3 locations; one location in ``SPIKE_EVERY`` spikes, so groups, alerts and the merge have
   work);
2. *run* (measured): a moto server (S3 / DynamoDB / SNS) started in ANOTHER process and reached over HTTP, the
   files uploaded, then ``detector.app.run`` once (``runner.run`` as the handler runs it). So this process pays
   what the Lambda pays (the state streamed from S3 and decoded, the listing and the objects read over a socket,
   the DynamoDB writes, the state encoded, check-summed and sent), and none of moto's own work: in-process moto
   (``mock_aws``) kept every body in this process and copied the state upload whole several times (46 of 78 CPU
   seconds at 200k series, quadratic in the state's size). CPU is ``time.process_time`` of the run, wall
   ``time.perf_counter`` (it includes waiting for the moto server, whose own CPU is printed apart as ``moto s``: on
   this shared 2-core machine it competes with the run), peak memory the process's high-water RSS (``ru_maxrss``,
   checked to be reached during the run) minus its RSS just before the run, per series.

``--fanout TOTAL:SHARDS``: TOTAL series (TOTAL / 3 locations) spread over SHARDS shards by the product's own
``state_file.shard_of``; each shard is set up with its own series only (its state at ``layout.state_key(spec, k)``,
its data in ``<interval>/shard=k/``) and run, one after another, each in its own subprocess, as the REAL shard code
(``detector.shard.run_shard``: the whole run, its results written to S3 for the merge); then the REAL merge step
(``detector.merge.run_merge``) runs once over the shards' result files, on moto, and is timed as ``merge_s``
(CPU; its wall is printed too). Prints the slowest shard (wall), the total CPU, the wall time with shards in
parallel (the slowest shard plus the merge) and ``merge_s``.

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
# One location in this many spikes x3 in the measured interval: the run groups, stores and alerts real anomalies (and
# the merge has points to group) as an interval of a large fleet would, not a silent interval.
SPIKE_EVERY = 100


def _page_rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# ----------------------------------------------------------------------------------------------------------------
# Setup (subprocess 1): state file + interval objects on disk
# ----------------------------------------------------------------------------------------------------------------
def setup(n_series: int, out: Path, seed: int = 7, shard: int | None = None, shards: int = 1) -> dict[str, Any]:
    """``shard``: only that shard's locations of the ``n_series / 3`` (the fan-out's shard k)."""
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
    if shard is not None:
        locations = [loc for loc in locations if state_file.shard_of((loc,), shards) == shard]
        n_series = len(locations) * len(MEASURES)
    # a shard's state says how many shards it was made for (another count would re-warm it: runner.run)
    header = State(proto, extra={"shards": shards} if shard is not None else {}).header()
    # the same prototype as the location's state record below (by its number: a shard keeps only some locations)
    factors = {loc: scale[int(loc[2:]) % PROTOTYPES] for loc in locations}

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
            if int(loc[2:]) % SPIKE_EVERY == 0:
                v = round(3 * v, 3)
            lines.append(f'{{"TIMESTAMP":"{ts}","LOCATION_ID":"{loc}","CO":{v},"SO2":{v},"NO2":{v}}}\n')
        (out / f"part-{minute}.gz").write_bytes(gzip.compress("".join(lines).encode(), compresslevel=1))
    info = {"series": count, "state_bytes": (out / "state.bin.gz").stat().st_size, "locations": len(locations)}
    (out / "setup.json").write_text(json.dumps(info))
    return info


# ----------------------------------------------------------------------------------------------------------------
# Run (subprocess 2): the measured whole run on moto
# ----------------------------------------------------------------------------------------------------------------
def _aws(endpoint: str | None = None) -> tuple[Any, Any, Any, str]:
    """The bench's bucket, table and topic: on the moto server at ``endpoint``, else in-process moto (inside
    ``mock_aws``)."""
    import boto3
    from botocore.config import Config

    cfg = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
    kw: dict[str, Any] = {"region_name": REGION, "config": cfg}
    if endpoint is not None:
        kw["endpoint_url"] = endpoint
    s3 = boto3.client("s3", **kw)
    ddb = boto3.client("dynamodb", **kw)
    sns = boto3.client("sns", **kw)
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
    return s3, ddb, sns, topic


def _settings(spec: Any, topic: str, max_series: int, shards: int = 1) -> Any:
    from detector import runner

    return runner.Settings.from_env(
        {
            "SENTINEL_SPEC": spec.to_json(),
            "DATA_BUCKET": BUCKET,
            "ALERT_TOPIC_ARN": topic,
            "ANOMALY_TABLE": "anomalies",
            "DETECTOR_ID": "bench",
            "MAX_SERIES": str(max(max_series, 1)),
            "DETECTOR_SHARDS": str(shards),
        }
    )


_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the parent closes the pipe
server.stop()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(n_series: int, folder: Path, shard: int | None = None, shards: int = 1) -> dict[str, Any]:
    """The measured run (``shard``: shard k's run, as the shard Lambda does it). S3 / DynamoDB / SNS are a moto
    server in ANOTHER process, reached over HTTP like the real services: this process pays what the Lambda pays
    (state streamed from and written to S3 over a socket, the listing, the records read, DynamoDB writes, the
    request checksums), not moto's own work. In-process moto (``mock_aws``) counted moto's S3 handling and its
    copies of every object body in the run's CPU and memory: at 200k series 46 of 78 CPU seconds went to copying
    the 300 MB state upload whole (botocore's aws-chunked wrapper read without a size, then moto decoding it),
    quadratic in the state's size."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # werkzeug's request log
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("moto server did not start")
        return _measure(n_series, folder, f"http://127.0.0.1:{port}", server.pid, shard, shards)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=60)


def _measure(
    n_series: int, folder: Path, endpoint: str, server_pid: int, shard: int | None, shards: int
) -> dict[str, Any]:
    from detector import app, runner
    from detector import shard as shard_run
    from sentinel_core import layout, store
    from sentinel_core.spec import get_preset

    spec = get_preset("air-quality")
    s3, ddb, sns, topic = _aws(endpoint)
    if shard is not None:
        n_series = int(json.loads((folder / "setup.json").read_text())["series"])
    s3.upload_file(str(folder / "state.bin.gz"), BUCKET, store.state_key(spec, shard))
    prefix = layout.records_folder(CLOSED, spec, shard)
    for part in sorted(folder.glob("part-*.gz")):
        s3.upload_file(str(part), BUCKET, prefix + part.name)
    settings = _settings(spec, topic, n_series, shards)
    clients = runner.Clients(s3=s3, ddb=ddb, sns=sns)
    import gc

    gc.collect()
    base = _page_rss_kb()
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    moto0 = _cpu_of(server_pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    wall_now = CLOSED + timedelta(minutes=10)
    if shard is None:
        report = app.run(clients, settings, CLOSED, wall_now=wall_now)  # as the handler runs it
    else:  # the shard Lambda's work: the whole run of shard k, its results written for the merge
        with app.collector_paused():
            ran = shard_run.run_shard(clients, settings.for_shard(shard), CLOSED, wall_now=wall_now)
        report = ran.report
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    moto_cpu = _cpu_of(server_pid) - moto0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux: the run's high-water mark
    if shard is not None:
        (folder / "result.json.gz").write_bytes(s3.get_object(Bucket=BUCKET, Key=ran.key)["Body"].read())
    if peak <= before_peak:
        raise SystemExit("the run did not raise the process's high-water RSS: the figure would be the setup's")
    if report.series_scored != n_series or report.intervals_scored != 1:
        raise SystemExit(f"unexpected run: {report.to_dict()}")
    return {
        "series": n_series,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "moto_cpu_s": round(moto_cpu, 3),
        "peak_mb": round((peak - base) / 1024, 1),
        "state_bytes": report.state_bytes,
        "records": report.records,
    }


def merge_measure(folder: Path, shards: int) -> dict[str, Any]:
    """The real merge step over the shards' result files (``<folder>/<k>.json.gz``), on moto."""
    from moto import mock_aws

    with mock_aws():
        from detector import merge, runner
        from sentinel_core import layout
        from sentinel_core.spec import get_preset

        spec = get_preset("air-quality")
        s3, ddb, sns, topic = _aws()
        items = []
        for k in range(shards):
            key = layout.shard_result_key(spec, CLOSED, k)
            s3.upload_file(str(folder / f"{k}.json.gz"), BUCKET, key)
            items.append({"shard": k, "key": key, "intervals": 1})
        settings = _settings(spec, topic, 1, shards)
        clients = runner.Clients(s3=s3, ddb=ddb, sns=sns)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        report = merge.run_merge(clients, settings, CLOSED, items)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if report.shards_ok != shards or report.intervals_merged != 1:
            raise SystemExit(f"unexpected merge: {report.to_dict()}")
        return {
            "merge_cpu_s": round(cpu, 3),
            "merge_wall_s": round(wall, 3),
            "series": report.series_scored,
            "anomalies": report.anomalies,
            "groups": report.groups,
        }


def one(n_series: int, shard: int | None = None, shards: int = 1, keep: Path | None = None) -> dict[str, Any]:
    """Setup and run in two fresh subprocesses (``shard``: shard k of ``shards`` of ``n_series``; its result file
    is copied to ``keep/<k>.json.gz`` for the merge)."""
    extra = ["--shard", str(shard), "--shards", str(shards)] if shard is not None else []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--setup", str(n_series), tmp, *extra], check=True)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(n_series), tmp, *extra],
            check=True,
            capture_output=True,
            text=True,
        )
        if keep is not None and shard is not None:
            (keep / f"{shard}.json.gz").write_bytes((Path(tmp) / "result.json.gz").read_bytes())
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="5000,50000,200000")
    ap.add_argument("--fanout", default="", help="TOTAL:SHARDS, e.g. 1000000:16")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--setup", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--measure", nargs=2, metavar=("N", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--merge", nargs=2, metavar=("SHARDS", "DIR"), help=argparse.SUPPRESS)
    ap.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.setup:
        setup(int(args.setup[0]), Path(args.setup[1]), shard=args.shard, shards=args.shards)
        return
    if args.measure:
        print(json.dumps(measure(int(args.measure[0]), Path(args.measure[1]), args.shard, args.shards)))
        return
    if args.merge:
        print(json.dumps(merge_measure(Path(args.merge[1]), int(args.merge[0]))))
        return
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    cols = ("series", "cpu s", "wall s", "moto s", "ms/series", "peak MB", "KB/series", "state B/series")
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, (9, 8, 8, 8, 10, 8, 10, 15), strict=True)))
    last: dict[str, Any] = {}
    for n in [int(x) for x in args.sizes.split(",") if x]:
        r = one(n)
        ms = 1000 * r["cpu_s"] / n
        kb = 1024 * r["peak_mb"] / n
        sb = r["state_bytes"] / n
        cells = (f"{n:>9}", f"{r['cpu_s']:>8.2f}", f"{r['wall_s']:>8.2f}", f"{r['moto_cpu_s']:>8.2f}", f"{ms:>10.3f}")
        print(" ".join(cells), f"{r['peak_mb']:>8.1f} {kb:>10.2f} {sb:>15.0f}")
        last = {
            "series": n,
            "ms_per_series": round(ms, 4),
            "peak_kb_per_series": round(kb, 3),
            "state_bytes_per_series": round(sb, 1),
        }
    fan = {"shards": 1, "slowest_shard_s": None, "merge_s": None}
    if args.fanout:
        total, shards = (int(x) for x in args.fanout.split(":"))
        print(f"load average before the fan-out: {os.getloadavg()[0]:.1f}")
        with tempfile.TemporaryDirectory() as results:
            runs = []
            for k in range(shards):
                r = one(total, k, shards, Path(results))
                runs.append(r)
                print(
                    f"  shard {k:>3}: {r['series']:>7} series, cpu {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} s, "
                    f"peak {r['peak_mb']:.0f} MB",
                    flush=True,
                )
            out = subprocess.run(
                [sys.executable, __file__, "--merge", str(shards), results], check=True, capture_output=True, text=True
            )
            m = json.loads(out.stdout.strip().splitlines()[-1])
        slowest = max(r["wall_s"] for r in runs)
        largest = max(r["series"] for r in runs)
        print(
            f"fan-out: {sum(r['series'] for r in runs)} series over {shards} shards (largest {largest}), one after "
            f"another: slowest shard {slowest:.2f} s wall, largest peak {max(r['peak_mb'] for r in runs):.0f} MB, "
            f"total CPU {sum(r['cpu_s'] for r in runs):.1f} s; merge {m['merge_cpu_s']:.2f} s CPU "
            f"({m['merge_wall_s']:.2f} s wall; {m['series']} series, {m['anomalies']} anomalous points, "
            f"{m['groups']} groups); wall with shards in parallel {slowest + m['merge_wall_s']:.2f} s"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        fan = {"shards": shards, "slowest_shard_s": round(slowest, 3), "merge_s": round(m["merge_cpu_s"], 3)}
    if args.json:
        print(json.dumps({**last, **fan}))


if __name__ == "__main__":
    main()
