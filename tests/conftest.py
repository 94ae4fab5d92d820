"""Test-wide safety (fake credentials and a fake region, so that no test can ever reach real AWS) and the shared
session fixtures (``synth_cache``: synthesized CDK assemblies, see ``tests/support/assembly.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.assembly import SynthCache

# jsii (every `import aws_cdk`) runs `node` from PATH. Where the system Node is older than 22, `make setup` links
# Node 22 into the venv: put the venv's bin first so that `.venv/bin/python -m pytest` uses it as `make test` does.
_VENV_BIN = Path(sys.executable).parent
if (_VENV_BIN / "node").exists() and not os.environ.get("PATH", "").startswith(f"{_VENV_BIN}{os.pathsep}"):
    os.environ["PATH"] = f"{_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "POWERTOOLS_METRICS_NAMESPACE": "MetricSentinelTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
)
for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(var, None)

# Hypothesis: on CI (CI=true) every run draws the same examples, so a landing is reproducible; on a developer's
# machine each run explores new ones, and what they find is kept as explicit regression tests.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> SynthCache:
    """One synthesized assembly per (preset, engine, extra context) per session (per xdist worker), for every test
    directory: ``synth_cache("air-quality", "builtin").outdir`` feeds ``LocalPipeline.from_assembly``."""
    from tests.support.assembly import SynthCache  # imports aws_cdk: only for tests that synthesize

    return SynthCache(tmp_path_factory.mktemp("cdk"))
