"""Reading back what the stack did, from moto: who is subscribed, what each SNS publish said per protocol, the
commands the devices got, the objects in S3 and the records in the error prefix."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sentinel_core import layout, objects
from sentinel_core.records import Record, validate
from sentinel_core.spec import PipelineSpec

from local_aws import LocalPipeline, published_iot
from simulator.demo import report
from simulator.demo.result import Counts, ReceivedAlert, Recipient


def recipients(sns: Any, topic_arn: str) -> list[Recipient]:
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    return [Recipient(s["Protocol"], s["Endpoint"]) for s in subs]


def people(sns: Any, topic_arn: str) -> list[Recipient]:
    """The topic's subscribers that are people (e-mail and SMS), not the automation Lambda."""
    return [r for r in recipients(sns, topic_arn) if r.protocol in ("email", "sms")]


def parse_alert(message: str, subject: str | None, at: datetime, to: list[Recipient]) -> ReceivedAlert:
    """SNS's per-protocol choice for a ``MessageStructure=json`` publish: the protocol's key, else ``default``."""
    doc = json.loads(message)
    default = str(doc["default"])
    return ReceivedAlert(
        delivered_at=at,
        subject=subject or "",
        sms=str(doc.get("sms", default)),
        email=str(doc.get("email", default)),
        lookout=json.loads(default),
        recipients=to,
    )


def sns_notifications(pipeline: LocalPipeline, topic_arn: str) -> list[tuple[str, str | None]]:
    """Every (message, subject) published to ``topic_arn`` so far, in order (moto keeps them)."""
    from moto.sns.models import sns_backends

    topic = sns_backends[pipeline.account][pipeline.region].topics.get(topic_arn)
    sent = list(topic.sent_notifications) if topic is not None else []
    return [(m[1], m[2]) for m in sent]


@dataclass
class AlertFeed:
    """The alerts published since the last read, each with the device commands the automation sent for it."""

    pipeline: LocalPipeline
    topic_arn: str
    to: list[Recipient]
    seen_notifications: int = 0
    seen_commands: int = 0

    def __post_init__(self) -> None:
        self.seen_notifications = len(sns_notifications(self.pipeline, self.topic_arn))
        self.seen_commands = len(published_iot(self.pipeline.account, self.pipeline.region))

    def read(self, at: datetime) -> tuple[list[ReceivedAlert], int]:
        """(new alerts delivered at ``at``, number of new device commands)."""
        new = sns_notifications(self.pipeline, self.topic_arn)[self.seen_notifications :]
        self.seen_notifications += len(new)
        commands = published_iot(self.pipeline.account, self.pipeline.region)[self.seen_commands :]
        self.seen_commands += len(commands)
        alerts: list[ReceivedAlert] = []
        for message, subject in new:
            alert = parse_alert(message, subject, at, self.to)
            event_id = alert.lookout.get("alertEventId")
            for cmd_topic, payload in commands:
                body = json.loads(payload)
                if event_id is not None and body.get("alertEventId") == event_id:
                    alert.commands.append((cmd_topic, body))
            alerts.append(alert)
        return alerts, len(commands)


def list_objects(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
    return sorted(out)


def read_text(s3: Any, bucket: str, key: str) -> str:
    """The whole object as text, gzip or plain (``sentinel_core.objects``: the Lambdas' one object reader)."""
    with objects.get_text(s3, bucket, key) as text:
        return text.read()


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def live_records(
    s3: Any, bucket: str, spec: PipelineSpec, objects: Sequence[tuple[str, int]], counts: Counts
) -> list[Record]:
    """Every record in the live interval folders (counted into ``counts.s3_data_lines``)."""
    out: list[Record] = []
    for key, _size in objects:
        if key.startswith(layout.live_root(spec)):
            for line in lines(read_text(s3, bucket, key)):
                counts.s3_data_lines += 1
                out.append(validate(json.loads(line), spec))
    return out


def error_entries(
    pipeline: LocalPipeline, s3: Any, bucket: str, spec: PipelineSpec, objects: list[tuple[str, int]], counts: Counts
) -> list[report.ErrorEntry]:
    """Each error document under the error prefix with its reason, re-derived by the transform's own code, and
    each IoT rule error (counted into ``counts.s3_error_lines``)."""
    from local_aws.functions import load_handler

    transform = pipeline.function("transform")
    explain: Callable[[dict[str, Any], PipelineSpec], tuple[str, str]] = load_handler(
        transform.asset_dir, "transform.logic.explain_error_document"
    )
    out: list[report.ErrorEntry] = []
    for key, _size in objects:
        if not key.startswith(layout.error_root(spec)):
            continue
        folder = key[: key.rfind("/") + 1]
        for line in lines(read_text(s3, bucket, key)):
            counts.s3_error_lines += 1
            doc = json.loads(line)
            reason, message = explain(doc, spec)
            raw = _b64(doc.get("rawData", ""))
            out.append(report.ErrorEntry(folder, f"{reason}: {message}", raw.strip()))
    for doc in pipeline.iot_error_log:
        failure = (doc.get("failures") or [{}])[0]
        out.append(
            report.ErrorEntry(
                f"IoT rule error action ({doc.get('logGroup') or 'log'})",
                str(failure.get("errorMessage", "")),
                _b64(doc.get("base64OriginalPayload", "")).strip(),
            )
        )
    return out


def _b64(text: str) -> str:
    try:
        return base64.b64decode(text).decode("utf-8", "replace")
    except (ValueError, binascii.Error):
        return text


def alert_entry(a: ReceivedAlert) -> report.AlertEntry:
    return report.AlertEntry(
        delivered_at=a.delivered_at,
        interval=a.interval,
        subject=a.subject,
        sms=a.sms,
        email=a.email,
        severity=a.severity,
        measure=a.measure,
        where=a.where,
        commands=tuple(f"{t}: {json.dumps(p, sort_keys=True)}" for t, p in a.commands),
    )


def write_alerts(path: Path, alerts: Sequence[ReceivedAlert]) -> Path:
    """``alerts.jsonl``: one line per SNS publish (SMS, e-mail, the default JSON, the device commands)."""
    with path.open("w", encoding="utf-8") as fh:
        for a in alerts:
            doc = {
                "delivered_at": a.delivered_at.isoformat(),
                "subject": a.subject,
                "sms": a.sms,
                "email": a.email,
                "lookout": a.lookout,
                "commands": [{"topic": t, "payload": p} for t, p in a.commands],
            }
            fh.write(json.dumps(doc, sort_keys=True) + "\n")
    return path
