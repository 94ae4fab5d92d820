"""``LocalPipeline``: the synthesized stack played offline on top of moto.

moto keeps state (S3, SNS, SQS, DynamoDB, Kinesis, IoT registry) but does not route an IoT publish to a topic
rule, call a Firehose processor, evaluate ``!{...}`` prefixes, forward Kinesis to Firehose, fire schedules or run
Python Lambdas in-process. This class does exactly those parts, reading every setting from the template.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from local_aws.firehose import BufferedRecord, Ledger, LocalFirehose
from local_aws.functions import LocalFunction, is_code_asset_function
from local_aws.iot import RuleSql, RuleSqlError
from local_aws.schedule import Schedule
from local_aws.stepfunctions import Execution, StateMachine, StateMachineError
from local_aws.template import ACCOUNT, REGION, Resource, Template, TemplateError, load_assembly


@dataclass
class TopicRule:
    name: str
    sql: RuleSql
    firehose_actions: list[tuple[str, str, bool]]  # (stream name, separator, batch mode)
    error_action: dict[str, Any] | None
    enabled: bool


@dataclass
class ScheduledTarget:
    name: str
    schedule: Schedule
    targets: list[tuple[str, str | None]]  # (function arn, constant input JSON or None)
    arn: str
    state: str = "ENABLED"  # the template's State: the rule is created in moto with it; moto's is read at tick


@dataclass
class SnsLambdaSubscription:
    topic_arn: str
    function_arn: str
    subscription_arn: str
    filter_policy: dict[str, Any] | None
    filter_scope: str | None


@dataclass
class S3Trigger:
    bucket: str
    function_arn: str
    events: list[str]
    prefix: str
    suffix: str


def _utc(ts: datetime | None) -> datetime | None:
    return None if ts is None else (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC))


class LocalPipeline:
    """Plays one synthesized stack. Use inside ``moto.mock_aws()`` (or as a context manager, which opens it).

    Time is simulated: every method takes ``now`` (UTC); omitted, the pipeline's clock (the latest time seen) is
    used. Buffers whose Firehose interval elapsed are delivered whenever the clock moves.
    """

    def __init__(self, template: Template) -> None:
        self.template = template
        self.region = template.region
        self.account = template.account
        self.ledger = Ledger()
        self.now: datetime = datetime.now(UTC).replace(microsecond=0)
        self.functions: dict[str, LocalFunction] = {}
        for r in template.of_type("AWS::Lambda::Function"):
            if is_code_asset_function(template, r):
                fn = LocalFunction.from_resource(template, r)
                self.functions[fn.arn] = fn
        self.firehoses: dict[str, LocalFirehose] = {
            r.physical: LocalFirehose.from_resource(template, r)
            for r in template.of_type("AWS::KinesisFirehose::DeliveryStream")
        }
        self.state_machines: dict[str, StateMachine] = {
            r.arn: self._state_machine(r) for r in template.of_type("AWS::StepFunctions::StateMachine")
        }
        self.rules = [self._rule(r) for r in template.of_type("AWS::IoT::TopicRule")]
        self.schedules = [s for r in template.of_type("AWS::Events::Rule") if (s := self._schedule(r))]
        self.sns_lambda: list[SnsLambdaSubscription] = []
        self.s3_triggers: list[S3Trigger] = []
        self.unsupported: list[str] = []  # resources that exist in the template but are not played
        self.iot_error_log: list[dict[str, Any]] = []  # error-action deliveries to CloudWatch Logs
        self.async_failures: list[dict[str, Any]] = []  # async invocations that exhausted their retries
        self._invoke_configs: dict[str, dict[str, Any]] = {}
        for r in template.of_type("AWS::Lambda::EventInvokeConfig"):
            cfg = template.props(r)
            self._invoke_configs[str(cfg.get("FunctionName", ""))] = cfg
        self._last_tick: datetime | None = None
        self._sns_seen: dict[str, int] = {}
        self._started = False
        self._clients: dict[str, Any] = {}
        self._mock: Any = None

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_assembly(
        cls, outdir: str | Path, stack: str | None = None, region: str = REGION, account: str = ACCOUNT
    ) -> LocalPipeline:
        templates = load_assembly(outdir, stack, region, account)
        if len(templates) > 1:
            names = ", ".join(t.stack_name for t in templates)
            raise TemplateError(f"{outdir} holds several stacks ({names}); pass stack=")
        return cls(templates[0])

    def __enter__(self) -> LocalPipeline:
        from moto import mock_aws

        self._mock = mock_aws()
        self._mock.start()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    # -- clients --------------------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        # One client per service: creating a boto3 client costs ~20 ms, and put_kinesis / put_firehose run per record.
        cached = self._clients.get(service)
        if cached is None:
            cached = self._clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return cached

    # -- resource creation in moto --------------------------------------------------------------------------
    def start(self) -> LocalPipeline:
        """Create the template's stateful resources in moto (idempotent). Call inside ``mock_aws``."""
        if self._started:
            return self
        t = self.template
        s3, sns, sqs, ddb, kinesis = (self.client(s) for s in ("s3", "sns", "sqs", "dynamodb", "kinesis"))
        for r in t.of_type("AWS::S3::Bucket"):
            s3.create_bucket(Bucket=r.physical, CreateBucketConfiguration={"LocationConstraint": self.region})
            if (t.props(r).get("VersioningConfiguration") or {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=r.physical, VersioningConfiguration={"Status": "Enabled"})
        for r in t.of_type("AWS::SQS::Queue"):
            sqs.create_queue(QueueName=r.physical)
        for r in t.of_type("AWS::SNS::Topic"):
            sns.create_topic(Name=r.physical)
        for r in t.of_type("AWS::SNS::Subscription"):
            p = t.props(r)
            self._subscribe(
                sns, p["TopicArn"], p["Protocol"], p["Endpoint"], p.get("FilterPolicy"), p.get("FilterPolicyScope")
            )
        for r in t.of_type("AWS::DynamoDB::Table"):
            self._create_table(ddb, r)
        for r in t.of_type("AWS::Kinesis::Stream"):
            mode = (t.props(r).get("StreamModeDetails") or {}).get("StreamMode")
            if mode != "ON_DEMAND":
                raise TemplateError(f"{r.logical_id}: only on-demand Kinesis streams are played (the stack's kind)")
            kinesis.create_stream(StreamName=r.physical, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        for r in t.of_type("Custom::S3BucketNotifications"):
            self._s3_notifications(r)
        events = self.client("events")
        for sched in self.schedules:
            events.put_rule(Name=sched.name, ScheduleExpression=sched.schedule.expression, State=sched.state)
        played = {
            "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::DynamoDB::Table",
            "AWS::Kinesis::Stream", "AWS::Lambda::Function", "AWS::KinesisFirehose::DeliveryStream",
            "AWS::IoT::TopicRule", "AWS::Events::Rule", "Custom::S3BucketNotifications",
            "AWS::StepFunctions::StateMachine",
        }  # fmt: skip
        passive = ("AWS::IAM::", "AWS::KMS::", "AWS::Logs::", "AWS::Lambda::Permission", "AWS::S3::BucketPolicy",
                   "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::CDK::", "AWS::IoT::Policy",
                   "AWS::CloudWatch::", "AWS::SSM::", "AWS::Lambda::EventInvokeConfig")  # fmt: skip
        self.unsupported = sorted(
            f"{r.logical_id} ({r.type})"
            for r in t.resources.values()
            if r.type not in played and not r.type.startswith(passive)
        )
        self._started = True
        return self

    def _create_table(self, ddb: Any, r: Resource) -> None:
        p = self.template.props(r)
        kwargs: dict[str, Any] = {
            "TableName": r.physical,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
        }
        if p.get("BillingMode") != "PAY_PER_REQUEST":
            raise TemplateError(
                f"{r.logical_id}: only on-demand (PAY_PER_REQUEST) tables are played (the stack's kind)"
            )
        kwargs["BillingMode"] = "PAY_PER_REQUEST"
        gsis = p.get("GlobalSecondaryIndexes")
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = [
                {k: v for k, v in g.items() if k in ("IndexName", "KeySchema", "Projection")} for g in gsis
            ]
        ddb.create_table(**kwargs)
        ttl = p.get("TimeToLiveSpecification") or {}
        if ttl.get("Enabled"):
            ddb.update_time_to_live(
                TableName=r.physical, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )

    def _subscribe(
        self, sns: Any, topic_arn: str, protocol: str, endpoint: str, policy: Any, scope: str | None
    ) -> None:
        if protocol == "lambda":
            self.sns_lambda.append(
                SnsLambdaSubscription(topic_arn, endpoint, f"{topic_arn}:{uuid.uuid4()}", policy or None, scope)
            )
            return
        attrs: dict[str, str] = {}
        if policy:
            attrs["FilterPolicy"] = json.dumps(policy)
        if scope:
            attrs["FilterPolicyScope"] = scope
        sns.subscribe(TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint, Attributes=attrs)

    def _s3_notifications(self, r: Resource) -> None:
        p = self.template.props(r)
        bucket = str(p.get("BucketName", ""))
        for cfg in (p.get("NotificationConfiguration") or {}).get("LambdaFunctionConfigurations", []) or []:
            rules = {
                x["Name"].lower(): x["Value"]
                for x in ((cfg.get("Filter") or {}).get("Key") or {}).get("FilterRules", [])
            }
            self.s3_triggers.append(
                S3Trigger(
                    bucket,
                    cfg["LambdaFunctionArn"],
                    cfg.get("Events", []),
                    rules.get("prefix", ""),
                    rules.get("suffix", ""),
                )
            )

    def _rule(self, r: Resource) -> TopicRule:
        payload = self.template.props(r)["TopicRulePayload"]
        actions = payload.get("Actions", []) or []
        others = sorted({kind for a in actions for kind in a if kind != "Firehose"})
        if others:
            raise TemplateError(f"topic rule {r.logical_id}: actions {others} are not played locally (only Firehose)")
        firehose = [
            (
                str(a["Firehose"]["DeliveryStreamName"]),
                str(a["Firehose"].get("Separator", "")),
                bool(a["Firehose"].get("BatchMode", False)),
            )
            for a in actions
            if "Firehose" in a
        ]
        return TopicRule(
            name=r.physical,
            sql=RuleSql.parse(str(payload["Sql"])),
            firehose_actions=firehose,
            error_action=payload.get("ErrorAction"),
            enabled=not payload.get("RuleDisabled", False),
        )

    def _state_machine(self, r: Resource) -> StateMachine:
        p = self.template.props(r)
        raw = p.get("DefinitionString", p.get("Definition"))
        try:
            definition = json.loads(raw) if isinstance(raw, str) else raw
            if not isinstance(definition, dict):
                raise StateMachineError("no DefinitionString or Definition")
            return StateMachine(r.physical, r.arn, definition, self.invoke)
        except (ValueError, StateMachineError) as exc:
            raise TemplateError(f"state machine {r.logical_id}: {exc}") from exc

    def _schedule(self, r: Resource) -> ScheduledTarget | None:
        p = self.template.props(r)
        expr = p.get("ScheduleExpression")
        if not expr:
            return None
        targets = [(str(tg["Arn"]), tg.get("Input")) for tg in p.get("Targets", []) or []]
        state = str(p.get("State") or "ENABLED")
        return ScheduledTarget(r.physical, Schedule.parse(str(expr)), targets, r.arn, state)

    def _rule_enabled(self, sched: ScheduledTarget) -> bool:
        """The rule's state in moto NOW: ``events:EnableRule`` / ``DisableRule`` (an operator's CLI, a test) take
        effect on the next tick, as on a deployed rule."""
        return str(self.client("events").describe_rule(Name=sched.name)["State"]) == "ENABLED"

    # -- lookups --------------------------------------------------------------------------------------------
    def function(self, key: str) -> LocalFunction:
        """A function by handler package (``transform``, ``detector``...), logical id, name or ARN."""
        for fn in self.functions.values():
            if key in (fn.package, fn.resource.logical_id, fn.name, fn.arn) or key.startswith(fn.arn + ":"):
                return fn
        known = ", ".join(sorted(f"{f.package} ({f.resource.logical_id})" for f in self.functions.values()))
        raise KeyError(f"no function {key!r} in the template; known: {known}")

    def resource(self, key: str) -> Resource:
        """A resource by logical id or physical name."""
        for r in self.template.resources.values():
            if key in (r.logical_id, r.physical):
                return r
        raise KeyError(f"no resource {key!r} in the template")

    def physical_name(self, logical_id: str) -> str:
        return self.template.resources[logical_id].physical

    @property
    def data_bucket(self) -> str:
        """The bucket the (first) Firehose stream writes to."""
        if not self.firehoses:
            buckets = self.template.of_type("AWS::S3::Bucket")
            return buckets[0].physical if buckets else ""
        return next(iter(self.firehoses.values())).bucket

    def env_of(self, function: str) -> dict[str, str]:
        return dict(self.function(function).environment)

    def handler_packages(self) -> set[str]:
        """The top packages of every handler the template runs (``transform``, ``detector``, ...)."""
        return {fn.package for fn in self.functions.values()}

    # -- clock ----------------------------------------------------------------------------------------------
    def _advance(self, now: datetime | None) -> datetime:
        """Move the clock to ``now`` and deliver every Firehose buffer that fell due on the way."""
        target = _utc(now) or self.now
        self._self_check()
        for fh in self.firehoses.values():
            due = fh.deadline()
            if due is not None and due <= target:
                self._deliver(fh, due)
        if target > self.now:
            self.now = target
        return target

    def _self_check(self) -> None:
        if not self._started:
            self.start()

    def _deliver(self, fh: LocalFirehose, at: datetime) -> None:
        fh.deliver(at, self.client("s3"), lambda arn, event: self._invoke_arn(arn, event), self.ledger)

    # -- invoking functions ---------------------------------------------------------------------------------
    def _invoke_arn(self, arn: str, event: Any) -> Any:
        return self.invoke(arn, event)

    def invoke(self, function: str, event: Any) -> Any:
        """Invoke a function (by role, logical id, name or ARN) with ``event``; SNS fan-out follows."""
        fn = self.function(function)
        self.ledger.lambda_invocations[fn.name] = self.ledger.lambda_invocations.get(fn.name, 0) + 1
        try:
            return fn.invoke(event, {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region})
        finally:
            self.pump_sns()

    def invoke_async(self, function: str, event: Any) -> Any:
        """An asynchronous invocation (EventBridge, SNS, S3 triggers): a raising function is retried
        ``MaximumRetryAttempts`` times (EventInvokeConfig, default 2), then the event goes to the function's
        ``DeadLetterConfig`` / the ``OnFailure`` destination (SQS or SNS), else to ``async_failures``. Returns the
        response, or the last exception."""
        fn = self.function(function)
        cfg = self._invoke_configs.get(fn.name) or self._invoke_configs.get(fn.arn) or {}
        attempts = int(cfg.get("MaximumRetryAttempts", 2)) + 1
        error: Exception | None = None
        for _ in range(attempts):
            try:
                return self.invoke(fn.arn, event)
            except Exception as exc:  # the function failed: Lambda retries async events
                error = exc
        assert error is not None
        record = {
            "version": "1.0",
            "timestamp": self.now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{fn.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
        }
        on_failure = str(((cfg.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination", ""))
        dlq = str((self.template.props(fn.resource).get("DeadLetterConfig") or {}).get("TargetArn", ""))
        delivered = False
        for target, body in ((on_failure, record), (dlq, event)):
            if target.startswith("arn:aws:sqs:"):
                url = f"https://sqs.{self.region}.amazonaws.com/{self.account}/{target.rsplit(':', 1)[-1]}"
                self.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(body, default=str))
                delivered = True
            elif target.startswith("arn:aws:sns:"):
                self.client("sns").publish(TopicArn=target, Message=json.dumps(body, default=str))
                delivered = True
        if not delivered:
            self.async_failures.append(record)
        return error

    # -- Step Functions -------------------------------------------------------------------------------------
    def state_machine(self, key: str) -> StateMachine:
        """A state machine by name or ARN."""
        for sm in self.state_machines.values():
            if key in (sm.name, sm.arn):
                return sm
        raise KeyError(f"no state machine {key!r} in the template; known: {', '.join(sorted(self.state_machines))}")

    def start_execution(self, state_machine: str, payload: Any, now: datetime | None = None) -> Execution:
        """``StartExecution``, run to its end in simulated time (nothing passes during it); a failed execution
        is counted in the ledger and returned, never raised (as for a real StartExecution)."""
        at = self._advance(now)
        execution = self.state_machine(state_machine).start_execution(payload, now=at)
        self.ledger.executions += 1
        if execution.status != "SUCCEEDED":
            self.ledger.executions_failed += 1
        return execution

    # -- IoT Core -------------------------------------------------------------------------------------------
    def publish(
        self, topic: str, payload: bytes | str | Mapping[str, Any], now: datetime | None = None, client_id: str = ""
    ) -> int:
        """An MQTT publish: every enabled rule whose filter matches runs its actions. Returns matched rules."""
        at = self._advance(now)
        if isinstance(payload, Mapping):
            raw = json.dumps(payload).encode()
        else:
            raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        self.ledger.iot_messages += 1
        matched = 0
        for rule in self.rules:
            if not rule.enabled:
                continue
            try:
                message = rule.sql.apply(topic, raw, at, client_id)
            except RuleSqlError as exc:
                self._iot_error(rule, topic, raw, "SQL", str(exc), at)
                matched += 1
                continue
            if message is None:
                continue
            matched += 1
            for stream, separator, batch in rule.firehose_actions:
                try:
                    self._firehose_action(stream, message, separator, batch, at)
                except (KeyError, ValueError) as exc:
                    self._iot_error(rule, topic, raw, "Firehose", str(exc), at)
        return matched

    def _firehose_action(self, stream: str, message: bytes, separator: str, batch: bool, at: datetime) -> None:
        if stream not in self.firehoses:
            raise KeyError(f"delivery stream {stream!r} not found")
        if batch:
            items = json.loads(message)
            if not isinstance(items, list):
                raise ValueError("batchMode needs a JSON array payload")
            parts = [json.dumps(i).encode() for i in items]
        else:
            parts = [message]
        for part in parts:
            self.put_firehose(stream, part + separator.encode(), at)

    def _iot_error(self, rule: TopicRule, topic: str, payload: bytes, action: str, message: str, at: datetime) -> None:
        """IoT's error action: a JSON document with the failure, delivered where the rule says."""
        self.ledger.iot_rule_errors += 1
        doc = {
            "ruleName": rule.name,
            "topic": topic,
            "cloudwatchTraceId": str(uuid.uuid4()),
            "clientId": "",
            "base64OriginalPayload": base64.b64encode(payload).decode(),
            "failures": [{"failedAction": f"{action}Action", "failedResource": rule.name, "errorMessage": message}],
            "timestamp": int(at.timestamp() * 1000),
        }
        ea = rule.error_action or {}
        if "S3" in ea:
            key = str(ea["S3"].get("Key", "iot-errors/${timestamp()}")).replace("${timestamp()}", str(doc["timestamp"]))
            self.client("s3").put_object(Bucket=ea["S3"]["BucketName"], Key=key, Body=json.dumps(doc).encode())
        elif "Sqs" in ea:
            self.client("sqs").send_message(QueueUrl=ea["Sqs"]["QueueUrl"], MessageBody=json.dumps(doc))
        elif "Sns" in ea:
            self.client("sns").publish(TopicArn=ea["Sns"]["TargetArn"], Message=json.dumps(doc))
        elif "Firehose" in ea and ea["Firehose"]["DeliveryStreamName"] in self.firehoses:
            self.put_firehose(ea["Firehose"]["DeliveryStreamName"], json.dumps(doc).encode() + b"\n", at)
        else:  # CloudwatchLogs (or no error action: kept here so nothing vanishes)
            self.iot_error_log.append({"logGroup": (ea.get("CloudwatchLogs") or {}).get("LogGroupName", ""), **doc})

    # -- Firehose / Kinesis ---------------------------------------------------------------------------------
    def put_firehose(
        self, stream: str, data: bytes | str, now: datetime | None = None, _kinesis: dict[str, Any] | None = None
    ) -> None:
        """Direct PUT of one record (``PutRecord``)."""
        at = self._advance(now)
        fh = self.firehoses[stream]
        raw = data.encode() if isinstance(data, str) else bytes(data)
        self.ledger.records_in += 1
        if fh.put(BufferedRecord(raw, at, _kinesis)):
            self._deliver(fh, at)

    def put_kinesis(
        self, stream: str, data: bytes | str, partition_key: str = "pk", now: datetime | None = None
    ) -> str:
        """``PutRecord`` on a Kinesis stream (moto keeps it); a Firehose reading the stream receives it too."""
        at = self._advance(now)
        raw = data.encode() if isinstance(data, str) else bytes(data)
        name = self.resource(stream).physical if stream not in self._stream_names() else stream
        resp = self.client("kinesis").put_record(StreamName=name, Data=raw, PartitionKey=partition_key)
        self.ledger.kinesis_records += 1
        arn = f"arn:aws:kinesis:{self.region}:{self.account}:stream/{name}"
        meta = {
            "shardId": resp["ShardId"],
            "partitionKey": partition_key,
            "approximateArrivalTimestamp": int(at.timestamp() * 1000),
            "sequenceNumber": resp["SequenceNumber"],
            "subsequenceNumber": "",
        }
        for fh in self.firehoses.values():
            if fh.source_stream_arn == arn:
                self.put_firehose(fh.name, raw, at, _kinesis=meta)
        return str(resp["SequenceNumber"])

    def _stream_names(self) -> set[str]:
        return {r.physical for r in self.template.of_type("AWS::Kinesis::Stream")}

    def flush(self, now: datetime | None = None, force: bool = False) -> None:
        """Deliver buffers that are due at ``now``; ``force`` delivers every buffer (end of a run)."""
        at = self._advance(now)
        if force:
            for fh in self.firehoses.values():
                if fh.buffer:
                    self._deliver(fh, at)

    @property
    def pending(self) -> int:
        return sum(len(fh.buffer) for fh in self.firehoses.values())

    # -- S3 uploads -----------------------------------------------------------------------------------------
    def upload(self, bucket: str, key: str, body: bytes | str, now: datetime | None = None) -> int:
        """Put an object and fire the bucket's Lambda notifications (S3 event shape). Returns triggered calls."""
        at = self._advance(now)
        raw = body.encode() if isinstance(body, str) else bytes(body)
        name = bucket if bucket not in self.template.resources else self.physical_name(bucket)
        resp = self.client("s3").put_object(Bucket=name, Key=key, Body=raw)
        n = 0
        for trig in self.s3_triggers:
            if trig.bucket != name or not key.startswith(trig.prefix) or not key.endswith(trig.suffix):
                continue
            if not any(e in ("s3:ObjectCreated:*", "s3:ObjectCreated:Put") for e in trig.events):
                continue
            event = {
                "Records": [
                    {
                        "eventVersion": "2.1",
                        "eventSource": "aws:s3",
                        "awsRegion": self.region,
                        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        "eventName": "ObjectCreated:Put",
                        "s3": {
                            "s3SchemaVersion": "1.0",
                            "bucket": {"name": name, "arn": f"arn:aws:s3:::{name}"},
                            "object": {"key": key, "size": len(raw), "eTag": str(resp.get("ETag", "")).strip('"')},
                        },
                    }
                ]
            }
            self.invoke_async(trig.function_arn, event)
            n += 1
        return n

    # -- EventBridge schedules ------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[tuple[str, datetime, Any]]:
        """Fire every ENABLED schedule due in (last tick, now], in time order, after delivering the Firehose buffers
        that were due by then. Returns (function or state machine name, fire time, response, the exception after
        retries, or the execution summary of a state machine target)."""
        target = _utc(now) or self.now
        running = [s for s in self.schedules if self._rule_enabled(s)]  # a disabled rule fires nothing
        fires = sorted(
            ((t, s) for s in running for t in s.schedule.fire_times(self._last_tick, target)),
            key=lambda x: (x[0], x[1].name),
        )
        results: list[tuple[str, datetime, Any]] = []
        for at, sched in fires:
            self._advance(at)
            for arn, constant in sched.targets:
                event = self._schedule_event(sched, at, constant)
                self.ledger.scheduled_invocations += 1
                if arn in self.state_machines:
                    execution = self.start_execution(arn, event, now=at)
                    results.append((self.state_machines[arn].name, at, execution.to_dict()))
                else:
                    results.append((self.function(arn).name, at, self.invoke_async(arn, event)))
        self._advance(target)
        self._last_tick = target
        return results

    def _schedule_event(self, sched: ScheduledTarget, at: datetime, constant: str | None) -> Any:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if constant is not None:
            return json.loads(constant)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": stamp,
            "region": self.region,
            "resources": [sched.arn],
            "detail": {},
        }

    # -- SNS -> Lambda --------------------------------------------------------------------------------------
    def pump_sns(self) -> int:
        """Deliver new SNS messages to Lambda subscriptions (moto delivers SQS/e-mail/SMS itself)."""
        if not self.sns_lambda:
            return 0
        from moto.sns.models import sns_backends
        from moto.sns.utils import FilterPolicyMatcher

        backend = sns_backends[self.account][self.region]
        delivered = 0
        for topic_arn in sorted({s.topic_arn for s in self.sns_lambda}):
            topic = backend.topics.get(topic_arn)
            if topic is None:
                continue
            seen = self._sns_seen.get(topic_arn, 0)
            new = topic.sent_notifications[seen:]
            self._sns_seen[topic_arn] = seen + len(new)
            for message_id, message, subject, attributes, _group in new:
                for sub in (s for s in self.sns_lambda if s.topic_arn == topic_arn):
                    text = _lambda_message(message)
                    if sub.filter_policy and not FilterPolicyMatcher(sub.filter_policy, sub.filter_scope).matches(
                        attributes, text
                    ):
                        continue
                    event = _sns_event(sub, message_id, text, subject, attributes, self.now)
                    self.ledger.sns_deliveries += 1
                    delivered += 1
                    self.invoke_async(sub.function_arn, event)
        return delivered


def _lambda_message(message: str) -> str:
    """With MessageStructure=json the stored message is the per-protocol document: Lambda gets 'lambda' or
    'default'. (moto does not keep the structure flag; a JSON object whose 'default' is a string is taken as one.)"""
    try:
        doc = json.loads(message)
    except ValueError:
        return message
    if isinstance(doc, dict) and isinstance(doc.get("default"), str):
        return str(doc.get("lambda", doc["default"]))
    return message


def _sns_event(
    sub: SnsLambdaSubscription,
    message_id: str,
    message: str,
    subject: str | None,
    attributes: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    attrs = {
        k: {"Type": v.get("DataType", "String"), "Value": v.get("StringValue", v.get("BinaryValue", ""))}
        for k, v in (attributes or {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": sub.subscription_arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": sub.topic_arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": (now + timedelta(0)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "SignatureVersion": "1",
                    "Signature": "local",
                    "SigningCertUrl": "https://sns.local/cert.pem",
                    "UnsubscribeUrl": f"https://sns.local/?Action=Unsubscribe&SubscriptionArn={sub.subscription_arn}",
                    "MessageAttributes": attrs,
                },
            }
        ]
    }
