"""The offline console in a real browser: Debian's headless Chromium (Selenium, the system chromedriver) opens the
console the demo's state is served by (`python -m simulator console`, its own process), lists the demo's anomaly
groups, opens one (plots and contribution bars drawn), presses "Not an anomaly", runs the detector on the next
interval from the runs page, and the group page then shows the verdict applied; the detector's saved state and the
feedback record agree. Screenshots go to docs/console/ (the README shows them) when CONSOLE_SCREENSHOTS is set,
else to the test's tmp folder."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sentinel_core import store

from simulator.console_state import STATE_FILE, ConsoleState
from simulator.demo import DemoOptions, run_demo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    out = tmp_path_factory.mktemp("console-demo")
    synth_dir = Path(str(request.config.cache.mkdir("console-demo-cdk-out"))) if request.config.cache else None
    run_demo(DemoOptions(days=2, hours=3, locations=3, seed=11, anomalies=2, out=out, synth_dir=synth_dir))
    assert (out / STATE_FILE).exists()
    return out


@pytest.fixture
def console_url(demo_out: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "console.log").open("wb")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "console", "--port", str(port), "--out", str(demo_out)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}/"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(url + "config.json", timeout=2) as resp:  # noqa: S310 - localhost
                    assert json.loads(resp.read())["mode"] == "offline"
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "console.log").read_text()) from None
                time.sleep(0.5)
        else:
            raise AssertionError("the offline console did not start within a minute")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), "run `make browser` (Debian's chromium)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_list_open_mark_not_an_anomaly_and_the_next_run_applies_it(
    console_url: str, browser: object, demo_out: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(browser, WebDriver)
    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)  # README: CONSOLE_SCREENSHOTS=docs/console
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 30)

    def ready(route: str) -> None:
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == route)

    # the groups list: offline label, the demo's groups, the severity slider filters them
    browser.get(console_url)
    ready("#/groups")
    assert "OFFLINE" in browser.find_element(By.ID, "mode").text
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.group-row")
    state = ConsoleState.load(demo_out / STATE_FILE)
    groups = [i for i in state.items if i["sk"]["S"].startswith("GROUP#")]
    above = [g for g in groups if float(g["score"]["N"]) >= 50]
    assert above and len(rows) == min(len(above), 25)
    browser.save_screenshot(str(shots / "groups.png"))
    slider = browser.find_element(By.ID, "severity")
    browser.execute_script("arguments[0].value = 100; arguments[0].dispatchEvent(new Event('input'))", slider)
    wait.until(lambda d: "severity ≥ 100" in d.find_element(By.ID, "groups-stats").text)
    top = [g for g in groups if float(g["score"]["N"]) >= 100]
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.group-row")) == min(len(top), 25))

    # a group page: one plot per series, contribution bars, feedback buttons
    browser.get(console_url)
    ready("#/groups")
    first = browser.find_element(By.CSS_SELECTOR, "tr.group-row")
    group_id = first.get_attribute("data-group")
    first.find_element(By.TAG_NAME, "a").click()
    ready(f"#/group/{group_id}")
    sections = browser.find_elements(By.CSS_SELECTOR, "section.series")
    assert sections
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.series canvas")) >= len(sections)  # uPlot drew
    assert browser.find_elements(By.CSS_SELECTOR, ".contrib meter")
    series_id = sections[0].get_attribute("data-series")
    browser.save_screenshot(str(shots / "group.png"))
    sections[0].find_element(By.CSS_SELECTOR, "button.fb-no").click()
    status = sections[0].find_element(By.CSS_SELECTOR, ".fb-status")
    wait.until(lambda d: status.get_attribute("data-status") == "PENDING")
    assert "not an anomaly" in status.text

    # the runs page: run the detector on the next interval, which applies the feedback
    browser.get(console_url + "#/runs")
    ready("#/runs")
    before = len(browser.find_elements(By.CSS_SELECTOR, "tr.run"))
    assert before > 0 and browser.find_elements(By.CSS_SELECTOR, "tr.run-completed")
    browser.find_element(By.ID, "run-next").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "runs-note"), "1 feedback verdict(s) applied"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.run")) == before + 1  # the new interval is listed
    browser.save_screenshot(str(shots / "runs.png"))

    browser.get(console_url + f"#/group/{group_id}")
    ready(f"#/group/{group_id}")
    section = next(
        s
        for s in browser.find_elements(By.CSS_SELECTOR, "section.series")
        if s.get_attribute("data-series") == series_id
    )
    applied = section.find_element(By.CSS_SELECTOR, ".fb-status")
    assert applied.get_attribute("data-status") == "APPLIED", applied.text
    assert "applied by the detector" in applied.text

    # what the browser showed is what the saved state holds: the record applied, the model remembers it
    saved = ConsoleState.load(demo_out / STATE_FILE)
    (fb,) = [i for i in saved.items if i["sk"]["S"] == f"FEEDBACK#{group_id}#{series_id}"]
    assert fb["status"]["S"] == "applied" and fb["is_anomaly"]["BOOL"] is False
    (blob,) = [body for key, body in saved.objects.items() if key.endswith(store.STATE_FILE)]
    model, _series = store.read_state(io.BytesIO(blob))
    assert any(token.startswith(f"{group_id}|{series_id}|") for token in model["feedback_applied"])
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors  # no CSP violation, no script error
