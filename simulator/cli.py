"""Metric Sentinel simulator and operator CLI (typer + rich).

Each command lives in its own module and registers itself on ``app`` when imported below.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="simulator",
    help="Metric Sentinel: generate and publish sensor data, provision devices, backtest, feedback, offline demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """Metric Sentinel: generate and publish sensor data, provision devices, backtest, feedback, offline demo."""
    # An explicit callback keeps `python -m simulator <command>` a group even while only one command is registered.


COMMANDS: tuple[str, ...] = ("generate", "provision", "publish", "stream", "backtest", "feedback", "demo")


def _register() -> None:
    """Import the command modules (each decorates its functions with ``@app.command``).

    Imported lazily so that ``--help`` and light commands do not pay for the heavy ones' imports at module load.
    """
    import importlib

    for name in COMMANDS:
        importlib.import_module(f"simulator.commands.{name}")


def main() -> None:
    _register()
    app()
