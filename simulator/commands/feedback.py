"""``python -m simulator feedback``: tell the detector whether a series of an anomaly group was really an anomaly.

The verdict is stored in the anomaly table (the group item's ``feedback`` map and a pending feedback item); the
detector applies pending feedback at the start of its next run (``Detector.apply_feedback``) and marks it applied.
``--list`` shows recent anomaly groups with their series ids, to pick from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sentinel_core import store
from sentinel_core.alerts import fmt_number

from simulator.commands.options import Region
from simulator.errors import NotFoundError, UsageError, aws_error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

console = Console()


def _outputs(path: Path) -> dict[str, str]:
    """Flatten a ``cdk deploy --outputs-file`` JSON ({stack: {key: value}}) or a flat {key: value} file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--stack-outputs: cannot read {path}: {exc}") from None
    flat: dict[str, str] = {}
    for key, value in data.items() if isinstance(data, dict) else []:
        if isinstance(value, dict):
            flat.update({str(k): str(v) for k, v in value.items()})
        else:
            flat[str(key)] = str(value)
    return flat


def _pick(outputs: dict[str, str], *needles: str) -> str | None:
    for key, value in outputs.items():
        low = key.lower()
        if all(n in low for n in needles):
            return value
    return None


def resolve(table: str | None, detector: str | None, stack_outputs: Path | None) -> tuple[str, str | None]:
    outputs = _outputs(stack_outputs) if stack_outputs else {}
    table = table or _pick(outputs, "anomaly", "table") or os.environ.get("ANOMALY_TABLE")
    detector = detector or _pick(outputs, "detector", "id") or os.environ.get("DETECTOR_ID") or None
    if not table:
        raise UsageError(
            "which anomaly table? give --table NAME, a --stack-outputs file with an AnomalyTable output, "
            "or set ANOMALY_TABLE"
        )
    return table, detector


def list_table(groups: list[Any]) -> Table:
    table = Table(title="Recent anomaly groups (newest first)", show_lines=True)
    for col in ("group id", "detector", "measure", "start (UTC)", "end (UTC)", "severity", "series ids", "feedback"):
        # ids must stay copyable in one piece: never wrapped
        table.add_column(col, no_wrap=col in ("group id", "series ids"), overflow="fold")
    for g in groups:
        fb = ", ".join(f"{sid}: {'anomaly' if v else 'not anomaly'}" for sid, v in sorted(g.feedback.items()))
        table.add_row(
            g.group_id,
            g.detector_id,
            g.measure,
            f"{g.start:%Y-%m-%d %H:%M}",
            f"{g.end:%Y-%m-%d %H:%M}",
            fmt_number(round(g.score)),
            "\n".join(g.series_ids),
            fb or "-",
        )
    return table


def run_feedback(
    ddb: DynamoDBClient,
    table: str,
    detector: str | None,
    group_id: str | None,
    series_id: str | None,
    is_anomaly: bool | None,
    show_list: bool,
    limit: int,
) -> None:
    if show_list:
        groups = store.list_groups(ddb, table, detector, limit)
        if not groups:
            console.print(f"No anomaly groups in table {table}" + (f" for detector {detector}." if detector else "."))
            return
        console.print(list_table(groups))
        return
    if not group_id or not series_id or is_anomaly is None:
        raise UsageError("give --group ID --series ID and --not-anomaly or --anomaly (or --list to see the groups)")
    group = store.find_group(ddb, table, group_id, detector)
    fb = store.put_feedback(ddb, table, group, series_id, is_anomaly)
    verdict = "an anomaly" if is_anomaly else "NOT an anomaly"
    console.print(
        f"Recorded: [bold]{series_id}[/bold] in group {group.group_id} was {verdict} "
        f"({len(fb.timestamps)} interval(s) from {fb.timestamps[0]:%Y-%m-%d %H:%M} UTC). "
        f"Detector {group.detector_id} applies it on its next run."
    )


def feedback(
    group: Annotated[str | None, typer.Option("--group", help="Anomaly group id (from the alert e-mail).")] = None,
    series: Annotated[
        str | None, typer.Option("--series", help="Series id, e.g. 'CO|LOCATION_ID=B-101' (quote it: it has a |).")
    ] = None,
    anomaly: Annotated[
        bool | None,
        typer.Option("--anomaly/--not-anomaly", help="Confirm the anomaly, or say it was normal behaviour."),
    ] = None,
    show_list: Annotated[bool, typer.Option("--list", help="Show recent anomaly groups and their series ids.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="How many groups --list shows.")] = 20,
    table: Annotated[
        str | None, typer.Option(help="Anomaly DynamoDB table (default: stack outputs / $ANOMALY_TABLE).")
    ] = None,
    detector: Annotated[
        str | None, typer.Option(help="Detector id (default: stack outputs / $DETECTOR_ID / any).")
    ] = None,
    stack_outputs: Annotated[
        Path | None, typer.Option(help="JSON from `cdk deploy --outputs-file` naming the table and detector.")
    ] = None,
    region: Region = None,
) -> None:
    """Mark a series of an anomaly group as --not-anomaly (learned as normal) or --anomaly; or --list groups."""
    import boto3  # here, not at module level: boto3 alone takes longer to import than `sentinel --help` may

    table_name, detector_id = resolve(table, detector, stack_outputs)
    ddb = boto3.client("dynamodb", region_name=region)  # no region anywhere: NoRegionError, a one-line usage error
    try:
        run_feedback(ddb, table_name, detector_id, group, series, anomaly, show_list, limit)
    except store.StoreError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            raise NotFoundError(
                f"anomaly table {table_name!r} does not exist in region {ddb.meta.region_name} "
                "(check --table / --stack-outputs / $ANOMALY_TABLE and --region)"
            ) from None
        raise  # credentials and other AWS errors: translated by the CLI group
