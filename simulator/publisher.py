"""The publishing loop behind ``python -m simulator publish``: pacing, QoS 1 acknowledgements, retries, clean stop.

Records come from a file or the generator, are validated against the preset's schema (an invalid record is
counted and explained, never sent), optionally altered by an :class:`Injection` (a live-demo anomaly), paced by
their own timestamps (``speed``) and by ``rate``, and published with QoS 1. A publish whose PUBACK does not come
back is retried with exponential backoff. On stop (Ctrl-C) no new record is taken; outstanding publishes are
awaited so that :class:`PublishStats` says exactly which records were confirmed and from where to resume.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.model import SeriesKey
from sentinel_core.records import Record, RecordError, validate
from sentinel_core.spec import PipelineSpec

from simulator.datagen import ANOMALY_KINDS, Label, effect_factor

DEFAULT_MAGNITUDE = {"spike": 2.0, "shift": 0.8, "drift": 1.0}
DEFAULT_DURATION = {"spike": 1, "shift": 12, "drift": 12}

PublishFn = Callable[[bytes], "concurrent.futures.Future[Any]"]


@dataclass(frozen=True)
class Injection:
    """Multiply ``measure`` at ``locations`` (values of the spec's first dimension) like a labelled anomaly.

    It starts ``after`` intervals past the first record published and lasts ``duration`` intervals.
    """

    kind: str
    locations: frozenset[str]
    measure: str
    magnitude: float
    after: int = 1
    duration: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ANOMALY_KINDS:
            raise ValueError(f"--inject must be one of {', '.join(ANOMALY_KINDS)}, got {self.kind!r}")
        if not self.locations:
            raise ValueError("--inject needs at least one --location")
        if self.after < 0 or self.duration < 1:
            raise ValueError("--inject-after must be >= 0 and --inject-duration >= 1")

    @classmethod
    def build(
        cls,
        spec: PipelineSpec,
        kind: str,
        locations: Iterable[str],
        measure: str | None = None,
        magnitude: float | None = None,
        after: int = 1,
        duration: int | None = None,
    ) -> Injection:
        m = measure or spec.measure_names[0]
        if m not in spec.measure_names:
            raise ValueError(f"--inject-measure must be one of {', '.join(spec.measure_names)}, got {m!r}")
        if kind not in ANOMALY_KINDS:
            raise ValueError(f"--inject must be one of {', '.join(ANOMALY_KINDS)}, got {kind!r}")
        return cls(
            kind=kind,
            locations=frozenset(locations),
            measure=m,
            magnitude=DEFAULT_MAGNITUDE[kind] if magnitude is None else magnitude,
            after=after,
            duration=DEFAULT_DURATION[kind] if duration is None else duration,
        )

    def labels(self, spec: PipelineSpec, first: datetime) -> list[Label]:
        """What this injection will do, as labels (interval starts, UTC)."""
        step = timedelta(seconds=interval_seconds(spec.interval))
        start = floor_to_interval(first, spec.interval) + self.after * step
        end = start + (self.duration - 1) * step
        dims = spec.dimensions[:1]
        return [
            Label(
                start,
                end,
                SeriesKey(self.measure, tuple(zip(dims, (loc,), strict=True))).id,
                self.kind,  # type: ignore[arg-type]
                self.magnitude,
            )
            for loc in sorted(self.locations)
        ]

    def apply(self, record: Record, first: datetime, spec: PipelineSpec) -> Record:
        if not record.dimensions or record.dimensions[0] not in self.locations:
            return record
        step = interval_seconds(spec.interval)
        idx = int((floor_to_interval(record.timestamp, step) - floor_to_interval(first, step)).total_seconds() // step)
        k = idx - self.after
        if not 0 <= k < self.duration:
            return record
        values = dict(record.values)
        factor = effect_factor(self.kind, self.magnitude, k, self.duration)
        values[self.measure] = round(values[self.measure] * factor, 4)
        return Record(record.timestamp, record.dimensions, values)


@dataclass
class PublishStats:
    total: int | None = None  # records in the source when known
    taken: int = 0  # records read from the source (valid or not)
    sent: int = 0  # publishes handed to the client (first attempts)
    acked: int = 0  # PUBACK received
    failed: int = 0  # given up after the retries
    retries: int = 0
    invalid: int = 0  # not sent: failed schema validation
    invalid_examples: list[str] = field(default_factory=list)
    failed_examples: list[str] = field(default_factory=list)
    unconfirmed: int = 0  # still awaiting PUBACK when we stopped waiting
    stopped_early: bool = False

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked - self.failed - self.unconfirmed

    @property
    def not_sent(self) -> int | None:
        return None if self.total is None else self.total - self.taken

    @property
    def resume_skip(self) -> int:
        """``--skip`` value that continues exactly after the last record taken (when every one was confirmed)."""
        return self.taken


@dataclass
class Pacing:
    rate: float = 0.0  # messages per second, 0 = unlimited
    speed: float = 0.0  # 1 = real time on record timestamps, 60 = a minute per second, 0 = no timestamp pacing


class Publisher:
    """Publishes records through ``publish`` (bytes -> future resolved on PUBACK)."""

    def __init__(
        self,
        spec: PipelineSpec,
        publish: PublishFn,
        pacing: Pacing,
        injection: Injection | None = None,
        max_in_flight: int = 100,
        max_retries: int = 6,
        drain_timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        on_progress: Callable[[PublishStats], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self._publish = publish
        self.pacing = pacing
        self.injection = injection
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.drain_timeout = drain_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._on_progress = on_progress or (lambda _s: None)
        self._on_event = on_event or (lambda _m: None)
        self._clock = clock
        self.stop = threading.Event()  # set it (e.g. from a SIGINT handler) for a clean stop
        self.abandon = threading.Event()  # set it to stop waiting for acknowledgements too
        self.stats = PublishStats()
        self.first_timestamp: datetime | None = None
        self._results: queue.Queue[tuple[int, bytes, int, BaseException | None]] = queue.Queue()
        self._pending: dict[int, tuple[bytes, int]] = {}
        self._retry: list[tuple[float, int, bytes, int]] = []
        self._seq = 0

    # -- internals ------------------------------------------------------------------------------------------------
    def _send(self, seq: int, payload: bytes, attempt: int) -> None:
        self._pending[seq] = (payload, attempt)
        try:
            future = self._publish(payload)
        except Exception as exc:  # the client refused synchronously: treat like a failed attempt
            self._results.put((seq, payload, attempt, exc))
            return

        def done(f: concurrent.futures.Future[Any]) -> None:
            self._results.put((seq, payload, attempt, f.exception()))

        future.add_done_callback(done)

    def _process(self, timeout: float) -> None:
        """Handle acknowledgements (waiting up to ``timeout`` for the first) and due retries."""
        deadline = self._clock() + timeout
        while True:
            now = self._clock()
            while self._retry and self._retry[0][0] <= now:
                _, seq, payload, attempt = heapq.heappop(self._retry)
                self.stats.retries += 1
                self._send(seq, payload, attempt)
            wait = max(0.0, deadline - now)
            if self._retry:
                wait = min(wait, max(0.0, self._retry[0][0] - now))
            try:
                seq, payload, attempt, exc = self._results.get(timeout=wait) if wait > 0 else self._results.get_nowait()
            except queue.Empty:
                if self._clock() >= deadline:
                    break
                continue
            if seq not in self._pending:
                continue
            del self._pending[seq]
            if exc is None:
                self.stats.acked += 1
            elif attempt < self.max_retries and not self.abandon.is_set():
                delay = min(self.backoff_max, self.backoff_base * 2**attempt)
                if attempt == 0:
                    self._on_event(f"publish not acknowledged ({exc}); retrying with backoff")
                heapq.heappush(self._retry, (self._clock() + delay, seq, payload, attempt + 1))
                self._pending[seq] = (payload, attempt + 1)
            else:
                self.stats.failed += 1
                if len(self.stats.failed_examples) < 5:
                    self.stats.failed_examples.append(f"{payload.decode()[:120]} ({exc})")
            self._on_progress(self.stats)
            timeout = 0.0
            deadline = min(deadline, self._clock())

    def _sleep_until(self, when: float) -> None:
        while not self.stop.is_set():
            left = when - self._clock()
            if left <= 0:
                return
            self._process(min(left, 0.2))

    # -- API ---------------------------------------------------------------------------------------------------
    def payload(self, raw: dict[str, Any]) -> tuple[Record, bytes]:
        record = validate(raw, self.spec)
        if self.first_timestamp is None:
            self.first_timestamp = record.timestamp
        if self.injection is not None:
            record = self.injection.apply(record, self.first_timestamp, self.spec)
        data = json.dumps(record.to_dict(self.spec), separators=(",", ":")).encode()
        return record, data

    def run(self, records: Iterable[dict[str, Any]], total: int | None = None) -> PublishStats:
        self.stats.total = total
        started = self._clock()
        first_ts: datetime | None = None
        next_slot = started
        it: Iterator[dict[str, Any]] = iter(records)
        while not self.stop.is_set():
            try:
                raw = next(it)
            except StopIteration:
                break
            self.stats.taken += 1
            try:
                record, data = self.payload(raw)
            except RecordError as exc:
                self.stats.invalid += 1
                if len(self.stats.invalid_examples) < 5:
                    self.stats.invalid_examples.append(f"record {self.stats.taken}: {exc}")
                self._on_progress(self.stats)
                continue
            if self.pacing.speed > 0:
                first_ts = first_ts or record.timestamp
                due = started + (record.timestamp - first_ts).total_seconds() / self.pacing.speed
                self._sleep_until(due)
            if self.pacing.rate > 0:
                self._sleep_until(next_slot)
                next_slot = max(next_slot, self._clock() - 1.0) + 1.0 / self.pacing.rate
            while len(self._pending) >= self.max_in_flight and not self.stop.is_set():
                self._process(0.2)
            if self.stop.is_set():  # stopped while waiting: this record was not sent
                self.stats.taken -= 1
                break
            self._seq += 1
            self.stats.sent += 1
            self._send(self._seq, data, 0)
            self._process(0.0)
            self._on_progress(self.stats)
        self.stats.stopped_early = self.stop.is_set()
        self.drain()
        return self.stats

    def drain(self) -> None:
        """Wait for every outstanding acknowledgement (and retry) up to ``drain_timeout``."""
        deadline = self._clock() + self.drain_timeout
        while self._pending and self._clock() < deadline and not self.abandon.is_set():
            self._process(min(0.2, max(0.0, deadline - self._clock())))
        self.stats.unconfirmed = len(self._pending)
        self._on_progress(self.stats)
