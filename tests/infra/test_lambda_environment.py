"""The stack and the handlers agree on environment variables, read from every synthesized template.

Both directions: every variable a synthesized function gets is one ``sentinel_core.environment`` names (no name the
handlers would never read, no typo), and every variable a handler requires is set on its function, with values its
own settings loader accepts (the loaders raise ``ConfigError`` on anything missing or malformed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from automation import app as automation_app
from backtest_job import job
from console_api import app as console_api_app
from console_archive import app as console_archive_app
from console_web import app as console_web_app
from detector import app as detector_app
from detector import runner
from detector_merge import app as merge_app
from detector_shard import app as shard_app
from sentinel_core import environment
from sentinel_core.spec import PipelineSpec
from transform import app as transform_app

from infra.common import MARKER_METADATA_KEY
from tests.support.assembly import Synth

Loader = Callable[[Mapping[str, str]], Any]
SPEC_ONLY = (environment.SENTINEL_SPEC,)
# role (the handler package) -> (what its cold start requires, its settings loader, what that loader requires)
HANDLERS: dict[str, tuple[tuple[str, ...], Loader, tuple[str, ...]]] = {
    "transform": (transform_app.REQUIRED_ENV, PipelineSpec.from_env, SPEC_ONLY),
    "detector": (detector_app.REQUIRED_ENV, runner.Settings.from_env, runner.REQUIRED_ENV),
    "detector_shard": (shard_app.REQUIRED_ENV, runner.Settings.from_env, runner.REQUIRED_ENV),
    "detector_merge": (merge_app.REQUIRED_ENV, runner.Settings.from_env, runner.REQUIRED_ENV),
    "automation": (automation_app.REQUIRED_ENV, PipelineSpec.from_env, SPEC_ONLY),
    "backtest_job": (job.REQUIRED_ENV, job.Settings.from_env, job.REQUIRED_ENV),
    "console_api": (console_api_app.REQUIRED_ENV, console_api_app.Settings.from_env, console_api_app.REQUIRED_ENV),
    "console_archive": (
        console_archive_app.REQUIRED_ENV,
        console_archive_app.Settings.from_env,
        console_archive_app.REQUIRED_ENV,
    ),
    "console_web": (console_web_app.REQUIRED_ENV, PipelineSpec.from_env, SPEC_ONLY),
}


def _functions(synth: Synth) -> dict[str, dict[str, Any]]:
    """role -> environment variables of every function of the pipeline (CDK's own helpers have no role)."""
    out: dict[str, dict[str, Any]] = {}
    for res in synth.of_type("AWS::Lambda::Function").values():
        role = res.get("Metadata", {}).get(MARKER_METADATA_KEY)
        if role is not None:
            out[str(role)] = dict(res["Properties"].get("Environment", {}).get("Variables", {}))
    return out


def _as_deployed(variables: Mapping[str, Any]) -> dict[str, str]:
    """Values as the function sees them: CloudFormation references (Ref, Fn::GetAtt) resolve to some text."""
    return {k: v if isinstance(v, str) else f"resolved-{k.lower()}" for k, v in variables.items()}


def test_every_pipeline_function_is_a_known_handler(synth: Synth) -> None:
    functions = _functions(synth)
    assert "transform" in functions or synth.spec().ingest == "s3"
    assert set(functions) <= set(HANDLERS), f"unknown handler role(s) {set(functions) - set(HANDLERS)}"


def test_every_variable_a_function_gets_is_a_named_one(synth: Synth) -> None:
    for role, variables in _functions(synth).items():
        unknown = set(variables) - environment.NAMES
        assert not unknown, f"{synth.preset}/{synth.engine} {role} gets {sorted(unknown)}, not in environment.NAMES"


def test_every_variable_a_handler_requires_is_set_and_accepted(synth: Synth) -> None:
    for role, variables in _functions(synth).items():
        required, load, _ = HANDLERS[role]
        missing = set(required) - set(variables)
        assert not missing, f"{synth.preset}/{synth.engine} {role} requires {sorted(missing)}, the stack sets none"
        load(_as_deployed(variables))  # raises ConfigError on anything missing or malformed


@pytest.mark.parametrize("role", sorted(HANDLERS))
def test_a_loader_names_each_variable_it_requires_when_it_is_missing(
    role: str, synth_cache: Callable[..., Synth]
) -> None:
    """The REQUIRED_ENV lists are what the loaders really read: removing one from a deployed environment fails."""
    required, load, loader_required = HANDLERS[role]
    assert set(loader_required) <= set(required)
    preset = "loyalty" if role == "backtest_job" else "air-quality"
    extra = {"detector_shards": 2} if role.startswith("detector_") else {}
    deployed = _as_deployed(_functions(synth_cache(preset, "builtin", **extra))[role])
    for name in loader_required:
        with pytest.raises(environment.ConfigError, match=name):
            load({k: v for k, v in deployed.items() if k != name})


def test_the_shard_count_reaches_the_transform_and_the_detector(synth: Synth, monkeypatch: pytest.MonkeyPatch) -> None:
    """DETECTOR_SHARDS: the same count on the transform (the shard partition key), the shards and the merge, and
    what each handler reads; absent everywhere with one shard (that stack is as it always was)."""
    functions = _functions(synth)
    counts = {role: v.get(environment.DETECTOR_SHARDS) for role, v in functions.items()}
    if "detector_shard" not in functions:
        assert set(counts.values()) == {None}, counts
        return
    shards = {counts[r] for r in ("transform", "detector_shard", "detector_merge") if r in functions}
    assert len(shards) == 1 and int(next(iter(shards)) or 0) > 1, counts
    n = int(next(iter(shards)) or 0)
    for role in ("detector_shard", "detector_merge"):
        assert runner.Settings.from_env(_as_deployed(functions[role])).shards == n
    if "transform" in functions:
        monkeypatch.setenv(environment.DETECTOR_SHARDS, counts["transform"] or "")
        assert transform_app._shards() == n
