"""The demo's report and planning helpers on small hand-made inputs (fast; the end-to-end run is test_demo.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sentinel_core.spec import get_preset

from simulator import datagen
from simulator.demo import PRESET_DEFAULTS, DemoError, DemoOptions, ReceivedAlert, report
from simulator.demo.air_quality import malformed_payloads, plan_live_anomalies, plan_silent_sensor
from simulator.demo.ecommerce import plan_outages
from simulator.demo.readback import parse_alert
from simulator.demo.scoring import match_detections

SPEC = get_preset("air-quality")
T0 = datetime(2026, 3, 16, tzinfo=UTC)


def _panel(series_id: str, spike_at: int) -> report.SeriesPanel:
    pts = []
    for i in range(48):
        ts = T0 + timedelta(minutes=5 * i)
        value = 10.0 + (25.0 if i == spike_at else (i % 3) * 0.1)
        score = 95.0 if i == spike_at else 3.0
        pts.append(report.SeriesPoint(ts, value, 10.0, 9.0, 11.0, score, i == spike_at, i == spike_at))
    start = T0 + timedelta(minutes=5 * spike_at)
    return report.SeriesPanel(series_id, series_id, "ppm", pts, [report.InjectedWindow(start, start, "spike", 2.5)])


def _data(panels: list[report.SeriesPanel], email: str = "body") -> report.ReportData:
    return report.ReportData(
        title="t",
        subtitle="s",
        parameters=[("seed", "1")],
        summary=[("alerts", "1")],
        detections=[],
        panels=panels,
        alerts=[
            report.AlertEntry(T0, T0, "subject", "sms text", email, 95.0, "CO", "B-101", ("topic: {}",)),
        ],
        bucket="bucket",
        s3_tree=report.prefix_counts([("a/live/20260316/0000/x", 10), ("a/historical/h.json", 5)]),
        errors=[report.ErrorEntry("a/errors/", "not_json: bad", "<oops>")],
    )


def test_report_is_self_contained_with_one_image_per_panel() -> None:
    html = report.render_html(_data([_panel("CO|LOCATION_ID=B-101", 10), _panel("NO2|LOCATION_ID=A-1002", 20)]))
    assert len(re.findall(r"<img ", html)) == 2
    assert html.count("data:image/png;base64,") == 2
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html), "the report must open offline"


def test_report_escapes_texts_and_is_deterministic() -> None:
    data = _data([_panel("CO|LOCATION_ID=B-101", 5)], email="<script>alert(1)</script>")
    first, second = report.render_html(data), report.render_html(data)
    assert first == second
    assert "<script>" not in first and "&lt;script&gt;" in first
    assert "&lt;oops&gt;" in first


def test_tree_counts_objects_per_prefix_and_elides_long_runs() -> None:
    objects = [(f"aq/live/20260316/{m:04d}/obj", 100) for m in range(0, 60, 5)] + [("aq/historical/h.json", 50)]
    nodes = report.prefix_counts(objects)
    by_prefix = {n.prefix: n for n in nodes}
    assert by_prefix["aq/"].objects == 13
    assert by_prefix["aq/live/20260316/"].size == 1200
    tree = report.render_tree("b", nodes)
    assert "… 8 more folders like these" in tree
    assert "live/20260316/" in tree and "0055/" in tree
    assert tree.splitlines()[0].startswith("s3://b/")


def test_live_anomalies_spread_over_the_window_with_every_kind() -> None:
    ents = datagen.resolve_entities(SPEC, 5)
    end = T0 + timedelta(hours=24)
    labels = plan_live_anomalies(SPEC, T0, end, ents, 7, 3)
    assert {lb.kind for lb in labels} == {"spike", "shift", "drift"}
    assert all(T0 <= lb.start <= lb.end < end for lb in labels)
    assert labels == plan_live_anomalies(SPEC, T0, end, ents, 7, 3)
    with pytest.raises(DemoError):
        plan_live_anomalies(SPEC, T0, T0 + timedelta(minutes=10), ents, 7, 5)


def test_malformed_payloads_are_really_malformed() -> None:
    from sentinel_core.records import RecordError, decode_and_validate

    items = malformed_payloads(SPEC, T0, T0 + timedelta(hours=4), ("B-101",), 300)
    assert len(items) == 3
    for m in items:
        assert m.topic == SPEC.telemetry_topic("B-101")
        with pytest.raises(RecordError):
            decode_and_validate(m.payload, SPEC, now=m.at)


def _alert(series: str, interval: datetime, score: float) -> ReceivedAlert:
    import json

    lookout: dict[str, Any] = {
        "alertEventId": "e",
        "anomalyScore": score,
        "impactedMetric": {"metricName": series.split("|")[0]},
        "sentinel": {"intervalStart": interval.isoformat(), "series": [{"timeSeriesId": series, "score": score}]},
    }
    message = json.dumps({"default": json.dumps(lookout), "sms": "short", "email": "long"})
    return parse_alert(message, "subj", interval + timedelta(minutes=7), [])


def test_detections_match_alerts_to_injected_windows() -> None:
    lab = datagen.Label(T0, T0 + timedelta(minutes=5), "CO|LOCATION_ID=B-101", "spike", 2.0)
    missed = datagen.Label(T0, T0, "SO2|LOCATION_ID=B-101", "spike", 2.0)
    alerts = [
        _alert("CO|LOCATION_ID=B-101", T0 + timedelta(minutes=5), 91.0),
        _alert("NO2|LOCATION_ID=A-1002", T0 + timedelta(hours=3), 80.0),
    ]
    rows, false_alerts = match_detections([lab, missed], alerts, 300)
    assert rows[0].detected_at == T0 + timedelta(minutes=12) and rows[0].severity == 91.0
    assert rows[0].minutes_to_detect == 12
    assert rows[1].detected_at is None
    assert false_alerts == 1
    assert alerts[0].sms == "short" and alerts[0].email == "long" and alerts[0].where == "B-101"


def test_a_backtest_summary_is_not_a_false_alert() -> None:
    import json

    summary = {"type": "backtestSummary", "input": "s3://b/loyalty/uploads/x.csv", "reportStart": T0.isoformat(),
               "anomalyGroups": [{"anomalyScore": 97.5}]}  # fmt: skip
    message = json.dumps({"default": json.dumps(summary), "sms": "short", "email": "long"})
    alert = parse_alert(message, "subj", T0, [])
    assert alert.is_summary and alert.severity == 97.5 and alert.series == [] and alert.interval == T0
    assert match_detections([], [alert], 86400) == ([], 0)


def test_every_preset_resolves_its_own_defaults_and_keeps_given_flags() -> None:
    assert DemoOptions.for_preset("air-quality") == DemoOptions()
    loyalty = DemoOptions.for_preset("loyalty")
    assert (loyalty.days, loyalty.locations, loyalty.anomalies) == (365.0, 20, None)
    ecommerce = DemoOptions.for_preset("ecommerce", days=3, locations=4)
    assert (ecommerce.days, ecommerce.hours, ecommerce.locations) == (3, PRESET_DEFAULTS["ecommerce"].hours, 4)
    assert all(d.why for d in PRESET_DEFAULTS.values())
    with pytest.raises(DemoError, match="choose one of"):
        DemoOptions.for_preset("nope")


def test_the_air_quality_defaults_show_a_weekly_cycle_crossing_into_monday() -> None:
    """Issue 15: three weeks of history (the weekly profile is used after two periods) and a live window that crosses
    Sunday -> Monday midnight in the preset's time zone, ending with a location gone silent."""
    d = PRESET_DEFAULTS["air-quality"]
    assert d.days >= 21
    zone = ZoneInfo(SPEC.timezone)
    first, last = d.start.astimezone(zone), (d.start + timedelta(hours=d.hours)).astimezone(zone)
    assert (first.weekday(), last.weekday()) == (6, 0)
    ents = datagen.resolve_entities(SPEC, d.locations)
    end = d.start + timedelta(hours=d.hours)
    silent = plan_silent_sensor(SPEC, d.start, end, ents)
    assert {lb.kind for lb in silent} == {"silent"} and len(silent) == len(SPEC.measures)
    assert {lb.series_id.split("=")[-1] for lb in silent} == {ents[-1][0]}
    assert all(lb.end - lb.start == timedelta(minutes=10) and lb.end < end for lb in silent)
    assert plan_silent_sensor(SPEC, d.start, d.start + timedelta(hours=1), ents) == []  # too short a window


def test_checkout_outages_spread_over_the_window_or_say_they_do_not_fit() -> None:
    spec = get_preset("ecommerce")
    ents = datagen.resolve_entities(spec, 9)
    one = plan_outages(spec, ents, T0, T0 + timedelta(hours=4), 1)
    assert len({lb.start for lb in one}) == 1 and {lb.kind for lb in one} == {"shift"}
    assert {lb.magnitude for lb in one} == {-1.0}  # to nothing: no record at all
    two = plan_outages(spec, ents, T0, T0 + timedelta(hours=4), 2)
    assert len({lb.start for lb in two}) == 2 and all(lb.end < T0 + timedelta(hours=4) for lb in two)
    assert plan_outages(spec, ents, T0, T0 + timedelta(hours=4), 0) == []
    with pytest.raises(DemoError, match="--anomalies"):
        plan_outages(spec, ents, T0, T0 + timedelta(hours=1), 2)


def test_delays_read_in_the_unit_of_the_data() -> None:
    assert report.format_delay(12) == "12 min"
    assert report.format_delay(5 * 60) == "5 h"
    assert report.format_delay(3 * 24 * 60) == "3 d"
