"""Typed deploy configuration, built from CDK context (cdk.json + ``-c key=value``).

One frozen ``SentinelConfig`` composes the run-time ``PipelineSpec`` (preset + overrides, what the Lambdas get as
``SENTINEL_SPEC``) with the deploy-only settings (engine, recipients, retention, layer version, ...). Values given on
the command line arrive as strings, so every reader here also parses strings (lists as ``a,b`` or JSON).
Every problem raises ``ConfigError`` naming the context key and what is accepted.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sentinel_core import capacity, filters, routing
from sentinel_core.alerts import AlertFilter, AlertFilterError
from sentinel_core.intervals import DETECTOR_INTERVALS, interval_seconds
from sentinel_core.spec import AGGREGATIONS, MAX_DIMENSIONS, MAX_MEASURES, Measure, PipelineSpec, SpecError, get_preset

ENGINES: tuple[str, ...] = ("builtin", "lookout")
DEFAULT_PRESET = "air-quality"
DEFAULT_ENGINE = "builtin"
FIREHOSE_BUFFER_SECONDS = 60  # dynamic partitioning needs at least 60 s / 64 MB
# The retention periods CloudWatch Logs accepts, each with the name of CDK's ``RetentionDays`` member.
LOG_RETENTION_NAMES: dict[int, str] = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    3653: "TEN_YEARS",
}
LOG_RETENTION_DAYS: tuple[int, ...] = tuple(LOG_RETENTION_NAMES)

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_DETECTOR_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,62}$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


@dataclass(frozen=True)
class ContextKey:
    """One context key: the type it takes and its default as the README's deploy table shows them."""

    type: str
    default: str
    what: str


# Every context key this app reads, in the README's order (``tests/infra/test_config.py`` checks the README's table
# against it). Any other key without ``@`` or ``:`` fails the synth naming the closest one (see ``check_keys``).
CONTEXT: dict[str, ContextKey] = {
    "preset": ContextKey("string", DEFAULT_PRESET, "pipeline preset: air-quality, loyalty or ecommerce"),
    "engine": ContextKey("string", DEFAULT_ENGINE, "detector engine: builtin or lookout (synth only)"),
    "stack_name": ContextKey("string", "MetricSentinel-<preset>", "CloudFormation stack name"),
    "alert_emails": ContextKey("list of strings", "[]", "e-mail subscribers of the alert topic"),
    "alert_phones": ContextKey("list of strings", "[]", "SMS subscribers (E.164) of the alert topic"),
    "ops_emails": ContextKey("list of strings", "[]", "e-mail subscribers of the operations topic (alarms)"),
    "severity_threshold": ContextKey("number 0-100", "the preset's", "severity at which the default alert fires"),
    "interval": ContextKey("string", "the preset's", "detector interval: PT5M, PT10M, PT1H or P1D"),
    "timezone": ContextKey("string", "UTC", "IANA time zone of the detector's daily and weekly cycles"),
    "measures": ContextKey("list", "the preset's", "measures NAME[:SUM|AVG] or objects, at most 10"),
    "dimensions": ContextKey("list of strings", "the preset's", "dimension columns, at most 10"),
    "dimension_filter": ContextKey(
        "object", "{}", "only these dimension values are monitored: {DIM: [values]} or a DimensionFilterList"
    ),
    "alerts": ContextKey("list of objects", "[] (one alert)", "up to 10 alerts: name, threshold, filters, target"),
    "alert_filter": ContextKey("object", "{}", "filters of the default alert: {measures: [...], dimensions: {...}}"),
    "detector_active": ContextKey("boolean", "true", "whether the detector schedule is enabled at deploy"),
    "log_retention_days": ContextKey("integer", "30", "days of function and delivery logs"),
    "data_retention_days": ContextKey("integer", "365", "days of live data and access logs"),
    "powertools_layer_arn": ContextKey("string", '""', "fallback Powertools layer ARN (default: the pinned one)"),
    "detector_id": ContextKey("string", "metric-sentinel-<preset>", "detector id in alerts and groups"),
    "detector_name": ContextKey("string", "the detector id", "Lookout detector name"),
    "schedule_offset_seconds": ContextKey("integer", "120", "seconds after an interval closes that it is read"),
    "console_base_url": ContextKey("string", '""', "console base URL of the links in alerts"),
    "detector_max_series": ContextKey(
        "integer", "40000", "series the builtin detector holds (more are refused, counted, alarmed)"
    ),
    "detector_max_new_series": ContextKey("integer", "500", "series the builtin detector starts per interval"),
    "detector_shards": ContextKey(
        "integer", "1", "builtin detector shards: more than 1 makes it a Step Functions fan-out (see Scale out)"
    ),
    "detector_expected_series": ContextKey(
        "integer", "0 (not given)", "the series expected: derives detector_shards (instead of giving it)"
    ),
}
CONTEXT_KEYS: tuple[str, ...] = tuple(CONTEXT)
# Keys the CDK CLI itself writes without '@' or ':' (cdk.context.json, `cdk acknowledge`): not ours, not typos.
CDK_OWN_KEYS: frozenset[str] = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


