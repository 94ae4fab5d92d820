"""Engine ``lookout``: Amazon Lookout for Metrics detector + alert on the same folders (synth only).

Lookout for Metrics reached end of support on 2025-10-09: CloudFormation no longer knows the two resource types
and boto3 ships no ``lookoutmetrics`` client, so this engine is kept for reference and migration, not deployment.
"""

from __future__ import annotations

from aws_cdk import Annotations, Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lookoutmetrics as lookout
from constructs import Construct
from sentinel_core import filters, layout, routing
from sentinel_core.records import LOOKOUT_TIMESTAMP_FORMAT

from infra.alert_topic import AlertTopic
from infra.common import acknowledge, logical_id, mark
from infra.config import SentinelConfig
from infra.delivery import COMPRESSION
from infra.storage import DataLake

END_OF_SUPPORT = "2025-10-09"
TIMESTAMP_FORMAT = LOOKOUT_TIMESTAMP_FORMAT  # the records the transform writes (one constant, in records.py)
END_OF_SUPPORT_WARNING = (
    f"Amazon Lookout for Metrics reached end of support on {END_OF_SUPPORT}: this stack cannot be deployed with "
    "engine=lookout (CloudFormation rejects AWS::LookoutMetrics::* and boto3 no longer ships a lookoutmetrics "
    "client). Use engine=builtin (the default) to deploy."
)


