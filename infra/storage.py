"""Data lake: the bucket Firehose writes the per-interval folders to, and its server access log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct
from sentinel_core import layout

from infra.common import mark, sentinel_key
from infra.config import SentinelConfig

SHARD_RESULTS_DAYS = 7  # see DataLake._shard_results_rule


class DataLake(Construct):
    """KMS-encrypted (rotating key), versioned, TLS-only, private bucket with lifecycle rules and access logs."""

    def __init__(self, scope: Construct, id_: str, *, config: SentinelConfig) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        self.key = sentinel_key(self, "Key", f"Metric Sentinel {spec.preset} data lake", "data-key")
        # Server access logs cannot be delivered to SSE-KMS buckets: S3-managed keys here.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(config.data_retention_days),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        mark(self.access_logs, "access-log-bucket")  # cdk-nag S1 knows a log target needs no logs of its own
        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireLiveData",
                    prefix=layout.live_root(spec),
                    expiration=Duration.days(config.data_retention_days),
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(30),
                        )
                    ]
                    if config.data_retention_days > 60
                    else None,
                ),
                s3.LifecycleRule(
                    id="ExpireRejectedRecords",
                    prefix=layout.error_root(spec),
                    expiration=Duration.days(min(90, config.data_retention_days)),
                ),
                s3.LifecycleRule(id="ExpireOldVersions", noncurrent_version_expiration=Duration.days(30)),
                s3.LifecycleRule(id="AbortUploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
                *self._shard_results_rule(config),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        mark(self.bucket, "data-bucket")

    @staticmethod
    def _shard_results_rule(config: SentinelConfig) -> list[s3.LifecycleRule]:
        """Sharded detector only: the shards' hand-offs to the merge expire after a week. The merge reads them
        within the hour (its own run, or the next runs' catch-up window: ``detector.merge.LATE_WINDOW``); a week
        keeps them for looking into a failed run. One shard writes none, so its template has no such rule."""
        if config.detector_shards <= 1:
            return []
        return [
            s3.LifecycleRule(
                id="ExpireShardResults",
                prefix=layout.shard_results_prefix(config.spec),
                expiration=Duration.days(SHARD_RESULTS_DAYS),
            )
        ]
