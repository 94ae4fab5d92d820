"""The loyalty demo: a store chain's CSV export uploaded to S3, backtested by the stack's job.

1. ``simulator.uploads`` writes ``--days`` of daily points for ``--locations`` stores ending at ``--start``, with
   labelled anomalies in the part a backtest reports on (``--anomalies``; default one per 20 days of that part)
   and a few bad rows (one of each per-row problem);
2. uploading it under the upload prefix ``--hours`` after ``--start`` fires the stack's S3 notification into the
   backtest job (the real handler): per-row error report, anomaly groups in DynamoDB, one summary alert and an
   alert per group at or above the threshold;
3. read back the job's report, the error report, the groups and the alerts; a label is found when a reported group
   of its series overlaps it (a day of grace); the plots are the same detector core on the same uploaded rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sentinel_core import csv_input, environment, layout, store
from sentinel_core.intervals import interval_seconds, to_utc
from sentinel_core.model import AnomalyGroup
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from simulator import datagen
from simulator.demo import readback, report, scoring
from simulator.demo.result import Counts, DemoError, DemoOptions, DemoResult, Observer
from simulator.demo.synth import not_played_notes
from simulator.uploads import BAD_ROW_EXAMPLES, generate_upload

SOURCE = "CSV rows uploaded"
CONTEXT_DAYS = 45  # days of the learning part each plot shows before the report window
GROUP_LIMIT = 1000  # groups read back from DynamoDB: a year of 20 stores gives a few dozen


def match_groups(
    labels: Sequence[datagen.Label], groups: Sequence[AnomalyGroup], step: int
) -> list[report.DetectionRow]:
    """Each label with the highest-scored reported group of its series that overlaps it (one interval of grace)."""
    grace = timedelta(seconds=step)
    rows: list[report.DetectionRow] = []
    for lab in labels:
        hits = [
            g for g in groups if lab.series_id in g.series_ids and g.start <= lab.end + grace and g.end >= lab.start
        ]
        best = max(hits, key=lambda g: g.score) if hits else None
        # detected at: where the reported group begins
        rows.append(scoring.detection_row(lab, to_utc(best.start) if best else None, best.score if best else None))
    return rows


def run(
    options: DemoOptions, spec: PipelineSpec, pipeline: LocalPipeline, synthesized: bool, obs: Observer
) -> DemoResult:
    out = options.out
    step = interval_seconds(spec.interval)
    notes: list[str] = not_played_notes(pipeline.unsupported)
    bucket = pipeline.data_bucket
    env = pipeline.env_of("backtest_job")
    topic_arn = env[environment.ALERT_TOPIC_ARN]
    feed = readback.AlertFeed(pipeline, topic_arn, readback.people(pipeline.client("sns"), topic_arn))
    s3 = pipeline.client("s3")

    obs.phase(f"Generating {options.days:g} days of daily points for {options.locations} stores")
    bad_rows = len(BAD_ROW_EXAMPLES) if options.malformed else 0  # one of each per-row problem
    try:
        summary = generate_upload(
            out / "data",
            spec,
            days=options.days,
            locations=options.locations,
            seed=options.seed,
            end=options.start,
            anomalies=options.anomalies,
            bad_rows=bad_rows,
        )
    except ValueError as exc:
        raise DemoError(str(exc)) from None
    obs.note(
        f"{summary.file}: {summary.records:,} rows + {summary.bad_rows} bad ones, {len(summary.labels)} labelled "
        f"anomalies in the report window (from {summary.report_start:%Y-%m-%d})"
    )
    key = f"{layout.upload_prefix(spec)}{summary.file.name}"
    upload_at = options.start + timedelta(hours=options.hours)
    obs.phase(f"Uploading to s3://{bucket}/{key}: the bucket notification runs the backtest job")
    fired = pipeline.upload(bucket, key, summary.file.read_bytes(), now=upload_at)
    alerts, _commands = feed.read(upload_at)
    for alert in alerts:
        obs.alert(alert)

    obs.phase("Reading back the job's report, the groups and S3, writing the report")
    job: dict[str, Any] = json.loads(readback.read_text(s3, bucket, key + ".report.json"))
    errors_key = job.get("errors_key")
    error_rows = list(csv.DictReader(io.StringIO(readback.read_text(s3, bucket, errors_key)))) if errors_key else []
    table, detector_id = env[environment.ANOMALY_TABLE], env[environment.DETECTOR_ID]
    groups = store.list_groups(pipeline.client("dynamodb"), table, detector_id, GROUP_LIMIT)
    objects = readback.list_objects(s3, bucket)

    counts = Counts(
        published=summary.records + summary.bad_rows,
        published_valid=summary.records,
        published_malformed=summary.bad_rows,
        s3_data_lines=int(job.get("good_rows", 0)),
        s3_error_lines=len(error_rows),
        detector_runs=fired,
        intervals_scored=int(job.get("learn_intervals", 0)) + int(job.get("report_intervals", 0)),
        series_scored=int(job.get("series", 0)),
        alerts=len(alerts),
        history_records=summary.records,
    )
    errors = [
        report.ErrorEntry(f"s3://{bucket}/{errors_key} line {r['line']}", f"{r['reason']}: {r['message']}", r["row"])
        for r in error_rows
    ]
    failures: list[str] = []
    if job.get("status") != "ok":
        failures.append(f"the backtest job did not accept the upload ({job.get('status')}): {job.get('message')}")
    if fired != 1:
        failures.append(f"the upload ran the backtest job {fired} time(s), not once")
    if counts.lost:
        failures.append(f"{counts.lost} row(s) of the upload neither used nor in the error report")
    notes.append(
        f"The backtest learned on {job.get('learn_intervals')} days and reported on {job.get('report_intervals')} "
        f"(from {str(job.get('report_start'))[:10]}): {job.get('groups')} anomaly groups, "
        f"{job.get('groups_at_threshold')} at or above {spec.severity_threshold:g} (one alert each, at most "
        "20 per file), and one summary alert."
    )

    # The plots: the same detector core on the rows the job used, learning part then report window.
    records, _parse = csv_input.parse_csv(readback.read_text(s3, bucket, key).splitlines(), spec)
    report_start = (
        to_utc(datetime.fromisoformat(str(job["report_start"]))) if job.get("report_start") else summary.report_start
    )
    learn = [r for r in records if to_utc(r.timestamp) < report_start]
    reported = [r for r in records if to_utc(r.timestamp) >= report_start]
    last = max((to_utc(r.timestamp) for r in records), default=report_start)
    context_from = report_start - timedelta(days=CONTEXT_DAYS)
    scores, _state = scoring.replay_scores(spec, learn, reported, report_start, last, context_from)
    detections = match_groups(summary.labels, groups, step)
    _rows, false_alerts = scoring.match_detections(summary.labels, alerts, step)
    group_alerts = [a for a in alerts if not a.is_summary]
    panels = scoring.build_panels(spec, summary.labels, group_alerts, scores, step, report_start)

    data = report.ReportData(
        title=report.title(spec.preset),
        subtitle=(
            f"{spec.description}. {len(summary.entities)} stores, {options.days:g} days of daily points "
            f"({summary.start:%Y-%m-%d} → {summary.end:%Y-%m-%d}) in one CSV uploaded to s3://{bucket}/{key} at "
            f"{upload_at:%Y-%m-%d %H:%M} UTC (simulated time); the backtest job ran on the synthesized stack on moto. "
            "Nothing touched a real AWS account."
        ),
        parameters=[
            ("preset", spec.preset),
            ("seed", str(options.seed)),
            ("days", f"{options.days:g}"),
            ("stores", str(len(summary.entities))),
            ("injected anomalies", str(len({(lb.start, lb.kind) for lb in summary.labels}))),
            ("bad rows", str(summary.bad_rows)),
            ("severity threshold", f"{spec.severity_threshold:g}"),
        ],
        summary=scoring.summary_cards(counts, detections, false_alerts, SOURCE, daily=step >= 86_400),
        detections=detections,
        panels=panels,
        alerts=[readback.alert_entry(a) for a in alerts],
        bucket=bucket,
        s3_tree=report.prefix_counts(objects),
        errors=errors,
        flow=[
            f"The store chain's export (one row per store and day) is uploaded to s3://{bucket}/{key}.",
            f"The bucket's notification (prefix {layout.upload_prefix(spec)}, suffix .csv) runs the backtest job "
            "Lambda (real handler).",
            "It validates every row (bad ones to a per-row error report next to the file), learns on the first "
            f"{1 - (spec.backtest_fraction or 0):.0%} of the days and reports anomaly groups on the rest (DynamoDB).",
            "One summary alert for the file and one alert per group at or above the severity threshold (SNS, KMS "
            f"topic); the job's own report: s3://{bucket}/{key}.report.json.",
        ],
        notes=notes,
        daily=step >= 86_400,
    )
    report_path = report.write_report(data, out / "report.html")
    readback.write_alerts(out / "alerts.jsonl", alerts)
    return DemoResult(
        options=options,
        spec=spec,
        bucket=bucket,
        counts=counts,
        labels=list(summary.labels),
        alerts=alerts,
        detections=detections,
        errors=errors,
        panels=panels,
        objects=objects,
        report_path=report_path,
        notes=notes,
        state_matches=None,
        false_alerts=false_alerts,
        synthesized=synthesized,
        source=SOURCE,
        failures=failures,
    )
