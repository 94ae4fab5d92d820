"""Several alerts per detector (Lookout for Metrics' alerts): who gets which anomaly, where, in which format.

An :class:`AlertRoute` is one alert: a ``name``, a severity ``threshold``, Lookout's alert filters (``measures`` and
``dimensions``, an :class:`~sentinel_core.alerts.AlertFilter`), a ``target`` and a message ``format``:

* target ``"topic"`` (the stack's alert topic, the default), an SNS topic ARN (an existing topic) or a Lambda
  function ARN (invoked asynchronously with the alert JSON, like Lookout's Lambda alert action);
* format ``"sentinel"`` (the default): one ``MessageStructure=json`` publish with the SMS line, the readable e-mail
  and the Lookout JSON plus its ``sentinel`` extension; format ``"lookout"``: the bare Lookout alert JSON (no
  extension, no per-protocol texts), what consumers written for Lookout's JSON format read.

The routes come from the ``alerts`` context key (``infra/config.py`` validates them with :func:`parse_routes`, the
very parser the Lambdas run) and reach the functions as ``ALERT_ROUTES`` (JSON). Without it the detector has ONE
alert: the stack's topic, the preset's threshold, ``ALERT_FILTER``, keyed in the ledger exactly as before.

Each route's alert is sent once through the ledger (``store.send_once``: claim, send, mark), keyed per alert name:
two alerts on the same group and interval are two ledger items, a retry sends neither twice.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sentinel_core import alerts, store
from sentinel_core.environment import ALERT_ROUTES, ConfigError, Environment
from sentinel_core.model import AnomalyGroup
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

MAX_ALERTS = 10  # Lookout for Metrics' alerts per detector
STACK_TOPIC = "topic"
FORMATS: tuple[str, ...] = ("sentinel", "lookout")
DEFAULT_FORMAT = "sentinel"  # the readable texts people subscribe to; "lookout" is for machines
ROUTE_FIELDS: tuple[str, ...] = ("name", "threshold", "measures", "dimensions", "target", "format")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_]{0,62}$")  # Lookout's alert name rules
SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$")

Kind = Literal["topic", "sns", "lambda"]


class RouteError(ConfigError):
    """An alert that cannot be built; the message names the alert by index (and name) and the field."""


@dataclass(frozen=True)
class AlertRoute:
    name: str
    threshold: float
    target: str = STACK_TOPIC
    format: str = DEFAULT_FORMAT
    alert_filter: alerts.AlertFilter = field(default_factory=alerts.AlertFilter)

    @property
    def kind(self) -> Kind:
        if self.target == STACK_TOPIC:
            return "topic"
        return "lambda" if LAMBDA_ARN.match(self.target) else "sns"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "target": self.target,
            "format": self.format,
            "measures": sorted(self.alert_filter.measures),
            "dimensions": {k: sorted(v) for k, v in sorted(self.alert_filter.dimensions.items())},
        }


def _closest(word: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def parse_route(raw: Any, index: int, spec: PipelineSpec) -> AlertRoute:
    """One alert object; a :class:`RouteError` names ``alert <index>`` and the field."""
    where = f"alert {index}"
    if not isinstance(raw, Mapping):
        raise RouteError(f"{where} must be an object with {', '.join(ROUTE_FIELDS)}, got {raw!r}")
    if isinstance(raw.get("name"), str):
        where += f" ({raw['name']!r})"
    for key in raw:
        if key not in ROUTE_FIELDS:
            raise RouteError(f"{where}: unknown field {key!r}{_closest(str(key), ROUTE_FIELDS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RouteError(f"{where}: 'name' must be 1-63 letters, digits, '-' or '_', got {name!r}")
    threshold = raw.get("threshold", spec.severity_threshold)  # default: the preset's threshold, like one alert
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 100:
        raise RouteError(f"{where}: 'threshold' must be a number within 0-100, got {threshold!r}")
    target = raw.get("target", STACK_TOPIC)
    if not isinstance(target, str) or not (target == STACK_TOPIC or SNS_ARN.match(target) or LAMBDA_ARN.match(target)):
        raise RouteError(
            f"{where}: 'target' must be \"topic\" (the stack's alert topic), an SNS topic ARN or a Lambda function "
            f"ARN, got {target!r}"
        )
    fmt = raw.get("format", DEFAULT_FORMAT)
    if fmt not in FORMATS:
        raise RouteError(f"{where}: 'format' must be one of {', '.join(FORMATS)}, got {fmt!r}")
    criteria = {k: raw[k] for k in ("measures", "dimensions") if raw.get(k)}
    try:
        alert_filter = alerts.AlertFilter.parse(json.dumps(criteria), spec) if criteria else alerts.AlertFilter()
    except alerts.AlertFilterError as exc:
        raise RouteError(f"{where}: {str(exc).replace('ALERT_FILTER', 'filter')}") from None
    return AlertRoute(name, float(threshold), target, str(fmt), alert_filter)


def parse_routes(raw: Any, spec: PipelineSpec) -> tuple[AlertRoute, ...]:
    """The alert list (at most ``MAX_ALERTS``, unique names); an empty list or None = no routes (one default)."""
    if raw is None:
        return ()
    if not isinstance(raw, list | tuple):
        raise RouteError(f"must be a list of alert objects, got {raw!r}")
    if len(raw) > MAX_ALERTS:
        raise RouteError(f"at most {MAX_ALERTS} alerts per detector (Lookout's limit), got {len(raw)}")
    routes = tuple(parse_route(item, i, spec) for i, item in enumerate(raw))
    seen: set[str] = set()
    for i, r in enumerate(routes):
        if r.name in seen:
            raise RouteError(f"alert {i} ({r.name!r}): the name is already used by an earlier alert")
        seen.add(r.name)
    return routes


def routes_to_json(routes: Iterable[AlertRoute]) -> str:
    return json.dumps([r.to_dict() for r in routes], separators=(",", ":"), sort_keys=True)


def routes_from_env(spec: PipelineSpec, environ: Environment) -> tuple[AlertRoute, ...]:
    raw = environ.optional(ALERT_ROUTES)
    if raw is None:
        return ()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RouteError(f"{ALERT_ROUTES} is not JSON: {exc.msg}") from None
    try:
        return parse_routes(data, spec)
    except RouteError as exc:
        raise RouteError(f"{ALERT_ROUTES}: {exc}") from None


def default_route(settings: alerts.AlertSettings) -> AlertRoute:
    """Today's single alert: the stack topic, the preset's threshold, ``ALERT_FILTER``, the sentinel texts."""
    return AlertRoute("", settings.spec.severity_threshold, STACK_TOPIC, DEFAULT_FORMAT, settings.alert_filter)


# ----------------------------------------------------------------------------------------------------------------
# Delivery
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What routing one group did, per alert name ("" = the default alert)."""

    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    filtered: list[str] = field(default_factory=list)


