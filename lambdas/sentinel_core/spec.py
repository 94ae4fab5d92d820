"""Pipeline specification: what a record looks like and how it is aggregated, per preset.

A ``PipelineSpec`` is the part of the configuration that the Lambdas need at run time. The CDK app builds it from
cdk.json context (``infra/config.py``) and hands it to every function as the ``SENTINEL_SPEC`` environment variable
(JSON), so the deployed code and the synthesized stack can never disagree about the schema.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sentinel_core.environment import SENTINEL_SPEC, ConfigError, Environment
from sentinel_core.intervals import DETECTOR_INTERVALS, interval_seconds

Aggregation = Literal["SUM", "AVG"]
Ingest = Literal["iot", "kinesis", "s3"]

AGGREGATIONS: tuple[str, ...] = ("SUM", "AVG")
INGESTS: tuple[str, ...] = ("iot", "kinesis", "s3")
# Amazon Lookout for Metrics' limits per metric set (a team migrating off it keeps its schemas).
MAX_MEASURES = 10
MAX_DIMENSIONS = 10
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_PREFIX = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# AWS IoT thing names (CreateThing): 1-128 characters of letters, digits, ':', '_' and '-'. Every command topic
# level the automation publishes to is one of these, so it can never hold '/', '+', '#' or NUL.
THING_NAME = re.compile(r"[A-Za-z0-9:_-]{1,128}")
# IoT Core limits on a topic name: 256 bytes of UTF-8 and at most 7 '/' (iot-core service quotas).
MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
# Documents one Firehose record may hold (one MQTT message, one Kinesis record). A device publishes one reading per
# message and a gateway one per location it serves; 500 documents of ~100 bytes is 50 KB, well under IoT's 128 KB
# message limit, while a single forged message can no longer carry thousands of readings (or series) at once.
DEFAULT_MAX_DOCUMENTS_PER_MESSAGE = 500
# The IoT rule's envelope (``iot_rule_sql``): the device's payload, base64, beside the thing name from its topic.
IOT_ENVELOPE_PAYLOAD = "payload"
IOT_ENVELOPE_THING = "thing"

# -- the dimension value schema ----------------------------------------------------------------------------------
# UTF-8 bytes of one dimension value. AWS IoT thing names are at most 128 characters and in IoT presets a location
# IS a thing name (or is mapped to one); far above any store, page type or sensor id in the presets.
MAX_DIMENSION_BYTES = 128
# Characters a dimension value may never hold: MQTT's topic separator and wildcards (a value names a device).
FORBIDDEN_DIMENSION_CHARACTERS = frozenset("/+#")
# Unicode general categories a dimension value may use: letters, marks, numbers, punctuation, symbols, and the ASCII
# space. That leaves out control characters (Cc: NUL, newline, escape), format characters (Cf: bidi overrides,
# zero-width), surrogates (Cs: a JSON "\ud800" escape that botocore cannot encode), private use, unassigned code
# points and line/paragraph separators: a value can never start a new line in an e-mail, an SMS or a subject.
_ALLOWED_CATEGORIES = frozenset(
    {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No"}
    | {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"}
)
_SAFE_ASCII = re.compile(r"[ !\"$-*,-.0-9:-~]+")  # printable ASCII except / + #  (fast path)
# Values already found valid (read by ``records.check_dimension_value`` as its fast path).
KNOWN_GOOD_DIMENSIONS: dict[str, None] = {}
_DIMENSION_CACHE_LIMIT = 65_536  # values remembered as valid; cleared when full (bounded memory)


def dimension_problem(value: str) -> str | None:
    """Why ``value`` cannot be a dimension value, or None when it can.

    The schema: 1 to ``MAX_DIMENSION_BYTES`` UTF-8 bytes of letters, marks, numbers, punctuation, symbols and
    spaces, without ``/``, ``+`` or ``#``, and no leading or trailing space.
    """
    if value in KNOWN_GOOD_DIMENSIONS:
        return None
    if not value:
        return "is empty"
    if value != value.strip(" "):
        return "starts or ends with a space"
    if value.isascii():
        if len(value) > MAX_DIMENSION_BYTES:
            return f"is longer than {MAX_DIMENSION_BYTES} bytes ({len(value)})"
        if _SAFE_ASCII.fullmatch(value) is None:
            bad = next(c for c in value if not _SAFE_ASCII.fullmatch(c))
            return f"holds the character {bad!r}, which is not allowed (no control characters, '/', '+' or '#')"
    else:
        for c in value:
            if c in FORBIDDEN_DIMENSION_CHARACTERS or (c != " " and unicodedata.category(c) not in _ALLOWED_CATEGORIES):
                return (
                    f"holds the character U+{ord(c):04X} ({unicodedata.category(c)}), which is not allowed "
                    "(no control, format, surrogate or separator characters, '/', '+' or '#')"
                )
        size = len(value.encode("utf-8"))
        if size > MAX_DIMENSION_BYTES:
            return f"is longer than {MAX_DIMENSION_BYTES} bytes in UTF-8 ({size})"
    if len(KNOWN_GOOD_DIMENSIONS) >= _DIMENSION_CACHE_LIMIT:
        KNOWN_GOOD_DIMENSIONS.clear()
    KNOWN_GOOD_DIMENSIONS[value] = None
    return None


class SpecError(ValueError):
    """A pipeline specification that cannot work; the message says which setting and why."""


@dataclass(frozen=True)
class Measure:
    name: str
    aggregation: Aggregation = "AVG"
    unit: str = ""
    # Value used when a record omits the measure (an event stream where each event counts 1); None = required.
    default: float | None = None
    # Plausible range (inclusive); a reading outside it is refused at ingest (reason ``out_of_range``), e.g. a
    # sensor's 65535 fault code. None = no bound on that side.
    minimum: float | None = None
    maximum: float | None = None


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
    # IANA time zone of the pipeline: the detector's daily and weekly cycles follow local time (DST-correct), and
    # Lookout's metric set gets the same zone. UTC by default: a server metric has no local day.
    timezone: str = "UTC"
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # Lookout's DimensionFilterList: only these values of each named dimension are monitored (AND across
    # dimensions, OR across a dimension's values), applied before aggregation by ``sentinel_core.filters``.
    # Empty = every value is monitored (the presets' default: nothing is left out unless asked).
    dimension_filter: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # IoT only, the identity binding. A device may only report for its own location: the location (the FIRST
    # dimension) must equal the publishing thing's name, unless the thing is a gateway listed here with the
    # locations it serves; commands for such a location go to that gateway's topic. A location belongs to one
    # thing at most. It travels in SENTINEL_SPEC (Lambda environment: 4 KB in all), so it suits tens of gateways.
    thing_locations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Documents one Firehose record (MQTT message / Kinesis record) may hold; more fail as ``too_many_documents``.
    max_documents_per_message: int = DEFAULT_MAX_DOCUMENTS_PER_MESSAGE

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
        for name, values in self.dimension_filter.items():
            if name not in self.dimensions:
                raise SpecError(
                    f"dimension filter names {name!r}, not a dimension of {self.preset} "
                    f"(dimensions: {', '.join(self.dimensions) or 'none'})"
                )
            if not values or not all(isinstance(v, str) and v for v in values):
                raise SpecError(f"dimension filter of {name!r} needs at least one non-empty value, got {values!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecError(
                f"timezone must be an IANA time zone name (e.g. Europe/Berlin, UTC), got {self.timezone!r}"
            ) from None
        if self.max_documents_per_message < 1:
            raise SpecError("max_documents_per_message must be at least 1")
        for m in self.measures:
            if m.minimum is not None and m.maximum is not None and not m.minimum < m.maximum:
                raise SpecError(f"measure {m.name}: minimum {m.minimum:g} must be below maximum {m.maximum:g}")
        if self.ingest == "iot":
            self._validate_topics()
        elif self.thing_locations:
            raise SpecError("thing_locations (gateways) only applies to IoT pipelines")

    def _validate_topics(self) -> None:
        root = self.topic_root
        levels = root.split("/")
        if any(not lv for lv in levels) or any(c in root for c in "+#\0") or root.startswith("$"):
            raise SpecError(f"topic_root {root!r} must be '/'-separated non-empty levels without '+', '#' or '$'")
        room = MAX_TOPIC_BYTES - len(self.command_topic("").encode("utf-8"))
        if room < MAX_DIMENSION_BYTES or root.count("/") + 2 > MAX_TOPIC_SLASHES:
            raise SpecError(
                f"topic_root {root!r} is too long: {root}/<thing>/commands must fit IoT Core's {MAX_TOPIC_BYTES}-byte, "
                f"{MAX_TOPIC_SLASHES}-slash topic limit for any {MAX_DIMENSION_BYTES}-byte thing name"
            )
        owner: dict[str, str] = {}
        for thing, locs in self.thing_locations.items():
            if not THING_NAME.fullmatch(thing):
                raise SpecError(f"thing_locations: {thing!r} is not an AWS IoT thing name ([A-Za-z0-9:_-], 1-128)")
            if not locs:
                raise SpecError(f"thing_locations: gateway {thing!r} lists no location")
            for loc in locs:
                problem = dimension_problem(loc)
                if problem is not None:
                    raise SpecError(f"thing_locations: location {loc!r} of {thing!r} {problem}")
                if loc in owner and owner[loc] != thing:
                    raise SpecError(f"thing_locations: location {loc!r} is listed for {owner[loc]!r} and {thing!r}")
                owner[loc] = thing

    # -- convenience ------------------------------------------------------------------------------------------
    @cached_property  # read per record by the transform; the spec is frozen, so computing it once is exact
    def measure_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.measures)

    @cached_property
    def step_seconds(self) -> int:
        """The interval in seconds."""
        return interval_seconds(self.interval)

    def measure(self, name: str) -> Measure:
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def identity_dimension(self) -> str:
        """The dimension bound to the publishing device (IoT): the first one, air-quality's ``LOCATION_ID``."""
        return self.dimensions[0]

    def allowed_locations(self, thing: str) -> tuple[str, ...]:
        """Locations ``thing`` may report for: its gateway list, else its own name."""
        return self.thing_locations.get(thing) or (thing,)

    def thing_of(self, location: str) -> str | None:
        """The thing that owns ``location`` (gateway map, else the location itself when it is a thing name)."""
        for thing, locs in self.thing_locations.items():
            if location in locs:
                return thing
        return location if THING_NAME.fullmatch(location) else None

    def telemetry_topic(self, thing: str) -> str:
        return f"{self.topic_root}/{thing}/telemetry"

    def command_topic(self, thing: str) -> str:
        return f"{self.topic_root}/{thing}/commands"

    @property
    def telemetry_topic_filter(self) -> str:
        return f"{self.topic_root}/+/telemetry"

    @property
    def thing_topic_level(self) -> int:
        """1-based level of the thing name in ``<topic_root>/<thing>/telemetry`` (IoT SQL's ``topic(N)``)."""
        return len(self.topic_root.split("/")) + 1

    def iot_rule_sql(self) -> str:
        """The topic rule's SQL: each message wrapped with the publishing thing's name (see ``transform.logic``).

        ``encode(*, 'base64')`` keeps the device's bytes opaque (any payload, JSON or not), so nothing the device
        sends can set or shadow ``thing``; ``topic(N)`` is the thing name because the device policy lets a
        certificate publish on its own thing's topic only.
        """
        return (
            f"SELECT encode(*, 'base64') AS {IOT_ENVELOPE_PAYLOAD}, topic({self.thing_topic_level}) AS "  # noqa: S608
            f"{IOT_ENVELOPE_THING} FROM '{self.telemetry_topic_filter}'"
        )

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
        d["dimension_filter"] = {str(k): tuple(v) for k, v in dict(d.get("dimension_filter", {})).items()}
        d["thing_locations"] = {str(k): tuple(str(x) for x in v) for k, v in dict(d.get("thing_locations", {})).items()}
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
        # Plausible ranges: the measuring range of common electrochemical sensors (CO 0-1,000 ppm, SO2/NO2
        # 0-20 ppm) with room for a small negative zero drift; 65535 (0xFFFF, a classic fault code) is refused.
        measures=(
            Measure("CO", "AVG", "ppm", minimum=-5.0, maximum=1_000.0),
            Measure("SO2", "AVG", "ppb", minimum=-50.0, maximum=20_000.0),
            Measure("NO2", "AVG", "ppb", minimum=-50.0, maximum=20_000.0),
        ),
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
