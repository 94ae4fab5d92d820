"""E-commerce traffic for Kinesis Data Streams: page-view events, an injected broken checkout, and a sender.

* :func:`page_view_events` turns the shared generator's per-interval counts (``simulator.datagen``, preset
  ``ecommerce``: daily/weekly seasonality, funnel and market mix, Poisson noise) into one event per page view with
  its own time inside the interval, in time order. Events carry no ``views`` field: the pipeline counts 1 per event
  (``Measure.default``).
* :func:`broken_checkout` plans the labelled drop: checkout views of every (or one) platform fall by ~90 %.
* :class:`KinesisSender` batches ``PutRecords`` calls (at most 500 records / 5 MiB per call, 1 MiB per record),
  retries **only the entries that failed** (``FailedRecordCount`` / per-entry ``ErrorCode``) with exponential
  backoff and full jitter, and rate-limits with a token bucket (records per second). Entries that still fail after
  ``max_attempts`` are kept (``failed``) with their last error, never silently dropped. Sleep and clock are
  injectable so the tests run instantly.
* :func:`event_arrival` tells ``local_aws.LocalKinesis`` (the offline runtime as a Kinesis client) when each
  replayed event arrives, so the same sender drives Kinesis -> Firehose -> transform -> S3 in tests and the demo.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sentinel_core.intervals import floor_to_interval, interval_seconds, to_utc
from sentinel_core.model import SeriesKey
from sentinel_core.records import OUTPUT_TIMESTAMP_FORMAT, parse_timestamp
from sentinel_core.spec import PipelineSpec

from simulator.datagen import ECOMMERCE_PLATFORMS, Label, generate_records, resolve_entities

MAX_BATCH_RECORDS = 500  # PutRecords limits
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY = 256
RETRYABLE_CALL_ERRORS = ("ProvisionedThroughputExceededException", "ThrottlingException", "InternalFailure",
                         "ServiceUnavailable", "KMSThrottlingException", "LimitExceededException")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Traffic
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    data: bytes
    partition_key: str
    time: datetime


def broken_checkout(
    spec: PipelineSpec,
    entities: Sequence[tuple[str, ...]],
    start: datetime,
    minutes: float,
    platform: str | None = None,
    magnitude: float = -0.9,
) -> list[Label]:
    """Labels of a checkout outage: checkout views of ``platform`` (default: all) drop by ``magnitude``."""
    if platform is not None and platform not in ECOMMERCE_PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; choose one of {', '.join(ECOMMERCE_PLATFORMS)}")
    if minutes <= 0:
        raise ValueError("the drop must last a positive number of minutes")
    step = interval_seconds(spec.interval)
    first = floor_to_interval(start, step)
    n = max(1, round(minutes * 60 / step))
    last = first + timedelta(seconds=(n - 1) * step)
    out = [
        Label(first, last, SeriesKey.of("views", spec, e).id, "shift", magnitude)
        for e in entities
        if e[0] == "checkout" and (platform is None or e[1] == platform)
    ]
    if not out:
        raise ValueError("no checkout series among the chosen combinations: use more --combinations")
    return out


def page_view_events(
    spec: PipelineSpec,
    start: datetime,
    end: datetime,
    combinations: int,
    seed: int | str,
    labels: Sequence[Label] = (),
    scale: float = 1.0,
    trend_origin: datetime | None = None,
) -> Iterator[Event]:
    """One event per page view in ``[start, end)``, in time order (interval by interval)."""
    if scale <= 0:
        raise ValueError("--scale must be positive")
    ents = resolve_entities(spec, combinations)
    step = interval_seconds(spec.interval)
    rng = random.Random(f"{seed}:events:{to_utc(start).isoformat()}")
    pending: list[tuple[float, dict[str, Any]]] = []
    current: str | None = None

    def flush() -> Iterator[Event]:
        pending.sort(key=lambda p: p[0])
        for offset, rec in pending:
            base = parse_timestamp(rec[spec.timestamp_column])
            ts = base + timedelta(seconds=offset)
            event = {
                spec.timestamp_column: ts.strftime(OUTPUT_TIMESTAMP_FORMAT),
                **{d: rec[d] for d in spec.dimensions},
                "session_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex[:16],
            }
            if rec["page_type"] != "cart":
                event["product_id"] = f"P{rng.randint(1000, 9999)}"
            data = json.dumps(event, separators=(",", ":")).encode()
            yield Event(data, str(event["session_id"]), ts)
        pending.clear()

    for rec in generate_records(spec, start, end, ents, seed, labels, trend_origin, missing=False):
        if rec[spec.timestamp_column] != current:
            yield from flush()
            current = rec[spec.timestamp_column]
        count = rec["views"] * scale
        n = int(count) + (1 if rng.random() < count - int(count) else 0)
        pending.extend((rng.random() * step, rec) for _ in range(n))
    yield from flush()


# ----------------------------------------------------------------------------------------------------------------
# Sending
# ----------------------------------------------------------------------------------------------------------------
class PutRecordsClient(Protocol):
    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> Any: ...  # noqa: N803


@dataclass
class SendStats:
    records: int = 0  # accepted by Kinesis
    calls: int = 0  # PutRecords calls made
    retried_entries: int = 0  # entries sent again after a per-entry failure
    failed_calls: int = 0  # whole calls that raised a retryable error
    throttled: int = 0  # entries that came back ProvisionedThroughputExceeded
    waited_seconds: float = 0.0  # time spent in rate limiting and backoff
    errors: Counter[str] = field(default_factory=Counter)  # per-entry error codes seen
    failed: list[tuple[Event, str]] = field(default_factory=list)  # given up after max_attempts, with the error

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "calls": self.calls,
            "retried_entries": self.retried_entries,
            "failed_calls": self.failed_calls,
            "throttled": self.throttled,
            "failed": len(self.failed),
            "waited_seconds": round(self.waited_seconds, 3),
            "errors": dict(self.errors),
        }


class TokenBucket:
    """``rate`` tokens per second, bursts up to ``burst``; ``take(n)`` sleeps until n tokens are there."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.rate = rate
        self.burst = max(burst if burst is not None else rate, 1.0)
        self.clock = clock
        self.sleep = sleep
        self.tokens = self.burst
        self.stamp = clock()

    def take(self, n: float) -> float:
        """Take ``n`` tokens (n may exceed the burst: then it waits for the deficit); returns seconds waited."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate
        self.sleep(wait)
        self.stamp = self.clock()
        self.tokens = 0.0
        return wait


class KinesisSender:
    """Batches events into ``PutRecords`` calls; see the module doc for the retry and rate-limit rules."""

    def __init__(
        self,
        client: PutRecordsClient,
        stream_name: str,
        rate: float | None = 1000.0,
        max_attempts: int = 6,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        batch_records: int = MAX_BATCH_RECORDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_call: Callable[[SendStats], None] | None = None,
    ) -> None:
        if not 1 <= batch_records <= MAX_BATCH_RECORDS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_RECORDS} records")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.client = client
        self.stream_name = stream_name
        self.bucket = TokenBucket(rate, clock=clock, sleep=sleep) if rate else None
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.batch_records = batch_records
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.on_call = on_call
        self.stats = SendStats()

    # -- batching ---------------------------------------------------------------------------------------------
    def batches(self, events: Iterable[Event]) -> Iterator[list[Event]]:
        """Group events into PutRecords-sized batches (count and byte limits); oversize records raise."""
        batch: list[Event] = []
        size = 0
        for ev in events:
            n = len(ev.data) + len(ev.partition_key.encode())
            if len(ev.data) > MAX_RECORD_BYTES:
                raise ValueError(f"an event of {len(ev.data)} bytes exceeds Kinesis' 1 MiB record limit")
            if not 1 <= len(ev.partition_key) <= MAX_PARTITION_KEY:
                raise ValueError("a partition key must have 1 to 256 characters")
            if batch and (len(batch) >= self.batch_records or size + n > MAX_BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(ev)
            size += n
        if batch:
            yield batch

    def _backoff(self, attempt: int) -> float:
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return self.rng.uniform(0, cap)  # full jitter

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)
            self.stats.waited_seconds += seconds

    # -- sending ----------------------------------------------------------------------------------------------
    def send_batch(self, batch: Sequence[Event]) -> None:
        """Send one batch; retry only the failed entries until they succeed or ``max_attempts`` is reached."""
        todo = list(batch)
        last_error: dict[int, str] = {}
        for attempt in range(self.max_attempts):
            if attempt:
                self._wait(self._backoff(attempt))
            if self.bucket is not None:
                self.stats.waited_seconds += self.bucket.take(len(todo))
            entries = [{"Data": ev.data, "PartitionKey": ev.partition_key} for ev in todo]
            self.stats.calls += 1
            try:
                resp = self.client.put_records(StreamName=self.stream_name, Records=entries)
            except Exception as exc:  # botocore ClientError: retry the whole call only if it is retryable
                code = _error_code(exc)
                if code not in RETRYABLE_CALL_ERRORS:
                    raise
                self.stats.failed_calls += 1
                self.stats.errors[code] += 1
                last_error = {id(ev): code for ev in todo}
                if self.on_call:
                    self.on_call(self.stats)
                continue
            results = resp.get("Records", [])
            if len(results) != len(todo):
                raise RuntimeError(f"PutRecords answered {len(results)} results for {len(todo)} records")
            retry: list[Event] = []
            for ev, res in zip(todo, results, strict=True):
                code = res.get("ErrorCode")
                if code:
                    self.stats.errors[code] += 1
                    if code == "ProvisionedThroughputExceededException":
                        self.stats.throttled += 1
                    last_error[id(ev)] = f"{code}: {res.get('ErrorMessage', '')}".strip(": ")
                    retry.append(ev)
                else:
                    self.stats.records += 1
            if self.on_call:
                self.on_call(self.stats)
            if not retry:
                return
            self.stats.retried_entries += len(retry) if attempt + 1 < self.max_attempts else 0
            todo = retry
        self.stats.failed.extend((ev, last_error.get(id(ev), "unknown error")) for ev in todo)

    def send(self, events: Iterable[Event]) -> SendStats:
        for batch in self.batches(events):
            self.send_batch(batch)
        return self.stats


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__


# ----------------------------------------------------------------------------------------------------------------
# Offline: when a replayed event reaches the local runtime
# ----------------------------------------------------------------------------------------------------------------
def event_arrival(spec: PipelineSpec, latency: timedelta = timedelta(seconds=2)) -> Callable[[bytes], datetime | None]:
    """An arrival callback for :class:`local_aws.LocalKinesis`: the event's own time plus ``latency``, so replayed
    traffic arrives when it would have live; a record that is not one of our events arrives at the pipeline's
    current time (``None``)."""

    def arrival(data: bytes) -> datetime | None:
        try:
            return parse_timestamp(json.loads(data)[spec.timestamp_column]) + latency
        except (ValueError, KeyError, TypeError):
            return None

    return arrival
