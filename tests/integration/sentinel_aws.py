"""Helpers for the alerting tests: moto resources with the stack's key schemas, SNS -> SQS read-back, a Lambda
context, and routing of the account-specific IoT data endpoint (``<id>-ats.iot.<region>.amazonaws.com``) to moto.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "eu-west-1"
ACCOUNT = "123456789012"


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that Powertools reads."""

    function_name: str = "sentinel-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sentinel-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 600_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def create_anomaly_table(name: str = "sentinel-anomalies") -> str:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    return name


def create_idempotency_table(name: str = "sentinel-idempotency") -> str:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})
    return name


def create_topic_with_queue(name: str = "sentinel-alerts") -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed (raw delivery off): returns (topic ARN, queue URL)."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every SNS envelope waiting in the queue (JSON of each SQS body)."""
    sqs = boto3.client("sqs", region_name=REGION)
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


@contextmanager
def route_account_iot_endpoint() -> Iterator[None]:
    """Let moto answer the account-specific ATS data endpoint that iot:DescribeEndpoint returns.

    moto only recognises ``data-ats.iot.<region>.amazonaws.com``; the real client code (and this test) uses the
    per-account host, so the pattern is added to moto's routing tables for the duration of the test.
    """
    import moto.iotdata.urls as iotdata_urls
    from moto import backend_index

    pattern = r"https?://[a-z0-9]+-ats\.iot\.(.+)\.amazonaws\.com"
    entry = ("iotdata", re.compile(pattern))
    iotdata_urls.url_bases.append(pattern)
    backend_index.backend_url_patterns.append(entry)
    try:
        yield
    finally:
        iotdata_urls.url_bases.remove(pattern)
        backend_index.backend_url_patterns.remove(entry)


def published_iot(region: str = REGION, account: str = ACCOUNT) -> list[tuple[str, bytes]]:
    from moto.iotdata.models import iotdata_backends

    return list(iotdata_backends[account][region].published_payloads)
