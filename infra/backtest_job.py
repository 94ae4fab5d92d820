"""Backtest job (loyalty, engine ``builtin``): S3 upload of a CSV -> Lambda -> anomaly groups and alerts.

* An S3 event notification on ``layout.upload_prefix(spec)`` with suffix ``.csv`` invokes the function
  (``backtest_job.app.lambda_handler``) asynchronously; two retries, then the event goes to an encrypted SQS
  dead-letter queue (kept 14 days) so no upload is lost unnoticed; alarms on function errors and on the DLQ.
* Lambda, not Step Functions: ``benchmarks/loyalty.py`` measures a 2-year x 200-location file (146k rows) far
  inside the 15-minute limit on one vCPU (1,769 MB is where Lambda gives a full vCPU) with bounded memory, so one
  invocation fits with a wide margin; a state machine would add a service, a role and a payload hand-off for
  nothing. The README ``presets`` section records the figures.
* Least privilege: read and write objects under the upload prefix only (the input, and its ``.errors.csv`` /
  ``.report.json`` next to it), the data key through S3, the three DynamoDB item calls the store and the alert
  ledger make on the anomaly table, publish to the alert topic; the DLQ is written by the Lambda service.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct
from sentinel_core import layout

from infra.alert_topic import AlertTopic
from infra.common import (
    FunctionSpec,
    SentinelFunction,
    acknowledge,
    alerting_environment,
    encrypted_queue,
    failure_alarms,
    logical_id,
)
from infra.config import SentinelConfig
from infra.state import StateTables
from infra.storage import DataLake

MEMORY_MB = 1769  # one full vCPU
TIMEOUT = Duration.minutes(15)
TABLE_ACTIONS: list[str] = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


class BacktestJob(Construct):
    """The S3-triggered backtest function with its DLQ, alarms and least-privilege grants."""

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
        self.prefix = layout.upload_prefix(spec)
        self.dlq = encrypted_queue(self, "DeadLetters", "backtest-dlq")
        env = alerting_environment(config, lake.bucket.bucket_name, alerts.topic.topic_arn, tables.anomalies.table_name)
        self.fn = SentinelFunction(
            self,
            "Job",
            config=config,
            fn=FunctionSpec(
                package="backtest_job",
                description=f"Backtests each CSV uploaded under {self.prefix}: groups, summary and top alerts",
                timeout=TIMEOUT,
                memory_mb=MEMORY_MB,
            ),
            environment=env,
            dead_letter_queue=self.dlq,
        )
        fn = self.fn
        bucket = lake.bucket
        fn.allow(
            "ReadUploadsWriteReports", ["s3:GetObject", "s3:PutObject"], [bucket.arn_for_objects(f"{self.prefix}*")]
        )
        fn.allow(
            "DataKey",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [lake.key.key_arn],
        )
        fn.allow("AnomalyTable", TABLE_ACTIONS, [tables.anomalies.table_arn])
        alerts.allow_publish(fn.role)
        alerts.allow_routes(fn.role, config)
        acknowledge(
            fn.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{self.prefix}*]",
            "Users upload files with their own names under the upload prefix; the job reads them and writes the "
            "per-row error report and the run report next to each one, under that prefix only.",
        )
        # Async invocations (S3 -> Lambda): two retries, then the DLQ.
        fn.function.configure_async_invoke(retry_attempts=2, max_event_age=Duration.hours(6))
        bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(fn.function),
            s3.NotificationKeyFilter(prefix=self.prefix, suffix=".csv"),
        )
        self._acknowledge_notification_handler()

        self.errors_alarm, self.dlq_alarm = failure_alarms(
            self,
            fn.function,
            self.dlq,
            marker="backtest",
            failed="The backtest job failed on an upload (retried, then its S3 event goes to the DLQ)",
            dead_lettered="An upload's S3 event ended in the backtest DLQ after its retries: it was not processed",
        )

    def _acknowledge_notification_handler(self) -> None:
        """CDK's singleton BucketNotificationsHandler (it writes the bucket's notification configuration)."""
        stack = Stack.of(self)
        for child in stack.node.children:
            if not child.node.id.startswith("BucketNotificationsHandler"):
                continue
            for rule, reason in (
                (
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's bucket-notifications custom resource handler (deploy time only) uses the basic execution "
                    "managed policy for its own logs.",
                ),
                (
                    "AwsSolutions-IAM5[Resource::*]",
                    "s3:PutBucketNotification on the handler's role: CDK's custom resource needs it at deploy time; "
                    "it runs only when the stack changes the notification configuration.",
                ),
            ):
                acknowledge(child, rule, reason)
