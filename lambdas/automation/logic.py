"""Alert -> IoT Core command, as plain functions (the handler in ``app.py`` only wires clients and Powertools).

The SNS message a subscriber receives is the alert's ``default`` text: Lookout for Metrics' alert JSON. Each
affected location (the value of the spec's FIRST dimension in ``impactedMetric.relevantTimeSeries``; air-quality's
``LOCATION_ID``) gets one command on the command topic of the thing that owns it, ``spec.thing_of(location)``: the
location itself (a thing name), or the gateway that serves it (``PipelineSpec.thing_locations``). Locations reach an
alert only through the transform's identity check (a device reports only for its own locations), so that thing is
the verified one::

    {"action": "ventilate", "reason": "CO high: 9.4 ppm, expected 2.6 (severity 93)", "alertEventId": "...",
     "measure": "CO", "severity": 93.4, "location": "B-101"}

A location that is no thing name and no gateway's (it could only come from a hand-made alert) gets no command: it
is logged and counted (``without_thing``); the topic is always one legal level, never ``+``, ``#``, ``/`` or NUL.

Pipelines that are not fed by IoT devices have no command topic: their alerts are ignored (logged, counted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.data_classes import SNSEvent
from sentinel_core import alerts
from sentinel_core.spec import PipelineSpec

MAX_REASON = 200


class AlertParseError(ValueError):
    """The SNS message is not a Lookout-style alert."""


@dataclass(frozen=True)
class Command:
    thing: str
    topic: str
    payload: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":"), sort_keys=True).encode()

    @property
    def idempotency_key(self) -> dict[str, str]:
        """One command per (alert event, location), whatever retries happen (a gateway gets one per location)."""
        return {
            "alertEventId": str(self.payload["alertEventId"]),
            "topic": self.topic,
            "location": str(self.payload.get("location", self.thing)),
        }


@dataclass
class Outcome:
    alerts: int = 0
    commands: list[Command] = field(default_factory=list)
    ignored_non_iot: int = 0
    ignored_silent: int = 0  # "series went silent" alerts: a device that sends nothing needs a person, not a command
    without_location: int = 0
    without_thing: list[str] = field(default_factory=list)  # locations no thing owns: no legal command topic


def alert_messages(event: SNSEvent) -> list[str]:
    """The SNS ``Message`` of every record of a Lambda SNS event (Powertools' ``SNSEvent``)."""
    try:
        out = [r.sns.message for r in event.records]
    except (KeyError, TypeError, AttributeError):
        raise AlertParseError("record is not an SNS notification (no Records[].Sns.Message)") from None
    if not out:
        raise AlertParseError("event has no SNS Records")
    if not all(isinstance(m, str) for m in out):
        raise AlertParseError("record is not an SNS notification (Sns.Message is not text)")
    return out


def is_silent_alert(alert: Mapping[str, Any]) -> bool:
    """A "series went silent" alert (``sentinel.kind``): its devices sent nothing, so there is nothing to ventilate
    and a command to a device that may be off or disconnected would only pile up on its topic."""
    return (alert.get("sentinel") or {}).get("kind") == "silent"


def _fmt(v: Any) -> str:
    return alerts.fmt_number(float(v)) if isinstance(v, int | float) else str(v)


def locations(alert: Mapping[str, Any], dimension: str) -> list[str]:
    """Distinct values of ``dimension`` among the alert's relevant time series, in order of appearance."""
    metric = alert.get("impactedMetric") or {}
    seen: dict[str, None] = {}
    for ts in metric.get("relevantTimeSeries") or []:
        for d in ts.get("dimensions") or []:
            if d.get("dimensionName") == dimension and d.get("dimensionValue"):
                seen[str(d["dimensionValue"])] = None
    return list(seen)


def _series_of(
    alert: Mapping[str, Any], location: str, dimension: str
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(relevant time series, its ``sentinel.series`` details) of one location, in the alert's order."""
    details = {s.get("timeSeriesId"): s for s in (alert.get("sentinel") or {}).get("series") or []}
    out = []
    for ts in (alert.get("impactedMetric") or {}).get("relevantTimeSeries") or []:
        dims = {d.get("dimensionName"): d.get("dimensionValue") for d in ts.get("dimensions") or []}
        if dims.get(dimension) == location:
            out.append((ts, details.get(ts.get("timeSeriesId")) or {}))
    return out


def severity(alert: Mapping[str, Any], location: str, dimension: str) -> float:
    """The location's own severity when the alert carries it (``sentinel.series``), else the alert's score."""
    scores = [float(d["score"]) for _, d in _series_of(alert, location, dimension) if "score" in d]
    return max(scores) if scores else float(alert.get("anomalyScore", 0.0))


def reason(alert: Mapping[str, Any], location: str, dimension: str) -> str:
    measure = (alert.get("impactedMetric") or {}).get("metricName", "?")
    unit = (alert.get("sentinel") or {}).get("unit", "")
    sev = _fmt(round(severity(alert, location, dimension)))
    for ts, extra in _series_of(alert, location, dimension):
        text = f"{measure} anomaly at {location}: {_fmt(ts.get('metricValue'))}{' ' + unit if unit else ''}"
        if "expected" in extra:
            text += f", expected {_fmt(extra['expected'])}"
        return f"{text} (severity {sev})"[:MAX_REASON]
    return f"{measure} anomaly at {location} (severity {sev})"[:MAX_REASON]


def commands_for(alert: Mapping[str, Any], spec: PipelineSpec, unowned: list[str] | None = None) -> list[Command]:
    """One command per affected location, on its owning thing's topic; locations no thing owns go to ``unowned``."""
    dimension = spec.identity_dimension
    measure = str((alert.get("impactedMetric") or {}).get("metricName", ""))
    out = []
    for loc in locations(alert, dimension):
        thing = spec.thing_of(loc)
        if thing is None:
            if unowned is not None:
                unowned.append(loc)
            continue
        payload = {
            "action": spec.labels.get("command", "ventilate"),
            "reason": reason(alert, loc, dimension),
            "alertEventId": alert["alertEventId"],
            "measure": measure,
            "severity": severity(alert, loc, dimension),
            "location": loc,
        }
        out.append(Command(thing, spec.command_topic(thing), payload))
    return out


def handle(
    messages: Iterable[str],
    spec: PipelineSpec,
    send: Callable[[Command], None],
    log: Callable[[str, dict[str, Any]], None] = lambda msg, extra: None,
) -> Outcome:
    """Parse each alert and ``send`` its commands (``send`` is the idempotent IoT publish)."""
    outcome = Outcome()
    for text in messages:
        try:
            alert = alerts.parse_lookout_alert(text)
        except (ValueError, json.JSONDecodeError) as exc:
            raise AlertParseError(f"SNS message is not a Lookout alert: {exc}") from None
        outcome.alerts += 1
        if spec.ingest != "iot" or not spec.dimensions or not spec.topic_root:
            outcome.ignored_non_iot += 1
            log(
                "alert ignored: this pipeline has no IoT devices to command",
                {"preset": spec.preset, "alertEventId": alert["alertEventId"]},
            )
            continue
        if is_silent_alert(alert):
            outcome.ignored_silent += 1
            log(
                "alert ignored: series went silent (no device command for a silence)",
                {"alertEventId": alert["alertEventId"], "locations": locations(alert, spec.identity_dimension)[:20]},
            )
            continue
        unowned: list[str] = []
        cmds = commands_for(alert, spec, unowned)
        for loc in unowned:
            outcome.without_thing.append(loc)
            log(
                "no command: the location is no thing's (not a thing name, not in thing_locations)",
                {"alertEventId": alert["alertEventId"], "location": loc[:200]},
            )
        if not cmds and not unowned:
            outcome.without_location += 1
            log("alert names no location: no command sent", {"alertEventId": alert["alertEventId"]})
        for cmd in cmds:
            send(cmd)
            outcome.commands.append(cmd)
            log("command sent", {"topic": cmd.topic, "payload": cmd.payload})
    return outcome
