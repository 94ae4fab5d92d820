"""Metric Sentinel operator CLI (typer + rich): ``sentinel`` or ``python -m simulator``.

Every command is registered here, from modules that import only typer and the standard library at load time: each
command imports what it needs (boto3, matplotlib, the AWS IoT SDK, the demo machinery) inside its function, so
``sentinel --help`` and ``sentinel CMD --help`` stay fast while typer still knows every option.

User errors (:mod:`simulator.errors`) become one line on stderr and their exit code in :class:`SentinelGroup`.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from simulator.commands import backtest, console, demo, detector, feedback, generate, provision, publish, stream
from simulator.errors import as_cli_error

DISTRIBUTION = "metric-sentinel"  # pyproject's [project] name: where --version reads from


class SentinelGroup(TyperGroup):
    """The one place where domain errors become a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context; its module is private (typer._click)
        try:
            return super().invoke(ctx)
        except Exception as exc:
            error = as_cli_error(exc)
            if error is None:
                raise  # a bug: keep the traceback
            typer.echo(f"error: {error.message}", err=True)
            raise typer.Exit(error.exit_code) from None


HELP = "Metric Sentinel: generate and publish sensor data, provision devices, backtest, feedback, offline demo."

app = typer.Typer(
    name="sentinel",
    cls=SentinelGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never pip-installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sentinel {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the installed version and exit."),
    ] = False,
) -> None:
    """Metric Sentinel: generate and publish sensor data, provision devices, backtest, feedback, offline demo."""


# Listed in the order `--help` shows them: data first, then devices, then analysis.
app.command(name="generate")(generate.generate)
app.command(name="provision")(provision.provision_command)
app.command(name="deprovision")(provision.deprovision_command)
app.command(name="publish")(publish.publish)
app.command(name="stream")(stream.stream)
app.command(name="backtest")(backtest.backtest)
app.command(name="feedback")(feedback.feedback)
app.command(name="demo")(demo.demo)
app.add_typer(detector.app, name="detector")
app.command(name="console")(console.console)

COMMANDS: tuple[str, ...] = (
    *(str(c.name) for c in app.registered_commands),
    *(str(g.name) for g in app.registered_groups),  # command groups: `sentinel detector activate|...`
)


def main() -> None:
    """Entry point of the ``sentinel`` console script and of ``python -m simulator``."""
    app(prog_name="sentinel" if sys.argv and sys.argv[0].endswith("sentinel") else "python -m simulator")
