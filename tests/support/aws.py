"""moto helpers for the tests that call a handler directly: tables with the stack's key schemas, SNS -> SQS
read-back and a Lambda context. The offline harness itself (credentials, IoT endpoint route, cold starts) is
``local_aws.offline``: tests use that one, like the demo."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from local_aws import ACCOUNT, REGION, FakeLambdaContext, LocalPipeline

Play = Callable[..., LocalPipeline]  # the ``play`` fixture: play(preset, **context) -> a started, offline stack

__all__ = [
    "ACCOUNT",
    "REGION",
    "Play",
    "create_anomaly_table",
    "create_idempotency_table",
    "create_topic_with_queue",
    "drain",
    "lambda_context",
]


def lambda_context(name: str = "sentinel-test", timeout_seconds: int = 600) -> FakeLambdaContext:
    """The context object a handler gets (Powertools reads its name, memory, ARN and request id)."""
    return FakeLambdaContext(
        function_name=name,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
        memory_limit_in_mb=512,
        timeout_seconds=timeout_seconds,
    )


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
