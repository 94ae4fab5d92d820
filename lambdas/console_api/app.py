"""Console API Lambda handler (thin: the operations are in ``console_api.operations``).

API Gateway (HTTP API, JWT authorizer on the Cognito user pool) routes ``POST /api/{operation}`` here; the body is
the operation's JSON request with Lookout for Metrics' field names. Environment: ``SENTINEL_SPEC``,
``ANOMALY_TABLE``, ``DETECTOR_ID``, Powertools settings. Bad input is a 4xx with Lookout's error type
(``ValidationException``, ``ResourceNotFoundException``), never a 500.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from sentinel_core import environment as env
from sentinel_core.spec import PipelineSpec

from console_api import operations

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "console_api"))
tracer = Tracer()
app = APIGatewayHttpResolver()


REQUIRED_ENV = (env.SENTINEL_SPEC, env.ANOMALY_TABLE, env.DETECTOR_ID)


@dataclass(frozen=True)
class Settings:
    table: str
    detector_id: str
    spec: PipelineSpec

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; a :class:`~sentinel_core.environment.ConfigError` names what is missing."""
        e = env.Environment.current(environ)
        e.require(*REQUIRED_ENV)
        return cls(e.required(env.ANOMALY_TABLE), e.required(env.DETECTOR_ID), PipelineSpec.from_env(dict(e.values)))


@lru_cache(maxsize=1)
def api_context() -> operations.Context:
    s = Settings.from_env()
    return operations.Context(ddb=boto3.client("dynamodb"), table=s.table, detector_id=s.detector_id, spec=s.spec)


def error_response(err: operations.ApiError) -> Response[str]:
    return Response(
        status_code=err.status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(err.body()),
        headers={"x-amzn-ErrorType": err.kind},
    )


def _api_error(err: operations.ApiError) -> Response[str]:
    logger.info("request refused", extra={"error": err.kind, "reason": str(err)})
    return error_response(err)


def _client_error(err: ClientError) -> Response[str]:
    """DynamoDB refusing a request the checks let through (e.g. a forged page key) is still the caller's error;
    throttling is a 503 the caller retries; anything else is ours (re-raised: a 500 and an error in the logs)."""
    code = err.response.get("Error", {}).get("Code", "")
    if code == "ValidationException":
        return error_response(operations.ApiError("the request cannot be answered: " + str(err)))
    if code in ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"):
        return error_response(operations.ApiError("too many requests: retry shortly", "TooManyRequestsException", 503))
    raise err


# Registered by call, not as decorators: Powertools' exception_handler is untyped (mypy --strict).
app.exception_handler(operations.ApiError)(_api_error)
app.exception_handler(ClientError)(_client_error)


@app.post("/api/<operation>")
def call(operation: str) -> dict[str, Any]:
    raw = app.current_event.decoded_body or ""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        raise operations.ApiError(f"the request body is not JSON: {exc.msg} at position {exc.pos}") from None
    return operations.dispatch(api_context(), operation, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
