"""`python -m simulator demo --preset ecommerce` end to end (small): the broken checkout is detected, nothing lost."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from simulator.demo_presets import run_ecommerce_demo


@pytest.mark.slow
def test_ecommerce_demo_detects_the_broken_checkout(tmp_path: Path) -> None:
    buf = io.StringIO()
    rc = run_ecommerce_demo(Console(file=buf, width=200), tmp_path, seed=7, combinations=3, days=7, hours=2.5)
    text = buf.getvalue()
    assert rc == 0, text  # every page view accounted for
    assert "lost 0" in text
    found, total = text.split("injected anomalies found: ")[1].split(" ")[0:3:2]
    assert (int(found), int(total)) == (1, 1), text  # the web checkout of the one market
    assert "Sentinel ALERT" in text and "checkout" in text
