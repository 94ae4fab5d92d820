"""The S3 layout — the one place that says where data lives.

Firehose's prefix, the transform's partition keys, the built-in detector's reads and the Lookout for Metrics
metric set's ``TemplatedPathList`` are all derived here, so they cannot drift apart (``tests`` prove it for every
interval). Folders follow Lookout's convention: one folder per detector interval, named after the interval start::

    <data_prefix>/live/<yyyyMMdd>/<HHmm>/      (PT5M, PT10M, PT1H)
    <data_prefix>/live/<yyyyMMdd>/             (P1D)
    <data_prefix>/live/<yyyyMMdd>/<HHmm>/shard=<kkkk>/   (only with detector_shards > 1: one folder per shard)
    <data_prefix>/historical/                  (history that warms the detector up)
    <data_prefix>/errors/<error type>/<yyyy>/<MM>/<dd>/   (records the transform rejected, with the reason)
    <data_prefix>/detector/                    (the detector's state: see ``state_prefix``)

Sharded detector (``detector_shards`` > 1, the Step Functions fan-out): a record's shard is
``state_file.shard_of`` of its dimension values (in ``spec.dimensions`` order), written 4 digits wide so the
folders sort; each shard keeps its model at ``shard_state_key`` and hands its per-interval results to the merge at
``shard_result_key``; the merge keeps the open groups at ``merge_state_key``. One shard keeps every key above as it
was (no ``shard=`` part anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sentinel_core.intervals import floor_to_interval, interval_seconds, to_utc
from sentinel_core.spec import PipelineSpec

# Partition key names the transform returns and the Firehose prefix references.
DATE_KEY = "interval_date"
TIME_KEY = "interval_time"
SHARD_KEY = "shard"  # only when the detector has more than one shard
SHARD_DIGITS = 4  # shards are at most capacity.MAX_SHARDS (200): four digits sort and leave room


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


def shard_label(shard: int) -> str:
    """The shard's value of the ``shard`` partition key (``0007``)."""
    return f"{shard:0{SHARD_DIGITS}d}"


def shard_part(shard: int) -> str:
    """The shard's folder name under an interval folder (``shard=0007``)."""
    return f"{SHARD_KEY}={shard_label(shard)}"


def partition_keys(ts: datetime, spec: PipelineSpec, shard: int | None = None) -> dict[str, str]:
    """Dynamic-partitioning keys of the interval ``ts`` (the record's own time) falls in, plus the record's shard
    when the detector is sharded (``shard`` not None)."""
    start = floor_to_interval(ts, spec.interval)
    keys = {p.key: start.strftime(p.strftime) for p in _parts(spec)}
    if shard is not None:
        keys[SHARD_KEY] = shard_label(shard)
    return keys


def firehose_prefix(spec: PipelineSpec, shards: int = 1) -> str:
    """``Prefix`` of the Firehose S3 destination: Firehose substitutes the transform's partition keys (the shard's
    only when there is more than one)."""
    keys = "/".join(f"!{{partitionKeyFromLambda:{p.key}}}" for p in _parts(spec))
    if shards > 1:
        keys += f"/{SHARD_KEY}=!{{partitionKeyFromLambda:{SHARD_KEY}}}"
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


def shard_folder(ts: datetime, spec: PipelineSpec, shard: int) -> str:
    """The folder of one shard's records of the interval ``ts`` falls in (sharded detector)."""
    return f"{interval_folder(ts, spec)}{shard_part(shard)}/"


def records_folder(ts: datetime, spec: PipelineSpec, shard: int | None) -> str:
    """Where one detector run reads the interval: the whole folder, or one shard's (``shard`` not None)."""
    return interval_folder(ts, spec) if shard is None else shard_folder(ts, spec, shard)


STATE_FILE = "model/state.bin.gz"  # the single detector's state file (sentinel_core.state_file)


def state_key(spec: PipelineSpec, shard: int | None = None) -> str:
    """The model state of the single detector, or of one shard: ``model/shard=0007/state.bin.gz``."""
    if shard is None:
        return state_prefix(spec) + STATE_FILE
    return f"{state_prefix(spec)}model/{shard_part(shard)}/state.bin.gz"


def merge_state_key(spec: PipelineSpec) -> str:
    """The merge step's own small state: open groups across shards, the intervals merged, failed alerts."""
    return f"{state_prefix(spec)}merge/state.json.gz"


def shard_results_prefix(spec: PipelineSpec) -> str:
    """Where shards hand their per-interval results to the merge (the only prefix the merge reads)."""
    return f"{state_prefix(spec)}shard-results/"


def shard_results_run_prefix(spec: PipelineSpec, closed: datetime) -> str:
    """The shard results of the run for the closed interval ``closed`` (listed by the merge of later runs)."""
    return f"{shard_results_prefix(spec)}{to_utc(closed).strftime('%Y%m%dT%H%M')}/"


def shard_result_key(spec: PipelineSpec, closed: datetime, shard: int) -> str:
    """One shard's results of the run for the closed interval ``closed`` (a retry of the run overwrites them)."""
    return f"{shard_results_run_prefix(spec, closed)}{shard_part(shard)}.json.gz"


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
