"""Console history archive Lambda (thin: the rows are made by ``console_archive.logic``).

Triggered by the anomaly table's stream (new images of group and feedback items, filtered by the event source
mapping). Environment: ``DATA_BUCKET``, ``HISTORY_PREFIX``, Powertools settings. A failed PUT fails the batch (the
mapping bisects and retries it, then sends it to the dead-letter queue); rewriting a batch overwrites the same
objects, so retries add no duplicate lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentinel_core import environment as env

from console_archive import logic

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "console_archive"))
tracer = Tracer()


REQUIRED_ENV = (env.DATA_BUCKET, env.HISTORY_PREFIX)


@dataclass(frozen=True)
class Settings:
    bucket: str
    prefix: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; a :class:`~sentinel_core.environment.ConfigError` names what is missing."""
        e = env.Environment.current(environ)
        e.require(*REQUIRED_ENV)
        return cls(e.required(env.DATA_BUCKET), e.required(env.HISTORY_PREFIX))


@lru_cache(maxsize=1)
def s3() -> S3Client:
    return boto3.client("s3")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    objects = logic.history_objects(event.get("Records", []), settings.prefix, now)
    for obj in objects:
        s3().put_object(Bucket=settings.bucket, Key=obj.key, Body=obj.body, ContentType="application/x-ndjson")
    logger.info("history written", extra={"objects": [o.key for o in objects], "lines": sum(o.lines for o in objects)})
    return {"batchItemFailures": [], "objects": len(objects)}
