"""Console history archive Lambda (thin: the rows are made by ``console_archive.logic``).

Triggered by the anomaly table's stream (new images of group and feedback items, filtered by the event source
mapping). Environment: ``DATA_BUCKET``, ``HISTORY_PREFIX``, Powertools settings. A failed PUT fails the batch (the
mapping bisects and retries it, then sends it to the dead-letter queue); rewriting a batch overwrites the same
objects, so retries add no duplicate lines.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from console_archive import logic

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "console_archive"))
tracer = Tracer()


class ConfigError(RuntimeError):
    """A missing environment variable; the message names it."""


@lru_cache(maxsize=1)
def s3() -> S3Client:
    return boto3.client("s3")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    bucket = os.environ.get("DATA_BUCKET")
    prefix = os.environ.get("HISTORY_PREFIX")
    if not bucket or not prefix:
        raise ConfigError("environment variables DATA_BUCKET and HISTORY_PREFIX must be set (the CDK stack sets them)")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    objects = logic.history_objects(event.get("Records", []), prefix, now)
    for obj in objects:
        s3().put_object(Bucket=bucket, Key=obj.key, Body=obj.body, ContentType="application/x-ndjson")
    logger.info("history written", extra={"objects": [o.key for o in objects], "lines": sum(o.lines for o in objects)})
    return {"batchItemFailures": [], "objects": len(objects)}
