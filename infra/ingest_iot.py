"""IoT ingest: the topic rule forwarding device telemetry to Firehose, and the device policy template."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct
from sentinel_core.device_policy import device_policy_document

from infra.common import log_group, mark
from infra.config import SentinelConfig
from infra.delivery import Delivery

SQL_VERSION = "2016-03-23"


def rule_sql(config: SentinelConfig) -> str:
    """Every message on any device's telemetry topic, wrapped with the publishing thing's name
    (``PipelineSpec.iot_rule_sql``); the transform checks each reading's location against that thing."""
    return config.spec.iot_rule_sql()


class IotIngest(Construct):
    def __init__(self, scope: Construct, id_: str, *, config: SentinelConfig, delivery: Delivery) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        self.error_logs = log_group(self, "RuleErrors", config)
        mark(self.error_logs, "iot-rule-errors")
        self.role = iam.Role(
            self,
            "RuleRole",
            assumed_by=iam.ServicePrincipal(
                "iot.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="IoT topic rule: put telemetry into the one delivery stream, log failed actions",
        )
        policy = iam.Policy(
            self,
            "RulePolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="PutIntoDeliveryStream",
                    actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
                    resources=[delivery.stream_arn],
                ),
                iam.PolicyStatement(
                    sid="LogFailedActions",
                    actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                    resources=[self.error_logs.log_group_arn],
                ),
            ],
        )
        self.rule = iot.CfnTopicRule(
            self,
            "Rule",
            topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                sql=rule_sql(config),
                aws_iot_sql_version=SQL_VERSION,
                rule_disabled=False,
                description=f"Metric Sentinel {spec.preset}: device telemetry to Firehose",
                actions=[
                    iot.CfnTopicRule.ActionProperty(
                        firehose=iot.CfnTopicRule.FirehoseActionProperty(
                            delivery_stream_name=delivery.stream.ref,
                            role_arn=self.role.role_arn,
                            separator="\n",
                            batch_mode=False,
                        )
                    )
                ],
                error_action=iot.CfnTopicRule.ActionProperty(
                    cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
                        log_group_name=self.error_logs.log_group_name, role_arn=self.role.role_arn, batch_mode=False
                    )
                ),
            ),
        )
        self.rule.node.add_dependency(policy)
        mark(self.rule, "iot-rule")
        # One policy for every device, built on ${iot:Connection.Thing.ThingName}; `simulator provision` attaches
        # the same document (sentinel_core.device_policy) with the thing name written out.
        self.device_policy = iot.CfnPolicy(
            self,
            "DevicePolicy",
            policy_document=device_policy_document(spec, Aws.REGION, Aws.ACCOUNT_ID),
        )
        mark(self.device_policy, "device-policy")
