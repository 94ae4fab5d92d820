"""Console API (Lookout-shaped) against moto DynamoDB: every operation through the real Lambda handler (Powertools'
HTTP resolver on API Gateway v2 events), pagination, filters, feedback the detector applies, and bad input (4xx)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from moto import mock_aws
from sentinel_core import store
from sentinel_core.model import AnomalyGroup, Contribution, PointScore, SeriesKey
from sentinel_core.spec import get_preset

from tests.support.aws import REGION, lambda_context

SPEC = get_preset("air-quality")
DETECTOR = "sentinel-air-quality"
TABLE = "sentinel-anomalies"
T0 = datetime(2026, 3, 19, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
LOCATIONS = ("A-1002", "B-101", "C-7")


def create_table(ddb: Any) -> None:
    """The anomaly table as infra/state.py declares it (keys, the by-start index)."""
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi_start", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": store.GROUPS_BY_START,
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi_start", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def series(measure: str, loc: str) -> SeriesKey:
    return SeriesKey(measure, (("LOCATION_ID", loc),))


def make_group(i: int) -> AnomalyGroup:
    """Group i: starts i hours after T0, measure CO for even i and NO2 for odd, score 40 + 6 i (40..94)."""
    measure = "CO" if i % 2 == 0 else "NO2"
    start = T0 + timedelta(hours=i)
    locs = LOCATIONS[: 1 + i % 3]
    score = 40.0 + 6 * i
    pts = [
        PointScore(series(measure, loc), start + k * STEP, 9.0 + k, 2.6, 2.1, 3.1, score)
        for loc in locs
        for k in (0, 1)
    ]
    return AnomalyGroup(
        AnomalyGroup.make_id(DETECTOR, measure, start),
        DETECTOR,
        measure,
        start,
        start + STEP,
        score,
        pts,
        [Contribution("LOCATION_ID", loc, round(100 / len(locs), 2)) for loc in locs],
    )


def run_record(t: datetime, **kw: Any) -> store.RunRecord:
    scores = [
        PointScore(series("CO", loc), t, 2.5 + 0.01 * n, 2.6, 2.1, 3.1, 0.0) for n, loc in enumerate(LOCATIONS)
    ] + [PointScore(series("NO2", "C-7"), t, float("nan"), 55.0, 50.0, 60.0, 0.0)]
    return store.RunRecord(
        t,
        records=15,
        rejected={"not_json": 1} if t == T0 else {},
        duplicates=1 if t == T0 + STEP else 0,
        series_seen=3,
        silent=1,
        scores=scores,
        **kw,
    )


GROUPS = [make_group(i) for i in range(10)]


@dataclass
class Api:
    ddb: Any

    def call(self, operation: str, body: Any = None, raw: str | None = None, method: str = "POST") -> tuple[int, Any]:
        from console_api import app

        text = raw if raw is not None else json.dumps(body if body is not None else {})
        event = {
            "version": "2.0",
            "routeKey": "POST /api/{operation}",
            "rawPath": f"/api/{operation}",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "http": {"method": method, "path": f"/api/{operation}", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
                "requestId": "req",
                "routeKey": "POST /api/{operation}",
                "stage": "$default",
                "time": "19/Mar/2026:08:00:00 +0000",
                "timeEpoch": 0,
            },
            "pathParameters": {"operation": operation},
            "body": base64.b64encode(text.encode()).decode(),
            "isBase64Encoded": True,
        }
        resp = app.lambda_handler(event, lambda_context("sentinel-console"))
        return int(resp["statusCode"]), json.loads(resp["body"]) if resp.get("body") else None

    def ok(self, operation: str, body: Any = None) -> Any:
        status, out = self.call(operation, body)
        assert status == 200, out
        return out


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb)
        for g in GROUPS:
            store.save_group(ddb, TABLE, g)
        for k in range(-3, 30):
            store.put_run(ddb, TABLE, DETECTOR, run_record(T0 + k * STEP), 50.0)
        store.put_skipped_runs(ddb, TABLE, DETECTOR, [T0 - 5 * STEP, T0 - 4 * STEP], "backlog beyond 2880 intervals")
        store.put_run(
            ddb, TABLE, DETECTOR, store.RunRecord(T0 + 30 * STEP, status=store.RUN_FAILED, failure_reason="boom"), 50
        )
        store.add_late(ddb, TABLE, DETECTOR, T0 + 2 * STEP, 7)
        for k, v in {"SENTINEL_SPEC": SPEC.to_json(), "ANOMALY_TABLE": TABLE, "DETECTOR_ID": DETECTOR}.items():
            monkeypatch.setenv(k, v)
        from console_api import app

        app.api_context.cache_clear()
        yield Api(ddb)
        app.api_context.cache_clear()


# -- ListAnomalyGroupSummaries ---------------------------------------------------------------------------------
def test_list_groups_above_the_sensitivity_newest_first_with_statistics(api: Api) -> None:
    out = api.ok("ListAnomalyGroupSummaries", {"SensitivityThreshold": 70})
    expected = sorted((g for g in GROUPS if g.score >= 70), key=lambda g: g.start, reverse=True)
    assert [s["AnomalyGroupId"] for s in out["AnomalyGroupSummaryList"]] == [g.group_id for g in expected]
    first = out["AnomalyGroupSummaryList"][0]
    assert set(first) == {"StartTime", "EndTime", "AnomalyGroupId", "AnomalyGroupScore", "PrimaryMetricName"}
    assert first["AnomalyGroupScore"] == 94.0 and first["PrimaryMetricName"] == "NO2"
    stats = out["AnomalyGroupStatistics"]
    assert stats["TotalCount"] == len(expected)
    assert {m["MetricName"]: m["OccurrenceCount"] for m in stats["ItemizedMetricStats"]} == {"CO": 2, "NO2": 3}
    assert stats["EvaluationStartDate"] == min(g.start for g in expected).isoformat()
    assert "NextToken" not in out


def test_list_groups_pages_through_everything_exactly_once(api: Api) -> None:
    seen: list[str] = []
    body: dict[str, Any] = {"SensitivityThreshold": 0, "MaxResults": 3}
    pages = 0
    while True:
        out = api.ok("ListAnomalyGroupSummaries", body)
        assert len(out["AnomalyGroupSummaryList"]) <= 3
        seen += [s["AnomalyGroupId"] for s in out["AnomalyGroupSummaryList"]]
        pages += 1
        if "NextToken" not in out:
            break
        body = {**body, "NextToken": out["NextToken"]}
    assert pages == 4
    assert seen == [g.group_id for g in sorted(GROUPS, key=lambda g: g.start, reverse=True)]


def test_list_groups_filters_by_time_measure_and_dimension(api: Api) -> None:
    out = api.ok(
        "ListAnomalyGroupSummaries",
        {
            "SensitivityThreshold": 0,
            "StartTime": (T0 + timedelta(hours=2)).isoformat(),
            "EndTime": "2026-03-19T15:00:00Z",
            "MetricName": "CO",
            "DimensionFilterList": [{"DimensionName": "LOCATION_ID", "DimensionValue": "C-7"}],
        },
    )
    want = [
        g
        for g in GROUPS
        if T0 + timedelta(hours=2) <= g.start <= T0 + timedelta(hours=7)
        and g.measure == "CO"
        and "CO|LOCATION_ID=C-7" in g.series_ids
    ]
    assert want  # the filter keeps something and drops something
    assert [s["AnomalyGroupId"] for s in out["AnomalyGroupSummaryList"]] == [
        g.group_id for g in sorted(want, key=lambda g: g.start, reverse=True)
    ]
    assert out["AnomalyGroupStatistics"]["TotalCount"] == len(want)


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=st.integers(0, 100), page=st.integers(1, 4))
def test_paging_any_threshold_gives_the_filtered_list(api: Api, threshold: int, page: int) -> None:
    body: dict[str, Any] = {"SensitivityThreshold": threshold, "MaxResults": page}
    seen: list[str] = []
    for _ in range(20):
        out = api.ok("ListAnomalyGroupSummaries", body)
        seen += [s["AnomalyGroupId"] for s in out["AnomalyGroupSummaryList"]]
        if "NextToken" not in out:
            break
        body = {**body, "NextToken": out["NextToken"]}
    want = sorted((g for g in GROUPS if g.score >= threshold), key=lambda g: g.start, reverse=True)
    assert seen == [g.group_id for g in want]


# -- GetAnomalyGroup / ListAnomalyGroupTimeSeries --------------------------------------------------------------
def test_get_group_has_lookouts_impact_and_contribution_shape(api: Api) -> None:
    g = GROUPS[2]
    out = api.ok("GetAnomalyGroup", {"AnomalyGroupId": g.group_id, "AnomalyDetectorArn": f"arn:aws:x:y:z:d/{DETECTOR}"})
    ag = out["AnomalyGroup"]
    assert ag["AnomalyGroupId"] == g.group_id and ag["AnomalyGroupScore"] == g.score
    (impact,) = ag["MetricLevelImpactList"]
    assert impact["MetricName"] == "CO" and impact["NumTimeSeries"] == 3
    (dim,) = impact["ContributionMatrix"]["DimensionContributionList"]
    assert dim["DimensionName"] == "LOCATION_ID"
    assert {d["DimensionValue"] for d in dim["DimensionValueContributionList"]} == set(LOCATIONS)
    assert ag["TimeSeriesIdList"] == g.series_ids


def test_time_series_values_band_and_severity_per_interval(api: Api) -> None:
    g = GROUPS[0]  # CO at A-1002, T0 and T0+5 min, severity 40
    out = api.ok(
        "ListAnomalyGroupTimeSeries", {"AnomalyGroupId": g.group_id, "MetricName": "CO", "ContextIntervals": 2}
    )
    stamps = [datetime.fromisoformat(t) for t in out["TimestampList"]]
    assert stamps == [T0 + k * STEP for k in range(-2, 4)]
    (ts,) = out["TimeSeriesList"]
    assert ts["TimeSeriesId"] == "CO|LOCATION_ID=A-1002"
    assert ts["DimensionList"] == [{"DimensionName": "LOCATION_ID", "DimensionValue": "A-1002"}]
    assert len(ts["MetricValueList"]) == len(stamps) == len(ts["UpperBoundList"]) == len(ts["SeverityList"])
    assert ts["MetricValueList"][0] == 2.5  # context interval: from the run record
    assert ts["ExpectedValueList"][0] == 2.6 and ts["LowerBoundList"][0] == 2.1 and ts["UpperBoundList"][0] == 3.1
    assert ts["AnomalousTimestampList"] == [T0.isoformat(), (T0 + STEP).isoformat()]
    assert out["GroupStartTime"] == T0.isoformat() and out["IntervalSeconds"] == 300


def test_time_series_pages_over_series(api: Api) -> None:
    g = GROUPS[2]
    first = api.ok("ListAnomalyGroupTimeSeries", {"AnomalyGroupId": g.group_id, "MetricName": "CO", "MaxResults": 2})
    assert len(first["TimeSeriesList"]) == 2 and "NextToken" in first
    rest = api.ok(
        "ListAnomalyGroupTimeSeries",
        {"AnomalyGroupId": g.group_id, "MetricName": "CO", "MaxResults": 2, "NextToken": first["NextToken"]},
    )
    ids = [t["TimeSeriesId"] for t in first["TimeSeriesList"] + rest["TimeSeriesList"]]
    assert ids == g.series_ids and "NextToken" not in rest


def test_silent_series_has_null_values(api: Api) -> None:
    g = GROUPS[1]  # NO2 at A-1002 and B-101: no NO2 value of theirs in the run records around the group
    out = api.ok("ListAnomalyGroupTimeSeries", {"AnomalyGroupId": g.group_id, "MetricName": "NO2"})
    ts = out["TimeSeriesList"][0]
    assert ts["TimeSeriesId"] == "NO2|LOCATION_ID=A-1002"
    assert None in ts["MetricValueList"] and 9.0 in ts["MetricValueList"]
    assert len(ts["MetricValueList"]) == len(out["TimestampList"])


# -- Feedback --------------------------------------------------------------------------------------------------
def test_feedback_is_stored_visible_and_reversible(api: Api) -> None:
    g = GROUPS[4]
    sid = g.series_ids[0]
    target = {"AnomalyGroupId": g.group_id, "TimeSeriesId": sid}
    assert api.ok("GetFeedback", {"AnomalyGroupTimeSeriesFeedback": {"AnomalyGroupId": g.group_id}}) == {
        "AnomalyGroupTimeSeriesFeedback": []
    }
    assert api.ok("PutFeedback", {"AnomalyGroupTimeSeriesFeedback": {**target, "IsAnomaly": False}}) == {}
    (fb,) = api.ok("GetFeedback", {"AnomalyGroupTimeSeriesFeedback": target})["AnomalyGroupTimeSeriesFeedback"]
    assert fb["IsAnomaly"] is False and fb["Status"] == "PENDING" and fb["TimeSeriesId"] == sid
    # the very record the detector reads
    (pending,) = store.list_feedback(api.ddb, TABLE, DETECTOR, pending_only=True)
    assert pending.series_id == sid and pending.is_anomaly is False
    group = api.ok("GetAnomalyGroup", {"AnomalyGroupId": g.group_id})["AnomalyGroup"]
    assert group["TimeSeriesFeedback"] == [{"TimeSeriesId": sid, "IsAnomaly": False}]
    # reversed
    api.ok("PutFeedback", {"AnomalyGroupTimeSeriesFeedback": {**target, "IsAnomaly": True}})
    (fb,) = api.ok("GetFeedback", {"AnomalyGroupTimeSeriesFeedback": target})["AnomalyGroupTimeSeriesFeedback"]
    assert fb["IsAnomaly"] is True
    (pending,) = store.list_feedback(api.ddb, TABLE, DETECTOR, pending_only=True)
    assert pending.is_anomaly is True


def test_get_feedback_pages(api: Api) -> None:
    g = GROUPS[2]
    for sid in g.series_ids:
        api.ok(
            "PutFeedback",
            {"AnomalyGroupTimeSeriesFeedback": {"AnomalyGroupId": g.group_id, "TimeSeriesId": sid, "IsAnomaly": False}},
        )
    body: dict[str, Any] = {"AnomalyGroupTimeSeriesFeedback": {"AnomalyGroupId": g.group_id}, "MaxResults": 2}
    first = api.ok("GetFeedback", body)
    second = api.ok("GetFeedback", {**body, "NextToken": first["NextToken"]})
    got = [
        f["TimeSeriesId"] for f in first["AnomalyGroupTimeSeriesFeedback"] + second["AnomalyGroupTimeSeriesFeedback"]
    ]
    assert got == g.series_ids and "NextToken" not in second


# -- Executions and data quality -------------------------------------------------------------------------------
def test_executions_per_interval_newest_first_with_counts(api: Api) -> None:
    out = api.ok("DescribeAnomalyDetectionExecutions", {"MaxResults": 100})
    execs = out["ExecutionList"]
    assert len(execs) == 2 + 33 + 1
    assert execs[0]["Timestamp"] == (T0 + 30 * STEP).isoformat() and execs[0]["Status"] == "FAILED"
    assert execs[0]["FailureReason"] == "boom"
    assert [e["Status"] for e in execs[-2:]] == ["FAILED_TO_SCHEDULE"] * 2
    by_time = {e["Timestamp"]: e for e in execs}
    scored = by_time[T0.isoformat()]
    assert scored["Status"] == "COMPLETED"
    assert (
        scored["RecordsProcessed"],
        scored["RecordsRejected"],
        scored["TimeSeriesCount"],
        scored["SilentTimeSeries"],
    ) == (15, 1, 3, 1)
    assert by_time[(T0 + 2 * STEP).isoformat()]["LateRecords"] == 7
    assert by_time[(T0 + STEP).isoformat()]["DuplicateRecords"] == 1


def test_executions_page_and_select_one_timestamp(api: Api) -> None:
    seen: list[str] = []
    body: dict[str, Any] = {"MaxResults": 10}
    while True:
        out = api.ok("DescribeAnomalyDetectionExecutions", body)
        seen += [e["Timestamp"] for e in out["ExecutionList"]]
        if "NextToken" not in out:
            break
        body = {**body, "NextToken": out["NextToken"]}
    assert len(seen) == len(set(seen)) == 36 and seen == sorted(seen, reverse=True)
    one = api.ok("DescribeAnomalyDetectionExecutions", {"Timestamp": (T0 + STEP).isoformat()})
    assert [e["Timestamp"] for e in one["ExecutionList"]] == [(T0 + STEP).isoformat()]


def test_data_quality_metrics_in_lookouts_shape(api: Api) -> None:
    out = api.ok("GetDataQualityMetrics", {"StartTime": T0.isoformat(), "EndTime": T0.isoformat()})
    (entry,) = out["AnomalyDetectorDataQualityMetricList"]
    assert entry["StartTimestamp"] == T0.isoformat()
    (mset,) = entry["MetricSetDataQualityMetricList"]
    metrics = {(m["MetricType"], m["RelatedColumnName"]): m["MetricValue"] for m in mset["DataQualityMetricList"]}
    assert metrics[("ROWS_PROCESSED", "")] == 15
    assert metrics[("TIME_SERIES_COUNT", "")] == 3
    assert metrics[("SILENT_TIME_SERIES", "")] == 1
    assert metrics[("INVALID_ROWS_COMPLIANCE", "not_json")] == 1
    assert metrics[("LATE_ROWS", "")] == 0


# -- Bad input: clear 4xx, never a 500 -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "body", "status", "needle"),
    [
        ("ListAnomalyGroupSummaries", {}, 400, "SensitivityThreshold is required"),
        ("ListAnomalyGroupSummaries", {"SensitivityThreshold": 101}, 400, "from 0 to 100"),
        ("ListAnomalyGroupSummaries", {"SensitivityThreshold": "high"}, 400, "whole number"),
        ("ListAnomalyGroupSummaries", {"SensitivityThreshold": 5, "MaxResults": 0}, 400, "MaxResults"),
        (
            "ListAnomalyGroupSummaries",
            {"SensitivityThreshold": 5, "Sensitivity": 5},
            400,
            "unknown field(s) Sensitivity",
        ),
        ("ListAnomalyGroupSummaries", {"SensitivityThreshold": 5, "StartTime": "yesterday"}, 400, "ISO-8601"),
        (
            "ListAnomalyGroupSummaries",
            {"SensitivityThreshold": 5, "StartTime": "2026-03-20", "EndTime": "2026-03-19"},
            400,
            "before StartTime",
        ),
        ("ListAnomalyGroupSummaries", {"SensitivityThreshold": 5, "MetricName": "PM25"}, 400, "not a measure"),
        (
            "ListAnomalyGroupSummaries",
            {"SensitivityThreshold": 5, "DimensionFilterList": [{"DimensionName": "CITY", "DimensionValue": "x"}]},
            400,
            "not a dimension",
        ),
        ("ListAnomalyGroupSummaries", {"SensitivityThreshold": 5, "NextToken": "garbage!"}, 400, "NextToken"),
        (
            "ListAnomalyGroupSummaries",
            {"SensitivityThreshold": 5, "AnomalyDetectorArn": "arn:aws:l:r:a:d/other"},
            404,
            "other",
        ),
        ("GetAnomalyGroup", {}, 400, "AnomalyGroupId is required"),
        ("GetAnomalyGroup", {"AnomalyGroupId": "nope"}, 404, "no anomaly group 'nope'"),
        ("ListAnomalyGroupTimeSeries", {"AnomalyGroupId": GROUPS[0].group_id, "MetricName": "NO2"}, 400, "about 'CO'"),
        ("ListAnomalyGroupTimeSeries", {"AnomalyGroupId": GROUPS[0].group_id}, 400, "MetricName is required"),
        ("PutFeedback", {}, 400, "AnomalyGroupTimeSeriesFeedback is required"),
        (
            "PutFeedback",
            {
                "AnomalyGroupTimeSeriesFeedback": {
                    "AnomalyGroupId": GROUPS[0].group_id,
                    "TimeSeriesId": "CO|LOCATION_ID=Z",
                    "IsAnomaly": False,
                }
            },
            400,
            "not part of anomaly group",
        ),
        (
            "PutFeedback",
            {
                "AnomalyGroupTimeSeriesFeedback": {
                    "AnomalyGroupId": GROUPS[0].group_id,
                    "TimeSeriesId": "x",
                    "IsAnomaly": "no",
                }
            },
            400,
            "true or false",
        ),
        ("GetFeedback", {"AnomalyGroupTimeSeriesFeedback": {"AnomalyGroupId": "nope"}}, 404, "no anomaly group"),
        ("DescribeAnomalyDetectionExecutions", {"MaxResults": 1000}, 400, "MaxResults"),
        ("GetDataQualityMetrics", {"StartTime": []}, 400, "ISO-8601"),
        ("DeleteAnomalyDetector", {}, 404, "unknown operation"),
    ],
)
def test_bad_input_is_a_clear_4xx(api: Api, operation: str, body: Any, status: int, needle: str) -> None:
    code, out = api.call(operation, body)
    assert code == status, out
    assert needle in out["Message"]
    assert out["__type"] in ("ValidationException", "ResourceNotFoundException", "UnknownOperationException")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "null", '"text"'])
def test_a_body_that_is_not_a_json_object_is_a_400(api: Api, raw: str) -> None:
    code, out = api.call("ListAnomalyGroupSummaries", raw=raw)
    assert code == 400 and (
        "not JSON" in out["Message"] or "JSON object" in out["Message"] or "required" in out["Message"]
    )


def test_a_token_of_another_request_is_refused(api: Api) -> None:
    out = api.ok("ListAnomalyGroupSummaries", {"SensitivityThreshold": 0, "MaxResults": 2})
    code, err = api.call("ListAnomalyGroupSummaries", {"SensitivityThreshold": 50, "NextToken": out["NextToken"]})
    assert code == 400 and "another request" in err["Message"]
    forged = base64.urlsafe_b64encode(json.dumps({"q": "x", "p": {"pk": {"S": "DET#someone-else"}}}).encode()).decode()
    code, err = api.call("DescribeAnomalyDetectionExecutions", {"NextToken": forged})
    assert code == 400


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operation=st.sampled_from(
        [
            "ListAnomalyGroupSummaries",
            "GetAnomalyGroup",
            "ListAnomalyGroupTimeSeries",
            "PutFeedback",
            "GetFeedback",
            "DescribeAnomalyDetectionExecutions",
            "GetDataQualityMetrics",
        ]
    ),
    body=st.dictionaries(
        st.sampled_from(
            [
                "SensitivityThreshold",
                "MaxResults",
                "NextToken",
                "StartTime",
                "EndTime",
                "AnomalyGroupId",
                "MetricName",
                "Timestamp",
                "AnomalyGroupTimeSeriesFeedback",
                "DimensionFilterList",
                "ContextIntervals",
                "x",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers(-5, 500)
        | st.text(max_size=12)
        | st.lists(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        max_size=4,
    ),
)
def test_no_body_gives_a_500(api: Api, operation: str, body: dict[str, Any]) -> None:
    code, _ = api.call(operation, body)
    assert code in (200, 400, 404)
