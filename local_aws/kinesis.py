"""A Kinesis ``put_records`` client for :class:`local_aws.LocalPipeline`.

Each record goes into moto's stream and on to the Firehose delivery stream that reads it. When a record arrives is
the caller's business: ``arrival(data)`` returns the simulated arrival time of one record (``None``: the pipeline's
current time), so replayed traffic can arrive when it would have live, and a producer with a wrong clock can be
played with a fixed one. The shape of ``put_records`` is boto3's, so a real Kinesis client and this one are
interchangeable behind a sender.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from local_aws.pipeline import LocalPipeline

Arrival = Callable[[bytes], datetime | None]


def _now(_data: bytes) -> datetime | None:
    return None


class LocalKinesis:
    """``put_records`` on a :class:`LocalPipeline`; ``arrival`` decides each record's simulated arrival time."""

    def __init__(self, pipeline: LocalPipeline, arrival: Arrival = _now) -> None:
        self.pipeline = pipeline
        self.arrival = arrival

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        out: list[dict[str, Any]] = []
        for rec in Records:
            data = rec["Data"]
            raw = data.encode() if isinstance(data, str) else bytes(data)
            seq = self.pipeline.put_kinesis(StreamName, raw, rec["PartitionKey"], now=self.arrival(raw))
            out.append({"SequenceNumber": seq, "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": 0, "Records": out}
