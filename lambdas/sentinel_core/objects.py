"""Reading S3 objects, once for every Lambda: list a prefix, stream a body (gzip or plain) as text lines or records.

* :func:`list_keys` lists every page of a prefix;
* :func:`open_text` turns any ``read(n)``-able byte stream (a boto3 ``StreamingBody``, a file, ``io.BytesIO``) into
  text lines: the first two bytes are sniffed ONCE to recognise gzip (``1f 8b``, what Firehose writes with GZIP
  compression, or a compressed upload), and the body is decompressed and decoded on the fly, so memory stays near
  one read buffer whatever the object's size. A UTF-8 byte-order mark is dropped;
* :func:`iter_records` reads such lines as JSON lines (what Firehose writes) or as CSV with a header (uploads, read
  with ``csv_input``'s rules), yielding valid records and noting every bad line in :class:`BadLines`.

Standard library only (ships in every Lambda asset).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sentinel_core import csv_input
from sentinel_core.records import Record, RecordError, validate
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER = 1 << 16  # bytes per read from S3: large enough to keep the request count low, small in memory
MAX_SAMPLES = 20  # bad lines kept with their details per object (all are counted): enough to see the pattern
# Decompressed bytes a gzip object may expand to. A gzip "bomb" expands ~1000x; 1 GiB of CSV is ~10 million daily
# rows, more than one backtest job scores within its 15-minute limit, so beyond it the object is refused.
MAX_DECOMPRESSED_BYTES = 1 << 30


class TooLargeError(OSError):
    """A gzip object that decompresses to more than ``MAX_DECOMPRESSED_BYTES`` (an ``OSError``: a READ_ERROR)."""


# What a damaged object raises while it is streamed: a broken gzip stream, a body cut short, bytes that are not UTF-8.
READ_ERRORS = (OSError, EOFError, UnicodeDecodeError)


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Raw(io.RawIOBase):
    """A raw stream over anything with ``read(n)``, whose first bytes can be sniffed before reading starts."""

    def __init__(self, body: Readable) -> None:
        self._body = body
        self._head = b""

    def readable(self) -> bool:
        return True

    def sniff(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer at the end of the body), kept to be read again; a body may answer short."""
        while len(self._head) < n:
            more = self._body.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Capped(io.RawIOBase):
    """Reads of a decompressing stream, failing with ``TooLargeError`` past ``limit`` bytes."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        self._inner = inner
        self._left = limit
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(min(len(view), self._left + 1))
        if len(data) > self._left:
            raise TooLargeError(f"the gzip object decompresses to more than {self._limit:,} bytes: refused")
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


def open_binary(
    body: Readable, max_decompressed: int | None = None
) -> io.BufferedReader[_Capped] | io.BufferedReader[_Raw]:
    """The body's bytes, decompressed on the fly (at most ``max_decompressed``) when it starts with the gzip magic."""
    raw = _Raw(body)
    compressed = raw.sniff(len(GZIP_MAGIC)) == GZIP_MAGIC
    stream = io.BufferedReader(raw, buffer_size=READ_BUFFER)
    if not compressed:
        return stream
    limit = MAX_DECOMPRESSED_BYTES if max_decompressed is None else max_decompressed
    return io.BufferedReader(_Capped(gzip.GzipFile(fileobj=stream, mode="rb"), limit), READ_BUFFER)


def open_text(body: Readable) -> io.TextIOWrapper:
    """The body's text lines (see the module doc). ``newline=""`` keeps line ends as written, as ``csv`` wants."""
    return io.TextIOWrapper(open_binary(body), encoding="utf-8-sig", newline="")


def get_text(s3: S3Client, bucket: str, key: str) -> io.TextIOWrapper:
    """The text lines of ``s3://bucket/key``, streamed."""
    return open_text(s3.get_object(Bucket=bucket, Key=key)["Body"])


def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    """Object keys under ``prefix`` (all pages), sorted; 'folder' placeholders ending in / are skipped."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/"))
    return sorted(keys)


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based line in the object
    reason: str  # the stable reason code (``records.RecordError.reason``, ``csv_input`` codes, ...)
    message: str


@dataclass
class BadLines:
    """Every bad line of one object counted by reason; the first :data:`MAX_SAMPLES` kept for the logs."""

    key: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    samples: list[BadLine] = field(default_factory=list)

    def add(self, line: int, reason: str, message: str) -> None:
        self.counts[reason] += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(BadLine(line, reason, message))


def iter_records(lines: Iterable[str], spec: PipelineSpec, bad: BadLines) -> Iterator[Record]:
    """Valid records of one object's lines, streamed: JSON lines, or CSV when the first non-blank line does not start
    a JSON value. A CSV without a usable header counts once as ``bad_csv_header``; an object that cannot be decoded
    counts once as ``unreadable_object`` (records before the damage are kept)."""
    it = iter(lines)
    try:
        head: list[str] = []
        for line in it:
            head.append(line)
            if line.strip():
                break
        if not head or not head[-1].strip():
            return
        rows = itertools.chain(head, it)
        if head[-1].lstrip()[0] not in "{[":
            report = csv_input.ParseReport()
            try:
                yield from csv_input.iter_rows(rows, spec, report)
            except csv_input.CsvHeaderError as exc:
                bad.add(1, "bad_csv_header", str(exc))
            finally:
                for e in report.errors:
                    bad.add(e.line, e.reason, e.message)
                for reason, n in report.omitted_reasons().items():  # counted, details not kept
                    bad.counts[reason] += n
            return
        for n, line in enumerate(rows, 1):
            if not line.strip():
                continue
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordError("not_json", f"line is not JSON: {exc.msg}") from None
                rec = validate(obj, spec)
            except RecordError as err:
                bad.add(n, err.reason, str(err))
                continue
            yield rec
    except READ_ERRORS as exc:
        bad.add(0, "unreadable_object", f"unreadable object (kept what was read before the damage): {exc}")
