"""Operations: one CloudWatch dashboard per pipeline and alarms on every failure signal, to an operations topic.

Why cdk-monitoring-constructs (``MonitoringFacade``, pinned 10.3.3) rather than hand-written widgets: it is the
maintained library made for exactly this (cdklabs), gives each Lambda / queue / delivery stream the standard
widgets (invocations, errors, duration percentiles, throttles, queue depth, Firehose throughput) with consistent
alarm naming, and routes every alarm it creates to one action strategy. Our own signals (the Powertools metrics of
the transform and the detector, Firehose delivery success and freshness, IoT rule error actions, "no data") plug in
as custom metric groups with alarms through the same facade, so nothing is wired twice. What it does not do, we add
with plain ``aws_cloudwatch``: the existing stage alarms (detector / backtest errors and DLQs, created by their own
constructs) get the operations topic as action, and a log metric filter turns the IoT rule's error action (a log
group) into a metric.

The operations topic is separate from the alert topic (alerts are for people acting on the data; operations is
for whoever runs the stack), KMS-encrypted with its own key, TLS only, and CloudWatch is the only service allowed
to publish to it (same account, alarm ARNs only).

Signals and alarms (period = 5 minutes unless said otherwise; N intervals are capped so that the alarm's
evaluation range stays within one day):

- delivery to S3 failing: ``AWS/Firehose DeliveryToS3.Success`` average below 1 for 2 periods;
- delivery stale: ``DeliveryToS3.DataFreshness`` maximum above the detector's schedule offset + buffer (records
  older than that miss their interval's detector run);
- transform failures above a rate: ``100 * RecordsFailed / RecordsIn`` (Powertools metrics, service ``transform``)
  above ``TRANSFORM_FAILURE_PERCENT``; a transform that raises (whole batch retried by Firehose) is a Lambda error;
- IoT rule error action invoked: every document the error action writes to its log group counts (metric filter);
- detector errors (its own alarm) or missed schedule: fewer than 1 invocation in ``MISSED_RUNS`` intervals;
- ingest refusals that mean an attack or a broken clock (``SECURITY_REFUSALS``: a reading for another thing's
  location, records dated ahead of their arrival): at the first occurrence;
- the detector's contained failures (``DETECTOR_CONTAINED``: a failed alert, a quarantined object or series, refused
  series, a recovered state, a refused future event): at the first occurrence;
- any dead-letter queue not empty; alert or operations topic deliveries failing (SNS ``NumberOfNotificationsFailed``,
  through the facade's SNS topic monitoring);
- no data: the records Firehose takes in below 1 for ``NO_DATA_INTERVALS`` intervals (streaming ingest), or no
  upload processed for a day (S3-upload ingest). Which metric counts them depends on the source: a Direct PUT stream
  (IoT rule) emits ``IncomingRecords``; a stream reading a Kinesis data stream (ecommerce) emits
  ``DataReadFromKinesisStream.Records`` instead (``IncomingRecords`` stays empty there);
- Firehose throttled or near its quotas (Direct PUT): ``ThrottledRecords`` above 0, and records, bytes and put
  requests per second above ``FIREHOSE_LIMIT_SHARE`` of the stream's limits (the facade's Firehose monitoring);
  reading a Kinesis source: ``ThrottledGetRecords`` above 0 and ``KinesisMillisBehindLatest`` above the schedule
  offset (records arriving that late miss their interval's detector run);
- the Kinesis source stream (ecommerce): iterator age above the schedule offset, producer writes throttled
  (``WriteProvisionedThroughputExceeded``, ``PutRecords.ThrottledRecords``) or failed (``PutRecords.FailedRecords``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cdk_monitoring_constructs as mc
from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.common import METRICS_NAMESPACE, SentinelFunction, mark, sentinel_key
from infra.config import FIREHOSE_BUFFER_SECONDS, SentinelConfig

PERIOD = Duration.minutes(5)
TRANSFORM_FAILURE_PERCENT = 5
NO_DATA_INTERVALS = 3
MISSED_RUNS = 2
MAX_EVALUATION_SECONDS = 86400  # keep period x evaluation periods within one day
IOT_ERROR_METRIC = "IotRuleErrorActions"
# The detector's contained failures (metric, label, alarm description): alarmed at the first occurrence.
DETECTOR_CONTAINED: tuple[tuple[str, str, str], ...] = (
    ("AlertsFailed", "alerts failed", "An alert publish failed: it is retried on the next runs (see the logs)"),
    ("AlertsGivenUp", "alerts given up", "An alert failed on every retry and was given up (see the logs)"),
    ("GroupsFailed", "groups not stored", "An anomaly group could not be stored in DynamoDB"),
    ("ObjectsQuarantined", "objects quarantined", "An interval object could not be read: quarantined, not scored"),
    ("SeriesQuarantined", "series quarantined", "Scoring a series raised: the series was quarantined"),
    ("SeriesRefused", "series refused", "More series than detector_max_series / detector_max_new_series: refused"),
    ("StateRecovered", "state recovered", "The model state was unusable: an older version or history was used"),
    ("FutureEventsRefused", "future events refused", "A detector event dated ahead of the wall clock was refused"),
)
# Which of them the sharded detector's shards count (the rest are the merge's: it groups, stores and alerts).
SHARD_CONTAINED = frozenset(
    {"ObjectsQuarantined", "SeriesQuarantined", "SeriesRefused", "StateRecovered", "FutureEventsRefused"}
)
# Ingest refusals that mean an attack or a broken clock, not a noisy sensor (transform's RecordsFailedByReason, by
# reason and source): alarmed at the first occurrence. A reading for another thing's location (a stolen or
# misconfigured certificate: IoT only) and an event time ahead of the arrival clock beyond the tolerance.
SECURITY_REFUSALS: tuple[tuple[str, str, bool], ...] = (
    ("identity_mismatch", "A device published readings for a location that is not its own: refused", True),
    ("future_timestamp", "Records dated ahead of their arrival beyond the tolerance were refused", False),
)
# Warn at 80 % of a Firehose Direct PUT quota (records/s, bytes/s, put requests/s): time to ask for an increase
# before producers see ThrottledRecords.
FIREHOSE_LIMIT_SHARE = 0.8


def intervals_within_a_day(interval_seconds: int, wanted: int) -> int:
    """``wanted`` evaluation periods of one interval each, fewer if that would exceed a day (at least one)."""
    return max(1, min(wanted, MAX_EVALUATION_SECONDS // interval_seconds))


def alarm_period(interval_seconds: int) -> Duration:
    """An alarm period of one detector interval (CloudWatch periods are whole minutes, at most a day)."""
    return Duration.seconds(min(MAX_EVALUATION_SECONDS, max(60, interval_seconds)))


def alarmed(
    metric: cw.Metric | cw.MathExpression,
    name: str,
    description: str,
    *,
    threshold: float,
    comparison: cw.ComparisonOperator,
    severity: str = "Warning",
    periods: int = 1,
    datapoints: int | None = None,
) -> mc.CustomMetricWithAlarm:
    """A dashboard metric with its alarm (missing data is not breaching: no data means nothing happened)."""
    return mc.CustomMetricWithAlarm(
        metric=metric,
        alarm_friendly_name=name,
        add_alarm={
            severity: mc.CustomThreshold(
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=periods,
                datapoints_to_alarm=datapoints,
                treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                alarm_description_override=description,
            )
        },
    )


def first_occurrence(metric: cw.Metric | cw.MathExpression, name: str, description: str) -> mc.CustomMetricWithAlarm:
    """A dashboard metric alarmed at the first occurrence (a count of at least 1 in one period)."""
    return alarmed(
        metric, name, description, threshold=1, comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    )


@dataclass(frozen=True)
class WatchedFunction:
    """A pipeline Lambda; ``errors_alarm`` is its stage's own errors alarm (None: Monitoring adds a fault alarm)."""

    function: SentinelFunction
    errors_alarm: cw.Alarm | None = None


