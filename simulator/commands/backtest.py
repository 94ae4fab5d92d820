"""``python -m simulator backtest INPUT.csv --interval PT5M --out OUT.csv``: the detector core over a CSV.

Every input row is written, in input order, with an ``anomaly_score`` column (0-100; empty for a row that could not
be read, whose problem is reported with its line number). Anomaly groups are summed up in a table and optionally
written as JSON (``--groups-out``). ``--backtest-mode`` is Lookout's: learn on the first 70 %, report on the rest.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sentinel_core import backtest as core
from sentinel_core.intervals import interval_seconds

from simulator.errors import NotFoundError, UsageError

console = Console()
err = Console(stderr=True)
MAX_PROBLEMS_SHOWN = 20


def backtest(
    input_csv: Annotated[Path, typer.Argument(help="CSV with a timestamp column, dimensions and measures.")],
    out: Annotated[Path, typer.Option(help="Output CSV: every input row plus anomaly_score (0-100).")],
    interval: Annotated[str, typer.Option(help="Interval as an ISO-8601 duration: PT1M, PT5M, PT30M, PT1H, P1D...")] = (
        "PT5M"
    ),
    timestamp_column: Annotated[str | None, typer.Option(help="Timestamp column (default: detected).")] = None,
    dimension: Annotated[list[str] | None, typer.Option(help="Dimension column (repeatable; default: detected).")] = (
        None
    ),
    measure: Annotated[list[str] | None, typer.Option(help="Measure column (repeatable; default: numeric ones).")] = (
        None
    ),
    aggregation: Annotated[str, typer.Option(help="How values of one interval are combined: SUM or AVG.")] = "AVG",
    backtest_mode: Annotated[
        bool, typer.Option("--backtest-mode", help="Lookout's backtest: learn on the first part, report the rest.")
    ] = False,
    fraction: Annotated[
        float, typer.Option(min=0.01, max=0.99, help="Share of the intervals reported in --backtest-mode.")
    ] = 0.3,
    groups_out: Annotated[Path | None, typer.Option(help="Write the anomaly groups as JSON here.")] = None,
    threshold: Annotated[
        float, typer.Option(min=0, max=100, help="Severity from which points form anomaly groups.")
    ] = core.ANOMALY_THRESHOLD,
    quiet: Annotated[bool, typer.Option("--quiet", help="No group table on stdout.")] = False,
) -> None:
    """Score a CSV with the detector core: every row gets its interval's anomaly score; groups are summed up."""
    try:
        step = interval_seconds(interval)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    agg = aggregation.strip().upper()
    if agg not in ("SUM", "AVG"):
        raise UsageError(f"--aggregation must be SUM or AVG, got {aggregation!r}")
    if not input_csv.is_file():
        raise NotFoundError(f"input file {input_csv} does not exist")
    t0 = time.perf_counter()
    try:
        with input_csv.open(newline="", encoding="utf-8-sig") as f:
            header, rows, lines = core.read_csv(f)
        result = core.run(
            header,
            rows,
            step,
            timestamp=timestamp_column,
            dimensions=dimension or None,
            measures=measure or None,
            aggregation=agg,
            backtest_fraction=fraction if backtest_mode else 0.0,
            group_threshold=threshold,
            line_numbers=lines,
        )
    except (OSError, UnicodeDecodeError, csv.Error, core.BacktestError) as exc:
        raise UsageError(f"backtest failed: {exc}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(core.output_rows(result))
    if groups_out is not None:
        groups_out.parent.mkdir(parents=True, exist_ok=True)
        groups_out.write_text(json.dumps([g.to_dict() for g in result.groups], indent=1) + "\n")
    elapsed = time.perf_counter() - t0

    for p in result.problems[:MAX_PROBLEMS_SHOWN]:
        err.print(f"[yellow]line {p.line}[/yellow] {p.column or '(row)'}: {p.message}", markup=True, highlight=False)
    if len(result.problems) > MAX_PROBLEMS_SHOWN:
        err.print(f"... and {len(result.problems) - MAX_PROBLEMS_SHOWN} more row problem(s)")
    cols = result.columns
    err.print(
        f"{len(result.rows)} rows ({result.scored_rows} scored, {len(result.problems)} problem(s)), "
        f"timestamp={cols.timestamp}, measures={','.join(cols.measures)}, "
        f"dimensions={','.join(cols.dimensions) or '-'}, {result.series} series x {result.intervals} intervals "
        f"of {interval} ({agg}) in {elapsed:.1f}s"
        + (f"; reported from {result.report_from:%Y-%m-%d %H:%M}" if result.report_from else "")
        + f" -> {out}"
    )
    if quiet:
        return
    if not result.groups:
        console.print(f"No anomaly group (no point scored {threshold:g} or more).")
        return
    table = Table(title=f"Anomaly groups ({len(result.groups)})", show_lines=False)
    for name in ("start", "end", "measure", "score", "series", "worst series", "contributions"):
        table.add_column(name, justify="right" if name in ("score", "series") else "left")
    top = sorted(result.groups, key=lambda g: (-g.score, g.start))[:25]
    for row in core.groups_summary(sorted(top, key=lambda g: g.start)):
        contrib = row["contributions"]
        table.add_row(
            str(row["start"])[:16],
            str(row["end"])[:16],
            str(row["measure"]),
            f"{row['score']:.0f}" if isinstance(row["score"], float) else str(row["score"]),
            str(row["series"]),
            str(row["worst_series"]),
            ", ".join(contrib) if isinstance(contrib, list) else "",
        )
    console.print(table)
    if len(result.groups) > len(top):
        console.print(f"(the {len(top)} most severe of {len(result.groups)} groups)")
    sys.stdout.flush()