class ConfigError(ValueError):
    """A context value the stack cannot be built with; the message names the key."""


def closest_key(key: str) -> str | None:
    found = difflib.get_close_matches(key, CONTEXT_KEYS, n=1, cutoff=0.6)
    return found[0] if found else None


def check_keys(context: Mapping[str, Any]) -> None:
    """Strict context: a key this app does not read is a typo (``alert_email`` for ``alert_emails`` would leave
    the topic without subscribers). CDK's own keys (feature flags ``@aws-cdk/...``, ``aws:cdk:...``, lookups
    ``name:account=...``) all hold ``@`` or ``:``; the few without are ``CDK_OWN_KEYS``."""
    for key in context:
        if key in CONTEXT or key in CDK_OWN_KEYS or "@" in key or ":" in key:
            continue
        near = closest_key(key)
        hint = f"; did you mean {near!r}?" if near else f"; known keys: {', '.join(CONTEXT_KEYS)}"
        raise ConfigError(f"unknown context key {key!r}{hint}")


def default_stack_name(preset: str) -> str:
    """One stack per pipeline, named after its preset (two presets deploy side by side in one account)."""
    return f"MetricSentinel-{preset}"


def default_detector_id(preset: str) -> str:
    """The detector id in alerts and anomaly groups (and the Lookout detector name): one per preset."""
    return f"metric-sentinel-{preset}"


