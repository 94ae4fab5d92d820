"""Activate / deactivate a deployed detector: the resume marker the detector honours after a pause.

Deactivating disables the detector's EventBridge schedule (``sentinel detector deactivate``); the model state, the
anomaly groups and the ledger stay as they are. On activation the operator chooses what happens to the intervals
that closed while it was paused:

* ``--catch-up``: nothing is written; the next run scores every missed interval in order (bounded like any backlog:
  ``MAX_INTERVALS_PER_RUN`` per run, ``MAX_BACKLOG`` in all), alerts included;
* ``--skip``: a resume marker ``{"skip_before": <activation time>}`` is written next to the model state
  (:func:`resume_key`); the detector's next run starts at the interval that closed last before that time
  (:func:`resume_after`) and leaves the older missed ones unscored. The marker does nothing once the detector has
  scored past it, so it never needs deleting (the detector only reads it).

Standard library only; boto3 types for the type checker only.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sentinel_core import layout, objects
from sentinel_core.intervals import interval_seconds, last_closed_interval, to_utc
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RESUME_FILE = "resume.json"


class ResumeMarkerError(ValueError):
    """The resume marker is not ``{"skip_before": "<ISO-8601 time>"}``."""


def resume_key(spec: PipelineSpec) -> str:
    """The marker's key: in the detector's state folder (it may read there; nobody else writes there)."""
    return f"{layout.state_prefix(spec)}{RESUME_FILE}"


def marker_body(skip_before: datetime) -> bytes:
    return json.dumps({"skip_before": to_utc(skip_before).isoformat()}).encode()


def write_skip_marker(s3: S3Client, bucket: str, key: str, skip_before: datetime) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=marker_body(skip_before), ContentType="application/json")


def clear_marker(s3: S3Client, bucket: str, key: str) -> None:
    """``--catch-up`` removes an older ``--skip`` marker (a catch-up must not be cut short by it)."""
    s3.delete_object(Bucket=bucket, Key=key)


def parse_marker(text: str) -> datetime:
    try:
        data = json.loads(text)
        return to_utc(datetime.fromisoformat(str(data["skip_before"])))
    except (ValueError, KeyError, TypeError) as exc:
        raise ResumeMarkerError(f'resume marker must be {{"skip_before": "<ISO-8601 time>"}}: {exc}') from None


def read_skip_before(s3: S3Client, bucket: str, key: str) -> datetime | None:
    """The marker's time, or None without a marker."""
    try:
        return parse_marker(objects.get_text(s3, bucket, key).read())
    except s3.exceptions.NoSuchKey:
        return None


def resume_after(
    last: datetime | None, skip_before: datetime | None, interval: str, offset_seconds: int
) -> datetime | None:
    """The "last scored interval" a run should plan from: ``last``, or later when a skip marker says so.

    With a marker at time T the first interval scored is the one that closed last before T (the run at T would
    have scored it); every interval before it that ``last`` has not reached is skipped.
    """
    if skip_before is None:
        return last
    first = last_closed_interval(skip_before, interval, offset_seconds)
    before_first = first - timedelta(seconds=interval_seconds(interval))
    if last is None or to_utc(last) < before_first:
        return before_first
    return last
