"""Synthetic metric data: seasonal series with labelled anomalies, streamed so memory stays flat.

The generator is preset driven. A :class:`PresetModel` says, for one :class:`~sentinel_core.spec.PipelineSpec`,
how each measure behaves (level, daily and weekly seasonality, trend, noise, rounding) and how the entities
(locations, stores, pages) are named; everything else — anomaly planning, missing intervals, streaming, file
formats, labels — is shared. Adding a preset means adding one ``PresetModel`` to :data:`MODELS` (see
``_air_quality_model``); presets whose source emits one event per record (ecommerce page views) set ``expand``.

Importable API (the demo and the detector benchmark use it)::

    spec = get_preset("air-quality")
    labels = plan_anomalies(spec, start, end, locations=10, seed=7, count=5)
    for record in generate_records(spec, start, end, locations=10, seed=7, anomalies=labels):
        ...  # {"TIMESTAMP": "2026-11-23 20:00:00", "LOCATION_ID": "A-1002", "CO": 2.61, "SO2": 51.3, "NO2": 44.0}

Anomaly semantics (``Label.magnitude`` is a relative change of the normal value): a *spike* multiplies one or two
intervals by ``1 + magnitude``; a *shift* multiplies every interval of the window by ``1 + magnitude`` (negative =
a drop); a *drift* ramps linearly from ``1 + magnitude / n`` to ``1 + magnitude`` over the window's ``n`` intervals.
``start`` and ``end`` are interval starts (UTC), both inclusive — ``end`` is the start of the last anomalous interval.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sentinel_core.intervals import floor_to_interval, interval_seconds, to_utc
from sentinel_core.model import SeriesKey
from sentinel_core.records import OUTPUT_TIMESTAMP_FORMAT, parse_timestamp
from sentinel_core.spec import PipelineSpec, SpecError

AnomalyKind = Literal["spike", "shift", "drift", "silent"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("spike", "shift", "drift")  # injected into values
# ... and "silent": a device that stops reporting (no value to change; the demo drops its records)
LABEL_KINDS: tuple[AnomalyKind, ...] = (*ANOMALY_KINDS, "silent")
LABEL_COLUMNS = ("series_id", "start", "end", "kind", "magnitude")

# One generated row: (interval start, its text, entity index, measure values in spec order).
Row = tuple[datetime, str, int, tuple[float, ...]]


# --------------------------------------------------------------------------------------------------------------
# Preset models
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasureModel:
    """How one measure behaves. Amplitudes and noise are relative to the entity's level."""

    base: float  # typical level
    daily: float = 0.0  # amplitude of the daily cycle (0.3 = +/-30 %)
    weekly: float = 0.0  # weekend change: Sunday is ``1 - weekly`` (negative = busier weekends)
    trend: float = 0.0  # relative change per 30 days
    noise: float = 0.05  # relative standard deviation of the noise
    decimals: int = 2
    peaks: tuple[float, ...] = (8.0, 18.0)  # hours (UTC) of the daily peaks
    spread: float = 0.3  # log-normal sigma of the entity-to-entity level


@dataclass(frozen=True)
class PresetModel:
    """Everything preset-specific about generating data for ``spec``."""

    spec: PipelineSpec
    measures: Mapping[str, MeasureModel]
    # Dimension value tuples (spec.dimensions order) of the first ``n`` entities.
    entities: Callable[[int], list[tuple[str, ...]]]
    missing_rate: float = 0.002  # per entity and interval: probability that a reporting gap starts
    max_gap: int = 6  # longest gap, in intervals
    # Event-stream presets: turn one aggregated row into the records the source would emit (None = one record).
    expand: Callable[[Row, random.Random], Iterable[Row]] | None = field(default=None)

    def __post_init__(self) -> None:
        missing = set(self.spec.measure_names) - set(self.measures)
        if missing:
            raise SpecError(f"preset model {self.spec.preset!r} has no generation model for {sorted(missing)}")


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def location_ids(n: int) -> list[str]:
    """``A-1002, B-101, C-174, ...``: deterministic, unique, looks like a site code."""
    if n < 0:
        raise ValueError("the number of locations must not be negative")
    out: list[str] = []
    for i in range(n):
        if i == 0:
            out.append("A-1002")
        elif i == 1:
            out.append("B-101")
        else:
            block, letter = divmod(i, 26)
            out.append(f"{_letters(letter)}-{1000 * block + 100 + (i * 37) % 900}")
    if len(set(out)) != len(out):  # pragma: no cover - guarded by a unit test
        raise AssertionError("location ids are not unique")
    return out


