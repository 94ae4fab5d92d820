"""``python -m simulator provision`` / ``deprovision``: an AWS IoT device and its credentials, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sentinel_core.spec import SpecError, get_preset

from simulator.commands.options import Region
from simulator.errors import OperationError, UsageError

console = Console(stderr=True)


def provision_command(
    thing: Annotated[str, typer.Option(help="Thing name; also the MQTT client id.")],
    certs_dir: Annotated[Path, typer.Option(help="Directory for the certificate, key and config.json (mode 0600).")],
    preset: Annotated[str, typer.Option(help="IoT preset whose topics the device uses.")] = "air-quality",
    region: Region = None,
    force: Annotated[
        bool, typer.Option(help="Add a certificate even if the thing already has certificates this tool did not make.")
    ] = False,
    rotate: Annotated[bool, typer.Option(help="Issue a new certificate, attach it, then delete the old one.")] = False,
    download_root_ca: Annotated[
        bool, typer.Option(help="Also download Amazon's root CA (needs internet; default: system trust store).")
    ] = False,
) -> None:
    """Create (idempotently) the IoT thing, keys + certificate and the least-privilege device policy.

    The device may connect only as its thing name, publish only to its own telemetry topic and subscribe only to its
    own command topic. Certificate, private key and config.json (endpoint, topics) go to --certs-dir with mode 0600.
    Honours AWS_ENDPOINT_URL, so it also runs against a local moto server.
    """
    from simulator.provisioning import ProvisionError, provision  # boto3: loaded when the command runs, not for --help

    try:
        spec = get_preset(preset)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = provision(thing, certs_dir, spec, region, force=force, rotate=rotate, download_ca=download_root_ca)
    except ProvisionError as exc:
        raise OperationError(str(exc)) from None  # its message says what to fix (region, credentials...)
    for action in result.actions or ["everything already in place: nothing changed"]:
        console.print(f"• {action}")
    cfg = result.config
    console.print(
        f"[green]ready[/green]: thing [bold]{cfg.thing}[/bold], endpoint {cfg.endpoint}:{cfg.port}, "
        f"publishes to {cfg.telemetry_topic}, commands on {cfg.command_topic}\n"
        f"credentials in {result.certs_dir}/ — next: python -m simulator publish --certs-dir {result.certs_dir}"
    )


def deprovision_command(
    thing: Annotated[str, typer.Option(help="Thing name given to provision.")],
    certs_dir: Annotated[Path, typer.Option(help="The directory provision wrote.")],
    region: Annotated[str | None, typer.Option(help="AWS region (default: the one recorded by provision).")] = None,
) -> None:
    """Remove what provision made: detach, deactivate and delete the certificate, the policy, the thing, the files."""
    from simulator.provisioning import ProvisionError, deprovision

    try:
        actions = deprovision(thing, certs_dir, region)
    except ProvisionError as exc:
        raise OperationError(str(exc)) from None  # its message says what to fix (region, credentials...)
    for action in actions:
        console.print(f"• {action}")
