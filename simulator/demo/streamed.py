"""What the two streamed presets (air-quality: IoT Core, ecommerce: Kinesis) share once records flow through
Firehose into the interval folders and the scheduled detector: counting its runs, reading the alerts as they are
delivered, and, at the end, reading S3 back, recomputing the bands and writing the report and ``alerts.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sentinel_core import environment, store
from sentinel_core.intervals import interval_seconds
from sentinel_core.records import Record
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from simulator import datagen
from simulator.demo import readback, report, scoring
from simulator.demo.result import Counts, DemoOptions, DemoResult, Observer, ReceivedAlert
from simulator.demo.synth import not_played_notes


@dataclass
class Stream:
    """One streamed run in progress: the pipeline, its counts and the alerts received so far."""

    options: DemoOptions
    spec: PipelineSpec
    pipeline: LocalPipeline
    observer: Observer
    synthesized: bool
    counts: Counts = field(default_factory=Counts)
    alerts: list[ReceivedAlert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    topic_arn: str = field(init=False)
    offset: int = field(init=False)  # seconds after an interval closes when the schedule runs the detector
    step: int = field(init=False)
    bucket: str = field(init=False)
    s3: Any = field(init=False)
    feed: readback.AlertFeed = field(init=False)

    def __post_init__(self) -> None:
        # the single detector, or the sharded detector's merge (it alerts): the same settings
        sharded = "detector_merge" in self.pipeline.handler_packages()
        env = self.pipeline.env_of("detector_merge" if sharded else "detector")
        self.topic_arn = env[environment.ALERT_TOPIC_ARN]
        self.offset = int(env.get(environment.SCHEDULE_OFFSET_SECONDS, "0") or 0)
        self.step = interval_seconds(self.spec.interval)
        self.bucket = self.pipeline.data_bucket
        self.s3 = self.pipeline.client("s3")
        to = readback.people(self.pipeline.client("sns"), self.topic_arn)
        self.feed = readback.AlertFeed(self.pipeline, self.topic_arn, to)
        self.notes.extend(not_played_notes(self.pipeline.unsupported))

    def tick(self, now: datetime) -> None:
        """Run what is due by ``now`` (schedules, Firehose buffers); count the detector runs; read new alerts."""
        fired_at: datetime | None = None
        machines = {sm.name for sm in self.pipeline.state_machines.values()}
        for name, at, response in self.pipeline.tick(now):
            if name in machines:  # the sharded detector: the execution's output is the merge's report
                response = response.get("output") if isinstance(response, dict) else None
            elif self.pipeline.function(name).package != "detector":
                continue
            fired_at = at
            self.counts.detector_runs += 1
            if isinstance(response, dict):
                self.counts.intervals_scored += int(response.get("intervals_scored", 0))
                self.counts.series_scored += int(response.get("series_scored", 0))
                self.counts.records_scored += int(response.get("records", 0))
                self.counts.late_records += int(response.get("late_records", 0))
        alerts, commands = self.feed.read(fired_at or self.pipeline.now)
        self.counts.commands += commands
        for alert in alerts:
            self.alerts.append(alert)
            self.observer.alert(alert)

    def drain(self, live_end: datetime) -> None:
        """Let the last interval close, Firehose flush and the detector score it; then take the ledger's counts."""
        # The detector run that scores the last interval with data (live_end - step), and no later one: a later
        # interval has no records because the simulation ended, and zero-filled counts would call that an outage.
        final = live_end + timedelta(seconds=self.offset + 120)
        self.tick(final)
        self.pipeline.flush(final, force=True)
        ledger = self.pipeline.ledger
        c = self.counts
        c.firehose_in, c.delivered, c.failed, c.dropped = (
            ledger.records_in,
            ledger.delivered,
            ledger.failed,
            ledger.dropped,
        )
        c.pending = self.pipeline.pending
        c.rule_errors = ledger.iot_rule_errors
        c.alerts = len(self.alerts)

    def finish(
        self,
        history: Sequence[Record],
        labels: Sequence[datagen.Label],
        live_start: datetime,
        live_end: datetime,
        subtitle: str,
        parameters: list[tuple[str, str]],
        flow: list[str],
        source: str,
    ) -> DemoResult:
        """Read S3 back, recompute the bands, match labels and alerts, write report.html and alerts.jsonl."""
        self.observer.phase("Reading back S3, recomputing the expected bands, writing the report")
        spec, counts, out = self.spec, self.counts, self.options.out
        objects = readback.list_objects(self.s3, self.bucket)
        live = readback.live_records(self.s3, self.bucket, spec, objects, counts)
        errors = readback.error_entries(self.pipeline, self.s3, self.bucket, spec, objects, counts)
        saved = store.load_state(self.s3, self.bucket, spec, shards=self.options.shards)
        lambda_detector: dict[str, Any] = (saved or {}).get("detector", {})
        last = scoring.last_interval(lambda_detector) or (live_end - timedelta(seconds=self.step))
        context_from = live_start - min(live_end - live_start, timedelta(hours=6))  # some history in each plot
        scores, replay_state = scoring.replay_scores(spec, history, live, live_start, last, context_from)
        state_matches = json.loads(json.dumps(replay_state)) == lambda_detector
        if not state_matches:
            self.notes.append(
                "The expected bands were recomputed with the detector core from the same S3 objects, but the "
                "recomputed model differs from the state the detector Lambda saved: plots may differ slightly from "
                "what it scored."
            )
        detections, false_alerts = scoring.match_detections(labels, self.alerts, self.step)
        panels = scoring.build_panels(spec, labels, self.alerts, scores, self.step, live_start)
        failures = []
        if counts.lost:
            failures.append(f"{counts.lost} record(s) lost between the source and S3")
        if counts.pending:
            failures.append(f"{counts.pending} record(s) still buffered in Firehose at the end")
        data = report.ReportData(
            title=report.title(spec.preset),
            subtitle=subtitle,
            parameters=parameters,
            summary=scoring.summary_cards(counts, detections, false_alerts, source),
            detections=detections,
            panels=panels,
            alerts=[readback.alert_entry(a) for a in self.alerts],
            bucket=self.bucket,
            s3_tree=report.prefix_counts(objects),
            errors=errors,
            flow=flow,
            notes=self.notes,
        )
        report_path = report.write_report(data, out / "report.html")
        readback.write_alerts(out / "alerts.jsonl", self.alerts)
        return DemoResult(
            options=self.options,
            spec=spec,
            bucket=self.bucket,
            counts=counts,
            labels=list(labels),
            alerts=self.alerts,
            detections=detections,
            errors=errors,
            panels=panels,
            objects=objects,
            report_path=report_path,
            notes=self.notes,
            state_matches=state_matches,
            false_alerts=false_alerts,
            synthesized=self.synthesized,
            source=source,
            failures=failures,
        )


def fmt(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")
