"""``python -m simulator demo``: the whole pipeline offline, with the alerts people receive and an HTML report."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from sentinel_core.intervals import to_utc
from sentinel_core.records import parse_timestamp
from sentinel_core.spec import SpecError

from simulator.errors import OperationError, UsageError

if TYPE_CHECKING:  # the demo machinery loads moto, matplotlib and the CDK app: imported when the demo runs
    from simulator.demo_run import DemoResult, ReceivedAlert


class RichObserver:
    """Progress bar for the live stream, a status line per phase, every alert as its recipients see it."""

    def __init__(self, console: Console, show_email: bool = True) -> None:
        self.console = console
        self.show_email = show_email
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("alerts: {task.fields[alerts]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.alerts = 0
        self.t0 = time.monotonic()

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None and not exc[0]:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total or 1)
        self.progress.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total or 1)
        self.task = self.progress.add_task(name, total=total or 1, alerts=self.alerts)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=n, alerts=self.alerts)

    def note(self, text: str) -> None:
        self.progress.console.print(f"  [dim]{text}[/dim]")

    def alert(self, alert: ReceivedAlert) -> None:
        self.alerts += 1
        if self.task is not None:
            self.progress.update(self.task, alerts=self.alerts)
        self.progress.console.print(render_alert(alert, self.alerts, self.show_email))


def _to(alert: ReceivedAlert, protocol: str) -> str:
    names = [r.endpoint for r in alert.recipients if r.protocol == protocol]
    return ", ".join(names) if names else f"(no {protocol} subscription in the stack: what one would receive)"


def render_alert(alert: ReceivedAlert, number: int, show_email: bool = True) -> Group:
    """The SMS and the device commands in a box, then the e-mail as its recipient reads it (unboxed, so the
    e-mail's own line breaks are kept on a normal terminal)."""
    when = alert.delivered_at.strftime("%Y-%m-%d %H:%M UTC")
    lines: list[Text] = [Text.assemble(("SMS to ", "dim"), (_to(alert, "sms"), "dim"), "\n", (alert.sms, "bold"))]
    if alert.commands:
        lines.append(Text("Commands the automation sent back to the devices:", style="dim"))
    for topic, payload in alert.commands:
        action = str(payload.get("action", "?"))
        lines.append(Text.assemble("  → ", (topic, "cyan"), ": ", (action, "bold"), f" ({payload.get('reason', '')})"))
    colour = "red" if alert.severity >= 90 else "yellow"
    box = Panel(
        Group(*lines),
        title=f"[bold {colour}]Alert {number}[/] · severity {alert.severity:.0f} · {alert.measure} at {alert.where}",
        subtitle=f"delivered {when} (simulated)",
        border_style=colour,
        expand=False,
    )
    if not show_email:
        return Group(box)
    header = Text.assemble(
        ("  E-mail to ", "dim"), (_to(alert, "email"), "dim"), ("  Subject: ", "dim"), (alert.subject, "bold")
    )
    return Group(box, header, Padding(Text(alert.email.rstrip()), (0, 0, 1, 4)))


def summary_table(result: DemoResult) -> Table:
    c = result.counts
    table = Table(title="Demo summary", show_header=True, header_style="bold")
    table.add_column("What")
    table.add_column("Count", justify="right")
    table.add_column("Check")
    total = c.s3_data_lines + c.s3_error_lines + c.rule_errors + c.dropped
    table.add_row(
        "device messages published (MQTT)", f"{c.published:,}", f"{c.published_malformed} malformed on purpose"
    )
    table.add_row("records delivered to S3 (live folders)", f"{c.s3_data_lines:,}", "one folder per 5-minute interval")
    table.add_row(
        "records failed (error prefix / rule errors)",
        f"{c.s3_error_lines + c.rule_errors:,}",
        "[green]the malformed ones[/]"
        if c.s3_error_lines + c.rule_errors == c.published_malformed
        else "[red]not the malformed count[/]",
    )
    table.add_row(
        "records lost between publish and S3",
        f"{c.lost:,}",
        "[green]none[/]" if c.lost == 0 and total == c.published else "[red]LOST RECORDS[/]",
    )
    table.add_row("detector runs (scheduled)", f"{c.detector_runs:,}", f"{c.intervals_scored:,} intervals scored")
    table.add_row("series scores", f"{c.series_scored:,}", f"{c.late_records} late records")
    table.add_row("alerts sent (SNS)", f"{c.alerts:,}", f"{result.false_alerts} outside the injected windows")
    table.add_row("commands sent back to devices", f"{c.commands:,}", "by the automation Lambda")
    found = [d for d in result.detections if d.detected_at is not None]
    table.add_row("injected anomalies detected", f"{len(found)} / {len(result.detections)}", "")
    return table


def detections_table(result: DemoResult) -> Table:
    table = Table(title="Injected vs detected", header_style="bold")
    for col in ("Series", "Injected", "Window (UTC)", "Detected", "Time to detect", "Severity"):
        table.add_column(col, justify="right" if col in ("Time to detect", "Severity") else "left")
    for d in result.detections:
        window = f"{d.start:%m-%d %H:%M} → {d.end:%H:%M}"
        if d.detected_at is None:
            table.add_row(d.series, f"{d.kind} {d.magnitude:+.0%}", window, "[red]missed[/]", "–", "–")
        else:
            table.add_row(
                d.series,
                f"{d.kind} {d.magnitude:+.0%}",
                window,
                f"[green]yes[/] {d.detected_at:%H:%M}",
                f"{d.minutes_to_detect:.0f} min",
                f"{d.severity:.0f}" if d.severity is not None else "–",
            )
    return table


def errors_table(result: DemoResult) -> Table:
    table = Table(title="Rejected records (kept in the error prefix, with the reason)", header_style="bold")
    table.add_column("Reason")
    table.add_column("Payload the device sent")
    table.add_column("Where it is")
    for e in result.errors:
        table.add_row(e.reason, e.payload, e.key)
    return table


def demo(
    preset: Annotated[
        str,
        typer.Option(
            help="air-quality (IoT devices), loyalty (CSV upload -> backtest) or ecommerce (Kinesis page views)."
        ),
    ] = ("air-quality"),
    days: Annotated[float, typer.Option(min=0.1, help="Days of history that warm the detector up.")] = 7.0,
    hours: Annotated[
        float, typer.Option(min=0.25, help="Hours of live data streamed (--hours 24: a full day, about 1.5 minutes).")
    ] = 6.0,
    locations: Annotated[int, typer.Option(min=1, max=200, help="Number of sensor locations.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data, alerts and report.")] = 7,
    anomalies: Annotated[
        int, typer.Option(min=0, max=50, help="Anomaly events injected into the live data (spike, shift, drift...).")
    ] = 4,
    out: Annotated[Path, typer.Option(help="Output directory (report.html, alerts, data, logs, cdk.out).")] = Path(
        "out/demo"
    ),
    start: Annotated[
        str | None,
        typer.Option(help="Start of the live window, UTC (default: the demo's fixed date, so every run is the same)."),
    ] = None,
    emails: Annotated[bool, typer.Option(help="Print each alert's e-mail text, not only the SMS.")] = True,
) -> None:
    """Run the whole pipeline offline (moto): devices -> IoT rule -> Firehose -> S3 -> detector -> SNS -> device.

    Synthesizes the CDK stack, creates its resources in moto, uploads a generated history, streams live data with
    injected anomalies and a few malformed messages in fast simulated time, prints every alert as its recipients
    receive it and writes OUT/report.html (plots of the affected series, alerts, the S3 layout).
    """
    from simulator.demo_run import CONSOLE_URL, DEFAULT_START, DemoError, DemoOptions, run_demo

    console = Console(file=sys.stdout)  # bound now: the Lambdas' own stdout goes to OUT/lambda-logs.jsonl
    if preset in ("loyalty", "ecommerce"):  # S3-upload / Kinesis presets: same machinery, their own feeding
        from simulator.demo_presets import run_preset_demo

        raise typer.Exit(run_preset_demo(console, preset, out, seed))
    live_start = DEFAULT_START
    if start is not None:
        try:
            live_start = to_utc(parse_timestamp(start))
        except ValueError as exc:
            raise UsageError(f"--start: {exc}") from None
    options = DemoOptions(
        preset=preset,
        days=days,
        hours=hours,
        locations=locations,
        seed=seed,
        anomalies=anomalies,
        out=out,
        start=live_start,
    )
    console.rule(f"[bold]Metric Sentinel offline demo[/] · preset {preset} · seed {seed}")
    t0 = time.monotonic()
    try:
        with RichObserver(console, show_email=emails) as observer:
            result = run_demo(options, observer)
    except (DemoError, SpecError) as exc:
        raise UsageError(f"demo failed: {exc}") from None
    console.print()
    console.print(detections_table(result))
    if result.errors:
        console.print(errors_table(result))
    console.print(summary_table(result))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(
        f"\nReport: [bold]{result.report_path}[/] ({len(result.panels)} plots) · alerts: {out / 'alerts.jsonl'} · "
        f"Lambda logs: {out / 'lambda-logs.jsonl'} · took {time.monotonic() - t0:.0f} s for "
        f"{options.days:g} d of history + {options.hours:g} h of live data in simulated time"
    )
    console.print(
        f"Console: [bold]make console[/] (or python -m simulator console --out {out}), then open "
        f"[bold]{CONSOLE_URL}[/] — the anomaly groups, their plots and feedback, offline"
    )
    if result.counts.lost:
        raise OperationError(f"{result.counts.lost:,} records lost between publish and S3")
