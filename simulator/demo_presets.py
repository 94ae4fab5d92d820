"""Offline demos of the loyalty and ecommerce presets, on the synthesized stack played by the local runtime.

Same machinery as the air-quality demo (``simulator.demo_run``: cached real synth, moto, fake credentials, the
Lambdas' logs to ``<out>/lambda-logs.jsonl``, alerts read back per SNS protocol); only the feeding differs:

* loyalty: ``simulator.uploads`` writes a year of daily store points with labelled anomalies and a few bad rows;
  uploading it under the upload prefix fires the stack's S3 notification into the backtest job (the real
  handler). Printed: the per-row error report, the summary alert and the alerts above 91, labels vs groups.
* ecommerce: a week of aggregated page-view history warms the detector up; then live page views (with a broken
  checkout) go through ``simulator.streaming``'s PutRecords sender into the Kinesis stream, Firehose's transform,
  the interval folders and the scheduled detector, interval by interval in simulated time. Printed: each alert's
  SMS and e-mail, injected vs detected.

Like the air-quality demo, each prints injected vs detected (misses in red) and returns 1 only when the pipeline
itself failed (the job rejected the file, records were lost), else 0.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from sentinel_core import layout, store
from sentinel_core.intervals import floor_to_interval, interval_range, interval_seconds
from sentinel_core.spec import PipelineSpec, get_preset

from local_aws import LocalKinesis
from simulator import datagen, demo_run
from simulator.streaming import KinesisSender, broken_checkout, event_arrival, page_view_events
from simulator.uploads import generate_upload

LOYALTY_END = datetime(2026, 3, 19, tzinfo=UTC)  # the demo's fixed "today" (a Thursday)
ECOMMERCE_LIVE = datetime(2026, 3, 19, 10, 0, tzinfo=UTC)


@contextlib.contextmanager
def _offline(pipeline: Any, out: Path) -> Iterator[None]:
    from moto import mock_aws

    with contextlib.ExitStack() as stack:
        log = stack.enter_context((out / "lambda-logs.jsonl").open("w", encoding="utf-8"))
        stack.enter_context(demo_run.offline_environment(pipeline.region))
        stack.enter_context(mock_aws())
        demo_run.fresh_lambda_modules()
        for name, module in list(sys.modules.items()):  # the same for the backtest job's cold-start cache
            if name.split(".")[0] == "backtest_job" and module is not None:
                for value in list(vars(module).values()):
                    if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                        value.cache_clear()
        demo_run.LAMBDA_LOG.target = log
        stack.callback(setattr, demo_run.LAMBDA_LOG, "target", None)
        stack.enter_context(contextlib.redirect_stdout(demo_run.LAMBDA_LOG))
        stack.enter_context(contextlib.redirect_stderr(demo_run.LAMBDA_LOG))
        yield


def _load(spec: PipelineSpec, out: Path, console: Console) -> Any:
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]1.[/] synthesizing the {spec.preset} stack (real CDK synth, cached by source hash)")
    pipeline, synthesized = demo_run.load_pipeline(spec, out / "cdk.out")
    console.print(
        f"   {'synthesized' if synthesized else 'reused'} {pipeline.template.stack_name}: "
        f"{len(pipeline.template.resources)} resources"
    )
    return pipeline


def _notifications(pipeline: Any, topic_arn: str, seen: int) -> tuple[list[tuple[str, str | None]], int]:
    topic = demo_run._topic(pipeline.account, pipeline.region, topic_arn)
    sent = list(topic.sent_notifications) if topic is not None else []
    return [(m[1], m[2]) for m in sent[seen:]], len(sent)


# ----------------------------------------------------------------------------------------------------------------
# Loyalty
# ----------------------------------------------------------------------------------------------------------------
def run_loyalty_demo(console: Console, out: Path, seed: int = 7, locations: int = 20, days: float = 365.0) -> int:
    spec = get_preset("loyalty")
    pipeline = _load(spec, out, console)
    with _offline(pipeline, out):
        pipeline.start()
        bucket = pipeline.data_bucket
        env = pipeline.env_of("backtest_job")
        to = demo_run.recipients(pipeline.client("sns"), env["ALERT_TOPIC_ARN"])
        summary = generate_upload(
            out / "data", spec, days=days, locations=locations, seed=seed, end=LOYALTY_END, bad_rows=4
        )
        console.print(
            f"[bold]2.[/] generated {summary.file} ({summary.records:,} rows + {summary.bad_rows} bad ones, "
            f"{len(summary.labels)} labelled anomalies in the last 30 %)"
        )
        key = f"{layout.upload_prefix(spec)}{summary.file.name}"
        console.print(f"[bold]3.[/] uploading to s3://{bucket}/{key}: the bucket notification runs the backtest job")
        fired = pipeline.upload(bucket, key, summary.file.read_bytes(), now=LOYALTY_END + timedelta(hours=8))
        s3 = pipeline.client("s3")
        report = json.loads(s3.get_object(Bucket=bucket, Key=key + ".report.json")["Body"].read())
        errors_text = (
            s3.get_object(Bucket=bucket, Key=report["errors_key"])["Body"].read().decode()
            if report.get("errors_key")
            else ""
        )
        groups = store.list_groups(pipeline.client("dynamodb"), env["ANOMALY_TABLE"], env["DETECTOR_ID"], limit=1000)
        messages, _ = _notifications(pipeline, env["ALERT_TOPIC_ARN"], 0)
    console.print(f"   {fired} invocation(s); job status {report['status']}: {report.get('summary', '')}")

    table = Table(title=f"Per-row error report: s3://{bucket}/{report.get('errors_key')}", header_style="bold")
    for col in ("line", "column", "reason", "message"):
        table.add_column(col)
    for row in csv.DictReader(io.StringIO(errors_text)):
        table.add_row(row["line"], row["column"], row["reason"], row["message"][:90])
    console.print(table)
    console.print(
        f"learned on {report['learn_intervals']} days, reported on {report['report_intervals']} "
        f"(from {str(report['report_start'])[:10]}); {report['groups']} anomaly groups, "
        f"{report['groups_at_threshold']} at or above {spec.severity_threshold:g}"
    )
    phones = ", ".join(r.endpoint for r in to if r.protocol == "sms") or "-"
    for message, subject in messages:
        doc = json.loads(message)
        default = json.loads(doc["default"])
        is_summary = default.get("type") == "backtestSummary"
        body = doc["email"] if is_summary else doc["sms"]
        console.print(
            Panel(
                f"[dim]SMS to {phones}:[/]\n[bold]{doc['sms']}[/]"
                + (f"\n\n[dim]E-mail — {subject}[/]\n{body.rstrip()}" if is_summary else ""),
                title="summary alert" if is_summary else f"alert · severity {default.get('anomalyScore', 0):.0f}",
                border_style="cyan" if is_summary else "red",
                expand=False,
            )
        )
    found = 0
    det = Table(title="Injected vs reported", header_style="bold")
    for col in ("series", "injected", "days", "reported group", "severity"):
        det.add_column(col)
    for lab in summary.labels:
        hits = [
            g
            for g in groups
            if lab.series_id in g.series_ids and g.start <= lab.end + timedelta(days=1) and g.end >= lab.start
        ]
        best = max(hits, key=lambda g: g.score) if hits else None
        found += best is not None
        det.add_row(
            lab.series.label,
            f"{lab.kind} {lab.magnitude:+.0%}",
            f"{lab.start:%Y-%m-%d} → {lab.end:%m-%d}",
            f"[green]{best.start:%Y-%m-%d} → {best.end:%m-%d}[/]" if best else "[red]missed[/]",
            f"{best.score:.0f}" if best else "–",
        )
    console.print(det)
    console.print(f"injected anomalies found: {found} / {len(summary.labels)} · logs: {out / 'lambda-logs.jsonl'}")
    return 0 if report["status"] == "ok" and fired == 1 else 1


# ----------------------------------------------------------------------------------------------------------------
# E-commerce
# ----------------------------------------------------------------------------------------------------------------
def _scaled_history(
    spec: PipelineSpec, start: datetime, end: datetime, combos: int, seed: int, scale: float
) -> Iterator[dict[str, Any]]:
    rng = random.Random(f"{seed}:history-scale")
    for rec in datagen.generate_records(spec, start, end, combos, seed):
        v = rec["views"] * scale
        rec["views"] = math.floor(v) + (1 if rng.random() < v - math.floor(v) else 0)
        yield rec


def run_ecommerce_demo(
    console: Console, out: Path, seed: int = 7, combinations: int = 9, days: float = 14.0, hours: float = 4.0,
    scale: float = 0.5,
) -> int:  # fmt: skip
    spec = get_preset("ecommerce")
    step = interval_seconds(spec.interval)
    pipeline = _load(spec, out, console)
    live0 = ECOMMERCE_LIVE
    live1 = live0 + timedelta(hours=hours)
    hist0 = floor_to_interval(live0 - timedelta(days=days), step)
    ents = datagen.resolve_entities(spec, combinations)
    labels = broken_checkout(spec, ents, live0 + (live1 - live0) * 0.55, 40)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    datagen.write_labels(data / datagen.LABELS_FILE, labels)
    alerts: list[demo_run.ReceivedAlert] = []
    with _offline(pipeline, out):
        pipeline.start()
        bucket = pipeline.data_bucket
        env = pipeline.env_of("detector")
        topic_arn = env["ALERT_TOPIC_ARN"]
        offset = int(env.get("SCHEDULE_OFFSET_SECONDS", "0") or 0)
        to = demo_run.recipients(pipeline.client("sns"), topic_arn)
        (stream,) = pipeline.template.of_type("AWS::Kinesis::Stream")
        history = "".join(
            json.dumps(r, separators=(",", ":")) + "\n"
            for r in _scaled_history(spec, hist0, live0, combinations, seed, scale)
        )
        pipeline.upload(
            bucket, layout.historical_prefix(spec) + "history.json", history, now=live0 - timedelta(hours=1)
        )
        console.print(
            f"[bold]2.[/] uploaded {days:g} days of page-view history ({history.count(chr(10)):,} aggregated rows) "
            "under the historical prefix: the detector warms up on its first run"
        )
        console.print(
            f"[bold]3.[/] streaming {hours:g} h of page views ({combinations} page type x platform x marketplace "
            f"combinations) into Kinesis {stream.physical}; checkout breaks {labels[0].start:%H:%M}-"
            f"{labels[0].end + timedelta(seconds=step):%H:%M} UTC (simulated time)"
        )
        sender = KinesisSender(LocalKinesis(pipeline, event_arrival(spec)), stream.physical, rate=None)
        seen = 0

        def collect(at: datetime) -> None:
            nonlocal seen
            pipeline.tick(at)
            new, seen = _notifications(pipeline, topic_arn, seen)
            for message, subject in new:
                alert = demo_run.parse_alert(message, subject, at, to)
                alerts.append(alert)
                console.print(
                    Panel(
                        f"[bold]{alert.sms}[/]\n\n[dim]E-mail — {alert.subject}[/]\n{alert.email.rstrip()}",
                        title=f"alert {len(alerts)} · severity {alert.severity:.0f} · {alert.where}",
                        border_style="red",
                        expand=False,
                    )
                )

        sent = 0
        events = page_view_events(spec, live0, live1, combinations, seed, labels, scale, trend_origin=hist0)
        by_interval: dict[datetime, list[Any]] = {}
        for ev in events:
            by_interval.setdefault(floor_to_interval(ev.time, step), []).append(ev)
        for start in interval_range(live0, live1, step):
            collect(start)
            batch = by_interval.get(start, [])
            sender.send(batch)
            sent += len(batch)
        final = live1 + timedelta(seconds=2 * step + offset + 120)
        pipeline.flush(live1 + timedelta(seconds=90))
        collect(final)
        pipeline.flush(final, force=True)
        ledger = pipeline.ledger
    detections, false_alerts = demo_run.match_detections(labels, alerts, step)
    table = Table(title="Injected vs detected", header_style="bold")
    for col in ("series", "injected", "window (UTC)", "detected", "severity"):
        table.add_column(col)
    for d in detections:
        table.add_row(
            d.series,
            f"{d.kind} {d.magnitude:+.0%}",
            f"{d.start:%H:%M} → {d.end:%H:%M}",
            f"[green]{d.detected_at:%H:%M}[/]" if d.detected_at else "[red]missed[/]",
            f"{d.severity:.0f}" if d.severity is not None else "–",
        )
    console.print(table)
    lost = ledger.records_in - ledger.delivered - ledger.failed - ledger.dropped
    console.print(
        f"page views sent {sent:,} (PutRecords calls {sender.stats.calls:,}); Firehose in {ledger.records_in:,}, "
        f"delivered {ledger.delivered:,}, failed {ledger.failed:,}, lost {lost:,}; alerts {len(alerts)} "
        f"({false_alerts} outside the injected window) · logs: {out / 'lambda-logs.jsonl'}"
    )
    found = sum(1 for d in detections if d.detected_at is not None)
    console.print(f"injected anomalies found: {found} / {len(detections)}")
    return 0 if lost == 0 and ledger.records_in == sent else 1


PRESET_DEMOS = ("loyalty", "ecommerce")


def run_preset_demo(console: Console, preset: str, out: Path, seed: int = 7) -> int:
    """``python -m simulator demo --preset loyalty|ecommerce``: output under ``<out>/<preset>/``."""
    console.rule(f"[bold]Metric Sentinel offline demo[/] · preset {preset} · seed {seed}")
    if preset == "loyalty":
        return run_loyalty_demo(console, out / preset, seed=seed)
    if preset == "ecommerce":
        return run_ecommerce_demo(console, out / preset, seed=seed)
    raise ValueError(f"no preset demo for {preset!r}; choose one of {', '.join(PRESET_DEMOS)}")
