"""The offline demo, as a plain function: the synthesized stack played on moto, fed like devices would feed it.

``run_demo(options, observer)`` does, inside ``moto.mock_aws``:

1. synthesize the CDK app (``infra.app.build_app``) into ``<out>/cdk.out``, or reuse that assembly when neither the
   context nor any source file changed since (a stamp file holds their hash), and load it with the local runtime
   (``local_aws.LocalPipeline``), which creates the stack's buckets, topics, tables and queues in moto;
2. generate a clean history (``simulator.datagen``) and upload it under the historical prefix;
3. replay the live window interval by interval in simulated time: every location publishes its reading on its
   telemetry topic a few seconds after the interval closes (a few malformed payloads among them), the topic rule
   forwards to Firehose, whose transform Lambda (the real handler) partitions by the record's own interval, and
   the EventBridge schedule runs the detector Lambda (the real handler), whose alerts go to SNS; the automation
   Lambda (subscribed to the topic) sends a command back to the device;
4. read back what recipients got (each SNS publish's ``sms`` and ``email`` parts), the commands devices got, the
   S3 layout, the error prefix; recompute the expected bands with the same detector core from the same S3
   objects (and check the recomputed model equals the state the Lambda saved), and write the HTML report.

Nothing here re-implements the pipeline: every hop is the runtime playing the synthesized template.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sentinel_core import layout
from sentinel_core.intervals import floor_to_interval, interval_range, interval_seconds, to_utc
from sentinel_core.model import PointScore, SeriesKey
from sentinel_core.records import OUTPUT_TIMESTAMP_FORMAT, Record, validate
from sentinel_core.spec import PipelineSpec, get_preset

from simulator import datagen, report
from simulator.commands.console import DEFAULT_PORT as CONSOLE_PORT

ROOT = Path(__file__).resolve().parents[1]
# The live day: a Thursday, so that the default 7 days of history hold a weekend and the day before the live one is a
# working day (a 3-day history then still covers Monday to Wednesday). Fixed, so a seed always gives the same run.
DEFAULT_START = datetime(2026, 3, 19, tzinfo=UTC)
KIND_CYCLE: tuple[datagen.AnomalyKind, ...] = ("spike", "shift", "drift")
DEMO_EMAIL = "oncall@example.com"
DEMO_PHONE = "+15555550123"
CONSOLE_URL = f"http://localhost:{CONSOLE_PORT}/"  # `make console` serves the demo's state there
DETECTION_GRACE_INTERVALS = 3  # an alert this many intervals after an injected window still counts for it


class LogSink(io.TextIOBase):
    """Where the Lambdas' stdout/stderr (Powertools' JSON logs and EMF metrics) go: the run's log file.

    Powertools binds its handler to ``sys.stdout`` once per process, so the demo redirects stdout to this one
    long-lived object and points it at each run's file; outside a run it forwards to the real stdout.
    """

    def __init__(self) -> None:
        super().__init__()
        self.target: Any = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        out = self.target or sys.__stdout__
        if out is not None:
            out.write(text)
        return len(text)

    def flush(self) -> None:
        out = self.target or sys.__stdout__
        if out is not None:
            out.flush()


LAMBDA_LOG = LogSink()


class DemoError(RuntimeError):
    """The demo cannot run (bad options, missing piece); the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    preset: str = "air-quality"
    days: float = 7.0  # history
    hours: float = 6.0  # live window (each 5-minute interval is a scheduled detector run: ~0.2 s on moto)
    locations: int = 5
    seed: int = 7
    anomalies: int = 4
    out: Path = Path("out/demo")
    start: datetime = DEFAULT_START  # start of the live window (UTC)
    malformed: bool = True
    synth_dir: Path | None = None  # cloud assembly to (re)use; default <out>/cdk.out

    def validate(self) -> None:
        if self.days <= 0:
            raise DemoError("--days must be positive (the history warms the detector up)")
        if self.hours <= 0:
            raise DemoError("--hours must be positive")
        if self.locations < 1:
            raise DemoError("--locations must be at least 1")
        if self.anomalies < 0:
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

    delivered_at: datetime  # simulated time of the detector run that published it
    subject: str
    sms: str
    email: str
    lookout: dict[str, Any]  # the 'default' part: Lookout for Metrics' alert JSON
    recipients: list[Recipient]
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (topic, payload) sent to devices

    @property
    def interval(self) -> datetime:
        return datetime.fromisoformat(self.lookout["sentinel"]["intervalStart"])

    @property
    def measure(self) -> str:
        return str(self.lookout["impactedMetric"]["metricName"])

    @property
    def severity(self) -> float:
        return float(self.lookout["anomalyScore"])

    @property
    def series(self) -> list[dict[str, Any]]:
        return list(self.lookout["sentinel"]["series"])

    @property
    def where(self) -> str:
        places = [SeriesKey.parse(s["timeSeriesId"]) for s in self.series]
        return ", ".join(dict.fromkeys(" / ".join(v for _, v in k.dimensions) for k in places))


