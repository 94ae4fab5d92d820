"""Merge Lambda of the sharded detector (thin: the work is in ``detector.merge``).

Invoked by the state machine after the Map with ``{"time": <the schedule's event time>, "results": [<one item per
shard>]}``. Groups across shards, stores groups and run records, alerts once through the ledger, and emits the
detector's metrics plus ``ShardsFailed`` (alarmed: a shard whose iteration failed after its retries, or whose
result could not be read). Environment: the detector's (``runner.REQUIRED_ENV``) and ``DETECTOR_SHARDS``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from detector import merge, runner
from detector.app import SHARDED_REQUIRED_ENV, emit_metrics, sharded_runtime
from sentinel_core import environment as env

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "detector_merge"))
metrics = Metrics()
tracer = Tracer()

REQUIRED_ENV = SHARDED_REQUIRED_ENV  # the environment it reads (detector.app.sharded_runtime)


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        rt = sharded_runtime()
        wall = datetime.now(UTC)
        if runner.too_far_ahead(event, wall):
            refused = runner.refused_report(event, wall).to_dict()
            emit_metrics(refused)
            return refused
        items = event.get("results")
        if not isinstance(items, list):
            raise ValueError("the merge event needs the Map's 'results' list")
        report = merge.run_merge(rt.clients, rt.settings, runner.closed_interval(event, rt.settings), items)
    except Exception:
        metrics.add_metric(name="MergesFailed", unit=MetricUnit.Count, value=1)
        raise
    out = report.to_dict()
    emit_metrics(out)
    metrics.add_metric(name="ShardsFailed", unit=MetricUnit.Count, value=report.shards_failed)
    metrics.add_metric(name="ShardsSucceeded", unit=MetricUnit.Count, value=report.shards_ok)
    metrics.add_metric(name="LateShardIntervals", unit=MetricUnit.Count, value=report.late_intervals)
    return out
