"""The dashboard in a real headless browser (Debian's chromium driven by Playwright).

End to end: the device daemon publishes through a real Mosquitto, the dashboard ingests, the
overview shows the cramp. Every page at desktop and phone width, on two weeks of data sent
through the real ingest path: no horizontal scrolling at 390 px, readable text, the charts drawn
by the served Chart.js; the patient's answers (forms that pass the request guard with its token,
and a forged one that does not), intake mistakes caught in the form, delete that asks first,
live updates, and the report printed to PDF by Chromium. Screenshots of every page
at both widths are saved in $CRAMPWATCH_SCREENSHOTS (default <tmp>/crampwatch-screenshots; the
run prints the folder) for people to look at."""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
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
from tests.dashboard_scenes import NO_DATA_BACK, Scene, event, send, two_weeks

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDTHS = {"desktop": 1280, "phone": 390}
TZ = ZoneInfo("Europe/Berlin")
LAST = date(2026, 11, 20)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: ./run.sh test installs the Debian package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def serve(process: DashboardProcess) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(process.app, host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def dashboard(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[DashboardProcess, str]]:
    process = build(tmp_path / "dashboard.db", broker=("127.0.0.1", mosquitto.port),
                    tz=ZoneInfo("UTC"), min_nights=1)  # fmt: skip
    assert process.mqtt is not None and process.mqtt.connected.wait(10)
    server, thread, url = serve(process)
    yield process, url
    server.should_exit = True
    thread.join(timeout=5)
    process.close()


@pytest.fixture(scope="module")
def two_weeks_served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DashboardProcess, Scene, str]]:
    """Two weeks of a patient's data (tests.dashboard_scenes), served on loopback."""
    process = build(tmp_path_factory.mktemp("pages") / "dashboard.db", broker=None, tz=TZ,
                    min_nights=3, demo=True)  # fmt: skip
    scene = two_weeks(process, LAST, TZ)
    server, thread, url = serve(process)
    yield process, scene, url
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
    page.wait_for_selector("#cramps .cramp-item", timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#cramps .cramp-item')]"
        ".some(r => !r.textContent.includes('in progress'))",
        timeout=30_000,
    )
    shown = time.monotonic()
    runner.join(timeout=60)
    assert "ended" in arrived, "the subscriber never saw the cramp's ended message"
    assert shown - arrived["ended"] <= 2.0
    assert page.locator("#timeline[data-drawn=true]").count() == 1
    collector.close()
    page.close()


def test_intake_added_in_the_form_shows_in_the_log_and_the_insights(browser, dashboard) -> None:
    _process, url = dashboard
    page = browser.new_page()
    page.goto(url + "/intake")
    page.fill("#factor-input", "magnesium")
    page.fill("#amount-input", "300 mg")
    page.fill("#note-input", "<img src=x onerror=alert(1)> evening tablet")
    page.click("#intake-submit")
    page.wait_for_selector("#intake-message.ok")
    page.wait_for_selector("#intake-log td.note >> text=evening tablet")
    assert page.locator("#intake-log img").count() == 0  # shown as text
    note = page.locator("#intake-log td.note").first.text_content()
    assert note is not None and note.startswith("<img src=x")
    page.fill("#factor-input", "magnesium")
    page.fill("#amount-input", "300 mL")
    page.click("#intake-submit")
    page.wait_for_selector("#intake-message.error")
    assert "volume" in (page.locator("#intake-message").text_content() or "")
    page.goto(url + "/insights")
    assert page.locator("#insights-table tr[data-factor=magnesium]").count() == 2  # two lags
    page.close()


# -- every page, both widths ------------------------------------------------------------------


def _pages(scene_last: date) -> dict[str, str]:
    return {
        "overview": "/",
        "nights": f"/nights?first={scene_last - timedelta(days=13)}&last={scene_last}",
        "nights-overlay": f"/nights?first={scene_last - timedelta(days=13)}&last={scene_last}&factor=magnesium",
        "nights-cut-to-a-year": f"/nights?first=2024-01-01&last={scene_last}",
        "night": f"/nights/{scene_last}",
        "night-no-data": f"/nights/{scene_last - timedelta(days=NO_DATA_BACK)}",
        "cramp": "/events/long-left_calf",
        "cramp-both-calves": "/events/both-left_calf",
        "intake": "/intake",
        "insights": "/insights",
        "report": f"/report?first={scene_last - timedelta(days=13)}&last={scene_last}&name=A.%20Patient",
        "device": "/status",
        "not-found": "/no-such-page",
        "bad-period": "/report?first=2026-11-20&last=2026-11-01",
    }


