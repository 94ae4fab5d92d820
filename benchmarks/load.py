"""Load figures: N devices publishing one message per second through the local runtime (issue 8).

Run: ``.venv/bin/python benchmarks/load.py`` (a representative slice: 1,000 devices x 300 s = 300,000 records,
one full PT5M interval, extrapolated to the hour) or ``--seconds 3600`` for the whole simulated hour
(3.6 M records, about 10 minutes on two vCPUs).

What runs is the synthesized air-quality stack played by ``local_aws.LocalPipeline`` on moto: every
message goes through the IoT topic rule (SQL, Firehose action), Firehose buffering (60 s), the real transform
Lambda handler (Powertools, validation, normalisation), dynamic partitioning into the per-interval S3 folders and
the error prefix, and the EventBridge schedule runs the real detector Lambda on each closed interval (warm-up on
nothing: the detector starts cold). A share of the messages is malformed on purpose, so the error prefix is used.

Printed: records per second end to end (and the detector's share of the time), peak memory of the process
(``ru_maxrss``: everything, including moto's in-memory S3), and the reconciliation
``records in == lines in the interval folders + documents in the error prefix (+ IoT rule errors)``; the script
exits 1 if it does not hold. Figures only: no timed assertion anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import random
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambdas"))
sys.path.insert(0, str(ROOT))

from sentinel_core import layout  # noqa: E402
from sentinel_core.intervals import interval_seconds  # noqa: E402
from sentinel_core.spec import get_preset  # noqa: E402

from local_aws import offline  # noqa: E402
from simulator.demo.synth import load_pipeline  # noqa: E402

SPEC = get_preset("air-quality")
START = datetime(2026, 3, 23, 10, 0, tzinfo=UTC)
HOUR = 3600


@dataclass
class Figures:
    devices: int
    seconds: int
    records_in: int = 0
    malformed_sent: int = 0
    s3_lines: int = 0
    error_docs: int = 0
    rule_errors: int = 0
    objects: int = 0
    wall: float = 0.0
    detector_seconds: float = 0.0
    detector_runs: int = 0
    series_scored: int = 0
    transform_calls: int = 0
    peak_rss_mb: float = 0.0

    @property
    def rate(self) -> float:
        return self.records_in / self.wall if self.wall else 0.0

    @property
    def reconciled(self) -> bool:
        return self.records_in == self.s3_lines + self.error_docs + self.rule_errors


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 1024 if sys.platform != "darwin" else rss / (1024 * 1024)


def messages(devices: int, seconds: int, bad_every: int, seed: int) -> Iterator[tuple[datetime, str, bytes, bool]]:
    """(arrival, device, payload, malformed) in time order: each device once per second, 0-900 ms after it."""
    rng = random.Random(seed)
    n = 0
    for s in range(seconds):
        ts = START + timedelta(seconds=s)
        stamp = ts.strftime("%Y-%m-%d %H:%M:%S")
        for d in range(devices):
            n += 1
            thing = f"L-{d:04d}"
            bad = bad_every > 0 and n % bad_every == 0
            co = "n/a" if bad else round(2.0 + rng.gauss(0, 0.1), 3)
            body = f'{{"TIMESTAMP":"{stamp}","LOCATION_ID":"{thing}","CO":{json.dumps(co)},"SO2":61.5,"NO2":55.2}}'
            yield ts + timedelta(milliseconds=(d * 7) % 900), thing, body.encode(), bad


def count_lines(s3: Any, bucket: str, prefix: str) -> tuple[int, int]:
    """(non-empty lines, objects) under ``prefix``."""
    lines = objects = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            lines += sum(1 for line in body.splitlines() if line.strip())
            objects += 1
    return lines, objects


def run(devices: int, seconds: int, bad_every: int, synth_dir: Path) -> Figures:
    pipeline, _ = load_pipeline(SPEC, synth_dir)
    fig = Figures(devices, seconds)
    step = interval_seconds(SPEC.interval)
    offset = timedelta(seconds=int(pipeline.env_of("detector")["SCHEDULE_OFFSET_SECONDS"]))
    sink = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(sink))  # the Lambdas' logs and EMF metrics: not shown
        stack.enter_context(offline(pipeline))  # fake credentials, moto, cold handlers; starts the pipeline
        next_tick = START + timedelta(seconds=step) + offset
        t0 = time.perf_counter()
        for at, thing, payload, bad in messages(devices, seconds, bad_every, seed=11):
            if at >= next_tick:
                fig.detector_seconds += _tick(pipeline, next_tick, fig)
                next_tick += timedelta(seconds=step)
            pipeline.publish(SPEC.telemetry_topic(thing), payload, now=at, client_id=thing)
            fig.records_in += 1
            fig.malformed_sent += bad
            if fig.records_in % 20000 == 0:
                sink.seek(0)
                sink.truncate()
        end = START + timedelta(seconds=seconds)
        pipeline.flush(end + timedelta(seconds=61), force=True)
        last = START + timedelta(seconds=((seconds + step - 1) // step) * step) + offset
        while next_tick <= last:
            fig.detector_seconds += _tick(pipeline, next_tick, fig)
            next_tick += timedelta(seconds=step)
        fig.wall = time.perf_counter() - t0
        s3 = pipeline.client("s3")
        fig.s3_lines, live_objects = count_lines(s3, pipeline.data_bucket, layout.live_root(SPEC))
        fig.error_docs, error_objects = count_lines(s3, pipeline.data_bucket, layout.error_root(SPEC))
        fig.objects = live_objects + error_objects
        fig.rule_errors = pipeline.ledger.iot_rule_errors
        fig.transform_calls = pipeline.ledger.lambda_invocations.get(pipeline.function("transform").name, 0)
        assert pipeline.pending == 0, "records left in a Firehose buffer"
    fig.peak_rss_mb = peak_rss_mb()
    return fig


def _tick(pipeline: Any, at: datetime, fig: Figures) -> float:
    t = time.perf_counter()
    for _, _, report in pipeline.tick(at):
        if isinstance(report, BaseException):
            raise RuntimeError(f"detector run failed at {at}: {report!r}") from report
        fig.detector_runs += 1
        fig.series_scored += int(report.get("series_scored", 0))
    return time.perf_counter() - t


def report(fig: Figures) -> None:
    full = HOUR * 1000
    share = fig.detector_seconds / fig.wall if fig.wall else 0.0
    print(f"Load through the local runtime: {fig.devices:,} devices x {fig.seconds:,} s at 1 msg/s (air-quality)")
    print(f"  records in                 {fig.records_in:>12,}  ({fig.malformed_sent:,} malformed on purpose)")
    print(f"  wall time                  {fig.wall:>12.1f} s  (detector runs: {fig.detector_runs}, {share:.0%})")
    ingest = fig.records_in / (fig.wall - fig.detector_seconds) if fig.wall > fig.detector_seconds else 0.0
    print(f"  records per second         {fig.rate:>12,.0f}  (end to end, detector runs and cold starts included)")
    print(f"  ... ingest path only       {ingest:>12,.0f}  (IoT rule, Firehose buffer, transform, partitioning, S3)")
    print(f"  transform invocations      {fig.transform_calls:>12,}")
    print(f"  series scored              {fig.series_scored:>12,}")
    print(f"  S3 objects written         {fig.objects:>12,}")
    print(f"  peak memory (max RSS)      {fig.peak_rss_mb:>12,.0f} MB  (whole process incl. moto's in-memory S3)")
    ok = "OK" if fig.reconciled else "MISMATCH"
    print(
        f"  reconciliation             {ok}: in {fig.records_in:,} = interval folders {fig.s3_lines:,} + "
        f"error prefix {fig.error_docs:,} + IoT rule errors {fig.rule_errors:,}"
    )
    if fig.records_in < full:
        hour_s = full / fig.rate if fig.rate else float("inf")
        print(
            f"  EXTRAPOLATION (not measured): the full hour of 1,000 devices ({full:,} records) would take "
            f"~{hour_s / 60:,.0f} min at this rate on this machine; in AWS the same work is spread over Firehose "
            "and parallel Lambda invocations (each batch here is one invocation), so this bounds the code, "
            "not the service."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=300, help="simulated seconds (3600 = the full hour)")
    parser.add_argument("--bad-every", type=int, default=1000, help="every n-th message is malformed (0: none)")
    parser.add_argument("--synth-dir", type=Path, default=ROOT / "out" / "bench" / "cdk.out")
    args = parser.parse_args(argv)
    fig = run(args.devices, args.seconds, args.bad_every, args.synth_dir)
    report(fig)
    return 0 if fig.reconciled else 1


if __name__ == "__main__":
    raise SystemExit(main())
