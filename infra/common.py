"""Shared building blocks: resource markers, the Lambda factory and cdk-nag acknowledgements with reasons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, CfnResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct
from sentinel_core import environment as lambda_env

from infra.config import LOG_RETENTION_NAMES, SentinelConfig
from infra.powertools import powertools_layer

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_ASSET_DIR = ROOT / "lambdas"
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/tests", "**/.pytest_cache", "**/.mypy_cache"]
# The metadata key of a resource marker. Its text stays ``sentinel:role`` (older wording; "role" alone means an IAM
# role in this code): the local runtime, the integration tests and the README find resources by it.
MARKER_METADATA_KEY = "sentinel:role"
METRICS_NAMESPACE = "MetricSentinel"
RUNTIME = lambda_.Runtime.PYTHON_3_12
# arm64 (Graviton): the functions are pure Python (sentinel_core is standard library only, Powertools comes from
# its layer, which AWS publishes for arm64 too), and arm64 costs about 20 % less per GB-second than x86_64.
ARCHITECTURE = lambda_.Architecture.ARM_64


def mark(construct: IConstruct, marker: str) -> None:
    """Tag the CloudFormation resource behind ``construct`` with ``Metadata: {"sentinel:role": marker}``.

    The local runtime and the tests find resources by this marker instead of by generated logical ids.
    """
    res = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(res, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to mark")
    res.add_metadata(MARKER_METADATA_KEY, marker)


def logical_id(construct: IConstruct) -> str:
    """Logical id of the CloudFormation resource behind ``construct`` (for cdk-nag finding ids)."""
    res = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(res, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return str(Stack.of(res).get_logical_id(res))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """cdk-nag v3 acknowledgement (``Validations.of().acknowledge``): one finding, with the reason it is fine."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


# The account's key administration and use, spelled out: CDK's default key policy grants ``kms:*``.
KEY_ACCOUNT_ACTIONS: list[str] = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]


def sentinel_key(scope: Construct, id_: str, description: str, marker: str) -> kms.Key:
    """Customer-managed key with yearly rotation; the key policy delegates to IAM with enumerated actions."""
    policy = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="AccountAdministersAndUsesKeyThroughIam",
                principals=[iam.AccountRootPrincipal()],
                actions=KEY_ACCOUNT_ACTIONS,
                resources=["*"],
            )
        ]
    )
    key = kms.Key(
        scope,
        id_,
        description=description,
        enable_key_rotation=True,
        policy=policy,
        removal_policy=RemovalPolicy.RETAIN,
    )
    mark(key, marker)
    return key


def log_group(scope: Construct, id_: str, config: SentinelConfig) -> logs.LogGroup:
    return logs.LogGroup(
        scope,
        id_,
        retention=logs.RetentionDays(LOG_RETENTION_NAMES[config.log_retention_days]),
        removal_policy=RemovalPolicy.DESTROY,
    )


def encrypted_queue(scope: Construct, id_: str, marker: str) -> sqs.Queue:
    """A dead-letter queue: SQS-managed encryption, TLS only, 14 days to look at what failed."""
    q = sqs.Queue(
        scope,
        id_,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    mark(q, marker)
    return q


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the pipeline's Lambdas; ``SentinelFunction`` keeps it as ``spec``."""

    package: str  # handler package under lambdas/ (transform, detector, automation, backtest_job); also its marker
    description: str
    timeout: Duration
    memory_mb: int
    reserved_concurrency: int | None = None  # None = the account's unreserved pool (only the detector reserves)


class SentinelFunction(Construct):
    """One Lambda of the pipeline: shared asset, Python 3.12, Powertools layer, own log group and least-privilege role.

    The role starts with nothing but writing to the function's own log group; callers add the exact statements
    the handler needs (no managed policies, no wildcard actions).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: SentinelConfig,
        fn: FunctionSpec,
        environment: dict[str, str],
        dead_letter_queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self.spec = fn
        self.logs = log_group(self, "Logs", config)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Metric Sentinel {fn.package} function",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.logs.log_group_arn],
            )
        )
        layer = powertools_layer(
            self, "Powertools", architecture=ARCHITECTURE, runtime=RUNTIME, layer_arn=config.powertools_layer_arn
        )
        env = {
            lambda_env.SENTINEL_SPEC: config.spec.to_json(),
            lambda_env.POWERTOOLS_SERVICE_NAME: fn.package,
            lambda_env.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
            **environment,
        }
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=f"{fn.package}.app.lambda_handler",
            code=lambda_.Code.from_asset(str(LAMBDA_ASSET_DIR), exclude=ASSET_EXCLUDES),
            description=fn.description,
            timeout=fn.timeout,
            memory_size=fn.memory_mb,
            reserved_concurrent_executions=fn.reserved_concurrency,
            role=self.role,
            log_group=self.logs,
            layers=[layer],
            environment=env,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letter_queue,
        )
        mark(self.function, fn.package)
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 on purpose: the AWS-managed Powertools v3 layer is published per runtime and the team pins "
            "the python3.12 build (dev and CI run 3.12 too); the code also runs on newer runtimes when the layer is "
            "moved.",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions.",
        )

    def allow(self, sid: str, actions: list[str], resources: list[str]) -> None:
        """Add one least-privilege statement to the function's role."""
        for a in actions:
            if "*" in a:
                raise ValueError(f"wildcard action {a!r}: name the exact actions")
        self.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))


def any_occurrence_alarm(scope: Construct, id_: str, metric: cw.IMetric, description: str, marker: str) -> cw.Alarm:
    """An alarm that fires on the first occurrence (Sum >= 1 over one period); no data means nothing happened."""
    alarm = cw.Alarm(
        scope,
        id_,
        alarm_description=description,
        metric=metric,
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
    )
    mark(alarm, marker)
    return alarm


def failure_alarms(
    scope: Construct, fn: lambda_.IFunction, dlq: sqs.IQueue, *, marker: str, failed: str, dead_lettered: str
) -> tuple[cw.Alarm, cw.Alarm]:
    """An asynchronously invoked function's two alarms: it failed once (``<marker>-errors-alarm``), and an event
    ended in its dead-letter queue after the retries (``<marker>-dlq-alarm``)."""
    period = Duration.minutes(5)
    errors = any_occurrence_alarm(
        scope, "ErrorsAlarm", fn.metric_errors(period=period, statistic="Sum"), failed, f"{marker}-errors-alarm"
    )
    dead = any_occurrence_alarm(
        scope,
        "DeadLettersAlarm",
        dlq.metric_approximate_number_of_messages_visible(period=period),
        dead_lettered,
        f"{marker}-dlq-alarm",
    )
    return errors, dead


def alerting_environment(config: SentinelConfig, bucket_name: str, topic_arn: str, table_name: str) -> dict[str, str]:
    """Environment of a function that reads the lake, stores anomaly groups and publishes alerts."""
    env = {
        lambda_env.DATA_BUCKET: bucket_name,
        lambda_env.ALERT_TOPIC_ARN: topic_arn,
        lambda_env.ANOMALY_TABLE: table_name,
        lambda_env.DETECTOR_ID: config.detector_id,
        lambda_env.ALERT_FILTER: config.alert_filter_json,
    }
    if config.console_base_url:
        env[lambda_env.CONSOLE_BASE_URL] = config.console_base_url
    if config.alerts:  # without `alerts` the functions send the one default alert (ALERT_FILTER, the threshold)
        env[lambda_env.ALERT_ROUTES] = config.routes_json
    return env
