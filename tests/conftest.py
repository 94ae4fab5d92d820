"""Test-wide safety (fake credentials and a fake region, so that no test can ever reach real AWS) and the shared
session fixtures (``synth_cache``: synthesized CDK assemblies, see ``tests/support/assembly.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.assembly import SynthCache


def _node_major() -> str:
    """jsii's end-of-life banner is silenced per acknowledged Node major version (e.g. "20")."""
    node = shutil.which("node")
    if not node:
        return ""
    out = subprocess.run([node, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True)
    return out.stdout.strip()


_NODE_MAJOR = _node_major()
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": _NODE_MAJOR,
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": _NODE_MAJOR,
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
