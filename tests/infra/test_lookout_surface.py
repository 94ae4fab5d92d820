"""Issue 14 in synthesized stacks, every preset x engine: several alerts with exact IAM, the dataset filter, the
schedule's deploy state and its outputs; cdk-nag and cfn-lint stay clean with all of it configured."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from sentinel_core import activation
from sentinel_core.spec import PRESETS, get_preset

from infra.config import ENGINES
from tests.support.assembly import Synth, SynthCache

EXTERNAL_TOPIC = "arn:aws:sns:eu-west-1:123456789012:facilities-team"
TICKETS_FN = "arn:aws:lambda:eu-west-1:123456789012:function:open-ticket"
COMBOS = [(p, e) for p in PRESETS for e in ENGINES]


def surface(preset: str) -> dict[str, Any]:
    """Context using every new key for ``preset``: 3 alerts (stack topic, existing topic, Lambda), a filter."""
    spec = get_preset(preset)
    dim = spec.dimensions[0]
    return {
        "alerts": json.dumps(
            [
                {"name": "everyone", "threshold": 70},
                {"name": "facilities", "threshold": 90, "dimensions": {dim: ["v-1"]}, "target": EXTERNAL_TOPIC},
                {"name": "tickets", "measures": [spec.measures[0].name], "target": TICKETS_FN, "format": "lookout"},
            ]
        ),
        "dimension_filter": json.dumps({dim: ["v-1", "v-2"]}),
        "detector_active": "false",
    }


@pytest.fixture(params=COMBOS, ids=[f"{p}-{e}" for p, e in COMBOS])
def full(request: pytest.FixtureRequest, synth_cache: SynthCache) -> Synth:
    preset, engine = request.param
    return synth_cache(preset, engine, **surface(preset))


def statements(s: Synth) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for res in s.resources.values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::Role"):
            docs = [res["Properties"].get("PolicyDocument")] + [
                p["PolicyDocument"] for p in res["Properties"].get("Policies", [])
            ]
            out += [st for d in docs if d for st in d["Statement"]]
    return out


def granted(s: Synth, action: str) -> set[str]:
    found: set[str] = set()
    for st in statements(s):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if action in actions:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            found |= {r for r in resources if isinstance(r, str)}
    return found


def test_the_spec_carries_the_dataset_filter(full: Synth) -> None:
    spec = full.spec()
    assert spec.dimension_filter == {spec.dimensions[0]: ("v-1", "v-2")}


def test_builtin_alert_routes_iam_schedule_and_outputs(full: Synth) -> None:
    if full.engine != "builtin":
        pytest.skip("builtin engine only")
    _, det = full.by_marker("detector")
    routes = json.loads(det["Properties"]["Environment"]["Variables"]["ALERT_ROUTES"])
    assert [(r["name"], r["threshold"], r["target"], r["format"]) for r in routes] == [
        ("everyone", 70.0, "topic", "sentinel"),
        ("facilities", 90.0, EXTERNAL_TOPIC, "sentinel"),
        ("tickets", get_preset(full.preset).severity_threshold, TICKETS_FN, "lookout"),
    ]
    # exact: the external topic and the function, each by its ARN (the stack topic is a Ref, not a string)
    assert granted(full, "sns:Publish") == {EXTERNAL_TOPIC}
    assert granted(full, "lambda:InvokeFunction") == {TICKETS_FN}
    _, rule = full.by_marker("detector-schedule")
    assert rule["Properties"]["State"] == "DISABLED"
    outputs = full.template["Outputs"]
    assert outputs["DetectorResumeKey"]["Value"] == activation.resume_key(full.spec())
    assert "DetectorScheduleRuleName" in outputs
    if full.preset == "loyalty":  # the backtest job routes the same alerts
        _, job = full.by_marker("backtest_job")
        assert job["Properties"]["Environment"]["Variables"]["ALERT_ROUTES"] == json.dumps(
            routes, separators=(",", ":"), sort_keys=True
        )


def test_lookout_alerts_and_dimension_filter_list(full: Synth) -> None:
    if full.engine != "lookout":
        pytest.skip("lookout engine only")
    spec = full.spec()
    _, det = full.by_marker("lookout-detector")
    (ms,) = det["Properties"]["MetricSetList"]
    assert ms["DimensionFilterList"] == [{"DimensionName": spec.dimensions[0], "DimensionValueList": ["v-1", "v-2"]}]
    alerts = [v for v in full.of_type("AWS::LookoutMetrics::Alert").values()]
    by_name = {a["Properties"]["AlertName"]: a["Properties"] for a in alerts}
    assert set(by_name) == {"everyone", "facilities", "tickets"}
    assert by_name["facilities"]["AlertSensitivityThreshold"] == 90
    assert by_name["facilities"]["Action"]["SNSConfiguration"]["SnsTopicArn"] == EXTERNAL_TOPIC
    assert by_name["tickets"]["Action"]["LambdaConfiguration"]["LambdaArn"] == TICKETS_FN
    assert granted(full, "sns:Publish") == {EXTERNAL_TOPIC}
    assert granted(full, "lambda:InvokeFunction") == {TICKETS_FN}
    warnings = [text for _, text in full.messages("warning")]
    assert any("AlertFilters" in t for t in warnings)


def test_default_stack_keeps_one_alert_and_an_enabled_schedule(synth: Synth) -> None:
    assert synth.spec().dimension_filter == {}
    if synth.engine == "builtin":
        _, det = synth.by_marker("detector" if synth.shards() == 1 else "detector_merge")
        assert "ALERT_ROUTES" not in det["Properties"]["Environment"]["Variables"]
        _, rule = synth.by_marker("detector-schedule")
        assert rule["Properties"]["State"] == "ENABLED"
    else:
        assert len(synth.of_type("AWS::LookoutMetrics::Alert")) == 1
    assert granted(synth, "lambda:InvokeFunction") == set()


def test_cdk_nag_and_cfn_lint_stay_clean_with_everything_configured(full: Synth) -> None:
    violations = [
        (v["ruleName"], [c["constructPath"] for c in v["violatingConstructs"]])
        for report in full.validation_report["pluginReports"]
        if report.get("pluginName") != "Construct Annotations"
        for v in report.get("violations", [])
    ]
    assert violations == []
    assert not full.messages("error")
    template = (full.outdir / "MetricSentinel.template.json").read_text()
    errors = [m for m in lint(template, config=ManualArgs(regions=["eu-west-1"])) if m.rule.id.startswith("E")]
    lookout_types = ("AWS::LookoutMetrics::AnomalyDetector", "AWS::LookoutMetrics::Alert")
    unexpected = [
        (m.rule.id, m.message)
        for m in errors
        if not (m.rule.id == "E3006" and any(t in m.message for t in lookout_types))
    ]
    assert unexpected == []
