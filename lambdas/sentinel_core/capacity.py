"""How many series one detector function holds: the caps' defaults, written once (the detector Lambda reads its
caps from the environment, the CDK stack sets them from context and sizes the function with the same figures).

Standard library only.
"""

from __future__ import annotations

# The detector function's memory (MB) at the default caps; more series get more (``detector_memory_mb``).
DETECTOR_MEMORY_MB = 1024
MAX_LAMBDA_MEMORY_MB = 10_240  # Lambda's maximum
# A whole run's peak: a base plus a share per series held, and a quarter of headroom for the interval's records and
# the allocator. 16 KB per series: benchmarks/detector_scale.py measured 10.1 KB per series for a whole 50,000-series
# run with the compact state file (an upper bound: moto keeps the S3 bodies in the same process), 9.9 KB at 200,000;
# the margin is for series with more held points than the benchmark's. The JSON state of earlier releases took
# ~44 KB (issue 16).
RUN_BASE_MB = 73
RUN_KB_PER_SERIES = 16
HEADROOM = 1.25
# Series the model may hold: 40,000 need (73 MB + 40,000 x 16 KB) x 1.25 = 872 MB, inside the default 1,024 MB
# function. Context key ``detector_max_series`` (infra/config.py) changes it per stack (and the memory with it).
DEFAULT_MAX_SERIES = 40_000
# Series started per interval: a real fleet grows by a few devices at a time (a rollout of 5,000 is admitted within
# ten PT5M intervals), while a flood of invented ids takes at most this many places per interval, each refused one
# counted (metric SeriesRefused) and alarmed at the first interval it happens. Context key
# ``detector_max_new_series``.
DEFAULT_MAX_NEW_SERIES = 500


# Scale-out (context ``detector_shards``): past one function's series the detector is a Step Functions fan-out of
# shards, each holding at most ``max_series`` (the cap applies per shard). When the stack is sized from
# ``detector_expected_series`` instead, each shard is planned at SHARD_FILL of its cap: series are spread by a hash
# of their dimension values, so shards are even only on average (the count of one shard of 40,000 varies by about
# 200 = 0.5 %); a tenth of room keeps a shard from refusing series of an even fleet, and leaves room to grow.
SHARD_FILL = 0.9
# At most this many shards: every (interval, shard) is one Firehose dynamic partition, and a delivery stream holds
# 500 active partitions by default (a Firehose quota); 200 shards leave room for the late partitions of the
# previous interval. Beyond this, split the fleet over stacks (or raise the quota and this bound).
MAX_SHARDS = 200


def shards_for(expected_series: int, max_series: int = DEFAULT_MAX_SERIES) -> int:
    """Shards for ``expected_series`` when each holds at most ``max_series`` (planned at ``SHARD_FILL``)."""
    if expected_series < 1:
        raise ValueError(f"expected series must be at least 1, got {expected_series}")
    per_shard = max(1, int(max_series * SHARD_FILL))
    return max(1, -(-expected_series // per_shard))


def detector_memory_mb(max_series: int) -> int:
    """The memory a detector holding ``max_series`` series needs (at least ``DETECTOR_MEMORY_MB``); above
    ``MAX_LAMBDA_MEMORY_MB`` raises ValueError (the series must be split over more detectors)."""
    need = -(-int((RUN_BASE_MB + RUN_KB_PER_SERIES * max_series / 1024) * HEADROOM) // 64) * 64
    if need > MAX_LAMBDA_MEMORY_MB:
        most = int((MAX_LAMBDA_MEMORY_MB / HEADROOM - RUN_BASE_MB) * 1024 / RUN_KB_PER_SERIES)
        raise ValueError(
            f"{max_series} series need ~{need} MB, above Lambda's {MAX_LAMBDA_MEMORY_MB} MB (at most {most})"
        )
    return max(DETECTOR_MEMORY_MB, need)
