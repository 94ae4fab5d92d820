"""The environment variables the Lambdas read: their names (the CDK stack sets them with the same constants), one
reader and one error.

Every name a handler reads is a constant here and nowhere else; ``infra/`` imports them to build each function's
``environment``, so a rename cannot leave the stack and the handlers disagreeing
(``tests/infra/test_lambda_environment.py`` checks both directions on the synthesized templates). Each handler
states what its cold start requires as ``REQUIRED_ENV``. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

SENTINEL_SPEC = "SENTINEL_SPEC"  # the pipeline spec JSON (every function)
DATA_BUCKET = "DATA_BUCKET"  # the data lake bucket (detector)
ALERT_TOPIC_ARN = "ALERT_TOPIC_ARN"  # where alerts are published (detector, backtest job)
ANOMALY_TABLE = "ANOMALY_TABLE"  # anomaly groups, alert ledger, feedback (detector, backtest job)
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"  # Powertools idempotency records (detector runs, automation commands)
DETECTOR_ID = "DETECTOR_ID"  # the detector's id in the anomaly table and in alerts
SCHEDULE_OFFSET_SECONDS = "SCHEDULE_OFFSET_SECONDS"  # how long after an interval closes it is read
ALERT_FILTER = "ALERT_FILTER"  # optional JSON: the measures / dimension values that alert
ALERT_ROUTES = "ALERT_ROUTES"  # optional JSON list: the detector's alerts (``alerts`` context key; unset = one alert)
CONSOLE_BASE_URL = "CONSOLE_BASE_URL"  # optional: the console alerts link to (its group pages)
HISTORY_PREFIX = "HISTORY_PREFIX"  # where the console archive writes the groups and feedback history (data bucket)
MAX_SERIES = "MAX_SERIES"  # detector: cap on the series its model holds (bounded cardinality)
MAX_NEW_SERIES = "MAX_NEW_SERIES"  # detector: cap on the series it starts per interval
DETECTOR_SHARDS = "DETECTOR_SHARDS"  # transform, shard and merge functions: the detector's shards (unset = 1)
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"  # Powertools' own: the service in logs and metrics
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"  # Powertools' own: the CloudWatch namespace

NAMES: frozenset[str] = frozenset(
    {
        SENTINEL_SPEC,
        DATA_BUCKET,
        ALERT_TOPIC_ARN,
        ANOMALY_TABLE,
        IDEMPOTENCY_TABLE,
        DETECTOR_ID,
        SCHEDULE_OFFSET_SECONDS,
        ALERT_FILTER,
        ALERT_ROUTES,
        CONSOLE_BASE_URL,
        HISTORY_PREFIX,
        MAX_SERIES,
        MAX_NEW_SERIES,
        DETECTOR_SHARDS,
        POWERTOOLS_SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE,
    }
)


class ConfigError(ValueError):
    """A missing or malformed environment variable; the message names it."""


@dataclass(frozen=True)
class Environment:
    """Reads variables from ``values`` (``os.environ`` by default); every failure is a :class:`ConfigError`."""

    values: Mapping[str, str]

    @classmethod
    def current(cls, environ: Mapping[str, str] | None = None) -> Environment:
        return cls(os.environ if environ is None else environ)

    def require(self, *names: str) -> None:
        """Fail naming EVERY missing (or empty) variable of ``names`` at once."""
        missing = [n for n in names if not self.values.get(n)]
        if missing:
            raise ConfigError(f"environment variable(s) {', '.join(missing)} not set (the CDK stack sets them)")

    def required(self, name: str) -> str:
        self.require(name)
        return self.values[name]

    def optional(self, name: str) -> str | None:
        """The value, or None when the variable is unset or empty (the stack leaves optional ones out)."""
        return self.values.get(name) or None

    def integer(self, name: str, default: int) -> int:
        """A whole number; ``default`` when unset or empty (each caller states why its default is right)."""
        raw = self.values.get(name, "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