PAGES = list(_pages(LAST))
FITS = """() => {
  const wide = document.documentElement.scrollWidth;
  const small = [...document.querySelectorAll('body *')].filter((node) => {
    if (!node.childNodes.length || ![...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim())) return false;
    const box = node.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && parseFloat(getComputedStyle(node).fontSize) < 12;
  }).map((node) => node.tagName + ': ' + node.textContent.trim().slice(0, 30));
  return { wide, small };
}"""


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_the_screen_with_readable_text_and_drawn_charts(
    browser, two_weeks_served, screenshots: Path, name: str, width: str
) -> None:
    _process, _scene, url = two_weeks_served
    expected = {"not-found": 404, "bad-period": 400}.get(name, 200)
    check_page_fits(browser, url + _pages(LAST)[name], width, screenshots / f"{name}-{width}.png",
                    status=expected)  # fmt: skip


def check_page_fits(browser, address: str, width: str, shot: Path, *, status: int = 200) -> None:
    """Open a page at a screen width: the status, every chart drawn, nothing wider than the screen,
    no text under 12 px, no script error; its full-page screenshot saved as `shot`."""
    page = browser.new_page(viewport={"width": WIDTHS[width], "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(address)
    assert response is not None and response.status == status, address
    canvases = page.locator("canvas[data-chart]").count()
    if canvases:
        page.wait_for_function(
            f"() => document.querySelectorAll('canvas[data-drawn=true]').length === {canvases}",
            timeout=10_000,
        )
    fits = page.evaluate(FITS)
    page.screenshot(path=str(shot), full_page=True)
    name = shot.stem
    assert fits["wide"] <= WIDTHS[width], f"{name} is {fits['wide']} px wide at {WIDTHS[width]} px"
    assert not fits["small"], f"text under 12 px on {name}: {fits['small'][:5]}"
    assert not errors, errors
    page.close()


# -- doing things ------------------------------------------------------------------------------


def test_answering_a_cramp_takes_it_out_of_the_night_and_can_be_undone(
    browser, two_weeks_served
) -> None:
    _process, _scene, url = two_weeks_served
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(f"{url}/nights/{LAST}")
    before = int(page.locator("#figure-cramps").text_content() or "0")
    item = page.locator(".cramp-item[data-event='long-left_calf']")
    item.locator("button[value=not_cramp]").click()
    page.wait_for_selector(".cramp-item.rejected[data-event='long-left_calf']")
    assert int(page.locator("#figure-cramps").text_content() or "0") == before - 1
    assert "left out of every figure" in (page.locator(".summary").text_content() or "")
    page.locator(".cramp-item[data-event='long-left_calf'] button[value=none]").click()
    page.wait_for_selector(".cramp-item[data-event='long-left_calf'] button[value=not_cramp]")
    assert int(page.locator("#figure-cramps").text_content() or "0") == before
    page.close()


def test_a_button_press_without_a_detection_can_be_reported_as_a_missed_cramp(
    browser, two_weeks_served
) -> None:
    _process, _scene, url = two_weeks_served
    page = browser.new_page()
    page.goto(f"{url}/nights/{LAST}")
    before = int(page.locator("#figure-cramps").text_content() or "0")
    assert page.locator("#markers li").count() == 2
    page.locator(
        "#markers button[value=missed_cramp]"
    ).click()  # only the unexplained press has one
    page.wait_for_selector("#markers >> text=a cramp the sensor missed")
    assert int(page.locator("#figure-cramps").text_content() or "0") == before + 1
    page.locator("#markers button[value=none]").click()
    page.wait_for_selector("#markers button[value=missed_cramp]")
    page.close()


def test_the_pages_changes_pass_the_request_guard_and_a_forged_answer_does_not(
    browser, two_weeks_served
) -> None:
    process, _scene, url = two_weeks_served
    guard = process.app.state.dashboard.guard
    refused = dict(guard.refused)
    page = browser.new_page()
    page.goto(f"{url}/nights/{LAST}")
    cramp = ".cramp-item[data-event='both-right_calf']"
    page.locator(f"{cramp} button[value=cramp]").click()  # the form, posted by the browser
    page.wait_for_selector(f"{cramp} .said.yes")
    page.goto(url + "/intake")
    page.fill("#factor-input", "water")
    page.fill("#amount-input", "2 glasses")
    page.click("#intake-submit")  # the script, through the JSON API
    page.wait_for_selector("#intake-message.ok >> text=500 mL water")
    assert dict(guard.refused) == refused  # both went through the guard
    page.goto(f"{url}/nights/{LAST}")
    page.evaluate("document.querySelectorAll('form.answer input[name=csrf_token]')"
                  ".forEach((field) => { field.value = 'a guess'; })")  # fmt: skip
    with page.expect_navigation() as forged:
        page.locator(f"{cramp} button[value=none]").click()
    assert forged.value is not None and forged.value.status == 403
    assert guard.refused["csrf"] == refused.get("csrf", 0) + 1
    page.goto(f"{url}/nights/{LAST}")
    assert page.locator(f"{cramp} .said.yes").count() == 1  # the forged answer changed nothing
    page.locator(f"{cramp} button[value=none]").click()  # take it back, for the other tests
    page.wait_for_selector(f"{cramp} button[value=cramp]")
    page.close()


def test_the_intake_form_asks_did_you_mean_and_explains_units(browser, two_weeks_served) -> None:
    _process, _scene, url = two_weeks_served
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(url + "/intake")
    assert "Water glass 250 mL" in " ".join(page.locator(".quick-add:visible").all_text_contents())
    page.fill("#factor-input", "water")
    page.fill("#amount-input", "3")
    page.wait_for_selector("#intake-preview.error >> text=has no unit")
    page.select_option("#unit-select", "glass")
    page.wait_for_selector("#intake-preview >> text== 750 mL water")
    page.fill("#factor-input", "magnesum")
    page.fill("#amount-input", "300")
    page.select_option("#unit-select", "")
    page.fill("#amount-input", "300 mg")
    page.click("#intake-submit")
    page.wait_for_selector("#intake-message >> text=did you mean magnesium")
    page.click(".use-suggestion")
    page.wait_for_selector("#intake-message.ok >> text=300 mg magnesium")
    page.wait_for_load_state("load")
    page.wait_for_selector("#intake-log >> text=300 mg")
    factors = page.evaluate("fetch('/api/factors').then(r => r.json())")
    assert "magnesum" not in [f["key"] for f in factors]
    page.close()


def test_deleting_an_intake_entry_asks_first(browser, two_weeks_served) -> None:
    process, _scene, url = two_weeks_served
    page = browser.new_page()
    page.goto(url + "/intake")
    rows = page.locator("#intake-log tbody tr").count()
    page.locator("#intake-log .delete").first.click()
    page.locator(".confirm .keep").click()  # changed my mind
    assert page.locator("#intake-log tbody tr").count() == rows
    assert len(process.store.intakes()) == rows
    page.locator("#intake-log .delete").first.click()
    page.locator(".confirm-delete").click()
    page.wait_for_selector("#intake-message.ok >> text=Deleted")
    assert len(process.store.intakes()) == rows - 1
    page.close()


def test_a_new_cramp_shows_on_the_open_night_page_without_reloading(
    browser, two_weeks_served
) -> None:
    process, _scene, url = two_weeks_served
    page = browser.new_page()
    page.goto(f"{url}/nights/{LAST}")
    page.evaluate("window.notReloaded = true")
    count = page.locator("#cramps .cramp-item").count()
    session = datetime.combine(LAST, datetime.min.time(), tzinfo=TZ) + timedelta(
        hours=22, minutes=30
    )
    send(process, "event", event(session, "right_calf", "cramp", 6 * 3600, 25.0, 90.0, "live"))
    page.wait_for_function(f"() => document.querySelectorAll('#cramps .cramp-item').length > {count}",
                           timeout=10_000)  # fmt: skip
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#timeline[data-drawn=true]").count() == 1
    page.close()


def test_the_report_prints_to_a_pdf_a_person_can_read(
    browser, two_weeks_served, screenshots: Path
) -> None:
    from pypdf import PdfReader

    _process, _scene, url = two_weeks_served
    page = browser.new_page()
    page.goto(url + _pages(LAST)["report"] + "&notes=magnesium%20since%203%20Nov")
    page.wait_for_selector("#report-chart[data-drawn=true]")
    page.emulate_media(media="print")
    # the print layout resizes the charts; Chart.js redraws them on the next animation frames
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame("
                  "() => requestAnimationFrame(done))))")  # fmt: skip
    pdf = page.pdf(format="A4", print_background=True)
    (screenshots / "report.pdf").write_bytes(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert 1 <= len(reader.pages) <= 6
    for words in ("Leg cramp report", "A. Patient", "magnesium since 3 Nov", "left calf",
                  "right calf", "no data", "Cramps", "Intake logged"):  # fmt: skip
        assert words in text, words
    for absent in ("Print or save as PDF", "Overview", "Yes, that was a cramp"):
        assert absent not in text, absent  # the site's controls stay off paper
    assert any(_has_image(p.get("/Resources")) for p in reader.pages), "the chart is not in it"
    page.close()


def test_the_charts_library_is_served_by_the_dashboard_with_its_licence(two_weeks_served) -> None:
    import httpx

    _process, _scene, url = two_weeks_served
    script = httpx.get(url + "/static/vendor/chart.umd.min.js")
    assert script.status_code == 200 and "Chart.js v4" in script.text[:200]
    assert "MIT" in httpx.get(url + "/static/vendor/chart.js-LICENSE.md").text
    html = httpx.get(url + "/").text
    assert "https://" not in html.split("<body")[0]  # nothing from a CDN


def _has_image(resources) -> bool:
    """Whether PDF resources hold an image, directly or inside a form XObject (the chart)."""
    if resources is None:
        return False
    for item in resources.get_object().get("/XObject", {}).values():
        xobject = item.get_object()
        if xobject.get("/Subtype") == "/Image":
            return True
        if xobject.get("/Subtype") == "/Form" and _has_image(xobject.get("/Resources")):
            return True
    return False
