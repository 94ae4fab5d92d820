"""What a demo is asked to do and what it found: options, counts, received alerts, the result, the observer.

One :class:`DemoOptions` serves every preset. The flags mean the same thing everywhere (history, live time,
locations, injected anomalies, start of the live part, seed, output directory); where a preset needs other defaults
they are resolved in one place, :data:`PRESET_DEFAULTS`, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sentinel_core.model import SeriesKey
from sentinel_core.spec import PipelineSpec

from simulator.commands.console import DEFAULT_PORT as CONSOLE_PORT

if TYPE_CHECKING:
    from simulator import datagen
    from simulator.demo import report

# The live day: a Thursday, so that the default 7 days of history hold a weekend and the day before the live one is a
# working day (a 3-day history then still covers Monday to Wednesday). Fixed, so a seed always gives the same run.
DEFAULT_START = datetime(2026, 3, 19, tzinfo=UTC)
# air-quality's live window starts on a Sunday evening and crosses into Monday (see PRESET_DEFAULTS)
AIR_QUALITY_START = datetime(2026, 3, 22, 21, 0, tzinfo=UTC)
DEMO_EMAIL = "oncall@example.com"
DEMO_PHONE = "+15555550123"
CONSOLE_URL = f"http://localhost:{CONSOLE_PORT}/"  # `make console` serves the demo's state there


def format_delay(minutes: float, daily: bool = False) -> str:
    """A time to detect in the unit that reads well: minutes for the streamed presets, days for daily data."""
    if daily or abs(minutes) >= 2 * 24 * 60:
        return f"{minutes / (24 * 60):.0f} d"
    if abs(minutes) >= 3 * 60:
        return f"{minutes / 60:.0f} h"
    return f"{minutes:.0f} min"


class DemoError(RuntimeError):
    """The demo cannot run (bad options, missing piece); the message says what to do."""


@dataclass(frozen=True)
class PresetDefaults:
    days: float
    hours: float
    locations: int
    anomalies: int | None  # None: the preset's data generator places them (see loyalty)
    start: datetime
    why: str


PRESET_DEFAULTS: dict[str, PresetDefaults] = {
    "air-quality": PresetDefaults(
        days=21.0,
        hours=6.0,
        locations=5,
        anomalies=4,
        start=AIR_QUALITY_START,
        why=(
            "three weeks of history hold three weekends: the weekly profile is in use after two of its periods, "
            "and its Monday offsets (the generator's weekend factor ends at Sunday midnight, a +33% step in CO) "
            "have seen three Mondays (measured on the record-format-6 detector, seed 7: with 14 days the live "
            "Monday 01:05-01:25 UTC drew 2 alerts outside the injected windows and 8 of 9 labels were found; with "
            "21 days 0 such alerts and 9 of 9, in 25 s instead of 23 s); the live window starts Sunday 21:00 UTC "
            "(the preset's zone) and crosses "
            "into Monday, where a time-of-day-only model alerted every week (issue 15); 6 live hours are 72 "
            "scheduled detector runs (~0.2 s each on moto), room for 4 events (spike, shift, drift, spike) kept "
            "apart and a location going silent for the last 30 minutes; 5 locations show multi-location groups "
            "and stay readable"
        ),
    ),
    "loyalty": PresetDefaults(
        days=365.0,
        hours=8.0,
        locations=20,
        anomalies=None,
        start=DEFAULT_START,
        why=(
            "daily points: a year gives the backtest 255 days to learn on (every weekday many times) and a 110-day "
            "report window; 20 stores is a small chain; anomalies: one per 20 days of the report window, at least 3 "
            "(simulator.uploads' rule, so it scales with --days); the file is uploaded --hours after --start (the "
            "chain's nightly export lands at 08:00): the backtest job runs on that S3 event"
        ),
    ),
    "ecommerce": PresetDefaults(
        days=14.0,
        hours=4.0,
        locations=9,
        anomalies=1,
        start=datetime(2026, 3, 19, 10, 0, tzinfo=UTC),
        why=(
            "10-minute page-view counts: two weeks of history see each weekday twice; 4 live hours from 10:00 UTC are "
            "24 detector runs in business hours (enough traffic per interval); 9 page type x platform x marketplace "
            "combinations include checkout on every platform of one market; one broken checkout is the story"
        ),
    ),
}


@dataclass(frozen=True)
class DemoOptions:
    """Field defaults are air-quality's; :meth:`for_preset` resolves another preset's (see PRESET_DEFAULTS)."""

    preset: str = "air-quality"
    days: float = 21.0  # history (PRESET_DEFAULTS["air-quality"]: why)
    hours: float = 6.0  # live part
    locations: int = 5  # locations, stores or page combinations: the preset's entities
    seed: int = 7
    anomalies: int | None = 4  # injected anomaly events; None: the preset's generator decides
    out: Path = Path("out/demo")
    start: datetime = AIR_QUALITY_START  # start of the live part (UTC)
    # The error paths: air-quality sends three faulty device messages, loyalty appends one bad row of each kind the
    # per-row report knows; ecommerce's page views come from a web tier that validates them (none sent).
    malformed: bool = True
    synth_dir: Path | None = None  # cloud assembly to (re)use; default <out>/cdk.out
    # The builtin detector's shards (context detector_shards): 1 = the single scheduled detector, more = the Step
    # Functions fan-out played by the local runtime (same data, same groups and alerts).
    shards: int = 1

    @classmethod
    def for_preset(
        cls,
        preset: str,
        *,
        days: float | None = None,
        hours: float | None = None,
        locations: int | None = None,
        anomalies: int | None = None,
        start: datetime | None = None,
        **given: Any,
    ) -> DemoOptions:
        """Options for ``preset``; a flag left ``None`` takes the preset's default."""
        if preset not in PRESET_DEFAULTS:
            raise DemoError(f"no demo for preset {preset!r}; choose one of {', '.join(PRESET_DEFAULTS)}")
        d = PRESET_DEFAULTS[preset]
        return cls(
            preset=preset,
            days=d.days if days is None else days,
            hours=d.hours if hours is None else hours,
            locations=d.locations if locations is None else locations,
            anomalies=d.anomalies if anomalies is None else anomalies,
            start=d.start if start is None else start,
            **given,
        )

    def validate(self) -> None:
        if self.preset not in PRESET_DEFAULTS:
            raise DemoError(f"no demo for preset {self.preset!r}; choose one of {', '.join(PRESET_DEFAULTS)}")
        if self.days <= 0:
            raise DemoError("--days must be positive (the history warms the detector up)")
        if self.hours <= 0:
            raise DemoError("--hours must be positive")
        if self.locations < 1:
            raise DemoError("--locations must be at least 1")
        if not 1 <= self.shards <= 200:
            raise DemoError("--shards must be 1 to 200 (the detector's shard bound)")
        if self.anomalies is not None and self.anomalies < 0:
            raise DemoError("--anomalies must not be negative")


