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
- the detector's contained failures (``DETECTOR_CONTAINED``: a failed alert, a quarantined object or series, refused
  series, a recovered state, a refused future event): at the first occurrence;
- any dead-letter queue not empty; alert topic deliveries failing (SNS ``NumberOfNotificationsFailed``);
- no data: Firehose ``IncomingRecords`` below 1 for ``NO_DATA_INTERVALS`` intervals (streaming ingest), or no
  upload processed for a day (S3-upload ingest).
"""

from __future__ import annotations

from dataclasses import dataclass

import cdk_monitoring_constructs as mc
from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
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


def intervals_within_a_day(interval_seconds: int, wanted: int) -> int:
    """``wanted`` evaluation periods of one interval each, fewer if that would exceed a day (at least one)."""
    return max(1, min(wanted, MAX_EVALUATION_SECONDS // interval_seconds))


def alarm_period(interval_seconds: int) -> Duration:
    """An alarm period of one detector interval (CloudWatch periods are whole minutes, at most a day)."""
    return Duration.seconds(min(MAX_EVALUATION_SECONDS, max(60, interval_seconds)))


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

    @property
    def stage_alarms(self) -> tuple[cw.Alarm, ...]:
        """The alarms the stages made themselves (detector / backtest errors and DLQs)."""
        own = [f.errors_alarm for f in self.functions] + [q.not_empty_alarm for q in self.queues]
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
        self._ingest_and_delivery(watched.delivery_stream.ref)
        self._transform()
        if watched.iot_rule is not None:
            self._iot_rule(watched.iot_rule)
        self._functions(watched)
        if watched.detector is not None:
            self._detector()
        self._queues(watched.queues)
        self._alert_topic(watched.alert_topic)
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

    def _ingest_and_delivery(self, stream: str) -> None:
        config = self.config
        interval = config.interval_seconds
        incoming = self._firehose("IncomingRecords", stream, "Sum", "records ingested (Firehose)")
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
                    mc.CustomMetricWithAlarm(
                        metric=success,
                        alarm_friendly_name="DeliveryToS3Failing",
                        add_alarm={
                            "Critical": mc.CustomThreshold(
                                threshold=1,
                                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                                evaluation_periods=2,
                                datapoints_to_alarm=2,
                                treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                                alarm_description_override="Firehose fails to write to the data lake (S3 / KMS / "
                                "permissions); records are retried for 24 h, then written to the error prefix",
                            )
                        },
                    ),
                    processing,
                ],
            ),
            mc.CustomMetricGroup(
                title="Delivery freshness (seconds)",
                metrics=[
                    mc.CustomMetricWithAlarm(
                        metric=freshness,
                        alarm_friendly_name="DeliveryStale",
                        add_alarm={
                            "Warning": mc.CustomThreshold(
                                threshold=stale_after,
                                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                                evaluation_periods=2,
                                datapoints_to_alarm=2,
                                treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                                alarm_description_override=f"Records wait more than {stale_after} s in Firehose: "
                                "they land after the detector read their interval (counted as late)",
                            )
                        },
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
                        mc.CustomMetricWithAlarm(
                            metric=rate,
                            alarm_friendly_name="TransformFailureRate",
                            add_alarm={
                                "Warning": mc.CustomThreshold(
                                    threshold=TRANSFORM_FAILURE_PERCENT,
                                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                                    evaluation_periods=1,
                                    treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                                    alarm_description_override=f"More than {TRANSFORM_FAILURE_PERCENT}% of records "
                                    "were rejected by the transform (see RecordsFailedByReason and the error prefix)",
                                )
                            },
                        )
                    ],
                ),
            ],
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
            mc.CustomMetricWithAlarm(
                metric=errors,
                alarm_friendly_name="IotRuleErrorAction",
                add_alarm={
                    "Critical": mc.CustomThreshold(
                        threshold=1,
                        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                        evaluation_periods=1,
                        treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                        alarm_description_override="The IoT topic rule could not put messages into Firehose; "
                        "its error action logged them (payload included) in the rule-errors log group",
                    )
                },
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

    def _detector(self) -> None:
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
        m = {n: self._powertools("detector", n, label) for n, label in names}
        # One bad thing fails only itself (detector/runner.py): each containment is counted and alarmed at the
        # first occurrence, so what was contained is looked at.
        contained = [
            mc.CustomMetricWithAlarm(
                metric=self._powertools("detector", name, label),
                alarm_friendly_name=f"Detector{name}",
                add_alarm={
                    "Warning": mc.CustomThreshold(
                        threshold=1,
                        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                        evaluation_periods=1,
                        treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                        alarm_description_override=description,
                    )
                },
            )
            for name, label, description in DETECTOR_CONTAINED
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
                        mc.CustomMetricWithAlarm(
                            metric=failed.with_(label="deliveries failed"),
                            alarm_friendly_name="AlertDeliveryFailed",
                            add_alarm={
                                "Warning": mc.CustomThreshold(
                                    threshold=1,
                                    comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                                    evaluation_periods=1,
                                    treat_missing_data_override=cw.TreatMissingData.NOT_BREACHING,
                                    alarm_description_override="SNS could not deliver alerts to a subscriber "
                                    "(e-mail, SMS or the automation Lambda, whose failures go to its DLQ)",
                                )
                            },
                        ),
                    ],
                )
            ],
        )
