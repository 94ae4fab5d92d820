"""Alert automation: a Lambda on the alert topic sending each affected device a command over IoT Core."""

from __future__ import annotations

from aws_cdk import Arn, ArnComponents, ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct
from sentinel_core import environment as env

from infra.alert_topic import AlertTopic
from infra.common import FunctionSpec, SentinelFunction, acknowledge, encrypted_queue
from infra.config import SentinelConfig
from infra.state import IDEMPOTENCY_ACTIONS


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
        # IAM's '*' also matches '/', so '<root>/*/commands' alone would allow '<root>/a/b/commands'. The deny of
        # two or more levels leaves exactly one: the (verified, thing-name) level of <root>/<thing>/commands.
        self.fn.role.add_to_policy(
            iam.PolicyStatement(
                sid="OneTopicLevelOnly",
                effect=iam.Effect.DENY,
                actions=["iot:Publish"],
                resources=[
                    Arn.format(
                        ArnComponents(
                            service="iot",
                            resource="topic",
                            resource_name=f"{spec.topic_root}/*/*/commands",
                            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                        ),
                        Stack.of(self),
                    )
                ],
            )
        )
        self.fn.allow("FindDataEndpoint", ["iot:DescribeEndpoint"], ["*"])
        self.fn.allow("Idempotency", IDEMPOTENCY_ACTIONS, [idempotency.table_arn])
        acknowledge(
            self.fn.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topic/{spec.topic_root}/*/commands]",
            "Commands go to any device's own command topic (<root>/<thing>/commands); the thing is only known from "
            "the alert at run time. Telemetry and other topics stay out of reach.",
        )
        alerts.topic.add_subscription(subs.LambdaSubscription(self.fn.function, dead_letter_queue=self.dlq))