@dataclass(frozen=True)
class WatchedQueue:
    """A dead-letter queue of stage ``owner``; ``not_empty_alarm`` is the stage's own (None: Monitoring adds one)."""

    queue: sqs.Queue
    owner: str
    not_empty_alarm: cw.Alarm | None = None


@dataclass(frozen=True)
class WatchedIotRule:
    """The IoT topic rule and the log group its error action writes to."""

    rule: iot.CfnTopicRule
    error_logs: logs.ILogGroup


@dataclass(frozen=True)
class WatchedFanout:
    """The sharded detector's state machine and its own alarms (failed and timed-out executions)."""

    machine: sfn.StateMachine
    own_alarms: tuple[cw.Alarm, ...] = ()


@dataclass(frozen=True)
class Watched:
    """What the operations dashboard and alarms watch, handed over by the stack (nothing is looked up here).

    ``functions`` and ``queues`` are in dashboard order. ``detector`` gets the missed-schedule alarm and the
    detector-runs section; ``upload_job`` (S3-upload ingest) the "no upload processed for a day" alarm.
    """

    delivery_stream: firehose.CfnDeliveryStream
    alert_topic: sns.Topic
    functions: tuple[WatchedFunction, ...]
    queues: tuple[WatchedQueue, ...] = ()
    detector: SentinelFunction | None = None
    upload_job: SentinelFunction | None = None
    iot_rule: WatchedIotRule | None = None
    source_stream: kinesis.IStream | None = None  # the Kinesis data stream Firehose reads (None: Direct PUT)
    fanout: WatchedFanout | None = None  # detector_shards > 1: the state machine (``detector`` is then its merge)

    @property
    def stage_alarms(self) -> tuple[cw.Alarm, ...]:
        """The alarms the stages made themselves (detector / backtest errors and DLQs)."""
        own = [f.errors_alarm for f in self.functions] + [q.not_empty_alarm for q in self.queues]
        if self.fanout is not None:
            own += list(self.fanout.own_alarms)
        return tuple(a for a in own if a is not None)


