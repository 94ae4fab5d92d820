"""cdk-nag (AwsSolutions) and cfn-lint on every synthesized template."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint

from tests.support.assembly import Synth, SynthCache

INFRA = Path(__file__).resolve().parents[2] / "infra"
LOOKOUT_TYPES = ("AWS::LookoutMetrics::AnomalyDetector", "AWS::LookoutMetrics::Alert")


def test_cdk_nag_aws_solutions_has_no_findings(synth: Synth) -> None:
    """cdk-nag v3 runs as a validation plugin: errors fail the synth; here neither errors nor warnings remain.

    The validation report also carries the built-in CloudFormation validation and annotations: the only entry
    allowed is the lookout engine's end-of-support warning.
    """
    violations = [
        (report.get("pluginName"), v["ruleName"], v["severity"], [c["constructPath"] for c in v["violatingConstructs"]])
        for report in synth.validation_report["pluginReports"]
        for v in report.get("violations", [])
    ]
    expected = []
    if synth.engine == "lookout":
        expected = [
            (
                "Construct Annotations",
                "Annotation::@metric-sentinel/lookout-end-of-support",
                "warning",
                ["MetricSentinel/Lookout"],
            )
        ]
    assert [v for v in violations if v[0] != "Construct Annotations"] == []
    assert [v for v in violations if v[0] == "Construct Annotations"] == expected
    assert not [m for m in synth.messages("error")]


def test_cdk_nag_catches_a_violation(tmp_path: Path, synth_cache: SynthCache) -> None:
    """Control: the same app with one unprotected bucket does not synthesize (so the test above can fail)."""
    synth_cache("air-quality", "builtin")  # warm the jsii runtime once
    from aws_cdk import aws_s3 as s3

    from infra.app import create_app

    app, stack = create_app({"preset": "air-quality"}, str(tmp_path))
    s3.Bucket(stack, "Unprotected")
    with pytest.raises(Exception, match=r"(?s)ValidationFailed.*AwsSolutions-S10"):
        app.synth()


def test_every_acknowledgement_has_a_reason() -> None:
    """Each ``acknowledge(construct, rule, reason)`` call in infra/ gives a real sentence as the reason."""
    calls = 0
    for path in INFRA.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "acknowledge":
                calls += 1
                reason = node.args[2] if len(node.args) > 2 else None
                assert reason is not None, f"{path.name}:{node.lineno}: acknowledgement without a reason"
                if isinstance(reason, ast.Name):
                    continue  # a helper passing its caller's reason on
                text = ast.unparse(reason)
                assert len(text) > 40, f"{path.name}:{node.lineno}: acknowledgement without a real reason"
    assert calls >= 5


def test_cfn_lint_has_no_errors(synth: Synth) -> None:
    template = (synth.outdir / "MetricSentinel.template.json").read_text()
    matches = lint(template, config=ManualArgs(regions=["eu-west-1"]))
    errors = [m for m in matches if m.rule.id.startswith("E")]
    allowed = [
        m
        for m in errors
        if m.rule.id == "E3006" and any(t in m.message for t in LOOKOUT_TYPES) and synth.engine == "lookout"
    ]
    assert [(m.rule.id, m.message) for m in errors if m not in allowed] == []
    if synth.engine == "lookout":
        assert len(allowed) == 2  # exactly the two end-of-support types
