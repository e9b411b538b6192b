"""End to end in a real headless browser (Debian's chromium driven by Playwright): the device
daemon publishes through a real Mosquitto, the dashboard ingests, the page shows the cramp; intake
added through the form shows up in the intake log and the insights."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import uvicorn

from dashboards.server import DashboardProcess, build
from firmware_host.cli import main
from firmware_host.demo.local_broker import Mosquitto, free_port
from hardware.synthetic_emg import SyntheticEMG, scenario
from tests.broker import Collector

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: ./run.sh test installs the Debian package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[DashboardProcess, str]]:
    process = build(tmp_path / "dashboard.db", broker=("127.0.0.1", mosquitto.port),
                    tz=ZoneInfo("UTC"), min_nights=1)  # fmt: skip
    assert process.mqtt is not None and process.mqtt.connected.wait(10)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(process.app, host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield process, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)
    process.close()


@pytest.fixture(scope="module")
def cramp_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = scenario(5, fs=1000.0, duration_s=100.0, channels=("left_calf", "right_calf"),
                    events=[("cramp", 30.0, 60.0, "left_calf")])  # fmt: skip
    path = tmp_path_factory.mktemp("browser") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=5).render())
    return path


def test_a_cramp_published_by_the_device_appears_on_the_overview_within_two_seconds(
    browser, dashboard, mosquitto: Mosquitto, cramp_night: Path, tmp_path: Path
) -> None:
    _process, url = dashboard
    page = browser.new_page()
    page.goto(url + "/")
    collector = Collector(mosquitto, "crampwatch/+/event")
    arrived: dict[str, float] = {}
    real_on_message = collector.client.on_message

    def on_message(client, userdata, message) -> None:
        if b'"phase":"ended"' in message.payload and b'"kind":"cramp"' in message.payload:
            arrived.setdefault("ended", time.monotonic())
        real_on_message(client, userdata, message)

    collector.client.on_message = on_message
    argv = ["run", "--play", str(cramp_night), "--signal-fs", "1000", "--signal-units", "uV",
            "--speed", "20", "--broker", mosquitto.address, "--outbox", str(tmp_path / "o.db"),
            "--device", "bedroom", "--no-record"]  # fmt: skip
    runner = threading.Thread(target=main, args=(argv,))
    runner.start()
    row = page.wait_for_selector("#night-events tr.event-row.cramp >> text=cramp", timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#night-events tr.cramp')]"
        ".some(r => !r.textContent.includes('in progress'))",
        timeout=30_000,
    )
    shown = time.monotonic()
    runner.join(timeout=60)
    assert "ended" in arrived, "the subscriber never saw the cramp's ended message"
    assert shown - arrived["ended"] <= 2.0
    assert row is not None and page.locator("#timeline svg rect.cramp").count() >= 1
    collector.close()
    page.close()


def test_intake_added_in_the_form_shows_in_the_log_and_the_insights(browser, dashboard) -> None:
    _process, url = dashboard
    page = browser.new_page()
    page.goto(url + "/intake")
    page.fill("input[name=factor]", "magnesium")
    page.fill("input[name=amount]", "300 mg")
    page.fill("input[name=note]", "<img src=x onerror=alert(1)> evening tablet")
    page.click("#intake-form button[type=submit]")
    page.wait_for_selector("#intake-message.ok")
    page.wait_for_selector("#intake-log td.note >> text=evening tablet")
    assert page.locator("#intake-log img").count() == 0  # shown as text
    note = page.locator("#intake-log td.note").first.text_content()
    assert note is not None and note.startswith("<img src=x")
    page.fill("input[name=factor]", "magnesium")
    page.fill("input[name=amount]", "300 mL")
    page.click("#intake-form button[type=submit]")
    page.wait_for_selector("#intake-message.error")
    assert "volume" in (page.locator("#intake-message").text_content() or "")
    page.goto(url + "/insights")
    assert page.locator("#insights-table tr[data-factor=magnesium]").count() == 2  # two lags
    page.close()
