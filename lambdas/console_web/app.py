"""Custom resource handler (CloudFormation calls it on create, update and delete of ``Console/WebFiles``).

Create/Update: read the web asset zip (``AssetBucket``/``AssetKey``), write each file and ``config.json``
(``Config``) into ``WebBucket``, invalidate ``DistributionId``; Delete: nothing (the bucket is retained with the
stack's other buckets). The answer always goes to CloudFormation's pre-signed ``ResponseURL`` — also on failure, with
the reason — so a stack operation never waits for a timeout.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentinel_core import environment as env

from console_web import logic

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "console_web"))
# It reads only what CloudFormation sends (the resource properties); the stack gives every function the spec.
REQUIRED_ENV = (env.SENTINEL_SPEC,)


@lru_cache(maxsize=1)
def s3() -> S3Client:
    return boto3.client("s3")


def deploy(props: dict[str, Any]) -> dict[str, Any]:
    archive = s3().get_object(Bucket=props["AssetBucket"], Key=props["AssetKey"])["Body"].read()
    files = logic.web_files(archive, props.get("Config") or {})
    for f in files:
        s3().put_object(
            Bucket=props["WebBucket"], Key=f.key, Body=f.body, ContentType=f.content_type, CacheControl=f.cache_control
        )
    cloudfront: Any = boto3.client("cloudfront")
    cloudfront.create_invalidation(
        DistributionId=props["DistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time_ns())},
    )
    return {"Files": len(files)}


def respond(event: dict[str, Any], status: str, reason: str, data: dict[str, Any]) -> None:
    url = str(event["ResponseURL"])
    if not url.startswith("https://"):
        raise ValueError("ResponseURL is not https: refusing to answer")
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:500],
            "PhysicalResourceId": event.get("PhysicalResourceId") or event["ResourceProperties"]["WebBucket"],
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - https checked above
        resp.read()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    try:
        data = {} if event["RequestType"] == "Delete" else deploy(dict(event["ResourceProperties"]))
    except Exception as exc:
        logger.exception("web files not deployed")
        respond(event, "FAILED", f"{type(exc).__name__}: {exc}", {})
        return
    logger.info("web files deployed", extra={"request": event["RequestType"], **data})
    respond(event, "SUCCESS", "", data)
