"""``python -m simulator publish``: a device publishing telemetry over MQTT with mutual TLS (QoS 1)."""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sentinel_core.intervals import floor_to_interval
from sentinel_core.spec import PipelineSpec, SpecError, get_preset

from simulator.datagen import generate_records, read_records
from simulator.errors import InterruptError, NotFoundError, OperationError, UsageError
from simulator.publisher import Injection, Pacing, Publisher, PublishStats

if TYPE_CHECKING:  # the AWS IoT SDK (awscrt) and boto3 load when the command runs, not for --help
    from simulator.device import DeviceSettings

console = Console(stderr=True)
out = Console(soft_wrap=True, highlight=False)


def _count_records(path: Path) -> int:
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return lines - 1 if path.suffix.lower() == ".csv" else lines


def _source(
    spec: PipelineSpec, file: Path | None, locations: int, seed: int, skip: int, count: int | None
) -> tuple[Iterator[dict[str, Any]], int | None]:
    total: int | None
    records: Iterable[dict[str, Any]]
    if file is not None:
        if not file.is_file():
            raise NotFoundError(f"--file {file} does not exist")
        records = read_records(file)
        total = max(0, _count_records(file) - skip)
    else:
        start = floor_to_interval(datetime.now(UTC), spec.interval)
        records = generate_records(spec, start, None, locations, seed)
        total = None
    it: Iterator[dict[str, Any]] = itertools.islice(records, skip, None)
    if count is not None:
        it = itertools.islice(it, count)
        total = count if total is None else min(total, count)
    return it, total


def _settings(
    certs_dir: Path | None,
    endpoint: str | None,
    port: int | None,
    cert: Path | None,
    key: Path | None,
    ca: Path | None,
    client_id: str | None,
    thing: str | None,
) -> tuple[DeviceSettings, str, str | None]:
    """Connection settings from --certs-dir (provision's output), overridden by explicit options."""
    from simulator.device import DeviceSettings
    from simulator.provisioning import DeviceConfig

    cfg: DeviceConfig | None = DeviceConfig.load(certs_dir) if certs_dir else None
    thing_name = thing or (cfg.thing if cfg else None)
    if not thing_name:
        raise UsageError("pass --thing (or --certs-dir written by provision)")
    host = endpoint or (cfg.endpoint if cfg else None)
    if not host:
        raise UsageError("pass --endpoint (or --certs-dir written by provision)")
    cert_path = cert or (certs_dir / cfg.cert_file if cfg and certs_dir else None)
    key_path = key or (certs_dir / cfg.key_file if cfg and certs_dir else None)
    if cert_path is None or key_path is None:
        raise UsageError("pass --cert and --key (or --certs-dir written by provision)")
    ca_path = ca or (certs_dir / cfg.ca_file if cfg and certs_dir and cfg.ca_file else None)
    settings = DeviceSettings(
        endpoint=host,
        port=port or (cfg.port if cfg else 8883),
        cert=cert_path,
        key=key_path,
        ca=ca_path,
        client_id=client_id or thing_name,
    )
    return settings, thing_name, cfg.preset if cfg else None


def _print_command(topic: str, payload: bytes) -> None:
    try:
        text = json.dumps(json.loads(payload), separators=(", ", ": "))
    except (ValueError, UnicodeDecodeError):
        text = repr(payload)
    console.print(f"[bold magenta]command received[/bold magenta] on {topic}: {text}")


def _report(stats: PublishStats, interrupted: bool, skip: int) -> None:
    table = Table(title="publish summary" + (" (stopped by Ctrl-C)" if interrupted else ""))
    table.add_column("")
    table.add_column("records", justify="right")
    rows: list[tuple[str, int | None]] = [
        ("in the source", stats.total),
        ("sent", stats.sent),
        ("acknowledged (PUBACK)", stats.acked),
        ("retried publishes", stats.retries),
        ("failed after retries", stats.failed),
        ("unconfirmed when we stopped waiting", stats.unconfirmed),
        ("invalid, not sent", stats.invalid),
        ("not sent (left in the source)", stats.not_sent),
    ]
    for name, value in rows:
        table.add_row(name, "unbounded" if value is None else f"{value:,}")
    console.print(table)
    for ex in stats.invalid_examples:
        console.print(f"[yellow]invalid:[/yellow] {ex}")
    for ex in stats.failed_examples:
        console.print(f"[red]failed:[/red] {ex}")
    if interrupted:
        console.print(
            f"stopped after {stats.taken:,} records; {stats.acked:,} confirmed. Resume without gaps or duplicates "
            f"with [bold]--skip {skip + stats.resume_skip}[/bold]."
        )