@dataclass(frozen=True)
class Malformed:
    """A payload a faulty device sends: it must end up in the error prefix (or the rule's error action)."""

    at: datetime
    topic: str
    payload: bytes
    problem: str


@dataclass
class Counts:
    published: int = 0  # MQTT messages the devices published
    published_valid: int = 0
    published_malformed: int = 0
    firehose_in: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    rule_errors: int = 0
    s3_data_lines: int = 0  # JSON lines found under the live prefix
    s3_error_lines: int = 0  # error documents found under the error prefix
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
        """Published messages found nowhere: not in a live object, not in the error prefix, not in the rule's
        error action, not dropped on purpose by the transform (counted from S3, not from the runtime's ledger)."""
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
    state_matches: bool
    false_alerts: int
    synthesized: bool  # False when a cached assembly was reused


# ----------------------------------------------------------------------------------------------------------------
# Synth (cached)
# ----------------------------------------------------------------------------------------------------------------
def synth_context(spec: PipelineSpec) -> dict[str, Any]:
    """CDK context of the demo stack: the preset, the built-in engine and one e-mail and one SMS recipient."""
    return {
        "preset": spec.preset,
        "engine": "builtin",
        "alert_emails": [DEMO_EMAIL],
        "alert_phones": [DEMO_PHONE],
        "console_base_url": CONSOLE_URL.rstrip("/"),  # the alerts link to the offline console's group pages
    }


def _source_hash(context: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(context, sort_keys=True).encode())
    files = [ROOT / "app.py", ROOT / "cdk.json", ROOT / "requirements.txt"]
    for folder in ("infra", "lambdas"):
        files += sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def silence_jsii_node_banner() -> None:
    """jsii prints a large Node end-of-life banner unless ``JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION`` lists
    the running Node major version (comma-separated, e.g. ``20``; a value like ``1`` does not silence it)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    node = shutil.which("node")
    if node is None:
        return
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20, check=False)  # noqa: S603
    except (OSError, subprocess.SubprocessError):
        return
    major = version.stdout.strip().lstrip("v").split(".")[0]
    var = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
    current = [v.strip() for v in os.environ.get(var, "").split(",") if v.strip()]
    if major.isdigit() and major not in current:
        os.environ[var] = ",".join([*current, major])


def load_pipeline(spec: PipelineSpec, outdir: Path) -> tuple[Any, bool]:
    """The local runtime for the synthesized stack; (pipeline, True when it was synthesized now)."""
    from local_aws import LocalPipeline

    context = synth_context(spec)
    stamp = outdir / ".demo-source-hash"
    digest = _source_hash(context)
    if (outdir / "manifest.json").exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return LocalPipeline.from_assembly(outdir), False
    silence_jsii_node_banner()
    if (outdir / "manifest.json").exists():
        shutil.rmtree(outdir)  # an assembly of older sources: its stale asset folders would pile up
    try:
        pipeline = LocalPipeline.synth(context, outdir)
    except ModuleNotFoundError as exc:
        raise DemoError(f"the CDK app cannot be synthesized: {exc} (is infra/ complete? run `make setup`)") from exc
    stamp.write_text(digest + "\n")
    return pipeline, True


# ----------------------------------------------------------------------------------------------------------------
# Environment safety
# ----------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def offline_environment(region: str) -> Iterator[None]:
    """Fake credentials, the template's region, no endpoint override: nothing can reach a real AWS account."""
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SECURITY_TOKEN"):
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "POWERTOOLS_TRACE_DISABLED",
)


