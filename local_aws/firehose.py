"""Firehose's part: buffering in simulated time, the Lambda processor, dynamic partitioning, S3 objects with
Firehose-like keys, and failed records in the error prefix as Firehose writes them.

Error documents follow the documented ``processing-failed`` shape (``attemptsMade``, ``arrivalTimestamp``,
``errorCode``, ``errorMessage``, ``attemptEndingTimestamp``, ``rawData`` = the record as received, ``lambdaArn``).
Codes: ``Lambda.ProcessingFailedStatus`` when the function returned ``ProcessingFailed`` (what AWS writes),
``Lambda.FunctionError`` when every attempt raised and ``Lambda.InvalidResponse`` when the response broke the
contract (missing/duplicate/unknown recordId, bad result, bad base64) — the last two are this runtime's labels.
Partition keys missing from an Ok record go to the ``partitioning-failed`` error type.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local_aws.template import Resource, Template, TemplateError

MB = 1024 * 1024
Invoker = Callable[[str, Any], Any]  # (function arn, event) -> response


def render_firehose_prefix(prefix: str, keys: dict[str, str], arrival: datetime, error_type: str = "") -> str:
    """Evaluate a Firehose prefix the way Firehose does.

    Supports ``!{partitionKeyFromLambda:k}``, ``!{partitionKeyFromQuery:k}``, ``!{timestamp:fmt}`` (arrival time,
    Java date-format letters yyyy MM dd HH mm) and ``!{firehose:error-output-type}`` / ``!{firehose:random-string}``.
    """
    arrival = arrival.replace(tzinfo=UTC) if arrival.tzinfo is None else arrival.astimezone(UTC)

    def java_fmt(fmt: str) -> str:
        out = fmt
        for java, py in (
            ("yyyy", "%Y"),
            ("MM", "%m"),
            ("dd", "%d"),
            ("HH", "%H"),
            ("mm", "%M"),
            ("ss", "%S"),
        ):
            out = out.replace(java, py)
        return arrival.strftime(out)

    def sub(m: re.Match[str]) -> str:
        ns, _, arg = m.group(1).partition(":")
        if ns in ("partitionKeyFromLambda", "partitionKeyFromQuery"):
            if arg not in keys:
                raise KeyError(f"partition key {arg!r} missing from the record's metadata")
            return keys[arg]
        if ns == "timestamp":
            return java_fmt(arg)
        if ns == "firehose" and arg == "error-output-type":
            return error_type
        if ns == "firehose" and arg == "random-string":
            return "r4nd0m"
        raise ValueError(f"unsupported Firehose expression !{{{m.group(1)}}}")

    return re.sub(r"!\{([^}]+)\}", sub, prefix)


@dataclass
class Ledger:
    """Counters of everything the runtime moved: records in == delivered + failed + dropped + pending."""

    records_in: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)  # S3 keys written (data and errors)
    lambda_invocations: dict[str, int] = field(default_factory=dict)  # function name -> calls
    iot_messages: int = 0
    iot_rule_errors: int = 0
    kinesis_records: int = 0
    scheduled_invocations: int = 0
    executions: int = 0  # Step Functions executions started (by schedules or start_execution)
    executions_failed: int = 0
    sns_deliveries: int = 0

    def count_failure(self, code: str, n: int = 1) -> None:
        self.failed += n
        self.failed_by_code[code] = self.failed_by_code.get(code, 0) + n


@dataclass
class BufferedRecord:
    data: bytes
    arrival: datetime
    kinesis: dict[str, Any] | None = None


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _param(processor: dict[str, Any], name: str, default: Any = None) -> Any:
    for p in processor.get("Parameters", []) or []:
        if p.get("ParameterName") == name:
            return p.get("ParameterValue")
    return default


@dataclass
class LocalFirehose:
    """One ``AWS::KinesisFirehose::DeliveryStream`` with an (extended) S3 destination."""

    name: str
    arn: str
    bucket: str
    prefix: str
    error_prefix: str
    interval_seconds: int
    size_bytes: int
    compression: str
    dynamic_partitioning: bool
    lambda_arn: str | None
    processor_size_bytes: int
    retries: int
    append_delimiter: bool
    source_stream_arn: str | None
    buffer: list[BufferedRecord] = field(default_factory=list)
    _buffered: int = 0  # bytes in ``buffer``, kept as records come and go (summing per put was quadratic)
    sequence: int = 0

    @classmethod
    def from_resource(cls, template: Template, r: Resource) -> LocalFirehose:
        props = template.props(r)
        dest = props.get("ExtendedS3DestinationConfiguration") or props.get("S3DestinationConfiguration")
        if not dest:
            raise TemplateError(f"delivery stream {r.logical_id}: only S3 destinations are played locally")
        bucket_arn = str(dest["BucketARN"])
        hints = dest.get("BufferingHints", {}) or {}
        processors = [p for p in (dest.get("ProcessingConfiguration", {}) or {}).get("Processors", []) or []]
        enabled = bool((dest.get("ProcessingConfiguration", {}) or {}).get("Enabled", bool(processors)))
        lam = next((p for p in processors if p.get("Type") == "Lambda"), None) if enabled else None
        source = props.get("KinesisStreamSourceConfiguration") or {}
        dp = dest.get("DynamicPartitioningConfiguration", {}) or {}
        return cls(
            name=r.physical,
            arn=r.arn,
            bucket=bucket_arn.split(":::", 1)[-1],
            prefix=str(dest.get("Prefix", "") or ""),
            error_prefix=str(dest.get("ErrorOutputPrefix", "") or ""),
            interval_seconds=int(hints.get("IntervalInSeconds", 300)),
            size_bytes=int(float(hints.get("SizeInMBs", 5)) * MB),
            compression=str(dest.get("CompressionFormat", "UNCOMPRESSED")),
            dynamic_partitioning=bool(dp.get("Enabled", False)),
            lambda_arn=str(_param(lam, "LambdaArn")) if lam else None,
            processor_size_bytes=int(float(_param(lam, "BufferSizeInMBs", 1) if lam else 1) * MB),
            retries=int(_param(lam, "NumberOfRetries", 3) if lam else 0),
            append_delimiter=enabled and any(p.get("Type") == "AppendDelimiterToRecord" for p in processors),
            source_stream_arn=str(source["KinesisStreamARN"]) if source.get("KinesisStreamARN") else None,
        )

    # -- buffering ------------------------------------------------------------------------------------------
    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    def deadline(self) -> datetime | None:
        """When the current buffer is due by time."""
        return self.buffer[0].arrival + timedelta(seconds=self.interval_seconds) if self.buffer else None

    def put(self, rec: BufferedRecord) -> bool:
        """Buffer a record; True when the size hint is reached and the buffer should be delivered now."""
        self.buffer.append(rec)
        self._buffered += len(rec.data)
        return self._buffered >= self.size_bytes

    # -- delivery -------------------------------------------------------------------------------------------
    def deliver(self, now: datetime, s3: Any, invoke: Invoker, ledger: Ledger) -> None:
        """Process and write the whole buffer (Firehose's flush)."""
        records, self.buffer, self._buffered = self.buffer, [], 0
        if not records:
            return
        chunks: list[list[BufferedRecord]] = [[]]
        size = 0
        for rec in records:
            if chunks[-1] and size + len(rec.data) > self.processor_size_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(rec)
            size += len(rec.data)
        ok: dict[str, list[bytes]] = defaultdict(list)
        ok_first: dict[str, datetime] = {}
        errors: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for chunk in chunks:
            for prefix, data, arrival in self._process(chunk, now, invoke, ledger, errors):
                ok[prefix].append(data)
                ok_first.setdefault(prefix, arrival)
        for prefix, parts in ok.items():
            self._write(s3, prefix, b"".join(parts), ok_first[prefix], ledger)
        for prefix, docs in errors.items():
            body = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs).encode()
            first = datetime.fromtimestamp(docs[0]["arrivalTimestamp"] / 1000, tz=UTC)
            self._write(s3, prefix, body, first, ledger)

    def _error_doc(
        self, rec: BufferedRecord, code: str, message: str, attempts: int, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        doc: dict[str, Any] = {
            "attemptsMade": attempts,
            "arrivalTimestamp": _ms(rec.arrival),
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": _ms(now),
            "rawData": base64.b64encode(rec.data).decode(),
            "lambdaArn": self.lambda_arn or "",
        }
        if rec.kinesis:
            doc["sequenceNumber"] = rec.kinesis.get("sequenceNumber", "")
            doc["subSequenceNumber"] = 0
        kind = "partitioning-failed" if code.startswith("DynamicPartitioning.") else "processing-failed"
        return render_firehose_prefix(self.error_prefix, {}, rec.arrival, kind), doc

    def _event(self, chunk: list[BufferedRecord], ids: list[str]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": self.arn,
            "region": self.arn.split(":")[3],
            "records": [],
        }
        if self.source_stream_arn:
            event["sourceKinesisStreamArn"] = self.source_stream_arn
        for rid, rec in zip(ids, chunk, strict=True):
            entry: dict[str, Any] = {
                "recordId": rid,
                "approximateArrivalTimestamp": _ms(rec.arrival),
                "data": base64.b64encode(rec.data).decode(),
            }
            if rec.kinesis:
                entry["kinesisRecordMetadata"] = rec.kinesis
            event["records"].append(entry)
        return event

    @staticmethod
    def _check(response: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not isinstance(response, dict) or not isinstance(response.get("records"), list):
            raise ValueError("response has no 'records' list")
        out: dict[str, dict[str, Any]] = {}
        known = set(ids)  # a list lookup per entry made large batches quadratic
        for entry in response["records"]:
            rid = entry.get("recordId")
            if rid not in known:
                raise ValueError(f"response names unknown recordId {rid!r}")
            if rid in out:
                raise ValueError(f"response repeats recordId {rid!r}")
            if entry.get("result") not in ("Ok", "Dropped", "ProcessingFailed"):
                raise ValueError(f"record {rid}: result {entry.get('result')!r} is not Ok/Dropped/ProcessingFailed")
            if entry.get("result") == "Ok":
                try:
                    base64.b64decode(str(entry.get("data", "")), validate=True)
                except (binascii.Error, ValueError):
                    raise ValueError(f"record {rid}: data is not base64") from None
            out[rid] = entry
        missing = [i for i in ids if i not in out]
        if missing:
            raise ValueError(f"response misses {len(missing)} recordId(s), e.g. {missing[0]!r}")
        return out

    def _process(
        self,
        chunk: list[BufferedRecord],
        now: datetime,
        invoke: Invoker,
        ledger: Ledger,
        errors: dict[str, list[dict[str, Any]]],
    ) -> list[tuple[str, bytes, datetime]]:
        """(rendered prefix, data, arrival) of each delivered record; failures go into ``errors``."""
        ids = [f"{_ms(r.arrival)}{i:06d}{uuid.uuid4().hex[:8]}" for i, r in enumerate(chunk)]
        results: dict[str, dict[str, Any]] | None
        if self.lambda_arn:
            results, code, message, attempts = None, "", "", 0
            for attempt in range(1, self.retries + 2):
                attempts = attempt
                try:
                    response = invoke(self.lambda_arn, self._event(chunk, ids))
                except Exception as exc:  # the function failed: Firehose retries the whole batch
                    code, message = "Lambda.FunctionError", f"{type(exc).__name__}: {exc}"
                    continue
                try:
                    results = self._check(response, ids)
                    break
                except ValueError as exc:
                    code, message = "Lambda.InvalidResponse", str(exc)
            if results is None:
                for rec in chunk:
                    prefix, doc = self._error_doc(rec, code, message, attempts, now)
                    errors[prefix].append(doc)
                ledger.count_failure(code, len(chunk))
                return []
        else:
            results = {
                rid: {"recordId": rid, "result": "Ok", "data": base64.b64encode(r.data).decode()}
                for rid, r in zip(ids, chunk, strict=True)
            }
        delivered: list[tuple[str, bytes, datetime]] = []
        for rid, rec in zip(ids, chunk, strict=True):
            entry = results[rid]
            if entry["result"] == "Dropped":
                ledger.dropped += 1
                continue
            if entry["result"] == "ProcessingFailed":
                prefix, doc = self._error_doc(
                    rec,
                    "Lambda.ProcessingFailedStatus",
                    "ProcessingFailed status returned by the Lambda function",
                    1,
                    now,
                )
                errors[prefix].append(doc)
                ledger.count_failure("Lambda.ProcessingFailedStatus")
                continue
            data = base64.b64decode(entry["data"])
            if self.append_delimiter:
                data += b"\n"
            try:
                prefix = self._data_prefix(entry, rec.arrival)
            except (KeyError, ValueError) as exc:
                prefix, doc = self._error_doc(rec, "DynamicPartitioning.MetadataExtractionFailed", str(exc), 1, now)
                errors[prefix].append(doc)
                ledger.count_failure("DynamicPartitioning.MetadataExtractionFailed")
                continue
            delivered.append((prefix, data, rec.arrival))
            ledger.delivered += 1
        return delivered

    def _data_prefix(self, entry: dict[str, Any], arrival: datetime) -> str:
        keys: dict[str, str] = {}
        if self.dynamic_partitioning:
            keys = dict((entry.get("metadata") or {}).get("partitionKeys") or {})
        rendered = render_firehose_prefix(self.prefix, keys, arrival)
        if "!{" not in self.prefix and not self.dynamic_partitioning:
            rendered += arrival.astimezone(UTC).strftime("%Y/%m/%d/%H/")  # Firehose's default time folders
        return rendered

    def _write(self, s3: Any, prefix: str, body: bytes, first: datetime, ledger: Ledger) -> None:
        self.sequence += 1
        key = f"{prefix}{self.name}-1-{first.astimezone(UTC):%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"
        if self.compression == "GZIP":
            body, key = gzip.compress(body), key + ".gz"
        elif self.compression not in ("UNCOMPRESSED", ""):
            raise TemplateError(f"{self.name}: compression {self.compression} is not played locally")
        s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        ledger.objects.append(key)
