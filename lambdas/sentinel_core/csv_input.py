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
* ``future_timestamp`` - a date after the upload's own time (plus the spec's tolerance): history cannot be ahead
* ``out_of_window``   - a date far from the file's own range (:data:`MAX_WINDOW_DAYS` / :data:`MAX_WINDOW_INTERVALS`
  either side of the median of its first :data:`WINDOW_ANCHOR_ROWS` good rows): a ``1900``/``2100`` typo must not
  stretch the backtest over a century (nor move its learn/report split)
* ``out_of_range`` / ``bad_dimension`` - the value schema of ``sentinel_core.records`` (plausible range, characters)

Memory is bounded whatever the file: the first :data:`MAX_KEPT_ERRORS` row errors are kept with their details, the
rest only counted by reason (``ParseReport.reasons``); the error report says how many were left out. The header
checks are linear in the number of columns. The error report is safe to open in a spreadsheet: a cell that starts
with ``=``, ``+``, ``-``, ``@``, tab or CR is prefixed with ``'`` so it is shown as text, never run as a formula.

A header that lacks a required column is a :class:`CsvHeaderError` (no row can be used), as is an empty file.
Everything is streamed (one row at a time), so memory grows only with the set of (interval, dimensions) keys seen.
Standard library only (it ships in the Lambda asset).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sentinel_core.intervals import floor_to_interval, interval_seconds
from sentinel_core.records import Record, RecordError, validate
from sentinel_core.spec import PipelineSpec

ERROR_COLUMNS = ("line", "column", "reason", "message", "row")
MAX_RAW_LENGTH = 500  # characters of the offending row kept in the report
# Row errors kept with their details: enough to see every kind of problem and fix a file; beyond it only counts
# (a 10-million-row file of garbage must not hold 10 million errors in the job's memory).
MAX_KEPT_ERRORS = 1000
# The date window: the median of the first good rows anchors it (robust while fewer than half of them are typos).
WINDOW_ANCHOR_ROWS = 101
# Half-width of the window: ten years of dailies, or 100,000 intervals of a finer interval (a PT5M file of ~1 year),
# whichever is shorter: the backtest allocates per interval, and the learn/report split is taken over the span.
MAX_WINDOW_DAYS = 3650
MAX_WINDOW_INTERVALS = 100_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
    errors: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS, with details
    error_counts: Counter[str] = field(default_factory=Counter)  # every row error, by reason
    first: datetime | None = None
    last: datetime | None = None
    window: tuple[datetime, datetime] | None = None  # the accepted date range, once anchored

    def add(self, error: RowError) -> None:
        self.error_counts[error.reason] += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(error)

    @property
    def bad(self) -> int:
        return sum(self.error_counts.values())

    @property
    def omitted(self) -> int:
        """Row errors counted but not kept in ``errors``."""
        return self.bad - len(self.errors)

    def omitted_reasons(self) -> dict[str, int]:
        kept = Counter(e.reason for e in self.errors)
        return {r: n - kept[r] for r, n in sorted(self.error_counts.items()) if n > kept[r]}

    def reasons(self) -> dict[str, int]:
        return dict(sorted(self.error_counts.items()))


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
    present = set(header)
    lower = {c.lower() for c in header}
    missing = [c for c in required_columns(spec) if c not in present and c.lower() not in lower]
    if missing:
        found = ", ".join(header[:20]) + (f" ... ({len(header)} columns)" if len(header) > 20 else "")
        raise CsvHeaderError(
            f"the header lacks the column(s) {', '.join(missing)}; it must name {', '.join(required_columns(spec))} "
            f"(found: {found or 'nothing'})"
        )
    # Accept a header whose case differs from the spec (Points_Earned): map it to the spec's names.
    wanted = {c.lower(): c for c in required_columns(spec)}
    mapped = tuple(wanted.get(c.lower(), c) for c in header)
    dupes = sorted(c for c, n in Counter(mapped).items() if n > 1)  # linear: 100k columns in milliseconds
    if dupes:
        shown = ", ".join(d[:40] for d in dupes[:10]) + (f" and {len(dupes) - 10} more" if len(dupes) > 10 else "")
        raise CsvHeaderError(f"the header names {shown} more than once")
    return mapped


def window_half_width(step_seconds: int) -> timedelta:
    """Half-width of the accepted date range around a file's anchor (module doc)."""
    return min(timedelta(days=MAX_WINDOW_DAYS), timedelta(seconds=step_seconds * MAX_WINDOW_INTERVALS))