@contextlib.contextmanager
def route_account_iot_endpoint() -> Iterator[None]:
    """Let moto answer the account's ATS data endpoint (``<id>-ats.iot.<region>.amazonaws.com``).

    ``iot:DescribeEndpoint`` returns that per-account host (the automation Lambda publishes commands there) but
    moto only routes ``data-ats.iot.<region>.amazonaws.com``; the pattern is added for the demo's duration.
    """
    import moto.iotdata.urls as iotdata_urls
    from moto import backend_index

    pattern = r"https?://[a-z0-9]+-ats\.iot\.(.+)\.amazonaws\.com"
    entry = ("iotdata", re.compile(pattern))
    iotdata_urls.url_bases.append(pattern)
    backend_index.backend_url_patterns.append(entry)
    try:
        yield
    finally:
        iotdata_urls.url_bases.remove(pattern)
        backend_index.backend_url_patterns.remove(entry)


def fresh_lambda_modules() -> None:
    """Clear the cold-start caches (``lru_cache``d clients and settings) of Lambda modules an earlier run or test
    in this process imported, so this run's handlers read this stack's environment. The modules themselves stay
    (other code may hold references to them)."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("transform", "detector", "automation") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()


# ----------------------------------------------------------------------------------------------------------------
# Planning the data
# ----------------------------------------------------------------------------------------------------------------
def plan_live_anomalies(
    spec: PipelineSpec, start: datetime, end: datetime, entities: Sequence[tuple[str, ...]], seed: int, count: int
) -> list[datagen.Label]:
    """``count`` anomaly events spread over the live window, one per equal slot, kinds cycling spike/shift/drift."""
    if count == 0:
        return []
    step = interval_seconds(spec.interval)
    total = int((end - start).total_seconds() // step)
    slot = total // count
    if slot < 1:
        raise DemoError(
            f"{count} anomalies do not fit in {total} live intervals: use fewer --anomalies or more --hours"
        )
    margin = 3 if slot > 6 else 0  # keep events apart so each is its own detection target
    labels: list[datagen.Label] = []
    for i in range(count):
        s0 = start + timedelta(seconds=i * slot * step)
        s1 = start + timedelta(seconds=((i + 1) * slot - margin) * step)
        labels += datagen.plan_anomalies(
            spec, s0, s1, list(entities), f"{seed}:live:{i}", 1, kinds=(KIND_CYCLE[i % len(KIND_CYCLE)],)
        )
    return sorted(labels)


def malformed_payloads(
    spec: PipelineSpec, start: datetime, end: datetime, entity: tuple[str, ...], step: int
) -> list[Malformed]:
    """Three faulty devices' messages spread over the live window: text, a non-numeric value, a clock 2 days ahead."""
    topic = spec.telemetry_topic(entity[0])
    span = end - start
    times = [floor_to_interval(start + span * f, step) + timedelta(seconds=step + 50) for f in (0.2, 0.5, 0.8)]
    dims = dict(zip(spec.dimensions, entity, strict=True))
    measures = spec.measure_names

    def rec(ts: datetime, **override: Any) -> bytes:
        doc: dict[str, Any] = {spec.timestamp_column: (ts - timedelta(seconds=step + 50)).strftime("%Y-%m-%d %H:%M")}
        doc.update(dims)
        doc.update({m: 1.0 for m in measures})
        doc.update(override)
        return json.dumps(doc).encode()

    future = times[2] + timedelta(days=2)
    return [
        Malformed(
            times[0], topic, f"{measures[0]}=2.6;{measures[-1]}=57 (firmware 0.9 text format)".encode(), "not JSON"
        ),
        Malformed(times[1], topic, rec(times[1], **{measures[0]: "n/a"}), f"{measures[0]} is not a number"),
        Malformed(
            times[2],
            topic,
            rec(times[2], **{spec.timestamp_column: future.strftime("%Y-%m-%d %H:%M")}),
            "device clock two days ahead",
        ),
    ]


# ----------------------------------------------------------------------------------------------------------------
# Reading back what happened
# ----------------------------------------------------------------------------------------------------------------
def _topic(account: str, region: str, arn: str) -> Any:
    from moto.sns.models import sns_backends

    return sns_backends[account][region].topics.get(arn)


