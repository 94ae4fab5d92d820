"""Firehose transform Lambda handler (thin: the work is in ``transform.logic``).

Environment: ``SENTINEL_SPEC`` (pipeline spec JSON), optional ``SCHEDULE_OFFSET_SECONDS`` (how long after an
interval closes the detector reads it; records arriving later are counted as late), Powertools settings.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import KinesisFirehoseEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentinel_core import environment as env
from sentinel_core.spec import PipelineSpec

from transform import logic

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "transform"))
metrics = Metrics()
tracer = Tracer()


REQUIRED_ENV = (env.SENTINEL_SPEC,)
# Without SCHEDULE_OFFSET_SECONDS a record arriving after its interval closed counts as late at once.
DEFAULT_LATE_TOLERANCE_SECONDS = 0


@lru_cache(maxsize=4)
def _spec(raw: str) -> PipelineSpec:
    return PipelineSpec.from_env({env.SENTINEL_SPEC: raw})


def current_spec() -> PipelineSpec:
    """The spec of ``SENTINEL_SPEC``, parsed once per distinct value (the offline runtime switches specs)."""
    return _spec(env.Environment.current().required(env.SENTINEL_SPEC))


def _late_tolerance() -> int:
    return env.Environment.current().integer(env.SCHEDULE_OFFSET_SECONDS, DEFAULT_LATE_TOLERANCE_SECONDS)


def _shards() -> int:
    """``DETECTOR_SHARDS``; unset = 1, the single detector (its folders have no ``shard=`` part)."""
    shards = env.Environment.current().integer(env.DETECTOR_SHARDS, 1)
    if shards < 1:
        raise env.ConfigError(f"{env.DETECTOR_SHARDS} must be at least 1, got {shards}")
    return shards


def _emit(summary: logic.BatchSummary, source: str) -> None:
    metrics.add_metric(name="RecordsIn", unit=MetricUnit.Count, value=summary.records_in)
    metrics.add_metric(name="RecordsOk", unit=MetricUnit.Count, value=summary.ok)
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=summary.failed)
    metrics.add_metric(name="RecordsLate", unit=MetricUnit.Count, value=summary.late)
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=summary.bytes_in)
    metrics.add_metric(name="BytesOut", unit=MetricUnit.Bytes, value=summary.bytes_out)
    for reason, count in sorted(summary.failed_by_reason.items()):
        with single_metric(
            name="RecordsFailedByReason", unit=MetricUnit.Count, value=count, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name="reason", value=reason)
            metric.add_dimension(name="source", value=source)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=KinesisFirehoseEvent)
def lambda_handler(event: KinesisFirehoseEvent, context: LambdaContext) -> dict[str, Any]:
    spec = current_spec()
    source = "kinesis" if event.source_kinesis_stream_arn else "direct_put"
    logger.append_keys(invocation_id=event.get("invocationId"), delivery_stream=event.get("deliveryStreamArn"))
    response, outcomes = logic.transform_batch(event.raw_event, spec, _late_tolerance(), shards=_shards())
    for o in outcomes:
        if not o.ok:
            logger.warning(
                "record rejected",
                extra={"record_id": o.record_id, "reason": o.reason, "detail": o.message, "bytes": o.in_bytes},
            )
    summary = logic.summarise(outcomes)
    _emit(summary, source)
    logger.info(
        "batch transformed",
        extra={
            "records_in": summary.records_in,
            "ok": summary.ok,
            "failed": summary.failed,
            "late": summary.late,
            "failed_by_reason": summary.failed_by_reason,
        },
    )
    return response
