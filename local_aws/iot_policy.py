"""A small evaluator of AWS IoT Core policies, so tests can PROVE what a device certificate may do.

It answers "may this MQTT connection perform this action on this resource?" for the documents our stack and
``simulator provision`` attach to device certificates, following AWS IoT Core's documented rules:

- default deny; an explicit ``Deny`` wins over any ``Allow``; several attached policies are one union of statements;
- actions ``iot:Connect`` (resource ``client/<client id>``), ``iot:Publish`` / ``iot:RetainPublish`` /
  ``iot:Receive`` (resource ``topic/<topic name>``), ``iot:Subscribe`` (resource ``topicfilter/<topic filter>``);
  actions match case-insensitively and may carry IAM wildcards (``iot:*``, ``iot:Pub*``);
- resources are ARNs matched case-sensitively with IAM wildcards ``*`` (any run of characters, ``/`` included) and
  ``?`` (one character). MQTT wildcards ``+`` and ``#`` are NOT wildcards in a policy: in a ``topicfilter`` ARN they
  are literal characters, so ``topicfilter/a/+/b`` only allows subscribing to the filter ``a/+/b`` itself;
- policy variables ``${iot:ClientId}``, ``${iot:Connection.Thing.ThingName}``, ``${iot:Connection.Thing.IsAttached}``,
  ``${iot:Connection.Thing.ThingTypeName}``, ``${iot:Connection.Thing.Attributes[name]}`` and the escapes ``${*}``,
  ``${?}``, ``${$}``. A substituted value is literal (a client id ``*`` matches only ``*``). A variable without a
  value (a certificate not attached to a thing named like the client id) leaves the statement unresolved: it
  neither allows nor denies — AWS documents this as "won't be resolved and will result in an access denied error";
- conditions ``Bool``, ``StringEquals``, ``StringNotEquals``, ``StringLike``, ``StringNotLike``, ``ArnEquals``,
  ``ArnLike`` (each also with ``IfExists``) on the keys above. Anything else raises :class:`PolicyError`: a policy
  this evaluator cannot read is reported, never guessed.

Thing association is modelled the way ``provision`` sets it up (non-exclusive): the thing name of a connection is
its client id when the presented certificate is attached to a thing of that name, and undefined otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

IOT_ACTIONS = ("iot:Connect", "iot:Publish", "iot:RetainPublish", "iot:Subscribe", "iot:Receive")
Decision = Literal["allow", "deny", "implicit-deny"]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}
_SUPPORTED_CONDITIONS = {
    "Bool",
    "StringEquals",
    "StringNotEquals",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnLike",
}


class PolicyError(ValueError):
    """The document uses something this evaluator does not understand (or is malformed)."""


@dataclass(frozen=True)
class Connection:
    """One MQTT connection: the client id it sent and the things its certificate is attached to."""

    client_id: str
    attached_things: frozenset[str] = frozenset()
    thing_type: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_thing(cls, thing: str, client_id: str | None = None, **kwargs: Any) -> Connection:
        """A device whose certificate is attached to ``thing``, connecting as ``client_id`` (default: itself)."""
        return cls(client_id=thing if client_id is None else client_id, attached_things=frozenset({thing}), **kwargs)

    @property
    def thing_name(self) -> str | None:
        return self.client_id if self.client_id in self.attached_things else None

    def variables(self) -> dict[str, str]:
        """Policy variable (and condition key) values; absent keys have no value for this connection."""
        out = {"iot:ClientId": self.client_id}
        thing = self.thing_name
        out["iot:Connection.Thing.IsAttached"] = "true" if thing is not None else "false"
        if thing is not None:
            out["iot:Connection.Thing.ThingName"] = thing
            if self.thing_type is not None:
                out["iot:Connection.Thing.ThingTypeName"] = self.thing_type
            for name, value in self.attributes.items():
                out[f"iot:Connection.Thing.Attributes[{name}]"] = value
        return out


@dataclass(frozen=True)
class Request:
    action: str
    resource: str


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    allowed_by: tuple[str, ...] = ()  # statement ids (or indexes) that allowed
    denied_by: tuple[str, ...] = ()  # statement ids (or indexes) that denied
    unresolved: tuple[str, ...] = ()  # statements skipped because a variable had no value

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


class Arns:
    """Builds the ARNs IoT Core evaluates for each MQTT operation."""

    def __init__(self, region: str, account: str, partition: str = "aws") -> None:
        self.base = f"arn:{partition}:iot:{region}:{account}"

    def client(self, client_id: str) -> str:
        return f"{self.base}:client/{client_id}"

    def topic(self, topic: str) -> str:
        return f"{self.base}:topic/{topic}"

    def topicfilter(self, topic_filter: str) -> str:
        return f"{self.base}:topicfilter/{topic_filter}"


@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def wildcard_match(pattern: str, value: str, case_insensitive: bool = False) -> bool:
    """IAM-style match: ``*`` any run of characters, ``?`` exactly one; everything else (``+``, ``#``) literal."""
    return _wildcard_regex(pattern, case_insensitive).fullmatch(value) is not None


_LITERAL = "\x00"  # marks a character that must match literally even if it is * or ?


def _substitute(pattern: str, values: Mapping[str, str]) -> str | None:
    """Replace policy variables; substituted text is literal. None when a variable has no value."""
    missing = False

    def repl(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1)
        if name in _ESCAPES:
            return _LITERAL + _ESCAPES[name]
        if name not in values:
            if not name.startswith("iot:"):
                raise PolicyError(f"unknown policy variable ${{{name}}}")
            missing = True
            return ""
        return "".join(_LITERAL + ch for ch in values[name])

    out = _VARIABLE.sub(repl, pattern)
    return None if missing else out


def _match_substituted(pattern: str, value: str, case_insensitive: bool = False) -> bool:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == _LITERAL:
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE if case_insensitive else 0)
    return re.fullmatch("".join(parts), value, flags) is not None


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"{what} must be a string or a list of strings, got {value!r}")


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = document.get("Statement")
    if isinstance(raw, Mapping):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, Mapping) for s in raw):
        return list(raw)
    raise PolicyError("policy document has no Statement list")


