"""Dashboard and alarms of every synthesized (preset x engine) template (the session's synths, no extra ones)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sentinel_core.intervals import interval_seconds
from sentinel_core.spec import get_preset

from infra.config import default_stack_name
from infra.monitoring import FIREHOSE_LIMIT_SHARE, MAX_EVALUATION_SECONDS, TRANSFORM_FAILURE_PERCENT
from tests.support.assembly import Synth


def flat(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def ops_topic(synth: Synth) -> tuple[str, dict[str, Any]]:
    return synth.by_marker("ops-topic")


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in synth.of_type("AWS::CloudWatch::Alarm").items()}


def alarm_named(synth: Synth, part: str) -> dict[str, Any]:
    found = [p for p in alarms(synth).values() if part in str(p.get("AlarmName", ""))]
    assert len(found) == 1, f"{len(found)} alarms named *{part}* in {synth.preset}/{synth.engine}"
    return found[0]


def metric_names(props: dict[str, Any]) -> set[str]:
    """Metric names an alarm reads (single metric or metric math)."""
    names = {str(props["MetricName"])} if "MetricName" in props else set()
    for m in props.get("Metrics", []) or []:
        stat = m.get("MetricStat")
        if stat:
            names.add(str(stat["Metric"]["MetricName"]))
    return names


def alarm_dimensions(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The dimensions of the (single) metric an alarm reads, sorted by name."""
    dims = list(props.get("Dimensions", []) or [])
    for m in props.get("Metrics", []) or []:
        if m.get("MetricStat"):
            dims += m["MetricStat"]["Metric"].get("Dimensions", [])
    return sorted(dims, key=lambda d: str(d["Name"]))


# What a Firehose stream counts as taken in, by its source (AWS/Firehose metrics): Direct PUT emits IncomingRecords,
# a stream reading a Kinesis data stream emits DataReadFromKinesisStream.Records and leaves IncomingRecords empty.
INGESTED_METRIC = {"DirectPut": "IncomingRecords", "KinesisStreamAsSource": "DataReadFromKinesisStream.Records"}


def stream_type(synth: Synth) -> str:
    (stream,) = synth.of_type("AWS::KinesisFirehose::DeliveryStream").values()
    return str(stream["Properties"]["DeliveryStreamType"])


def alarms_on(synth: Synth, metric: str) -> list[dict[str, Any]]:
    return [p for p in alarms(synth).values() if metric in metric_names(p)]


