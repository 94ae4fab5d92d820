"""The demo's stack: a real CDK synth of ``infra/`` (``infra.app.build_app``), cached by a source-hash stamp.

The assembly under ``<out>/cdk.out`` is reused while neither the context nor any source file the stack is built
from changed since (``.demo-source-hash`` holds their hash); otherwise it is synthesized again. The local runtime
(``local_aws.LocalPipeline.from_assembly``) then plays it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline
from simulator.demo.result import CONSOLE_URL, DEMO_EMAIL, DEMO_PHONE, DemoError

ROOT = Path(__file__).resolve().parents[2]
STAMP = ".demo-source-hash"


def synth_context(spec: PipelineSpec, shards: int = 1) -> dict[str, Any]:
    """CDK context of the demo stack: the preset, the built-in engine and one e-mail and one SMS recipient (and
    the detector's shards, only when more than one: the single detector's context stays as it was)."""
    context: dict[str, Any] = {
        "preset": spec.preset,
        "engine": "builtin",
        "alert_emails": [DEMO_EMAIL],
        "alert_phones": [DEMO_PHONE],
        "console_base_url": CONSOLE_URL.rstrip("/"),  # the alerts link to the offline console's group pages
    }
    if shards > 1:
        context["detector_shards"] = shards
    return context


def not_played_notes(unsupported: list[str]) -> list[str]:
    """The demo's note on resources the local runtime does not play; the console's deployed front (HTTP API,
    Cognito, CloudFront, Glue, its history stream) is named once: `make console` replaces it offline."""
    console = [r for r in unsupported if r.startswith("Console")]
    others = [r for r in unsupported if not r.startswith("Console")]
    notes = ["Not played locally: " + ", ".join(others)] if others else []
    if console:
        notes.append(
            f"The console's deployed front ({len(console)} resources: HTTP API, Cognito, CloudFront, Glue, the history "
            "stream) is not played here; `make console` serves the same API handler and web files."
        )
    return notes


def source_hash(context: dict[str, Any]) -> str:
    """Hash of the context and of every file the synthesized stack depends on (app, cdk.json, the deploy lock and the
    Powertools pin the layer is derived from, infra/, lambdas/)."""
    h = hashlib.sha256(json.dumps(context, sort_keys=True).encode())
    files = [ROOT / "app.py", ROOT / "cdk.json", *(ROOT / "requirements" / f for f in ("deploy.lock", "lambda.in"))]
    for folder in ("infra", "lambdas"):
        files += sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def use_project_node() -> None:
    """jsii runs ``node`` from PATH. Where the system Node is older than 22, ``make setup`` links Node 22 into the
    venv: put the venv's bin first so that a demo started as ``.venv/bin/python -m simulator demo`` uses it too."""
    venv_bin = Path(sys.executable).parent
    path = os.environ.get("PATH", "")
    if (venv_bin / "node").exists() and not path.startswith(f"{venv_bin}{os.pathsep}"):
        os.environ["PATH"] = f"{venv_bin}{os.pathsep}{path}"


def synthesize(context: dict[str, Any], outdir: Path) -> None:
    """Real CDK synth of the app with ``context`` into ``outdir`` (imports aws_cdk: only when synthesizing)."""
    use_project_node()
    try:
        build_app = importlib.import_module("infra.app").build_app
    except ModuleNotFoundError as exc:
        raise DemoError(f"the CDK app cannot be synthesized: {exc} (is infra/ complete? run `make setup`)") from exc
    build_app(dict(context), str(outdir))


def load_pipeline(spec: PipelineSpec, outdir: Path, shards: int = 1) -> tuple[LocalPipeline, bool]:
    """The local runtime for the demo stack of ``spec``; (pipeline, True when it was synthesized now)."""
    context = synth_context(spec, shards)
    stamp = outdir / STAMP
    digest = source_hash(context)
    if (outdir / "manifest.json").exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return LocalPipeline.from_assembly(outdir), False
    if (outdir / "manifest.json").exists():
        shutil.rmtree(outdir)  # an assembly of older sources: its stale asset folders would pile up
    synthesize(context, outdir)
    stamp.write_text(digest + "\n")
    return LocalPipeline.from_assembly(outdir), True
