"""CSV uploads (the loyalty preset): parse rows into records, reporting every bad row instead of stopping.

A file must have a header naming the preset's timestamp column, its dimension columns and its measure columns
(in any order; extra columns are ignored). Each data row is validated with the same rules as a streamed record
(``sentinel_core.records.validate``); a row that fails becomes a :class:`RowError` with its line number, the column
at fault, a stable reason code and a message a person can act on, and the good rows are still used:

* ``missing_column``  - the row has fewer fields than the header (a column is missing on that line)
* ``extra_column``    - the row has more fields than the header
* ``bad_timestamp`` / ``missing_timestamp`` - the date does not parse
* ``bad_measure`` / ``missing_measure`` - a measure is not a finite number, or empty
* ``missing_dimension`` / ``bad_dimension`` - a dimension is empty or too long
* ``duplicate``       - a second row for the same interval (day) and dimension values; the first one wins and the
  message names its line (with SUM aggregation a duplicate would silently double the day)

A header that lacks a required column is a :class:`CsvHeaderError` (no row can be used), as is an empty file.
Everything is streamed (one row at a time), so memory grows only with the set of (interval, dimensions) keys seen.
Standard library only (it ships in the Lambda asset).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.records import Record, RecordError, validate
from sentinel_core.spec import PipelineSpec

ERROR_COLUMNS = ("line", "column", "reason", "message", "row")
MAX_RAW_LENGTH = 500  # characters of the offending row kept in the report


class CsvHeaderError(ValueError):
    """The file cannot be read at all (no header, or a required column missing); the message says which."""


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based physical line number of the row in the file (the header is line 1)
    column: str  # the column at fault ("" when the whole row is)
    reason: str  # stable code, see the module doc
    message: str
    raw: str  # the row as read, shortened to MAX_RAW_LENGTH

    def to_row(self) -> dict[str, str]:
        return {
            "line": str(self.line),
            "column": self.column,
            "reason": self.reason,
            "message": self.message,
            "row": self.raw,
        }


@dataclass
class ParseReport:
    """Counts of one parse; filled while the rows stream through :func:`iter_rows`."""

    header: tuple[str, ...] = ()
    rows: int = 0
    good: int = 0
    errors: list[RowError] = field(default_factory=list)
    first: datetime | None = None
    last: datetime | None = None

    @property
    def bad(self) -> int:
        return len(self.errors)

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.errors:
            out[e.reason] = out.get(e.reason, 0) + 1
        return dict(sorted(out.items()))


_COLUMN_OF_REASON = {"missing_timestamp": "ts", "bad_timestamp": "ts", "future_timestamp": "ts"}


def _column_of(err: RecordError, spec: PipelineSpec) -> str:
    if _COLUMN_OF_REASON.get(err.reason) == "ts":
        return spec.timestamp_column
    text = str(err)
    for name in (*spec.dimensions, *spec.measure_names):
        if f"{name!r}" in text:
            return name
    return ""


def _raw(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    text = buf.getvalue()
    return text if len(text) <= MAX_RAW_LENGTH else text[: MAX_RAW_LENGTH - 3] + "..."


def required_columns(spec: PipelineSpec) -> tuple[str, ...]:
    return (spec.timestamp_column, *spec.dimensions, *spec.measure_names)


def _header(row: list[str] | None, spec: PipelineSpec) -> tuple[str, ...]:
    if row is None or not any(c.strip() for c in row):
        raise CsvHeaderError(
            f"the file is empty or its first line is blank: expected a header with {', '.join(required_columns(spec))}"
        )
    header = tuple(c.strip().lstrip("\ufeff") for c in row)
    lower = {c.lower(): c for c in header}
    missing = [c for c in required_columns(spec) if c not in header and c.lower() not in lower]
    if missing:
        raise CsvHeaderError(
            f"the header lacks the column(s) {', '.join(missing)}; it must name {', '.join(required_columns(spec))} "
            f"(found: {', '.join(header) or 'nothing'})"
        )
    # Accept a header whose case differs from the spec (Points_Earned): map it to the spec's names.
    wanted = {c.lower(): c for c in required_columns(spec)}
    mapped = tuple(wanted.get(c.lower(), c) for c in header)
    dupes = sorted({c for c in mapped if mapped.count(c) > 1})
    if dupes:
        raise CsvHeaderError(f"the header names {', '.join(dupes)} more than once")
    return mapped


def iter_rows(lines: Iterable[str], spec: PipelineSpec, report: ParseReport | None = None) -> Iterator[Record]:
    """Good rows of a CSV as validated records, in file order; bad rows go to ``report.errors``.

    ``lines`` is any iterable of text lines (an open file, ``io.TextIOWrapper`` over an S3 body). Blank lines are
    skipped (not errors). Raises :class:`CsvHeaderError` when the header is unusable.
    """
    rep = report if report is not None else ParseReport()
    reader = csv.reader(lines)
    try:
        header = _header(next(reader, None), spec)
    except csv.Error as exc:
        raise CsvHeaderError(f"the header is not valid CSV: {exc}") from None
    rep.header = header
    step = interval_seconds(spec.interval)
    seen: dict[tuple[datetime, tuple[str, ...]], int] = {}
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote at the end of the file
            rep.rows += 1
            rep.errors.append(RowError(reader.line_num, "", "bad_csv", f"not valid CSV: {exc}", ""))
            continue
        line = reader.line_num
        if not fields or not any(f.strip() for f in fields):
            continue
        rep.rows += 1
        if len(fields) != len(header):
            short = len(fields) < len(header)
            absent = header[len(fields) :] if short else ()
            needed = [c for c in absent if c in required_columns(spec)]
            rep.errors.append(
                RowError(
                    line,
                    ",".join(needed or absent) if short else "",
                    "missing_column" if short else "extra_column",
                    (
                        f"the row has {len(fields)} field(s) but the header has {len(header)}: "
                        + (f"missing {', '.join(absent)}" if short else "too many fields (an unquoted comma?)")
                    ),
                    _raw(fields),
                )
            )
            continue
        obj = dict(zip(header, fields, strict=True))
        try:
            rec = validate(obj, spec)
        except RecordError as err:
            rep.errors.append(RowError(line, _column_of(err, spec), err.reason, str(err), _raw(fields)))
            continue
        key = (floor_to_interval(rec.timestamp, step), rec.dimensions)
        first_line = seen.get(key)
        if first_line is not None:
            where = ", ".join(f"{d}={v}" for d, v in zip(spec.dimensions, rec.dimensions, strict=True))
            rep.errors.append(
                RowError(
                    line,
                    spec.timestamp_column,
                    "duplicate",
                    f"duplicate of line {first_line}: {key[0]:%Y-%m-%d %H:%M} ({spec.interval}) for {where} "
                    f"already has a row; only the first is used",
                    _raw(fields),
                )
            )
            continue
        seen[key] = line
        rep.good += 1
        if rep.first is None or rec.timestamp < rep.first:
            rep.first = rec.timestamp
        if rep.last is None or rec.timestamp > rep.last:
            rep.last = rec.timestamp
        yield rec


def parse_csv(lines: Iterable[str], spec: PipelineSpec) -> tuple[list[Record], ParseReport]:
    """Convenience for small files and tests: every good record and the report."""
    report = ParseReport()
    return list(iter_rows(lines, spec, report)), report


def error_report_csv(errors: Iterable[RowError]) -> str:
    """The per-row error report as CSV text (header ``line,column,reason,message,row``)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ERROR_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in errors:
        writer.writerow(e.to_row())
    return buf.getvalue()


def header_error_csv(message: str) -> str:
    """An error report for a file that could not be read at all (line 1 = the header)."""
    return error_report_csv([RowError(1, "", "bad_header", message, "")])
