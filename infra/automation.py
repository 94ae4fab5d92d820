"""Alert automation: a Lambda on the alert topic sending each affected device a command over IoT Core."""

from __future__ import annotations

from aws_cdk import Arn, ArnComponents, ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct
from sentinel_core import environment as env

from infra.alert_topic import AlertTopic
from infra.common import FunctionSpec, SentinelFunction, acknowledge, encrypted_queue
from infra.config import SentinelConfig
from infra.state import ITEM_ACTIONS


class Automation(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, config: SentinelConfig, alerts: AlertTopic, idempotency: ddb.ITable
    ) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        self.dlq = encrypted_queue(self, "DeadLetters", "automation-dlq")
        self.fn = SentinelFunction(
            self,
            "Automation",
            config=config,
            fn=FunctionSpec(
                package="automation",
                description="Turns each alert into an IoT command on the affected device's command topic",
                timeout=Duration.seconds(30),
                memory_mb=256,
            ),
            environment={
                env.IDEMPOTENCY_TABLE: idempotency.table_name,
                env.ALERT_TOPIC_ARN: alerts.topic.topic_arn,
                env.DETECTOR_ID: config.detector_id,
            },
            dead_letter_queue=self.dlq,
        )
        command_topics = Arn.format(
            ArnComponents(
                service="iot",
                resource="topic",
                resource_name=f"{spec.topic_root}/*/commands",
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            ),
            Stack.of(self),
        )
        self.fn.allow("SendCommands", ["iot:Publish"], [command_topics])
        self.fn.allow("FindDataEndpoint", ["iot:DescribeEndpoint"], ["*"])
        self.fn.allow("Idempotency", ITEM_ACTIONS, [idempotency.table_arn])
        acknowledge(
            self.fn.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topic/{spec.topic_root}/*/commands]",
            "Commands go to any device's own command topic (<root>/<thing>/commands); the thing is only known from "
            "the alert at run time. Telemetry and other topics stay out of reach.",
        )
        alerts.topic.add_subscription(subs.LambdaSubscription(self.fn.function, dead_letter_queue=self.dlq))
