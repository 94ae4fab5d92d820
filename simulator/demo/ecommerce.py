"""The ecommerce demo: page views put to Kinesis, a broken checkout to find.

1. upload ``--days`` of aggregated page-view history under the historical prefix (the detector warms up on it);
2. stream ``--hours`` of live page views (one event per view, ``--locations`` page type x platform x marketplace
   combinations) through ``simulator.streaming``'s PutRecords sender into the stack's Kinesis stream, Firehose's
   transform, the interval folders and the scheduled detector, interval by interval in simulated time, with
   ``--anomalies`` checkout outages (checkout views drop to nothing for 40 minutes on every platform: no event at
   all, so the interval folders hold no record of those series and the detector scores them as 0, zero-filling
   the SUM measure, issue 15);
3. read back the alerts and S3 and write the report (``simulator.demo.streamed``), as the air-quality demo does.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sentinel_core import layout
from sentinel_core.intervals import floor_to_interval, interval_range, interval_seconds
from sentinel_core.records import validate
from sentinel_core.spec import PipelineSpec

from local_aws import LocalKinesis, LocalPipeline
from simulator import datagen
from simulator.demo.result import PRESET_DEFAULTS, DemoError, DemoOptions, DemoResult, Observer
from simulator.demo.streamed import Stream, fmt
from simulator.streaming import KinesisSender, broken_checkout, event_arrival, page_view_events

SOURCE = "page views put to Kinesis"
# Half the preset model's traffic: every interval still has tens of views per series (a 90 % drop stands out), and
# the run puts about half as many records through the in-process Firehose and transform (half the time).
TRAFFIC_SCALE = 0.5
OUTAGE_MINUTES = 40  # four 10-minute intervals: long enough to be a story, short enough to fit a 4-hour window
OUTAGE_AT = 0.55  # where in its share of the live window an outage starts (past the middle, after a quiet start)
# An outage to zero: the most important anomaly of business counts, and the one that produces no record at all
# (a 90 % drop still has records: only a drop to nothing shows that absent intervals are scored).
OUTAGE_MAGNITUDE = -1.0


def plan_outages(
    spec: PipelineSpec, entities: Sequence[tuple[str, ...]], start: datetime, end: datetime, count: int
) -> list[datagen.Label]:
    """``count`` checkout outages, one per equal share of the live window, each starting ``OUTAGE_AT`` into it."""
    if count == 0:
        return []
    share = (end - start) / count
    if share * (1 - OUTAGE_AT) < timedelta(minutes=OUTAGE_MINUTES):
        raise DemoError(
            f"{count} checkout outages of {OUTAGE_MINUTES} min do not fit in {(end - start).total_seconds() / 3600:g} "
            "live hours: use fewer --anomalies or more --hours"
        )
    labels: list[datagen.Label] = []
    for i in range(count):
        labels += broken_checkout(
            spec, entities, start + share * (i + OUTAGE_AT), OUTAGE_MINUTES, magnitude=OUTAGE_MAGNITUDE
        )
    return sorted(labels)


def scaled_history(
    spec: PipelineSpec, start: datetime, end: datetime, combos: int, seed: int, scale: float
) -> Iterator[dict[str, Any]]:
    """The preset model's aggregated history, its view counts scaled like the live traffic (randomly rounded)."""
    rng = random.Random(f"{seed}:history-scale")
    for rec in datagen.generate_records(spec, start, end, combos, seed):
        v = rec["views"] * scale
        rec["views"] = math.floor(v) + (1 if rng.random() < v - math.floor(v) else 0)
        yield rec


def flow_steps(spec: PipelineSpec, stream: str, bucket: str, offset: int) -> list[str]:
    return [
        f"Each page view is one JSON event put to Kinesis {stream} (PutRecords, batched, partition key: the session).",
        "Firehose reads the stream; its transform Lambda (real handler) validates each event and partitions it by "
        f"its own {spec.interval} interval into s3://{bucket}/{layout.live_root(spec)} (rejects to the error prefix).",
        f"EventBridge schedule runs the detector Lambda (real handler) every interval, {offset} s after it closes: "
        "it counts the views of each page type x platform x marketplace and scores every series.",
        "Alerts at or above the severity threshold: one SNS publish (KMS topic) with an SMS line, an e-mail text and "
        "Lookout for Metrics' JSON.",
    ]