class Observer(Protocol):
    """What the CLI shows while the demo runs (the test passes a silent one)."""

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def alert(self, alert: ReceivedAlert) -> None: ...

    def note(self, text: str) -> None: ...


class SilentObserver:
    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def alert(self, alert: ReceivedAlert) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Recipient:
    protocol: str  # email | sms | sqs | ...
    endpoint: str


@dataclass
class ReceivedAlert:
    """One SNS publish of the alert topic, as each kind of subscriber receives it."""

    delivered_at: datetime  # simulated time of the run that published it
    subject: str
    sms: str
    email: str
    lookout: dict[str, Any]  # the 'default' part: Lookout for Metrics' alert JSON (or the backtest's summary)
    recipients: list[Recipient]
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (topic, payload) sent to devices

    @property
    def is_summary(self) -> bool:
        """The backtest job's one summary of an upload (not an alert on one group)."""
        return self.lookout.get("type") == "backtestSummary"

    @property
    def interval(self) -> datetime:
        start = self.lookout.get("sentinel", {}).get("intervalStart") or self.lookout.get("reportStart")
        return datetime.fromisoformat(start) if start else self.delivered_at

    @property
    def measure(self) -> str:
        if self.is_summary:
            return "backtest summary"
        return str(self.lookout["impactedMetric"]["metricName"])

    @property
    def severity(self) -> float:
        if self.is_summary:
            return max((float(g["anomalyScore"]) for g in self.lookout.get("anomalyGroups", [])), default=0.0)
        return float(self.lookout["anomalyScore"])

    @property
    def series(self) -> list[dict[str, Any]]:
        return list(self.lookout.get("sentinel", {}).get("series", []))

    @property
    def where(self) -> str:
        if self.is_summary:
            return str(self.lookout.get("input", ""))
        places = [SeriesKey.parse(s["timeSeriesId"]) for s in self.series]
        return ", ".join(dict.fromkeys(" / ".join(v for _, v in k.dimensions) for k in places))


@dataclass
class Counts:
    """Records from the source to S3; ``published`` counts what the source sent (MQTT messages, page views put to
    Kinesis, CSV rows uploaded), the rest where each one ended up."""

    published: int = 0
    published_valid: int = 0
    published_malformed: int = 0
    firehose_in: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    rule_errors: int = 0
    s3_data_lines: int = 0  # records found in the data the pipeline wrote (live folders; rows the job used)
    s3_error_lines: int = 0  # records found in the error output (error prefix; the per-row error report)
    detector_runs: int = 0
    intervals_scored: int = 0
    series_scored: int = 0
    records_scored: int = 0
    late_records: int = 0
    alerts: int = 0
    commands: int = 0
    history_records: int = 0

    @property
    def lost(self) -> int:
        """Records found nowhere: not in the data, not in the error output, not in the rule's error action, not
        dropped on purpose by the transform (counted from S3, not from the runtime's ledger)."""
        return self.published - self.s3_data_lines - self.s3_error_lines - self.rule_errors - self.dropped


@dataclass
class DemoResult:
    options: DemoOptions
    spec: PipelineSpec
    bucket: str
    counts: Counts
    labels: list[datagen.Label]
    alerts: list[ReceivedAlert]
    detections: list[report.DetectionRow]
    errors: list[report.ErrorEntry]
    panels: list[report.SeriesPanel]
    objects: list[tuple[str, int]]
    report_path: Path
    notes: list[str]
    state_matches: bool | None  # recomputed model == the state the detector saved; None: no state (backtest)
    false_alerts: int
    synthesized: bool  # False when a cached assembly was reused
    source: str = "device messages published (MQTT)"  # what ``counts.published`` counts, for the tables
    failures: list[str] = field(default_factory=list)  # the pipeline itself failed: records lost, job rejected

    @property
    def alerts_path(self) -> Path:
        return self.options.out / "alerts.jsonl"

    @property
    def log_path(self) -> Path:
        return self.options.out / "lambda-logs.jsonl"

    @property
    def found(self) -> int:
        return sum(1 for d in self.detections if d.detected_at is not None)
