"""Synthesized cloud assemblies for tests: the real CDK app, one synth per (preset, engine, extra context).

``SynthCache`` synthesizes on first use and hands out the same ``Synth`` afterwards; ``tests/conftest.py`` keeps one
cache per test session (per xdist worker) as the ``synth_cache`` fixture, used by the infra tests (they read the
template) and the integration tests (they play ``Synth.outdir`` with ``LocalPipeline.from_assembly``). A test must
not write into a cached assembly: every later user of that (preset, engine, context) reads the same directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel_core.spec import PipelineSpec

from infra.common import MARKER_METADATA_KEY


@dataclass(frozen=True)
class Synth:
    """One synthesized cloud assembly (one stack)."""

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

    def by_marker(self, marker: str) -> tuple[str, dict[str, Any]]:
        """The one resource marked ``Metadata: {"sentinel:role": marker}`` (logical id, resource)."""
        found = [(k, v) for k, v in self.resources.items() if v.get("Metadata", {}).get(MARKER_METADATA_KEY) == marker]
        assert len(found) == 1, f"{len(found)} resources marked {marker!r} in {self.preset}/{self.engine}"
        return found[0]

    def markers(self) -> set[str]:
        return {
            str(v["Metadata"][MARKER_METADATA_KEY])
            for v in self.resources.values()
            if MARKER_METADATA_KEY in v.get("Metadata", {})
        }

    def shards(self) -> int:
        """The builtin detector's shards: 1 for the single scheduled detector (and for engine lookout), more for the
        Step Functions fan-out (its shard function's ``DETECTOR_SHARDS``)."""
        found = [
            v for v in self.resources.values() if v.get("Metadata", {}).get(MARKER_METADATA_KEY) == "detector_shard"
        ]
        return int(found[0]["Properties"]["Environment"]["Variables"]["DETECTOR_SHARDS"]) if found else 1

    def spec(self) -> PipelineSpec:
        """The spec the transform function runs with (its SENTINEL_SPEC environment variable)."""
        _, fn = self.by_marker("transform")
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
    """Real synth of the CDK app (``infra.app.build_app``, cdk-nag included) into ``outdir``, read back."""
    from infra.app import build_app  # imports aws_cdk (jsii): only when a test synthesizes

    build_app(context, str(outdir))
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert len(stacks) == 1, f"{len(stacks)} stacks in {outdir}"
    template = json.loads((outdir / stacks[0]["properties"]["templateFile"]).read_text())
    # Written on every synth with a validation plugin (cdk-nag); an empty pluginReports list = no finding.
    report = json.loads((outdir / "validation-report.json").read_text())
    return Synth(
        preset=str(context["preset"]),
        engine=str(context["engine"]),
        outdir=outdir,
        template=template,
        manifest=manifest,
        validation_report=report,
    )


class SynthCache:
    """``cache(preset, engine=None, **extra_context)``: synthesized on first use, the same ``Synth`` after.

    ``engine=None`` is the configuration's default engine, so ``cache("loyalty")`` and ``cache("loyalty",
    "builtin")`` share one assembly.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._cache: dict[str, Synth] = {}

    def __call__(self, preset: str, engine: str | None = None, **extra: Any) -> Synth:
        from infra.config import DEFAULT_ENGINE

        context: dict[str, Any] = {**extra, "preset": preset, "engine": engine or DEFAULT_ENGINE}
        key = json.dumps(context, sort_keys=True)
        if key not in self._cache:
            name = f"{preset}-{context['engine']}"
            if extra:  # context values can be long JSON: a short digest keeps the directory name legal
                name += "-" + hashlib.sha256(key.encode()).hexdigest()[:12]
            self._cache[key] = synthesize(context, self.base / name)
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)
