"""The dashboard's pages and their data without a browser: the night page, the cramp page, the
patient's word (and its export for `crampwatch evaluate`), stored per-night summaries, the
report's bounds and styled error pages, and intake that catches mistakes the same way on every
path in (form/API, MQTT, command line)."""

from __future__ import annotations

import json
import random
import re
import time as clock
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from dashboards.analysis import paired_days
from dashboards.night_summaries import summaries_of
from dashboards.server import build
from tests.dashboard_scenes import (
    CALM_BACK,
    INCOMPLETE_BACK,
    LOST_S,
    NO_DATA_BACK,
    PLMS_FROM_BACK,
    Scene,
    event,
    plms_tonight,
    send,
    state_payload,
    two_weeks,
)

TZ = ZoneInfo("Europe/Berlin")
LAST = date(2026, 11, 20)


@pytest.fixture
def dashboard(tmp_path: Path):
    process = build(tmp_path / "dashboard.db", broker=None, tz=TZ, min_nights=3)
    yield process
    process.close()


@pytest.fixture
def client(dashboard) -> TestClient:
    return TestClient(dashboard.app, base_url="http://127.0.0.1")  # a host the guard answers


def form_token(client: TestClient, path: str) -> str:
    """The CSRF token the page's answer forms carry (as a browser would send it)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, f"no answer form with a token on {path}"
    return found.group(1)


@pytest.fixture
def scene(dashboard) -> Scene:
    return two_weeks(dashboard, LAST, TZ)


def night_api(client: TestClient, day: date) -> dict:
    response = client.get(f"/api/nights/{day}")
    assert response.status_code == 200
    return response.json()


# -- the night --------------------------------------------------------------------------------


def test_the_night_page_puts_the_summary_first_and_lists_cramps_before_folded_movements(
    client: TestClient, scene: Scene
) -> None:
    html = client.get(f"/nights/{LAST}").text
    summary, cramps, movements = (html.index(s) for s in ('class="summary"', 'id="cramps"',
                                                          'id="movements"'))  # fmt: skip
    assert summary < cramps < movements
    assert "<details>" in html[movements:]  # folded away
    assert "Night of Fri 20 Nov 2026" in html
    assert f'href="/nights/{LAST - timedelta(days=1)}"' in html  # previous night
    data = night_api(client, LAST)
    assert data["summary"]["cramps"] == 3  # both calves at once count once
    assert data["summary"]["by_channel"]["left_calf"]["cramps"] == 3
    assert data["summary"]["by_channel"]["right_calf"]["cramps"] == 1
    assert len(data["movements"]) == 24
    assert data["next"] is None and data["previous"] == str(LAST - timedelta(days=1))


def test_the_timeline_has_one_lane_per_calf_on_clock_time(client: TestClient, scene: Scene) -> None:
    html = client.get(f"/nights/{LAST}").text
    start = html.index('id="timeline-data">') + len('id="timeline-data">')
    chart = json.loads(html[start : html.index("</script>", start)])
    assert chart["lanes"] == ["left calf", "right calf", "button"]
    assert {b["lane"] for b in chart["bars"] if b["kind"] == "cramp"} == {"left calf", "right calf"}
    onset = datetime.fromisoformat(scene.cramps["long_left"]["start"].replace("Z", "+00:00"))
    long = [b for b in chart["bars"] if b.get("href", "").endswith("long-left_calf")]
    assert long[0]["from"] == round(onset.timestamp() * 1000)
    assert chart["from"] <= long[0]["from"] < long[0]["to"] <= chart["to"]
    assert any(b["kind"] == "problem" and b["lane"] == "right calf" for b in chart["bars"])


def test_nights_without_a_recording_are_no_data_and_measures_absent_unless_measured(
    client: TestClient, scene: Scene
) -> None:
    nights = {n["night"]: n for n in client.get("/api/nights").json()}
    no_data = nights[str(scene.night(NO_DATA_BACK))]
    assert not no_data["has_data"] and not no_data["complete"]
    assert not nights[str(scene.night(INCOMPLETE_BACK))]["complete"]
    calm = nights[str(scene.night(CALM_BACK))]
    assert calm["has_data"] and calm["cramps"] == 0
    measured = nights[str(scene.night(PLMS_FROM_BACK))]
    assert measured["plms"] == plms_tonight(PLMS_FROM_BACK)  # as the device's state sent it
    good_hours = (7.5 * 3600 - LOST_S) / 3600
    assert measured["plm_per_hour"] == pytest.approx(plms_tonight(PLMS_FROM_BACK) / good_hours,
                                                     abs=0.01)  # fmt: skip
    unmeasured = nights[str(scene.night(PLMS_FROM_BACK + 1))]
    assert unmeasured["plms"] is None and unmeasured["plm_per_hour"] is None  # not 0
    assert all(n["fasciculations"] is None for n in nights.values())
    html = client.get(f"/nights/{scene.night(NO_DATA_BACK)}").text
    assert "No recording this night" in html and "no data" in html
    last = client.get(f"/nights/{LAST}").text
    figure = last[last.index('id="figure-plms"') :][:300]
    assert f"<dd>{plms_tonight(0)} " in figure
    assert f"({plms_tonight(0) / good_hours:.1f}/h)" in figure  # per hour of good signal
    assert 'id="figure-plms"' not in client.get(f"/nights/{scene.night(5)}").text


def test_plms_of_two_recordings_in_a_night_add_up_and_their_index_is_weighted_by_good_signal(
    dashboard, client: TestClient
) -> None:
    evening = datetime.combine(LAST, time(22, 0), tzinfo=TZ)
    restarted = datetime.combine(LAST + timedelta(days=1), time(2, 0), tzinfo=TZ)
    send(dashboard, "state", state_payload(evening, TZ, 3 * 3600.0, 3 * 3600.0, 12))  # 4/h
    send(dashboard, "state", state_payload(restarted, TZ, 5 * 3600.0, 4 * 3600.0, 40))  # 10/h
    summary = night_api(client, LAST)["summary"]
    assert summary["plms"] == 52  # the device counts again from 0 after a restart
    assert summary["plm_per_hour"] == pytest.approx((4 * 3 + 10 * 4) / 7, abs=0.01)


def test_the_overview_shows_last_night_and_a_morning_sentence_before_any_script_runs(
    client: TestClient, scene: Scene
) -> None:
    html = client.get("/").text
    assert "No nights yet" not in html
    assert 'Last night: <a href="/nights/2026-11-20"' in html
    assert 'class="morning"' in html and "3 cramps" in html
    assert html.index('class="morning"') < html.index('id="cramps"')
    assert "/?night=" not in html
    assert client.get("/?night=2026-11-19", follow_redirects=False).headers["location"] == (
        "/nights/2026-11-19"
    )


def test_an_afternoon_recording_is_shown_with_the_night_that_follows_it(
    dashboard, client: TestClient
) -> None:
    session = datetime.combine(LAST, time(14, 0), tzinfo=TZ)  # in no night's figures
    send(dashboard, "state", state_payload(session, TZ, 600.0, 600.0, None))
    send(dashboard, "event", event(session, "left_calf", "cramp", 120.0, 30.0, 90.0, "nap"))
    assert dashboard.queries.last_night() == dashboard.queries.first_night() == LAST
    html = client.get("/").text
    assert f'href="/nights/{LAST}"' in html and 'data-event="nap-left_calf"' in html
    assert "afternoon before the night" in html


def test_stored_summaries_follow_every_change_and_equal_a_recomputation(
    dashboard, client: TestClient, scene: Scene
) -> None:
    queries = dashboard.queries
    before = {n.night: n for n in queries.nights()}
    session = datetime.combine(scene.night(CALM_BACK), time(22, 30), tzinfo=TZ)
    send(dashboard, "event", event(session, "right_calf", "cramp", 7200, 40.0, 99.0, "late"))
    after = {n.night: n for n in queries.nights()}
    assert after[scene.night(CALM_BACK)].cramps == 1
    assert {d: n for d, n in after.items() if d != scene.night(CALM_BACK)} == {
        d: n for d, n in before.items() if d != scene.night(CALM_BACK)
    }
    first, last = min(after), max(after)
    fresh = summaries_of(queries.summaries.load(first, last), TZ, first, last)
    assert [n.to_dict() for n in fresh] == [n.to_dict() for n in after.values()]


def test_a_different_time_zone_recomputes_every_night(tmp_path: Path) -> None:
    db = tmp_path / "dashboard.db"
    process = build(db, broker=None, tz=TZ)
    two_weeks(process, LAST, TZ)
    berlin = sum(n.cramps for n in process.queries.nights())
    process.close()
    new_york = ZoneInfo("America/New_York")
    process = build(db, broker=None, tz=new_york)
    nights = process.queries.nights()
    fresh = summaries_of(process.queries.summaries.load(nights[0].night, nights[-1].night),
                         new_york, nights[0].night, nights[-1].night)  # fmt: skip
    process.close()
    assert [n.to_dict() for n in nights] == [n.to_dict() for n in fresh]
    # 23:30 in Berlin is 17:30 in New York: between nights, so those cramps count in none
    assert sum(n.cramps for n in nights) < berlin


# -- a cramp ----------------------------------------------------------------------------------


def test_the_cramp_page_has_clock_times_minutes_the_same_peak_and_links(
    client: TestClient, scene: Scene
) -> None:
    html = client.get("/events/long-left_calf").text
    assert "8 min 0 s" in html and "480.0 s" in html  # minutes and seconds
    assert 'id="event-peak">260 µV' in html
    start = html.index('id="envelope-data">') + len('id="envelope-data">')
    chart = json.loads(html[start : html.index("</script>", start)])
    assert chart["peak"] == 260.0 and max(v for _, v in chart["points"]) <= 260.0
    onset = datetime.fromisoformat(scene.cramps["long_left"]["start"].replace("Z", "+00:00"))
    assert chart["onset"] == round(onset.timestamp() * 1000)
    assert chart["end"] == chart["onset"] + 480_000
    assert chart["points"][0][0] == chart["onset"] - 10_000  # clock time, not seconds in
    assert f'href="/nights/{LAST}"' in html
    both = client.get("/events/both-left_calf").text
    assert 'href="/events/both-right_calf"' in both  # the same cramp on the other calf
    assert 'href="/events/both-left_calf"' in client.get("/events/both-right_calf").text


# -- the patient's word -----------------------------------------------------------------------


def test_a_rejected_cramp_leaves_the_figures_and_a_missed_one_is_counted(
    client: TestClient, scene: Scene
) -> None:
    target = "event:long-left_calf"
    assert (
        client.post("/api/labels", json={"target": target, "verdict": "not_cramp"}).status_code
        == 200
    )
    summary = night_api(client, LAST)["summary"]
    assert (summary["cramps"], summary["rejected"]) == (2, 1)
    assert summary["strongest_uv"] == 180.0
    missed = f"marker:bedroom@{scene.markers['missed']}"
    assert (
        client.post("/api/labels", json={"target": missed, "verdict": "missed_cramp"}).status_code
        == 200
    )
    summary = night_api(client, LAST)["summary"]
    assert (summary["cramps"], summary["reported"]) == (3, 1)
    html = client.get(f"/nights/{LAST}").text
    assert "left out of every figure" in html and "You said: not a cramp" in html
    client.post("/api/labels", json={"target": target, "verdict": None})
    assert night_api(client, LAST)["summary"]["rejected"] == 0


def test_the_answer_form_works_without_a_script_and_goes_back_to_the_page(
    client: TestClient, scene: Scene
) -> None:
    answer = {"target": "event:both-left_calf", "verdict": "cramp", "back": f"/nights/{LAST}"}
    forged = client.post("/labels", data={**answer, "csrf_token": "guess"},
                         follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403 and "CSRF" in forged.text  # the request guard's refusal
    assert night_api(client, LAST)["summary"]["confirmed"] == 0
    token = form_token(client, f"/nights/{LAST}")
    response = client.post("/labels", data={**answer, "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/nights/{LAST}"
    assert night_api(client, LAST)["summary"]["confirmed"] == 1
    away = client.post("/labels", data={**answer, "back": "//evil.example/", "csrf_token": token},
                       follow_redirects=False)  # fmt: skip
    assert away.headers["location"] == "/"


@pytest.mark.parametrize(
    ("target", "verdict", "words"),
    [
        ("event:nope", "cramp", "no event"),
        ("event:n0m0-left_calf", "not_cramp", "movement"),
        ("event:long-left_calf", "missed_cramp", "cramp or not_cramp"),
        ("marker:bedroom@2026-11-20T01:00:00.000Z", "missed_cramp", "no marker press"),
        ("whatever", "cramp", "not 'event:"),
    ],
)
def test_answers_that_do_not_fit_are_refused_with_the_reason(
    client: TestClient, scene: Scene, target: str, verdict: str, words: str
) -> None:
    response = client.post("/api/labels", json={"target": target, "verdict": verdict})
    assert response.status_code == 400 and words in response.json()["error"]
    token = form_token(client, f"/nights/{LAST}")
    page = client.post("/labels", data={"target": target, "verdict": verdict, "csrf_token": token})
    assert page.status_code == 400 and "could not be saved" in page.text


def test_the_answers_export_as_files_crampwatch_evaluate_scores(
    client: TestClient, scene: Scene, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from firmware_host.cli import main
    from firmware_host.commands.evaluate import load_annotations, load_events

    for target, verdict in (("event:both-left_calf", "cramp"), ("event:both-right_calf", "cramp"),
                            ("event:long-left_calf", "not_cramp"),
                            (f"marker:bedroom@{scene.markers['missed']}", "missed_cramp")):  # fmt: skip
        assert (
            client.post("/api/labels", json={"target": target, "verdict": verdict}).status_code
            == 200
        )
    truth_path, events_path = tmp_path / "truth.csv", tmp_path / "events.jsonl"
    truth_path.write_text(client.get(f"/api/nights/{LAST}/truth.csv").text)
    events_path.write_text(client.get(f"/api/nights/{LAST}/detections.jsonl").text)
    truth = load_annotations(truth_path)
    assert [(a.kind, a.channel) for a in truth] == [("cramp", "left_calf"), ("cramp", "right_calf"),
                                                     ("cramp", None)]  # fmt: skip
    assert truth[0].start_s == 4 * 3600  # seconds from the start of the recording
    events = load_events(events_path)
    assert len(events.detections) == 3 and events.duration_s == 7.5 * 3600
    assert main(["evaluate", str(events_path), str(truth_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cramp = report["scores"]["cramp"]
    assert (cramp["tp"], cramp["fp"], cramp["fn"]) == (2, 1, 1)
    listed = client.get("/api/labels", params={"night": str(LAST)}).json()
    assert {item["verdict"] for item in listed} == {"cramp", "not_cramp", "missed_cramp"}


# -- insights ---------------------------------------------------------------------------------


def test_the_insight_plots_use_exactly_the_days_the_statistics_use(
    dashboard, client: TestClient, scene: Scene
) -> None:
    result, nights, totals = dashboard.queries.insights()
    for r in result.results:
        assert len(paired_days(nights, totals, r.factor, r.lag)) == r.nights
    magnesium = paired_days(nights, totals, "magnesium", 0)
    assert any(x == 0.0 for _, x, _ in magnesium)  # days without magnesium count as 0
    html = client.get("/insights").text
    assert "magnesium (mg): " + str(len(magnesium)) + " days" in html


# -- the report -------------------------------------------------------------------------------


def test_the_report_has_per_calf_figures_the_cramps_intake_and_no_data_nights(
    client: TestClient, scene: Scene
) -> None:
    html = client.get("/report", params={"first": str(scene.night(13)), "last": str(LAST),
                                          "name": "A. Patient <b>", "notes": "magnesium since 3 Nov"}).text  # fmt: skip
    assert "A. Patient &lt;b&gt;" in html and "magnesium since 3 Nov" in html
    assert 'id="per-calf"' in html and "left calf" in html and "right calf" in html
    assert 'id="cramp-table"' in html and "8 min 0 s" in html
    assert 'id="intake-summary"' in html and "Magnesium" in html
    assert 'id="report-chart"' in html
    table = html[html.index('class="report-nights"') :]
    no_data_row = table[table.index(scene.night(NO_DATA_BACK).strftime("%a %-d %b")) :][:200]
    assert "no data" in no_data_row and "0.0" not in no_data_row


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"first": "0001-01-01", "last": "2026-11-20"}, 400, "between 2000-01-01 and 2100-12-31"),
        ({"first": "2026-11-20", "last": "2026-11-01"}, 400, "wrong way round"),
        ({"first": "yesterday"}, 400, "not a date"),
    ],
)
def test_bad_report_periods_get_a_styled_page_that_says_what_to_do(
    client: TestClient, params: dict, status: int, words: str
) -> None:
    response = client.get("/report", params=params)
    assert response.status_code == status
    assert "text/html" in response.headers["content-type"]
    assert words in response.text and 'href="/report"' in response.text
    assert '<header class="site' in response.text  # the site's own layout, not raw JSON


def test_a_far_away_period_is_answered_small_and_fast(client: TestClient, scene: Scene) -> None:
    started = clock.perf_counter()
    response = client.get("/report", params={"first": "2000-01-01"})  # the earliest day taken
    elapsed = clock.perf_counter() - started
    assert response.status_code == 200 and len(response.content) < 200_000
    assert elapsed < 5.0  # was 18.7 s and 85 MB; generous for a loaded machine


def test_unknown_pages_and_events_get_the_styled_not_found_page(client: TestClient) -> None:
    for path in ("/nosuch", "/events/nope"):
        response = client.get(path)
        assert response.status_code == 404 and '<header class="site' in response.text
    assert client.get("/api/nosuch").json()["error"]


# -- intake that catches mistakes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "factor", "amount", "unit"),
    [
        ({"factor": "water", "amount": "1 glass"}, "water", 250.0, "mL"),
        ({"factor": "water", "amount": "2 glasses"}, "water", 500.0, "mL"),
        ({"factor": "water", "amount": 1, "unit": "can"}, "water", 330.0, "mL"),
        ({"factor": "coffee", "amount": "1 cup"}, "caffeine", 95.0, "mg"),
        ({"factor": "tea", "amount": "2 cups"}, "caffeine", 94.0, "mg"),
        ({"factor": "medication", "amount": 2}, "medication", 2.0, "dose"),
    ],
)
def test_household_measures_become_canonical_amounts(
    client: TestClient, body: dict, factor: str, amount: float, unit: str
) -> None:
    response = client.post("/api/intake", json={**body, "time": "2026-11-20T20:00"})
    assert response.status_code == 201, response.text
    saved = response.json()
    assert (saved["factor"], saved["amount"], saved["unit"]) == (factor, amount, unit)
    assert f"{amount:g} {unit}" in saved["shown"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"factor": "water", "amount": "3"}, "has no unit: give it in mL"),
        ({"factor": "water", "amount": 3}, "glass (250 mL)"),
        ({"factor": "coffee", "amount": "2"}, "cup (95 mg)"),
        ({"factor": "magnesium", "amount": "2 tablets"}, "the mg on its label"),
        ({"factor": "magnesum", "amount": "300 mg"}, "did you mean magnesium?"),
    ],
)
def test_mistakes_are_refused_with_the_choices(client: TestClient, body: dict, words: str) -> None:
    response = client.post("/api/intake", json=body)
    assert response.status_code == 400 and words in response.json()["error"]
    assert client.get("/api/intake").json() == []
    assert client.get("/api/factors").json()[-1]["key"] == "dialysis"  # no custom factor made


def test_did_you_mean_offers_the_factor_and_a_new_factor_can_be_confirmed(
    client: TestClient,
) -> None:
    refused = client.post("/api/intake", json={"factor": "magnesum", "amount": "300 mg"})
    assert refused.json()["suggestions"] == ["magnesium"]
    check = client.get("/api/intake/check", params={"factor": "magnesum", "amount": "300 mg"})
    assert check.status_code == 400 and check.json()["suggestions"] == ["magnesium"]
    confirmed = client.post("/api/intake", json={"factor": "magnesum", "amount": "300 mg",
                                                 "new_factor": True})  # fmt: skip
    assert confirmed.status_code == 201 and confirmed.json()["factor"] == "magnesum"
    preview = client.get("/api/intake/check", params={"factor": "water", "amount": "1 glass"})
    assert preview.json()["shown"] == "1 glass water = 250 mL water"


def test_mqtt_and_the_command_line_follow_the_same_rules(
    dashboard, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from firmware_host.cli import main

    mqtt = {"schema": "crampwatch.intake/1", "factor": "water", "amount": 3,
            "time": "2026-11-20T20:00:00Z"}  # fmt: skip
    assert not dashboard.ingest.handle("crampwatch/me/intake", json.dumps(mqtt).encode())
    assert "has no unit" in dashboard.store.query("SELECT reason FROM refusal")[0]["reason"]
    mqtt["amount"], mqtt["unit"] = 1, "glass"
    assert dashboard.ingest.handle("crampwatch/me/intake", json.dumps(mqtt).encode())
    db = ["--db", str(tmp_path / "cli.db"), "--tz", "Europe/Berlin"]
    assert main(["intake", "add", "magnesum", "300mg", *db]) == 2
    assert "did you mean magnesium?" in capsys.readouterr().err
    assert main(["intake", "add", "magnesum", "300mg", "--new-factor", *db]) == 0
    assert main(["intake", "add", "coffee", "1 cup", *db]) == 0
    assert "95 mg caffeine" in capsys.readouterr().out


def test_an_old_custom_factor_now_spelt_like_a_builtin_does_not_stop_the_dashboard(
    tmp_path: Path,
) -> None:
    from dashboards.store import Store

    with Store(tmp_path / "d.db") as store:
        store.put_custom_factor("coffee", "Coffee", "cup", "amount")
    process = build(tmp_path / "d.db", broker=None, tz=TZ)
    assert process.intake.catalogue.get("coffee").key == "caffeine"
    process.close()


def test_random_label_requests_never_break_a_page(client: TestClient, scene: Scene) -> None:
    rng = random.Random(7)
    targets = ["event:both-left_calf", "event:n3m1-right_calf", f"marker:bedroom@{scene.markers['missed']}",
               "event:", "marker:@", "marker:bedroom@x", "", "event:" + "x" * 250]  # fmt: skip
    verdicts = ["cramp", "not_cramp", "missed_cramp", None, "none", "maybe", ""]
    for _ in range(60):
        body = {"target": rng.choice(targets), "verdict": rng.choice(verdicts)}
        assert client.post("/api/labels", json=body).status_code in (200, 400, 422)
    for path in ("/", f"/nights/{LAST}", "/nights", "/report", "/insights"):
        assert client.get(path).status_code == 200


def test_the_morning_sentence_says_the_night_in_plain_words() -> None:
    from dashboards.analysis import NightSummary
    from dashboards.night_summaries import summary_sentence

    today = date(2026, 11, 21)
    first = datetime(2026, 11, 21, 5, 50, tzinfo=TZ)

    def night(cramps: int, minutes: float, good: float = 448.0, has_data: bool = True):
        return NightSummary(LAST, cramps, minutes, None, first if cramps else None, 3, good,
                            450.0, 1, has_data, has_data and good >= 240)  # fmt: skip

    assert summary_sentence(night(1, 49 / 60), today) == (
        "Last night: 1 cramp of 49 s at 05:50; 7 h 28 min of good signal."
    )
    assert summary_sentence(night(3, 9.5), today) == (
        "Last night: 3 cramps, 9 min 30 s in all, the first at 05:50; 7 h 28 min of good signal."
    )
    assert summary_sentence(night(0, 0.0), today) == (
        "Last night: no cramps, 7 h 28 min of good signal."
    )
    assert "too little to count" in summary_sentence(night(0, 0.0, good=100.0), today)
    assert "no recording" in summary_sentence(night(0, 0.0, 0.0, has_data=False), today)
    assert summary_sentence(night(0, 0.0), date(2026, 11, 25)).startswith("The night of Fri 20 Nov")
    assert "No night has been recorded yet" in summary_sentence(None, today)
