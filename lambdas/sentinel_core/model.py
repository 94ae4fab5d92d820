"""Data model shared by the detector, the alerts, the automation, the demo and the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from sentinel_core.spec import PipelineSpec


def _escape(text: str) -> str:
    """Percent-encode the characters that separate the parts of a series id (and '%' itself)."""
    return text.replace("%", "%25").replace("|", "%7C").replace(",", "%2C").replace("=", "%3D")


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One time series: a measure for one combination of dimension values (Lookout's 'metric' x dimensions)."""

    measure: str
    dimensions: tuple[tuple[str, str], ...] = ()  # (dimension name, value) in the spec's order

    @property
    def id(self) -> str:
        """Stable, human-readable id: ``CO|LOCATION_ID=B-101`` (used by feedback and the CLI)."""
        dims = ",".join(f"{_escape(k)}={_escape(v)}" for k, v in self.dimensions)
        return f"{_escape(self.measure)}|{dims}" if dims else _escape(self.measure)

    @classmethod
    def parse(cls, series_id: str) -> SeriesKey:
        measure, _, rest = series_id.partition("|")
        if not measure:
            raise ValueError(f"series id {series_id!r} has no measure (expected e.g. 'CO|LOCATION_ID=B-101')")
        dims: list[tuple[str, str]] = []
        for part in filter(None, rest.split(",")):
            name, sep, value = part.partition("=")
            if not sep or not name:
                raise ValueError(f"series id {series_id!r}: dimension part {part!r} is not NAME=VALUE")
            dims.append((unquote(name), unquote(value)))
        return cls(unquote(measure), tuple(dims))

    @property
    def label(self) -> str:
        """For people: ``CO at B-101`` (or ``views at cart / web / US``)."""
        if not self.dimensions:
            return self.measure
        return f"{self.measure} at {' / '.join(v for _, v in self.dimensions)}"

    def dimension(self, name: str) -> str | None:
        return dict(self.dimensions).get(name)

    @classmethod
    def of(cls, measure: str, spec: PipelineSpec, values: tuple[str, ...]) -> SeriesKey:
        return cls(measure, tuple(zip(spec.dimensions, values, strict=True)))


@dataclass(frozen=True)
class PointScore:
    """The detector's verdict on one series at one interval."""

    series: SeriesKey
    timestamp: datetime  # interval start, UTC
    value: float
    expected: float
    lower: float  # expected band
    upper: float
    score: float  # severity 0-100; 0 during warm-up
    warming_up: bool = False

    @property
    def deviation(self) -> float:
        """Signed relative deviation from the expected value (0.25 = 25 % above)."""
        base = abs(self.expected) if abs(self.expected) > 1e-9 else 1.0
        return (self.value - self.expected) / base


@dataclass(frozen=True)
class SilentSeries:
    """A series that reported regularly and has sent nothing for ``intervals`` intervals (a sensor gone silent)."""

    series: SeriesKey
    timestamp: datetime  # start of the interval in which the silence was found, UTC
    last_seen: datetime  # start of the last interval with a value
    intervals: int  # intervals without a value so far
    expected: float  # what the series would have reported (its model's prediction)
    score: float  # severity 0-100 (DetectorConfig.silent_score)


@dataclass(frozen=True)
class Contribution:
    """How much one dimension value drove an anomaly group, in percent (Lookout's dimensionContribution)."""

    dimension: str
    value: str
    percent: float


# Kinds of anomaly group: deviations of the values, and series that stopped reporting (no value to deviate: their
# alert says so, and the automation sends no device command for it; a silent sensor needs a person, not a fan).
KIND_ANOMALY = "anomaly"
KIND_SILENT = "silent"
GROUP_KINDS = (KIND_ANOMALY, KIND_SILENT)


@dataclass
class AnomalyGroup:
    """Anomalous series of one measure over consecutive intervals, like Lookout's anomaly group.

    ``kind`` ``"silent"``: the series went silent (``SilentSeries``); its points carry the expected value as value
    and band (there is no reading), and the alert texts say "series went silent".
    """

    group_id: str
    detector_id: str
    measure: str
    start: datetime
    end: datetime  # start of the last anomalous interval
    score: float  # highest severity in the group
    points: list[PointScore] = field(default_factory=list)  # the anomalous points (relevant time series)
    contributions: list[Contribution] = field(default_factory=list)
    feedback: dict[str, bool] = field(default_factory=dict)  # series id -> is anomaly
    kind: str = KIND_ANOMALY

    @property
    def silent(self) -> bool:
        return self.kind == KIND_SILENT

    @staticmethod
    def make_id(detector_id: str, measure: str, start: datetime) -> str:
        digest = hashlib.sha256(f"{detector_id}|{measure}|{start.isoformat()}".encode()).hexdigest()
        return digest[:20]

    @property
    def series_ids(self) -> list[str]:
        return sorted({p.series.id for p in self.points})

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "detector_id": self.detector_id,
            "measure": self.measure,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "score": self.score,
            "points": [
                {
                    "series": p.series.id,
                    "timestamp": p.timestamp.isoformat(),
                    "value": p.value,
                    "expected": p.expected,
                    "lower": p.lower,
                    "upper": p.upper,
                    "score": p.score,
                }
                for p in self.points
            ],
            "contributions": [
                {"dimension": c.dimension, "value": c.value, "percent": c.percent} for c in self.contributions
            ],
            "feedback": dict(self.feedback),
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnomalyGroup:
        return cls(
            group_id=d["group_id"],
            detector_id=d["detector_id"],
            measure=d["measure"],
            start=datetime.fromisoformat(d["start"]),
            end=datetime.fromisoformat(d["end"]),
            score=float(d["score"]),
            points=[
                PointScore(
                    series=SeriesKey.parse(p["series"]),
                    timestamp=datetime.fromisoformat(p["timestamp"]),
                    value=float(p["value"]),
                    expected=float(p["expected"]),
                    lower=float(p["lower"]),
                    upper=float(p["upper"]),
                    score=float(p["score"]),
                )
                for p in d.get("points", [])
            ],
            contributions=[
                Contribution(c["dimension"], c["value"], float(c["percent"])) for c in d.get("contributions", [])
            ],
            feedback={k: bool(v) for k, v in d.get("feedback", {}).items()},
            kind=_kind(d.get("kind", KIND_ANOMALY)),
        )


def _kind(value: Any) -> str:
    if value not in GROUP_KINDS:
        raise ValueError(f"anomaly group kind {value!r} is not one of {', '.join(GROUP_KINDS)}")
    return str(value)
