"""Built-in detector Lambda handler (thin: the work is in ``detector.runner``).

Triggered by the EventBridge schedule (interval + ``SCHEDULE_OFFSET_SECONDS``). Environment: ``SENTINEL_SPEC``,
``DATA_BUCKET``, ``ALERT_TOPIC_ARN``, ``ANOMALY_TABLE``, ``IDEMPOTENCY_TABLE``, ``DETECTOR_ID``,
``SCHEDULE_OFFSET_SECONDS``, ``ALERT_FILTER``, ``CONSOLE_BASE_URL``, Powertools settings (the names are the
constants of ``sentinel_core.environment``).

Idempotency: a run is keyed on (detector id, closed interval start) with Powertools idempotency (DynamoDB): a
double schedule or a redelivered event returns the first run's report and does nothing. A run that fails leaves no
idempotency record, so the retry runs again from the saved model state; the alert ledger in the anomaly table then
guarantees each (group, interval) alert is published once (see ``sentinel_core.store.publish_once``).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from sentinel_core import environment as env

from detector import runner

logger = Logger(service=os.environ.get(env.POWERTOOLS_SERVICE_NAME, "detector"))
metrics = Metrics()
tracer = Tracer()

RUN_IDEMPOTENCY_SECONDS = 2 * 86400  # longer than EventBridge's 24 h retry window
REQUIRED_ENV = (*runner.REQUIRED_ENV, env.IDEMPOTENCY_TABLE)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the duration of one run (reference counting still frees the rest).

    Why: a run holds the whole model (one object per series, ``Detector``) and builds its interval's keys, cells and
    scores, all alive until the state is saved and none in a reference cycle; every full collection walks all of
    them for nothing. Measured (``benchmarks/detector_scale.py``, 200k series): 10 full collections took ~13 % of the
    run's CPU. The run leaves almost no cyclic garbage (67 objects, 0.3 MB after a 50k-series run), collected as
    usual once the collector is back on. A collector that was already off stays off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run(
    clients: runner.Clients,
    settings: runner.Settings,
    closed: datetime,
    time_left: Callable[[], int] | None = None,
    wall_now: datetime | None = None,
) -> runner.RunReport:
    """``runner.run`` as the handler runs it: with the cyclic collector paused (:func:`collector_paused`)."""
    with collector_paused():
        return runner.run(clients, settings, closed, time_left, wall_now=wall_now)


@dataclass
class Runtime:
    settings: runner.Settings
    clients: runner.Clients
    config: IdempotencyConfig
    once: Callable[..., dict[str, Any]]


def _replayed(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this when it returns a stored result instead of running: mark it (no double metrics)."""
    if isinstance(response, dict):
        return {**response, "replayed": True}
    return response


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    environ = env.Environment.current()
    environ.require(*REQUIRED_ENV)
    settings = runner.Settings.from_env(environ.values)
    table = environ.required(env.IDEMPOTENCY_TABLE)
    clients = runner.Clients(s3=boto3.client("s3"), ddb=boto3.client("dynamodb"), sns=boto3.client("sns"))
    config = IdempotencyConfig(expires_after_seconds=RUN_IDEMPOTENCY_SECONDS, response_hook=_replayed)
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=clients.ddb)

    def process(*, job: dict[str, str], time_left: Callable[[], int] | None = None) -> dict[str, Any]:
        closed = datetime.fromisoformat(job["interval"])
        return run(clients, settings, closed, time_left).to_dict()

    once = idempotent_function(
        process, data_keyword_argument="job", persistence_store=persistence, config=config, key_prefix="detector-run"
    )
    return Runtime(settings, clients, config, once)


# The sharded detector's Lambdas (``detector_shard``, ``detector_merge``): the detector's environment and the shard
# count; no run idempotency (each run is one state machine execution, and the merge keeps what it merged).
SHARDED_REQUIRED_ENV = (*runner.REQUIRED_ENV, env.DETECTOR_SHARDS)


@dataclass(frozen=True)
class ShardedRuntime:
    settings: runner.Settings
    clients: runner.Clients


@lru_cache(maxsize=1)
def sharded_runtime() -> ShardedRuntime:
    """What the shard and merge Lambdas build once per container: settings from the environment and the clients."""
    environ = env.Environment.current()
    environ.require(*SHARDED_REQUIRED_ENV)
    settings = runner.Settings.from_env(environ.values)
    clients = runner.Clients(s3=boto3.client("s3"), ddb=boto3.client("dynamodb"), sns=boto3.client("sns"))
    return ShardedRuntime(settings, clients)


def emit_metrics(report: dict[str, Any]) -> None:
    replay = bool(report.get("replayed"))
    for name, key in (
        ("IntervalsScored", "intervals_scored"),
        ("SeriesScored", "series_scored"),
        ("Anomalies", "anomalies"),
        ("AlertsSent", "alerts_sent"),
        ("LateRecords", "late_records"),
        ("DuplicateRecords", "duplicate_records"),
        ("BadRecords", "bad_records"),
        # One bad thing fails only itself (runner module doc); each of these is alarmed (infra/monitoring.py).
        ("AlertsFailed", "alerts_failed"),
        ("AlertsGivenUp", "alerts_given_up"),
        ("GroupsFailed", "groups_failed"),
        ("ObjectsQuarantined", "objects_quarantined"),
        ("SeriesQuarantined", "series_quarantined"),
        ("SeriesRefused", "series_refused"),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=0 if replay else int(report.get(key, 0)))
    for name, key in (("StateRecovered", "state_recovered"), ("FutureEventsRefused", "future_event")):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=0 if replay else int(bool(report.get(key))))
    metrics.add_metric(name="RunsReplayed", unit=MetricUnit.Count, value=1 if replay else 0)
    metrics.add_metric(name="BacklogIntervals", unit=MetricUnit.Count, value=int(report.get("backlog_left", 0)))


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        rt = runtime()
        rt.config.register_lambda_context(context)
        wall = datetime.now(UTC)
        if runner.too_far_ahead(event, wall):
            refused = runner.refused_report(event, wall).to_dict()
            emit_metrics(refused)
            return refused
        closed = runner.closed_interval(event, rt.settings)
        job = {"detector_id": rt.settings.detector_id, "interval": closed.isoformat()}
        report = rt.once(job=job, time_left=context.get_remaining_time_in_millis)
    except Exception:
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
        raise
    if report.get("replayed"):
        logger.info("run already done for this interval: nothing repeated", extra={"job": job})
    emit_metrics(report)
    return report