def date_window(times: Iterable[datetime], step_seconds: int) -> tuple[datetime, datetime] | None:
    """The accepted date range around the median of ``times`` (a file's first good rows); None without any."""
    ordered = sorted(times)
    if not ordered:
        return None
    mid = ordered[len(ordered) // 2]
    half = window_half_width(step_seconds)
    return (mid - half, mid + half)


def window_message(ts: datetime, window: tuple[datetime, datetime], step_seconds: int) -> str:
    return (
        f"date {ts:%Y-%m-%d %H:%M} is more than {window_half_width(step_seconds).days} days from the file's other "
        f"rows ({window[0]:%Y-%m-%d} to {window[1]:%Y-%m-%d} accepted): a typo in the year?"
    )


def iter_rows(
    lines: Iterable[str], spec: PipelineSpec, report: ParseReport | None = None, now: datetime | None = None
) -> Iterator[Record]:
    """Good rows of a CSV as validated records, in file order; bad rows go to ``report`` (see the module doc).

    ``lines`` is any iterable of text lines (an open file, ``io.TextIOWrapper`` over an S3 body). Blank lines are
    skipped (not errors). ``now`` is the upload's time (default: the clock), the latest date history may have.
    Raises :class:`CsvHeaderError` when the header is unusable.
    """
    rep = report if report is not None else ParseReport()
    clock = datetime.now(UTC) if now is None else now
    reader = csv.reader(lines)
    try:
        header = _header(next(reader, None), spec)
    except csv.Error as exc:
        raise CsvHeaderError(f"the header is not valid CSV: {exc}") from None
    rep.header = header
    step = interval_seconds(spec.interval)
    seen: dict[tuple[datetime, tuple[str, ...]], int] = {}
    pending: list[tuple[Record, int, list[str]]] = []  # good rows read before the window is anchored

    def accept(rec: Record, line: int, fields: list[str]) -> bool:
        window = rep.window
        if window is not None and not window[0] <= rec.timestamp <= window[1]:
            rep.add(
                RowError(
                    line,
                    spec.timestamp_column,
                    "out_of_window",
                    window_message(rec.timestamp, window, step),
                    _raw(fields),
                )
            )
            return False
        key = (floor_to_interval(rec.timestamp, step), rec.dimensions)
        first_line = seen.get(key)
        if first_line is not None:
            where = ", ".join(f"{d}={v}" for d, v in zip(spec.dimensions, rec.dimensions, strict=True))
            rep.add(
                RowError(
                    line,
                    spec.timestamp_column,
                    "duplicate",
                    f"duplicate of line {first_line}: {key[0]:%Y-%m-%d %H:%M} ({spec.interval}) for {where} "
                    f"already has a row; only the first is used",
                    _raw(fields),
                )
            )
            return False
        seen[key] = line
        rep.good += 1
        if rep.first is None or rec.timestamp < rep.first:
            rep.first = rec.timestamp
        if rep.last is None or rec.timestamp > rep.last:
            rep.last = rec.timestamp
        return True

    def anchor() -> Iterator[Record]:
        if rep.window is None:
            rep.window = date_window((r.timestamp for r, _, _ in pending), step)
        for rec, line, fields in pending:
            if accept(rec, line, fields):
                yield rec
        pending.clear()

    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote at the end of the file
            rep.rows += 1
            rep.add(RowError(reader.line_num, "", "bad_csv", f"not valid CSV: {str(exc)[:200]}", ""))
            continue
        line = reader.line_num
        if not fields or not any(f.strip() for f in fields):
            continue
        rep.rows += 1
        if len(fields) != len(header):
            short = len(fields) < len(header)
            absent = header[len(fields) :] if short else ()
            needed = [c for c in absent if c in required_columns(spec)]
            shown = ", ".join(absent[:10]) + (" ..." if len(absent) > 10 else "")
            rep.add(
                RowError(
                    line,
                    ",".join(needed or absent[:10]) if short else "",
                    "missing_column" if short else "extra_column",
                    (
                        f"the row has {len(fields)} field(s) but the header has {len(header)}: "
                        + (f"missing {shown}" if short else "too many fields (an unquoted comma?)")
                    ),
                    _raw(fields),
                )
            )
            continue
        obj = dict(zip(header, fields, strict=True))
        try:
            rec = validate(obj, spec, now=clock)
        except RecordError as err:
            rep.add(RowError(line, _column_of(err, spec), err.reason, str(err), _raw(fields)))
            continue
        if rep.window is None:
            pending.append((rec, line, fields))
            if len(pending) >= WINDOW_ANCHOR_ROWS:
                yield from anchor()
            continue
        if accept(rec, line, fields):
            yield rec
    yield from anchor()
    rep.errors.sort(key=lambda e: e.line)  # rows checked at anchoring time were reported late


def parse_csv(lines: Iterable[str], spec: PipelineSpec) -> tuple[list[Record], ParseReport]:
    """Convenience for small files and tests: every good record and the report."""
    report = ParseReport()
    return list(iter_rows(lines, spec, report)), report


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula (``= + - @``, tab, CR) gets a leading ``'``."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def error_report_csv(errors: Iterable[RowError] | ParseReport) -> str:
    """The per-row error report as CSV text (header ``line,column,reason,message,row``), spreadsheet-safe.

    Given the whole :class:`ParseReport`, a last row counts the errors left out (by reason) beyond the kept ones.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ERROR_COLUMNS, lineterminator="\n")
    writer.writeheader()
    kept = errors.errors if isinstance(errors, ParseReport) else errors
    for e in kept:
        writer.writerow({k: spreadsheet_safe(v) for k, v in e.to_row().items()})
    if isinstance(errors, ParseReport) and errors.omitted:
        counts = ", ".join(f"{r} {n}" for r, n in errors.omitted_reasons().items())
        writer.writerow(
            {
                "line": "",
                "column": "",
                "reason": "omitted",
                "message": f"{errors.omitted} more row error(s) not listed (first {MAX_KEPT_ERRORS} shown): {counts}",
                "row": "",
            }
        )
    return buf.getvalue()


def header_error_csv(message: str) -> str:
    """An error report for a file that could not be read at all (line 1 = the header)."""
    return error_report_csv([RowError(1, "", "bad_header", message, "")])
