"""``python -m simulator console``: the anomaly console offline, over the last demo's state (no sign-in)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_PORT = 8321  # an unassigned port (IANA), away from the usual 8000/8080 development servers


def console(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on localhost (0: any free port).")] = DEFAULT_PORT,
    out: Annotated[Path, typer.Option(help="The demo's output directory (holds console-state.json).")] = Path(
        "out/demo"
    ),
) -> None:
    """Serve the console (the deployed API handler and web files) on localhost over the last `make demo`'s state.

    Offline and without sign-in: nothing reaches AWS. Feedback you give is stored in OUT/console-state.json; the
    runs page can run the detector on the next interval, which applies it.
    """
    from simulator.console_server import ConsoleServer

    def ready(server: Any) -> None:
        typer.echo(f"Offline console (no sign-in) over {out}: {server.url}  — Ctrl-C to stop", err=True)

    with ConsoleServer(out, port) as server:
        try:
            server.serve(ready)
        except KeyboardInterrupt:
            typer.echo("stopped", err=True)
