"""The session pages in a real headless browser (Debian's chromium driven by Playwright), on two
weeks of nights with three dialysis sessions a week sent through the real ingest path: every
session page at desktop (1280 px) and phone (390 px) width fits the screen with readable text and
drawn charts; the session's two charts share their time axis; the details form and the start and
end buttons work, the form through the request guard with its token. Screenshots are saved in
$CRAMPWATCH_SCREENSHOTS (default <tmp>/crampwatch-screenshots) for people to look at."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards.server import DashboardProcess, build
from tests.dashboard_scenes import two_weeks
from tests.dialysis_scenes import SessionScene, dialysis_weeks
from tests.test_dashboard_browser import (  # noqa: F401 (the browser fixture)
    WIDTHS,
    browser,
    check_page_fits,
    serve,
)

TZ = ZoneInfo("Europe/Berlin")
LAST = date(2026, 11, 20)
FIRST = LAST - timedelta(days=13)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DashboardProcess, list[SessionScene], str]]:
    process = build(tmp_path_factory.mktemp("sessions") / "dashboard.db", broker=None, tz=TZ,
                    min_nights=3, min_sessions=4, demo=True)  # fmt: skip
    two_weeks(process, LAST, TZ)
    scenes = dialysis_weeks(process, FIRST, LAST, TZ)
    process.sessions.log({"start": f"{LAST}T13:00", "end": f"{LAST}T16:30",
                          "pre_weight_kg": 72.2, "note": "logged, not recorded"}, "api")  # fmt: skip
    server, thread, url = serve(process)
    yield process, scenes, url
    server.should_exit = True
    thread.join(timeout=5)
    process.close()


def _pages(scenes: list[SessionScene]) -> dict[str, str]:
    most = max(scenes, key=lambda s: len(s.cramps))
    return {
        "sessions": f"/sessions?first={FIRST}&last={LAST}",
        "session": f"/sessions/{most.session_id}",
        "session-ended-early": f"/sessions/{scenes[3].session_id}",
        "session-not-recorded": f"/sessions/dialysis-{LAST:%Y%m%d}T120000Z",
        "night-beside-a-session": f"/nights/{(most.start - timedelta(days=1)).date()}",
        "report-with-sessions": f"/report?first={FIRST}&last={LAST}&name=A.%20Patient",
    }


PAGES = ("sessions", "session", "session-ended-early", "session-not-recorded",
         "night-beside-a-session", "report-with-sessions")  # fmt: skip


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", PAGES)
def test_every_session_page_fits_the_screen_with_readable_text_and_drawn_charts(
    browser,  # noqa: F811 (the fixture)
    served,
    screenshots: Path,
    name: str,
    width: str,
) -> None:
    _process, scenes, url = served
    check_page_fits(browser, url + _pages(scenes)[name], width, screenshots / f"{name}-{width}.png")


def test_the_sessions_timeline_and_its_blood_pressure_share_the_time_axis(
    browser,  # noqa: F811 (the fixture)
    served,
) -> None:
    _process, scenes, url = served
    for width in WIDTHS.values():
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(url + _pages(scenes)["session"])
        page.wait_for_selector("#measures[data-drawn=true]")
        page.wait_for_selector("#timeline[data-drawn=true]")
        areas = page.evaluate(
            "() => ['timeline', 'measures'].map((id) => { const a = Chart.getChart(id).chartArea;"
            " return [a.left, a.right]; })"
        )
        assert areas[0] == pytest.approx(areas[1], abs=1.5), (width, areas)
        page.close()


def test_the_details_form_saves_through_the_guard_and_says_what_to_correct(
    browser,  # noqa: F811 (the fixture)
    served,
) -> None:
    process, scenes, url = served
    scene = scenes[0]
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(f"{url}/sessions/{scene.session_id}")
    page.fill("#sodium", "13.8")
    page.click("#details-form button[type=submit]")
    page.wait_for_selector("#details-error")
    assert "dialysate sodium is set at about 135-145" in (page.text_content("#details-error") or "")
    assert page.input_value("#sodium") == "13.8"  # what was typed stays
    page.fill("#sodium", "137")
    page.fill("#bp", "07:30 150/88\n10:40 84/52 pulse 101 uf 2100")
    page.click("#details-form button[type=submit]")
    page.wait_for_selector("#figure-nadir >> text=84")
    assert "below 90 mmHg" in (page.text_content("#context") or "")
    details = process.queries.sessions.data().named[0].details
    assert details.dialysate_sodium_mmol_l == 137.0 and len(details.blood_pressure) == 2
    assert dict(process.app.state.dashboard.guard.refused).get("csrf", 0) == 0
    page.close()


def test_a_session_is_started_and_ended_from_the_dashboard(
    browser,  # noqa: F811 (the fixture)
    served,
) -> None:
    _process, _scenes, url = served
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.goto(f"{url}/sessions")
    page.click("#start-dialysis")
    page.wait_for_selector("#in-progress")
    session_url = page.url
    page.click("#in-progress .end-session")
    page.wait_for_load_state("load")
    assert page.url == session_url and page.locator("#in-progress").count() == 0
    page.goto(f"{url}/sessions")
    assert page.locator(".session-open").count() == 0
    page.close()
