"""Pipeline spec validation and its environment round trip."""

from __future__ import annotations

import pytest
from sentinel_core.environment import ConfigError
from sentinel_core.spec import PRESETS, Measure, PipelineSpec, SpecError, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_env(name: str) -> None:
    spec = get_preset(name)
    assert PipelineSpec.from_env({"SENTINEL_SPEC": spec.to_json()}) == spec


def test_unknown_preset_and_missing_env() -> None:
    with pytest.raises(SpecError, match="unknown preset"):
        get_preset("nope")
    with pytest.raises(ConfigError, match="SENTINEL_SPEC"):
        PipelineSpec.from_env({})
    with pytest.raises(ConfigError, match="SENTINEL_SPEC is not a pipeline spec"):
        PipelineSpec.from_env({"SENTINEL_SPEC": "{not json"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"interval": "PT15M"}, "interval must be one of"),
        ({"measures": ()}, "at least one measure"),
        ({"measures": tuple(Measure(f"m{i}") for i in range(11))}, "at most 10 measures"),
        ({"dimensions": tuple(f"d{i}" for i in range(11))}, "at most 10 dimensions"),
        ({"measures": (Measure("CO", "MAX"),)}, "SUM or AVG"),  # type: ignore[arg-type]
        ({"severity_threshold": 101}, "0-100"),
        ({"data_prefix": "Air_Quality"}, "data_prefix"),
        ({"dimensions": ("CO",)}, "unique"),
        ({"timestamp_column": "1ts"}, "column name"),
        ({"topic_root": ""}, "topic_root"),
        ({"backtest_fraction": 1.0}, "backtest"),
        ({"future_tolerance_seconds": -1}, "negative"),
    ],
)
def test_invalid_specs(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        get_preset("air-quality").with_overrides(**changes)


def test_topics() -> None:
    spec = get_preset("air-quality")
    assert spec.telemetry_topic("sensor-1") == "sentinel/air-quality/sensor-1/telemetry"
    assert spec.command_topic("sensor-1") == "sentinel/air-quality/sensor-1/commands"
    assert spec.telemetry_topic_filter == "sentinel/air-quality/+/telemetry"


def test_ten_measures_by_ten_dimensions_is_the_limit() -> None:
    """Lookout for Metrics' limits per metric set: 10 measures and 10 dimensions."""
    base = get_preset("air-quality")
    spec = base.with_overrides(
        measures=tuple(Measure(f"m{i}") for i in range(10)), dimensions=tuple(f"d{i}" for i in range(10))
    )
    assert (len(spec.measures), len(spec.dimensions)) == (10, 10)
