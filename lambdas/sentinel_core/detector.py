"""The built-in detector: an online, seasonal, robust per-series model with calibrated 0-100 severities.

One *series* is one measure for one combination of dimension values, already aggregated per interval. For every
interval ``Detector.score`` first scores each value from the state built on EARLIER intervals only (so a backtest
predicts live behaviour), then learns from it. Per series the model keeps:

* a **level** (robust exponential smoothing of the de-seasonalised value, residuals winsorised at ``clip_z`` sigma)
  and a **scale** (smoothed absolute residual, i.e. a robust sigma);
* a **seasonal profile** (time of day for sub-daily intervals, day of week for daily ones), indexed by the
  interval's absolute time so gaps never shift it. It is used only once two periods were seen AND it predicts
  better than a flat level (seasonality is *detected*, or forced/disabled by ``DetectorConfig.seasonality``);
* **calibration** of its own surprise: the running mean/variance of the point surprise ``|z|`` and of its short
  moving average. The severity is the tail probability of the current surprise (spike) or of the recent average
  (a change of distribution: a level shift, a variance change, a flat-lined signal) turned into 0-100 on a log
  scale, so one threshold means the same on a quiet and on a noisy series;
* **level-shift handling**: ``shift_intervals`` consecutive deviations on the same side become the new level
  (the series stops alerting forever after a deliberate change);
* an **alert cool-down**: after a point reaches ``alert_score`` the following severities are lowered for
  ``cooldown_intervals`` (only the first detection of an anomaly matters; a bigger one still gets through);
* the points kept out of the baseline (score >= ``exclude_score``), so that feedback can teach them later.

Anomalous points do not update the level or profile. Feedback "not an anomaly" learns the held point as normal and
widens the band so the same deviation no longer alerts; "is anomaly" keeps it out (and out of level-shift learning).
Missing intervals are simply absent; a series silent for ``expire_after_seconds`` is dropped from the state.

Standard library only, deterministic (no randomness, insertion order independent), state is plain JSON.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sentinel_core.intervals import to_utc
from sentinel_core.model import PointScore, SeriesKey

STATE_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SQRT2 = math.sqrt(2.0)
_MAD_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation for Gaussian residuals
Seasonality = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class DetectorConfig:
    """Tunables of the detector. Defaults are general-purpose; every series gets the same ones."""

    warmup_intervals: int = 24  # points per series scored 0 (warming_up) while the model starts ...
    warmup_max_seconds: int = 14 * 86400  # ... at most this long (a daily series warms up in 14 days, not 24)
    level_alpha: float = 0.04  # level smoothing per interval
    scale_alpha: float = 0.03  # smoothing of the absolute residual (robust sigma)
    season_gamma: float = 0.3  # smoothing of each seasonal bucket (updated once per period)
    seasonality: Seasonality = "auto"
    season_min_periods: float = 2.0  # periods seen before the profile may be used
    season_gain: float = 0.85  # the profile is used when its error is below this fraction of the flat error
    max_season_buckets: int = 288  # resolution cap of the profile (288 = 5-minute buckets over a day)
    clip_z: float = 3.0  # residuals are winsorised at this many sigmas when learning
    band_z: float = 3.0  # PointScore.lower/upper = expected -+ band_z sigma
    exclude_score: float = 50.0  # points at or above this severity do not update the baseline
    shift_z: float = 3.0  # a deviation beyond this many sigmas counts towards a level shift
    shift_intervals: int = 48  # consecutive same-side deviations after which the new level is learned
    short_window: int = 18  # intervals in the moving average of surprise (changes of distribution)
    stats_alpha: float = 0.004  # smoothing of the surprise calibration
    hist_alpha: float = 0.001  # ... and of its histogram (slower: a spike recurring daily is learned as usual)
    surprise_cap: float = 30.0  # cap of the (log) surprise when calibrating
    alert_score: float = 70.0  # a point at or above this starts the cool-down
    cooldown_intervals: int = 72
    cooldown_penalty: float = 60.0  # severity removed at the start of the cool-down, fading linearly
    # Robust-sigma test beside the calibrated one: the Gaussian tail of |z| / z_scale. A clear 6-sigma excursion on
    # a quiet series scores >= 80 even when its own surprise history is short; a series that often shows such
    # deviations is held back by the empirical tail (min of both).
    z_scale: float = 1.15
    tail_floor: float = 1.5  # -log10(tail probability) mapped to severity 0 ...
    tail_ceiling: float = 6.0  # ... and to severity 100 (one in a million)
    min_scale_abs: float = 1e-9
    min_scale_rel: float = 1e-3  # sigma is at least this fraction of |level| (constant series stay quiet)
    held_points: int = 16  # anomalous points remembered per series for feedback
    expire_after_seconds: int = 7 * 86400
    # Long intervals: the cool-down and the level-shift run are also capped in time (a daily series re-alerts after
    # a day or two and learns a new level within three days, not after 72 / 24 days).
    cooldown_max_seconds: int = 86400
    shift_max_seconds: int = 3 * 86400  # a series silent this long is dropped from the state

    def __post_init__(self) -> None:
        if self.z_scale <= 0:
            raise ValueError("z_scale must be positive")
        if self.warmup_intervals < 2:
            raise ValueError("warmup_intervals must be at least 2")
        for name in ("level_alpha", "scale_alpha", "season_gamma", "stats_alpha", "hist_alpha"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within (0, 1]")
        if self.seasonality not in ("auto", "on", "off"):
            raise ValueError("seasonality must be auto, on or off")
        if self.tail_ceiling <= self.tail_floor:
            raise ValueError("tail_ceiling must exceed tail_floor")
        if self.short_window < 1 or self.shift_intervals < 1 or self.max_season_buckets < 1:
            raise ValueError("short_window, shift_intervals and max_season_buckets must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_HIST_BINS = 32
_HIST_WIDTH = 0.5  # bins of log1p(|z|)
_EMP_MIN_EVENTS = 3


def _emp_tail(hist: array[float], a: float, min_mass: float) -> float:
    """-log10 of the share of past surprises at least as large as ``a``; infinite when fewer than about
    ``_EMP_MIN_EVENTS`` such surprises were seen (``min_mass``: their decayed weight), so one earlier spike does
    not make the next one ordinary."""
    total = sum(hist)
    upper = sum(hist[min(_HIST_BINS - 1, int(a / _HIST_WIDTH)) :])
    if upper < min_mass or total <= 0:
        return math.inf
    return -math.log10(min(1.0, upper / total))


def _tail(z: float) -> float:
    """-log10 of the upper Gaussian tail probability P(Z > z); large z handled without underflow."""
    if z < 30:
        p = 0.5 * math.erfc(z / _SQRT2)
        if p > 0:
            return -math.log10(p)
    # asymptotic: log P ~ -z^2/2 - log(z sqrt(2 pi))
    return (z * z / 2.0 + math.log(z * math.sqrt(2 * math.pi))) / math.log(10)


class _Series:
    """State of one series (slots and an array keep it small: see benchmarks/detector.py)."""

    __slots__ = (
        "am",
        "av",
        "bm",
        "bv",
        "cool",
        "err_f",
        "err_s",
        "flat",
        "held",
        "hist",
        "last",
        "level",
        "mad",
        "n",
        "recent",
        "run",
        "run_s",
        "run_sum",
        "season",
    )

    def __init__(self, last: int, value: float, buckets: int) -> None:
        self.last = last  # index of the last interval with a value
        self.n = 0  # values learned
        self.level = value
        self.flat = value
        self.mad = 0.0
        self.err_s = 0.0
        self.err_f = 0.0
        self.season: array[float] | None = array("d", [math.nan]) * buckets if buckets > 1 else None
        self.am = 0.0  # mean / variance of the point surprise
        self.av = 0.0
        self.bm = 0.0  # mean / variance of the short moving average of surprise
        self.bv = 0.0
        self.recent: list[float] = []
        self.hist = array("d", [0.0]) * _HIST_BINS  # decayed histogram of the surprise (empirical tail)
        self.run = 0  # signed count of consecutive same-side deviations
        self.run_sum = 0.0  # sum of the flat model's residuals over the run
        self.run_s = 0.0  # ... and of the seasonal model's
        self.cool = 0
        self.held: list[list[float]] = []  # [interval index, value, residual, surprise, confirmed 0/1]

    def to_list(self) -> list[Any]:
        season = None if self.season is None else [None if math.isnan(v) else v for v in self.season]
        return [
            self.last,
            self.n,
            self.level,
            self.flat,
            self.mad,
            self.err_s,
            self.err_f,
            season,
            self.am,
            self.av,
            self.bm,
            self.bv,
            list(self.recent),
            list(self.hist),
            self.run,
            self.run_sum,
            self.run_s,
            self.cool,
            [list(h) for h in self.held],
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> _Series:
        s = cls.__new__(cls)
        (
            s.last,
            s.n,
            s.level,
            s.flat,
            s.mad,
            s.err_s,
            s.err_f,
            season,
            s.am,
            s.av,
            s.bm,
            s.bv,
            recent,
            hist,
            s.run,
            s.run_sum,
            s.run_s,
            s.cool,
            held,
        ) = data
        s.last, s.n, s.run, s.cool = int(s.last), int(s.n), int(s.run), int(s.cool)
        s.season = None if season is None else array("d", [math.nan if v is None else float(v) for v in season])
        s.recent = [float(v) for v in recent]
        s.hist = array("d", [float(v) for v in hist])
        s.held = [[float(x) for x in h] for h in held]
        return s


class Detector:
    """Online anomaly detector for many series sharing one interval. See the module doc."""

    def __init__(self, interval_seconds: int, config: DetectorConfig | None = None) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be positive, got {interval_seconds}")
        self.interval_seconds = int(interval_seconds)
        self.config = config or DetectorConfig()
        self._series: dict[str, _Series] = {}
        self._last: int | None = None  # index of the last scored interval
        period = 86400 if self.interval_seconds < 86400 else 7 * 86400
        bucket = max(self.interval_seconds, -(-period // self.config.max_season_buckets))
        self._period = period
        self._bucket_seconds = bucket
        buckets = period // bucket if self.config.seasonality != "off" else 0
        self._buckets = buckets if buckets >= 2 and period % self.interval_seconds == 0 else 0
        self._period_points = period / self.interval_seconds
        cfg = self.config
        self._cooldown = max(1, min(cfg.cooldown_intervals, cfg.cooldown_max_seconds // self.interval_seconds))
        self._warmup = min(cfg.warmup_intervals, max(4, cfg.warmup_max_seconds // self.interval_seconds))
        self._shift = max(3, min(cfg.shift_intervals, cfg.shift_max_seconds // self.interval_seconds))

    # -- time ---------------------------------------------------------------------------------------------------
    def _index(self, ts: datetime) -> int:
        secs = int((to_utc(ts) - _EPOCH).total_seconds())
        if secs % self.interval_seconds:
            raise ValueError(f"{ts.isoformat()} is not the start of a {self.interval_seconds}s interval")
        return secs // self.interval_seconds

    def _start(self, index: int) -> datetime:
        return _EPOCH + timedelta(seconds=index * self.interval_seconds)

    def _bucket(self, index: int) -> int:
        return ((index * self.interval_seconds) % self._period) // self._bucket_seconds

    @property
    def last_interval(self) -> datetime | None:
        """Start of the last interval scored (None before the first)."""
        return None if self._last is None else self._start(self._last)

    @property
    def series_count(self) -> int:
        return len(self._series)

    def has_series(self, series_id: str) -> bool:
        return series_id in self._series

    def series_ids(self) -> list[str]:
        return sorted(self._series)

    # -- scoring ------------------------------------------------------------------------------------------------
    def score(
        self,
        start: datetime,
        values: Mapping[SeriesKey, float],
        on_error: Callable[[SeriesKey, Exception], None] | None = None,
    ) -> list[PointScore]:
        """Score every value of the interval starting at ``start`` from earlier data, then learn from it.

        Intervals must come in increasing order (missing intervals may be skipped: call with the next one that has
        data, or with an empty mapping). Non-finite values are ignored (no score, nothing learned).

        ``on_error`` (the detector Lambda's quarantine): a series whose scoring raises is dropped from the model (its
        state may be half-updated) and reported there, and the other series are scored; without it the error
        propagates.
        """
        idx = self._index(start)
        if self._last is not None and idx <= self._last:
            raise ValueError(
                f"interval {start.isoformat()} is not after the last scored one "
                f"({self._start(self._last).isoformat()}): scores are causal, intervals must come in order"
            )
        ts = self._start(idx)
        out: list[PointScore] = []
        for key in sorted(values):
            value = float(values[key])
            if not math.isfinite(value):
                continue
            if on_error is None:
                out.append(self._score_one(key, idx, ts, value))
                continue
            try:
                out.append(self._score_one(key, idx, ts, value))
            except Exception as exc:  # one series must not stop the others (see on_error)
                self._series.pop(key.id, None)
                on_error(key, exc)
        self._last = idx
        self._expire(idx)
        return out

    def _expire(self, idx: int) -> None:
        horizon = self.config.expire_after_seconds // self.interval_seconds
        if horizon <= 0:
            return
        stale = [sid for sid, s in self._series.items() if idx - s.last > horizon]
        for sid in stale:
            del self._series[sid]

    def _score_one(self, key: SeriesKey, idx: int, ts: datetime, x: float) -> PointScore:
        cfg = self.config
        sid = key.id
        s = self._series.get(sid)
        if s is None:
            s = self._series[sid] = _Series(idx, x, self._buckets)
            self._learn_warmup(s, idx, x, 0.0, 0.0)
            return PointScore(key, ts, x, x, x, x, 0.0, True)
        gap = idx - s.last
        if gap > 1:
            s.cool = max(0, s.cool - (gap - 1))
            if gap > cfg.short_window:
                s.recent.clear()
        s.last = idx
        b = self._bucket(idx)
        pred = s.flat
        if s.season is not None and self._season_active(s):
            o = s.season[b]
            pred = s.level + (0.0 if math.isnan(o) else o)
        sigma = max(_MAD_TO_SIGMA * s.mad, cfg.min_scale_abs, cfg.min_scale_rel * abs(s.level))
        r = x - pred
        z = r / sigma
        a = math.log1p(min(abs(z), 1e12))  # surprise on a log scale: heavy tails calibrate well
        lower, upper = pred - cfg.band_z * sigma, pred + cfg.band_z * sigma
        if s.n < self._warmup:
            self._learn_warmup(s, idx, x, r, a)
            return PointScore(key, ts, x, pred, lower, upper, 0.0, True)

        # Calibrated surprise: the point itself, and the short moving average (change of distribution).
        sd_a = math.sqrt(s.av) + 1e-3
        k = cfg.short_window
        window = s.recent[-(k - 1) :] if k > 1 else []
        avg = (sum(window) + min(a, cfg.surprise_cap)) / (len(window) + 1)
        sd_b = math.sqrt(s.bv) + 1e-3
        # The point's tail probability is at least the observed frequency of such surprises (a series that
        # spikes every few hours does not alert on every spike), else the Gaussian tail of the calibration.
        t_point = min(
            max(_tail((a - s.am) / sd_a), _tail(abs(z) / cfg.z_scale)),
            _emp_tail(s.hist, a, _EMP_MIN_EVENTS * cfg.hist_alpha * 0.8),
        )
        t_avg = _tail((avg - s.bm) / sd_b) if len(window) + 1 >= k else 0.0
        logp = max(t_point, t_avg) - math.log10(2.0)  # two tests: Bonferroni
        raw = 100.0 * (logp - cfg.tail_floor) / (cfg.tail_ceiling - cfg.tail_floor)
        raw = min(100.0, max(0.0, raw))
        sev = raw
        if s.cool > 0:
            sev = max(0.0, raw - cfg.cooldown_penalty * s.cool / self._cooldown)
            s.cool -= 1
        if sev >= cfg.alert_score:
            s.cool = self._cooldown
        self._learn(s, idx, b, x, r, z, a, avg, sigma, raw)
        return PointScore(key, ts, x, pred, lower, upper, round(sev, 2), False)

    def _season_active(self, s: _Series) -> bool:
        mode = self.config.seasonality
        if mode == "off" or s.season is None:
            return False
        if s.n < self.config.season_min_periods * self._period_points:
            return False
        return mode == "on" or s.err_s < self.config.season_gain * s.err_f

    # -- learning -----------------------------------------------------------------------------------------------
    def _learn_warmup(self, s: _Series, idx: int, x: float, r: float, a: float) -> None:
        """Cold start: running means (weights 1/n) so the first values set the baseline quickly."""
        cfg = self.config
        s.n += 1
        w = 1.0 / s.n
        if s.n > 1:
            s.mad += max(w, cfg.scale_alpha) * (abs(r) - s.mad)
            s.flat += max(w, cfg.level_alpha) * (x - s.flat)
            s.level = s.flat
        if s.season is not None:
            b = self._bucket(idx)
            if math.isnan(s.season[b]):
                s.season[b] = x - s.level
        half = self._warmup // 2
        if s.n > half:  # the scale is usable by now: start calibrating the surprise (not its histogram yet)
            ac = min(a, cfg.surprise_cap)
            self._learn_stats(s, ac, ac, max(1.0 / (s.n - half), cfg.stats_alpha), with_hist=False)
            s.recent.append(ac)
            del s.recent[: -cfg.short_window]

    def _learn_stats(self, s: _Series, a: float, avg: float, w: float, with_hist: bool = True) -> None:
        if with_hist:
            hist = s.hist
            hw = self.config.hist_alpha
            keep = 1.0 - hw
            for i in range(_HIST_BINS):
                hist[i] *= keep
            hist[min(_HIST_BINS - 1, int(a / _HIST_WIDTH))] += hw
        d = a - s.am
        s.am += w * d
        s.av = (1 - w) * (s.av + w * d * d)
        d = avg - s.bm
        s.bm += w * d
        s.bv = (1 - w) * (s.bv + w * d * d)

    def _learn(
        self, s: _Series, idx: int, b: int, x: float, r: float, z: float, a: float, avg: float, sigma: float, raw: float
    ) -> None:
        cfg = self.config
        s.n += 1
        ac = min(a, cfg.surprise_cap)
        excluded = raw >= cfg.exclude_score
        # Level shift: a run of same-side deviations becomes the new level.
        side = 1 if z > cfg.shift_z else -1 if z < -cfg.shift_z else 0
        rf = x - s.flat
        o = s.season[self._bucket(idx)] if s.season is not None else 0.0
        rs = 0.0 if math.isnan(o) else x - s.level - o  # a bucket never seen has no opinion on the level
        if side and (s.run == 0 or (s.run > 0) == (side > 0)):
            s.run += side
            s.run_sum += rf
            s.run_s += rs
        else:
            s.run, s.run_sum, s.run_s = (side, rf, rs) if side else (0, 0.0, 0.0)
        if abs(s.run) >= self._shift:
            n = abs(s.run)
            shift = (s.run_sum if not self._season_active(s) else s.run_s) / n
            s.flat += s.run_sum / n
            s.level += s.run_s / n if s.season is not None else s.run_sum / n
            s.mad = max(s.mad, abs(shift) / (2 * cfg.shift_z * _MAD_TO_SIGMA))
            s.run, s.run_sum, s.run_s = 0, 0.0, 0.0
            s.held = [h for h in s.held if h[4]]  # the run is now normal: no feedback needed on it
            s.recent.clear()
            return
        self._track_errors(s, idx, x)
        if excluded:
            s.held.append([float(idx), x, r, a, 0.0])
            del s.held[: -cfg.held_points]
        self._learn_point(s, idx, x, sigma, 1.0, anomalous=excluded)
        s.recent.append(ac)
        del s.recent[: -cfg.short_window]
        self._learn_stats(s, ac, avg, cfg.stats_alpha)

    def _track_errors(self, s: _Series, idx: int, x: float) -> None:
        """Errors of the flat and of the seasonal prediction (clipped at a common, wide limit), for model choice."""
        cfg = self.config
        cap = 6.0 * max(s.err_f, s.err_s) + cfg.min_scale_abs + cfg.min_scale_rel * abs(s.level)
        s.err_f += cfg.scale_alpha * (min(abs(x - s.flat), cap) - s.err_f)
        if s.season is not None:
            o = s.season[self._bucket(idx)]
            if not math.isnan(o):
                s.err_s += cfg.scale_alpha * (min(abs(x - s.level - o), cap) - s.err_s)

    def _learn_point(
        self, s: _Series, idx: int, x: float, sigma: float, weight: float, anomalous: bool = False
    ) -> None:
        """Learn one value: the seasonal model (level + profile), the flat model and the scale.

        Level and scale take residuals winsorised at ``clip_z`` sigma, so one odd value moves them little, and an
        ``anomalous`` value does not move them at all. The profile bucket of an anomalous value learns at a quarter
        of its rate (a changed daily shape is learned over a few periods; a spike moves its bucket a little, never
        the level), and a bucket seen for the first time takes the value as it is.
        """
        cfg = self.config
        lim = cfg.clip_z * sigma
        la = min(1.0, cfg.level_alpha * weight)
        active = self._season_active(s)
        rs = 0.0
        if s.season is not None:
            b = self._bucket(idx)
            o = s.season[b]
            if math.isnan(o):
                s.season[b] = o = x - s.level
            rs = x - s.level - o
            g = min(1.0, cfg.season_gamma * weight * (0.25 if anomalous else 1.0))
            s.season[b] = o + g * (1.0 - cfg.level_alpha) * rs
            if anomalous:
                return
            rs = max(-lim, min(lim, rs))
            s.level += la * rs
        elif anomalous:
            return
        rf = max(-lim, min(lim, x - s.flat))
        s.flat += la * rf
        if s.season is None:
            s.level = s.flat
        r = rs if active else rf
        s.mad += min(1.0, cfg.scale_alpha * weight) * (abs(r) - s.mad)

    # -- feedback -----------------------------------------------------------------------------------------------
    def apply_feedback(self, series_id: str, timestamp: datetime, is_anomaly: bool) -> bool:
        """Apply a person's verdict on one point; returns False when the series is unknown (expired or never seen).

        ``is_anomaly=False``: the point is learned as normal and the band widened so that the same deviation no
        longer alerts. ``is_anomaly=True``: the point stays out of the baseline and of level-shift learning.
        """
        s = self._series.get(series_id)
        if s is None:
            return False
        idx = self._index(timestamp)
        held = next((h for h in s.held if int(h[0]) == idx), None)
        if is_anomaly:
            if held is not None:
                held[4] = 1.0
                # Forget it as a "usual" surprise: a confirmed anomaly must stay surprising when it repeats.
                b = min(_HIST_BINS - 1, int(min(held[3], self.config.surprise_cap) / _HIST_WIDTH))
                s.hist[b] = max(0.0, s.hist[b] - self.config.hist_alpha)
            s.run, s.run_sum, s.run_s = 0, 0.0, 0.0  # a confirmed anomaly must not become the new level
            return True
        cfg = self.config
        if held is not None:
            s.held.remove(held)
            _, x, r, a, _ = held
            sigma = max(_MAD_TO_SIGMA * s.mad, cfg.min_scale_abs, cfg.min_scale_rel * abs(s.level))
            self._learn_point(s, idx, x, sigma, 3.0)
            # Widen: this residual must now sit inside the band and score below the exclusion level.
            s.mad = max(s.mad, abs(r) / (cfg.shift_z * _MAD_TO_SIGMA))
            s.av = max(s.av, ((min(a, 1e6) - s.am) / 2.0) ** 2)
            # ... and count it as a usual surprise (the empirical tail, which also bounds the robust-sigma test).
            hb = min(_HIST_BINS - 1, int(min(a, cfg.surprise_cap) / _HIST_WIDTH))
            s.hist[hb] += _EMP_MIN_EVENTS * cfg.hist_alpha
        else:
            s.mad *= 1.5
            s.av *= 2.25
        s.cool = 0
        s.run, s.run_sum, s.run_s = 0, 0.0, 0.0
        return True

    # -- persistence --------------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state; ``from_state`` of it continues with identical scores."""
        return {
            "version": STATE_VERSION,
            "interval_seconds": self.interval_seconds,
            "config": self.config.to_dict(),
            "last": self._last,
            "series": {sid: s.to_list() for sid, s in sorted(self._series.items())},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: DetectorConfig | None = None) -> Detector:
        """Rebuild a detector; ``config`` overrides the saved tunables (e.g. after an upgrade)."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"detector state version {state.get('version')!r} is not {STATE_VERSION}")
        cfg = config or DetectorConfig.from_dict(state.get("config", {}))
        det = cls(int(state["interval_seconds"]), cfg)
        det._last = None if state.get("last") is None else int(state["last"])
        for sid, data in state.get("series", {}).items():
            det.load_series(sid, data)
        return det

    # -- per-series state (the seam of the detector Lambda's compact state file: ``sentinel_core.state_file``) ----
    def to_state_header(self) -> dict[str, Any]:
        """``to_state`` without the series (they are written one by one with ``series_state``)."""
        return {
            "version": STATE_VERSION,
            "interval_seconds": self.interval_seconds,
            "config": self.config.to_dict(),
            "last": self._last,
        }

    def series_state(self) -> Iterator[tuple[str, list[Any]]]:
        """(series id, its ``to_state`` list) in id order, one at a time."""
        for sid in sorted(self._series):
            yield sid, self._series[sid].to_list()

    def load_series(self, sid: str, data: list[Any]) -> None:
        """Add one series from its ``to_state`` list (what ``from_state`` does for each)."""
        s = _Series.from_list(data)
        if self._buckets and (s.season is None or len(s.season) != self._buckets):
            s.season = array("d", [math.nan]) * self._buckets
        elif not self._buckets:
            s.season = None
        self._series[sid] = s