@dataclass(frozen=True)
class SentinelConfig:
    """Everything the stack is built from. The defaults here are the only ones: ``from_context`` takes a missing
    context key's value from these fields, and the tests derive their expectations from them."""

    spec: PipelineSpec
    stack_name: str  # default: default_stack_name(preset)
    detector_id: str  # default: default_detector_id(preset)
    detector_name: str  # default: the detector id
    engine: str = DEFAULT_ENGINE
    alert_emails: tuple[str, ...] = ()
    alert_phones: tuple[str, ...] = ()
    ops_emails: tuple[str, ...] = ()  # operations topic (alarms), kept apart from the anomaly alerts
    log_retention_days: int = 30  # a month of function and delivery logs to debug with (CloudWatch Logs' ONE_MONTH)
    data_retention_days: int = 365  # a year of live data and access logs, then expiry (rejected records: <= 90 days)
    # "" = the layer of the pinned Powertools from its public SSM parameter (infra/powertools.py); an ARN only where
    # that parameter does not exist. Its architecture and runtime must be the functions' (arm64, python3.12).
    powertools_layer_arn: str = ""
    alert_filter_json: str = ""  # normalised JSON of the ALERT_FILTER env var; "" = every alert
    # Two minutes after an interval closes: Firehose's 60 s buffer has flushed and most late arrivals are in.
    schedule_offset_seconds: int = 120
    console_base_url: str = ""  # "" = alerts carry no console link
    # Bounded cardinality (builtin engine): the reasons of both defaults are in sentinel_core.capacity.
    detector_max_series: int = capacity.DEFAULT_MAX_SERIES
    detector_max_new_series: int = capacity.DEFAULT_MAX_NEW_SERIES
    # One shard = today's single scheduled detector Lambda and layout (a stack that never asked for a fan-out keeps
    # exactly what it had). More: the Step Functions fan-out of infra/detector_fanout.py.
    detector_shards: int = 1
    # 0 = not given; otherwise the shards are derived from it (sentinel_core.capacity.shards_for).
    detector_expected_series: int = 0
    # () = today's single alert (stack topic, severity_threshold, alert_filter): existing stacks keep their ledger.
    alerts: tuple[routing.AlertRoute, ...] = ()
    # A deployed detector runs unless asked not to: a stack that silently never scores would be the worst default.
    detector_active: bool = True

    @property
    def preset(self) -> str:
        return self.spec.preset

    @property
    def interval_seconds(self) -> int:
        return interval_seconds(self.spec.interval)

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> SentinelConfig:
        """Build and validate the configuration from CDK context (missing keys take the defaults)."""

        check_keys(context)

        def get(key: str) -> Any:
            value = context.get(key)
            return None if value is None or (isinstance(value, str) and value.strip() == "") else value

        preset = _text("preset", get("preset") or DEFAULT_PRESET)
        try:
            base = get_preset(preset)
        except SpecError as exc:
            raise ConfigError(f"context 'preset': {exc}") from None
        engine = _text("engine", get("engine") or DEFAULT_ENGINE)
        if engine not in ENGINES:
            raise ConfigError(f"context 'engine': unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")

        spec = _spec_with_overrides(base, get)
        emails = _emails("alert_emails", get("alert_emails"))
        ops_emails = _emails("ops_emails", get("ops_emails"))
        phones = _str_list("alert_phones", get("alert_phones"))
        for p in phones:
            if not _E164.match(p):
                raise ConfigError(
                    f"context 'alert_phones': {p!r} is not an E.164 phone number (+<country code><number>, "
                    "up to 15 digits, no spaces), e.g. +14155550100"
                )
        log_days = _int("log_retention_days", get("log_retention_days"), _default("log_retention_days"))
        if log_days not in LOG_RETENTION_DAYS:
            raise ConfigError(
                f"context 'log_retention_days': CloudWatch Logs accepts {', '.join(map(str, LOG_RETENTION_DAYS))} "
                f"days, got {log_days}"
            )
        data_days = _int("data_retention_days", get("data_retention_days"), _default("data_retention_days"))
        if data_days < 1:
            raise ConfigError(f"context 'data_retention_days' must be at least 1 day, got {data_days}")
        layer_arn = _layer_arn(get("powertools_layer_arn"))
        detector_id = _text("detector_id", get("detector_id") or default_detector_id(spec.preset))
        if not _DETECTOR_ID.match(detector_id):
            raise ConfigError(
                f"context 'detector_id': {detector_id!r} must be 1-63 letters, digits, '-' or '_' "
                "(Lookout for Metrics' detector name rules)"
            )
        detector_name = _text("detector_name", get("detector_name") or detector_id)
        if not _DETECTOR_ID.match(detector_name):
            raise ConfigError(f"context 'detector_name': {detector_name!r} must be 1-63 letters, digits, '-' or '_'")
        stack_name = _text("stack_name", get("stack_name") or default_stack_name(spec.preset))
        if not _STACK_NAME.match(stack_name):
            raise ConfigError(f"context 'stack_name': {stack_name!r} is not a CloudFormation stack name")

        offset = _int("schedule_offset_seconds", get("schedule_offset_seconds"), _default("schedule_offset_seconds"))
        step = interval_seconds(spec.interval)
        if offset % 60 or offset < FIREHOSE_BUFFER_SECONDS or offset >= step:
            raise ConfigError(
                f"context 'schedule_offset_seconds': must be whole minutes (EventBridge cron), at least "
                f"{FIREHOSE_BUFFER_SECONDS} s (the Firehose buffer) and below the {spec.interval} interval "
                f"({step} s), got {offset}"
            )
        filter_json = _alert_filter("alert_filter", get("alert_filter"), spec)
        routes = _alerts("alerts", get("alerts"), spec)
        active = _bool("detector_active", get("detector_active"), _default("detector_active"))
        console = _text("console_base_url", get("console_base_url") or _default("console_base_url"))
        # The console's address alerts link to (default: the stack's own console distribution). Plain http only
        # for the offline console on this machine (`python -m simulator console`).
        if console and not re.match(r"^(https://|http://(localhost|127\.0\.0\.1)(:\d+)?(/|$))", console):
            raise ConfigError(
                f"context 'console_base_url' must start with https:// (or be http://localhost:PORT for the offline "
                f"console), got {console!r}"
            )
        max_series = _int("detector_max_series", get("detector_max_series"), _default("detector_max_series"))
        if max_series < 1:
            raise ConfigError(f"context 'detector_max_series' must be at least 1, got {max_series}")
        try:
            capacity.detector_memory_mb(max_series)
        except ValueError as exc:
            raise ConfigError(f"context 'detector_max_series': {exc}") from None
        max_new = _int("detector_max_new_series", get("detector_max_new_series"), _default("detector_max_new_series"))
        if not 1 <= max_new <= max_series:
            raise ConfigError(
                f"context 'detector_max_new_series' must be within 1 and detector_max_series ({max_series}), "
                f"got {max_new}"
            )
        shards = _shards(get, engine, max_series)
        expected = _int(
            "detector_expected_series", get("detector_expected_series"), _default("detector_expected_series")
        )
        return cls(
            spec=spec,
            engine=engine,
            stack_name=stack_name,
            alert_emails=emails,
            alert_phones=phones,
            ops_emails=ops_emails,
            log_retention_days=log_days,
            data_retention_days=data_days,
            powertools_layer_arn=layer_arn,
            detector_id=detector_id,
            detector_name=detector_name,
            alert_filter_json=filter_json,
            schedule_offset_seconds=offset,
            console_base_url=console,
            detector_max_series=max_series,
            detector_max_new_series=max_new,
            detector_shards=shards,
            detector_expected_series=expected,
            alerts=routes,
            detector_active=active,
        )

    @property
    def routes_json(self) -> str:
        """``ALERT_ROUTES`` of the alerting functions; "" without ``alerts`` (the one default alert)."""
        return routing.routes_to_json(self.alerts) if self.alerts else ""


