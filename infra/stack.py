"""The Metric Sentinel stack: one construct per stage, wired by the preset's ingest and the detector engine.

Wiring is explicit: each stage gets the constructs it uses as arguments, and ``Monitoring`` (created last) gets
what it watches as one ``Watched`` value built here from the stage constructs; nothing is looked up in the
construct tree. Ingest variants: ``_source_stream`` returns the Kinesis data stream Firehose reads from
(ecommerce's ``kinesis`` ingest) or None for Direct PUT; ``_attach_ingest`` adds the IoT rule (``iot`` ingest) and
lets Firehose decrypt the Kinesis source. The S3-upload ingest (loyalty) is the backtest job of the builtin engine.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct
from sentinel_core import activation, layout
from sentinel_core import environment as lambda_env

from infra.alert_topic import AlertTopic
from infra.automation import Automation
from infra.backtest_job import BacktestJob
from infra.config import SentinelConfig
from infra.console import Console
from infra.delivery import Delivery
from infra.detector_builtin import BuiltinDetector
from infra.detector_fanout import FanoutDetector
from infra.detector_lookout import LookoutDetector
from infra.ingest_iot import IotIngest
from infra.ingest_kinesis import KinesisIngest
from infra.monitoring import Monitoring, Watched, WatchedFanout, WatchedFunction, WatchedIotRule, WatchedQueue
from infra.state import IdempotencyTable, StateTables
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
        self.iot: IotIngest | None = None
        self.tables: StateTables | None = None
        self.detector: BuiltinDetector | None = None
        self.fanout: FanoutDetector | None = None
        self.backtest: BacktestJob | None = None
        self.lookout: LookoutDetector | None = None
        self.automation: Automation | None = None
        self.console: Console | None = None
        Tags.of(self).add("project", "metric-sentinel")
        Tags.of(self).add("preset", spec.preset)

        self.lake = DataLake(self, "DataLake", config=config)
        self.delivery = Delivery(self, "Delivery", config=config, lake=self.lake, source_stream=self._source_stream())
        self.alerts = AlertTopic(self, "Alerts", config=config)
        self._attach_ingest()

        if config.engine == "builtin":
            self.tables = StateTables(self, "State")
            self.console = Console(self, "Console", config=config, lake=self.lake, tables=self.tables)
            if config.detector_shards > 1:  # the Step Functions fan-out; one shard keeps today's stack exactly
                self.fanout = FanoutDetector(
                    self, "Detection", config=config, lake=self.lake, alerts=self.alerts, tables=self.tables
                )
            else:
                self.detector = BuiltinDetector(
                    self, "Detection", config=config, lake=self.lake, alerts=self.alerts, tables=self.tables
                )
            if spec.ingest == "s3":  # uploads (loyalty): each CSV is backtested by its own job
                self.backtest = BacktestJob(
                    self, "Backtest", config=config, lake=self.lake, alerts=self.alerts, tables=self.tables
                )
            self._link_alerts_to_console()
        else:
            self.lookout = LookoutDetector(self, "Lookout", config=config, lake=self.lake, alerts=self.alerts)
        if spec.ingest == "iot":
            # The same "State" scope as the builtin engine's tables: the idempotency table keeps its logical id.
            state = self.tables if self.tables is not None else IdempotencyTable(self, "State")
            idempotency = state.idempotency
            self.automation = Automation(self, "Automation", config=config, alerts=self.alerts, idempotency=idempotency)
        self._outputs()
        self.monitoring = Monitoring(self, "Operations", config=config, watched=self._watched())

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
                stage.fn.function.add_environment(lambda_env.CONSOLE_BASE_URL, self.console.url)
        if self.fanout is not None:  # the merge alerts; the shard loads the same settings
            for fn in (self.fanout.shard_fn, self.fanout.merge_fn):
                fn.function.add_environment(lambda_env.CONSOLE_BASE_URL, self.console.url)

    # -- what the operations dashboard watches ------------------------------------------------------------------
    def _watched(self) -> Watched:
        """The stages' functions, dead-letter queues, own alarms, delivery stream, IoT rule and alert topic."""
        functions = [WatchedFunction(self.delivery.transform)]
        queues: list[WatchedQueue] = []
        if self.detector is not None:
            functions.append(WatchedFunction(self.detector.fn, self.detector.errors_alarm))
            queues.append(WatchedQueue(self.detector.dlq, self.detector.node.id, self.detector.dlq_alarm))
        if self.fanout is not None:
            functions.append(WatchedFunction(self.fanout.shard_fn))
            functions.append(WatchedFunction(self.fanout.merge_fn))
            queues.append(WatchedQueue(self.fanout.dlq, self.fanout.node.id, self.fanout.dlq_alarm))
        if self.backtest is not None:
            functions.append(WatchedFunction(self.backtest.fn, self.backtest.errors_alarm))
            queues.append(WatchedQueue(self.backtest.dlq, self.backtest.node.id, self.backtest.dlq_alarm))
        if self.automation is not None:
            functions.append(WatchedFunction(self.automation.fn))
            queues.append(WatchedQueue(self.automation.dlq, self.automation.node.id))
        if self.console is not None:
            functions += [WatchedFunction(f) for f in (self.console.api_fn, self.console.archive_fn)]
            functions.append(WatchedFunction(self.console.web_deploy_fn))
            queues.append(WatchedQueue(self.console.archive_dlq, "ConsoleArchive"))
        return Watched(
            delivery_stream=self.delivery.stream,
            alert_topic=self.alerts.topic,
            functions=tuple(functions),
            queues=tuple(queues),
            # the missed-run alarm: the single detector, or the fan-out's merge (once per run)
            detector=self.detector.fn
            if self.detector is not None
            else (self.fanout.merge_fn if self.fanout is not None else None),
            fanout=WatchedFanout(
                self.fanout.machine,
                (self.fanout.failed_alarm, self.fanout.timed_out_alarm),
            )
            if self.fanout is not None
            else None,
            upload_job=self.backtest.fn if self.backtest is not None else None,
            iot_rule=WatchedIotRule(self.iot.rule, self.iot.error_logs) if self.iot is not None else None,
            source_stream=self.kinesis.stream if self.kinesis is not None else None,
        )

    # -- outputs --------------------------------------------------------------------------------------------
    def _outputs(self) -> None:
        spec = self.config.spec
        CfnOutput(self, "DataBucketName", value=self.lake.bucket.bucket_name, description="Data lake bucket")
        CfnOutput(self, "DeliveryStreamName", value=self.delivery.stream.ref, description="Firehose delivery stream")
        CfnOutput(self, "AlertTopicArn", value=self.alerts.topic.topic_arn, description="Alert topic")
        CfnOutput(self, "LivePrefix", value=layout.live_root(spec), description="Per-interval folders")
        CfnOutput(self, "HistoricalPrefix", value=layout.historical_prefix(spec), description="Upload history here")
        if self.iot is not None:
            CfnOutput(self, "TelemetryTopicFilter", value=self.config.spec.telemetry_topic_filter)
            CfnOutput(self, "DevicePolicyName", value=self.iot.device_policy.ref)
        if self.fanout is not None:
            CfnOutput(self, "DetectorStateMachineArn", value=self.fanout.machine.state_machine_arn)
            CfnOutput(self, "DetectorId", value=self.config.detector_id, description="Detector id in alerts and groups")
            CfnOutput(self, "DetectorScheduleRuleName", value=self.fanout.rule.rule_name, description="Schedule")
            CfnOutput(
                self,
                "DetectorResumeKey",
                value=activation.resume_key(spec),
                description="Resume marker of `sentinel detector activate --skip` (in the data bucket)",
            )
        if self.detector is not None:
            CfnOutput(self, "DetectorFunctionName", value=self.detector.fn.function.function_name)
            # The feedback CLI reads it from `cdk deploy --outputs-file` to find groups without a table scan.
            CfnOutput(self, "DetectorId", value=self.config.detector_id, description="Detector id in alerts and groups")
            # `sentinel detector activate|deactivate|status` finds the schedule and the resume marker here.
            CfnOutput(self, "DetectorScheduleRuleName", value=self.detector.rule.rule_name, description="Schedule")
            CfnOutput(
                self,
                "DetectorResumeKey",
                value=activation.resume_key(spec),
                description="Resume marker of `sentinel detector activate --skip` (in the data bucket)",
            )
        if self.tables is not None:
            CfnOutput(self, "AnomalyTableName", value=self.tables.anomalies.table_name)
