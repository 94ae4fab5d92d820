"""``sentinel detector activate|deactivate|status``: pause and resume a deployed detector without a redeploy.

The detector runs on an EventBridge schedule; these commands enable or disable THAT rule (``events:EnableRule`` /
``DisableRule``), found in the stack's outputs (``DetectorScheduleRuleName``, from ``cdk deploy --outputs-file`` or
``--stack NAME`` read with CloudFormation). A deactivated detector keeps its model state, groups and ledger. On
activation ``--catch-up`` (the default: a pause must not silently lose detection) lets the next runs score every
missed interval; ``--skip`` writes the resume marker (``sentinel_core.activation``) so the detector starts at the
interval that closed last and leaves the paused ones unscored. The deploy-time default is the ``detector_active``
context key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.errors import NotFoundError, UsageError

app = typer.Typer(
    name="detector",
    help="Activate, deactivate or inspect a deployed detector's schedule.",
    no_args_is_help=True,
    add_completion=False,
)

RULE_OUTPUT = "DetectorScheduleRuleName"
BUCKET_OUTPUT = "DataBucketName"
RESUME_OUTPUT = "DetectorResumeKey"

OutputsOption = Annotated[
    Path | None,
    typer.Option("--stack-outputs", help="`cdk deploy --outputs-file` JSON of the stack.", exists=False),
]
StackOption = Annotated[str | None, typer.Option("--stack", help="Stack name: its outputs are read from AWS.")]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region (default: the environment's).")]


@dataclass(frozen=True)
class Target:
    rule: str
    bucket: str
    resume_key: str


def _from_file(path: Path) -> dict[str, str]:
    from simulator.commands.feedback import _outputs

    return _outputs(path)


def _from_stack(stack: str, region: str | None) -> dict[str, str]:
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    try:
        (desc,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            raise NotFoundError(f"stack {stack!r} does not exist in this account and region") from None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


def resolve(stack_outputs: Path | None, stack: str | None, region: str | None) -> Target:
    if (stack_outputs is None) == (stack is None):
        raise UsageError("give exactly one of --stack-outputs FILE (cdk deploy --outputs-file) or --stack NAME")
    outputs = _from_file(stack_outputs) if stack_outputs is not None else _from_stack(str(stack), region)
    if RULE_OUTPUT not in outputs:
        raise UsageError(
            f"the stack has no {RULE_OUTPUT} output: only engine=builtin stacks have a detector schedule "
            "(redeploy with this version if the stack predates it)"
        )
    missing = [k for k in (BUCKET_OUTPUT, RESUME_OUTPUT) if k not in outputs]
    if missing:
        raise UsageError(f"the stack outputs lack {', '.join(missing)}")
    return Target(outputs[RULE_OUTPUT], outputs[BUCKET_OUTPUT], outputs[RESUME_OUTPUT])


def _now(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        ts = datetime.fromisoformat(at)
    except ValueError:
        raise UsageError(f"--at must be an ISO-8601 time, got {at!r}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _clients(region: str | None) -> tuple[Any, Any]:
    import boto3

    return boto3.client("events", region_name=region), boto3.client("s3", region_name=region)


def rule_state(events: Any, rule: str) -> str:
    try:
        return str(events.describe_rule(Name=rule)["State"])
    except events.exceptions.ResourceNotFoundException:
        raise NotFoundError(f"the detector schedule {rule!r} does not exist (was the stack deleted?)") from None


@app.command("activate")
def activate(
    stack_outputs: OutputsOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up/--skip",
            help="Score the intervals missed while deactivated (default), or skip them and start from now.",
        ),
    ] = True,
    at: Annotated[
        str | None, typer.Option("--at", help="Activation time for --skip (ISO-8601; default: now). Offline replays.")
    ] = None,
) -> None:
    """Enable the detector's schedule; the missed intervals are caught up (--catch-up) or skipped (--skip)."""
    from sentinel_core import activation

    target = resolve(stack_outputs, stack, region)
    events, s3 = _clients(region)
    rule_state(events, target.rule)
    if catch_up:
        activation.clear_marker(s3, target.bucket, target.resume_key)
    else:
        activation.write_skip_marker(s3, target.bucket, target.resume_key, _now(at))
    events.enable_rule(Name=target.rule)  # after the marker: the first run already sees it
    how = "catching up the missed intervals" if catch_up else f"skipping intervals before {_now(at):%Y-%m-%d %H:%M} UTC"
    typer.echo(f"detector schedule {target.rule}: ENABLED ({how})")


@app.command("deactivate")
def deactivate(stack_outputs: OutputsOption = None, stack: StackOption = None, region: RegionOption = None) -> None:
    """Disable the detector's schedule; its model state, anomaly groups and alert ledger are kept."""
    target = resolve(stack_outputs, stack, region)
    events, _ = _clients(region)
    rule_state(events, target.rule)
    events.disable_rule(Name=target.rule)
    typer.echo(f"detector schedule {target.rule}: DISABLED (state kept; activate with --catch-up or --skip)")


@app.command("status")
def status(stack_outputs: OutputsOption = None, stack: StackOption = None, region: RegionOption = None) -> None:
    """Show whether the detector's schedule runs, and a pending --skip marker."""
    from sentinel_core import activation

    target = resolve(stack_outputs, stack, region)
    events, s3 = _clients(region)
    state = rule_state(events, target.rule)
    typer.echo(f"detector schedule {target.rule}: {state}")
    skip = activation.read_skip_before(s3, target.bucket, target.resume_key)
    typer.echo(f"resume marker: skip intervals before {skip.isoformat()}" if skip else "resume marker: none")
