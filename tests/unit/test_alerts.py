"""The alert formatter: SMS line, e-mail text, Lookout JSON, filters, summary."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core import alerts
from sentinel_core.model import AnomalyGroup, Contribution, PointScore, SeriesKey
from sentinel_core.spec import get_preset

AQ = get_preset("air-quality")
ECOM = get_preset("ecommerce")
LOYALTY = get_preset("loyalty")
T0 = datetime(2022, 3, 20, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
CTX = alerts.AlertContext.from_topic_arn("sentinel-aq", "arn:aws:sns:eu-west-1:123456789012:alerts", "data-bucket")
LOOKOUT_TOP = {
    "alertName",
    "alertEventId",
    "anomalyDetectorArn",
    "alertArn",
    "alertDescription",
    "impactedMetric",
    "timestamp",
    "anomalyScore",
}


def co(loc: str, ts: datetime, value: float, score: float) -> PointScore:
    return PointScore(SeriesKey("CO", (("LOCATION_ID", loc),)), ts, value, 2.6, 2.1, 3.1, score)


def aq_group(points: list[PointScore], contributions: list[Contribution] | None = None) -> AnomalyGroup:
    start = min(p.timestamp for p in points)
    return AnomalyGroup(
        group_id=AnomalyGroup.make_id("sentinel-aq", "CO", start),
        detector_id="sentinel-aq",
        measure="CO",
        start=start,
        end=max(p.timestamp for p in points),
        score=max(p.score for p in points),
        points=points,
        contributions=contributions
        if contributions is not None
        else [Contribution("LOCATION_ID", p.series.dimensions[0][1], 100.0 / len(points)) for p in points],
    )


def test_sms_reads_like_the_example() -> None:
    g = aq_group([co("B-101", T1, 9.4, 93.4)])
    assert alerts.render_sms(g, AQ, T1) == "Sentinel ALERT sev 93: CO at B-101 = 9.4 ppm (expected 2.6) 10:05 UTC"


def test_sms_names_the_worst_series_and_counts_the_others() -> None:
    g = aq_group([co("B-101", T1, 9.4, 80), co("A-1002", T1, 12.0, 95), co("C-7", T1, 5.0, 71)])
    sms = alerts.render_sms(g, AQ, T1)
    assert sms.startswith("Sentinel ALERT sev 95: CO at A-1002 = 12 ppm (expected 2.6) +2 more")


def test_sms_stays_within_160_characters_with_long_dimension_values() -> None:
    long_loc = "building-" + "x" * 200
    g = aq_group([co(long_loc, T1, 9.4, 93)])
    sms = alerts.render_sms(g, AQ, T1)
    assert len(sms) <= alerts.SMS_LIMIT
    assert "9.4 ppm (expected 2.6)" in sms and "sev 93" in sms


def test_email_has_what_where_when_severity_band_contributions_link_and_feedback() -> None:
    g = aq_group(
        [co("B-101", T0, 7.0, 75), co("B-101", T1, 9.4, 93), co("A-1002", T1, 4.0, 72)],
        [Contribution("LOCATION_ID", "B-101", 80.0), Contribution("LOCATION_ID", "A-1002", 20.0)],
    )
    text = alerts.render_email(g, AQ, CTX, T1)
    assert "What:      CO higher than expected in 2 series" in text
    assert "Where:     B-101, A-1002 (LOCATION_ID)" in text
    assert "When:      2022-03-20 10:05 UTC (interval PT5M; anomalous since 2022-03-20 10:00 UTC)" in text
    assert "Severity:  93 / 100 (alert threshold 70)" in text
    assert "CO at B-101: 9.4 ppm, expected 2.6 ppm (band 2.1 to 3.1), +262%, severity 93" in text
    assert "LOCATION_ID: B-101 80%, A-1002 20%" in text
    assert "ventilate" in text
    assert (
        "https://s3.console.aws.amazon.com/s3/buckets/data-bucket?region=eu-west-1"
        "&prefix=air-quality%2Flive%2F20220320%2F1005%2F" in text
    )
    assert "s3://data-bucket/air-quality/live/20220320/1005/" in text
    assert f"python -m simulator feedback --group {g.group_id} --series 'CO|LOCATION_ID=B-101' --not-anomaly" in text
    assert g.group_id in text


def test_email_and_json_link_to_the_groups_console_page() -> None:
    ctx = alerts.AlertContext.from_topic_arn("d", "arn:aws:sns:eu-west-1:1:t", "b", "https://console.example.org/")
    g = aq_group([co("B-101", T1, 9.4, 93)])
    text = alerts.render_email(g, AQ, ctx, T1)
    assert f"Open in the console: https://console.example.org/#/group/{g.group_id}" in text
    assert "https://s3.console.aws.amazon.com/s3/buckets/b?region=eu-west-1&prefix=" in text  # the data, still
    assert (
        alerts.render_lookout_json(g, AQ, ctx, T1)["consoleUrl"] == f"https://console.example.org/#/group/{g.group_id}"
    )
    plain = alerts.AlertContext.from_topic_arn("d", "arn:aws:sns:eu-west-1:1:t", "b")
    assert "Open in the console" not in alerts.render_email(g, AQ, plain, T1)
    assert alerts.render_lookout_json(g, AQ, plain, T1)["consoleUrl"].startswith("https://s3.console.aws.amazon.com/")


def test_default_json_has_lookout_fields_with_the_exact_names() -> None:
    g = aq_group([co("B-101", T1, 9.4, 93.456), co("A-1002", T1, 4.0, 72)])
    doc = alerts.render_lookout_json(g, AQ, CTX, T1)
    assert set(doc) >= LOOKOUT_TOP
    assert doc["timestamp"] == "2022-03-20T10:05Z[UTC]"
    assert doc["anomalyScore"] == 93.46
    assert doc["anomalyGroupId"] == g.group_id
    assert doc["anomalyDetectorArn"].startswith("arn:aws:") and doc["anomalyDetectorArn"].endswith(":sentinel-aq")
    assert doc["alertEventId"].startswith(doc["alertArn"] + ":event/")
    metric = doc["impactedMetric"]
    assert metric["metricName"] == "CO"
    (dim,) = metric["dimensionContribution"]
    assert dim["dimensionName"] == "LOCATION_ID"
    assert {c["dimensionValue"]: c["valueContribution"] for c in dim["dimensionValueContributions"]} == {
        "B-101": 50.0,
        "A-1002": 50.0,
    }
    first = metric["relevantTimeSeries"][0]
    assert set(first) == {"timeSeriesId", "dimensions", "metricValue"}
    assert first == {
        "timeSeriesId": "CO|LOCATION_ID=B-101",
        "dimensions": [{"dimensionName": "LOCATION_ID", "dimensionValue": "B-101"}],
        "metricValue": 9.4,
    }
    assert doc["sentinel"]["series"][0]["expected"] == 2.6
    assert json.loads(json.dumps(doc)) == doc


def test_publish_is_message_structure_json_with_three_texts() -> None:
    msg = alerts.render_alert(aq_group([co("B-101", T1, 9.4, 93)]), AQ, CTX)
    kwargs = msg.publish_kwargs("arn:aws:sns:eu-west-1:123456789012:alerts")
    assert kwargs["MessageStructure"] == "json"
    body = json.loads(kwargs["Message"])
    assert set(body) == {"default", "sms", "email"}
    assert alerts.parse_lookout_alert(body["default"])["alertEventId"] == msg.event_id
    assert body["sms"] == msg.sms and body["email"] == msg.email
    assert kwargs["Subject"] == "Sentinel alert sev 93: CO high at B-101"


def test_event_id_is_stable_per_group_and_interval() -> None:
    g = aq_group([co("B-101", T0, 7.0, 80), co("B-101", T1, 9.4, 93)])
    a, b = alerts.render_alert(g, AQ, CTX, T1), alerts.render_alert(g, AQ, CTX, T1)
    assert a.event_id == b.event_id
    assert alerts.render_alert(g, AQ, CTX, T0).event_id != a.event_id


def test_threshold_is_reached_at_equality_like_lookout() -> None:
    assert alerts.should_alert(aq_group([co("B-101", T1, 9.4, 70.0)]), AQ, T1)
    assert not alerts.should_alert(aq_group([co("B-101", T1, 9.4, 69.9)]), AQ, T1)
    assert not alerts.should_alert(aq_group([co("B-101", T0, 9.4, 99)]), AQ, T1)  # nothing at that interval


def test_multi_dimension_preset_renders_every_dimension() -> None:
    key = SeriesKey("views", (("page_type", "cart"), ("platform", "web"), ("marketplace", "US")))
    p = PointScore(key, T0, 40.0, 400.0, 320.0, 480.0, 88)
    g = AnomalyGroup(
        "g1",
        "ecom",
        "views",
        T0,
        T0,
        88,
        [p],
        [
            Contribution("page_type", "cart", 100),
            Contribution("platform", "web", 100),
            Contribution("marketplace", "US", 100),
        ],
    )
    doc = alerts.render_lookout_json(g, ECOM, CTX, T0)
    assert [d["dimensionName"] for d in doc["impactedMetric"]["dimensionContribution"]] == [
        "page_type",
        "platform",
        "marketplace",
    ]
    assert alerts.render_sms(g, ECOM, T0) == (
        "Sentinel ALERT sev 88: views at cart / web / US = 40 views (expected 400) 10:00 UTC"
    )
    assert "views lower than expected" in alerts.render_email(g, ECOM, CTX, T0)


def test_daily_preset_shows_dates() -> None:
    day = datetime(2022, 3, 20, tzinfo=UTC)
    p = PointScore(SeriesKey("points_earned", (("location_id", "L-7"),)), day, 90000, 20000, 15000, 25000, 97)
    g = AnomalyGroup("g", "loy", "points_earned", day, day, 97, [p], [])
    assert alerts.render_sms(g, LOYALTY, day).endswith(" 2022-03-20")
    assert alerts.render_lookout_json(g, LOYALTY, CTX, day)["impactedMetric"]["dimensionContribution"] == []


# -- filters --------------------------------------------------------------------------------------------------------
def test_filter_parses_and_checks_names_against_the_schema() -> None:
    f = alerts.AlertFilter.parse('{"measures": ["CO"], "dimensions": {"LOCATION_ID": ["B-101"]}}', AQ)
    assert f.measures == {"CO"} and f.dimensions == {"LOCATION_ID": {"B-101"}}
    assert alerts.AlertFilter.parse("", AQ).is_empty
    assert alerts.AlertFilter.parse("{}", AQ).is_empty
    with pytest.raises(alerts.AlertFilterError, match="O3"):
        alerts.AlertFilter.parse('{"measures": ["O3"]}', AQ)
    with pytest.raises(alerts.AlertFilterError, match="not JSON"):
        alerts.AlertFilter.parse("{measures", AQ)
    with pytest.raises(alerts.AlertFilterError, match="list"):
        alerts.AlertFilter.parse('{"dimensions": {"LOCATION_ID": "B-101"}}', AQ)


def test_filter_keeps_matching_series_and_renormalises_contributions() -> None:
    g = aq_group(
        [co("B-101", T1, 9.4, 93), co("A-1002", T1, 4.0, 72)],
        [Contribution("LOCATION_ID", "B-101", 60.0), Contribution("LOCATION_ID", "A-1002", 40.0)],
    )
    only_a = alerts.AlertFilter.parse('{"dimensions": {"LOCATION_ID": ["A-1002"]}}', AQ).apply(g)
    assert only_a is not None
    assert [p.series.id for p in only_a.points] == ["CO|LOCATION_ID=A-1002"]
    assert only_a.score == 72
    assert only_a.contributions == [Contribution("LOCATION_ID", "A-1002", 100.0)]
    assert alerts.AlertFilter.parse('{"measures": ["NO2"]}', AQ).apply(g) is None
    assert alerts.AlertFilter.parse('{"dimensions": {"LOCATION_ID": ["Z-9"]}}', AQ).apply(g) is None
    assert alerts.AlertFilter().apply(g) is g


# -- summary -------------------------------------------------------------------------------------------------------
def test_summary_line_names_the_worst_groups() -> None:
    gs = [aq_group([co("B-101", T0, 9, 95)]), aq_group([co("A-1002", T1, 5, 80)]), aq_group([co("C", T1, 3, 20)])]
    line = alerts.summary_alert(gs, AQ, limit=1)
    assert line == (
        "Sentinel air-quality: 2 anomaly group(s) at or above severity 70, worst 95: "
        "CO at B-101 2022-03-20 10:00 UTC (sev 95); +1 more"
    )
    assert "\n" not in line
    assert (
        alerts.summary_alert([], AQ) == "Sentinel air-quality: no anomaly at or above severity 70 (0 group(s) below it)"
    )


def test_backtest_summary_is_an_alert_message_like_the_others() -> None:
    gs = [aq_group([co(f"B-{i}", T0 + timedelta(minutes=5 * i), 9, 95 - i)]) for i in range(35)]
    facts = alerts.BacktestFacts(
        key="uploads/loyalty/" + "very-long-name-" * 8 + ".csv",
        report_key="uploads/x.csv.report.json",
        errors_key="uploads/x.csv.errors.csv",
        rows=10,
        good_rows=8,
        bad_rows=2,
        first_day="2022-01-01",
        last_day="2022-03-20",
        series=4,
        learn_intervals=55,
        report_intervals=24,
        report_start="2022-02-25T00:00:00+00:00",
        max_group_alerts=20,
    )
    msg = alerts.render_backtest_summary(gs, AQ, CTX, facts, "backtest-abc", T0)
    assert (msg.event_id, msg.group_id, msg.interval) == ("backtest-abc", "backtest-abc", T0)
    assert len(msg.sms) <= alerts.SMS_LIMIT and msg.sms.startswith("Sentinel air-quality: 26 ")
    short = alerts.render_backtest_summary(gs, AQ, CTX, replace(facts, key="uploads/a.csv"), "backtest-abc", T0)
    assert len(short.sms) <= alerts.SMS_LIMIT and short.sms.endswith("... (a.csv)")
    assert len(msg.subject) <= alerts.SUBJECT_LIMIT and msg.subject.isascii()
    assert "s3://data-bucket/uploads/x.csv.errors.csv" in msg.email and "... and 5 more" in msg.email
    kwargs = msg.publish_kwargs("arn:aws:sns:eu-west-1:123456789012:alerts")
    assert kwargs["MessageStructure"] == "json" and set(json.loads(kwargs["Message"])) == {"default", "sms", "email"}
    default = json.loads(json.loads(kwargs["Message"])["default"])
    assert default["type"] == "backtestSummary" and default["badRows"] == 2
    assert len(default["anomalyGroups"]) == alerts.MAX_SUMMARY_JSON_GROUPS or len(gs) < 50
    assert [g["anomalyGroupId"] for g in default["anomalyGroups"]] == [g.group_id for g in gs]  # most severe first


# -- properties ----------------------------------------------------------------------------------------------------
values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
locations = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(locations, values, values, st.floats(min_value=0, max_value=100)), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=287),
)
def test_any_group_renders_three_valid_texts(rows: list[tuple[str, float, float, float]], slot: int) -> None:
    ts = T0 + timedelta(minutes=5 * slot)
    pts = [PointScore(SeriesKey("CO", (("LOCATION_ID", loc),)), ts, v, e, e - 1, e + 1, s) for loc, v, e, s in rows]
    g = aq_group(pts)
    msg = alerts.render_alert(g, AQ, CTX, ts)
    body = json.loads(msg.message)
    doc = json.loads(body["default"])
    assert set(doc) >= LOOKOUT_TOP
    assert 0 <= doc["anomalyScore"] <= 100
    assert len(doc["impactedMetric"]["relevantTimeSeries"]) == len(pts)
    assert "\n" not in msg.sms and "\n" not in msg.subject
    assert len(msg.subject) <= alerts.SUBJECT_LIMIT and msg.subject.isascii()
    if all(len(loc) < 40 for loc, *_ in rows) and all(abs(v) < 1e6 and abs(e) < 1e6 for _, v, e, _ in rows):
        assert len(msg.sms) <= alerts.SMS_LIMIT
    assert msg.email.count("python -m simulator feedback") >= 1


def test_a_silent_group_says_series_went_silent_in_every_text_and_shows_no_value() -> None:
    from sentinel_core.groups import silent_groups
    from sentinel_core.model import SilentSeries

    silent = [SilentSeries(SeriesKey("CO", (("LOCATION_ID", "B-101"),)), T1, T0, 3, 2.6, 80.0)]
    (g,) = silent_groups("sentinel-aq", silent)
    msg = alerts.render_alert(g, AQ, CTX, T1)
    assert msg.sms == "Sentinel ALERT sev 80: CO at B-101: series went silent 10:05 UTC"
    assert msg.subject == "Sentinel alert sev 80: CO went silent at B-101"
    assert "series went silent in CO" in msg.email and "no value, expected about 2.6 ppm" in msg.email
    assert "No device command is sent" in msg.email and "band" not in msg.email
    doc = msg.default
    assert set(doc) >= LOOKOUT_TOP and doc["sentinel"]["kind"] == "silent"
    assert "series went silent" in doc["alertDescription"]
    assert doc["impactedMetric"]["relevantTimeSeries"][0]["metricValue"] is None
    assert doc["sentinel"]["series"][0]["value"] is None and doc["sentinel"]["series"][0]["expected"] == 2.6
    # a value anomaly keeps its kind and its value
    plain = alerts.render_alert(aq_group([co("B-101", T1, 9.4, 93.4)]), AQ, CTX, T1).default
    assert plain["sentinel"]["kind"] == "anomaly" and plain["impactedMetric"]["relevantTimeSeries"][0]["metricValue"]
    # the alert filter keeps the kind of the group it narrows
    shown = alerts.AlertFilter.parse('{"dimensions": {"LOCATION_ID": ["B-101"]}}').apply(g)
    assert shown is not None and shown.kind == "silent"
