"""Engine ``builtin``: the scheduled detector Lambda on the per-interval folders (the default engine)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct
from sentinel_core import capacity, environment, layout

from infra.alert_topic import AlertTopic
from infra.common import (
    FunctionSpec,
    SentinelFunction,
    acknowledge,
    alerting_environment,
    encrypted_queue,
    failure_alarms,
    logical_id,
    mark,
)
from infra.config import SentinelConfig
from infra.state import ANOMALY_TABLE_ACTIONS, IDEMPOTENCY_ACTIONS, StateTables
from infra.storage import DataLake


def schedule_cron(config: SentinelConfig) -> dict[str, str]:
    """Cron at the detector interval, ``schedule_offset_seconds`` after each interval closes (whole minutes)."""
    step = config.interval_seconds
    offset_min = config.schedule_offset_seconds // 60
    if step < 3600:
        return {"minute": f"{offset_min}/{step // 60}"}
    if step == 3600:
        return {"minute": str(offset_min)}
    return {"minute": str(offset_min % 60), "hour": str(offset_min // 60)}


def detector_timeout_seconds(config: SentinelConfig) -> int:
    """Finish well before the next run (one minute of slack), never above Lambda's 15 minutes."""
    return max(60, min(900, config.interval_seconds - 60))


def detector_environment(
    config: SentinelConfig, lake: DataLake, alerts: AlertTopic, tables: StateTables, own: Mapping[str, str] = {}
) -> dict[str, str]:
    """The environment every detector function reads (the single detector, each shard and the merge): the
    alerting settings, then the function's ``own`` variables, the schedule offset and the series caps (in the
    order the stack has always written them)."""
    env = alerting_environment(config, lake.bucket.bucket_name, alerts.topic.topic_arn, tables.anomalies.table_name)
    env.update(own)
    env[environment.SCHEDULE_OFFSET_SECONDS] = str(config.schedule_offset_seconds)
    env[environment.MAX_SERIES] = str(config.detector_max_series)
    env[environment.MAX_NEW_SERIES] = str(config.detector_max_new_series)
    return env


def grant_model_io(fn: SentinelFunction, config: SentinelConfig, lake: DataLake, tables: StateTables, why: str) -> None:
    """What a run of the model needs (the single detector's and each shard's): list and read the interval folders,
    the uploaded history and the state prefix, write under the state prefix, fall back through the state's older
    versions, the data key, the anomaly table; ``why`` is the cdk-nag acknowledgement of the prefix wildcards."""
    spec, bucket = config.spec, lake.bucket
    read_prefixes = [layout.live_root(spec), layout.historical_prefix(spec), layout.state_prefix(spec)]
    # Listing is scoped to the prefixes it reads: a ListObjects without one of them (or on another prefix) fails.
    fn.role.add_to_policy(
        iam.PolicyStatement(
            sid="ListFolders",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in read_prefixes]}},
        )
    )
    fn.allow("ReadData", ["s3:GetObject"], [bucket.arn_for_objects(f"{p}*") for p in read_prefixes])
    fn.allow("WriteState", ["s3:PutObject"], [bucket.arn_for_objects(f"{layout.state_prefix(spec)}*")])
    # An unusable state falls back to its previous versions (the bucket is versioned): list and read them.
    fn.allow("ListStateVersions", ["s3:ListBucketVersions"], [bucket.bucket_arn])
    fn.allow("ReadStateVersions", ["s3:GetObjectVersion"], [bucket.arn_for_objects(f"{layout.state_prefix(spec)}*")])
    fn.allow("DataKey", ["kms:Decrypt", "kms:GenerateDataKey"], [lake.key.key_arn])
    # groups, feedback (query, mark applied), run records, the alert ledger
    fn.allow("AnomalyTable", ANOMALY_TABLE_ACTIONS, [tables.anomalies.table_arn])
    for p in read_prefixes:
        acknowledge(fn.role, f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{p}*]", why)


class BuiltinDetector(Construct):
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
        self.dlq = encrypted_queue(self, "DeadLetters", "detector-dlq")
        env = detector_environment(
            config, lake, alerts, tables, {environment.IDEMPOTENCY_TABLE: tables.idempotency.table_name}
        )
        self.fn = SentinelFunction(
            self,
            "Detector",
            config=config,
            fn=FunctionSpec(
                package="detector",
                description=f"Scores the closed {spec.interval} interval, stores groups, publishes alerts",
                timeout=Duration.seconds(detector_timeout_seconds(config)),
                memory_mb=capacity.detector_memory_mb(config.detector_max_series),
                reserved_concurrency=1,  # one run at a time: the model state is one S3 object
            ),
            environment=env,
            dead_letter_queue=self.dlq,
        )
        grant_model_io(
            self.fn,
            config,
            lake,
            tables,
            "The detector reads the interval folders, the uploaded history and its own state; object keys are "
            "generated by Firehose / uploads at run time under these prefixes only.",
        )
        self.fn.allow("Idempotency", IDEMPOTENCY_ACTIONS, [tables.idempotency.table_arn])
        alerts.allow_publish(self.fn.role)
        alerts.allow_routes(self.fn.role, config)

        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"Run the detector {config.schedule_offset_seconds} s after each {spec.interval} interval",
            schedule=events.Schedule.cron(**schedule_cron(config)),
            # `sentinel detector activate|deactivate` flips this on the deployed rule without a redeploy.
            enabled=config.detector_active,
        )
        mark(self.rule, "detector-schedule")
        self.rule.add_target(
            targets.LambdaFunction(
                self.fn.function,
                dead_letter_queue=self.dlq,
                retry_attempts=2,
                max_event_age=Duration.hours(2),
            )
        )
        # Async invocations (schedule -> Lambda): two retries, then the DLQ above.
        self.fn.function.configure_async_invoke(retry_attempts=2, max_event_age=Duration.hours(6))
        self.errors_alarm, self.dlq_alarm = failure_alarms(
            self,
            self.fn.function,
            self.dlq,
            marker="detector",
            failed="The detector Lambda failed: an interval may not have been scored",
            dead_lettered="A detector run ended in the dead-letter queue after its retries",
        )
