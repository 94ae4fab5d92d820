"""Synthesize each (preset, engine) combination once per test session (per xdist worker) into an explicit outdir."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sentinel_core.spec import PipelineSpec

PRESETS = ("air-quality", "loyalty", "ecommerce")
ENGINES = ("builtin", "lookout")
COMBOS = [(p, e) for p in PRESETS for e in ENGINES]
ROLE_KEY = "sentinel:role"


@dataclass
class Synth:
    """One synthesized cloud assembly."""

    preset: str
    engine: str
    outdir: Path
    template: dict[str, Any]
    manifest: dict[str, Any]
    validation_report: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def by_role(self, role: str) -> tuple[str, dict[str, Any]]:
        """The one resource marked ``Metadata: {"sentinel:role": role}``."""
        found = [(k, v) for k, v in self.resources.items() if v.get("Metadata", {}).get(ROLE_KEY) == role]
        assert len(found) == 1, f"{len(found)} resources with role {role!r} in {self.preset}/{self.engine}"
        return found[0]

    def roles(self) -> set[str]:
        return {str(v["Metadata"][ROLE_KEY]) for v in self.resources.values() if ROLE_KEY in v.get("Metadata", {})}

    def spec(self) -> PipelineSpec:
        """The spec the transform function runs with (its SENTINEL_SPEC environment variable)."""
        _, fn = self.by_role("transform")
        return PipelineSpec.from_json(fn["Properties"]["Environment"]["Variables"]["SENTINEL_SPEC"])

    def messages(self, level: str) -> list[tuple[str, str]]:
        """(construct path, text) of every ``aws:cdk:<level>`` annotation in the assembly."""
        out: list[tuple[str, str]] = []
        for art in self.manifest["artifacts"].values():
            metadata = dict(art.get("metadata") or {})
            if art.get("additionalMetadataFile"):
                metadata.update(json.loads((self.outdir / art["additionalMetadataFile"]).read_text()))
            for path, entries in metadata.items():
                out += [(path, str(e["data"])) for e in entries if e["type"] == f"aws:cdk:{level}"]
        return out


def synthesize(context: dict[str, Any], outdir: Path) -> Synth:
    from infra.app import build_app

    build_app(context, str(outdir))
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert len(stacks) == 1
    template = json.loads((outdir / stacks[0]["properties"]["templateFile"]).read_text())
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    return Synth(
        preset=str(context.get("preset")),
        engine=str(context.get("engine")),
        outdir=outdir,
        template=template,
        manifest=manifest,
        validation_report=report,
    )


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Synth]]:
    """``get(preset, engine, **extra_context)`` synthesizes on first use and returns the cached assembly after."""
    cache: dict[str, Synth] = {}
    base = tmp_path_factory.mktemp("cdk")

    def get(preset: str, engine: str, **extra: Any) -> Synth:
        context: dict[str, Any] = {"preset": preset, "engine": engine, **extra}
        key = json.dumps(context, sort_keys=True)
        if key not in cache:
            name = "-".join(f"{k}={v}" for k, v in sorted(context.items())).replace("/", "_")
            cache[key] = synthesize(context, base / name)
        return cache[key]

    yield get


@pytest.fixture(params=COMBOS, ids=[f"{p}-{e}" for p, e in COMBOS])
def synth(request: pytest.FixtureRequest, synth_cache: Callable[..., Synth]) -> Synth:
    preset, engine = request.param
    return synth_cache(preset, engine)