class LookoutDetector(Construct):
    def __init__(
        self, scope: Construct, id_: str, *, config: SentinelConfig, lake: DataLake, alerts: AlertTopic
    ) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        bucket = lake.bucket
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "lookoutmetrics.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description="Lookout for Metrics: read the per-interval folders and the history, publish alerts",
        )
        policy = iam.Policy(
            self,
            "Policy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(sid="BucketAcl", actions=["s3:GetBucketAcl"], resources=[bucket.bucket_arn]),
                iam.PolicyStatement(
                    sid="ListFolders",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={
                        "StringLike": {
                            "s3:prefix": [
                                f"{layout.live_root(spec)}*",
                                f"{layout.historical_prefix(spec)}*",
                                *([f"{layout.upload_prefix(spec)}*"] if spec.ingest == "s3" else []),
                            ]
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="ReadData",
                    actions=["s3:GetObject"],
                    resources=[
                        bucket.arn_for_objects(f"{layout.live_root(spec)}*"),
                        bucket.arn_for_objects(f"{layout.historical_prefix(spec)}*"),
                        *([bucket.arn_for_objects(f"{layout.upload_prefix(spec)}*")] if spec.ingest == "s3" else []),
                    ],
                ),
                iam.PolicyStatement(sid="DataKey", actions=["kms:Decrypt"], resources=[lake.key.key_arn]),
                iam.PolicyStatement(sid="PublishAlerts", actions=["sns:Publish"], resources=[alerts.topic.topic_arn]),
                iam.PolicyStatement(
                    sid="EncryptAlerts", actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[alerts.key.key_arn]
                ),
            ],
        )
        uploads = (layout.upload_prefix(spec),) if spec.ingest == "s3" else ()
        for p in (layout.live_root(spec), layout.historical_prefix(spec), *uploads):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{p}*]",
                "Lookout reads every object of the interval folders / the history; keys are generated at run time.",
            )
        source = lookout.CfnAnomalyDetector.S3SourceConfigProperty(
            role_arn=self.role.role_arn,
            templated_path_list=[layout.lookout_path_template(bucket.bucket_name, spec)],
            historical_data_path_list=[f"s3://{bucket.bucket_name}/{layout.historical_prefix(spec)}"],
            file_format_descriptor=lookout.CfnAnomalyDetector.FileFormatDescriptorProperty(
                json_format_descriptor=lookout.CfnAnomalyDetector.JsonFormatDescriptorProperty(
                    charset="UTF-8", file_compression="NONE" if COMPRESSION == "UNCOMPRESSED" else "GZIP"
                )
            ),
        )
        if spec.ingest == "s3":
            # Uploads (loyalty): Lookout's backtest configuration. The metric set reads the uploaded CSV files as
            # historical data only (no live template); activating the detector in backtest mode (the
            # BackTestAnomalyDetector API) learns on the first 70 % and reports anomalies on the last 30 %.
            source = lookout.CfnAnomalyDetector.S3SourceConfigProperty(
                role_arn=self.role.role_arn,
                historical_data_path_list=[f"s3://{bucket.bucket_name}/{layout.upload_prefix(spec)}"],
                file_format_descriptor=lookout.CfnAnomalyDetector.FileFormatDescriptorProperty(
                    csv_format_descriptor=lookout.CfnAnomalyDetector.CsvFormatDescriptorProperty(
                        charset="UTF-8", contains_header=True, delimiter=",", quote_symbol='"', file_compression="NONE"
                    )
                ),
            )
        metric_set = lookout.CfnAnomalyDetector.MetricSetProperty(
            metric_set_name=f"{spec.data_prefix}-{'backtest' if spec.ingest == 's3' else 'live'}",
            metric_set_description=spec.description[:256] or spec.preset,
            metric_set_frequency=spec.interval,
            offset=config.schedule_offset_seconds,
            timezone=spec.timezone,  # the detector's daily / weekly cycles follow the same local time
            metric_list=[
                lookout.CfnAnomalyDetector.MetricProperty(metric_name=m.name, aggregation_function=m.aggregation)
                for m in spec.measures
            ],
            dimension_list=list(spec.dimensions),
            timestamp_column=lookout.CfnAnomalyDetector.TimestampColumnProperty(
                column_name=spec.timestamp_column, column_format=TIMESTAMP_FORMAT
            ),
            metric_source=lookout.CfnAnomalyDetector.MetricSourceProperty(s3_source_config=source),
        )
        self.detector = lookout.CfnAnomalyDetector(
            self,
            "Detector",
            anomaly_detector_name=config.detector_name,
            anomaly_detector_description=f"Metric Sentinel {spec.preset} ({spec.interval})",
            anomaly_detector_config=lookout.CfnAnomalyDetector.AnomalyDetectorConfigProperty(
                anomaly_detector_frequency=spec.interval
            ),
            metric_set_list=[metric_set],
        )
        self.detector.node.add_dependency(policy)
        mark(self.detector, "lookout-detector")
        self._role_policy = policy
        if spec.dimension_filter:
            # CDK's L1 metric set has no typed DimensionFilterList property (the API's dataset filter): an override.
            self.detector.add_property_override(
                "MetricSetList.0.DimensionFilterList", filters.lookout_dimension_filter_list(spec.dimension_filter)
            )
        self.alerts = [self._alert(config, alerts, route, i) for i, route in enumerate(self._routes(config))]
        self.alert = self.alerts[0]
        if any(not r.alert_filter.is_empty for r in config.alerts):
            Annotations.of(self).add_warning_v2(
                "@metric-sentinel/lookout-alert-filters",
                "CloudFormation's AWS::LookoutMetrics::Alert has no AlertFilters: the measure and dimension filters "
                "of `alerts` are applied by the builtin engine only.",
            )
        for res in (self.detector, *self.alerts):
            acknowledge(
                res,
                "CloudFormation-Validate::F3006",
                "Lookout for Metrics reached end of support on 2025-10-09 and its resource types left the "
                "CloudFormation registry; this engine is synth-only (see the warning); the rest stays validated.",
            )
        Annotations.of(self).add_warning_v2("@metric-sentinel/lookout-end-of-support", END_OF_SUPPORT_WARNING)

    @staticmethod
    def _routes(config: SentinelConfig) -> tuple[routing.AlertRoute, ...]:
        """The ``alerts`` context key, or today's one alert (the stack topic at the preset's threshold)."""
        if config.alerts:
            return config.alerts
        name = f"{config.detector_name}-alert"[:63]
        return (routing.AlertRoute(name, config.spec.severity_threshold),)

    def _alert(
        self, config: SentinelConfig, topic: AlertTopic, route: routing.AlertRoute, index: int
    ) -> lookout.CfnAlert:
        if route.kind == "lambda":
            action = lookout.CfnAlert.ActionProperty(
                lambda_configuration=lookout.CfnAlert.LambdaConfigurationProperty(
                    role_arn=self.role.role_arn, lambda_arn=route.target
                )
            )
            self.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[route.target])
            )
        else:
            arn = topic.topic.topic_arn if route.kind == "topic" else route.target
            action = lookout.CfnAlert.ActionProperty(
                sns_configuration=lookout.CfnAlert.SNSConfigurationProperty(
                    role_arn=self.role.role_arn, sns_topic_arn=arn
                )
            )
            if route.kind == "sns":
                self.role.add_to_principal_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[arn]))
        alert = lookout.CfnAlert(
            self,
            "Alert" if index == 0 else f"Alert{index}",  # the first keeps today's logical id
            alert_name=route.name,
            alert_description=f"Anomalies of severity >= {route.threshold:g} to {route.kind} {route.format}"[:256],
            alert_sensitivity_threshold=round(route.threshold),
            anomaly_detector_arn=self.detector.attr_arn,
            action=action,
        )
        alert.node.add_dependency(self._role_policy)
        mark(alert, "lookout-alert" if index == 0 else f"lookout-alert-{index}")
        return alert