def _air_quality_model(spec: PipelineSpec) -> PresetModel:
    # Traffic-driven gases peak in the morning and evening rush hours and drop on weekends; SO2 (industry)
    # follows working hours, flatter. Levels match the preset's documented example record.
    return PresetModel(
        spec=spec,
        measures={
            "CO": MeasureModel(base=2.2, daily=0.35, weekly=0.25, trend=0.04, noise=0.06, decimals=2),
            "SO2": MeasureModel(base=55.0, daily=0.15, weekly=0.20, trend=-0.03, noise=0.05, decimals=1, peaks=(11.0,)),
            "NO2": MeasureModel(base=48.0, daily=0.30, weekly=0.30, trend=0.02, noise=0.06, decimals=1),
        },
        entities=lambda n: [(loc,) for loc in location_ids(n)],
    )


# Loyalty: daily points per store. Weekends are busier; "double points Tuesday" (a weekly promotion) lifts what is
# earned on Tuesdays, and redemptions follow a day later. Both are weekly patterns the detector learns.
_PROMOTION = {1: (1.6, 1.0), 2: (1.0, 1.25)}  # weekday -> (earned factor, redeemed factor)


def _loyalty_promotions(row: Row, rng: random.Random) -> Iterable[Row]:
    ts, text, ei, vals = row
    f = _PROMOTION.get(ts.weekday())
    if f is None:
        return (row,)
    return ((ts, text, ei, tuple(v * k for v, k in zip(vals, f, strict=False))),)


def _loyalty_model(spec: PipelineSpec) -> PresetModel:
    return PresetModel(
        spec=spec,
        measures={
            "points_earned": MeasureModel(base=1200.0, weekly=-0.35, trend=0.02, noise=0.08, decimals=0, spread=0.5),
            "points_redeemed": MeasureModel(base=420.0, weekly=-0.2, trend=0.01, noise=0.12, decimals=0, spread=0.5),
        },
        entities=lambda n: [(loc,) for loc in location_ids(n)],
        missing_rate=0.0005,
        max_gap=2,
        expand=_loyalty_promotions,
    )


# E-commerce: page views per (page type, platform, marketplace) every 10 minutes. The conversion funnel and the
# platform / marketplace mix scale a common level; counts get Poisson noise. Rows stay aggregated (``views`` = the
# count) so history files are compact; ``simulator stream`` turns each count into that many page-view events.
ECOMMERCE_PAGE_TYPES = {"product_page": 1.0, "cart": 0.25, "checkout": 0.1}
ECOMMERCE_PLATFORMS = {"web": 1.0, "ios": 0.6, "android": 0.5}
ECOMMERCE_MARKETPLACES = {"US": 1.0, "UK": 0.45, "DE": 0.4, "FR": 0.3, "JP": 0.25, "CA": 0.2, "ES": 0.18, "IT": 0.16}


def ecommerce_entities(n: int) -> list[tuple[str, ...]]:
    """Marketplace-major so the first entities cover every page type and platform of the biggest market."""
    allowed = len(ECOMMERCE_PAGE_TYPES) * len(ECOMMERCE_PLATFORMS) * len(ECOMMERCE_MARKETPLACES)
    if n > allowed:
        raise ValueError(f"the ecommerce preset has {allowed} (page type, platform, marketplace) combinations, not {n}")
    combos: list[tuple[str, ...]] = [
        (p, pl, m) for m in ECOMMERCE_MARKETPLACES for pl in ECOMMERCE_PLATFORMS for p in ECOMMERCE_PAGE_TYPES
    ]
    return combos[:n]


