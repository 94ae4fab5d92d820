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
from sentinel_core.intervals import interval_seconds
from sentinel_core.spec import SpecError

from simulator.commands.options import parse_start
from simulator.demo.result import PRESET_DEFAULTS, format_delay  # light: the options and result model only
from simulator.errors import OperationError, UsageError

if TYPE_CHECKING:  # the demo machinery loads moto, matplotlib and the CDK app: imported when the demo runs
    from simulator.demo import DemoResult, ReceivedAlert


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
    failed = c.s3_error_lines + c.rule_errors
    table.add_row(result.source, f"{c.published:,}", f"{c.published_malformed} malformed on purpose")
    table.add_row(
        "records delivered (the data the pipeline wrote)", f"{c.s3_data_lines:,}", f"interval {result.spec.interval}"
    )
    table.add_row(
        "records failed (error output, with the reason)",
        f"{failed:,}",
        "[green]the malformed ones[/]" if failed == c.published_malformed else "[red]not the malformed count[/]",
    )
    table.add_row(
        "records lost between the source and S3",
        f"{c.lost:,}",
        "[green]none[/]" if c.lost == 0 and total == c.published else "[red]LOST RECORDS[/]",
    )
    table.add_row("detector runs", f"{c.detector_runs:,}", f"{c.intervals_scored:,} intervals scored")
    table.add_row("series scores", f"{c.series_scored:,}", f"{c.late_records} late records")
    table.add_row("alerts sent (SNS)", f"{c.alerts:,}", f"{result.false_alerts} outside the injected windows")
    table.add_row("commands sent back to devices", f"{c.commands:,}", "by the automation Lambda")
    table.add_row("injected anomalies detected", f"{result.found} / {len(result.detections)}", "")
    return table


def detections_table(result: DemoResult) -> Table:
    daily = interval_seconds(result.spec.interval) >= 86400
    when, until = ("%Y-%m-%d", "%m-%d") if daily else ("%m-%d %H:%M", "%H:%M")
    table = Table(title="Injected vs detected", header_style="bold")
    for col in ("Series", "Injected", "Window (UTC)", "Detected", "Time to detect", "Severity"):
        table.add_column(col, justify="right" if col in ("Time to detect", "Severity") else "left")
    for d in result.detections:
        window = f"{d.start:{when}} → {d.end:{until}}"
        if d.detected_at is None or d.minutes_to_detect is None:
            table.add_row(d.series, f"{d.kind} {d.magnitude:+.0%}", window, "[red]missed[/]", "–", "–")
        else:
            table.add_row(
                d.series,
                f"{d.kind} {d.magnitude:+.0%}",
                window,
                f"[green]yes[/] {d.detected_at:{until}}",
                format_delay(d.minutes_to_detect, daily),
                f"{d.severity:.0f}" if d.severity is not None else "–",
            )
    return table


def errors_table(result: DemoResult) -> Table:
    table = Table(title="Rejected records (kept in the error output, with the reason)", header_style="bold")
    table.add_column("Reason")
    table.add_column("Record as the source sent it")
    table.add_column("Where it is")
    for e in result.errors:
        table.add_row(e.reason, e.payload, e.key)
    return table


def _defaults(field: str) -> str:
    return ", ".join(f"{p} {getattr(d, field)}" for p, d in PRESET_DEFAULTS.items())


def demo(
    preset: Annotated[
        str,
        typer.Option(
            help="air-quality (IoT devices), loyalty (CSV upload -> backtest) or ecommerce (Kinesis page views)."
        ),
    ] = "air-quality",
    days: Annotated[
        float | None,
        typer.Option(min=0.1, help=f"Days of history (loyalty: of the uploaded file). Default: {_defaults('days')}."),
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(
            min=0.25,
            help="Hours of live data streamed (--hours 24: a full day, about 1.5 minutes); loyalty: hours after "
            f"--start the file is uploaded. Default: {_defaults('hours')}.",
        ),
    ] = None,
    locations: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=200,
            help="Sensor locations (loyalty: stores; ecommerce: page type x platform x marketplace combinations). "
            f"Default: {_defaults('locations')}.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data, alerts and report.")] = 7,
    anomalies: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=50,
            help="Anomaly events injected (ecommerce: checkout outages). Default: air-quality 4, ecommerce 1, "
            "loyalty one per 20 days of the backtest's report window (at least 3).",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Output directory (report.html, alerts.jsonl, data, logs, cdk.out).")
    ] = Path("out/demo"),
    start: Annotated[
        str | None,
        typer.Option(
            help="Start of the live part, UTC (loyalty: the day the file ends). Default: "
            + ", ".join(f"{p} {d.start:%Y-%m-%d %H:%M}" for p, d in PRESET_DEFAULTS.items())
            + "."
        ),
    ] = None,
    emails: Annotated[bool, typer.Option(help="Print each alert's e-mail text, not only the SMS.")] = True,
    shards: Annotated[
        int,
        typer.Option(
            min=1,
            max=200,
            help="Detector shards (context detector_shards): more than 1 plays the Step Functions fan-out (one "
            "shard Lambda per shard, then the merge) on the same data; the figures match one detector's.",
        ),
    ] = 1,
) -> None:
    """Run the whole pipeline offline (moto), as the preset's sources would feed it, and write OUT/report.html.

    air-quality: devices -> IoT rule -> Firehose -> S3 -> detector -> SNS -> device; ecommerce: page views ->
    Kinesis -> Firehose -> S3 -> detector -> SNS; loyalty: CSV upload -> S3 notification -> backtest job -> SNS.
    Synthesizes the CDK stack, creates its resources in moto, feeds generated data with injected anomalies and a
    few malformed records in fast simulated time, prints every alert as its recipients receive it and writes
    OUT/report.html (plots of the affected series, alerts, the S3 layout) and OUT/alerts.jsonl. Exits 1 when the
    pipeline itself failed (records lost, the upload rejected), 2 when the demo cannot run.
    """
    from simulator.demo import DemoError, DemoOptions, run_demo
    from simulator.demo.result import CONSOLE_URL

    console = Console(file=sys.stdout)  # bound now: the Lambdas' own stdout goes to OUT/lambda-logs.jsonl
    live_start = parse_start(start)
    t0 = time.monotonic()
    try:
        options = DemoOptions.for_preset(
            preset, days=days, hours=hours, locations=locations, anomalies=anomalies, start=live_start, seed=seed,
            out=out, shards=shards,
        )  # fmt: skip
        sharded = f" · {shards} detector shards" if shards > 1 else ""
        console.rule(f"[bold]Metric Sentinel offline demo[/] · preset {preset} · seed {seed}{sharded}")
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
    fed = (
        f"{options.days:g} d of daily points uploaded {options.hours:g} h after the last day"
        if preset == "loyalty"
        else f"{options.days:g} d of history + {options.hours:g} h of live data"
    )
    console.print(
        f"\nReport: [bold]{result.report_path}[/] ({len(result.panels)} plots) · alerts: {result.alerts_path} · "
        f"Lambda logs: {result.log_path} · took {time.monotonic() - t0:.0f} s for {fed} in simulated time"
    )
    console.print(
        f"Console: [bold]make console[/] (or python -m simulator console --out {out}), then open "
        f"[bold]{CONSOLE_URL}[/] — the anomaly groups, their plots and feedback, offline"
    )
    if result.failures:
        raise OperationError("the pipeline failed: " + "; ".join(result.failures))
