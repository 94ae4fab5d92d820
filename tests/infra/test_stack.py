"""Assertions on every synthesized (preset x engine) template: stages, key properties, least privilege."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from sentinel_core import layout
from sentinel_core.spec import get_preset

from infra.common import MARKER_METADATA_KEY, METRICS_NAMESPACE
from infra.config import FIREHOSE_BUFFER_SECONDS, SentinelConfig, default_detector_id
from infra.delivery import BUFFER_MB
from tests.support.assembly import Synth, SynthCache

# Every synth here uses the configuration's defaults for what it does not set.
DEFAULTS = SentinelConfig.from_context({})


def flat(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_every_stage_is_there_once(synth: Synth) -> None:
    markers = synth.markers()
    expected = {"data-bucket", "access-log-bucket", "data-key", "delivery-stream", "transform", "alert-topic"}
    if synth.engine == "builtin":
        expected |= {"detector-schedule", "detector-dlq", "anomaly-table", "idempotency-table"}
        if synth.shards() > 1:  # the fan-out: no single detector
            expected |= {"detector_shard", "detector_merge", "detector-state-machine"}
            assert "detector" not in markers
        else:
            expected |= {"detector"}
            assert not markers & {"detector_shard", "detector_merge", "detector-state-machine"}
        assert "lookout-detector" not in markers
    else:
        expected |= {"lookout-detector", "lookout-alert"}
        assert "detector" not in markers and "anomaly-table" not in markers
    if get_preset(synth.preset).ingest == "iot":
        expected |= {"iot-rule", "device-policy", "automation", "automation-dlq", "idempotency-table"}
    else:
        assert "iot-rule" not in markers and "automation" not in markers
    assert expected <= markers
    t = Template.from_json(synth.template)
    t.resource_count_is("AWS::KinesisFirehose::DeliveryStream", 1)
    t.resource_count_is("AWS::LookoutMetrics::AnomalyDetector", 1 if synth.engine == "lookout" else 0)
    t.resource_count_is("AWS::LookoutMetrics::Alert", 1 if synth.engine == "lookout" else 0)
    t.resource_count_is("AWS::IoT::TopicRule", 1 if synth.preset == "air-quality" else 0)


def test_spec_matches_preset(synth: Synth) -> None:
    assert synth.spec() == get_preset(synth.preset)


def test_firehose_writes_the_layout(synth: Synth) -> None:
    spec = synth.spec()
    _, stream = synth.by_marker("delivery-stream")
    dest = stream["Properties"]["ExtendedS3DestinationConfiguration"]
    assert dest["Prefix"] == layout.firehose_prefix(spec, synth.shards())
    assert ("shard=" in dest["Prefix"]) == (synth.shards() > 1)
    assert dest["ErrorOutputPrefix"] == layout.firehose_error_prefix(spec)
    assert dest["BufferingHints"] == {"IntervalInSeconds": FIREHOSE_BUFFER_SECONDS, "SizeInMBs": BUFFER_MB}
    assert dest["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert dest["CompressionFormat"] == "UNCOMPRESSED"
    assert dest["CloudWatchLoggingOptions"]["Enabled"] is True
    assert "KMSEncryptionConfig" in dest["EncryptionConfiguration"]
    bucket_id, _ = synth.by_marker("data-bucket")
    assert dest["BucketARN"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    (proc,) = dest["ProcessingConfiguration"]["Processors"]
    params = {p["ParameterName"]: p["ParameterValue"] for p in proc["Parameters"]}
    transform_id, _ = synth.by_marker("transform")
    assert proc["Type"] == "Lambda" and params["LambdaArn"] == {"Fn::GetAtt": [transform_id, "Arn"]}
    sources = synth.of_type("AWS::Kinesis::Stream")
    if spec.ingest == "kinesis" and sources:
        # Kinesis ingest: the data stream (KMS-encrypted at rest) is the source; Firehose takes no SSE input then.
        (source_id,) = sources
        assert stream["Properties"]["DeliveryStreamType"] == "KinesisStreamAsSource"
        source = stream["Properties"]["KinesisStreamSourceConfiguration"]
        assert source["KinesisStreamARN"] == {"Fn::GetAtt": [source_id, "Arn"]}
        assert "DeliveryStreamEncryptionConfigurationInput" not in stream["Properties"]
    else:
        assert stream["Properties"]["DeliveryStreamType"] == "DirectPut"
        assert stream["Properties"]["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}


def test_functions_share_asset_layer_logs_tracing_and_spec(synth: Synth) -> None:
    spec_json = synth.spec().to_json()
    functions = synth.of_type("AWS::Lambda::Function")
    assert functions
    groups = synth.of_type("AWS::Logs::LogGroup")
    for lid, fn in functions.items():
        if lid.startswith("BucketNotificationsHandler"):
            continue  # CDK's deploy-time handler of Custom::S3BucketNotifications (the loyalty upload trigger)
        p = fn["Properties"]
        package = fn["Metadata"][MARKER_METADATA_KEY]  # a function's marker is its handler package
        assert p["Handler"] == f"{package}.app.lambda_handler"
        assert p["Runtime"] == "python3.12"
        assert p["Architectures"] == ["arm64"]
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert len(p["Layers"]) == 1  # Powertools: tests/infra/test_powertools_layer.py checks which build
        env = p["Environment"]["Variables"]
        assert env["SENTINEL_SPEC"] == spec_json
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
        assert env["POWERTOOLS_SERVICE_NAME"] == package
        log_ref = p["LoggingConfig"]["LogGroup"]["Ref"]
        assert groups[log_ref]["Properties"]["RetentionInDays"] == DEFAULTS.log_retention_days, lid
        assert fn["Metadata"]["aws:asset:path"].startswith("asset.")
        asset = synth.outdir / fn["Metadata"]["aws:asset:path"]
        assert (asset / package / "app.py").exists() and (asset / "sentinel_core" / "layout.py").exists()
        assert not list(asset.rglob("__pycache__"))
    for lid, group in groups.items():
        assert "RetentionInDays" in group["Properties"], lid


def test_builtin_detector_wiring(synth: Synth) -> None:
    if synth.engine != "builtin" or synth.shards() > 1:
        pytest.skip("the single builtin detector only (the fan-out: tests/infra/test_fanout_stack.py)")
    t = Template.from_json(synth.template)
    spec = synth.spec()
    det_id, det = synth.by_marker("detector")
    env = det["Properties"]["Environment"]["Variables"]
    bucket_id, _ = synth.by_marker("data-bucket")
    table_id, _ = synth.by_marker("anomaly-table")
    idem_id, _ = synth.by_marker("idempotency-table")
    topic_id, _ = synth.by_marker("alert-topic")
    assert env["DATA_BUCKET"] == {"Ref": bucket_id}
    assert env["ANOMALY_TABLE"] == {"Ref": table_id}
    assert env["IDEMPOTENCY_TABLE"] == {"Ref": idem_id}
    assert env["ALERT_TOPIC_ARN"] == {"Ref": topic_id}
    assert env["DETECTOR_ID"] == default_detector_id(spec.preset)
    assert env["SCHEDULE_OFFSET_SECONDS"] == str(DEFAULTS.schedule_offset_seconds)
    assert env["ALERT_FILTER"] == DEFAULTS.alert_filter_json
    assert det["Properties"]["ReservedConcurrentExecutions"] == 1
    assert 60 <= det["Properties"]["Timeout"] < max(120, {"PT5M": 300, "PT10M": 600}.get(spec.interval, 901))
    assert "TargetArn" in det["Properties"]["DeadLetterConfig"]
    _, rule = synth.by_marker("detector-schedule")
    minute = DEFAULTS.schedule_offset_seconds // 60  # whole minutes after the interval closes
    expected = {
        "PT5M": f"cron({minute}/5 * * * ? *)",
        "PT10M": f"cron({minute}/10 * * * ? *)",
        "P1D": f"cron({minute} 0 * * ? *)",
    }
    assert rule["Properties"]["ScheduleExpression"] == expected[spec.interval]
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [det_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2 and "DeadLetterConfig" in target
    t.has_resource_properties("AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2})
    t.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": det_id}}]},
    )
    _, table = synth.by_marker("anomaly-table")
    tp = table["Properties"]
    assert tp["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert tp["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert tp["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert tp["SSESpecification"]["SSEEnabled"] is True
    _, idem = synth.by_marker("idempotency-table")
    assert idem["Properties"]["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idem["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    for queue in synth.of_type("AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_lookout_metric_set_reads_what_firehose_writes(synth: Synth) -> None:
    if synth.engine != "lookout":
        pytest.skip("lookout engine only")
    spec = synth.spec()
    bucket_id, _ = synth.by_marker("data-bucket")
    _, det = synth.by_marker("lookout-detector")
    (ms,) = det["Properties"]["MetricSetList"]
    src = ms["MetricSource"]["S3SourceConfig"]
    if spec.ingest == "s3":  # loyalty: backtest configuration on the uploaded CSV files, no live template
        assert "TemplatedPathList" not in src
        (hist,) = src["HistoricalDataPathList"]
        assert render_join(hist, {bucket_id: "BUCKET"}) == f"s3://BUCKET/{layout.upload_prefix(spec)}"
        csv_fmt = src["FileFormatDescriptor"]["CsvFormatDescriptor"]
        assert (
            csv_fmt["ContainsHeader"] is True and csv_fmt["Delimiter"] == "," and csv_fmt["FileCompression"] == "NONE"
        )
        assert ms["TimestampColumn"] == {"ColumnName": spec.timestamp_column, "ColumnFormat": "yyyy-MM-dd HH:mm:ss"}
        return
    (templated,) = src["TemplatedPathList"]
    assert render_join(templated, {bucket_id: "BUCKET"}) == layout.lookout_path_template("BUCKET", spec)
    (hist,) = src["HistoricalDataPathList"]
    assert render_join(hist, {bucket_id: "BUCKET"}) == f"s3://BUCKET/{layout.historical_prefix(spec)}"
    assert src["FileFormatDescriptor"]["JsonFormatDescriptor"]["FileCompression"] == "NONE"  # Firehose: UNCOMPRESSED
    assert ms["MetricSetFrequency"] == spec.interval
    assert det["Properties"]["AnomalyDetectorConfig"]["AnomalyDetectorFrequency"] == spec.interval
    assert ms["Offset"] == DEFAULTS.schedule_offset_seconds
    assert ms["TimestampColumn"] == {"ColumnName": spec.timestamp_column, "ColumnFormat": "yyyy-MM-dd HH:mm:ss"}
    assert ms["DimensionList"] == list(spec.dimensions)
    assert [(m["MetricName"], m["AggregationFunction"]) for m in ms["MetricList"]] == [
        (m.name, m.aggregation) for m in spec.measures
    ]
    _, alert = synth.by_marker("lookout-alert")
    topic_id, _ = synth.by_marker("alert-topic")
    assert alert["Properties"]["AlertSensitivityThreshold"] == round(spec.severity_threshold)
    assert alert["Properties"]["Action"]["SNSConfiguration"]["SnsTopicArn"] == {"Ref": topic_id}
    warnings = synth.messages("warning")
    assert any("end of support on 2025-10-09" in text and "cannot be deployed" in text for _, text in warnings)


def test_builtin_engine_has_no_end_of_support_warning(synth: Synth) -> None:
    if synth.engine != "builtin":
        pytest.skip("builtin engine only")
    assert not [w for w in synth.messages("warning") if "end of support" in w[1]]
    assert not synth.messages("error")


def test_iot_rule_and_device_policy(synth: Synth) -> None:
    spec = synth.spec()
    if spec.ingest != "iot":
        pytest.skip("IoT ingest only")
    stream_id, _ = synth.by_marker("delivery-stream")
    _, rule = synth.by_marker("iot-rule")
    payload = rule["Properties"]["TopicRulePayload"]
    # Each message wrapped with the publishing thing's name (its topic level), the payload opaque inside.
    assert payload["Sql"] == (
        f"SELECT encode(*, 'base64') AS payload, topic(3) AS thing FROM '{spec.topic_root}/+/telemetry'"  # noqa: S608
    )
    (action,) = payload["Actions"]
    assert action["Firehose"]["Separator"] == "\n"
    assert action["Firehose"]["DeliveryStreamName"] == {"Ref": stream_id}
    errors_id, _ = synth.by_marker("iot-rule-errors")
    assert payload["ErrorAction"]["CloudwatchLogs"]["LogGroupName"] == {"Ref": errors_id}
    # The rule's role may put records into that one stream only.
    role_id = action["Firehose"]["RoleArn"]["Fn::GetAtt"][0]
    stmts = policy_statements_of_role(synth, role_id)
    firehose_res = [s["Resource"] for s in stmts if "firehose:PutRecord" in as_list(s["Action"])]
    assert firehose_res == [{"Fn::GetAtt": [stream_id, "Arn"]}]
    _, policy = synth.by_marker("device-policy")
    doc = flat(policy["Properties"]["PolicyDocument"])
    assert "${iot:Connection.Thing.ThingName}" in doc
    assert f"topic/{spec.topic_root}/${{iot:Connection.Thing.ThingName}}/telemetry" in doc
    assert f"topicfilter/{spec.topic_root}/${{iot:Connection.Thing.ThingName}}/commands" in doc
    for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert "*" not in flat(stmt["Action"]) and stmt["Resource"] != "*"
    # Automation may publish commands only.
    _, auto = synth.by_marker("automation")
    auto_role = auto["Properties"]["Role"]["Fn::GetAtt"][0]
    publish = [s for s in policy_statements_of_role(synth, auto_role) if "iot:Publish" in as_list(s["Action"])]
    allow = [s for s in publish if s["Effect"] == "Allow"]
    deny = [s for s in publish if s["Effect"] == "Deny"]
    assert len(allow) == 1 and f":topic/{spec.topic_root}/*/commands" in flat(allow[0]["Resource"])
    # IAM's '*' matches '/' too: the deny of two or more levels leaves exactly one (<root>/<thing>/commands).
    assert len(deny) == 1 and f":topic/{spec.topic_root}/*/*/commands" in flat(deny[0]["Resource"])
    import fnmatch

    def allowed(topic: str) -> bool:
        return fnmatch.fnmatchcase(topic, f"{spec.topic_root}/*/commands") and not fnmatch.fnmatchcase(
            topic, f"{spec.topic_root}/*/*/commands"
        )

    assert allowed(f"{spec.topic_root}/B-101/commands")
    assert not allowed(f"{spec.topic_root}/a/b/commands") and not allowed(f"{spec.topic_root}/B-101/telemetry")


def test_alert_topic_encrypted_tls_only_with_subscriptions(synth_cache: SynthCache) -> None:
    s = synth_cache(
        "air-quality",
        "builtin",
        alert_emails="ops@example.com,oncall@example.org",
        alert_phones='["+14155550100"]',
        ops_emails="platform@example.com",
    )
    t = Template.from_json(s.template)
    key_id, _ = s.by_marker("alert-key")
    _, topic = s.by_marker("alert-topic")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    t.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    topic_id, _ = s.by_marker("alert-topic")
    ops_topic_id, _ = s.by_marker("ops-topic")
    subs = [r["Properties"] for r in s.of_type("AWS::SNS::Subscription").values()]
    people = {(p["TopicArn"]["Ref"], p["Protocol"], p["Endpoint"]) for p in subs if p["Protocol"] in ("email", "sms")}
    # Anomaly alerts and pipeline alarms reach different people: ops_emails subscribe to the operations topic only.
    assert people == {
        (topic_id, "email", "ops@example.com"),
        (topic_id, "email", "oncall@example.org"),
        (topic_id, "sms", "+14155550100"),
        (ops_topic_id, "email", "platform@example.com"),
    }


def test_data_bucket_is_locked_down(synth: Synth) -> None:
    t = Template.from_json(synth.template)
    logs_id, _ = synth.by_marker("access-log-bucket")
    key_id, key = synth.by_marker("data-key")
    assert key["Properties"]["EnableKeyRotation"] is True
    _, bucket = synth.by_marker("data-bucket")
    p = bucket["Properties"]
    assert p["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    (enc,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert enc["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert {r["Id"] for r in p["LifecycleConfiguration"]["Rules"]} >= {"ExpireLiveData", "ExpireOldVersions"}
    t.resource_properties_count_is(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
        4 if synth.engine == "builtin" else 2,  # + the console's web and CDN-log buckets (builtin engine)
    )


# -- IAM ------------------------------------------------------------------------------------------------------
def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def all_statements(synth: Synth) -> list[tuple[str, dict[str, Any]]]:
    """Every policy statement in the template: IAM policies, inline role policies, resource and key policies."""
    out: list[tuple[str, dict[str, Any]]] = []
    for lid, res in synth.resources.items():
        p = res.get("Properties", {})
        docs = [p.get("PolicyDocument"), p.get("KeyPolicy"), p.get("AssumeRolePolicyDocument")]
        policies = p.get("Policies", []) or []  # a Cognito user pool's Policies is a dict (password policy)
        docs += [pol.get("PolicyDocument") for pol in policies if isinstance(pol, dict)]
        for doc in docs:
            if isinstance(doc, dict):
                out += [(lid, s) for s in doc.get("Statement", [])]
    return out


def policy_statements_of_role(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for res in synth.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} in res["Properties"].get("Roles", []):
            out += res["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_no_wildcard_actions(synth: Synth) -> None:
    """No Allow statement anywhere names a wildcard action (``*``, ``s3:*``, ``kms:Get*``...).

    The only wildcard actions in the template are the Deny statements that refuse every non-TLS request
    (``aws:SecureTransport=false``) on buckets, queues and topics — denying everything is their point.
    """
    stmts = all_statements(synth)
    assert stmts
    for lid, s in stmts:
        actions = as_list(s.get("Action", []))
        wild = [a for a in actions if "*" in str(a)]
        if not wild:
            continue
        assert s["Effect"] == "Deny", f"{lid}: wildcard action {wild} in an Allow statement"
        assert s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}, f"{lid}: {s}"
    for lid, s in stmts:
        assert "NotAction" not in s, f"{lid} uses NotAction"


SFN_LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
}


def test_allow_statements_never_wildcard_everything(synth: Synth) -> None:
    """Resource ``*`` only where AWS offers no resource-level permission (and key policies' own key)."""
    allowed_star = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "iot:DescribeEndpoint"}
    # the fan-out's state machine: X-Ray sampling and CloudWatch Logs' vended-log delivery (no resource ARNs)
    allowed_star |= {"xray:GetSamplingRules", "xray:GetSamplingTargets", *SFN_LOG_DELIVERY}
    checked = 0
    for lid, s in all_statements(synth):
        if s["Effect"] != "Allow" or s.get("Resource") != "*":
            continue
        checked += 1
        if synth.resources[lid]["Type"] == "AWS::KMS::Key":
            root = ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]
            if s["Principal"] == {"Service": "logs.amazonaws.com"}:  # the state machine's log group key (fan-out)
                assert "kms:Decrypt" in as_list(s["Action"]) and not any("*" in a for a in as_list(s["Action"]))
                continue
            if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}:  # operations topic key (monitoring)
                assert set(as_list(s["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}, f"{lid}: {s}"
                assert s["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
                continue
            assert s["Principal"] == {"AWS": {"Fn::Join": ["", root]}}
            continue
        assert set(as_list(s["Action"])) <= allowed_star, f"{lid}: {s}"
    assert checked, "no Resource-* statement at all: the transform's X-Ray grant is one in every stack"


# -- helpers --------------------------------------------------------------------------------------------------
def render_join(value: Any, refs: dict[str, str]) -> str:
    """Render a string or ``Fn::Join`` of strings and ``Ref``s (the bucket name) to text."""
    if isinstance(value, str):
        return value
    sep, parts = value["Fn::Join"]
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif "Ref" in part:
            out.append(refs[part["Ref"]])
        else:
            raise AssertionError(f"unexpected intrinsic {part}")
    return str(sep).join(out)


def test_outputs_the_operator_tools_read(synth: Synth) -> None:
    """`cdk deploy --outputs-file` feeds the simulator's feedback and stream commands: the names must exist."""
    outputs = Template.from_json(synth.template).find_outputs("*")
    expected = {"DataBucketName", "DeliveryStreamName", "AlertTopicArn", "LivePrefix", "HistoricalPrefix"}
    if synth.engine == "builtin":
        single = synth.shards() == 1
        expected |= {"DetectorFunctionName" if single else "DetectorStateMachineArn", "DetectorId", "AnomalyTableName"}
        expected |= {"DetectorScheduleRuleName", "DetectorResumeKey"}
        assert outputs["DetectorId"]["Value"] == default_detector_id(synth.preset)
    assert expected <= set(outputs)
