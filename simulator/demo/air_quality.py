"""The air-quality demo: sensors publish on MQTT, the stack's IoT topic rule takes it from there.

1. generate a clean history (``simulator.datagen``) and upload it under the historical prefix;
2. replay the live window interval by interval in simulated time: every location publishes its reading on its
   telemetry topic a few seconds after the interval closes (a few malformed payloads among them), the topic rule
   forwards to Firehose, whose transform Lambda (the real handler) partitions by the record's own interval, and
   the EventBridge schedule runs the detector Lambda (the real handler), whose alerts go to SNS; the automation
   Lambda (subscribed to the topic) sends a command back to the device;
3. read back what recipients and devices got and the S3 layout (``simulator.demo.streamed``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sentinel_core import layout
from sentinel_core.intervals import floor_to_interval, interval_range, interval_seconds
from sentinel_core.model import SeriesKey
from sentinel_core.records import OUTPUT_TIMESTAMP_FORMAT, validate
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from simulator import datagen
from simulator.demo.readback import lines
from simulator.demo.result import PRESET_DEFAULTS, DemoError, DemoOptions, DemoResult, Observer
from simulator.demo.streamed import Stream, fmt

KIND_CYCLE: tuple[datagen.AnomalyKind, ...] = ("spike", "shift", "drift")
# A silent sensor (issue 15): one location stops reporting for the last SILENT_INTERVALS live intervals; the
# detector reports its series after DetectorConfig.silent_intervals (3) of them, a "series went silent" alert. Six
# intervals (30 min at PT5M) leave room for the three and for the alert to arrive before the window ends.
SILENT_INTERVALS = 6
SOURCE = "device messages published (MQTT)"


@dataclass(frozen=True)
class Malformed:
    """A payload a faulty device sends: it must end up in the error prefix (or the rule's error action)."""

    at: datetime
    topic: str
    payload: bytes
    problem: str


def plan_live_anomalies(
    spec: PipelineSpec, start: datetime, end: datetime, entities: Sequence[tuple[str, ...]], seed: int, count: int
) -> list[datagen.Label]:
    """``count`` anomaly events spread over the live window, one per equal slot, kinds cycling spike/shift/drift."""
    if count == 0:
        return []
    step = interval_seconds(spec.interval)
    total = int((end - start).total_seconds() // step)
    slot = total // count
    if slot < 1:
        raise DemoError(
            f"{count} anomalies do not fit in {total} live intervals: use fewer --anomalies or more --hours"
        )
    margin = 3 if slot > 6 else 0  # keep events apart so each is its own detection target
    labels: list[datagen.Label] = []
    for i in range(count):
        s0 = start + timedelta(seconds=i * slot * step)
        s1 = start + timedelta(seconds=((i + 1) * slot - margin) * step)
        labels += datagen.plan_anomalies(
            spec, s0, s1, list(entities), f"{seed}:live:{i}", 1, kinds=(KIND_CYCLE[i % len(KIND_CYCLE)],)
        )
    return sorted(labels)


def plan_silent_sensor(
    spec: PipelineSpec, start: datetime, end: datetime, entities: Sequence[tuple[str, ...]]
) -> list[datagen.Label]:
    """The last location goes silent for the last ``SILENT_INTERVALS`` live intervals (the injected anomalies are
    planned before them): one label per measure, from the first missing interval to the one where the detector can
    tell (``silent_intervals`` = 3). None when the live window is shorter than four times that."""
    step = interval_seconds(spec.interval)
    if (end - start).total_seconds() // step < 4 * SILENT_INTERVALS or not entities:
        return []
    first = end - timedelta(seconds=SILENT_INTERVALS * step)
    last = first + timedelta(seconds=2 * step)
    return [
        datagen.Label(first, last, SeriesKey.of(m.name, spec, entities[-1]).id, "silent", -1.0) for m in spec.measures
    ]


def malformed_payloads(
    spec: PipelineSpec, start: datetime, end: datetime, entity: tuple[str, ...], step: int
) -> list[Malformed]:
    """Three faulty devices' messages spread over the live window: text, a non-numeric value, a clock 2 days ahead."""
    topic = spec.telemetry_topic(entity[0])
    span = end - start
    times = [floor_to_interval(start + span * f, step) + timedelta(seconds=step + 50) for f in (0.2, 0.5, 0.8)]
    dims = dict(zip(spec.dimensions, entity, strict=True))
    measures = spec.measure_names

    def rec(ts: datetime, **override: Any) -> bytes:
        doc: dict[str, Any] = {spec.timestamp_column: (ts - timedelta(seconds=step + 50)).strftime("%Y-%m-%d %H:%M")}
        doc.update(dims)
        doc.update({m: 1.0 for m in measures})
        doc.update(override)
        return json.dumps(doc).encode()

    future = times[2] + timedelta(days=2)
    return [
        Malformed(
            times[0], topic, f"{measures[0]}=2.6;{measures[-1]}=57 (firmware 0.9 text format)".encode(), "not JSON"
        ),
        Malformed(times[1], topic, rec(times[1], **{measures[0]: "n/a"}), f"{measures[0]} is not a number"),
        Malformed(
            times[2],
            topic,
            rec(times[2], **{spec.timestamp_column: future.strftime("%Y-%m-%d %H:%M")}),
            "device clock two days ahead",
        ),
    ]


def flow_steps(spec: PipelineSpec, pipeline: LocalPipeline, bucket: str, offset: int) -> list[str]:
    rule = pipeline.rules[0] if pipeline.rules else None
    fh = next(iter(pipeline.firehoses.values()), None)
    steps = [
        f"Each location's sensor publishes one JSON reading per {spec.interval} interval on "
        f"{spec.telemetry_topic('<location>')} (MQTT).",
    ]
    if rule is not None:
        steps.append(f"IoT Core topic rule {rule.name}: topic filter '{rule.sql.topic_filter}', the rule's SQL, "
                     "Firehose action (errors to the rule's error action).")  # fmt: skip
    if fh is not None:
        steps.append(
            f"Firehose {fh.name}: {fh.interval_seconds} s buffer, the transform Lambda (real handler) validates and "
            f"partitions by the record's own interval into s3://{bucket}/{fh.prefix} ; rejects go to {fh.error_prefix}."
        )
    steps += [
        f"EventBridge schedule runs the detector Lambda (real handler) every interval, {offset} s after it closes: "
        "it reads exactly that interval's folder, scores every series, groups anomalies and stores them (DynamoDB).",
        "Alerts at or above the severity threshold: one SNS publish (KMS topic) with an SMS line, an e-mail text and "
        "Lookout for Metrics' JSON.",
        f"The automation Lambda (subscribed to the topic) sends a command to {spec.command_topic('<location>')}.",
    ]
    return steps


def run(
    options: DemoOptions, spec: PipelineSpec, pipeline: LocalPipeline, synthesized: bool, obs: Observer
) -> DemoResult:
    out = options.out
    step = interval_seconds(spec.interval)
    live0 = floor_to_interval(options.start, step)
    live1 = live0 + timedelta(seconds=max(1, round(options.hours * 3600 / step)) * step)
    hist0 = floor_to_interval(live0 - timedelta(days=options.days), step)
    ents = datagen.resolve_entities(spec, options.locations)
    run = Stream(options, spec, pipeline, obs, synthesized)
    counts = run.counts
    if options.days < 2:
        run.notes.append(
            f"Only {options.days:g} day(s) of history: the detector's daily profile has seen each time of day at most "
            "once, so its bands are rough and it misses more; use --days 2 or more (the default is 7)."
        )

    # -- history ------------------------------------------------------------------------------------------------
    obs.phase(f"Generating {options.days:g} days of history for {len(ents)} locations")
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    hist_file = data_dir / datagen.HISTORY_FILE
    counts.history_records = datagen.write_records(
        hist_file, spec, datagen.generate_rows(spec, hist0, live0, ents, options.seed), ents, "jsonl"
    )
    history_key = layout.historical_prefix(spec) + datagen.HISTORY_FILE
    pipeline.upload(run.bucket, history_key, hist_file.read_bytes(), now=live0 - timedelta(minutes=30))

    # -- live plan ----------------------------------------------------------------------------------------------
    anomalies = options.anomalies if options.anomalies is not None else PRESET_DEFAULTS[spec.preset].anomalies or 0
    silent = plan_silent_sensor(spec, live0, live1, ents) if anomalies else []
    labels = plan_live_anomalies(spec, live0, silent[0].start if silent else live1, ents, options.seed, anomalies)
    records = list(
        datagen.generate_records(spec, live0, live1, ents, options.seed, labels, trend_origin=hist0, missing=True)
    )
    if silent:  # the silent location sends nothing from the first silent interval on
        gone = tuple(v for _, v in silent[0].series.dimensions)
        since = silent[0].start.strftime(OUTPUT_TIMESTAMP_FORMAT)  # sortable: compared as text
        records = [
            r
            for r in records
            if not (tuple(str(r[d]) for d in spec.dimensions) == gone and str(r[spec.timestamp_column]) >= since)
        ]
    labels = sorted(labels + silent)
    datagen.write_labels(data_dir / datagen.LABELS_FILE, labels)
    malformed = malformed_payloads(spec, live0, live1, ents[0], step) if options.malformed else []
    ent_index = {e: i for i, e in enumerate(ents)}
    # Each device reports its interval average a few seconds after the interval closes (spread by location).
    events: list[tuple[datetime, int, str, bytes]] = []
    for rec in records:
        ent = tuple(str(rec[d]) for d in spec.dimensions)
        k = ent_index[ent]
        ts = datetime.strptime(str(rec[spec.timestamp_column]), OUTPUT_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        at = ts + timedelta(seconds=step + 3 + (k * 7) % 45)
        events.append((at, k, spec.telemetry_topic(ent[0]), json.dumps(rec, separators=(",", ":")).encode()))
    for m in malformed:
        events.append((m.at, -1, m.topic, m.payload))
    events.sort(key=lambda e: (e[0], e[1]))

    # -- streaming ----------------------------------------------------------------------------------------------
    intervals = interval_range(live0, live1, step)
    obs.phase(f"Streaming {len(intervals)} live intervals through IoT Core → Firehose → S3 → detector", len(intervals))
    by_interval: dict[datetime, list[tuple[datetime, int, str, bytes]]] = {}
    for ev in events:
        by_interval.setdefault(floor_to_interval(ev[0] - timedelta(seconds=step), step), []).append(ev)
    malformed_set = {m.payload for m in malformed}
    for start in intervals:
        run.tick(start + timedelta(seconds=step))
        for at, _k, mqtt_topic, payload in by_interval.get(start, []):
            pipeline.publish(mqtt_topic, payload, now=at, client_id=mqtt_topic.split("/")[-2])
            counts.published += 1
            if payload in malformed_set:
                counts.published_malformed += 1
            else:
                counts.published_valid += 1
        obs.advance()
    run.drain(live1)

    history = [validate(json.loads(line), spec) for line in lines(hist_file.read_text(encoding="utf-8"))]
    return run.finish(
        history,
        labels,
        live0,
        live1,
        subtitle=(
            f"{spec.description}. {len(ents)} locations, {options.days:g} days of history, then "
            f"{len(intervals)} live intervals ({fmt(live0)} → {fmt(live1)} UTC, simulated time) streamed through "
            "the synthesized stack on moto. Nothing touched a real AWS account."
        ),
        parameters=[
            ("preset", spec.preset),
            ("seed", str(options.seed)),
            ("history", f"{options.days:g} d"),
            ("live", f"{options.hours:g} h"),
            ("locations", str(len(ents))),
            ("injected anomalies", str(len({(lb.start, lb.kind) for lb in labels}))),
            ("severity threshold", f"{spec.severity_threshold:g}"),
        ],
        flow=flow_steps(spec, pipeline, run.bucket, run.offset),
        source=SOURCE,
    )
