"""Kinesis Data Streams ingest (the ecommerce preset): an on-demand, KMS-encrypted stream as Firehose's source.

The stream replaces Direct PUT as the delivery stream's source. Firehose reads it with a role of its own that may
only describe and read THIS stream and decrypt with THIS key (``KinesisStreamSourceConfiguration.RoleARN``); the
delivery role the pipeline already has (S3 write, transform invoke) is untouched. Producers get ``grant_write``.

Firehose rejects its own server-side encryption (``DeliveryStreamEncryptionConfigurationInput``) on a delivery
stream whose source is a Kinesis stream — the data is encrypted at rest in the stream with the KMS key here, and in
S3 by the bucket's encryption — so :meth:`attach` removes that property from the delivery stream.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from constructs import Construct
from sentinel_core.spec import PipelineSpec

# What Firehose needs to read a source stream (Kinesis Data Firehose developer guide, "Grant Firehose access to
# your Kinesis data stream"); nothing else.
FIREHOSE_SOURCE_ACTIONS: tuple[str, ...] = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetShardIterator",
    "kinesis:GetRecords",
    "kinesis:ListShards",
)


class KinesisIngest(Construct):
    """An on-demand KMS-encrypted data stream and the least-privilege role Firehose reads it with."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: PipelineSpec,
        key: kms.IKey | None = None,
        retention: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.key: kms.IKey = key or kms.Key(
            self,
            "StreamKey",
            description=f"Metric Sentinel {spec.preset}: encryption of the ingest data stream",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            retention_period=retention or Duration.hours(24),
        )
        account = Stack.of(self).account
        self.source_role = iam.Role(
            self,
            "FirehoseSourceRole",
            description=f"Firehose reads the {spec.preset} ingest stream (and nothing else)",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": account}}
            ),
        )
        self.source_policy = iam.Policy(
            self,
            "FirehoseSourcePolicy",
            statements=[
                iam.PolicyStatement(actions=list(FIREHOSE_SOURCE_ACTIONS), resources=[self.stream.stream_arn]),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.key.key_arn]),
            ],
        )
        self.source_role.attach_inline_policy(self.source_policy)
        CfnOutput(
            self, "StreamName", value=self.stream.stream_name, description="python -m simulator stream --stream-name"
        )

    def attach(self, delivery_stream: firehose.CfnDeliveryStream) -> None:
        """Make ``delivery_stream`` read this stream instead of accepting Direct PUT."""
        delivery_stream.delivery_stream_type = "KinesisStreamAsSource"
        delivery_stream.kinesis_stream_source_configuration = (
            firehose.CfnDeliveryStream.KinesisStreamSourceConfigurationProperty(
                kinesis_stream_arn=self.stream.stream_arn, role_arn=self.source_role.role_arn
            )
        )
        delivery_stream.add_property_deletion_override("DeliveryStreamEncryptionConfigurationInput")
        # Firehose checks the source role's permissions when it creates the delivery stream.
        delivery_stream.node.add_dependency(self.source_policy)

    def grant_write(self, grantee: iam.IGrantable) -> iam.Grant:
        """PutRecord(s) for a producer (the stream's KMS key included)."""
        return self.stream.grant_write(grantee)