class _UnresolvedError(Exception):
    pass


def _condition_holds(condition: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    for operator, block in condition.items():
        base = operator[: -len("IfExists")] if operator.endswith("IfExists") else operator
        if base not in _SUPPORTED_CONDITIONS:
            raise PolicyError(f"condition operator {operator!r} is not supported by this evaluator")
        if not isinstance(block, Mapping):
            raise PolicyError(f"condition {operator!r} must map keys to values")
        for key, expected in block.items():
            wanted = _as_list(expected, f"condition {operator}/{key}")
            if key not in values:
                if operator.endswith("IfExists"):
                    continue
                if key.startswith("iot:"):
                    return False  # a key without a value never satisfies a condition
                raise PolicyError(f"condition key {key!r} is not supported by this evaluator")
            actual = values[key]
            if base == "Bool":
                ok = actual.lower() in {w.lower() for w in wanted}
            elif base in ("StringEquals", "ArnEquals"):
                ok = actual in wanted
            elif base == "StringNotEquals":
                ok = actual not in wanted
            else:
                subs = [_substitute(w, values) for w in wanted]
                if any(s is None for s in subs):
                    raise _UnresolvedError
                hit = any(_match_substituted(s, actual) for s in subs if s is not None)
                ok = not hit if base == "StringNotLike" else hit
            if not ok:
                return False
    return True


def _statement_applies(stmt: Mapping[str, Any], request: Request, values: Mapping[str, str]) -> bool:
    if "Action" in stmt:
        action_hit = any(
            wildcard_match(a, request.action, case_insensitive=True) for a in _as_list(stmt["Action"], "Action")
        )
    elif "NotAction" in stmt:
        action_hit = not any(
            wildcard_match(a, request.action, case_insensitive=True) for a in _as_list(stmt["NotAction"], "NotAction")
        )
    else:
        raise PolicyError("statement has neither Action nor NotAction")
    if not action_hit:
        return False
    key = "Resource" if "Resource" in stmt else "NotResource" if "NotResource" in stmt else ""
    if not key:
        raise PolicyError("statement has neither Resource nor NotResource")
    subs = [_substitute(p, values) for p in _as_list(stmt[key], key)]
    resolved = [s for s in subs if s is not None]
    hit = any(_match_substituted(s, request.resource) for s in resolved)
    if key == "Resource":
        if not hit and len(resolved) < len(subs):
            raise _UnresolvedError
        if not hit:
            return False
    else:
        if len(resolved) < len(subs):
            raise _UnresolvedError
        if hit:
            return False
    condition = stmt.get("Condition")
    if condition is None:
        return True
    if not isinstance(condition, Mapping):
        raise PolicyError("Condition must be an object")
    return _condition_holds(condition, values)


def evaluate(
    documents: Mapping[str, Any] | Sequence[Mapping[str, Any]], connection: Connection, request: Request
) -> Evaluation:
    """The decision of IoT Core for ``request`` by ``connection`` under every attached policy ``documents``."""
    docs: Iterable[Mapping[str, Any]] = [documents] if isinstance(documents, Mapping) else documents
    values = connection.variables()
    allowed: list[str] = []
    denied: list[str] = []
    unresolved: list[str] = []
    for d, doc in enumerate(docs):
        for i, stmt in enumerate(_statements(doc)):
            sid = str(stmt.get("Sid") or f"policy{d}.statement{i}")
            effect = stmt.get("Effect")
            if effect not in ("Allow", "Deny"):
                raise PolicyError(f"statement {sid}: Effect must be Allow or Deny, got {effect!r}")
            try:
                applies = _statement_applies(stmt, request, values)
            except _UnresolvedError:
                unresolved.append(sid)
                continue
            if applies:
                (allowed if effect == "Allow" else denied).append(sid)
    decision: Decision = "deny" if denied else "allow" if allowed else "implicit-deny"
    return Evaluation(decision, tuple(allowed), tuple(denied), tuple(unresolved))


def is_allowed(
    documents: Mapping[str, Any] | Sequence[Mapping[str, Any]], connection: Connection, action: str, resource: str
) -> bool:
    if action not in IOT_ACTIONS:
        raise PolicyError(f"unknown data-plane action {action!r}; one of {', '.join(IOT_ACTIONS)}")
    return evaluate(documents, connection, Request(action, resource)).allowed
