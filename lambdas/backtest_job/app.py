"""Backtest job Lambda handler (thin: the work is in ``backtest_job.job``).

Triggered by S3 ``ObjectCreated`` notifications on the upload prefix (suffix ``.csv``). Environment:
``SENTINEL_SPEC``, ``ALERT_TOPIC_ARN``, ``ANOMALY_TABLE``, ``DETECTOR_ID``, optional ``ALERT_FILTER`` and
``CONSOLE_BASE_URL``, Powertools settings (the names: ``sentinel_core.environment``). The event is read as
Powertools' ``S3Event``. Invoked asynchronously by S3: a failure is retried by Lambda and then lands in the
dead-letter queue with the event, so no upload is lost; retries send no duplicate alert (the alert ledger in the
anomaly table, ``store.publish_once``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentinel_core import environment as env

from backtest_job import job

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "backtest-job"))
metrics = Metrics()
tracer = Tracer()


@lru_cache(maxsize=1)
def runtime() -> tuple[job.Settings, job.Clients]:
    clients = job.Clients(s3=boto3.client("s3"), ddb=boto3.client("dynamodb"), sns=boto3.client("sns"))
    return job.Settings.from_env(), clients


def emit_metrics(report: job.JobReport) -> None:
    for name, value in (
        ("FilesProcessed", 1 if report.status == "ok" else 0),
        ("FilesRejected", 1 if report.status == "rejected" else 0),
        ("RowsRead", report.rows),
        ("RowsRejected", report.bad_rows),
        ("AnomalyGroups", report.groups),
        ("AlertsSent", report.alerts_sent),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    settings, clients = runtime()
    results = []
    for bucket, key, version in job.s3_objects(event):
        report = job.process_object(clients, settings, bucket, key, version)
        logger.info(
            "backtest job finished", extra={"report": {k: v for k, v in report.to_dict().items() if k != "group_list"}}
        )
        emit_metrics(report)
        results.append(report.to_dict())
    return {"files": results}
