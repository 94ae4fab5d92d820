"""CDK app entry points: ``build_app`` (tests, local runtime, demo) and ``main`` (``cdk synth`` / ``cdk deploy``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.common import ROOT
from infra.config import ConfigError, SentinelConfig
from infra.stack import SentinelStack

STACK_ID = "MetricSentinel"
CDK_JSON = ROOT / "cdk.json"


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of cdk.json (feature flags and defaults), as the CDK CLI would pass it."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("context", {}))


def config_of(app: App) -> SentinelConfig:
    """The configuration from ALL of the app's context: strict, so a mistyped key fails the synth."""
    return SentinelConfig.from_context(dict(app.node.get_all_context()))


def populate(app: App) -> SentinelStack:
    """Add the stack the app's context asks for, with cdk-nag's AWS Solutions pack as a validation plugin."""
    config = config_of(app)
    stack = SentinelStack(app, STACK_ID, config=config)
    # cdk-nag v3 runs as a policy-validation plugin: any unacknowledged finding fails the synth (and is listed in
    # cdk.out/policy-validation-report.json).
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def create_app(context: Mapping[str, Any], outdir: str) -> tuple[App, SentinelStack]:
    """An app with cdk.json's context overlaid by ``context`` and an explicit output directory (not synthesized)."""
    # What the CDK CLI adds: asset metadata (``aws:asset:path`` on each function: the local runtime loads the
    # handler from that asset directory) and construct paths.
    cli_defaults = {"aws:cdk:enable-asset-metadata": True, "aws:cdk:enable-path-metadata": True}
    merged = {**cli_defaults, **cdk_json_context(), **dict(context)}
    app = App(outdir=outdir, context=merged)
    return app, populate(app)


def build_app(context: Mapping[str, Any], outdir: str) -> App:
    """Synthesize the stack for ``context`` (keys of cdk.json, e.g. ``{"preset": "loyalty"}``) into ``outdir``."""
    app, _ = create_app(context, outdir)
    app.synth()
    return app


def main() -> None:
    """What ``cdk synth`` runs: context from CDK_CONTEXT_JSON, output to CDK_OUTDIR (both read by ``App()``).

    A configuration error is one line naming the context key (``cdk`` shows it and exits non-zero), no traceback."""
    app = App()
    try:
        populate(app)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    app.synth()
