"""The detector's compact state file: a header and one packed record per series, streamed through fast gzip.

Why not JSON: the JSON state held every seasonal profile as 288 floats (JSON ``null`` for unseen buckets) and was
read, decoded, re-encoded and gzip-9-compressed whole every interval: 89-91 % of a run and ~44 KB of peak memory
per series (issue 16). Here a series is the model's own binary record (``Detector.iter_series_bytes`` /
``load_series``: opaque bytes to this module), the file is read and written record by record (one series is
decoded at a time), and compressed with gzip level 1 (7x faster than level 9 for ~7 % more bytes, issue 16).

Layout (inside the gzip stream)::

    b"MSST" u8 FILE_VERSION
    u32 header length, header JSON (the run state: detector tunables and last interval, scored keys, open groups, ...)
    per series, in id order: u16 id length, id (UTF-8), u32 record length, record

:func:`shard_of` is the stable shard of a series (a hash of its dimension values), for state split by shard.

Standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

MAGIC = b"MSST"
FILE_VERSION = 1
COMPRESS_LEVEL = 1  # gzip-1: issue 16 measured 7x faster than gzip-9 for 7 % more bytes
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
MAX_ID_BYTES = 0xFFFF
BLOCK = 1 << 20  # bytes per gzip write / per read of the decompressed stream: few calls, little memory


class Reader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Writer(Protocol):
    def write(self, b: bytes, /) -> object: ...
    def flush(self) -> object: ...


class StateFileError(ValueError):
    """The bytes are not a state file of this version (or are cut short)."""


# ----------------------------------------------------------------------------------------------------------------
# The file
# ----------------------------------------------------------------------------------------------------------------
def write(out: Writer, header: dict[str, Any], records: Iterable[tuple[str, bytes]]) -> int:
    """Write the gzip-1 state file to ``out`` (streamed); returns the number of series records.

    Records are handed to gzip in blocks of about ``BLOCK`` bytes, not one call each (a call per record was ~1 us of
    Python per series around the compression); the bytes written are the same (deflate does not depend on how its
    input is cut)."""
    count = 0
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
        head = json.dumps(header, separators=(",", ":")).encode()
        gz.write(MAGIC + bytes([FILE_VERSION]) + _U32.pack(len(head)) + head)
        parts: list[bytes] = []
        pending = 0
        u16, u32 = _U16.pack, _U32.pack
        for sid, blob in records:
            key = sid.encode()
            if len(key) > MAX_ID_BYTES:
                raise StateFileError(f"series id of {len(key)} bytes is longer than {MAX_ID_BYTES}")
            parts += (u16(len(key)), key, u32(len(blob)), blob)
            pending += len(key) + len(blob)
            count += 1
            if pending >= BLOCK:
                gz.write(b"".join(parts))
                parts.clear()
                pending = 0
        gz.write(b"".join(parts))
    return count


def to_bytes(header: dict[str, Any], records: Iterable[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    write(out, header, records)
    return out.getvalue()


def _exact(f: Reader, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise StateFileError("state file cut short")
    return data


def is_state_file(head: bytes) -> bool:
    """``head``: the first decompressed bytes."""
    return head[:4] == MAGIC


def read_header(f: Reader) -> dict[str, Any]:
    """Read the magic and the header from the DEcompressed stream ``f`` (positioned at its start)."""
    magic = _exact(f, 5)
    if magic[:4] != MAGIC or magic[4] != FILE_VERSION:
        raise StateFileError(f"not a version {FILE_VERSION} state file (starts {magic!r})")
    (n,) = _U32.unpack(_exact(f, 4))
    header = json.loads(_exact(f, n))
    if not isinstance(header, dict):
        raise StateFileError("state file header is not a JSON object")
    return header


def _refill(f: Reader, buf: bytes, pos: int, need: int, block: int) -> bytes:
    """The unread rest of ``buf`` (from ``pos``) and more of ``f``: at least ``need`` bytes, else cut short."""
    parts = [buf[pos:]]
    have = len(parts[0])
    while have < need:
        more = f.read(max(need - have, block))
        if not more:
            raise StateFileError("state file cut short")
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def read_records(f: Reader, block: int = BLOCK) -> Iterator[tuple[str, bytes]]:
    """The (series id, record) pairs after :func:`read_header`, one at a time.

    ``f`` is read ``block`` bytes at a time and the records are cut out of that buffer (four small reads per series
    through the decompressing stream's layers were ~5 us of Python per series); memory: one block."""
    buf = b""
    pos = 0
    u16, u32 = _U16.unpack_from, _U32.unpack_from
    while True:
        if len(buf) - pos < 2:
            if len(buf) == pos:
                buf, pos = f.read(block), 0
                if not buf:
                    return
            if len(buf) - pos < 2:
                buf, pos = _refill(f, buf, pos, 2, block), 0
        (n,) = u16(buf, pos)
        head = pos + 2 + n + 4  # end of the id and of the record's length
        if head > len(buf):
            buf = _refill(f, buf, pos, head - pos, block)
            head -= pos
            pos = 0
        sid = buf[pos + 2 : head - 4].decode()
        (m,) = u32(buf, head - 4)
        end = head + m
        if end > len(buf):
            buf = _refill(f, buf, pos, end - pos, block)
            head -= pos
            end -= pos
            pos = 0
        yield sid, buf[head:end]
        pos = end


# ----------------------------------------------------------------------------------------------------------------
# Shards
# ----------------------------------------------------------------------------------------------------------------
def shard_of(dimension_values: Iterable[str], shards: int) -> int:
    """The stable shard (0 .. shards-1) of a combination of dimension values: the same in every process and
    release (BLAKE2b, not Python's salted ``hash``), so records, state and the transform agree."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if shards == 1:
        return 0
    digest = hashlib.blake2b("\x1f".join(dimension_values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards
