"""Typed configuration from CDK context: defaults, CLI strings, and one clear error per bad setting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from sentinel_core.spec import Measure, get_preset

from infra.config import (
    CONTEXT_KEYS,
    DEFAULT_ENGINE,
    DEFAULT_PRESET,
    ConfigError,
    SentinelConfig,
    default_detector_id,
    default_stack_name,
)

ROOT = Path(__file__).resolve().parents[2]

_LAYER = "arn:aws:lambda:eu-west-1:017000801446:layer:"


def cfg(**ctx: Any) -> SentinelConfig:
    return SentinelConfig.from_context(ctx)


def field_defaults() -> dict[str, object]:
    """The ``SentinelConfig`` fields that have a default, with it (the one place defaults are written)."""
    return {f.name: f.default for f in dataclasses.fields(SentinelConfig) if f.default is not dataclasses.MISSING}


def test_defaults_come_from_the_config_fields() -> None:
    c = cfg()
    assert c.spec == get_preset(DEFAULT_PRESET) and c.engine == DEFAULT_ENGINE
    assert c.stack_name == default_stack_name(DEFAULT_PRESET)
    assert c.detector_id == c.detector_name == default_detector_id(DEFAULT_PRESET)
    defaults = field_defaults()
    assert {"log_retention_days", "powertools_layer_arn", "schedule_offset_seconds"} <= set(defaults)
    assert {name: getattr(c, name) for name in defaults} == defaults


def test_derived_defaults_follow_the_preset() -> None:
    c = cfg(preset="loyalty")
    assert c.stack_name == default_stack_name("loyalty") != default_stack_name(DEFAULT_PRESET)
    assert c.detector_id == c.detector_name == default_detector_id("loyalty")
    assert cfg(preset="loyalty", detector_id="mine").detector_name == "mine"


def test_cdk_json_context_is_valid_and_complete() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert set(CONTEXT_KEYS) <= set(context)
    c = SentinelConfig.from_context(context)
    assert (c.preset, c.engine) == (DEFAULT_PRESET, DEFAULT_ENGINE)
    assert context["@aws-cdk/core:validateAgainstDefaultRules"] is True
    # cdk.json shows the settings to whoever deploys; it must build exactly the defaults' configuration.
    assert c == cfg()


def test_frozen() -> None:
    c = cfg()
    with pytest.raises(AttributeError):
        c.engine = "lookout"  # type: ignore[misc]


@pytest.mark.parametrize("preset", ["air-quality", "loyalty", "ecommerce"])
@pytest.mark.parametrize("engine", ["builtin", "lookout"])
def test_every_preset_and_engine(preset: str, engine: str) -> None:
    c = cfg(preset=preset, engine=engine)
    assert c.spec == get_preset(preset) and c.engine == engine


def test_cli_strings_are_parsed() -> None:
    c = cfg(
        alert_emails="a@example.com, b@example.org",
        alert_phones='["+14155550100", "+442071838750"]',
        severity_threshold="85.5",
        interval="pt1h",
        measures="CO,NO2:SUM",
        dimensions='["LOCATION_ID", "FLOOR"]',
        log_retention_days="14",
        schedule_offset_seconds="300",
        powertools_layer_arn="arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:30",
        alert_filter='{"measures": ["CO"], "dimensions": {"LOCATION_ID": ["B-101"]}}',
    )
    assert c.alert_emails == ("a@example.com", "b@example.org")
    assert c.alert_phones == ("+14155550100", "+442071838750")
    assert c.spec.severity_threshold == 85.5
    assert c.spec.interval == "PT1H"
    # CO keeps the preset's unit and plausible range; NO2 is a new measure here (no range).
    assert c.spec.measures == (get_preset("air-quality").measure("CO"), Measure("NO2", "SUM"))
    assert c.spec.dimensions == ("LOCATION_ID", "FLOOR")
    assert (c.log_retention_days, c.schedule_offset_seconds) == (14, 300)
    assert c.powertools_layer_arn.endswith(":layer:AWSLambdaPowertoolsPythonV3-python312-arm64:30")
    assert json.loads(c.alert_filter_json) == {"dimensions": {"LOCATION_ID": ["B-101"]}, "measures": ["CO"]}


def test_json_context_values() -> None:
    c = cfg(
        alert_emails=["ops@example.com"],
        measures=[{"name": "CO", "aggregation": "sum", "unit": "ppm"}],
        severity_threshold=50,
        alert_filter={},
    )
    assert c.spec.measures == (Measure("CO", "SUM", "ppm"),)
    assert c.spec.severity_threshold == 50.0 and c.alert_filter_json == ""


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        ({"preset": "weather"}, "unknown preset 'weather'"),
        ({"engine": "sagemaker"}, "unknown engine 'sagemaker'"),
        ({"interval": "PT15M"}, "must be one of PT5M, PT10M, PT1H, P1D"),
        ({"measures": ",".join(f"M{i}" for i in range(11))}, "at most 10 measures"),
        ({"dimensions": ",".join(f"D{i}" for i in range(11))}, "at most 10 dimensions"),
        ({"alert_email": "x"}, "unknown context key 'alert_email'; did you mean 'alert_emails'?"),
        ({"severity": 80}, "did you mean 'severity_threshold'?"),
        ({"detector_active": "maybe"}, "context 'detector_active' must be true or false"),
        ({"dimension_filter": {"PLACE": ["B-101"]}}, "dimension filter names 'PLACE'"),
        ({"dimension_filter": {"LOCATION_ID": []}}, "context 'dimension_filter': dimension 'LOCATION_ID' needs"),
        ({"dimension_filter": '[{"DimensionName": "LOCATION_ID"}]'}, "DimensionValueList"),
        ({"alerts": {"name": "a"}}, "context 'alerts': must be a list"),
        (
            {"alerts": [{"name": "a"}, {"name": "b", "treshold": 80}]},
            "alert 1 ('b'): unknown field 'treshold' (did you mean 'threshold'?)",
        ),
        ({"alerts": [{"name": "a", "threshold": 101}]}, "alert 0 ('a'): 'threshold' must be a number within 0-100"),
        ({"alerts": [{"name": "a", "target": "arn:aws:s3:::bucket"}]}, "alert 0 ('a'): 'target' must be"),
        ({"alerts": [{"name": "a", "format": "xml"}]}, "'format' must be one of sentinel, lookout"),
        ({"alerts": [{"name": "a", "measures": ["PM25"]}]}, "alert 0 ('a'): filter names PM25"),
        ({"alerts": [{"name": "a"}, {"name": "a"}]}, "alert 1 ('a'): the name is already used"),
        ({"alerts": [{"name": f"a{i}"} for i in range(11)]}, "at most 10 alerts"),
        ({"alerts": [{"name": "bad name"}]}, "alert 0 ('bad name'): 'name' must be"),
        ({"measures": "CO:MAX"}, "aggregation of CO must be one of SUM, AVG"),
        ({"measures": [{"name": "CO", "aggregation": "MEDIAN"}]}, "aggregation of CO must be one of SUM, AVG"),
        ({"alert_emails": "ops@example"}, "'ops@example' is not an e-mail address"),
        ({"alert_emails": "not an address"}, "is not an e-mail address"),
        ({"ops_emails": "pager@"}, "context 'ops_emails': 'pager@' is not an e-mail address"),
        ({"alert_phones": "0155 555 0123"}, "is not an E.164 phone number"),
        ({"alert_phones": "+0123456"}, "is not an E.164 phone number"),
        ({"alert_phones": "+1234567890123456"}, "is not an E.164 phone number"),
        ({"severity_threshold": "101"}, "within 0-100"),
        ({"severity_threshold": -1}, "within 0-100"),
        ({"severity_threshold": "high"}, "must be a number"),
        ({"log_retention_days": 10}, "CloudWatch Logs accepts"),
        ({"schedule_offset_seconds": 90}, "whole minutes"),
        ({"schedule_offset_seconds": 30}, "at least 60 s"),
        ({"schedule_offset_seconds": 300}, "below the PT5M interval"),
        ({"detector_id": "bad id!"}, "detector_id"),
        ({"alert_filter": "{not json"}, "must be JSON"),
        ({"alert_filter": {"measures": ["PM25"]}}, "PM25"),
        ({"dimensions": "LOCATION_ID,LOCATION_ID"}, "unique"),
        ({"measures": "CO,LOCATION_ID"}, "unique"),
        ({"powertools_layer_arn": "AWSLambdaPowertoolsPythonV3-python312-arm64:30"}, "not a layer version ARN"),
        ({"powertools_layer_arn": f"{_LAYER}AWSLambdaPowertoolsPythonV3-python312-x86_64:27"}, "arm64 / python3.12"),
        ({"powertools_layer_arn": f"{_LAYER}AWSLambdaPowertoolsPythonV3-python313-arm64:9"}, "arm64 / python3.12"),
        ({"alert_emails": '["ok@example.com",'}, "invalid JSON"),
        ({"console_base_url": "http://example.com"}, "https://"),
        ({"timezone": "Mars/Olympus_Mons"}, "context 'timezone': 'Mars/Olympus_Mons' is not an IANA time zone"),
    ],
)
def test_clear_errors(ctx: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        SentinelConfig.from_context(ctx)
    assert message in str(err.value)
    key = next(iter(ctx))
    assert key in str(err.value) or key == "preset"


def test_series_caps_default_to_the_capacity_figures_and_size_the_detector() -> None:
    from sentinel_core import capacity

    c = cfg()
    assert (c.detector_max_series, c.detector_max_new_series) == (
        capacity.DEFAULT_MAX_SERIES,
        capacity.DEFAULT_MAX_NEW_SERIES,
    )
    assert capacity.detector_memory_mb(c.detector_max_series) == capacity.DETECTOR_MEMORY_MB
    bigger = cfg(detector_max_series="100000", detector_max_new_series=2000)
    assert bigger.detector_max_series == 100_000 and bigger.detector_max_new_series == 2000
    assert capacity.DETECTOR_MEMORY_MB < capacity.detector_memory_mb(100_000) <= capacity.MAX_LAMBDA_MEMORY_MB


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        ({"detector_max_series": 0}, "'detector_max_series' must be at least 1"),
        ({"detector_max_series": "many"}, "'detector_max_series' must be a whole number"),
        ({"detector_max_series": 10_000_000}, "'detector_max_series': .* above Lambda's 10240 MB"),
        ({"detector_max_new_series": 0}, "'detector_max_new_series' must be within 1 and"),
        ({"detector_max_series": 100, "detector_max_new_series": 101}, "'detector_max_new_series' must be within"),
    ],
)
def test_series_caps_errors_name_the_key(ctx: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cfg(**ctx)


def test_alerts_are_parsed_with_defaults_and_serialised_for_the_functions() -> None:
    topic = "arn:aws:sns:eu-west-1:123456789012:facilities"
    fn = "arn:aws:lambda:eu-west-1:123456789012:function:ticketing"
    c = cfg(
        alerts=json.dumps(
            [
                {"name": "facilities", "threshold": 90, "dimensions": {"LOCATION_ID": ["B-101"]}, "target": topic},
                {"name": "tickets", "measures": ["CO"], "target": fn, "format": "lookout"},
                {"name": "everyone"},
            ]
        )
    )
    names = [(r.name, r.threshold, r.kind, r.format) for r in c.alerts]
    base = get_preset(DEFAULT_PRESET).severity_threshold
    assert names == [
        ("facilities", 90.0, "sns", "sentinel"),
        ("tickets", base, "lambda", "lookout"),
        ("everyone", base, "topic", "sentinel"),
    ]
    assert c.alerts[0].alert_filter.dimensions == {"LOCATION_ID": frozenset({"B-101"})}
    assert json.loads(c.routes_json)[1]["measures"] == ["CO"]
    assert cfg().alerts == () and cfg().routes_json == ""  # no `alerts`: today's one alert


def test_dimension_filter_in_both_shapes_reaches_the_spec() -> None:
    mapping = cfg(dimension_filter={"LOCATION_ID": ["B-101", "B-102"]})
    lookout = cfg(
        dimension_filter=json.dumps([{"DimensionName": "LOCATION_ID", "DimensionValueList": ["B-101", "B-102"]}])
    )
    assert mapping.spec.dimension_filter == lookout.spec.dimension_filter == {"LOCATION_ID": ("B-101", "B-102")}
    assert cfg(dimension_filter={}).spec == get_preset(DEFAULT_PRESET)


def test_detector_active_accepts_booleans_and_cli_strings() -> None:
    assert cfg().detector_active is True
    assert cfg(detector_active=False).detector_active is False
    assert cfg(detector_active="false").detector_active is False


def test_cdk_keys_are_not_typos() -> None:
    cfg(**{"@aws-cdk/core:checkSecretUsage": True, "aws:cdk:enable-path-metadata": True})
    cfg(**{"acknowledged-issue-numbers": [1234], "availability-zones:account=1:region=eu-west-1": ["a"]})


def _readme_context_table() -> dict[str, tuple[str, str]]:
    """``| `key` | type | default | what |`` rows of the README's context table."""
    rows: dict[str, tuple[str, str]] = {}
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- context-keys -->")
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2].strip("`"))
    return rows


def test_readme_lists_every_context_key_with_type_and_default() -> None:
    from infra.config import CONTEXT

    table = _readme_context_table()
    assert list(table) == list(CONTEXT)
    assert table == {k: (v.type, v.default) for k, v in CONTEXT.items()}


def test_cdk_synth_refuses_a_typo_with_one_line(tmp_path: Path) -> None:
    """What `npx cdk synth -c alert_email=x` runs (app.py with the CLI's context, in its own process): one line."""
    import os
    import subprocess
    import sys

    context = {**json.loads((ROOT / "cdk.json").read_text())["context"], "alert_email": "x"}
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last == "error: unknown context key 'alert_email'; did you mean 'alert_emails'?"
    assert "Traceback" not in res.stderr


def test_timezone_reaches_the_pipeline_spec() -> None:
    c = SentinelConfig.from_context({"preset": "ecommerce", "timezone": "Europe/Berlin"})
    assert c.spec.timezone == "Europe/Berlin"
    assert SentinelConfig.from_context({}).spec.timezone == "UTC"
