"""``python -m simulator stream --preset ecommerce``: page-view traffic into a Kinesis data stream."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.spec import SpecError, get_preset

from simulator.commands.options import Region, parse_start
from simulator.datagen import resolve_entities, write_labels
from simulator.errors import OperationError, UsageError, as_cli_error
from simulator.streaming import (
    Event,
    KinesisSender,
    PutRecordsClient,
    SendStats,
    broken_checkout,
    page_view_events,
)

console = Console(stderr=True)


def _start(text: str | None, minutes: float, step: int) -> datetime:
    start = parse_start(text)
    if start is None:  # the window ends now: every event is in the past when it arrives (future-clock check)
        return floor_to_interval(datetime.now(UTC), step) - timedelta(minutes=minutes)
    return start


def stream(
    preset: Annotated[str, typer.Option(help="A Kinesis-ingest preset.")] = "ecommerce",
    stream_name: Annotated[
        str | None, typer.Option(envvar="SENTINEL_STREAM_NAME", help="Kinesis data stream (the stack's output).")
    ] = None,
    minutes: Annotated[float, typer.Option(min=1, help="Minutes of traffic to send.")] = 60.0,
    start: Annotated[str | None, typer.Option(help="Time of the first event (UTC). Default: --minutes ago.")] = None,
    combinations: Annotated[
        int, typer.Option(min=1, help="(page type, platform, marketplace) combinations, biggest market first.")
    ] = 18,
    scale: Annotated[float, typer.Option(min=0.001, help="Traffic multiplier (1 = ~16k views/hour for 18).")] = 1.0,
    rate: Annotated[float, typer.Option(min=1, help="Rate limit, records per second.")] = 1000.0,
    drop: Annotated[bool, typer.Option(help="Inject a broken checkout (labelled).")] = True,
    drop_at: Annotated[
        float | None, typer.Option(help="Minutes after --start when checkout breaks (default: middle).")
    ] = None,
    drop_minutes: Annotated[float, typer.Option(min=1, help="How long checkout stays broken.")] = 30.0,
    drop_platform: Annotated[
        str | None, typer.Option(help="Break checkout on one platform only (web, ios, android).")
    ] = None,
    labels: Annotated[Path, typer.Option(help="Where to write the labels of the injected drop.")] = Path(
        "out/stream/labels.csv"
    ),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts per record before giving up.")] = 6,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Generate and count, send nothing.")] = False,
    region: Region = None,
) -> None:
    """Send e-commerce page views (daily seasonality, funnel, markets) to a Kinesis data stream with PutRecords.

    Batches of up to 500 records, only failed entries retried with exponential backoff, rate-limited. A broken
    checkout (checkout views drop ~90 %) is injected and labelled unless --no-drop.
    """
    try:
        spec = get_preset(preset)
        if spec.ingest != "kinesis":
            raise SpecError(f"preset {preset!r} does not ingest from Kinesis (its ingest is {spec.ingest})")
        step = interval_seconds(spec.interval)
        t0 = _start(start, minutes, step)
        t1 = t0 + timedelta(minutes=minutes)
        ents = resolve_entities(spec, combinations)
        planned = []
        if drop:
            at = t0 + timedelta(minutes=minutes / 2 if drop_at is None else drop_at)
            if not t0 <= at < t1:
                raise ValueError("--drop-at must fall inside the --minutes window")
            planned = broken_checkout(spec, ents, at, min(drop_minutes, (t1 - at).total_seconds() / 60), drop_platform)
        events = page_view_events(spec, t0, t1, combinations, seed, planned, scale)
    except (SpecError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not dry_run and not stream_name:
        raise UsageError("--stream-name (or SENTINEL_STREAM_NAME) is required unless --dry-run")
    write_labels(labels, planned)

    per_page: Counter[str] = Counter()

    def counted(evs: Any) -> Any:
        for ev in evs:
            per_page[json.loads(ev.data)["page_type"]] += 1
            yield ev

    target = f"stream {stream_name}" if not dry_run else "nowhere (dry run)"
    console.print(f"sending {spec.preset} page views {t0:%Y-%m-%d %H:%M} -> {t1:%H:%M} UTC to {target}")
    stats = SendStats()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("interval", total=int((t1 - t0).total_seconds() // step))
        done: set[datetime] = set()

        def ticked(evs: Any) -> Any:
            for ev in evs:
                iv = floor_to_interval(ev.time, step)
                if iv not in done:
                    done.add(iv)
                    progress.update(task, completed=len(done) - 1, description=f"{iv:%H:%M}")
                yield ev
            progress.update(task, completed=len(done))

        flow = ticked(counted(events))
        if dry_run:
            sample: list[Event] = []
            for ev in flow:
                stats.records += 1
                if len(sample) < 3:
                    sample.append(ev)
        else:
            import boto3

            client = boto3.client("kinesis", region_name=region) if region else boto3.client("kinesis")
            sender = KinesisSender(
                cast(PutRecordsClient, client), str(stream_name), rate=rate, max_attempts=max_attempts
            )
            try:
                stats = sender.send(flow)
            except Exception as exc:  # a non-retryable error (no such stream, access denied): say which
                error = as_cli_error(exc)
                if error is None:
                    raise
                raise type(error)(f"PutRecords to stream {stream_name!r} failed: {error.message}") from None
    _summary(stats, per_page, planned, labels, dry_run)
    if dry_run:
        for ev in sample:
            console.print(f"  e.g. {ev.data.decode()}")
    if stats.failed:
        raise OperationError(f"{len(stats.failed):,} record(s) not delivered after {max_attempts} attempts")


def _summary(stats: SendStats, per_page: Counter[str], planned: list[Any], labels: Path, dry_run: bool) -> None:
    table = Table(title="stream summary" + (" (dry run: nothing sent)" if dry_run else ""))
    table.add_column("what")
    table.add_column("value", justify="right")
    for page, n in sorted(per_page.items()):
        table.add_row(f"{page} views", f"{n:,}")
    table.add_row("records " + ("generated" if dry_run else "accepted"), f"{stats.records:,}")
    if not dry_run:
        table.add_row("PutRecords calls", f"{stats.calls:,}")
        table.add_row("entries retried", f"{stats.retried_entries:,}")
        table.add_row("throttled entries", f"{stats.throttled:,}")
        table.add_row("failed (gave up)", f"{len(stats.failed):,}")
        table.add_row("waited (rate limit + backoff)", f"{stats.waited_seconds:.1f}s")
    if planned:
        first = planned[0]
        table.add_row("broken checkout", f"{first.start:%H:%M}-{first.end:%H:%M} on {len(planned)} series")
    table.add_row("labels", str(labels))
    console.print(table)
    for ev, err in stats.failed[:5]:
        console.print(f"[red]not delivered:[/red] {err}: {ev.data[:120].decode(errors='replace')}")
