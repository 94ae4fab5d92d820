"""Alert topic: KMS-encrypted SNS topic, TLS only, e-mail and SMS subscriptions from context."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct
from sentinel_core import routing

from infra.common import mark, sentinel_key
from infra.config import SentinelConfig


class AlertTopic(Construct):
    def __init__(self, scope: Construct, id_: str, *, config: SentinelConfig) -> None:
        super().__init__(scope, id_)
        self.key = sentinel_key(self, "Key", f"Metric Sentinel {config.preset} alert topic", "alert-key")
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=f"Metric Sentinel {config.preset}",
            master_key=self.key,
            enforce_ssl=True,
        )
        mark(self.topic, "alert-topic")
        for i, email in enumerate(config.alert_emails):
            sub = sns.Subscription(
                self, f"Email{i}", topic=self.topic, protocol=sns.SubscriptionProtocol.EMAIL, endpoint=email
            )
            mark(sub, "alert-email")
        for i, phone in enumerate(config.alert_phones):
            sub = sns.Subscription(
                self, f"Sms{i}", topic=self.topic, protocol=sns.SubscriptionProtocol.SMS, endpoint=phone
            )
            mark(sub, "alert-sms")

    def allow_routes(self, principal: iam.IGrantable, config: SentinelConfig) -> None:
        """Exactly the other targets of the ``alerts`` context key: sns:Publish on each existing topic ARN,
        lambda:InvokeFunction on each function ARN (nothing when every alert goes to this topic). A KMS-encrypted
        existing topic must let this role use its key in the key's own policy (not in this stack)."""
        topics, functions = routing.targets(config.alerts)
        if topics:
            principal.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(sid="PublishAlertTargets", actions=["sns:Publish"], resources=list(topics))
            )
        if functions:
            principal.grant_principal.add_to_principal_policy(
                iam.PolicyStatement(
                    sid="InvokeAlertTargets", actions=["lambda:InvokeFunction"], resources=list(functions)
                )
            )

    def allow_publish(self, principal: iam.IGrantable) -> None:
        """sns:Publish on this topic plus the key use SNS needs to encrypt the message (no wildcard actions)."""
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(sid="PublishAlerts", actions=["sns:Publish"], resources=[self.topic.topic_arn])
        )
        principal.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EncryptAlerts",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[self.key.key_arn],
            )
        )
