"""Kinesis Data Streams ingest (the ecommerce preset): an on-demand, KMS-encrypted stream as Firehose's source.

The stack hands :attr:`KinesisIngest.stream` to ``Delivery`` (its ``source_stream``), which makes the delivery
stream ``KinesisStreamAsSource`` and lets the Firehose role describe and read THIS stream only. What the stream adds
on top, in :meth:`allow_firehose`: decrypting with THIS stream's key, in its own policy that the delivery stream
depends on (Firehose checks its role when the delivery stream is created). Producers are the account's own
principals: the stack grants none (an operator's IAM identity, or the simulator's credentials, needs
``kinesis:PutRecords`` and the key's ``kms:GenerateDataKey``).

Firehose refuses its own server-side encryption input on a Kinesis-sourced delivery stream: the data is encrypted
at rest here (customer-managed key, yearly rotation) and in S3 by the data lake's key.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from infra.common import acknowledge, mark, sentinel_key
from infra.config import SentinelConfig
from infra.delivery import Delivery

RETENTION = Duration.hours(24)


class KinesisIngest(Construct):
    """An on-demand KMS-encrypted data stream feeding the delivery stream."""

    def __init__(self, scope: Construct, id_: str, *, config: SentinelConfig) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        self.key = sentinel_key(self, "Key", f"Metric Sentinel {spec.preset} ingest data stream", "stream-key")
        self.stream = kinesis.Stream(
            self,
            "Stream",
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            retention_period=RETENTION,
        )
        mark(self.stream, "ingest-stream")
        acknowledge(
            self.stream,
            "AwsSolutions-KDS3",
            "A customer-managed key on purpose: its use is limited by IAM to the Firehose role (decrypt via Kinesis) "
            "and the producers granted write, where aws/kinesis would let any principal of the account that may read "
            "the stream decrypt it; the extra KMS cost is per request and small at on-demand volumes.",
        )
        CfnOutput(
            self,
            "StreamName",
            value=self.stream.stream_name,
            description="Kinesis data stream: python -m simulator stream --preset ecommerce --stream-name <this>",
        )

    def allow_firehose(self, delivery: Delivery) -> iam.Policy:
        """Let the delivery role decrypt this stream's records (reading it is ``Delivery``'s own statement)."""
        policy = iam.Policy(
            self,
            "FirehoseDecrypt",
            roles=[delivery.role],
            statements=[
                iam.PolicyStatement(
                    sid="DecryptSourceStream",
                    actions=["kms:Decrypt"],
                    resources=[self.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"kinesis.{Aws.REGION}.amazonaws.com"}},
                )
            ],
        )
        delivery.stream.node.add_dependency(policy)
        return policy
