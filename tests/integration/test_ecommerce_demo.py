"""`python -m simulator demo --preset ecommerce` end to end (small): the broken checkout is detected, nothing lost,
the same outputs as the air-quality demo written, and --days / --locations honoured."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sentinel_core.records import parse_timestamp

from simulator.demo import DemoOptions, DemoResult, run_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> DemoResult:
    out = tmp_path_factory.mktemp("ecommerce-demo")
    synth_dir = Path(str(request.config.cache.mkdir("demo-cdk-out-ecommerce"))) if request.config.cache else None
    options = DemoOptions.for_preset("ecommerce", days=7, hours=2.5, locations=3, out=out, synth_dir=synth_dir)
    return run_demo(options)


def test_the_broken_checkout_is_detected_and_nothing_lost(result: DemoResult) -> None:
    assert result.failures == []
    c = result.counts
    assert c.published > 0 and c.lost == 0 and c.pending == 0
    assert c.s3_data_lines == c.published == c.firehose_in  # counted from S3, and the ledger agrees
    assert [d.series for d in result.detections] == [lb.series.label for lb in result.labels]
    assert (result.found, len(result.detections)) == (1, 1)  # the web checkout of the one market
    (det,) = result.detections
    # an outage to zero: no record reached S3 for it, the detector zero-filled the views and alerted within two
    # intervals (PT10M) of its start
    assert det.magnitude == -1.0
    assert det.minutes_to_detect is not None and det.minutes_to_detect <= 2 * 10 + 5, det
    assert det.severity is not None and det.severity >= result.spec.severity_threshold
    assert result.false_alerts == 0
    assert any("checkout" in a.sms and a.sms.startswith("Sentinel ALERT") for a in result.alerts)
    assert result.state_matches, "the recomputed bands must come from the same model the Lambda saved"


def test_days_and_locations_are_honoured(result: DemoResult) -> None:
    history = (result.options.out / "data" / "historical_data.json").read_text(encoding="utf-8").splitlines()
    series = {tuple(json.loads(line)[d] for d in result.spec.dimensions) for line in history}
    stamps = sorted(json.loads(line)[result.spec.timestamp_column] for line in history)
    assert len(series) == 3
    first, last = (parse_timestamp(s) for s in (stamps[0], stamps[-1]))
    assert timedelta(days=6.9) <= last - first <= timedelta(days=7)


def test_report_and_alerts_are_written(result: DemoResult) -> None:
    out = result.options.out
    lines = (out / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(result.alerts) >= 1
    html = result.report_path.read_text(encoding="utf-8")
    affected = {lb.series_id for lb in result.labels} | {s["timeSeriesId"] for a in result.alerts for s in a.series}
    assert len(result.panels) == len(affected) == html.count("<img ")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert f"s3://{result.bucket}/" in html and "live/" in html  # the S3 tree
    assert (out / "lambda-logs.jsonl").stat().st_size > 0
