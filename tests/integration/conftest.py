"""Integration fixtures: a preset's synthesized stack (the session's shared assembly) played on moto through the
one offline harness, ``local_aws.offline``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from local_aws import LocalPipeline, offline
from tests.support.assembly import SynthCache
from tests.support.aws import Play


@pytest.fixture
def play(synth_cache: SynthCache) -> Iterator[Play]:
    """``play(preset, **context)``: the stack started in moto, offline, for this test (closed after it)."""
    with contextlib.ExitStack() as stack:

        def start(preset: str, **context: Any) -> LocalPipeline:
            pipeline = LocalPipeline.from_assembly(synth_cache(preset, **context).outdir)
            return stack.enter_context(offline(pipeline))

        yield start
