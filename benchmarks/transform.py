"""Records per second through the Firehose transform handler, next to a naive baseline.

Run: ``.venv/bin/python benchmarks/transform.py``. Batches of about 1 MB and 3 MB of record data (Firehose's
processor buffer hint ranges up to 3 MB), cut into invocations whose event stays under Lambda's 6 MB request
limit as Firehose must (base64 plus per-record framing makes 3 MB of ~95-byte records a ~6.6 MB event).
The handler is the real one (Powertools event class, logger, metrics,
full validation and normalisation, response budget); the baseline is stdlib json with a minimal check and no
Powertools, so the ratio is the price of the real handler's work. Best of several runs; prints figures only.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambdas"))
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MetricSentinelBench")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_REGION", "eu-west-1")

from sentinel_core.spec import get_preset
from transform import app

SPEC = get_preset("air-quality")
ARRIVAL_MS = 1774260510000  # 2026-03-23 10:08:30 UTC


@dataclass
class Context:
    function_name: str = "transform"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:transform"
    aws_request_id: str = "bench"


def make_events(target_bytes: int, bad_share: float = 0.02, seed: int = 7) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    records: list[dict[str, Any]] = []
    size = 0
    i = 0
    while size < target_bytes:
        rec = {
            "TIMESTAMP": f"2026-03-23 10:{rnd.randrange(0, 8):02d}:{rnd.randrange(60):02d}",
            "LOCATION_ID": f"B-{rnd.randrange(100, 200)}",
            "CO": round(rnd.uniform(0.1, 9), 2),
            "SO2": rnd.randrange(10, 90),
            "NO2": rnd.randrange(10, 90),
        }
        raw = (json.dumps(rec) + "\n").encode()
        if rnd.random() < bad_share:
            raw = raw.replace(b'"CO"', b'"C0"')  # missing measure
        size += len(raw)
        records.append(
            {"recordId": f"r{i:08d}", "approximateArrivalTimestamp": ARRIVAL_MS, "data": base64.b64encode(raw).decode()}
        )
        i += 1
    # Cut into invocations whose event stays under Lambda's 6 MB request limit, as Firehose must.
    groups: list[list[dict[str, Any]]] = [[]]
    payload = 0
    for r in records:
        entry = len(json.dumps(r)) + 2
        if groups[-1] and payload + entry > 6 * 1024 * 1024 - 4096:
            groups.append([])
            payload = 0
        groups[-1].append(r)
        payload += entry
    arn = "arn:aws:firehose:eu-west-1:123456789012:deliverystream/bench"
    return [
        {"invocationId": f"bench-{n}", "deliveryStreamArn": arn, "region": "eu-west-1", "records": g}
        for n, g in enumerate(groups)
    ]


def naive_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What a quick hand-written transform does: json.loads, key check, json.dumps; no Powertools."""
    out = []
    for r in event["records"]:
        try:
            doc = json.loads(base64.b64decode(r["data"]))
            line = json.dumps({k: doc[k] for k in ("TIMESTAMP", "LOCATION_ID", "CO", "SO2", "NO2")}) + "\n"
            ts = doc["TIMESTAMP"]
            keys = {
                "interval_date": ts[:10].replace("-", ""),
                "interval_time": ts[11:13] + f"{int(ts[14:16]) // 5 * 5:02d}",
            }
            out.append(
                {
                    "recordId": r["recordId"],
                    "result": "Ok",
                    "data": base64.b64encode(line.encode()).decode(),
                    "metadata": {"partitionKeys": keys},
                }
            )
        except (KeyError, ValueError):
            out.append({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]})
    return {"records": out}


def best_rate(fn: Callable[[dict[str, Any], Any], Any], events: list[dict[str, Any]], runs: int) -> float:
    best = float("inf")
    n = sum(len(e["records"]) for e in events)
    sink = io.StringIO()
    app.logger.registered_handler.setStream(sink)  # type: ignore[attr-defined]  # logs still formatted, not shown
    for _ in range(runs):
        with contextlib.redirect_stdout(sink):  # EMF metrics are printed
            t0 = time.perf_counter()
            for event in events:
                response = fn(event, Context())
                assert len(response["records"]) == len(event["records"])
            best = min(best, time.perf_counter() - t0)
        sink.seek(0)
        sink.truncate()
    return n / best


def main() -> None:
    os.environ["SENTINEL_SPEC"] = SPEC.to_json()
    print(f"{'batch':>8} {'records':>8} {'calls':>5} {'handler rec/s':>14} {'naive rec/s':>12} {'naive/handler':>14}")
    for mb in (1, 3):
        events = make_events(mb * 1024 * 1024)
        n = sum(len(e["records"]) for e in events)
        handler = best_rate(app.lambda_handler, events, runs=5)
        naive = best_rate(naive_handler, events, runs=5)
        print(f"{mb:>6}MB {n:>8} {len(events):>5} {handler:>14,.0f} {naive:>12,.0f} {naive / handler:>13.2f}x")


if __name__ == "__main__":
    main()