def lookout_payload(message: alerts.AlertMessage) -> str:
    """The bare Lookout alert JSON (the ``sentinel`` extension left out)."""
    body = {k: v for k, v in message.default.items() if k != "sentinel"}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _sender(
    route: AlertRoute,
    message: alerts.AlertMessage,
    clients: store.Clients,
    topic_arn: str,
    lambda_client: Callable[[], LambdaClient],
) -> Callable[[], str]:
    if route.kind == "lambda":

        def invoke() -> str:
            payload = lookout_payload(message) if route.format == "lookout" else message.message
            resp = lambda_client().invoke(FunctionName=route.target, InvocationType="Event", Payload=payload.encode())
            return str(resp["ResponseMetadata"]["RequestId"])

        return invoke
    arn = topic_arn if route.kind == "topic" else route.target

    def publish() -> str:
        if route.format == "lookout":
            return clients.sns.publish(TopicArn=arn, Message=lookout_payload(message))["MessageId"]
        return clients.sns.publish(**message.publish_kwargs(arn))["MessageId"]

    return publish


def _boto3_lambda() -> LambdaClient:
    import boto3  # only a Lambda target needs it (the detector's package ships boto3 in the runtime)

    return boto3.client("lambda")


def route_group(
    clients: store.Clients,
    settings: alerts.AlertSettings,
    routes: tuple[AlertRoute, ...],
    group: AnomalyGroup,
    at: datetime,
    ctx: alerts.AlertContext,
    lambda_client: Callable[[], LambdaClient] = _boto3_lambda,
) -> Outcome:
    """Send ``group``'s alert at ``at`` to every route whose threshold it reaches and whose filters it passes, each
    once through the ledger (``routes`` empty = the single default alert, keyed as before)."""
    out = Outcome()
    for route in routes or (default_route(settings),):
        if not alerts.should_alert(group, settings.spec, at, route.threshold):
            continue
        shown = route.alert_filter.apply(group)
        if shown is None or not alerts.should_alert(shown, settings.spec, at, route.threshold):
            out.filtered.append(route.name)
            continue
        route_ctx = replace(ctx, name=route.name) if route.name else ctx
        message = alerts.render_alert(shown, settings.spec, route_ctx, at, route.threshold)
        if route.name:  # a named alert has its own ledger item per (group, interval)
            message = replace(message, group_id=f"{group.group_id}#{route.name}")
        send = _sender(route, message, clients, settings.topic_arn, lambda_client)
        status = store.send_once(clients.ddb, settings.table, settings.detector_id, message, send)
        (out.already_sent if status == store.ALERT_SENT else out.sent).append(route.name)
    return out


def targets(routes: Iterable[AlertRoute]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(SNS topic ARNs, Lambda function ARNs) the routes send to besides the stack's topic: the IAM resources."""
    sns = sorted({r.target for r in routes if r.kind == "sns"})
    fns = sorted({r.target for r in routes if r.kind == "lambda"})
    return tuple(sns), tuple(fns)
