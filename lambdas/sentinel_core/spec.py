"""Pipeline specification: what a record looks like and how it is aggregated, per preset.

A ``PipelineSpec`` is the part of the configuration that the Lambdas need at run time. The CDK app builds it from
cdk.json context (``infra/config.py``) and hands it to every function as the ``SENTINEL_SPEC`` environment variable
(JSON), so the deployed code and the synthesized stack can never disagree about the schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from sentinel_core.environment import SENTINEL_SPEC, ConfigError, Environment
from sentinel_core.intervals import DETECTOR_INTERVALS

Aggregation = Literal["SUM", "AVG"]
Ingest = Literal["iot", "kinesis", "s3"]

AGGREGATIONS: tuple[str, ...] = ("SUM", "AVG")
INGESTS: tuple[str, ...] = ("iot", "kinesis", "s3")
MAX_MEASURES = 5
MAX_DIMENSIONS = 5
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SpecError(ValueError):
    """A pipeline specification that cannot work; the message says which setting and why."""


@dataclass(frozen=True)
class Measure:
    name: str
    aggregation: Aggregation = "AVG"
    unit: str = ""
    # Value used when a record omits the measure (an event stream where each event counts 1); None = required.
    default: float | None = None


@dataclass(frozen=True)
class PipelineSpec:
    """Schema, interval and S3 prefix of one pipeline."""

    preset: str
    ingest: Ingest
    interval: str
    timestamp_column: str
    dimensions: tuple[str, ...]
    measures: tuple[Measure, ...]
    data_prefix: str
    severity_threshold: float = 70.0
    # Records whose own clock is further ahead than this are rejected (a device with a wrong clock).
    future_tolerance_seconds: int = 900
    # IoT only: devices publish to <topic_root>/<thing name>/telemetry and receive on .../commands.
    topic_root: str = ""
    # Learn on the first (1 - backtest_fraction) and report on the rest (loyalty's Lookout backtest mode).
    backtest_fraction: float = 0.0
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------------------------------------------
    def validate(self) -> None:
        if self.ingest not in INGESTS:
            raise SpecError(f"ingest must be one of {', '.join(INGESTS)}, got {self.ingest!r}")
        if self.interval not in DETECTOR_INTERVALS:
            raise SpecError(
                f"interval must be one of {', '.join(DETECTOR_INTERVALS)} (Lookout for Metrics' frequencies), "
                f"got {self.interval!r}"
            )
        if not self.measures:
            raise SpecError("at least one measure is required")
        if len(self.measures) > MAX_MEASURES:
            raise SpecError(f"at most {MAX_MEASURES} measures are allowed, got {len(self.measures)}")
        if len(self.dimensions) > MAX_DIMENSIONS:
            raise SpecError(f"at most {MAX_DIMENSIONS} dimensions are allowed, got {len(self.dimensions)}")
        names = [self.timestamp_column, *self.dimensions, *(m.name for m in self.measures)]
        for n in names:
            if not _NAME.match(n):
                raise SpecError(f"column name {n!r} must start with a letter and use letters, digits and _")
        if len(set(names)) != len(names):
            raise SpecError(f"column names must be unique: {names}")
        for m in self.measures:
            if m.aggregation not in AGGREGATIONS:
                raise SpecError(f"aggregation of {m.name} must be SUM or AVG, got {m.aggregation!r}")
        if not _PREFIX.match(self.data_prefix):
            raise SpecError(f"data_prefix must be lower-case letters, digits and '-', got {self.data_prefix!r}")
        if not 0 <= self.severity_threshold <= 100:
            raise SpecError(f"severity threshold must be within 0-100, got {self.severity_threshold}")
        if not 0 <= self.backtest_fraction < 1:
            raise SpecError(f"backtest fraction must be within [0, 1), got {self.backtest_fraction}")
        if self.ingest == "iot" and not self.topic_root:
            raise SpecError("an IoT pipeline needs a topic_root")
        if self.future_tolerance_seconds < 0:
            raise SpecError("future_tolerance_seconds must not be negative")

    # -- convenience ------------------------------------------------------------------------------------------
    @property
    def measure_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.measures)

    def measure(self, name: str) -> Measure:
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(name)

    def telemetry_topic(self, thing: str) -> str:
        return f"{self.topic_root}/{thing}/telemetry"

    def command_topic(self, thing: str) -> str:
        return f"{self.topic_root}/{thing}/commands"

    @property
    def telemetry_topic_filter(self) -> str:
        return f"{self.topic_root}/+/telemetry"

    def with_overrides(self, **changes: Any) -> PipelineSpec:
        return replace(self, **changes)

    # -- serialisation (environment variable of every Lambda) -------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        d = dict(data)
        d["dimensions"] = tuple(d.get("dimensions", ()))
        d["measures"] = tuple(Measure(**m) if isinstance(m, dict) else m for m in d.get("measures", ()))
        d["labels"] = dict(d.get("labels", {}))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> PipelineSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSpec:
        """The spec in ``SENTINEL_SPEC`` (the CDK stack sets it on every function); a :class:`ConfigError` names it
        when it is missing or not a spec."""
        raw = Environment.current(environ).required(SENTINEL_SPEC)
        try:
            return cls.from_json(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{SENTINEL_SPEC} is not a pipeline spec: {exc}") from None


PRESETS: dict[str, PipelineSpec] = {
    "air-quality": PipelineSpec(
        preset="air-quality",
        ingest="iot",
        interval="PT5M",
        timestamp_column="TIMESTAMP",
        dimensions=("LOCATION_ID",),
        measures=(Measure("CO", "AVG", "ppm"), Measure("SO2", "AVG", "ppb"), Measure("NO2", "AVG", "ppb")),
        data_prefix="air-quality",
        severity_threshold=70.0,
        topic_root="sentinel/air-quality",
        description="Air-quality sensors over MQTT: CO, SO2 and NO2 averaged per location every 5 minutes",
        labels={"dimension": "location", "command": "ventilate"},
    ),
    "loyalty": PipelineSpec(
        preset="loyalty",
        ingest="s3",
        interval="P1D",
        timestamp_column="timestamp",
        dimensions=("location_id",),
        measures=(Measure("points_earned", "SUM", "points"), Measure("points_redeemed", "SUM", "points")),
        data_prefix="loyalty",
        severity_threshold=91.0,
        backtest_fraction=0.3,
        description="Loyalty points per store: daily CSV uploaded to S3, backtested on the last 30%",
        labels={"dimension": "location"},
    ),
    "ecommerce": PipelineSpec(
        preset="ecommerce",
        ingest="kinesis",
        interval="PT10M",
        timestamp_column="event_time",
        dimensions=("page_type", "platform", "marketplace"),
        measures=(Measure("views", "SUM", "views", default=1.0),),
        data_prefix="ecommerce",
        severity_threshold=70.0,
        description="E-commerce page views (product page, cart, checkout) from Kinesis, counted every 10 minutes",
        labels={"dimension": "page type"},
    ),
}


def get_preset(name: str) -> PipelineSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
