"""`python -m simulator demo --preset loyalty` end to end (small): the upload is backtested and its labels found."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from simulator.demo_presets import run_loyalty_demo


@pytest.mark.slow
def test_loyalty_demo_finds_the_injected_anomalies(tmp_path: Path) -> None:
    buf = io.StringIO()
    rc = run_loyalty_demo(Console(file=buf, width=200), tmp_path, seed=7, locations=6, days=240)
    text = buf.getvalue()
    assert rc == 0, text
    assert "summary alert" in text and "missing_column" in text and "duplicate" in text
    found, total = text.split("injected anomalies found: ")[1].split(" ")[0:3:2]
    assert int(total) > 0 and int(found) >= int(total) - 1, text
    assert (tmp_path / "data" / "loyalty.csv").exists() and (tmp_path / "lambda-logs.jsonl").stat().st_size > 0
