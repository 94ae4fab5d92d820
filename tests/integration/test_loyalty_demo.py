"""`python -m simulator demo --preset loyalty` end to end (small), through the CLI: the upload is backtested, its
labels found, the same outputs as the air-quality demo written, and --days / --locations honoured."""

from __future__ import annotations

import csv
import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sentinel_core.spec import get_preset
from typer.testing import CliRunner

from simulator.demo.synth import load_pipeline

pytestmark = pytest.mark.slow

DAYS, STORES = 240, 6


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, int, str]:
    """(out, exit code, output) of one CLI run; the stack's assembly comes from pytest's cache when current."""
    from simulator.cli import app

    out = tmp_path_factory.mktemp("loyalty-demo")
    if request.config.cache is not None:  # the demo's own stamp check decides whether the cached one is current
        cached = Path(str(request.config.cache.mkdir("demo-cdk-out-loyalty")))
        load_pipeline(get_preset("loyalty"), cached)
        shutil.copytree(cached, out / "cdk.out")
    args = ["demo", "--preset", "loyalty", "--days", str(DAYS), "--locations", str(STORES), "--out", str(out)]
    res = CliRunner().invoke(app, args, terminal_width=200)
    return out, res.exit_code, res.output


def test_the_upload_is_backtested_and_its_labels_found(run: tuple[Path, int, str]) -> None:
    _out, code, text = run
    assert code == 0, text
    assert "Reused the synthesized" in text or "Synthesized" in text
    assert "missing_column" in text and "duplicate" in text  # the per-row error report, in the errors table
    detected = re.search(r"injected anomalies detected\s*│\s*(\d+) / (\d+)", text)
    assert detected, text
    found, total = map(int, detected.groups())
    assert total > 0 and found >= total - 1, text
    assert "LOST RECORDS" not in text and "pipeline failure" not in text


def test_days_and_locations_are_honoured(run: tuple[Path, int, str]) -> None:
    out, _code, _text = run
    with (out / "data" / "loyalty.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    per_day: dict[str, set[str]] = {}
    for r in rows:  # the bad rows appended at the end (a month 13, a missing field...) fall out here
        if _is_date(r["timestamp"]) and r.get("points_redeemed"):
            per_day.setdefault(r["timestamp"][:10], set()).add(r["location_id"])
    assert len(per_day) == DAYS
    assert all(len(stores) == STORES for stores in per_day.values())
    assert (out / "lambda-logs.jsonl").stat().st_size > 0


def _is_date(text: str) -> bool:
    try:
        datetime.strptime(text[:10], "%Y-%m-%d")
    except ValueError:
        return False
    return True


def test_report_and_alerts_are_written(run: tuple[Path, int, str]) -> None:
    out, _code, _text = run
    alerts = [json.loads(line) for line in (out / "alerts.jsonl").read_text(encoding="utf-8").splitlines()]
    summaries = [a for a in alerts if a["lookout"].get("type") == "backtestSummary"]
    assert len(summaries) == 1 and "backtest" in summaries[0]["subject"]
    threshold = get_preset("loyalty").severity_threshold
    assert all(a["lookout"]["anomalyScore"] >= threshold for a in alerts if a not in summaries)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<img ") >= 1 and html.count("<img ") == html.count("data:image/png;base64,")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "loyalty/uploads/" in html and "missing_column" in html  # the S3 tree and the per-row errors
    assert html.count("<div class='sms'>") == len(alerts)  # every alert as received, the summary included
