"""Options and parsers several commands share, written once (light imports only: ``--help`` loads this)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from sentinel_core.intervals import to_utc
from sentinel_core.records import parse_timestamp

from simulator.errors import UsageError

Region = Annotated[
    str | None,
    typer.Option(
        envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
        help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, then your AWS profile).",
    ),
]


def parse_start(text: str | None, option: str = "--start") -> datetime | None:
    """A ``--start`` value as UTC, or None when not given; a bad value is a one-line usage error."""
    if text is None:
        return None
    try:
        return to_utc(parse_timestamp(text))
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
