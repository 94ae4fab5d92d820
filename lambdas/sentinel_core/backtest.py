"""Backtest: run the detector core (the very same ``Detector``) over a CSV and score every input row.

Shared by ``python -m simulator backtest`` (:func:`run`, on CSV text) and the loyalty backtest Lambda
(:func:`run_records`, on records already validated by ``csv_input``: no text round trip, each measure aggregated
with its own SUM/AVG from the spec). Steps of :func:`run`:

1. columns: the timestamp column is the one whose values parse as times, numeric columns are measures, the rest
   are dimensions (each can be named instead, see :func:`detect_columns`);
2. rows: every row is parsed; a bad one becomes a :class:`RowProblem` (line, column, message) and gets an empty
   score, the good ones go on (a bad measure only drops that measure of the row);
3. values are bucketed into intervals (any ISO-8601 duration; irregular timestamps are fine) and aggregated per
   series with SUM or AVG;
4. intervals are scored in time order, causally; in backtest mode (Lookout's) the first ``1 - fraction`` of the
   intervals only trains the model and scores 0;
5. each input row gets the score of its interval for its series (the maximum over the row's measures), and the
   anomalous points are grouped like the live detector does.

Standard library only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sentinel_core import csv_input
from sentinel_core.aggregate import Accumulator, aggregate
from sentinel_core.detector import Detector, DetectorConfig
from sentinel_core.groups import ANOMALY_THRESHOLD, build_groups
from sentinel_core.intervals import interval_range, interval_seconds
from sentinel_core.model import AnomalyGroup, PointScore, SeriesKey, SilentSeries
from sentinel_core.records import Record, parse_number, parse_timestamp
from sentinel_core.spec import PipelineSpec, dimension_problem

__all__ = [
    "ANOMALY_THRESHOLD",
    "BacktestError",
    "BacktestResult",
    "Columns",
    "RowProblem",
    "Scored",
    "detect_columns",
    "run",
    "run_records",
    "score",
]

SCORE_COLUMN = "anomaly_score"
SAMPLE_ROWS = 500  # rows looked at to recognise the columns
_TIME_NAMES = ("timestamp", "time", "date", "datetime", "ts", "event_time")


class BacktestError(ValueError):
    """The input cannot be backtested at all (no header, no timestamp or measure column); the message says why."""


@dataclass(frozen=True)
class RowProblem:
    line: int  # physical line in the file (header = 1)
    column: str
    message: str


@dataclass(frozen=True)
class Columns:
    timestamp: str
    dimensions: tuple[str, ...]
    measures: tuple[str, ...]


@dataclass
class BacktestResult:
    header: list[str]
    columns: Columns
    rows: list[list[str]]  # the input rows as read (fields)
    scores: list[float | None]  # per input row; None = the row could not be scored
    problems: list[RowProblem] = field(default_factory=list)
    groups: list[AnomalyGroup] = field(default_factory=list)
    intervals: int = 0
    series: int = 0
    report_from: datetime | None = None  # first reported interval (backtest mode), None = all

    @property
    def scored_rows(self) -> int:
        return sum(1 for s in self.scores if s is not None)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _is_time(text: str) -> bool:
    try:
        parse_timestamp(text)
    except (ValueError, OverflowError, OSError):
        return False
    return True


def detect_columns(
    header: Sequence[str],
    sample: Sequence[Sequence[str]],
    timestamp: str | None = None,
    dimensions: Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
) -> Columns:
    """Recognise (or check) the timestamp, dimension and measure columns.

    Timestamp: the column whose values (at least 90 % of the non-empty sample) parse as times, preferring text
    columns (``2022-03-20 00:05``) and then epoch-number columns with a time-like name. Measures: the other columns
    whose values are numbers (90 %). Dimensions: the rest. Named columns are checked against the header.
    """
    cols = list(header)
    for name in [timestamp or "", *(dimensions or ()), *(measures or ())]:
        if name and name not in cols:
            raise BacktestError(f"column {name!r} is not in the header ({', '.join(cols)})")

    def values(i: int) -> list[str]:
        return [r[i].strip() for r in sample if i < len(r) and r[i].strip()]

    def share(i: int, test: Callable[[str], bool]) -> float:
        vals = values(i)
        return sum(1 for v in vals if test(v)) / len(vals) if vals else 0.0

    ts = timestamp
    if ts is None:
        text_time = [c for i, c in enumerate(cols) if share(i, _is_time) >= 0.9 and share(i, _is_number) < 0.5]
        epoch_time = [
            c
            for i, c in enumerate(cols)
            if c.lower() in _TIME_NAMES and share(i, _is_time) >= 0.9 and c not in text_time
        ]
        found = text_time or epoch_time
        if not found:
            raise BacktestError(
                f"no column parses as a timestamp (header: {', '.join(cols)}); name it with --timestamp-column"
            )
        ts = found[0]
    rest = [c for c in cols if c != ts and c not in (dimensions or ())]
    ms = list(measures) if measures else [c for c in rest if share(cols.index(c), _is_number) >= 0.9]
    if not ms:
        raise BacktestError(f"no numeric measure column found (header: {', '.join(cols)}); name one with --measure")
    dims = list(dimensions) if dimensions else [c for c in rest if c not in ms]
    overlap = set(dims) & set(ms)
    if overlap:
        raise BacktestError(f"column(s) {', '.join(sorted(overlap))} cannot be both a dimension and a measure")
    return Columns(ts, tuple(dims), tuple(ms))


def read_csv(lines: Iterable[str]) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (fields as text) and each row's line number; blank lines are skipped (as CSV readers do)."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise BacktestError("the file is empty or its first line is blank: a header row is required")
    rows: list[list[str]] = []
    numbers: list[int] = []
    for r in reader:
        if r and any(f.strip() for f in r):
            rows.append(list(r))
            numbers.append(reader.line_num)
    return [h.strip().lstrip("\ufeff") for h in header], rows, numbers


def _date_window(rows: Sequence[Sequence[str]], column: int, step_seconds: int) -> tuple[datetime, datetime] | None:
    """``csv_input.date_window`` of the first parseable timestamps of ``rows``."""
    times: list[datetime] = []
    for row in rows:
        if len(times) >= csv_input.WINDOW_ANCHOR_ROWS:
            break
        try:
            times.append(parse_timestamp(row[column]))
        except (IndexError, ValueError, OverflowError, OSError):
            continue
    return csv_input.date_window(times, step_seconds)


def run(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    step_seconds: int,
    *,
    timestamp: str | None = None,
    dimensions: Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
    aggregation: str = "AVG",
    backtest_fraction: float = 0.0,
    config: DetectorConfig | None = None,
    detector_id: str = "backtest",
    group_threshold: float = ANOMALY_THRESHOLD,
    line_numbers: Sequence[int] | None = None,
) -> BacktestResult:
    """Score every row (see the module doc). ``backtest_fraction`` > 0 reports only that last share of intervals."""
    if aggregation not in ("SUM", "AVG"):
        raise BacktestError(f"aggregation must be SUM or AVG, got {aggregation!r}")
    _check_fraction(backtest_fraction)
    cols = detect_columns(header, rows[:SAMPLE_ROWS], timestamp, dimensions, measures)
    pos = {c: i for i, c in enumerate(header)}
    acc = Accumulator(step_seconds, dict.fromkeys(cols.measures, aggregation))
    problems: list[RowProblem] = []
    # per row: the (interval, series) cells it feeds, or None when it cannot be scored
    cells: list[list[tuple[datetime, SeriesKey]] | None] = []
    window = _date_window(rows, pos[cols.timestamp], step_seconds)  # csv_input's rules: a 1900/2100 typo is refused
    for n, row in enumerate(rows):
        line = line_numbers[n] if line_numbers is not None else n + 2
        if not row or not any(f.strip() for f in row):
            cells.append(None)
            problems.append(RowProblem(line, "", "blank row"))
            continue
        if len(row) < len(header):
            missing = ", ".join(header[len(row) :])
            problems.append(RowProblem(line, missing, f"row has {len(row)} field(s), header {len(header)}"))
        if len(row) > len(header):
            problems.append(RowProblem(line, "", f"row has {len(row)} fields but the header {len(header)}"))
            cells.append(None)
            continue
        raw_ts = row[pos[cols.timestamp]] if pos[cols.timestamp] < len(row) else ""
        try:
            ts = parse_timestamp(raw_ts)
        except (ValueError, OverflowError, OSError) as exc:
            problems.append(RowProblem(line, cols.timestamp, str(exc)))
            cells.append(None)
            continue
        if window is not None and not window[0] <= ts <= window[1]:
            problems.append(RowProblem(line, cols.timestamp, csv_input.window_message(ts, window, step_seconds)))
            cells.append(None)
            continue
        dims: list[tuple[str, str]] = []
        bad_dim = False
        for d in cols.dimensions:
            v = row[pos[d]].strip() if pos[d] < len(row) else ""
            problem = "is empty" if not v else dimension_problem(v)
            if problem is not None:
                problems.append(RowProblem(line, d, f"dimension {d!r} {problem}"))
                bad_dim = True
                break
            dims.append((d, v))
        if bad_dim:
            cells.append(None)
            continue
        mine: list[tuple[datetime, SeriesKey]] = []
        for m in cols.measures:
            text = row[pos[m]] if pos[m] < len(row) else ""
            try:
                value = parse_number(text)
            except ValueError as exc:
                problems.append(RowProblem(line, m, f"measure {m!r}: {exc}"))
                continue
            key = SeriesKey(m, tuple(dims))
            mine.append((acc.add(ts, key, value), key))
        cells.append(mine or None)

    done = score(
        acc.result(),
        step_seconds,
        zero_fill=cols.measures if aggregation == "SUM" else (),
        backtest_fraction=backtest_fraction,
        config=config,
        detector_id=detector_id,
        group_threshold=group_threshold,
    )
    row_scores: list[float | None] = []
    for fed in cells:
        row_scores.append(None if fed is None else max(done.scores.get(c, 0.0) for c in fed))
    return BacktestResult(
        header=list(header),
        columns=cols,
        rows=[list(r) for r in rows],
        scores=row_scores,
        problems=problems,
        groups=done.groups,
        intervals=done.intervals,
        series=done.series,
        report_from=done.report_from,
    )


def _check_fraction(backtest_fraction: float) -> None:
    if not 0 <= backtest_fraction < 1:
        raise BacktestError(f"the backtest fraction must be within [0, 1), got {backtest_fraction}")


@dataclass
class Scored:
    """The scoring of aggregated values: groups, every reported (interval, series) score, counts."""

    groups: list[AnomalyGroup]
    scores: dict[tuple[datetime, SeriesKey], float]
    intervals: int  # intervals with data
    series: int
    report_from: datetime | None  # first reported interval (backtest mode), None = all
    # (interval, series) whose aggregate was not finite (e.g. a SUM that overflowed): not scored, a bad record
    invalid: list[tuple[datetime, SeriesKey]] = field(default_factory=list)


def score(
    by_interval: Mapping[datetime, Mapping[SeriesKey, float]],
    step_seconds: int,
    *,
    backtest_fraction: float = 0.0,
    config: DetectorConfig | None = None,
    detector_id: str = "backtest",
    group_threshold: float = ANOMALY_THRESHOLD,
    zero_fill: Collection[str] = (),
    timezone: str = "UTC",
) -> Scored:
    """Score the intervals in time order with one causal ``Detector``; with ``backtest_fraction`` > 0 the first
    ``1 - fraction`` of the intervals (counted over the whole span, gaps included) only train it. Every interval of
    the span is scored, so the absent series of the ``zero_fill`` (SUM) measures are scored as 0, as live."""
    _check_fraction(backtest_fraction)
    detector = Detector(step_seconds, config, timezone)
    invalid: list[tuple[datetime, SeriesKey]] = []
    scores: dict[tuple[datetime, SeriesKey], float] = {}
    report_from: datetime | None = None
    scored: dict[datetime, list[PointScore]] = {}
    silent: dict[datetime, list[SilentSeries]] = {}
    if by_interval:
        starts = sorted(by_interval)
        all_starts = interval_range(starts[0], starts[-1] + timedelta(seconds=step_seconds), step_seconds)
        if backtest_fraction > 0:
            report_from = all_starts[min(len(all_starts) - 1, int(len(all_starts) * (1 - backtest_fraction)))]
        for start in all_starts:
            result, bad = detector.score_valid(start, by_interval.get(start, {}), zero_fill=zero_fill)
            invalid.extend((start, k) for k in bad)
            points = result.points
            if report_from is not None and start < report_from:
                continue
            scored[start] = points
            if result.silent:
                silent[start] = result.silent
            for p in points:
                scores[(start, p.series)] = p.score
    return Scored(
        groups=build_groups(scored, detector_id, step_seconds, group_threshold, silent),
        scores=scores,
        intervals=len(by_interval),
        series=len({k for v in by_interval.values() for k in v}),
        report_from=report_from,
        invalid=invalid,
    )


def run_records(
    records: Iterable[Record],
    spec: PipelineSpec,
    *,
    detector_id: str = "backtest",
    config: DetectorConfig | None = None,
    group_threshold: float = ANOMALY_THRESHOLD,
) -> Scored:
    """Backtest validated records with the spec's interval, per-measure aggregation and ``backtest_fraction``.

    ``records`` may be a generator: they are aggregated as they stream, never kept.
    """
    return score(
        aggregate(records, spec),
        interval_seconds(spec.interval),
        zero_fill=[m.name for m in spec.measures if m.aggregation == "SUM"],
        timezone=spec.timezone,
        backtest_fraction=spec.backtest_fraction,
        config=config,
        detector_id=detector_id,
        group_threshold=group_threshold,
    )


def output_rows(result: BacktestResult) -> list[list[str]]:
    """Output rows: the header plus ``anomaly_score``, then every input row in input order with its score."""
    table = [[*result.header, SCORE_COLUMN]]
    for row, score in zip(result.rows, result.scores, strict=True):
        table.append([*row, "" if score is None else f"{score:g}"])
    return table


def groups_summary(groups: Sequence[AnomalyGroup]) -> list[Mapping[str, object]]:
    """Plain rows for a table / JSON: one per group."""
    out: list[Mapping[str, object]] = []
    for g in groups:
        top = max(g.points, key=lambda p: p.score) if g.points else None
        out.append(
            {
                "group_id": g.group_id,
                "measure": g.measure,
                "kind": g.kind,
                "start": g.start.isoformat(),
                "end": g.end.isoformat(),
                "score": g.score,
                "series": len(g.series_ids),
                "worst_series": top.series.id if top else "",
                "contributions": [f"{c.dimension}={c.value} {c.percent:g}%" for c in g.contributions[:5]],
            }
        )
    return out