def test_one_dashboard_per_pipeline(synth: Synth) -> None:
    (dash,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    assert dash["Properties"]["DashboardName"].startswith(default_stack_name(synth.preset))
    body = flat(dash["Properties"]["DashboardBody"])
    wanted = [
        INGESTED_METRIC[stream_type(synth)],  # records ingested
        "RecordsOk",
        "RecordsFailed",
        "RecordsLate",  # transform ok / failed / late (Powertools metrics of the transform)
        "DeliveryToS3.DataFreshness",
        "DeliveryToS3.Success",  # delivery freshness and failures
        "NumberOfNotificationsFailed",
    ]
    if synth.engine == "builtin":
        wanted += ["SeriesScored", "Anomalies", "AlertsSent", "LateRecords", "DuplicateRecords", "Duration"]
        wanted += ["ApproximateNumberOfMessagesVisible"]  # DLQ depth
    if get_preset(synth.preset).ingest == "iot":
        wanted += ["IotRuleErrorActions", "ParseError", "TopicMatch"]
    missing = [w for w in wanted if f'\\"{w}\\"' not in body and f'"{w}"' not in body]
    assert not missing, f"dashboard of {synth.preset}/{synth.engine} lacks {missing}"


def test_operations_topic_is_separate_encrypted_and_tls_only(synth: Synth) -> None:
    ops_id, ops = ops_topic(synth)
    alert_id, _ = synth.by_marker("alert-topic")
    assert ops_id != alert_id
    key_ref = ops["Properties"]["KmsMasterKeyId"]
    key_id = key_ref["Fn::GetAtt"][0]
    assert synth.resources[key_id]["Type"] == "AWS::KMS::Key"
    assert synth.resources[key_id]["Properties"]["EnableKeyRotation"] is True
    key_policy = flat(synth.resources[key_id]["Properties"]["KeyPolicy"])
    assert "cloudwatch.amazonaws.com" in key_policy  # alarms can encrypt their notifications
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synth.of_type("AWS::SNS::TopicPolicy").values()
        if {"Ref": ops_id} in p["Properties"]["Topics"]
    ]
    deny_plain = [s for s in policy if s["Effect"] == "Deny"]
    assert deny_plain and deny_plain[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "alarm:*" in flat(allow["Condition"]["ArnLike"])


def test_every_alarm_notifies_the_operations_topic_only(synth: Synth) -> None:
    ops_id, _ = ops_topic(synth)
    alert_id, _ = synth.by_marker("alert-topic")
    found = alarms(synth)
    assert len(found) >= 5
    for name, props in found.items():
        assert props.get("AlarmActions") == [{"Ref": ops_id}], name
        assert props.get("ActionsEnabled", True) is True, name
        assert {"Ref": alert_id} not in props.get("AlarmActions", []), name


def test_alarms_on_delivery_and_transform_failures(synth: Synth) -> None:
    failing = alarm_named(synth, "DeliveryToS3Failing")
    assert metric_names(failing) == {"DeliveryToS3.Success"}
    assert failing["ComparisonOperator"] == "LessThanThreshold" and failing["Threshold"] == 1
    stale = alarm_named(synth, "DeliveryStale")
    assert metric_names(stale) == {"DeliveryToS3.DataFreshness"}
    rate = alarm_named(synth, "TransformFailureRate")
    assert metric_names(rate) == {"RecordsIn", "RecordsFailed"}
    assert any("100 * failed / rin" in str(m.get("Expression", "")) for m in rate["Metrics"])
    assert rate["Threshold"] == TRANSFORM_FAILURE_PERCENT and rate["TreatMissingData"] == "notBreaching"
    fault = alarm_named(synth, "TransformFunction-Fault")
    assert "Errors" in metric_names(fault)  # a whole batch raising (Firehose retries, then the error prefix)


def test_no_data_alarm_for_streaming_ingest(synth: Synth) -> None:
    spec = get_preset(synth.preset)
    names = [str(p.get("AlarmName", "")) for p in alarms(synth).values()]
    if spec.ingest in ("iot", "kinesis"):
        no_data = alarm_named(synth, "NoData")
        assert metric_names(no_data) == {INGESTED_METRIC[stream_type(synth)]}
        assert (stream_type(synth) == "KinesisStreamAsSource") is (spec.ingest == "kinesis")
        assert no_data["TreatMissingData"] == "breaching"
        period = no_data["Metrics"][0]["MetricStat"]["Period"] if "Metrics" in no_data else no_data["Period"]
        assert period == interval_seconds(spec.interval)
        assert no_data["EvaluationPeriods"] * period <= MAX_EVALUATION_SECONDS
    else:
        assert not any("NoData" in n for n in names)


def test_iot_rule_error_action_alarm_counts_the_error_log(synth: Synth) -> None:
    spec = get_preset(synth.preset)
    filters = synth.of_type("AWS::Logs::MetricFilter")
    if spec.ingest != "iot":
        assert not filters
        return
    (mf,) = filters.values()
    errors_id, _ = synth.by_marker("iot-rule-errors")
    assert mf["Properties"]["LogGroupName"] == {"Ref": errors_id}
    (transform,) = mf["Properties"]["MetricTransformations"]
    assert transform["MetricName"] == "IotRuleErrorActions"
    rule_id, _ = synth.by_marker("iot-rule")
    alarm = alarm_named(synth, "IotRuleErrorAction")
    assert metric_names(alarm) == {"IotRuleErrorActions"}
    assert {"Name": "RuleName", "Value": {"Ref": rule_id}} in alarm["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]


def test_detector_errors_and_missed_schedule(synth: Synth) -> None:
    if synth.engine != "builtin":
        assert not any("DetectorFunction" in str(p.get("AlarmName", "")) for p in alarms(synth).values())
        return
    spec = get_preset(synth.preset)
    single = synth.shards() == 1
    # the fan-out: the merge runs once per run (the missed-run alarm), the state machine's failures are alarmed
    fn_id, _ = synth.by_marker("detector" if single else "detector_merge")
    missed = alarm_named(synth, "DetectorFunction-Usage" if single else "DetectorMergeFunction-Usage")
    assert metric_names(missed) == {"Invocations"}
    assert missed["ComparisonOperator"] == "LessThanThreshold" and missed["Threshold"] == 1
    assert missed["TreatMissingData"] == "breaching"
    stat = missed["Metrics"][0]["MetricStat"]
    assert stat["Period"] == min(MAX_EVALUATION_SECONDS, interval_seconds(spec.interval))
    assert stat["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": fn_id}}]
    if single:
        errors_id, _ = synth.by_marker("detector-errors-alarm")
        assert synth.resources[errors_id]["Properties"]["MetricName"] == "Errors"
        return
    for marker, metric in (
        ("detector-fanout-failed-alarm", "ExecutionsFailed"),
        ("detector-fanout-timeout-alarm", "ExecutionsTimedOut"),
    ):
        alarm_id, _ = synth.by_marker(marker)
        props = synth.resources[alarm_id]["Properties"]
        assert props["MetricName"] == metric and props["Namespace"] == "AWS/States"
        assert props["Threshold"] == 1 and props["AlarmActions"]
    shards_failed = alarm_named(synth, "DetectorShardsFailed")
    assert metric_names(shards_failed) == {"ShardsFailed"} and shards_failed["Threshold"] == 1


