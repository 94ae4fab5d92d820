"""``python -m simulator generate``: history, live file and anomaly labels for a preset, in one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sentinel_core.intervals import DETECTOR_INTERVALS
from sentinel_core.spec import SpecError, get_preset

from simulator.commands.options import parse_start
from simulator.datagen import ANOMALY_KINDS, generate_dataset
from simulator.errors import OperationError, UsageError
from simulator.uploads import generate_upload, print_upload_summary

console = Console(stderr=True)


def generate(
    preset: Annotated[str, typer.Option(help="Pipeline preset whose schema the data follows.")] = "air-quality",
    days: Annotated[
        float | None, typer.Option(min=0.01, help="Days of history before the live start (loyalty: of the file).")
    ] = None,
    locations: Annotated[int, typer.Option(min=1, max=10000, help="Number of locations (A-1002, B-101, ...).")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and --start, same files.")] = 42,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("out/data"),
    start: Annotated[
        str | None, typer.Option(help="Start of the live file (ISO-8601, UTC if no offset). Default: now.")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help=f"Override the preset's interval ({', '.join(DETECTOR_INTERVALS)}).")
    ] = None,
    live_hours: Annotated[float, typer.Option(min=0, help="Hours of data in live_data.csv.")] = 6.0,
    anomalies: Annotated[
        int | None, typer.Option(min=0, help="Anomaly events in the history (default: one per 3 days).")
    ] = None,
    live_anomalies: Annotated[int, typer.Option(min=0, help="Anomaly events in the live file.")] = 1,
    kinds: Annotated[
        str, typer.Option(help=f"Comma-separated anomaly kinds to inject ({', '.join(ANOMALY_KINDS)}).")
    ] = ",".join(ANOMALY_KINDS),
    bad_rows: Annotated[int, typer.Option(min=0, help="Upload presets (loyalty): append rows with known errors.")] = 0,
) -> None:
    """Generate DIR/historical_data.json, DIR/live_data.csv (starting now) and DIR/labels.csv.

    Data has daily and weekly seasonality, a trend, noise, occasional missing intervals and labelled anomalies
    (spikes, level shifts, drifts on one or several locations). The same --seed and --start give the same files.
    """
    try:
        spec = get_preset(preset)
        if interval:
            spec = spec.with_overrides(interval=interval)
        kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
        t0 = time.perf_counter()
        if spec.ingest == "s3":  # upload presets (loyalty): one CSV file + labels, see simulator.uploads
            up = generate_upload(
                out, spec, days or 365.0, locations, seed, parse_start(start), anomalies, kind_list, bad_rows
            )
            print_upload_summary(up, spec, console)
            console.print(f"generated {up.records:,} rows in {time.perf_counter() - t0:.1f}s")
            return
        summary = generate_dataset(
            out,
            spec,
            days=days or 14.0,
            locations=locations,
            seed=seed,
            live_start=parse_start(start),
            live_hours=live_hours,
            anomalies=anomalies,
            live_anomalies=live_anomalies,
            kinds=kind_list,
        )
        elapsed = time.perf_counter() - t0
    except (SpecError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise OperationError(f"cannot write to {out}: {exc}") from None

    table = Table(title=f"{spec.preset} data ({spec.interval}, {len(summary.entities)} locations, seed {seed})")
    table.add_column("file")
    table.add_column("records", justify="right")
    table.add_column("from (UTC)")
    table.add_column("to (UTC, excl.)")
    table.add_row(
        str(summary.history_file),
        f"{summary.history_records:,}",
        f"{summary.history_start:%Y-%m-%d %H:%M}",
        f"{summary.live_start:%Y-%m-%d %H:%M}",
    )
    table.add_row(
        str(summary.live_file),
        f"{summary.live_records:,}",
        f"{summary.live_start:%Y-%m-%d %H:%M}",
        f"{summary.live_end:%Y-%m-%d %H:%M}",
    )
    table.add_row(str(summary.labels_file), f"{len(summary.labels):,}", "", "")
    console.print(table)
    labels = Table(title="Injected anomalies (labels.csv)")
    for col in ("series", "start", "end", "kind", "magnitude"):
        labels.add_column(col)
    for lab in summary.labels[:20]:
        labels.add_row(
            lab.series_id, f"{lab.start:%Y-%m-%d %H:%M}", f"{lab.end:%Y-%m-%d %H:%M}", lab.kind, f"{lab.magnitude:+.0%}"
        )
    if len(summary.labels) > 20:
        labels.caption = f"... and {len(summary.labels) - 20} more"
    console.print(labels)
    console.print(f"generated {summary.history_records + summary.live_records:,} records in {elapsed:.1f}s")