def _iot_published(account: str, region: str) -> list[tuple[str, bytes]]:
    from moto.iotdata.models import iotdata_backends

    return list(iotdata_backends[account][region].published_payloads)


def recipients(sns: Any, topic_arn: str) -> list[Recipient]:
    subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    return [Recipient(s["Protocol"], s["Endpoint"]) for s in subs]


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


def list_objects(s3: Any, bucket: str, prefix: str = "") -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
    return sorted(out)


def read_text(s3: Any, bucket: str, key: str) -> str:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------------------------
# Expected bands: the same detector core on the same S3 objects
# ----------------------------------------------------------------------------------------------------------------
def replay_scores(
    spec: PipelineSpec,
    history: Sequence[Record],
    live: Sequence[Record],
    live_start: datetime,
    last_interval: datetime,
    context_from: datetime | None = None,
) -> tuple[dict[str, list[PointScore]], dict[str, Any]]:
    """Score like the detector Lambda does (warm-up on the history, then each live interval in order).

    Returns the point scores per series id — the live ones, preceded by the history's from ``context_from`` (what
    the plots show as context) — and the final model state (to compare with the Lambda's).
    """
    from sentinel_core.aggregate import aggregate
    from sentinel_core.detector import Detector

    step = interval_seconds(spec.interval)
    detector = Detector(step)
    by_interval = aggregate(history, spec)
    out: dict[str, list[PointScore]] = {}
    if by_interval:
        starts = sorted(by_interval)
        for start in interval_range(starts[0], starts[-1] + timedelta(seconds=step), step):
            scored = detector.score(start, by_interval.get(start, {}))
            if context_from is not None and start >= context_from:
                for p in scored:
                    out.setdefault(p.series.id, []).append(p)
    live_by = aggregate(live, spec)
    for start in interval_range(live_start, last_interval + timedelta(seconds=step), step):
        for p in detector.score(start, live_by.get(start, {})):
            out.setdefault(p.series.id, []).append(p)
    return out, detector.to_state()


def _is_anomalous(p: PointScore) -> bool:
    try:
        from sentinel_core.groups import is_anomalous

        return bool(is_anomalous(p))
    except ImportError:  # pragma: no cover - groups.py is part of the detector core
        return p.score > 0 and not p.warming_up


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------
def run_demo(options: DemoOptions, observer: Observer | None = None) -> DemoResult:
    """Run the whole demo; the Lambdas' logs go to ``<out>/lambda-logs.jsonl``."""
    from moto import mock_aws

    options.validate()
    obs: Observer = observer or SilentObserver()
    spec = get_preset(options.preset)
    if spec.ingest != "iot":
        raise DemoError(
            f"the demo streams device messages; preset {spec.preset!r} ingests via {spec.ingest} (use air-quality)"
        )
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    obs.phase("Synthesizing the CDK app (real synth of infra/)")
    pipeline, synthesized = load_pipeline(spec, options.synth_dir or out / "cdk.out")
    obs.note(
        ("Synthesized" if synthesized else "Reused the synthesized")
        + f" stack {pipeline.template.stack_name}: {len(pipeline.template.resources)} resources"
    )
    with contextlib.ExitStack() as stack:
        log = stack.enter_context((out / "lambda-logs.jsonl").open("w", encoding="utf-8"))
        stack.enter_context(offline_environment(pipeline.region))
        stack.enter_context(mock_aws())
        stack.enter_context(route_account_iot_endpoint())
        fresh_lambda_modules()
        LAMBDA_LOG.target = log
        stack.callback(setattr, LAMBDA_LOG, "target", None)
        stack.enter_context(contextlib.redirect_stdout(LAMBDA_LOG))  # the Lambdas' logs: CloudWatch Logs' part
        stack.enter_context(contextlib.redirect_stderr(LAMBDA_LOG))
        return _run(options, spec, pipeline, synthesized, obs)
    raise AssertionError("unreachable")  # pragma: no cover