class Monitoring(Construct):
    """Dashboard + alarms for one pipeline: the stack creates it last and passes what it built (``Watched``)."""

    def __init__(self, scope: Construct, id_: str, *, config: SentinelConfig, watched: Watched) -> None:
        super().__init__(scope, id_)
        spec = config.spec
        self.config = config
        self.topic = self._operations_topic(config)
        dashboards = mc.DefaultDashboardFactory(
            self,
            "Dashboards",
            dashboard_name_prefix=config.stack_name,
            create_dashboard=True,
            create_summary_dashboard=False,
            create_alarm_dashboard=False,
        )
        self.facade = mc.MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=mc.AlarmFactoryDefaults(
                actions_enabled=True,
                alarm_name_prefix=config.stack_name,
                action=mc.SnsAlarmActionStrategy(on_alarm_topic=self.topic),
                datapoints_to_alarm=1,
            ),
            metric_factory_defaults=mc.MetricFactoryDefaults(period=PERIOD),
            dashboard_factory=dashboards,
        )
        self.facade.add_large_header(f"Metric Sentinel — {spec.preset} ({config.engine} engine, {spec.interval})")
        stream_name = watched.delivery_stream.ref
        self._ingest_and_delivery(stream_name, kinesis_source=watched.source_stream is not None)
        if watched.source_stream is None:
            self._firehose_limits(stream_name)
        else:
            self._kinesis_source(watched.source_stream, stream_name)
        self._transform()
        self._security_refusals("direct_put" if watched.source_stream is None else "kinesis", watched.iot_rule)
        if watched.iot_rule is not None:
            self._iot_rule(watched.iot_rule)
        self._functions(watched)
        if watched.fanout is not None:
            self._detector("detector_merge", exclude=SHARD_CONTAINED - {"FutureEventsRefused"})
            self._fanout(watched.fanout)
        elif watched.detector is not None:
            self._detector()
        self._queues(watched.queues)
        self._alert_topic(watched.alert_topic)
        self._operations_topic_health()
        # Alarms the stages made themselves (detector / backtest errors and DLQs): same operations topic.
        action = cw_actions.SnsAction(self.topic)
        for alarm in watched.stage_alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        if dashboards.dashboard is None:  # create_dashboard=True above: the facade made it
            raise RuntimeError("the dashboard factory made no dashboard")
        self.dashboard: cw.Dashboard = dashboards.dashboard
        stack = Stack.of(self)
        CfnOutput(stack, "OperationsTopicArn", value=self.topic.topic_arn, description="Subscribe on-call here")
        CfnOutput(stack, "DashboardName", value=self.dashboard.dashboard_name, description="CloudWatch dashboard")

    # -- topic ----------------------------------------------------------------------------------------------------
    def _operations_topic(self, config: SentinelConfig) -> sns.Topic:
        key = sentinel_key(self, "Key", f"Metric Sentinel {config.preset} operations topic", "ops-key")
        alarm_arns = f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"
        same_account = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": alarm_arns}}
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsEncryptNotifications",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=same_account,
            )
        )
        topic = sns.Topic(
            self, "Topic", display_name=f"Metric Sentinel {config.preset} operations", master_key=key, enforce_ssl=True
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=same_account,
            )
        )
        mark(topic, "ops-topic")
        for i, email in enumerate(config.ops_emails):
            sub = sns.Subscription(
                self, f"Email{i}", topic=topic, protocol=sns.SubscriptionProtocol.EMAIL, endpoint=email
            )
            mark(sub, "ops-email")
        return topic

    # -- sections -------------------------------------------------------------------------------------------------
    def _firehose(self, metric: str, stream: str, statistic: str, label: str) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/Firehose",
            metric_name=metric,
            dimensions_map={"DeliveryStreamName": stream},
            statistic=statistic,
            period=PERIOD,
            label=label,
        )

    def _ingest_and_delivery(self, stream: str, *, kinesis_source: bool) -> None:
        config = self.config
        interval = config.interval_seconds
        # What Firehose took in: Direct PUT streams count IncomingRecords; a stream reading a Kinesis data stream
        # counts DataReadFromKinesisStream.Records (its IncomingRecords has no data, which would look like an outage).
        incoming = (
            self._firehose("DataReadFromKinesisStream.Records", stream, "Sum", "records read from the Kinesis source")
            if kinesis_source
            else self._firehose("IncomingRecords", stream, "Sum", "records ingested (Firehose)")
        )
        success = self._firehose("DeliveryToS3.Success", stream, "Average", "delivery to S3 success ratio")
        freshness = self._firehose("DeliveryToS3.DataFreshness", stream, "Maximum", "oldest record age (s)")
        delivered = self._firehose("DeliveryToS3.Records", stream, "Sum", "records delivered to S3")
        processing = self._firehose("ExecuteProcessing.Success", stream, "Average", "transform invoke success")
        stale_after = config.schedule_offset_seconds + FIREHOSE_BUFFER_SECONDS
        groups = [
            mc.CustomMetricGroup(title="Records ingested / delivered", metrics=[incoming, delivered]),
            mc.CustomMetricGroup(
                title="Delivery to S3 and transform invocation (success ratio)",
                metrics=[
                    alarmed(
                        success,
                        "DeliveryToS3Failing",
                        "Firehose fails to write to the data lake (S3 / KMS / "
                        "permissions); records are retried for 24 h, then written to the error prefix",
                        threshold=1,
                        comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                        severity="Critical",
                        periods=2,
                        datapoints=2,
                    ),
                    processing,
                ],
            ),
            mc.CustomMetricGroup(
                title="Delivery freshness (seconds)",
                metrics=[
                    alarmed(
                        freshness,
                        "DeliveryStale",
                        f"Records wait more than {stale_after} s in Firehose: "
                        "they land after the detector read their interval (counted as late)",
                        threshold=stale_after,
                        comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                        periods=2,
                        datapoints=2,
                    )
                ],
            ),
        ]
        if config.spec.ingest in ("iot", "kinesis"):
            n = intervals_within_a_day(interval, NO_DATA_INTERVALS)
            groups.append(
                mc.CustomMetricGroup(
                    title=f"No data ({n} x {config.spec.interval})",
                    metrics=[
                        mc.CustomMetricWithAlarm(
                            metric=incoming.with_(period=alarm_period(interval), label="records per interval"),
                            alarm_friendly_name="NoData",
                            add_alarm={
                                "Critical": mc.CustomThreshold(
                                    threshold=1,
                                    comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                                    period=alarm_period(interval),
                                    evaluation_periods=n,
                                    datapoints_to_alarm=n,
                                    treat_missing_data_override=cw.TreatMissingData.BREACHING,
                                    alarm_description_override=f"No record reached Firehose for {n} intervals: "
                                    "devices, producers or the ingest path are down",
                                )
                            },
                        )
                    ],
                )
            )
        self.facade.add_medium_header("Ingest and delivery")
        self.facade.monitor_custom(
            metric_groups=groups, alarm_friendly_name="Delivery", human_readable_name="Firehose delivery"
        )

    def _firehose_limits(self, stream: str) -> None:
        """Direct PUT: throttled records and the three per-stream quotas, with the facade's Firehose monitoring."""

        def near_limit(what: str) -> dict[str, mc.FirehoseStreamLimitThreshold]:
            return {
                "Warning": mc.FirehoseStreamLimitThreshold(
                    safety_threshold_limit=FIREHOSE_LIMIT_SHARE,
                    alarm_description_override=f"Firehose {what} above {FIREHOSE_LIMIT_SHARE:.0%} of the stream's "
                    "quota: request a limit increase before producers are throttled",
                )
            }

        self.facade.monitor_kinesis_firehose(
            delivery_stream_name=stream,
            alarm_friendly_name="Firehose",
            human_readable_name="Firehose quotas and throttling",
            add_records_throttled_alarm={
                "Critical": mc.RecordsThrottledThreshold(
                    max_records_throttled_threshold=0,
                    alarm_description_override="Firehose throttled records (over its records/s, bytes/s or put "
                    "requests/s quota): the IoT rule retries, then its error action logs them",
                )
            },
            add_incoming_records_exceed_threshold_alarm=near_limit("records per second"),
            add_incoming_bytes_exceed_threshold_alarm=near_limit("bytes per second"),
            add_incoming_put_requests_exceed_threshold_alarm=near_limit("put requests per second"),
        )

    def _kinesis_source(self, source: kinesis.IStream, stream: str) -> None:
        """The Kinesis data stream producers write to, and Firehose reading it."""
        offset_ms = self.config.schedule_offset_seconds * 1000
        throttled = {
            "Warning": mc.RecordsThrottledThreshold(
                max_records_throttled_threshold=0,
                alarm_description_override="Producers' writes to the Kinesis stream are throttled (on-demand "
                "capacity is adapting, or a hot partition key): they must retry",
            )
        }
        self.facade.add_medium_header("Kinesis source stream")
        self.facade.monitor_kinesis_data_stream(
            stream_name=source.stream_name,
            alarm_friendly_name="SourceStream",
            human_readable_name="Kinesis source stream",
            add_iterator_max_age_alarm={
                "Warning": mc.MaxIteratorAgeThreshold(
                    max_age_in_millis=offset_ms,
                    alarm_description_override="Records wait in the Kinesis stream longer than the detector's "
                    "schedule offset: they reach the lake after their interval was scored (late)",
                )
            },
            add_write_provisioned_throughput_exceeded_alarm=throttled,
            add_put_records_throttled_alarm=throttled,
            add_put_records_failed_alarm={
                "Critical": mc.RecordsFailedThreshold(
                    max_records_failed_threshold=0,
                    alarm_description_override="PutRecords calls returned failed records: producers that do not "
                    "retry them lose data",
                )
            },
        )
        behind = self._firehose("KinesisMillisBehindLatest", stream, "Maximum", "Firehose behind the stream (ms)")
        get_throttled = self._firehose("ThrottledGetRecords", stream, "Sum", "Firehose GetRecords throttled")
        self.facade.monitor_custom(
            alarm_friendly_name="FirehoseKinesisRead",
            human_readable_name="Firehose reading the Kinesis stream",
            metric_groups=[
                mc.CustomMetricGroup(
                    title="Firehose reading the source",
                    metrics=[
                        alarmed(
                            behind,
                            "FirehoseBehindSource",
                            "Firehose reads the Kinesis stream more than the "
                            "schedule offset behind: records reach the lake after their interval was scored",
                            threshold=offset_ms,
                            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                            periods=2,
                            datapoints=2,
                        ),
                        alarmed(
                            get_throttled,
                            "FirehoseReadThrottled",
                            "Firehose's GetRecords on the source stream are "
                            "throttled (another consumer shares the read throughput)",
                            threshold=1,
                            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                            periods=2,
                            datapoints=2,
                        ),
                    ],
                )
            ],
        )

    def _powertools(self, service: str, name: str, label: str) -> cw.Metric:
        return cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": service},
            statistic="Sum",
            period=PERIOD,
            label=label,
        )

    def _transform(self) -> None:
        m = {
            name: self._powertools("transform", name, label)
            for name, label in (
                ("RecordsIn", "in"),
                ("RecordsOk", "ok"),
                ("RecordsFailed", "failed (error prefix)"),
                ("RecordsLate", "late"),
            )
        }
        rate = cw.MathExpression(
            expression="IF(rin > 0, 100 * failed / rin, 0)",
            using_metrics={"rin": m["RecordsIn"], "failed": m["RecordsFailed"]},
            label="failed %",
            period=PERIOD,
        )
        self.facade.add_medium_header("Transform")
        self.facade.monitor_custom(
            alarm_friendly_name="Transform",
            human_readable_name="Transform records",
            metric_groups=[
                mc.CustomMetricGroup(title="Records: ok / failed / late", metrics=list(m.values())),
                mc.CustomMetricGroup(
                    title="Failure rate (%)",
                    metrics=[
                        alarmed(
                            rate,
                            "TransformFailureRate",
                            f"More than {TRANSFORM_FAILURE_PERCENT}% of records "
                            "were rejected by the transform (see RecordsFailedByReason and the error prefix)",
                            threshold=TRANSFORM_FAILURE_PERCENT,
                            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                        )
                    ],
                ),
            ],
        )

    def _security_refusals(self, source: str, iot_rule: WatchedIotRule | None) -> None:
        """First-occurrence alarms on the transform's refusals that mean an attack or a broken producer clock."""
        refused = [
            first_occurrence(
                cw.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name="RecordsFailedByReason",
                    # exactly the dimensions the transform's single metric carries (Powertools adds the service)
                    dimensions_map={"reason": reason, "source": source, "service": "transform"},
                    statistic="Sum",
                    period=PERIOD,
                    label=f"refused: {reason}",
                ),
                f"Refused{reason.title().replace('_', '')}",
                description,
            )
            for reason, description, iot_only in SECURITY_REFUSALS
            if iot_rule is not None or not iot_only
        ]
        self.facade.monitor_custom(
            alarm_friendly_name="IngestRefusals",
            human_readable_name="Ingest refusals (identity, clock)",
            metric_groups=[mc.CustomMetricGroup(title="Refused records (each alarmed)", metrics=list(refused))],
        )

    def _iot_rule(self, watched: WatchedIotRule) -> None:
        logs.MetricFilter(
            self,
            "IotRuleErrors",
            log_group=watched.error_logs,
            filter_pattern=logs.FilterPattern.exists("$.ruleName"),
            metric_namespace=METRICS_NAMESPACE,
            metric_name=IOT_ERROR_METRIC,
            metric_value="1",
            dimensions={"RuleName": "$.ruleName"},
        )
        rule = watched.rule
        metrics: list[cw.Metric | mc.CustomMetricWithAlarm] = []
        errors = cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=IOT_ERROR_METRIC,
            dimensions_map={"RuleName": rule.ref},
            statistic="Sum",
            period=PERIOD,
            label="error action invoked",
        )
        metrics.append(
            alarmed(
                errors,
                "IotRuleErrorAction",
                "The IoT topic rule could not put messages into Firehose; "
                "its error action logged them (payload included) in the rule-errors log group",
                threshold=1,
                comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                severity="Critical",
            )
        )
        for name, label in (("TopicMatch", "messages matched"), ("ParseError", "SQL parse errors")):
            metrics.append(
                cw.Metric(
                    namespace="AWS/IoT",
                    metric_name=name,
                    dimensions_map={"RuleName": rule.ref},
                    statistic="Sum",
                    period=PERIOD,
                    label=label,
                )
            )
        self.facade.add_medium_header("IoT topic rule")
        self.facade.monitor_custom(
            alarm_friendly_name="IotRule",
            human_readable_name="IoT topic rule",
            metric_groups=[mc.CustomMetricGroup(title="Messages and rule errors", metrics=metrics)],
        )

    def _functions(self, watched: Watched) -> None:
        """Standard Lambda widgets; a fault alarm for functions whose stage has no errors alarm of its own;
        the missed-schedule alarm on the detector, the no-upload alarm on the upload job."""
        interval = self.config.interval_seconds
        self.facade.add_medium_header("Functions")
        for w in watched.functions:
            fn = w.function
            name = fn.spec.package
            kwargs: dict[str, object] = {}
            if w.errors_alarm is None:
                kwargs["add_fault_count_alarm"] = {
                    "Critical": mc.ErrorCountThreshold(
                        max_error_count=0,
                        alarm_description_override=f"The {name} Lambda raised (its batch or event is retried)",
                    )
                }
            if fn is watched.detector or fn is watched.upload_job:
                # detector: a missed schedule; S3-upload ingest: no upload processed (no data) for that long
                is_detector = fn is watched.detector
                every = interval if is_detector else MAX_EVALUATION_SECONDS
                n = intervals_within_a_day(every, MISSED_RUNS)
                what = (
                    f"The detector was not invoked for {n} interval(s): the schedule is disabled or failing; "
                    "intervals are caught up on the next run"
                    if is_detector
                    else "No upload was processed for a day: the daily file did not arrive"
                )
                kwargs["add_min_invocations_count_alarm"] = {
                    "Critical": mc.MinUsageCountThreshold(
                        min_count=1,
                        period=alarm_period(every),
                        evaluation_periods=n,
                        datapoints_to_alarm=n,
                        treat_missing_data_override=cw.TreatMissingData.BREACHING,
                        alarm_description_override=what,
                    )
                }
            self.facade.monitor_lambda_function(
                lambda_function=fn.function,
                alarm_friendly_name=f"{name.replace('_', ' ').title().replace(' ', '')}Function",
                human_readable_name=f"{name} Lambda",
                **kwargs,  # type: ignore[arg-type]
            )

    def _detector(self, service: str = "detector", exclude: frozenset[str] = frozenset()) -> None:
        names = (
            ("SeriesScored", "series scored"),
            ("Anomalies", "anomalous points"),
            ("AlertsSent", "alerts sent"),
            ("LateRecords", "late records (after scoring)"),
            ("DuplicateRecords", "duplicates counted once"),
            ("IntervalsScored", "intervals scored"),
            ("BacklogIntervals", "backlog (intervals)"),
            ("RunsReplayed", "idempotent replays"),
        )
        m = {n: self._powertools(service, n, label) for n, label in names}
        # One bad thing fails only itself (detector/runner.py): each containment is counted and alarmed at the
        # first occurrence, so what was contained is looked at.
        contained = [
            first_occurrence(self._powertools(service, name, label), f"Detector{name}", description)
            for name, label, description in DETECTOR_CONTAINED
            if name not in exclude
        ]
        self.facade.add_medium_header("Detector")
        self.facade.monitor_custom(
            alarm_friendly_name="DetectorRuns",
            human_readable_name="Detector runs",
            metric_groups=[
                mc.CustomMetricGroup(title="Series scored", metrics=[m["SeriesScored"], m["IntervalsScored"]]),
                mc.CustomMetricGroup(title="Anomalies and alerts", metrics=[m["Anomalies"], m["AlertsSent"]]),
                mc.CustomMetricGroup(
                    title="Late data, duplicates, backlog, replays",
                    metrics=[m["LateRecords"], m["DuplicateRecords"], m["BacklogIntervals"], m["RunsReplayed"]],
                ),
                mc.CustomMetricGroup(title="Contained failures (each alarmed)", metrics=list(contained)),
            ],
        )

    def _fanout(self, fanout: WatchedFanout) -> None:
        """The sharded detector: executions, shards failed (alarmed at the first: a failed shard's series are
        scored late, when it catches up) and what the shards contained (each alarmed)."""
        machine = fanout.machine
        period = PERIOD
        shard_failed = first_occurrence(
            self._powertools("detector_merge", "ShardsFailed", "shards failed"),
            "DetectorShardsFailed",
            "A detector shard failed after its retries: the other shards were merged and alerted, this one "
            "catches up on its next run (see the merge's and the shard's logs)",
        )
        contained = [
            first_occurrence(self._powertools("detector_shard", name, label), f"DetectorShard{name}", description)
            for name, label, description in DETECTOR_CONTAINED
            if name in SHARD_CONTAINED
        ]
        self.facade.add_medium_header("Detector fan-out")
        self.facade.monitor_custom(
            alarm_friendly_name="DetectorFanout",
            human_readable_name="Detector state machine and shards",
            metric_groups=[
                mc.CustomMetricGroup(
                    title="Executions",
                    metrics=[
                        machine.metric_started(period=period, statistic="Sum", label="started"),
                        machine.metric_succeeded(period=period, statistic="Sum", label="succeeded"),
                        machine.metric_failed(period=period, statistic="Sum", label="failed (alarmed)"),
                        machine.metric_timed_out(period=period, statistic="Sum", label="timed out (alarmed)"),
                    ],
                ),
                mc.CustomMetricGroup(
                    title="Shards",
                    metrics=[
                        self._powertools("detector_merge", "ShardsSucceeded", "shards merged"),
                        shard_failed,
                        self._powertools("detector_merge", "LateShardIntervals", "intervals merged late"),
                    ],
                ),
                mc.CustomMetricGroup(title="Contained in the shards (each alarmed)", metrics=list(contained)),
            ],
        )

    def _queues(self, queues: tuple[WatchedQueue, ...]) -> None:
        if queues:
            self.facade.add_medium_header("Dead-letter queues")
        for w in queues:
            owner = w.owner
            kwargs: dict[str, object] = {}
            if w.not_empty_alarm is None:
                kwargs["add_queue_max_size_alarm"] = {
                    "Critical": mc.MaxMessageCountThreshold(
                        max_message_count=0,
                        alarm_description_override=f"{owner}: a message reached the dead-letter queue after its "
                        "retries (inspect, fix, redrive)",
                    )
                }
            self.facade.monitor_sqs_queue(
                queue=w.queue,
                alarm_friendly_name=f"{owner}DeadLetters",
                human_readable_name=f"{owner} dead-letter queue",
                **kwargs,  # type: ignore[arg-type]
            )

    def _alert_topic(self, topic: sns.Topic) -> None:
        failed = topic.metric_number_of_notifications_failed(period=PERIOD, statistic="Sum")
        published = topic.metric_number_of_messages_published(period=PERIOD, statistic="Sum")
        self.facade.add_medium_header("Alerts")
        self.facade.monitor_custom(
            alarm_friendly_name="AlertTopic",
            human_readable_name="Alert topic",
            metric_groups=[
                mc.CustomMetricGroup(
                    title="Alert notifications",
                    metrics=[
                        published.with_(label="alerts published"),
                        first_occurrence(
                            failed.with_(label="deliveries failed"),
                            "AlertDeliveryFailed",
                            "SNS could not deliver alerts to a subscriber "
                            "(e-mail, SMS or the automation Lambda, whose failures go to its DLQ)",
                        ),
                    ],
                )
            ],
        )

    def _operations_topic_health(self) -> None:
        """The operations topic itself: a failing e-mail subscription would hide every alarm, so it shows here and
        alarms (the alarm's own notification may fail too: the console and the dashboard still show it red)."""
        self.facade.add_medium_header("Operations topic")
        self.facade.monitor_sns_topic(
            topic=self.topic,
            alarm_friendly_name="OperationsTopic",
            human_readable_name="Operations topic",
            add_message_notifications_failed_alarm={
                "Warning": mc.NotificationsFailedThreshold(
                    max_notifications_failed_count=0,
                    alarm_description_override="SNS could not deliver operations notifications (alarms) to a "
                    "subscriber: check the ops_emails subscriptions",
                )
            },
        )
