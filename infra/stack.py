"""The Metric Sentinel stack: one construct per stage, wired by the preset's ingest and the detector engine.

Extension points (later issues):
- ``_source_stream``: returns the Kinesis data stream Firehose reads from (ecommerce's ``kinesis`` ingest) or None
  for Direct PUT; ``_attach_ingest`` adds the ingest-specific front (IoT rule today; S3-upload backtest Lambda).
- ``self.functions`` / alarms on the stage constructs: what a monitoring construct (dashboards) picks up.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct
from sentinel_core import layout

from infra.alerts import AlertTopic
from infra.automation import Automation
from infra.backtest_job import BacktestJob
from infra.common import SentinelFunction
from infra.config import SentinelConfig
from infra.console import Console
from infra.delivery import Delivery
from infra.detector_builtin import BuiltinDetector
from infra.detector_lookout import LookoutDetector
from infra.ingest_iot import IotIngest
from infra.ingest_kinesis import KinesisIngest
from infra.monitoring import Monitoring
from infra.state import StateTables
from infra.storage import DataLake


class SentinelStack(Stack):
    def __init__(self, scope: Construct, id_: str, *, config: SentinelConfig, **kwargs: Any) -> None:
        spec = config.spec
        super().__init__(
            scope,
            id_,
            stack_name=config.stack_name,
            description=f"Metric Sentinel: {spec.preset} pipeline, {config.engine} detector engine",
            **kwargs,
        )
        self.config = config
        self.kinesis: KinesisIngest | None = None
        self.backtest: BacktestJob | None = None
        Tags.of(self).add("project", "metric-sentinel")
        Tags.of(self).add("preset", spec.preset)

        self.lake = DataLake(self, "DataLake", config=config)
        self.delivery = Delivery(self, "Delivery", config=config, lake=self.lake, source_stream=self._source_stream())
        self.alerts = AlertTopic(self, "Alerts", config=config)
        self.functions: list[SentinelFunction] = [self.delivery.transform]
        self.iot: IotIngest | None = None
        self._attach_ingest()

        uses_iot = spec.ingest == "iot"
        self.tables: StateTables | None = None
        if config.engine == "builtin" or uses_iot:
            self.tables = StateTables(self, "State", anomalies=config.engine == "builtin")
        self.detector: BuiltinDetector | None = None
        self.lookout: LookoutDetector | None = None
        self.console: Console | None = None
        if config.engine == "builtin":
            assert self.tables is not None
            self.console = Console(self, "Console", config=config, lake=self.lake, tables=self.tables)
            self.functions += [self.console.api_fn, self.console.archive_fn, self.console.web_deploy_fn]
            self.detector = BuiltinDetector(
                self, "Detection", config=config, lake=self.lake, alerts=self.alerts, tables=self.tables
            )
            self.functions.append(self.detector.fn)
            if spec.ingest == "s3":  # uploads (loyalty): each CSV is backtested by its own job
                self.backtest = BacktestJob(
                    self, "Backtest", config=config, lake=self.lake, alerts=self.alerts, tables=self.tables
                )
                self.functions.append(self.backtest.fn)
            self._link_alerts_to_console()
        else:
            self.lookout = LookoutDetector(self, "Lookout", config=config, lake=self.lake, alerts=self.alerts)
        self.automation: Automation | None = None
        if uses_iot:
            assert self.tables is not None
            self.automation = Automation(self, "Automation", config=config, alerts=self.alerts, tables=self.tables)
            self.functions.append(self.automation.fn)
        self._outputs()
        self.monitoring = Monitoring(self, "Operations", stack=self)  # last: it watches what the stages built

    # -- ingest hooks -------------------------------------------------------------------------------------------
    def _source_stream(self) -> kinesis.IStream | None:
        """The Kinesis data stream feeding Firehose for ``kinesis`` ingest; None = Direct PUT."""
        if self.config.spec.ingest != "kinesis":
            return None
        self.kinesis = KinesisIngest(self, "KinesisIngest", config=self.config)
        return self.kinesis.stream

    def _attach_ingest(self) -> None:
        if self.config.spec.ingest == "iot":
            self.iot = IotIngest(self, "IotIngest", config=self.config, delivery=self.delivery)
        if self.kinesis is not None:
            self.kinesis.allow_firehose(self.delivery)

    def _link_alerts_to_console(self) -> None:
        """Alerts link to the group's console page: the deployed console unless ``console_base_url`` names one."""
        if self.console is None or self.config.console_base_url:
            return
        for stage in (self.detector, self.backtest):
            if stage is not None:
                stage.fn.function.add_environment("CONSOLE_BASE_URL", self.console.url)

    # -- outputs --------------------------------------------------------------------------------------------
    def _outputs(self) -> None:
        spec = self.config.spec
        CfnOutput(self, "DataBucketName", value=self.lake.bucket.bucket_name, description="Data lake bucket")
        CfnOutput(self, "DeliveryStreamName", value=self.delivery.stream.ref, description="Firehose delivery stream")
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn, description="Alert topic")
        CfnOutput(self, "LivePrefix", value=layout.live_root(spec), description="Per-interval folders")
        CfnOutput(self, "HistoricalPrefix", value=layout.historical_prefix(spec), description="Upload history here")
        if self.iot is not None:
            CfnOutput(self, "TelemetryTopicFilter", value=spec.telemetry_topic_filter)
            CfnOutput(self, "DevicePolicyName", value=self.iot.device_policy.ref)
        if self.detector is not None:
            CfnOutput(self, "DetectorFunctionName", value=self.detector.fn.function.function_name)
            # The feedback CLI reads it from `cdk deploy --outputs-file` to find groups without a table scan.
            CfnOutput(self, "DetectorId", value=self.config.detector_id, description="Detector id in alerts and groups")
        if self.tables is not None and self.tables.anomalies is not None:
            CfnOutput(self, "AnomalyTableName", value=self.tables.anomalies.table_name)
