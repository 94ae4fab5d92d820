"""Detector core: quiet on constant data, loud on spikes, causal, deterministic, resumable, feedback honoured."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.detector import Detector, DetectorConfig, NonFiniteValueError
from sentinel_core.model import PointScore, SeriesKey

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STEP = 300
KEY = SeriesKey("CO", (("LOCATION_ID", "B-101"),))


def at(i: int) -> datetime:
    return T0 + timedelta(seconds=STEP * i)


def run(values: list[float | None], det: Detector | None = None, offset: int = 0) -> list[PointScore | None]:
    det = det or Detector(STEP)
    out: list[PointScore | None] = []
    for i, v in enumerate(values):
        pts = det.score(at(offset + i), {} if v is None else {KEY: v})
        out.append(pts[0] if pts else None)
    return out


def noise(n: int, seed: int = 1, mean: float = 10.0, sd: float = 1.0) -> list[float]:
    rnd = random.Random(seed)
    return [rnd.gauss(mean, sd) for _ in range(n)]


def test_warm_up_scores_zero_and_says_so() -> None:
    cfg = DetectorConfig(learning_seconds=0)
    scores = run([float(v) for v in noise(cfg.warmup_intervals + 5)], Detector(STEP, cfg))
    first = [p for p in scores[: cfg.warmup_intervals] if p is not None]
    assert all(p.warming_up and p.score == 0 for p in first)
    assert all(p is not None and not p.warming_up for p in scores[cfg.warmup_intervals + 1 :])


def test_a_sub_daily_series_reports_nothing_on_its_first_day_then_alerts() -> None:
    """The learning day: before a day was seen a daily cycle cannot be told from an anomaly, so a series with a
    daily profile scores 0 (warming_up) for a day while it learns; then the same spike alerts."""
    day = 86400 // STEP
    values: list[float | None] = [float(v) for v in noise(2 * day)]
    values[day // 2] = values[day + day // 2] = 30.0  # 20 sigma, once on each day
    scores = run(values)
    first, second = scores[:day], scores[day:]
    assert all(p is not None and p.warming_up and p.score == 0 for p in first)
    assert all(p is not None and not p.warming_up for p in second)
    assert (second[day // 2] or first[0]).score >= 90
    # without a daily profile (seasonality off) only the 24-point warm-up applies
    flat = run(values, Detector(STEP, DetectorConfig(seasonality="off")))
    assert flat[day // 2] is not None and flat[day // 2].score >= 90  # type: ignore[union-attr]


@given(value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), n=st.integers(30, 400))
@settings(max_examples=40, deadline=None)
def test_constant_series_never_alerts(value: float, n: int) -> None:
    assert all(p is not None and p.score == 0 for p in run([value] * n))


# sigma never falls below DetectorConfig.min_scale_rel (0.1 %) of the level, so that a constant or nearly
# constant series stays quiet: at level 50 the property holds from sd 0.05 on (below it, see the next test).
@given(seed=st.integers(0, 10_000), sd=st.floats(0.05, 100.0))
@settings(max_examples=30, deadline=None)
def test_ten_sigma_spike_after_warm_up_alerts(seed: int, sd: float) -> None:
    values = noise(400, seed, 50.0, sd)
    values.append(50.0 + 10 * sd)
    last = run([float(v) for v in values])[-1]
    assert last is not None and last.score >= 90, last


def test_a_deviation_below_the_relative_scale_floor_is_not_alerted() -> None:
    """Found by hypothesis (seed 111, sd 0.0117 at level 50): 10 sd is 0.23 % of the level, under 3 floored
    sigmas — by design the detector does not alert on changes that small relative to the level."""
    values = noise(400, 111, 50.0, 0.01171875)
    values.append(50.0 + 10 * 0.01171875)
    last = run([float(v) for v in values])[-1]
    assert last is not None and last.score < 90


@given(values=st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=300))
@settings(max_examples=60, deadline=None)
def test_scores_within_0_and_100(values: list[float]) -> None:
    for p in run([float(v) for v in values]):
        assert p is not None and 0.0 <= p.score <= 100.0 and math.isfinite(p.expected)


def test_deterministic_and_state_round_trip_mid_stream() -> None:
    values: list[float | None] = [float(v) for v in noise(900, 7)]
    values[500] = 40.0
    values[600:610] = [None] * 10  # a gap
    a = run(values)
    b = run(values)
    assert a == b
    det = Detector(STEP)
    head = run(values[:450], det)
    state = json.loads(json.dumps(det.to_state()))  # really JSON
    resumed = Detector.from_state(state)
    assert resumed.last_interval == at(449)
    tail = run(values[450:], resumed, offset=450)
    assert head + tail == a


def test_spike_does_not_poison_the_baseline() -> None:
    values = [float(v) for v in noise(500, 3)]
    values[400] = 1000.0
    scores = run(values)
    assert scores[400] is not None and scores[400].score >= 90
    after = scores[401]
    assert after is not None and abs(after.expected - 10.0) < 1.0


def test_level_shift_is_learned_after_a_while() -> None:
    values = [float(v) for v in noise(400, 5)] + [float(v) for v in noise(300, 6, mean=30.0)]
    scores = run(values)
    assert max(p.score for p in scores[400:405] if p is not None) >= 90
    assert all(p is not None and p.score < 50 for p in scores[600:])


def test_daily_seasonality_is_learned() -> None:
    per_day = 86400 // STEP
    rnd = random.Random(9)
    values = [10 + 8 * math.sin(2 * math.pi * i / per_day) + rnd.gauss(0, 0.3) for i in range(per_day * 6)]
    scores = run([float(v) for v in values])
    late = [p for p in scores[per_day * 4 :] if p is not None]
    assert sum(p.score >= 70 for p in late) <= 2
    assert all(abs(p.expected - p.value) < 3 for p in late)


def test_missing_intervals_and_out_of_order() -> None:
    det = Detector(STEP)
    run([1.0, 2.0, None, None, 1.5], det)
    assert det.score(at(100), {KEY: 1.2})
    with pytest.raises(ValueError, match="causal"):
        det.score(at(50), {KEY: 1.0})
    with pytest.raises(ValueError, match="start of"):
        det.score(at(101) + timedelta(seconds=7), {KEY: 1.0})
    with pytest.raises(NonFiniteValueError) as err:
        det.score(at(102), {KEY: float("nan")})
    assert err.value.keys == [KEY]
    assert det.score(at(102), {KEY: 1.1})  # nothing was learned from the refused interval


def test_stale_series_expire() -> None:
    det = Detector(STEP, DetectorConfig(expire_after_seconds=3600))
    other = SeriesKey("CO", (("LOCATION_ID", "A-1"),))
    det.score(at(0), {KEY: 1.0, other: 2.0})
    for i in range(1, 20):
        det.score(at(i), {KEY: 1.0})
    assert det.series_ids() == [KEY.id]


def feedback_case(is_anomaly: bool) -> tuple[float, float]:
    """Score of a repeated +6 step before and after feedback on the first one."""
    det = Detector(STEP)
    values = [float(v) for v in noise(400, 11)]
    run(values, det)
    first = det.score(at(400), {KEY: 19.0})[0]
    det.apply_feedback(KEY.id, at(400), is_anomaly)
    gap = DetectorConfig().cooldown_intervals + 30  # after the alert cool-down
    run([float(v) for v in noise(gap, 12)], det, offset=401)
    again = det.score(at(401 + gap), {KEY: 19.0})[0]
    return first.score, again.score


def test_feedback_not_anomaly_is_learned_and_widens_the_band() -> None:
    first, again = feedback_case(is_anomaly=False)
    assert first >= 70
    assert again < 50


def test_feedback_is_anomaly_keeps_it_anomalous() -> None:
    first, again = feedback_case(is_anomaly=True)
    assert first >= 70 and again >= 70


def test_feedback_on_unknown_series() -> None:
    assert Detector(STEP).apply_feedback("nope", T0, False) is False


def test_daily_interval_uses_day_of_week_and_config_validation() -> None:
    det = Detector(86400)
    rnd = random.Random(2)
    for d in range(70):
        weekend = (T0 + timedelta(days=d)).weekday() >= 5
        det.score(T0 + timedelta(days=d), {KEY: (3.0 if weekend else 10.0) + rnd.gauss(0, 0.1)})
    (p,) = det.score(T0 + timedelta(days=70), {KEY: 10.0 if (T0 + timedelta(days=70)).weekday() < 5 else 3.0})
    assert p.score < 50
    with pytest.raises(ValueError):
        DetectorConfig(warmup_intervals=1)
    with pytest.raises(ValueError):
        Detector(0)


# derandomize: the same 25 examples on every run, so CI is reproducible; the one counter-example found so far is
# kept below as a strict expected failure, documenting the limit instead of hiding it.
@given(seed=st.integers(0, 10_000), sd=st.floats(0.01, 100.0))
@settings(max_examples=25, deadline=None, derandomize=True)
def test_six_sigma_after_warm_up_is_anomalous_while_plain_noise_is_not(seed: int, sd: float) -> None:
    values = noise(600, seed, 50.0, sd)
    scores = run([float(v) for v in values] + [50.0 + 6 * sd])
    # once the surprise calibration settled (its first ~100 points can still over-react, a known limit), noise
    # alerts only on its own rare tail values (beyond 4 sigma happens about once in 16,000 draws)
    settled = zip(scores[150:-1], values[150:], strict=True)
    assert all(p is not None and (p.score < 70 or abs(v - 50.0) > 4 * sd) for p, v in settled)
    # the point is 6 true sigmas but the detector's own sigma estimate can run ~20 % high (then it is ~5 of its sigmas)
    last = scores[-1]
    assert last is not None and last.score >= 50, last


def test_six_sigma_counter_example_found_by_hypothesis() -> None:
    # seed 2550 once scored this 6-sigma point 9 (the empirical tail held it back after 3 earlier surprises)
    values = noise(600, 2550, 50.0, 1.0)
    last = run([float(v) for v in values] + [56.0])[-1]
    assert last is not None and last.score >= 50, last


def test_six_sigma_scores_high_on_most_series() -> None:
    finals = []
    for seed in range(15):
        scores = run([float(v) for v in noise(600, seed, 50.0, 2.0)] + [62.0])
        last = scores[-1]
        assert last is not None
        finals.append(last.score)
    assert sorted(finals)[len(finals) // 2] >= 90 and min(finals) >= 75, finals


def test_daily_series_warm_up_in_two_weeks() -> None:
    det = Detector(86400)
    rnd = random.Random(4)
    pts = [det.score(T0 + timedelta(days=d), {KEY: 10 + rnd.gauss(0, 0.5)})[0] for d in range(15)]
    assert [p.warming_up for p in pts] == [True] * 14 + [False]
