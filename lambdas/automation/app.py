"""Alert automation Lambda handler (thin: the work is in ``automation.logic``).

Subscribed to the alert SNS topic; the event is read as Powertools' ``SNSEvent``. Environment: ``SENTINEL_SPEC``,
``IDEMPOTENCY_TABLE`` (Powertools idempotency, key ``id``, TTL ``expiration``), Powertools settings (the names:
``sentinel_core.environment``). The account's IoT data endpoint is looked up once per cold
start (``iot:DescribeEndpoint``, type ``iot:Data-ATS``). Each command is published at most once per
(alertEventId, command topic): SNS may deliver an alert twice, Lambda may retry; the device sees one command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentinel_core import environment as env
from sentinel_core.spec import PipelineSpec

from automation import logic

if TYPE_CHECKING:
    from mypy_boto3_iot_data import IoTDataPlaneClient

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "automation"))
metrics = Metrics()
tracer = Tracer()

COMMAND_IDEMPOTENCY_SECONDS = 7 * 86400  # far beyond SNS's and Lambda's retries of one alert
REQUIRED_ENV = (env.SENTINEL_SPEC, env.IDEMPOTENCY_TABLE)


@dataclass
class Runtime:
    spec: PipelineSpec
    config: IdempotencyConfig
    send: Callable[[logic.Command], None]


def iot_data_client(region: str | None = None) -> IoTDataPlaneClient:
    """iot-data client on this account's ATS data endpoint."""
    address = boto3.client("iot", region_name=region).describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    return boto3.client("iot-data", region_name=region, endpoint_url=f"https://{address}")


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    environ = env.Environment.current()
    environ.require(*REQUIRED_ENV)
    spec = PipelineSpec.from_env(environ.values)
    table = environ.required(env.IDEMPOTENCY_TABLE)
    config = IdempotencyConfig(expires_after_seconds=COMMAND_IDEMPOTENCY_SECONDS)
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=boto3.client("dynamodb"))
    client = iot_data_client() if spec.ingest == "iot" else None

    def publish(*, key: dict[str, str], command: logic.Command) -> dict[str, str]:
        if client is None:
            raise RuntimeError(f"pipeline {spec.preset} has no IoT data endpoint")
        client.publish(topic=command.topic, qos=1, payload=command.body)
        return {"topic": command.topic, "alertEventId": key["alertEventId"]}

    once = idempotent_function(
        publish, data_keyword_argument="key", persistence_store=persistence, config=config, key_prefix="command"
    )

    def send(command: logic.Command) -> None:
        once(key=command.idempotency_key, command=command)

    return Runtime(spec, config, send)


def _log(message: str, extra: dict[str, Any]) -> None:
    logger.info(message, extra=extra)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=SNSEvent)
def lambda_handler(event: SNSEvent, context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    rt.config.register_lambda_context(context)
    try:
        outcome = logic.handle(logic.alert_messages(event), rt.spec, rt.send, _log)
    except logic.AlertParseError:
        metrics.add_metric(name="AlertsUnparsable", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name="AlertsReceived", unit=MetricUnit.Count, value=outcome.alerts)
    metrics.add_metric(name="CommandsSent", unit=MetricUnit.Count, value=len(outcome.commands))
    metrics.add_metric(name="AlertsIgnoredNonIot", unit=MetricUnit.Count, value=outcome.ignored_non_iot)
    metrics.add_metric(name="AlertsIgnoredSilent", unit=MetricUnit.Count, value=outcome.ignored_silent)
    metrics.add_metric(name="AlertsWithoutLocation", unit=MetricUnit.Count, value=outcome.without_location)
    metrics.add_metric(name="LocationsWithoutThing", unit=MetricUnit.Count, value=len(outcome.without_thing))
    return {
        "alerts": outcome.alerts,
        "commands": [{"topic": c.topic, "payload": c.payload} for c in outcome.commands],
        "ignored_non_iot": outcome.ignored_non_iot,
        "ignored_silent": outcome.ignored_silent,
    }
