"""IoT Core's part: MQTT topic filters and the simple rule SQL forms the stack uses."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_SQL = re.compile(
    r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+'(?P<topic>[^']+)'\s*(?:WHERE\s+(?P<where>.+?))?\s*;?\s*$", re.I | re.S
)
_TOPIC_FN = re.compile(r"^topic\(\s*(\d*)\s*\)$", re.I)
_ENCODE_FN = re.compile(r"^encode\(\s*\*\s*,\s*'(?P<scheme>[^']*)'\s*\)$", re.I)
_AS = re.compile(r"^(?P<expr>.+?)\s+AS\s+(?P<alias>[A-Za-z_][A-Za-z0-9_]*)$", re.I)


class RuleSqlError(ValueError):
    """SQL the local runtime cannot evaluate (it only plays the forms the stack uses)."""


def _split_select(text: str) -> list[str]:
    """The SELECT list split on its top-level commas (not those inside parentheses or quotes)."""
    parts: list[str] = []
    depth, quoted = 0, False
    cur: list[str] = []
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching: ``+`` is one level, ``#`` (last) is any number of levels including none."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, f in enumerate(f_parts):
        if f == "#":
            return i == len(f_parts) - 1
        if i >= len(t_parts):
            return False
        if f != "+" and f != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


@dataclass(frozen=True)
class RuleSql:
    topic_filter: str
    star: bool
    projections: tuple[tuple[str, str], ...]  # (expression, alias)

    @classmethod
    def parse(cls, sql: str) -> RuleSql:
        m = _SQL.match(sql)
        if not m:
            raise RuleSqlError(f"cannot parse rule SQL {sql!r} (expected SELECT ... FROM 'topic/filter')")  # noqa: S608 (a message, not a query)
        if m.group("where"):
            raise RuleSqlError(f"WHERE clauses are not played locally: {sql!r}")
        star = False
        projections: list[tuple[str, str]] = []
        for part in _split_select(m.group("select")):
            if part == "*":
                star = True
                continue
            am = _AS.match(part)
            expr, alias = (am.group("expr").strip(), am.group("alias")) if am else (part, part)
            projections.append((expr, alias))
        for expr, _ in projections:
            enc = _ENCODE_FN.match(expr)
            if enc and enc.group("scheme") != "base64":
                raise RuleSqlError(f"encode() supports only 'base64' (as IoT Core does): {expr!r}")
            if not (
                _TOPIC_FN.match(expr) or enc or expr.lower() in ("timestamp()", "clientid()") or expr.isidentifier()
            ):
                raise RuleSqlError(f"unsupported SELECT expression {expr!r} in {sql!r}")
        return cls(m.group("topic"), star, tuple(projections))

    def apply(self, topic: str, payload: bytes, now: datetime, client_id: str = "") -> bytes | None:
        """The message the rule's actions receive, or None when the topic does not match.

        ``SELECT *`` alone forwards the payload bytes unchanged (IoT does so for non-JSON payloads too), and so
        do the functions that do not look inside it (``encode(*, 'base64')``, ``topic()``, ``clientid()``,
        ``timestamp()``: IoT's "binary payload" forms); ``*`` with projections or a payload field needs a JSON
        object payload, else ``RuleSqlError`` (which IoT reports to the error action).
        """
        if not topic_matches(self.topic_filter, topic):
            return None
        if self.star and not self.projections:
            return payload
        doc: dict[str, Any] = {}
        if self.star or any(expr.isidentifier() for expr, _ in self.projections):
            try:
                parsed = json.loads(payload)
            except (UnicodeDecodeError, ValueError) as exc:
                raise RuleSqlError(f"payload is not JSON, cannot evaluate {self.projections}: {exc}") from None
            if not isinstance(parsed, dict):
                raise RuleSqlError("payload is not a JSON object")
            doc = parsed
        out: dict[str, Any] = dict(doc) if self.star else {}
        levels = topic.split("/")
        for expr, alias in self.projections:
            tm = _TOPIC_FN.match(expr)
            if tm:
                if not tm.group(1):
                    out[alias] = topic
                elif 1 <= int(tm.group(1)) <= len(levels):
                    out[alias] = levels[int(tm.group(1)) - 1]
            elif _ENCODE_FN.match(expr):
                out[alias] = base64.b64encode(payload).decode("ascii")
            elif expr.lower() == "timestamp()":
                out[alias] = int(now.timestamp() * 1000)
            elif expr.lower() == "clientid()":
                out[alias] = client_id
            elif expr in doc:
                out[alias] = doc[expr]
        return json.dumps(out, separators=(",", ":")).encode()