def _default(name: str) -> Any:
    """The default of a ``SentinelConfig`` field (the one place defaults are written)."""
    return SentinelConfig.__dataclass_fields__[name].default


def _shards(get: Any, engine: str, max_series: int) -> int:
    """``detector_shards``, or the shards ``detector_expected_series`` needs (not both: which one would win is a
    guess). Engine ``lookout`` is one managed detector over un-sharded folders: more than one shard is an error
    rather than silently ignored (the operator asked for a scale-out the engine cannot give)."""
    given, expected_raw = get("detector_shards"), get("detector_expected_series")
    expected = _int("detector_expected_series", expected_raw, _default("detector_expected_series"))
    if expected < 0:
        raise ConfigError(f"context 'detector_expected_series' must be at least 1 (or 0: not given), got {expected}")
    if given is not None and expected:
        raise ConfigError(
            "context 'detector_shards' and 'detector_expected_series' are both given: give one (the shards, or the "
            "series they are derived from)"
        )
    if expected:
        shards = capacity.shards_for(expected, max_series)
    else:
        shards = _int("detector_shards", given, _default("detector_shards"))
    if not 1 <= shards <= capacity.MAX_SHARDS:
        which = "detector_shards" if not expected else "detector_expected_series"
        raise ConfigError(
            f"context {which!r}: the detector takes 1 to {capacity.MAX_SHARDS} shards (Firehose's active "
            f"partitions), got {shards} shards"
        )
    if shards > 1 and engine != "builtin":
        raise ConfigError(
            f"context 'detector_shards': engine {engine!r} is one managed detector over un-sharded folders; "
            f"shards ({shards}) apply to engine 'builtin' only"
        )
    return shards


