"""DynamoDB stream records (new images) -> JSON lines per kind and day; standard library and sentinel_core only.

Each group item becomes one line of ``AnomalyGroup.to_dict`` (with the feedback map people wrote) and each feedback
item one line of its verdict, under ``<prefix><kind>/day=YYYY-MM-DD/`` — the day of the group's start (groups) or of
the verdict (feedback), so a day partition holds what happened that day. A group that grows over several intervals
is written once per change: the latest line per ``group_id`` (highest ``end``, then ``archived_at``) is its final
state. Object names derive from the batch's first and last sequence numbers, so a retried batch overwrites its own
objects instead of duplicating lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sentinel_core import store


@dataclass(frozen=True)
class HistoryObject:
    key: str
    body: bytes
    lines: int


def _day(iso: str) -> str:
    return iso[:10] if len(iso) >= 10 and iso[4] == "-" and iso[7] == "-" else "unknown"


def to_line(image: Mapping[str, Any], archived_at: str) -> tuple[str, str, dict[str, Any]] | None:
    """(kind, day, row) for a group or feedback item image; None for any other item (alerts, runs)."""
    sk = str(image.get("sk", {}).get("S", ""))
    if sk.startswith("GROUP#"):
        group = store.group_from_item(image)
        row = {**group.to_dict(), "series_ids": group.series_ids, "archived_at": archived_at}
        return "groups", _day(row["start"]), row
    if sk.startswith("FEEDBACK#"):
        raw = store.from_item(image)
        row = {
            "detector_id": str(raw.get("pk", "")).removeprefix("DET#"),
            "group_id": raw.get("group_id"),
            "series_id": raw.get("series_id"),
            "is_anomaly": raw.get("is_anomaly"),
            "status": raw.get("status"),
            "created_at": raw.get("created_at"),
            "applied_at": raw.get("applied_at"),
            "timestamps": raw.get("timestamps", []),
            "archived_at": archived_at,
        }
        return "feedback", _day(str(row["created_at"] or archived_at)), row
    return None


def history_objects(records: Iterable[Mapping[str, Any]], prefix: str, archived_at: str) -> list[HistoryObject]:
    """The objects to write for one stream batch (records without a new image, e.g. TTL deletes, are skipped)."""
    by_part: dict[tuple[str, str], list[dict[str, Any]]] = {}
    seqs: list[str] = []
    for rec in records:
        ddb = rec.get("dynamodb") or {}
        image = ddb.get("NewImage")
        if not image:
            continue
        seqs.append(str(ddb.get("SequenceNumber", "0")))
        line = to_line(image, archived_at)
        if line is not None:
            kind, day, row = line
            by_part.setdefault((kind, day), []).append(row)
    if not by_part:
        return []
    name = f"{min(seqs, key=lambda s: (len(s), s))}-{max(seqs, key=lambda s: (len(s), s))}.jsonl"
    out: list[HistoryObject] = []
    for (kind, day), rows in sorted(by_part.items()):
        body = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows).encode()
        out.append(HistoryObject(f"{prefix}{kind}/day={day}/{name}", body, len(rows)))
    return out
