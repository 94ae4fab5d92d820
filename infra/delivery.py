"""Delivery: Firehose with the transform Lambda, dynamic partitioning into the per-interval folders.

Output is UNCOMPRESSED on purpose: the Lookout for Metrics metric set reads the same folders (its
``JsonFormatDescriptor.FileCompression`` says NONE), the built-in detector lists and reads them per interval, and
one interval of JSON lines is small; gzip would save storage but every reader would have to agree on it.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from constructs import Construct
from sentinel_core import environment, layout

from infra.common import FunctionSpec, SentinelFunction, acknowledge, log_group, logical_id, mark
from infra.config import FIREHOSE_BUFFER_SECONDS, SentinelConfig
from infra.storage import DataLake

COMPRESSION = "UNCOMPRESSED"
BUFFER_MB = 64  # the minimum Firehose accepts with dynamic partitioning


class Delivery(Construct):
    """Firehose delivery stream (Direct PUT, or a Kinesis data stream as source) -> transform -> S3 folders."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: SentinelConfig,
        lake: DataLake,
        source_stream: kinesis.IStream | None = None,
    ) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        self.transform = SentinelFunction(
            self,
            "Transform",
            config=config,
            fn=FunctionSpec(
                package="transform",
                description="Validates and normalises records, partitions them by their own interval",
                timeout=Duration.seconds(120),
                memory_mb=512,
            ),
            environment={
                environment.SCHEDULE_OFFSET_SECONDS: str(config.schedule_offset_seconds),
                # the shard partition key; absent for one shard, so that stack's transform is as it was
                **({environment.DETECTOR_SHARDS: str(config.detector_shards)} if config.detector_shards > 1 else {}),
            },
        )
        self.logs: logs.LogGroup = log_group(self, "Logs", config)
        stream_logs = logs.LogStream(self, "DeliveryLogs", log_group=self.logs, log_stream_name="S3Delivery")
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": Aws.ACCOUNT_ID}}
            ),
            description="Firehose: write the per-interval folders, call the transform, log delivery errors",
        )
        bucket = lake.bucket
        object_arns = [
            bucket.arn_for_objects(f"{layout.live_root(spec)}*"),
            bucket.arn_for_objects(f"{layout.error_root(spec)}*"),
        ]
        statements = [
            iam.PolicyStatement(
                sid="Bucket",
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="WriteLiveAndErrorFolders",
                actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                resources=object_arns,
            ),
            iam.PolicyStatement(
                sid="EncryptThroughS3",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[lake.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="CallTransform",
                actions=["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                resources=[self.transform.function.function_arn],
            ),
            iam.PolicyStatement(
                sid="LogDeliveryErrors", actions=["logs:PutLogEvents"], resources=[self.logs.log_group_arn]
            ),
        ]
        if source_stream is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadSourceStream",
                    actions=[
                        "kinesis:DescribeStream",
                        "kinesis:DescribeStreamSummary",
                        "kinesis:GetShardIterator",
                        "kinesis:GetRecords",
                        "kinesis:ListShards",
                    ],
                    resources=[source_stream.stream_arn],
                )
            )
        policy = iam.Policy(self, "Policy", statements=statements, roles=[self.role])
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{layout.live_root(spec)}*]",
            "Firehose writes one object per interval folder and buffer flush; keys are generated at run time under "
            "the live root only.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{layout.error_root(spec)}*]",
            "Firehose writes rejected records under the error root with run-time keys.",
        )

        dest = firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
            bucket_arn=bucket.bucket_arn,
            role_arn=self.role.role_arn,
            prefix=layout.firehose_prefix(spec, config.detector_shards),
            error_output_prefix=layout.firehose_error_prefix(spec),
            buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                interval_in_seconds=FIREHOSE_BUFFER_SECONDS, size_in_m_bs=BUFFER_MB
            ),
            compression_format=COMPRESSION,
            encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                    awskms_key_arn=lake.key.key_arn
                )
            ),
            cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                enabled=True, log_group_name=self.logs.log_group_name, log_stream_name=stream_logs.log_stream_name
            ),
            dynamic_partitioning_configuration=firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
                enabled=True, retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(duration_in_seconds=300)
            ),
            processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                enabled=True,
                processors=[
                    firehose.CfnDeliveryStream.ProcessorProperty(
                        type="Lambda",
                        parameters=[
                            firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                parameter_name="LambdaArn", parameter_value=self.transform.function.function_arn
                            ),
                            firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                parameter_name="NumberOfRetries", parameter_value="3"
                            ),
                            firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                parameter_name="BufferSizeInMBs", parameter_value="1"
                            ),
                            firehose.CfnDeliveryStream.ProcessorParameterProperty(
                                parameter_name="BufferIntervalInSeconds", parameter_value=str(FIREHOSE_BUFFER_SECONDS)
                            ),
                        ],
                    )
                ],
            ),
        )
        if source_stream is None:
            self.stream = firehose.CfnDeliveryStream(
                self,
                "Stream",
                delivery_stream_type="DirectPut",
                delivery_stream_encryption_configuration_input=(
                    firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                        key_type="AWS_OWNED_CMK"
                    )
                ),
                extended_s3_destination_configuration=dest,
            )
        else:
            # Kinesis source: the data stream carries the encryption at rest (Firehose rejects SSE input here).
            self.stream = firehose.CfnDeliveryStream(
                self,
                "Stream",
                delivery_stream_type="KinesisStreamAsSource",
                kinesis_stream_source_configuration=firehose.CfnDeliveryStream.KinesisStreamSourceConfigurationProperty(
                    kinesis_stream_arn=source_stream.stream_arn, role_arn=self.role.role_arn
                ),
                extended_s3_destination_configuration=dest,
            )
            acknowledge(
                self.stream,
                "AwsSolutions-KDF1",
                "Kinesis-sourced delivery stream: the source data stream is KMS-encrypted; Firehose does not accept "
                "server-side encryption input for a stream source.",
            )
        self.stream.node.add_dependency(policy)
        mark(self.stream, "delivery-stream")

    @property
    def stream_arn(self) -> str:
        return self.stream.attr_arn
