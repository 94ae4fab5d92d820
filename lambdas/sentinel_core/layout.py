"""The S3 layout — the one place that says where data lives.

Firehose's prefix, the transform's partition keys, the built-in detector's reads and the Lookout for Metrics
metric set's ``TemplatedPathList`` are all derived here, so they cannot drift apart (``tests`` prove it for every
interval). Folders follow Lookout's convention: one folder per detector interval, named after the interval start::

    <data_prefix>/live/<yyyyMMdd>/<HHmm>/      (PT5M, PT10M, PT1H)
    <data_prefix>/live/<yyyyMMdd>/             (P1D)
    <data_prefix>/historical/                  (history that warms the detector up)
    <data_prefix>/errors/<error type>/<yyyy>/<MM>/<dd>/   (records the transform rejected, with the reason)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sentinel_core.intervals import floor_to_interval, interval_seconds, to_utc
from sentinel_core.spec import PipelineSpec

# Partition key names the transform returns and the Firehose prefix references.
DATE_KEY = "interval_date"
TIME_KEY = "interval_time"


@dataclass(frozen=True)
class _Part:
    key: str
    strftime: str  # Python format of the interval start
    lookout: str  # Lookout for Metrics' placeholder


def _parts(spec: PipelineSpec) -> tuple[_Part, ...]:
    date = _Part(DATE_KEY, "%Y%m%d", "{{yyyyMMdd}}")
    if interval_seconds(spec.interval) >= 86400:
        return (date,)
    return (date, _Part(TIME_KEY, "%H%M", "{{HHmm}}"))


def live_root(spec: PipelineSpec) -> str:
    return f"{spec.data_prefix}/live/"


def historical_prefix(spec: PipelineSpec) -> str:
    return f"{spec.data_prefix}/historical/"


def error_root(spec: PipelineSpec) -> str:
    return f"{spec.data_prefix}/errors/"


def state_prefix(spec: PipelineSpec) -> str:
    """Where the built-in detector keeps its model snapshots and anomaly groups."""
    return f"{spec.data_prefix}/detector/"


def upload_prefix(spec: PipelineSpec) -> str:
    """Where users drop files for S3-ingest pipelines (loyalty)."""
    return f"{spec.data_prefix}/uploads/"


def partition_keys(ts: datetime, spec: PipelineSpec) -> dict[str, str]:
    """Dynamic-partitioning keys of the interval ``ts`` (the record's own time) falls in."""
    start = floor_to_interval(ts, spec.interval)
    return {p.key: start.strftime(p.strftime) for p in _parts(spec)}


def firehose_prefix(spec: PipelineSpec) -> str:
    """``Prefix`` of the Firehose S3 destination: Firehose substitutes the transform's partition keys."""
    keys = "/".join(f"!{{partitionKeyFromLambda:{p.key}}}" for p in _parts(spec))
    return f"{live_root(spec)}{keys}/"


def firehose_error_prefix(spec: PipelineSpec) -> str:
    """``ErrorOutputPrefix``: Firehose writes failed records (with the transform's reason) here."""
    return f"{error_root(spec)}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd}}/"


def lookout_path_template(bucket: str, spec: PipelineSpec) -> str:
    """``TemplatedPathList`` entry of the Lookout for Metrics metric set (no trailing slash, as Lookout expects)."""
    keys = "/".join(p.lookout for p in _parts(spec))
    return f"s3://{bucket}/{live_root(spec)}{keys}"


def interval_folder(ts: datetime, spec: PipelineSpec) -> str:
    """The folder (key prefix) holding every record of the interval that ``ts`` falls in."""
    keys = partition_keys(ts, spec)
    return f"{live_root(spec)}{'/'.join(keys[p.key] for p in _parts(spec))}/"


def parse_interval_folder(key: str, spec: PipelineSpec) -> datetime | None:
    """Interval start encoded in a live key, or None when the key is not under the live root."""
    root = live_root(spec)
    if not key.startswith(root):
        return None
    rest = key[len(root) :].split("/")
    parts = _parts(spec)
    if len(rest) < len(parts) + 1:
        return None
    fmt = "".join(p.strftime for p in parts)
    try:
        return to_utc(datetime.strptime("".join(rest[: len(parts)]), fmt))
    except ValueError:
        return None
