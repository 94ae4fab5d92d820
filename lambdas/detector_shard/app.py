"""Shard Lambda of the sharded detector (thin: the work is in ``detector.shard`` over ``detector.runner``).

Invoked by the state machine's Map (``infra/detector_fanout.py``), once per shard and run, with
``{"shard": k, "time": <the schedule's event time>}``; returns ``{"shard", "key", "intervals"}`` (the results are in
S3 under ``key``, for the merge). A raised error fails the iteration: the state machine retries it, then catches it
(the merge goes on with the other shards; this shard catches up on its next run). Environment: the detector's
(``runner.REQUIRED_ENV``) and ``DETECTOR_SHARDS``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from detector import runner, shard
from detector.app import SHARDED_REQUIRED_ENV, collector_paused, emit_metrics, sharded_runtime
from sentinel_core import environment as env

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "detector_shard"))
metrics = Metrics()
tracer = Tracer()

REQUIRED_ENV = SHARDED_REQUIRED_ENV  # the environment it reads (detector.app.sharded_runtime)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        rt = sharded_runtime()
        k = shard.shard_of_event(event, rt.settings.shards)
        logger.append_keys(shard=k)
        wall = datetime.now(UTC)
        if runner.too_far_ahead(event, wall):
            emit_metrics(runner.refused_report(event, wall).to_dict())
            return {"shard": k, "refused": True}
        closed = runner.closed_interval(event, rt.settings)
        with collector_paused():  # as the single detector's run (detector.app.collector_paused: why)
            out = shard.run_shard(rt.clients, rt.settings.for_shard(k), closed, context.get_remaining_time_in_millis)
    except Exception:
        metrics.add_metric(name="ShardRunsFailed", unit=MetricUnit.Count, value=1)
        raise
    emit_metrics(out.report.to_dict())
    return out.to_payload()