def run(
    options: DemoOptions, spec: PipelineSpec, pipeline: LocalPipeline, synthesized: bool, obs: Observer
) -> DemoResult:
    step = interval_seconds(spec.interval)
    live0 = floor_to_interval(options.start, step)
    live1 = live0 + timedelta(seconds=max(1, round(options.hours * 3600 / step)) * step)
    hist0 = floor_to_interval(live0 - timedelta(days=options.days), step)
    combos = options.locations
    ents = datagen.resolve_entities(spec, combos)
    count = options.anomalies if options.anomalies is not None else PRESET_DEFAULTS[spec.preset].anomalies or 0
    try:
        labels = plan_outages(spec, ents, live0, live1, count)
    except ValueError as exc:  # no checkout series among the combinations
        raise DemoError(str(exc).replace("--combinations", "--locations")) from None
    data = options.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    datagen.write_labels(data / datagen.LABELS_FILE, labels)
    run = Stream(options, spec, pipeline, obs, synthesized)
    counts = run.counts

    obs.phase(f"Uploading {options.days:g} days of aggregated page-view history for {len(ents)} combinations")
    history_rows = list(scaled_history(spec, hist0, live0, combos, options.seed, TRAFFIC_SCALE))
    counts.history_records = len(history_rows)
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in history_rows)
    (data / datagen.HISTORY_FILE).write_text(text, encoding="utf-8")
    pipeline.upload(
        run.bucket, layout.historical_prefix(spec) + datagen.HISTORY_FILE, text, now=live0 - timedelta(hours=1)
    )

    (stream,) = pipeline.template.of_type("AWS::Kinesis::Stream")
    intervals = interval_range(live0, live1, step)
    outage = f"; checkout breaks {', '.join(sorted({f'{lb.start:%H:%M}' for lb in labels}))} UTC" if labels else ""
    obs.phase(f"Streaming {len(intervals)} live intervals of page views into Kinesis{outage}", len(intervals))
    sender = KinesisSender(LocalKinesis(pipeline, event_arrival(spec)), stream.physical, rate=None)
    events = page_view_events(spec, live0, live1, combos, options.seed, labels, TRAFFIC_SCALE, trend_origin=hist0)
    by_interval: dict[datetime, list[Any]] = {}
    for ev in events:
        by_interval.setdefault(floor_to_interval(ev.time, step), []).append(ev)
    for start in intervals:
        run.tick(start)
        batch = by_interval.get(start, [])
        sender.send(batch)
        counts.published += len(batch)
        counts.published_valid += len(batch)
        obs.advance()
    pipeline.flush(live1 + timedelta(seconds=90))  # the last interval's buffer, before its detector run
    run.drain(live1)
    run.notes.append(f"PutRecords calls: {sender.stats.calls:,} for {counts.published:,} page views.")

    history = [validate(r, spec) for r in history_rows]
    checkout = ", ".join(sorted({lb.series.label for lb in labels})) or "none"
    return run.finish(
        history,
        labels,
        live0,
        live1,
        subtitle=(
            f"{spec.description}. {len(ents)} page type x platform x marketplace combinations, {options.days:g} days "
            f"of history, then {len(intervals)} live intervals ({fmt(live0)} → {fmt(live1)} UTC, simulated time) of "
            f"page views put to Kinesis and played through the synthesized stack on moto. Broken checkout (views drop "
            f"to nothing): {checkout}."
        ),
        parameters=[
            ("preset", spec.preset),
            ("seed", str(options.seed)),
            ("history", f"{options.days:g} d"),
            ("live", f"{options.hours:g} h"),
            ("combinations", str(len(ents))),
            ("checkout outages", str(count)),
            ("traffic scale", f"{TRAFFIC_SCALE:g}"),
            ("severity threshold", f"{spec.severity_threshold:g}"),
        ],
        flow=flow_steps(spec, stream.physical, run.bucket, run.offset),
        source=SOURCE,
    )
