"""EventBridge schedule expressions: ``rate(...)`` and six-field ``cron(...)``, in simulated UTC time.

Rates fire on multiples of the rate since the Unix epoch (a real rule counts from its creation; aligned times make
runs reproducible). Cron follows EventBridge: minutes hours day-of-month month day-of-week year, with ``*``, ``?``,
lists, ranges, steps, and day-of-week 1-7 = SUN-SAT or names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$", re.I)
_CRON = re.compile(r"^cron\((.+)\)$", re.I)
_DOW = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_MON = {
    m: i + 1 for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
}


class ScheduleError(ValueError):
    pass


def _field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> frozenset[int] | None:
    """Allowed values, or None for any (``*``/``?``)."""
    if text in ("*", "?"):
        return None
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            a, b = lo, hi
        elif "-" in part:
            x, y = part.split("-", 1)
            a, b = _val(x, names), _val(y, names)
        else:
            a = _val(part, names)
            b = hi if step != 1 else a
        out.update(range(a, b + 1, step))
    if not out or min(out) < lo or max(out) > hi:
        raise ScheduleError(f"cron field {text!r} is outside {lo}-{hi}")
    return frozenset(out)


def _val(text: str, names: dict[str, int] | None) -> int:
    t = text.strip().upper()
    if names and t in names:
        return names[t]
    if not t.isdigit():
        raise ScheduleError(f"unsupported cron value {text!r} (L, W and # are not played locally)")
    return int(t)


@dataclass(frozen=True)
class Schedule:
    expression: str
    rate: timedelta | None = None
    fields: tuple[frozenset[int] | None, ...] = ()

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        m = _RATE.match(expression.strip())
        if m:
            n, unit = int(m.group(1)), m.group(2).lower().rstrip("s")
            if n <= 0:
                raise ScheduleError(f"rate must be positive: {expression!r}")
            return cls(expression, rate=timedelta(**{f"{unit}s": n}))
        m = _CRON.match(expression.strip())
        if not m:
            raise ScheduleError(f"not a schedule expression: {expression!r}")
        parts = m.group(1).split()
        if len(parts) != 6:
            raise ScheduleError(f"cron needs 6 fields (min hour dom month dow year): {expression!r}")
        fields = (
            _field(parts[0], 0, 59),
            _field(parts[1], 0, 23),
            _field(parts[2], 1, 31),
            _field(parts[3], 1, 12, _MON),
            _field(parts[4], 1, 7, _DOW),
            _field(parts[5], 1970, 2199),
        )
        return cls(expression, fields=fields)

    def matches(self, ts: datetime) -> bool:
        ts = ts.astimezone(UTC)
        if ts.second or ts.microsecond:
            return False
        if self.rate is not None:
            return int(ts.timestamp()) % int(self.rate.total_seconds()) == 0
        minute, hour, dom, month, dow, year = self.fields
        dow_value = (ts.isoweekday() % 7) + 1  # SUN=1 .. SAT=7
        checks = (
            (minute, ts.minute),
            (hour, ts.hour),
            (dom, ts.day),
            (month, ts.month),
            (dow, dow_value),
            (year, ts.year),
        )
        return all(allowed is None or v in allowed for allowed, v in checks)

    def fire_times(self, after: datetime | None, until: datetime) -> list[datetime]:
        """Times in ``(after, until]`` at which the schedule fires (only ``until`` itself when ``after`` is None)."""
        until = until.astimezone(UTC).replace(second=0, microsecond=0)
        if after is None:
            return [until] if self.matches(until) else []
        cur = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        out: list[datetime] = []
        if self.rate is not None:
            step = int(self.rate.total_seconds())
            first = -(-int(cur.timestamp()) // step) * step
            t = datetime.fromtimestamp(first, tz=UTC)
            while t <= until:
                out.append(t)
                t += self.rate
            return out
        while cur <= until:
            if self.matches(cur):
                out.append(cur)
            cur += timedelta(minutes=1)
        return out
