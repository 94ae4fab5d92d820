"""The demo's session around a pipeline: the offline harness plus the Lambdas' logs sent to the run's log file.

``local_aws.offline`` does the safety part (fake credentials, moto, the IoT endpoint route, cold handlers); this
adds what only the demo wants: whatever the handlers print (Powertools' JSON logs, EMF metrics) goes to
``<out>/lambda-logs.jsonl`` — the part CloudWatch Logs would hold — while the CLI keeps the terminal.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import local_aws
from local_aws import LocalPipeline

LOG_FILE = "lambda-logs.jsonl"


class LogSink(io.TextIOBase):
    """Where the Lambdas' stdout/stderr go: the run's log file.

    Powertools binds its handler to ``sys.stdout`` once per process, so the demo redirects stdout to this one
    long-lived object and points it at each run's file; outside a run it forwards to the real stdout.
    """

    def __init__(self) -> None:
        super().__init__()
        self.target: Any = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        out = self.target or sys.__stdout__
        if out is not None:
            out.write(text)
        return len(text)

    def flush(self) -> None:
        out = self.target or sys.__stdout__
        if out is not None:
            out.flush()


LAMBDA_LOG = LogSink()


@contextlib.contextmanager
def demo_session(pipeline: LocalPipeline, out: Path) -> Iterator[LocalPipeline]:
    """``local_aws.offline(pipeline)`` with stdout/stderr going to ``out/lambda-logs.jsonl``; yields it started."""
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        log = stack.enter_context((out / LOG_FILE).open("w", encoding="utf-8"))
        LAMBDA_LOG.target = log
        stack.callback(setattr, LAMBDA_LOG, "target", None)
        stack.enter_context(contextlib.redirect_stdout(LAMBDA_LOG))
        stack.enter_context(contextlib.redirect_stderr(LAMBDA_LOG))
        yield stack.enter_context(local_aws.offline(pipeline))