def test_every_dead_letter_queue_has_a_not_empty_alarm(synth: Synth) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    if not queues:  # lookout engine without IoT: no function with a DLQ
        assert synth.engine == "lookout" and get_preset(synth.preset).ingest != "iot"
        pytest.skip("no dead-letter queue in this stack")
    watched = set()
    for props in alarms(synth).values():
        if "ApproximateNumberOfMessagesVisible" not in metric_names(props):
            continue
        dims = props.get("Dimensions") or props["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]
        assert props["ComparisonOperator"] in ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")
        assert props["Threshold"] == (0 if props["ComparisonOperator"] == "GreaterThanThreshold" else 1)
        watched |= {d["Value"]["Fn::GetAtt"][0] for d in dims if d["Name"] == "QueueName"}
    assert watched == set(queues), f"DLQs without alarm: {set(queues) - watched}"


def test_uploads_without_processing_raise_the_no_data_alarm(synth: Synth) -> None:
    spec = get_preset(synth.preset)
    names = [str(p.get("AlarmName", "")) for p in alarms(synth).values()]
    if spec.ingest != "s3" or synth.engine != "builtin":
        assert not any("BacktestJobFunction" in n for n in names)
        return
    no_upload = alarm_named(synth, "BacktestJobFunction-Usage")
    assert no_upload["TreatMissingData"] == "breaching"
    assert no_upload["Metrics"][0]["MetricStat"]["Period"] == MAX_EVALUATION_SECONDS


def test_outputs_name_the_dashboard_and_the_operations_topic(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    ops_id, _ = ops_topic(synth)
    assert outputs["OperationsTopicArn"]["Value"] == {"Ref": ops_id}
    assert "DashboardName" in outputs


def test_detector_contained_failures_alarm_at_the_first_occurrence(synth: Synth) -> None:
    from infra.monitoring import DETECTOR_CONTAINED, SHARD_CONTAINED

    if synth.engine != "builtin":
        return
    for name, _, _ in DETECTOR_CONTAINED:
        # the fan-out: what a shard contains is alarmed on the shards' metric, the rest on the merge's
        shard_side = synth.shards() > 1 and name in SHARD_CONTAINED
        alarm = alarm_named(synth, f"DetectorShard{name}" if shard_side else f"Detector{name}")
        assert metric_names(alarm) == {name}
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_firehose_throttling_and_quota_alarms_match_its_source(synth: Synth) -> None:
    if stream_type(synth) == "DirectPut":
        (throttled,) = alarms_on(synth, "ThrottledRecords")
        assert throttled["Threshold"] == 0 and throttled["ComparisonOperator"] == "GreaterThanThreshold"
        for used, limit in (
            ("IncomingRecords", "RecordsPerSecondLimit"),
            ("IncomingBytes", "BytesPerSecondLimit"),
            ("IncomingPutRequests", "PutRequestsPerSecondLimit"),
        ):
            (alarm,) = [a for a in alarms_on(synth, limit) if used in metric_names(a)]
            assert alarm["Threshold"] == FIREHOSE_LIMIT_SHARE, limit
        assert not alarms_on(synth, "ThrottledGetRecords")
    else:  # reading a Kinesis stream: the Direct PUT quotas do not apply, the read side does
        assert not alarms_on(synth, "ThrottledRecords") and not alarms_on(synth, "RecordsPerSecondLimit")
        assert len(alarms_on(synth, "ThrottledGetRecords")) == 1
        (behind,) = alarms_on(synth, "KinesisMillisBehindLatest")
        assert behind["Threshold"] == 120_000  # the default schedule offset, 120 s


def test_the_kinesis_source_stream_is_watched(synth: Synth) -> None:
    streams = synth.of_type("AWS::Kinesis::Stream")
    kinesis_metrics = {"GetRecords.IteratorAgeMilliseconds", "WriteProvisionedThroughputExceeded"}
    kinesis_metrics |= {"PutRecords.ThrottledRecords", "PutRecords.FailedRecords"}
    if not streams:
        assert not [m for m in kinesis_metrics if alarms_on(synth, m)]
        return
    ((stream_id, _),) = streams.items()
    for metric in kinesis_metrics:
        (alarm,) = alarms_on(synth, metric)
        assert stream_id in flat(alarm), f"{metric} alarm does not watch the source stream"
    (age,) = alarms_on(synth, "GetRecords.IteratorAgeMilliseconds")
    assert age["Threshold"] == 120_000


def test_both_topics_alarm_on_failed_notifications(synth: Synth) -> None:
    topic_ids = {synth.by_marker("ops-topic")[0], synth.by_marker("alert-topic")[0]}
    watched = {tid for a in alarms_on(synth, "NumberOfNotificationsFailed") for tid in topic_ids if tid in flat(a)}
    assert watched == topic_ids


def test_identity_and_clock_refusals_alarm_on_the_dimensions_the_transform_emits(
    synth: Synth, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alarm's dimensions are read off the real handler's EMF output, so a renamed dimension breaks the test."""
    from transform import app as transform_app
    from transform.logic import BatchSummary

    from infra.monitoring import SECURITY_REFUSALS

    _, fn = synth.by_marker("transform")
    monkeypatch.setenv(
        "POWERTOOLS_SERVICE_NAME", fn["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    )
    source = "direct_put" if stream_type(synth) == "DirectPut" else "kinesis"
    iot = synth.spec().ingest == "iot"
    for reason, _, iot_only in SECURITY_REFUSALS:
        capsys.readouterr()
        transform_app._emit(BatchSummary(failed_by_reason={reason: 1}), source)
        emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "RecordsFailedByReason" in line]
        (doc,) = emitted
        (dims,) = doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        wanted = [{"Name": d, "Value": doc[d]} for d in sorted(dims)]
        found = [a for a in alarms_on(synth, "RecordsFailedByReason") if alarm_dimensions(a) == wanted]
        if iot_only and not iot:
            assert not found, reason
            continue
        (alarm,) = found
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