def _run(options: DemoOptions, spec: PipelineSpec, pipeline: Any, synthesized: bool, obs: Observer) -> DemoResult:
    out = options.out
    step = interval_seconds(spec.interval)
    live0 = floor_to_interval(options.start, step)
    live1 = live0 + timedelta(seconds=max(1, round(options.hours * 3600 / step)) * step)
    hist0 = floor_to_interval(live0 - timedelta(days=options.days), step)
    ents = datagen.resolve_entities(spec, options.locations)
    counts = Counts()
    notes: list[str] = []
    if options.days < 2:
        notes.append(
            f"Only {options.days:g} day(s) of history: the detector's daily profile has seen each time of day at most "
            "once, so its bands are rough and it misses more; use --days 2 or more (the default is 7)."
        )

    obs.phase("Creating the stack's resources in moto (from the template)")
    pipeline.start()
    if pipeline.unsupported:
        # The console's deployed front (API Gateway, Cognito, CloudFront, Glue, its history stream) is what
        # `make console` replaces offline: named once, not resource by resource.
        console = [r for r in pipeline.unsupported if r.startswith("Console")]
        others = [r for r in pipeline.unsupported if not r.startswith("Console")]
        if others:
            notes.append("Not played locally: " + ", ".join(others))
        if console:
            notes.append(
                f"The console's deployed front ({len(console)} resources: HTTP API, Cognito, CloudFront, Glue, the "
                "history stream) is not played here; `make console` serves the same API handler and web files."
            )
    s3 = pipeline.client("s3")
    sns = pipeline.client("sns")
    bucket = pipeline.data_bucket
    detector_env = pipeline.env_of("detector")
    topic_arn = detector_env["ALERT_TOPIC_ARN"]
    offset = int(detector_env.get("SCHEDULE_OFFSET_SECONDS", "0") or 0)
    to = [r for r in recipients(sns, topic_arn) if r.protocol in ("email", "sms")]

    # -- history ------------------------------------------------------------------------------------------------
    obs.phase(f"Generating {options.days:g} days of history for {len(ents)} locations")
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    hist_file = data_dir / datagen.HISTORY_FILE
    counts.history_records = datagen.write_records(
        hist_file, spec, datagen.generate_rows(spec, hist0, live0, ents, options.seed), ents, "jsonl"
    )
    history_key = layout.historical_prefix(spec) + datagen.HISTORY_FILE
    pipeline.upload(bucket, history_key, hist_file.read_bytes(), now=live0 - timedelta(minutes=30))

    # -- live plan ----------------------------------------------------------------------------------------------
    labels = plan_live_anomalies(spec, live0, live1, ents, options.seed, options.anomalies)
    datagen.write_labels(data_dir / datagen.LABELS_FILE, labels)
    records = list(
        datagen.generate_records(spec, live0, live1, ents, options.seed, labels, trend_origin=hist0, missing=True)
    )
    malformed = malformed_payloads(spec, live0, live1, ents[0], step) if options.malformed else []
    ent_index = {e: i for i, e in enumerate(ents)}
    # Each device reports its interval average a few seconds after the interval closes (spread by location).
    events: list[tuple[datetime, int, str, bytes]] = []
    for rec in records:
        ent = tuple(str(rec[d]) for d in spec.dimensions)
        k = ent_index[ent]
        ts = datetime.strptime(str(rec[spec.timestamp_column]), OUTPUT_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        at = ts + timedelta(seconds=step + 3 + (k * 7) % 45)
        events.append((at, k, spec.telemetry_topic(ent[0]), json.dumps(rec, separators=(",", ":")).encode()))
    for m in malformed:
        events.append((m.at, -1, m.topic, m.payload))
    events.sort(key=lambda e: (e[0], e[1]))

    # -- streaming ----------------------------------------------------------------------------------------------
    alerts: list[ReceivedAlert] = []
    topic = _topic(pipeline.account, pipeline.region, topic_arn)
    seen_notifications = len(topic.sent_notifications) if topic is not None else 0
    seen_commands = len(_iot_published(pipeline.account, pipeline.region))

    def collect(results: list[tuple[str, datetime, Any]]) -> None:
        nonlocal seen_notifications, seen_commands
        fired_at = None
        for name, at, response in results:
            if pipeline.function(name).package != "detector":
                continue
            fired_at = at
            counts.detector_runs += 1
            if isinstance(response, dict):
                counts.intervals_scored += int(response.get("intervals_scored", 0))
                counts.series_scored += int(response.get("series_scored", 0))
                counts.records_scored += int(response.get("records", 0))
                counts.late_records += int(response.get("late_records", 0))
        new = topic.sent_notifications[seen_notifications:] if topic is not None else []
        seen_notifications += len(new)
        commands = _iot_published(pipeline.account, pipeline.region)[seen_commands:]
        seen_commands += len(commands)
        for _mid, message, subject, _attrs, _group in new:
            alert = parse_alert(message, subject, fired_at or pipeline.now, to)
            event_id = alert.lookout["alertEventId"]
            for cmd_topic, payload in commands:
                body = json.loads(payload)
                if body.get("alertEventId") == event_id:
                    alert.commands.append((cmd_topic, body))
            alerts.append(alert)
            obs.alert(alert)
        counts.commands += len(commands)

    intervals = interval_range(live0, live1, step)
    obs.phase(f"Streaming {len(intervals)} live intervals through IoT Core → Firehose → S3 → detector", len(intervals))
    by_interval: dict[datetime, list[tuple[datetime, int, str, bytes]]] = {}
    for ev in events:
        by_interval.setdefault(floor_to_interval(ev[0] - timedelta(seconds=step), step), []).append(ev)
    malformed_payloads_set = {m.payload for m in malformed}
    for start in intervals:
        collect(pipeline.tick(start + timedelta(seconds=step)))
        for at, _k, mqtt_topic, payload in by_interval.get(start, []):
            pipeline.publish(mqtt_topic, payload, now=at, client_id=mqtt_topic.split("/")[-2])
            counts.published += 1
            if payload in malformed_payloads_set:
                counts.published_malformed += 1
            else:
                counts.published_valid += 1
        obs.advance()
    # Let the last interval close, Firehose flush and the detector score it.
    final = live1 + timedelta(seconds=2 * step + offset + 120)
    collect(pipeline.tick(final))
    pipeline.flush(final, force=True)
    ledger = pipeline.ledger
    counts.firehose_in = ledger.records_in
    counts.delivered = ledger.delivered
    counts.failed = ledger.failed
    counts.dropped = ledger.dropped
    counts.pending = pipeline.pending
    counts.rule_errors = ledger.iot_rule_errors
    counts.alerts = len(alerts)

    # -- read back ----------------------------------------------------------------------------------------------
    obs.phase("Reading back S3, recomputing the expected bands, writing the report")
    objects = list_objects(s3, bucket)
    live_records: list[Record] = []
    for key, _size in objects:
        if key.startswith(layout.live_root(spec)):
            for line in _lines(read_text(s3, bucket, key)):
                counts.s3_data_lines += 1
                live_records.append(validate(json.loads(line), spec))
    errors = _error_entries(pipeline, s3, bucket, spec, objects, counts)
    history_records = [validate(json.loads(line), spec) for line in _lines(hist_file.read_text(encoding="utf-8"))]

    from sentinel_core import store

    saved = store.load_state(s3, bucket, spec)
    lambda_detector = (saved or {}).get("detector", {})
    last = _last_interval(lambda_detector) or (live1 - timedelta(seconds=step))
    context_from = live0 - min(live1 - live0, timedelta(hours=6))  # some history in each plot, for comparison
    scores, replay_state = replay_scores(spec, history_records, live_records, live0, last, context_from)
    state_matches = json.loads(json.dumps(replay_state)) == lambda_detector
    if not state_matches:
        notes.append(
            "The expected bands were recomputed with the detector core from the same S3 objects, but the recomputed "
            "model differs from the state the detector Lambda saved: plots may differ slightly from what it scored."
        )

    detections, false_alerts = match_detections(labels, alerts, step)
    panels = build_panels(spec, labels, alerts, scores, step, live0)
    rows = report.ReportData(
        title=f"Metric Sentinel — offline demo ({spec.preset})",
        subtitle=(
            f"{spec.description}. {len(ents)} locations, {options.days:g} days of history, then "
            f"{len(intervals)} live intervals ({_fmt(live0)} → {_fmt(live1)} UTC, simulated time) streamed through "
            "the synthesized stack on moto. Nothing touched a real AWS account."
        ),
        parameters=[
            ("preset", spec.preset),
            ("seed", str(options.seed)),
            ("history", f"{options.days:g} d"),
            ("live", f"{options.hours:g} h"),
            ("locations", str(len(ents))),
            ("injected anomalies", str(len({(lb.start, lb.kind) for lb in labels}))),
            ("severity threshold", f"{spec.severity_threshold:g}"),
        ],
        summary=summary_cards(counts, detections, false_alerts),
        detections=detections,
        panels=panels,
        alerts=[_alert_entry(a) for a in alerts],
        bucket=bucket,
        s3_tree=report.prefix_counts(objects),
        errors=errors,
        flow=flow_steps(spec, pipeline, bucket, offset),
        notes=notes,
    )
    report_path = report.write_report(rows, out / "report.html")
    _write_alerts(out / "alerts.jsonl", alerts)
    from simulator.console_state import STATE_FILE, ConsoleState

    # What `make console` serves: the anomaly table's items and the detector's state, out of this moto.
    ConsoleState.capture(pipeline.client("dynamodb"), s3, detector_env, pipeline.region).save(out / STATE_FILE)
    return DemoResult(
        options=options,
        spec=spec,
        bucket=bucket,
        counts=counts,
        labels=labels,
        alerts=alerts,
        detections=detections,
        errors=errors,
        panels=panels,
        objects=objects,
        report_path=report_path,
        notes=notes,
        state_matches=state_matches,
        false_alerts=false_alerts,
        synthesized=synthesized,
    )


def _fmt(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")


def _last_interval(state: dict[str, Any]) -> datetime | None:
    """The last interval the detector Lambda scored, from the model state it saved."""
    if not state:
        return None
    from sentinel_core.detector import Detector

    last = Detector.from_state(state).last_interval
    return to_utc(last) if last is not None else None


def _error_entries(
    pipeline: Any, s3: Any, bucket: str, spec: PipelineSpec, objects: list[tuple[str, int]], counts: Counts
) -> list[report.ErrorEntry]:
    """Each error document under the error prefix with its reason, re-derived by the transform's own code."""
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
        for line in _lines(read_text(s3, bucket, key)):
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
    import base64

    try:
        return base64.b64decode(text).decode("utf-8", "replace")
    except ValueError:
        return text


def match_detections(
    labels: Sequence[datagen.Label], alerts: Sequence[ReceivedAlert], step: int
) -> tuple[list[report.DetectionRow], int]:
    """Each injected label with the first alert naming its series within its window (plus a short grace)."""
    grace = timedelta(seconds=DETECTION_GRACE_INTERVALS * step)
    rows: list[report.DetectionRow] = []
    used: set[int] = set()
    for lab in labels:
        first: ReceivedAlert | None = None
        worst: float | None = None
        for i, a in enumerate(alerts):
            hits = [
                s for s in a.series if s["timeSeriesId"] == lab.series_id and lab.start <= a.interval <= lab.end + grace
            ]
            if not hits:
                continue
            used.add(i)
            first = first or a
            top = max(float(s["score"]) for s in hits)
            worst = top if worst is None else max(worst, top)
        rows.append(
            report.DetectionRow(
                series=lab.series.label,
                kind=lab.kind,
                start=lab.start,
                end=lab.end,
                magnitude=lab.magnitude,
                detected_at=first.delivered_at if first else None,
                severity=worst,
            )
        )
    return rows, len(alerts) - len(used)


def build_panels(
    spec: PipelineSpec,
    labels: Sequence[datagen.Label],
    alerts: Sequence[ReceivedAlert],
    scores: dict[str, list[PointScore]],
    step: int,
    live_start: datetime,
) -> list[report.SeriesPanel]:
    alerted: dict[tuple[str, datetime], float] = {}
    for a in alerts:
        for s in a.series:
            alerted[(s["timeSeriesId"], a.interval)] = float(s["score"])
    first_event: dict[str, datetime] = {}
    for lab in labels:
        first_event[lab.series_id] = min(first_event.get(lab.series_id, lab.start), lab.start)
    for sid, ts in alerted:
        first_event[sid] = min(first_event.get(sid, ts), ts)
    panels: list[report.SeriesPanel] = []
    for sid in sorted(first_event, key=lambda s: (first_event[s], s)):
        key = SeriesKey.parse(sid)
        unit = spec.measure(key.measure).unit if key.measure in spec.measure_names else ""
        points = [
            report.SeriesPoint(
                timestamp=p.timestamp,
                value=p.value,
                expected=p.expected,
                lower=p.lower,
                upper=p.upper,
                score=p.score,
                anomalous=_is_anomalous(p) and to_utc(p.timestamp) >= live_start,
                alerted=(sid, to_utc(p.timestamp)) in alerted,
                warming_up=p.warming_up,
                live=to_utc(p.timestamp) >= live_start,
            )
            for p in scores.get(sid, [])
            if p.value == p.value  # a missing interval has no value to draw
        ]
        panels.append(
            report.SeriesPanel(
                series_id=sid,
                title=f"{key.label} ({unit})" if unit else key.label,
                unit=unit,
                points=points,
                injected=[
                    report.InjectedWindow(lb.start, lb.end, lb.kind, lb.magnitude)
                    for lb in labels
                    if lb.series_id == sid
                ],
                interval_seconds=step,
                threshold=spec.severity_threshold,
            )
        )
    return panels


def summary_cards(
    counts: Counts, detections: Sequence[report.DetectionRow], false_alerts: int
) -> list[tuple[str, str]]:
    found = sum(1 for d in detections if d.detected_at is not None)
    delays = [d.minutes_to_detect for d in detections if d.minutes_to_detect is not None]
    median = sorted(delays)[len(delays) // 2] if delays else None
    return [
        ("device messages published", f"{counts.published:,}"),
        ("records delivered to S3", f"{counts.delivered:,}"),
        ("records failed (error prefix)", f"{counts.failed + counts.rule_errors:,}"),
        ("records lost", f"{counts.lost:,}"),
        ("intervals scored", f"{counts.intervals_scored:,}"),
        ("alerts sent", f"{counts.alerts:,}"),
        ("injected anomalies detected", f"{found} / {len(detections)}"),
        ("median time to detect", f"{median:.0f} min" if median is not None else "–"),
        ("alerts outside injected windows", f"{false_alerts:,}"),
        ("commands sent to devices", f"{counts.commands:,}"),
    ]


def flow_steps(spec: PipelineSpec, pipeline: Any, bucket: str, offset: int) -> list[str]:
    rule = pipeline.rules[0] if pipeline.rules else None
    fh = next(iter(pipeline.firehoses.values()), None)
    steps = [
        f"Each location's sensor publishes one JSON reading per {spec.interval} interval on "
        f"{spec.telemetry_topic('<location>')} (MQTT).",
    ]
    if rule is not None:
        steps.append(f"IoT Core topic rule {rule.name}: topic filter '{rule.sql.topic_filter}', the rule's SQL, "
                     "Firehose action (errors to the rule's error action).")  # fmt: skip
    if fh is not None:
        steps.append(
            f"Firehose {fh.name}: {fh.interval_seconds} s buffer, the transform Lambda (real handler) validates and "
            f"partitions by the record's own interval into s3://{bucket}/{fh.prefix} ; rejects go to {fh.error_prefix}."
        )
    steps += [
        f"EventBridge schedule runs the detector Lambda (real handler) every interval, {offset} s after it closes: "
        "it reads exactly that interval's folder, scores every series, groups anomalies and stores them (DynamoDB).",
        "Alerts at or above the severity threshold: one SNS publish (KMS topic) with an SMS line, an e-mail text and "
        "Lookout for Metrics' JSON.",
        f"The automation Lambda (subscribed to the topic) sends a command to {spec.command_topic('<location>')}.",
    ]
    return steps


def _alert_entry(a: ReceivedAlert) -> report.AlertEntry:
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


def _write_alerts(path: Path, alerts: Sequence[ReceivedAlert]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for a in alerts:
            fh.write(
                json.dumps(
                    {
                        "delivered_at": a.delivered_at.isoformat(),
                        "subject": a.subject,
                        "sms": a.sms,
                        "email": a.email,
                        "lookout": a.lookout,
                        "commands": [{"topic": t, "payload": p} for t, p in a.commands],
                    },
                    sort_keys=True,
                )
                + "\n"
            )