# -- parsing helpers ------------------------------------------------------------------------------------------
def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"context {key!r} must be a string, got {value!r}")
    return value.strip()


def _json_or(value: str) -> Any:
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg} at position {exc.pos})") from None
    return None


def _str_list(key: str, value: Any) -> tuple[str, ...]:
    """A list from JSON context (a list), or a CLI string: JSON list or comma-separated."""
    if value is None:
        return ()
    if isinstance(value, str):
        try:
            parsed = _json_or(value)
        except ValueError as exc:
            raise ConfigError(f"context {key!r}: {exc}") from None
        value = parsed if parsed is not None else [v for v in value.split(",")]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"context {key!r} must be a list (JSON list or comma-separated), got {value!r}")
    items: list[str] = []
    for v in value:
        if not isinstance(v, str):
            raise ConfigError(f"context {key!r}: every item must be a string, got {v!r}")
        if v.strip():
            items.append(v.strip())
    return tuple(items)


def _emails(key: str, raw: Any) -> tuple[str, ...]:
    emails = _str_list(key, raw)
    for e in emails:
        if not _EMAIL.match(e):
            raise ConfigError(f"context {key!r}: {e!r} is not an e-mail address")
    return emails


_LAYER_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:(?P<name>[A-Za-z0-9_-]+):\d+$")


def _layer_arn(value: Any) -> str:
    """The fallback Powertools layer ARN: a layer version ARN, built for arm64 and Python 3.12 when its name says."""
    if value is None:
        return ""
    arn = _text("powertools_layer_arn", value)
    m = _LAYER_ARN.match(arn)
    if not m:
        raise ConfigError(
            f"context 'powertools_layer_arn': {arn!r} is not a layer version ARN "
            "(arn:aws:lambda:<region>:<account>:layer:<name>:<version>)"
        )
    name = m["name"].lower()
    if "x86" in name or ("python3" in name and "python312" not in name):
        raise ConfigError(
            f"context 'powertools_layer_arn': layer {m['name']!r} is not the arm64 / python3.12 build "
            "the functions run on"
        )
    return arn


