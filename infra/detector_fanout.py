"""Engine ``builtin`` with ``detector_shards`` > 1: the detector as a Step Functions fan-out.

The EventBridge schedule (same cron, offset and ``detector_active`` as the single detector's) starts a state
machine::

    Plan (Pass: the shard list, States.ArrayRange) -> Shards (Map over the list; a Distributed Map above
    INLINE_MAP_MAX_SHARDS) -> Score shard (LambdaInvoke detector_shard, Retry, Catch -> Shard failed) -> Merge
    (LambdaInvoke detector_merge, Retry)

Each shard reads only its own folder ``<interval>/shard=k/`` and state, and writes its results to S3 (the merge
gets their keys: Step Functions' 256 KB payload never holds the points); a shard whose iteration still fails after
its retries is caught (a small ``{"shard", "failed", "error"}`` item), the merge goes on with the others and counts
it (metric ``ShardsFailed``, alarmed in ``infra/monitoring.py``), and the shard catches up on its next run from its
own state. Failed executions are alarmed too (the merge failing, or the whole run timing out).

IAM: one role for all shard iterations, so the shard's grants cover every shard's state (a condition on the
shard's prefix is impossible: the shard number is the invocation's input, not the caller's identity). The shard
role reads the live and historical prefixes and its state prefix and writes the state prefix only (its states and
its results); the merge's role reads the shard results and its own state, and writes its own state only.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct
from sentinel_core import capacity, environment, layout

from infra.alert_topic import AlertTopic
from infra.common import (
    FunctionSpec,
    SentinelFunction,
    acknowledge,
    any_occurrence_alarm,
    encrypted_queue,
    logical_id,
    mark,
    sentinel_key,
)
from infra.config import LOG_RETENTION_NAMES, SentinelConfig
from infra.detector_builtin import detector_environment, grant_model_io, schedule_cron
from infra.state import ANOMALY_TABLE_ACTIONS, StateTables
from infra.storage import DataLake

# An inline Map runs at most 40 iterations at once (Step Functions' documented limit for inline Maps); a
# Distributed Map runs each shard as a child execution, with up to 10,000 at once.
INLINE_MAP_MAX_SHARDS = 40
# Shards scored at once: every shard at once up to 100 (the run's wall time is then the slowest shard's), a tenth of
# an account's default 1,000 concurrent Lambda executions, so a run never starves the transform or the console;
# more shards run in waves (200 shards: two waves, each under the shard timeout).
MAX_CONCURRENCY = 100
# The merge: benchmarks/detector_scale.py --fanout 1000000:20 measured 2.47 s CPU for the merge of 20 shards of
# 50,000 series (target: 30 s); a minute leaves room for the DynamoDB writes and alerts of a bad interval.
MERGE_TIMEOUT_SECONDS = 60
MERGE_MEMORY_MB = 1024  # it holds the anomalous points of one run, not the series (a tenth of a shard's share)
# Lambda service errors worth retrying (throttles and transient faults of the invoke itself).
LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def run_timeout_seconds(config: SentinelConfig) -> int:
    """The whole run: done a minute before the next interval's run starts (as the single detector's timeout)."""
    return max(120, config.interval_seconds - 60)


def waves(shards: int) -> int:
    return -(-shards // MAX_CONCURRENCY)


def shard_timeout_seconds(config: SentinelConfig) -> int:
    """One shard's Lambda timeout: the run's time after the merge, shared by the waves, within Lambda's 15 min."""
    left = run_timeout_seconds(config) - MERGE_TIMEOUT_SECONDS
    return max(60, min(900, left // waves(config.detector_shards)))


class FanoutDetector(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: SentinelConfig,
        lake: DataLake,
        alerts: AlertTopic,
        tables: StateTables,
    ) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        shards = config.detector_shards
        if shards < 2:
            raise ValueError("FanoutDetector is for more than one shard (one shard is BuiltinDetector)")
        self.dlq = encrypted_queue(self, "DeadLetters", "detector-dlq")
        acknowledge(
            self.dlq,
            "AwsSolutions-SQS3",
            "This queue is the dead-letter queue of the schedule rule's state machine target (events that could not "
            "start an execution after their retries); cdk-nag only recognises redrive and function DLQs.",
        )
        env = detector_environment(config, lake, alerts, tables)
        env[environment.DETECTOR_SHARDS] = str(shards)
        shard_timeout = shard_timeout_seconds(config)
        self.shard_fn = SentinelFunction(
            self,
            "Shard",
            config=config,
            fn=FunctionSpec(
                package="detector_shard",
                description=f"Scores one of {shards} detector shards of the closed {spec.interval} interval",
                timeout=Duration.seconds(shard_timeout),
                # detector_max_series is per shard: the memory of one shard holding that many
                memory_mb=capacity.detector_memory_mb(config.detector_max_series),
            ),
            environment=dict(env),
        )
        self.merge_fn = SentinelFunction(
            self,
            "Merge",
            config=config,
            fn=FunctionSpec(
                package="detector_merge",
                description=f"Groups the {shards} shards' anomalies, stores groups and runs, alerts once",
                timeout=Duration.seconds(MERGE_TIMEOUT_SECONDS),
                memory_mb=MERGE_MEMORY_MB,
                reserved_concurrency=1,  # one merge at a time: the open groups are one S3 object
            ),
            environment=dict(env),
        )
        self._grant_shard(config, lake, tables)
        self._grant_merge(config, lake, alerts, tables)
        self.machine = self._state_machine(config, shard_timeout)
        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"Run the {shards}-shard detector {config.schedule_offset_seconds} s after each "
            f"{spec.interval} interval",
            schedule=events.Schedule.cron(**schedule_cron(config)),
            enabled=config.detector_active,  # `sentinel detector activate|deactivate` flips it
        )
        mark(self.rule, "detector-schedule")
        self.rule.add_target(
            targets.SfnStateMachine(
                self.machine, dead_letter_queue=self.dlq, retry_attempts=2, max_event_age=Duration.hours(2)
            )
        )
        period = Duration.minutes(5)
        self.failed_alarm = any_occurrence_alarm(
            self,
            "ExecutionsFailedAlarm",
            self.machine.metric_failed(period=period, statistic="Sum"),
            "A detector run (state machine execution) failed: the merge failed or the run timed out",
            "detector-fanout-failed-alarm",
        )
        self.timed_out_alarm = any_occurrence_alarm(
            self,
            "ExecutionsTimedOutAlarm",
            self.machine.metric_timed_out(period=period, statistic="Sum"),
            "A detector run (state machine execution) did not finish before the next interval's",
            "detector-fanout-timeout-alarm",
        )
        self.dlq_alarm = any_occurrence_alarm(
            self,
            "DeadLettersAlarm",
            self.dlq.metric_approximate_number_of_messages_visible(period=period),
            "A detector schedule event could not start the state machine after its retries",
            "detector-dlq-alarm",
        )

    # -- IAM ------------------------------------------------------------------------------------------------
    def _grant_shard(self, config: SentinelConfig, lake: DataLake, tables: StateTables) -> None:
        # Its state and its results, both under the state prefix (one role for every shard: see the module doc).
        grant_model_io(
            self.shard_fn,
            config,
            lake,
            tables,
            "A shard reads the interval folders (its shard's folder under each), the uploaded history and the "
            "shards' state; keys are generated at run time under these prefixes only, and one role serves "
            "every shard.",
        )

    def _grant_merge(self, config: SentinelConfig, lake: DataLake, alerts: AlertTopic, tables: StateTables) -> None:
        spec, fn, bucket = config.spec, self.merge_fn, lake.bucket
        results = layout.shard_results_prefix(spec)
        state = layout.merge_state_key(spec)
        # Listing lets a missing merge state read as NoSuchKey (the first run) instead of AccessDenied.
        fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListOwnState",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                # ... and the shard results of earlier runs (a merge that failed for good leaves them unread).
                conditions={"StringLike": {"s3:prefix": [state, f"{results}*"]}},
            )
        )
        fn.allow("ReadShardResults", ["s3:GetObject"], [bucket.arn_for_objects(f"{results}*")])
        fn.allow("ReadWriteOwnState", ["s3:GetObject", "s3:PutObject"], [bucket.arn_for_objects(state)])
        fn.allow("DataKey", ["kms:Decrypt", "kms:GenerateDataKey"], [lake.key.key_arn])
        fn.allow("AnomalyTable", ANOMALY_TABLE_ACTIONS, [tables.anomalies.table_arn])
        alerts.allow_publish(fn.role)
        alerts.allow_routes(fn.role, config)
        acknowledge(
            fn.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{results}*]",
            "The merge reads the shard results of each run; their keys (run time, shard) are generated at run time "
            "under this prefix only.",
        )

    # -- the state machine ----------------------------------------------------------------------------------
    def _state_machine(self, config: SentinelConfig, shard_timeout: int) -> sfn.StateMachine:
        shards = config.detector_shards
        plan = sfn.Pass(
            self,
            "Plan",
            comment="The shard list and the schedule's time",
            parameters={
                "shards": sfn.JsonPath.array_range(0, shards - 1, 1),
                "time": sfn.JsonPath.string_at("$.time"),
            },
        )
        score = tasks.LambdaInvoke(
            self,
            "Score shard",
            lambda_function=self.shard_fn.function,
            payload_response_only=True,
            retry_on_service_exceptions=False,  # the retries below, stated
            task_timeout=sfn.Timeout.duration(Duration.seconds(shard_timeout + 30)),
        )
        score.add_retry(errors=LAMBDA_TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2.0)
        # A shard that raised (an S3 or DynamoDB hiccup) gets one more try; a timeout does not (it would run
        # past the interval).
        score.add_retry(errors=["States.TaskFailed"], interval=Duration.seconds(5), max_attempts=1)
        failed = sfn.Pass(
            self,
            "Shard failed",
            comment="Recorded for the merge (the error only: causes stay in the execution history)",
            parameters={
                "shard": sfn.JsonPath.number_at("$.shard"),
                "failed": True,
                "error": sfn.JsonPath.string_at("$.caught.Error"),
            },
        )
        score.add_catch(failed, errors=["States.ALL"], result_path="$.caught")
        map_props = {
            "items_path": "$.shards",
            "item_selector": {
                "shard": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "time": sfn.JsonPath.string_at("$.time"),
            },
            "max_concurrency": min(shards, MAX_CONCURRENCY),
            "result_path": "$.results",
        }
        fan: sfn.Map | sfn.DistributedMap
        if shards <= INLINE_MAP_MAX_SHARDS:
            fan = sfn.Map(self, "Shards", **map_props)  # type: ignore[arg-type]
        else:
            fan = sfn.DistributedMap(self, "Shards", **map_props)  # type: ignore[arg-type]
        fan.item_processor(score)
        merge = tasks.LambdaInvoke(
            self,
            "Merge shards",
            lambda_function=self.merge_fn.function,
            payload=sfn.TaskInput.from_object(
                {"time": sfn.JsonPath.string_at("$.time"), "results": sfn.JsonPath.list_at("$.results")}
            ),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            task_timeout=sfn.Timeout.duration(Duration.seconds(MERGE_TIMEOUT_SECONDS + 30)),
        )
        merge.add_retry(errors=LAMBDA_TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2.0)
        key = sentinel_key(self, "LogsKey", "Metric Sentinel detector state machine logs", "detector-fanout-logs-key")
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptsTheStateMachineLog",
                principals=[iam.ServicePrincipal("logs.amazonaws.com")],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                         "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"],
                resources=["*"],
            )
        )  # fmt: skip
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays(LOG_RETENTION_NAMES[config.log_retention_days]),
            encryption_key=key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=f"Metric Sentinel detector: {shards} shards, then the merge",
            definition_body=sfn.DefinitionBody.from_chainable(plan.next(fan).next(merge)),
            timeout=Duration.seconds(run_timeout_seconds(config)),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        mark(machine, "detector-state-machine")
        for fn in (self.shard_fn, self.merge_fn):
            acknowledge(
                machine.role,
                f"AwsSolutions-IAM5[Resource::<{logical_id(fn.function)}.Arn>:*]",
                "CDK's LambdaInvoke grant covers the function and its versions / aliases (`<arn>:*`): the state "
                "machine invokes exactly these two functions.",
            )
        acknowledge(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing (PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs delivery "
            "(logs:CreateLogDelivery, DescribeLogGroups, ...) support no resource-level permissions.",
        )
        policy = machine.node.try_find_child("DistributedMapPolicy")
        if policy is not None:  # a Distributed Map: the machine starts and manages its own child executions
            split = '{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"' + logical_id(machine) + '"}]}]}'
            for suffix in (":*", "/*:*"):
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                    f"execution:{split}{suffix}]",
                    "A Distributed Map runs each shard as a child execution of this state machine: CDK grants "
                    "describing / stopping exactly this machine's executions, whose ids are made at run time.",
                )
        return machine
