"""Loyalty backtest job at scale: a 2-year, 200-location file (~146k rows) through the real job code.

Prints wall time and peak memory of
  1. the whole job (``backtest_job.job.process_object``: S3 read, error report, backtest, groups to DynamoDB,
     summary + alerts to SNS, report to S3) against moto, with the process's peak RSS (moto's copy included);
  2. the compute core alone (CSV parsing with the per-row error report + the detector's backtest core), split
     into its two parts; ``--heap`` adds a tracemalloc pass for the peak Python heap (slow);
and compares them with Lambda's 15-minute limit at 1,769 MB (one vCPU). One core here is taken as one Lambda vCPU;
the printed margin says how much slower Lambda's vCPU could be before the limit is at risk.

    .venv/bin/python benchmarks/loyalty.py [--days 730] [--locations 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/simulator.py would shadow the simulator package: import from the repository root instead.
sys.path[:] = [str(ROOT), str(ROOT / "lambdas"), str(ROOT / "tests" / "integration")] + [
    p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent
]
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MetricSentinelBench")
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

LAMBDA_LIMIT_S = 900.0
LAMBDA_MEMORY_MB = 1769


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--locations", type=int, default=200)
    parser.add_argument("--heap", action="store_true", help="also trace the peak Python heap (slow)")
    args = parser.parse_args()

    import boto3
    from backtest_job import job
    from moto import mock_aws
    from sentinel_aws import create_anomaly_table, create_topic_with_queue
    from sentinel_core import csv_input, layout
    from sentinel_core.spec import get_preset

    from simulator.uploads import generate_upload

    spec = get_preset("loyalty")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = generate_upload(
            Path(tmp), spec, days=args.days, locations=args.locations, seed=2024,
            end=datetime(2026, 11, 23, tzinfo=UTC), bad_rows=8,
        )  # fmt: skip
        size_mb = summary.file.stat().st_size / 1e6
        print(
            f"input: {summary.records + summary.bad_rows:,} rows ({args.days} days x {args.locations} locations, "
            f"{summary.bad_rows} bad), {size_mb:.1f} MB, {len(summary.labels)} labelled anomalies "
            f"(generated in {time.perf_counter() - t:.1f}s)"
        )
        body = summary.file.read_bytes()

    rss0 = _rss_mb()
    # 1. the whole job against moto (first, so the peak RSS is the job's)
    with mock_aws():
        boto3.client("s3", region_name="eu-west-1").create_bucket(
            Bucket="bench-data", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        table = create_anomaly_table()
        topic, _ = create_topic_with_queue()
        env = {
            "SENTINEL_SPEC": spec.to_json(),
            "ALERT_TOPIC_ARN": topic,
            "ANOMALY_TABLE": table,
            "DETECTOR_ID": "bench",
        }
        settings = job.Settings.from_env({**os.environ, **env})
        clients = job.Clients(
            s3=boto3.client("s3", region_name="eu-west-1"),
            ddb=boto3.client("dynamodb", region_name="eu-west-1"),
            sns=boto3.client("sns", region_name="eu-west-1"),
        )
        key = f"{layout.upload_prefix(spec)}loyalty-2y.csv"
        clients.s3.put_object(Bucket="bench-data", Key=key, Body=body)
        t = time.perf_counter()
        rep = job.process_object(clients, settings, "bench-data", key, "v1")
        job_s = time.perf_counter() - t
    rss = _rss_mb()
    print(
        f"whole job on moto: {job_s:.1f}s; {rep.groups} groups ({rep.groups_at_threshold} >= "
        f"{spec.severity_threshold:g}), {rep.alerts_sent} alerts, learn {rep.learn_intervals} / report "
        f"{rep.report_intervals} days; process peak RSS {rss:.0f} MB (was {rss0:.0f} MB before the job, "
        "moto and boto3 included)"
    )
    # 2. compute core alone: parsing (with the per-row error report) and the detector's backtest core
    t = time.perf_counter()
    rep_parse = csv_input.ParseReport()
    records = list(csv_input.iter_rows(body.decode().splitlines(keepends=True), spec, rep_parse))
    n_records = len(records)
    parse_s = time.perf_counter() - t
    t = time.perf_counter()
    result = job.run_backtest(records, spec, "bench")
    backtest_s = time.perf_counter() - t
    core_s = parse_s + backtest_s
    print(
        f"core: parse {parse_s:.1f}s ({n_records:,} good / {rep_parse.bad} bad rows) + backtest {backtest_s:.1f}s "
        f"({result.series} series x {result.intervals} days, {len(result.groups)} groups) = {core_s:.1f}s"
    )
    del records, result
    if args.heap:
        tracemalloc.start()
        job.run_backtest(list(csv_input.iter_rows(body.decode().splitlines(keepends=True), spec)), spec, "bench")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"core peak Python heap (tracemalloc): {peak / 2**20:.0f} MiB")
    worst = max(core_s, job_s)
    print(
        f"Lambda: limit {LAMBDA_LIMIT_S:.0f}s at {LAMBDA_MEMORY_MB} MB (1 vCPU) -> uses {worst / LAMBDA_LIMIT_S:.1%} "
        f"of the time (x{LAMBDA_LIMIT_S / worst:.0f} margin) and {rss / LAMBDA_MEMORY_MB:.0%} of the memory: "
        f"{'fits in one Lambda invocation' if worst < LAMBDA_LIMIT_S / 3 and rss < LAMBDA_MEMORY_MB else 'TOO CLOSE'}"
    )


if __name__ == "__main__":
    main()