def _int(key: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise ConfigError(f"context {key!r} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"context {key!r} must be a whole number, got {value!r}")


def _bool(key: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"context {key!r} must be true or false, got {value!r}")


def _json_value(key: str, value: Any, example: str) -> Any:
    """A structured value: as given in cdk.json, or parsed from a ``-c key='<JSON>'`` string."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"context {key!r} must be JSON like {example} ({exc.msg})") from None


def _alerts(key: str, value: Any, spec: PipelineSpec) -> tuple[routing.AlertRoute, ...]:
    if value is None:
        return ()
    raw = _json_value(key, value, '[{"name": "ops", "threshold": 80, "target": "topic"}]')
    try:
        return routing.parse_routes(raw, spec)  # the very parser the Lambdas run
    except routing.RouteError as exc:
        raise ConfigError(f"context {key!r}: {exc}") from None


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"context {key!r} must be a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"context {key!r} must be a number, got {value!r}")


def _measure(key: str, item: Any, base: PipelineSpec) -> Measure:
    """``"CO"`` / ``"CO:AVG"`` / ``{"name": "CO", "aggregation": "AVG", "unit": "ppm", "default": null}``."""
    if isinstance(item, str):
        name, _, agg = item.strip().partition(":")
        fields: dict[str, Any] = {"name": name.strip()}
        if agg:
            fields["aggregation"] = agg.strip().upper()
    elif isinstance(item, dict):
        unknown = set(item) - {"name", "aggregation", "unit", "default"}
        if unknown or "name" not in item:
            raise ConfigError(
                f"context {key!r}: a measure object has 'name' and optional 'aggregation', 'unit', 'default'; got "
                f"{item!r}"
            )
        fields = dict(item)
        if isinstance(fields.get("aggregation"), str):
            fields["aggregation"] = fields["aggregation"].upper()
    else:
        raise ConfigError(f"context {key!r}: a measure is 'NAME[:SUM|AVG]' or an object, got {item!r}")
    name = fields["name"]
    if "aggregation" not in fields:
        # Keep the preset's aggregation for a known measure; AVG otherwise.
        known = {m.name: m for m in base.measures}
        if name in known:
            return known[name]
        fields["aggregation"] = "AVG"
    if fields["aggregation"] not in AGGREGATIONS:
        raise ConfigError(
            f"context {key!r}: aggregation of {name} must be one of {', '.join(AGGREGATIONS)}, "
            f"got {fields['aggregation']!r}"
        )
    return Measure(**fields)


def _spec_with_overrides(base: PipelineSpec, get: Any) -> PipelineSpec:
    changes: dict[str, Any] = {}
    interval = get("interval")
    if interval is not None:
        interval = _text("interval", interval).upper()
        if interval not in DETECTOR_INTERVALS:
            raise ConfigError(
                f"context 'interval': must be one of {', '.join(DETECTOR_INTERVALS)} (the detector frequencies "
                f"Lookout for Metrics knows), got {interval!r}"
            )
        changes["interval"] = interval
    severity = get("severity_threshold")
    if severity is not None:
        value = _float("severity_threshold", severity)
        if not 0 <= value <= 100:
            raise ConfigError(f"context 'severity_threshold': must be within 0-100, got {value:g}")
        changes["severity_threshold"] = value
    measures = get("measures")
    if measures is not None:
        if isinstance(measures, str):
            try:
                parsed = _json_or(measures)
            except ValueError as exc:
                raise ConfigError(f"context 'measures': {exc}") from None
            measures = parsed if parsed is not None else [m for m in measures.split(",") if m.strip()]
        if not isinstance(measures, list | tuple) or not measures:
            raise ConfigError("context 'measures' must be a non-empty list of 'NAME[:SUM|AVG]' or objects")
        if len(measures) > MAX_MEASURES:
            raise ConfigError(f"context 'measures': at most {MAX_MEASURES} measures are allowed, got {len(measures)}")
        changes["measures"] = tuple(_measure("measures", m, base) for m in measures)
    zone = get("timezone")
    if zone is not None:
        zone = _text("timezone", zone).strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"context 'timezone': {zone!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)"
            ) from None
        changes["timezone"] = zone
    dims = get("dimensions")
    if dims is not None:
        dimensions = _str_list("dimensions", dims)
        if len(dimensions) > MAX_DIMENSIONS:
            raise ConfigError(
                f"context 'dimensions': at most {MAX_DIMENSIONS} dimensions are allowed, got {len(dimensions)}"
            )
        changes["dimensions"] = dimensions
    dim_filter = get("dimension_filter")
    if dim_filter is not None:
        raw = _json_value("dimension_filter", dim_filter, '{"LOCATION_ID": ["B-101", "B-102"]}')
        try:
            parsed_filter = filters.parse(raw)
        except filters.FilterError as exc:
            raise ConfigError(f"context 'dimension_filter': {exc}") from None
        if parsed_filter:
            changes["dimension_filter"] = parsed_filter
    if not changes:
        return base
    try:
        return base.with_overrides(**changes)
    except SpecError as exc:
        keys = ", ".join(repr(k) for k in changes)
        raise ConfigError(f"context {keys} (overriding preset {base.preset!r}): {exc}") from None


def _alert_filter(key: str, value: Any, spec: PipelineSpec) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f'context {key!r} must be JSON like {{"measures": ["CO"], "dimensions": {{"LOCATION_ID": ["B-101"]}}}}'
                f" ({exc.msg})"
            ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"context {key!r} must be a JSON object, got {value!r}")
    if not value or not any(value.values()):
        return ""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    try:
        AlertFilter.parse(text, spec)  # the very parser the Lambdas run
    except AlertFilterError as exc:
        raise ConfigError(f"context {key!r}: {exc}") from None
    return text
