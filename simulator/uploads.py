"""Files for S3-upload presets (loyalty): one CSV in the preset's schema plus the labels of its injected anomalies.

Uses the shared generator (``simulator.datagen``: the preset model, anomaly planning, streaming writer); only the
shape of the output differs from the IoT presets: a single ``<preset>.csv`` covering the whole period, as a store
chain's export would, with anomalies placed in the part a backtest reports on (the last ``backtest_fraction``).
Optionally a few bad rows are appended (``bad_rows``) to exercise the per-row error report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.spec import PipelineSpec

from simulator.datagen import (
    ANOMALY_KINDS,
    LABELS_FILE,
    Entities,
    Label,
    generate_rows,
    plan_anomalies,
    resolve_entities,
    write_labels,
    write_records,
)

# One example of each per-row problem the backtest job reports (see sentinel_core.csv_input).
BAD_ROW_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("missing_column", "{day},{loc},1200"),
    ("bad_timestamp", "{bad_day},{loc},1200,300"),
    ("bad_measure", "{day},{loc},twelve hundred,300"),
    ("duplicate", "{day},{loc},1100,250"),
)


@dataclass(frozen=True)
class UploadSummary:
    file: Path
    labels_file: Path
    start: datetime
    end: datetime  # exclusive
    report_start: datetime  # first interval of the backtest's report window
    entities: list[tuple[str, ...]]
    records: int
    bad_rows: int
    labels: list[Label]


def upload_file_name(spec: PipelineSpec) -> str:
    return f"{spec.preset}.csv"


def generate_upload(
    out_dir: Path,
    spec: PipelineSpec,
    days: float,
    locations: Entities,
    seed: int | str,
    end: datetime | None = None,
    anomalies: int | None = None,
    kinds: Sequence[str] = ANOMALY_KINDS,
    bad_rows: int = 0,
) -> UploadSummary:
    """Write ``out_dir/<preset>.csv`` (``days`` up to ``end``, default today 00:00 UTC) and ``labels.csv``.

    Anomalies (default: one per 20 days of the report window, at least 3) start after the learning part
    (``1 - spec.backtest_fraction``) plus two weeks, so a backtest that learns on the first part can report them.
    ``bad_rows`` appends that many rows with a known problem (cycling through :data:`BAD_ROW_EXAMPLES`).
    """
    if days <= 0:
        raise ValueError("--days must be positive")
    if bad_rows < 0:
        raise ValueError("--bad-rows must not be negative")
    step = interval_seconds(spec.interval)
    ents = resolve_entities(spec, locations)
    t1 = floor_to_interval(end or datetime.now(UTC), step)
    n = max(1, math.ceil(days * 86400 / step))
    t0 = t1 - timedelta(seconds=n * step)
    fraction = spec.backtest_fraction or 0.3
    report0 = t0 + timedelta(seconds=math.floor(n * (1 - fraction)) * step)
    window_days = (t1 - report0).total_seconds() / 86400
    if anomalies is None:
        anomalies = max(3, round(window_days / 20))
    not_before = min(report0 + timedelta(days=14), report0 + (t1 - report0) / 4)
    labels = plan_anomalies(spec, t0, t1, ents, seed, anomalies, kinds, not_before=not_before) if anomalies else []
    path = out_dir / upload_file_name(spec)
    records = write_records(path, spec, generate_rows(spec, t0, t1, ents, seed, labels), ents, "csv", seed)
    if bad_rows:
        with path.open("a", encoding="utf-8", newline="") as fh:
            for i in range(bad_rows):
                _, tpl = BAD_ROW_EXAMPLES[i % len(BAD_ROW_EXAMPLES)]
                fh.write(
                    tpl.format(day=f"{t0:%Y-%m-%d}", bad_day=f"{t0:%Y}-13-{i % 28 + 1:02d}", loc=ents[0][0]) + "\n"
                )
    write_labels(out_dir / LABELS_FILE, labels)
    return UploadSummary(path, out_dir / LABELS_FILE, t0, t1, report0, ents, records, bad_rows, sorted(labels))


def print_upload_summary(summary: UploadSummary, spec: PipelineSpec, console: Console) -> None:
    """The ``generate`` command's output for an upload preset (rich tables on stderr)."""
    table = Table(title=f"{spec.preset} upload file ({spec.interval}, {len(summary.entities)} locations)")
    for col in ("file", "rows", "from (UTC)", "to (UTC, excl.)"):
        table.add_column(col)
    table.add_row(str(summary.file), f"{summary.records:,}", f"{summary.start:%Y-%m-%d}", f"{summary.end:%Y-%m-%d}")
    table.add_row("  learn on", "", f"{summary.start:%Y-%m-%d}", f"{summary.report_start:%Y-%m-%d}")
    table.add_row("  report on", "", f"{summary.report_start:%Y-%m-%d}", f"{summary.end:%Y-%m-%d}")
    if summary.bad_rows:
        table.add_row("  + bad rows (for the error report)", f"{summary.bad_rows}", "", "")
    table.add_row(str(summary.labels_file), f"{len(summary.labels)}", "", "")
    console.print(table)
    labels = Table(title="Injected anomalies (labels.csv)")
    for col in ("series", "start", "end", "kind", "magnitude"):
        labels.add_column(col)
    for lab in summary.labels[:20]:
        labels.add_row(lab.series_id, f"{lab.start:%Y-%m-%d}", f"{lab.end:%Y-%m-%d}", lab.kind, f"{lab.magnitude:+.0%}")
    console.print(labels)