def _poisson(lam: float, rng: random.Random) -> float:
    if lam <= 0.0:
        return 0.0
    if lam > 60.0:  # normal approximation
        return float(max(0, round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return float(k)
        k += 1


def _ecommerce_model(spec: PipelineSpec) -> PresetModel:
    combos = ecommerce_entities(len(ECOMMERCE_PAGE_TYPES) * len(ECOMMERCE_PLATFORMS) * len(ECOMMERCE_MARKETPLACES))
    factor = {c: ECOMMERCE_PAGE_TYPES[c[0]] * ECOMMERCE_PLATFORMS[c[1]] * ECOMMERCE_MARKETPLACES[c[2]] for c in combos}
    index = {i: factor[c] for i, c in enumerate(combos)}

    def counts(row: Row, rng: random.Random) -> Iterable[Row]:
        ts, text, ei, vals = row
        return ((ts, text, ei, tuple(_poisson(v * index[ei], rng) for v in vals)),)

    return PresetModel(
        spec=spec,
        measures={
            "views": MeasureModel(
                base=400.0, daily=0.7, weekly=-0.15, noise=0.03, decimals=0, spread=0.05, peaks=(13.0, 20.5)
            )
        },
        entities=ecommerce_entities,
        missing_rate=0.0,
        expand=counts,
    )


MODELS: dict[str, Callable[[PipelineSpec], PresetModel]] = {
    "air-quality": _air_quality_model,
    "loyalty": _loyalty_model,
    "ecommerce": _ecommerce_model,
}


def preset_model(spec: PipelineSpec) -> PresetModel:
    """The generation model for ``spec`` (its interval or prefix may be overridden; the schema decides)."""
    try:
        factory = MODELS[spec.preset]
    except KeyError:
        raise SpecError(
            f"no data generator for preset {spec.preset!r} yet; available: {', '.join(sorted(MODELS))}"
        ) from None
    return factory(spec)


# --------------------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Label:
    """One injected anomaly on one series (an event on several locations is several labels with equal times)."""

    start: datetime  # first anomalous interval start, UTC
    end: datetime  # last anomalous interval start, UTC (inclusive)
    series_id: str  # SeriesKey.id, e.g. 'CO|LOCATION_ID=B-101'
    kind: AnomalyKind
    magnitude: float  # relative change of the normal value at its peak (1.5 = +150 %)

    @property
    def series(self) -> SeriesKey:
        return SeriesKey.parse(self.series_id)

    def covers(self, ts: datetime) -> bool:
        return self.start <= to_utc(ts) <= self.end

    def to_row(self) -> dict[str, str]:
        return {
            "series_id": self.series_id,
            "start": self.start.strftime(OUTPUT_TIMESTAMP_FORMAT),
            "end": self.end.strftime(OUTPUT_TIMESTAMP_FORMAT),
            "kind": self.kind,
            "magnitude": f"{self.magnitude:.3f}",
        }


def effect_factor(kind: str, magnitude: float, index: int, length: int) -> float:
    """Multiplier of the normal value at the ``index``-th (0-based) interval of an anomaly ``length`` long."""
    if kind in ("spike", "shift"):
        return 1.0 + magnitude
    if kind == "drift":
        return 1.0 + magnitude * (index + 1) / max(1, length)
    raise ValueError(f"unknown anomaly kind {kind!r}; choose one of {', '.join(ANOMALY_KINDS)}")


def write_labels(path: Path, labels: Iterable[Label]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        for label in sorted(labels):
            writer.writerow(label.to_row())
            n += 1
    return n


def read_labels(path: Path) -> list[Label]:
    """Read a ``labels.csv`` written by :func:`write_labels`; a malformed line raises with its line number."""
    out: list[Label] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(LABEL_COLUMNS)}, got {reader.fieldnames}")
        for row in reader:
            try:
                kind = row["kind"]
                if kind not in LABEL_KINDS:
                    raise ValueError(f"unknown kind {kind!r}")
                SeriesKey.parse(row["series_id"])
                out.append(
                    Label(
                        start=parse_timestamp(row["start"]),
                        end=parse_timestamp(row["end"]),
                        series_id=row["series_id"],
                        kind=kind,  # type: ignore[arg-type]
                        magnitude=float(row["magnitude"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path} line {reader.line_num}: {exc}") from None
    return out


# --------------------------------------------------------------------------------------------------------------
# Planning anomalies
# --------------------------------------------------------------------------------------------------------------
Entities = int | Sequence[str] | Sequence[tuple[str, ...]]


def resolve_entities(spec: PipelineSpec, entities: Entities) -> list[tuple[str, ...]]:
    """An entity count (named by the preset) or explicit names (one string per entity for one dimension)."""
    if isinstance(entities, int):
        if entities < 1:
            raise ValueError("at least one location is required")
        return preset_model(spec).entities(entities)
    out = [(e,) if isinstance(e, str) else tuple(e) for e in entities]
    if not out:
        raise ValueError("at least one location is required")
    for e in out:
        if len(e) != len(spec.dimensions):
            raise ValueError(f"entity {e} does not have one value per dimension {spec.dimensions}")
    if len(set(out)) != len(out):
        raise ValueError("entity names must be unique")
    return out


def _durations(kind: str, step: int) -> tuple[int, int]:
    hour = max(1, 3600 // step)
    if kind == "spike":
        return 1, 1 if step >= 3600 else 2
    if kind == "shift":
        return max(3, hour), max(6, 6 * hour)
    return max(4, 2 * hour), max(8, 12 * hour)


def _magnitude(kind: str, rng: random.Random) -> float:
    if kind == "spike":
        return round(rng.uniform(1.0, 2.5), 3)
    if kind == "shift":
        return round(rng.uniform(0.5, 1.0) if rng.random() < 0.7 else -rng.uniform(0.4, 0.6), 3)
    return round(rng.uniform(0.6, 1.5), 3)


def plan_anomalies(
    spec: PipelineSpec,
    start: datetime,
    end: datetime,
    locations: Entities,
    seed: int | str,
    count: int,
    kinds: Sequence[str] = ANOMALY_KINDS,
    not_before: datetime | None = None,
    multi_probability: float = 0.3,
    max_multi: int = 3,
) -> list[Label]:
    """Plan ``count`` anomaly events in ``[not_before or start, end)``: deterministic for a seed.

    Each event picks a kind, a measure and one entity (or, with ``multi_probability``, 2..``max_multi`` entities
    at once, like a city-wide pollution episode) and yields one :class:`Label` per affected series. Events on the
    same series never overlap and keep a gap of a few intervals, so each label is a separate detection target.
    """
    for k in kinds:
        if k not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly kind {k!r}; choose from {', '.join(ANOMALY_KINDS)}")
    if count < 0:
        raise ValueError("the anomaly count must not be negative")
    if count == 0:
        return []
    if not kinds:
        raise ValueError("at least one anomaly kind is required")
    step = interval_seconds(spec.interval)
    ents = resolve_entities(spec, locations)
    first = floor_to_interval(start, step)
    lo_ts = floor_to_interval(max(to_utc(not_before), first) if not_before else first, step)
    total = int((to_utc(end) - first).total_seconds() // step)
    lo = int((lo_ts - first).total_seconds() // step)
    if total - lo < 1:
        raise ValueError("the time range is too short to place anomalies")
    rng = random.Random(f"{seed}:anomalies")
    busy: dict[str, list[tuple[int, int]]] = {}
    labels: list[Label] = []
    for _ in range(count):
        for _attempt in range(200):
            kind = rng.choice(list(kinds))
            measure = rng.choice(spec.measure_names)
            n_ent = 1
            if len(ents) > 1 and rng.random() < multi_probability:
                n_ent = rng.randint(2, min(max_multi, len(ents)))
            chosen = rng.sample(range(len(ents)), n_ent)
            dmin, dmax = _durations(kind, step)
            length = min(rng.randint(dmin, dmax), total - lo)
            s = rng.randint(lo, total - length)
            e = s + length - 1
            pad = max(3, length)
            ids = [SeriesKey.of(measure, spec, ents[c]).id for c in chosen]
            if any(s - pad <= be and e + pad >= bs for i in ids for bs, be in busy.get(i, [])):
                continue
            magnitude = _magnitude(kind, rng)
            t0 = first + timedelta(seconds=s * step)
            t1 = first + timedelta(seconds=e * step)
            for i in ids:
                busy.setdefault(i, []).append((s, e))
                labels.append(Label(t0, t1, i, kind, magnitude))  # type: ignore[arg-type]
            break
        else:
            raise ValueError(
                f"cannot place {count} non-overlapping anomalies in this range; use fewer anomalies, "
                "more locations or more days"
            )
    return sorted(labels)


# --------------------------------------------------------------------------------------------------------------
# Generating rows
# --------------------------------------------------------------------------------------------------------------
def _daily_shape(hour: float, peaks: tuple[float, ...]) -> float:
    """Between about -1 (night) and +1 (at a peak)."""
    bump = 0.0
    for p in peaks:
        d = abs(hour - p) % 24.0
        d = min(d, 24.0 - d)
        bump += math.exp(-0.5 * (d / 2.5) ** 2)
    return 2.0 * min(bump, 1.0) - 1.0


def _weekly_factor(weekday: int, weekly: float) -> float:
    return {5: 1.0 - 0.6 * weekly, 6: 1.0 - weekly}.get(weekday, 1.0)


def _seed_rng(seed: int | str, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def generate_rows(
    spec: PipelineSpec,
    start: datetime,
    end: datetime | None,
    locations: Entities,
    seed: int | str,
    anomalies: Sequence[Label] = (),
    trend_origin: datetime | None = None,
    missing: bool = True,
) -> Iterator[Row]:
    """The fast path: one tuple per record, interval by interval, entities in order (``end=None``: endless).

    ``trend_origin`` (default ``start``) anchors the trend so a live stream continues the history it follows.
    Noise, levels and gaps are deterministic for ``(seed, start)``. No record of an anomalous interval is dropped
    as missing, so every label has data.
    """
    model = preset_model(spec)
    step = interval_seconds(spec.interval)
    ents = resolve_entities(spec, locations)
    first = floor_to_interval(start, step)
    origin = to_utc(trend_origin) if trend_origin else first
    measures = [model.measures[m] for m in spec.measure_names]
    n_meas = len(measures)

    level_rng = _seed_rng(seed, "levels")  # entity levels do not depend on the window: history and live agree
    levels = [[mm.base * math.exp(level_rng.gauss(0.0, mm.spread)) for mm in measures] for _ in ents]
    rng = _seed_rng(seed, "noise", first.isoformat())
    gauss = rng.gauss
    rand = rng.random
    noise = [mm.noise for mm in measures]

    # Anomalies as (entity index, measure index) -> list of (start index, length, kind, magnitude).
    ent_index = {SeriesKey.of(spec.measure_names[0], spec, e).dimensions: i for i, e in enumerate(ents)}
    plan: list[tuple[int, int, int, int, str, float]] = []
    for lab in anomalies:
        key = lab.series
        if key.measure not in spec.measure_names:
            raise ValueError(f"label {lab.series_id}: {key.measure!r} is not a measure of {spec.preset}")
        ei = ent_index.get(key.dimensions)
        if ei is None:
            raise ValueError(f"label {lab.series_id}: no such entity among the generated ones")
        s = int((floor_to_interval(lab.start, step) - first).total_seconds() // step)
        length = int((floor_to_interval(lab.end, step) - floor_to_interval(lab.start, step)).total_seconds() // step)
        plan.append((ei, spec.measure_names.index(key.measure), s, length + 1, lab.kind, lab.magnitude))

    gaps = [0] * len(ents)
    missing_rate = model.missing_rate if missing else 0.0
    max_gap = model.max_gap
    k = 0
    ts = first
    dt = timedelta(seconds=step)
    stop = to_utc(end) if end is not None else None
    while stop is None or ts < stop:
        ts_text = ts.strftime(OUTPUT_TIMESTAMP_FORMAT)
        hour = ts.hour + ts.minute / 60.0
        days = (ts - origin).total_seconds() / 86400.0
        wd = ts.weekday()
        season = [
            (1.0 + mm.daily * _daily_shape(hour, mm.peaks))
            * _weekly_factor(wd, mm.weekly)
            * (1.0 + mm.trend * days / 30.0)
            for mm in measures
        ]
        s0, s1, s2 = [*season, 0.0, 0.0, 0.0][:3]
        n0, n1, n2 = [*noise, 0.0, 0.0, 0.0][:3]
        effects: dict[int, list[tuple[int, float]]] = {}
        for ei, mi, s, length, kind, mag in plan:
            if s <= k < s + length:
                effects.setdefault(ei, []).append((mi, effect_factor(kind, mag, k - s, length)))
        for ei, lv in enumerate(levels):
            if missing_rate:
                if gaps[ei] and ei not in effects:
                    gaps[ei] -= 1
                    continue
                if rand() < missing_rate and ei not in effects:
                    gaps[ei] = int(rand() * max_gap)
                    continue
            eff = effects.get(ei) if effects else None
            if eff is None and n_meas == 3:  # the common case, unrolled for speed
                v0 = lv[0] * s0 * (1.0 + n0 * gauss())
                v1 = lv[1] * s1 * (1.0 + n1 * gauss())
                v2 = lv[2] * s2 * (1.0 + n2 * gauss())
                yield ts, ts_text, ei, (v0 if v0 > 0.0 else 0.0, v1 if v1 > 0.0 else 0.0, v2 if v2 > 0.0 else 0.0)
                continue
            vals = [lv[i] * season[i] * (1.0 + noise[i] * gauss()) for i in range(n_meas)]
            for mi, factor in eff or ():
                vals[mi] *= factor
            yield ts, ts_text, ei, tuple(v if v > 0.0 else 0.0 for v in vals)
        k += 1
        ts += dt


def generate_records(
    spec: PipelineSpec,
    start: datetime,
    end: datetime | None,
    locations: Entities,
    seed: int | str,
    anomalies: Sequence[Label] = (),
    trend_origin: datetime | None = None,
    missing: bool = True,
) -> Iterator[dict[str, Any]]:
    """Records as dicts in the preset's schema (what a device publishes), rounded like the files."""
    model = preset_model(spec)
    ents = resolve_entities(spec, locations)
    names = spec.measure_names
    decimals = [model.measures[m].decimals for m in names]
    rows: Iterable[Row] = generate_rows(spec, start, end, ents, seed, anomalies, trend_origin, missing)
    if model.expand is not None:
        rows = _expanded(rows, model, seed)
    for _ts, ts_text, ei, vals in rows:
        rec: dict[str, Any] = {spec.timestamp_column: ts_text}
        rec.update(zip(spec.dimensions, ents[ei], strict=True))
        for name, v, d in zip(names, vals, decimals, strict=True):
            rec[name] = round(v, d) if d else round(v)
        yield rec


def _expanded(rows: Iterable[Row], model: PresetModel, seed: int | str) -> Iterator[Row]:
    assert model.expand is not None
    rng = _seed_rng(seed, "expand")
    for row in rows:
        yield from model.expand(row, rng)


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------
def _templates(spec: PipelineSpec, model: PresetModel) -> tuple[str, str]:
    """printf templates of a JSON line and a CSV line: (timestamp, entity part, *values)."""
    fmts = [f"%.{model.measures[m].decimals}f" for m in spec.measure_names]
    json_vals = ",".join(f"{json.dumps(m)}:{f}" for m, f in zip(spec.measure_names, fmts, strict=True))
    json_tpl = "{" + json.dumps(spec.timestamp_column).replace("%", "%%") + ':"%s",%s' + json_vals + "}\n"
    csv_tpl = "%s,%s" + ",".join(fmts) + "\n"
    return json_tpl, csv_tpl


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_records(
    path: Path,
    spec: PipelineSpec,
    rows: Iterable[Row],
    entities: Sequence[tuple[str, ...]],
    fmt: Literal["jsonl", "csv"],
    seed: int | str = 0,
) -> int:
    """Stream rows to ``path`` as JSON lines or CSV (with a header); returns the number of records written."""
    model = preset_model(spec)
    if model.expand is not None:
        rows = _expanded(rows, model, seed)
    json_tpl, csv_tpl = _templates(spec, model)
    if fmt == "jsonl":
        tpl = json_tpl
        parts = [
            "".join(f"{json.dumps(d)}:{json.dumps(v)}," for d, v in zip(spec.dimensions, e, strict=True))
            for e in entities
        ]
    else:
        tpl = csv_tpl
        parts = ["".join(_csv_field(v) + "," for v in e) for e in entities]
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="", buffering=1 << 20) as fh:
        if fmt == "csv":
            fh.write(",".join([spec.timestamp_column, *spec.dimensions, *spec.measure_names]) + "\n")
        write = fh.write
        buf: list[str] = []
        for _ts, ts_text, ei, vals in rows:
            buf.append(tpl % (ts_text, parts[ei], *vals))
            if len(buf) >= 4096:
                write("".join(buf))
                n += len(buf)
                buf.clear()
        write("".join(buf))
        n += len(buf)
    return n


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a generated (or user-supplied) file: JSON lines (``.json``/``.jsonl``) or CSV, streamed.

    CSV values stay strings (``records.validate`` parses numbers); a JSON line that does not parse raises with
    its line number rather than being skipped.
    """
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
        return
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {lineno}: not JSON ({exc.msg})") from None
            yield obj


@dataclass(frozen=True)
class DatasetSummary:
    out_dir: Path
    history_start: datetime
    live_start: datetime
    live_end: datetime
    entities: list[tuple[str, ...]]
    history_records: int
    live_records: int
    labels: list[Label]

    @property
    def history_file(self) -> Path:
        return self.out_dir / HISTORY_FILE

    @property
    def live_file(self) -> Path:
        return self.out_dir / LIVE_FILE

    @property
    def labels_file(self) -> Path:
        return self.out_dir / LABELS_FILE


HISTORY_FILE = "historical_data.json"
LIVE_FILE = "live_data.csv"
LABELS_FILE = "labels.csv"


def generate_dataset(
    out_dir: Path,
    spec: PipelineSpec,
    days: float,
    locations: Entities,
    seed: int | str,
    live_start: datetime | None = None,
    live_hours: float = 6.0,
    anomalies: int | None = None,
    live_anomalies: int = 1,
    warmup_fraction: float = 0.25,
    kinds: Sequence[str] = ANOMALY_KINDS,
) -> DatasetSummary:
    """Write ``historical_data.json`` (``days`` before ``live_start``), ``live_data.csv`` (from ``live_start``,
    default now) and ``labels.csv`` into ``out_dir``. History anomalies avoid the first ``warmup_fraction``.
    """
    if days <= 0:
        raise ValueError("--days must be positive")
    if live_hours < 0:
        raise ValueError("--live-hours must not be negative")
    step = interval_seconds(spec.interval)
    ents = resolve_entities(spec, locations)
    live0 = floor_to_interval(live_start or datetime.now(UTC), step)
    hist0 = floor_to_interval(live0 - timedelta(days=days), step)
    live1 = live0 + timedelta(seconds=math.ceil(live_hours * 3600 / step) * step)
    if anomalies is None:
        anomalies = max(1, round(days / 3))
    warm = hist0 + (live0 - hist0) * warmup_fraction
    labels = plan_anomalies(spec, hist0, live0, ents, seed, anomalies, kinds, not_before=warm)
    if live_anomalies and live1 > live0:
        labels += plan_anomalies(spec, live0, live1, ents, f"{seed}:live", live_anomalies, kinds)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_hist = write_records(
        out_dir / HISTORY_FILE, spec, generate_rows(spec, hist0, live0, ents, seed, labels), ents, "jsonl", seed
    )
    n_live = write_records(
        out_dir / LIVE_FILE,
        spec,
        generate_rows(spec, live0, live1, ents, seed, labels, trend_origin=hist0),
        ents,
        "csv",
        seed,
    )
    write_labels(out_dir / LABELS_FILE, labels)
    return DatasetSummary(out_dir, hist0, live0, live1, ents, n_hist, n_live, sorted(labels))