def publish(
    certs_dir: Annotated[
        Path | None, typer.Option(help="Directory written by 'provision' (endpoint, certificate, key, thing).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Replay live_data.csv or historical_data.json; default: generate live.")
    ] = None,
    thing: Annotated[str | None, typer.Option(help="Thing name: the topic is <root>/<thing>/telemetry.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="MQTT broker host (the IoT ATS data endpoint).")] = None,
    port: Annotated[int | None, typer.Option(help="Broker port (default 8883).")] = None,
    cert: Annotated[Path | None, typer.Option(help="Client certificate (PEM).")] = None,
    key: Annotated[Path | None, typer.Option(help="Client private key (PEM).")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA bundle to trust (default: the system trust store).")] = None,
    client_id: Annotated[str | None, typer.Option(help="MQTT client id (default: the thing name).")] = None,
    preset: Annotated[str | None, typer.Option(help="Preset (default: provision's, else air-quality).")] = None,
    rate: Annotated[float, typer.Option(min=0, help="Maximum messages per second (0 = unlimited).")] = 20.0,
    speed: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Pace by record timestamps: 1 = real time, 60 = one minute per second, 0 = only --rate. "
            "Default: 0 for .json history files, 1 otherwise.",
        ),
    ] = None,
    count: Annotated[int | None, typer.Option(min=0, help="Stop after this many records.")] = None,
    skip: Annotated[int, typer.Option(min=0, help="Skip the first N records (resume an interrupted replay).")] = 0,
    locations: Annotated[int, typer.Option(min=1, help="Locations to generate when no --file is given.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the live generator.")] = 42,
    inject: Annotated[str | None, typer.Option(help="Inject an anomaly: spike, shift or drift.")] = None,
    location: Annotated[list[str] | None, typer.Option(help="Location(s) the injected anomaly hits.")] = None,
    inject_measure: Annotated[str | None, typer.Option(help="Measure to alter (default: the first).")] = None,
    magnitude: Annotated[
        float | None, typer.Option(help="Relative change (2 = +200 %; default spike 2, shift 0.8, drift 1).")
    ] = None,
    inject_after: Annotated[int, typer.Option(min=0, help="Intervals after the first record before it starts.")] = 1,
    inject_duration: Annotated[
        int | None, typer.Option(min=1, help="Intervals it lasts (default spike 1, shift/drift 12).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the payloads instead of connecting.")] = False,
    listen: Annotated[float, typer.Option(min=0, help="Keep listening for commands this many seconds at the end.")] = 0,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Unacknowledged publishes allowed at once.")] = 100,
    drain_timeout: Annotated[float, typer.Option(min=0, help="Seconds to wait for outstanding acks at the end.")] = 30,
    ack_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds before an unacknowledged publish is retried.")
    ] = 20,
) -> None:
    """Publish telemetry as one device over MQTT (mutual TLS, QoS 1) and print the commands it receives.

    Replays a generated file or generates live data; --inject alters a location's values for a live demo.

    Ctrl-C stops cleanly: no new record is sent, outstanding acknowledgements are awaited (twice: stop waiting).
    The summary says what was not sent and which --skip resumes without gaps or duplicates.
    """
    from simulator.device import Device, DeviceError, DeviceSettings
    from simulator.provisioning import ProvisionError

    try:
        cfg_preset: str | None = None
        settings: DeviceSettings | None = None
        thing_name = thing or "dry-run-device"
        if not dry_run or certs_dir is not None:
            try:
                settings, thing_name, cfg_preset = _settings(certs_dir, endpoint, port, cert, key, ca, client_id, thing)
            except UsageError:
                if not dry_run:
                    raise
        spec = get_preset(preset or cfg_preset or "air-quality")
        if not spec.topic_root:
            raise UsageError(f"--preset {spec.preset!r} is not an MQTT preset")
        topic = spec.telemetry_topic(thing_name)
        injection = (
            Injection.build(spec, inject, location or [], inject_measure, magnitude, inject_after, inject_duration)
            if inject
            else None
        )
        if location and not inject:
            raise UsageError("--location only makes sense with --inject")
        records, total = _source(spec, file, locations, seed, skip, count)
    except (SpecError, ValueError, ProvisionError) as exc:
        raise UsageError(str(exc)) from None
    is_history = file is not None and file.suffix.lower() in (".json", ".jsonl")
    pacing = Pacing(rate=rate, speed=speed if speed is not None else (0.0 if is_history else 1.0))

    if dry_run:
        import concurrent.futures

        def show(payload: bytes) -> concurrent.futures.Future[Any]:
            out.print(f"{topic} {payload.decode()}")
            f: concurrent.futures.Future[Any] = concurrent.futures.Future()
            f.set_result({"packet_id": 0})
            return f

        dry = Publisher(spec, show, Pacing(), injection)
        stats = dry.run(records, total)
        console.print(f"dry run: {stats.sent:,} payloads for {topic}, {stats.invalid:,} invalid, nothing sent")
        for ex in stats.invalid_examples:
            console.print(f"[yellow]invalid:[/yellow] {ex}")
        if stats.invalid:
            raise OperationError(f"{stats.invalid:,} invalid record(s) in the source")
        return

    assert settings is not None
    settings = DeviceSettings(**{**settings.__dict__, "ack_timeout_secs": ack_timeout})
    try:
        device = Device(settings, on_event=lambda msg: console.print(f"[yellow]{msg}[/yellow]"))
        device.connect()
    except DeviceError as exc:
        raise OperationError(str(exc)) from None
    except KeyboardInterrupt:
        raise InterruptError("interrupted while connecting: nothing was sent") from None
    console.print(f"connected to {settings.endpoint}:{settings.port} as {settings.client_id!r}; publishing to {topic}")
    try:
        device.subscribe(spec.command_topic(thing_name), _print_command)
        console.print(f"listening for commands on {spec.command_topic(thing_name)}")
    except DeviceError as exc:
        console.print(f"[yellow]warning:[/yellow] {exc}; publishing anyway")

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]} · acked {task.fields[acked]} · failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
    )
    task: TaskID = progress.add_task(topic, total=total, sent=0, acked=0, failed=0)
    last = [0.0]

    def on_progress(s: PublishStats) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1 or s.in_flight == 0:
            last[0] = now
            progress.update(task, completed=s.acked + s.failed, sent=s.sent, acked=s.acked, failed=s.failed)

    publisher = Publisher(
        spec,
        lambda payload: device.publish(topic, payload),
        pacing,
        injection,
        max_in_flight=max_in_flight,
        drain_timeout=drain_timeout,
        on_progress=on_progress,
        on_event=lambda msg: progress.console.print(f"[yellow]{msg}[/yellow]"),
    )
    interrupts = [0]

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupts[0] += 1
        if interrupts[0] == 1:
            publisher.stop.set()
            progress.console.print(
                "[yellow]stopping: no new records; waiting for outstanding acknowledgements "
                "(Ctrl-C again to stop waiting)[/yellow]"
            )
        else:
            publisher.abandon.set()

    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        with progress:
            stats = publisher.run(records, total)
            progress.update(
                task, completed=stats.acked + stats.failed, sent=stats.sent, acked=stats.acked, failed=stats.failed
            )
        if injection is not None and publisher.first_timestamp is not None:
            for lab in injection.labels(spec, publisher.first_timestamp):
                console.print(
                    f"injected {lab.kind} {lab.magnitude:+.0%} on {lab.series_id} "
                    f"from {lab.start:%Y-%m-%d %H:%M} to {lab.end:%Y-%m-%d %H:%M} UTC"
                )
        if listen:
            console.print(f"done publishing; listening for commands for {listen:g}s (Ctrl-C to stop)")
        deadline = time.monotonic() + listen
        while listen and time.monotonic() < deadline and not publisher.stop.is_set():
            time.sleep(0.1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        device.disconnect()
    interrupted = stats.stopped_early
    _report(stats, interrupted, skip)
    if interrupted:
        raise InterruptError(f"stopped by Ctrl-C; resume with --skip {skip + stats.resume_skip}")
    if stats.failed or stats.unconfirmed or stats.invalid:
        raise OperationError(
            f"{stats.failed:,} failed, {stats.unconfirmed:,} unconfirmed, {stats.invalid:,} invalid (see the summary)"
        )
