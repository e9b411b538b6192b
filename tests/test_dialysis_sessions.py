"""Dialysis sessions on the dashboard: a session's cramps are its own and the nights stay exactly
as they were; the details and lab results are checked the same way from every way in (JSON API,
the pages' forms, MQTT, the command line), with refusals that say what to do; the figures that
follow (ultrafiltration rate, weight gain, lowest systolic, minutes to the first cramp); the pages,
the analysis across sessions and the report's dialysis section."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from dashboards.analysis import SessionSummary
from dashboards.dialysis import DetailsError, details_update, lab_from_payload, merged_details
from dashboards.dialysis import SessionDetails as Details
from dashboards.server import build
from dashboards.session_analysis import session_insights
from dashboards.store import MIGRATIONS, Store
from firmware_host.cli import main
from tests.dashboard_scenes import CHANNELS, DEVICE, event, send, two_weeks
from tests.dialysis_scenes import dialysis_weeks, session_state

TZ = ZoneInfo("Europe/Berlin")
LAST = date(2026, 11, 20)  # a Friday
FIRST = LAST - timedelta(days=13)


@pytest.fixture
def dashboard(tmp_path: Path):
    process = build(tmp_path / "dashboard.db", broker=None, tz=TZ, min_nights=3, min_sessions=4)
    yield process
    process.close()


@pytest.fixture
def client(dashboard) -> TestClient:
    return TestClient(dashboard.app, base_url="http://127.0.0.1")


@pytest.fixture
def sessions(dashboard):
    two_weeks(dashboard, LAST, TZ)
    return dialysis_weeks(dashboard, FIRST, LAST, TZ)


def form_token(client: TestClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, f"no form with a token on {path}"
    return found.group(1)


# -- sessions are not nights --------------------------------------------------------------------


def test_the_nights_stay_exactly_as_they_were_when_dialysis_sessions_are_added(
    tmp_path: Path,
) -> None:
    def nights(with_sessions: bool) -> list[dict]:
        process = build(tmp_path / f"{with_sessions}.db", broker=None, tz=TZ, min_nights=3)
        try:
            two_weeks(process, LAST, TZ)
            if with_sessions:
                scenes = dialysis_weeks(process, FIRST, LAST, TZ)
                assert sum(len(s.cramps) for s in scenes) >= 4  # they have cramps of their own
            return [n.to_dict() for n in process.queries.nights(FIRST - timedelta(days=1), LAST)]
        finally:
            process.close()

    assert nights(True) == nights(False)


def test_a_sessions_cramps_belong_to_it_with_the_figures_that_follow_from_its_details(
    dashboard, sessions
) -> None:
    data = dashboard.queries.sessions.data()
    assert [n.session_id for n in data.named] == [s.session_id for s in sessions]
    for scene, summary, figures in zip(sessions, data.summaries, data.figures, strict=True):
        assert summary.cramps == len(scene.cramps) and summary.complete
        assert figures.uf_rate == pytest.approx(scene.uf_rate, abs=0.01)  # by post-weight
        if scene.cramps:
            assert summary.first_cramp_min == pytest.approx(60.0)  # 08:30, an hour in
    second = data.figures[1]
    assert second.idwg_kg == pytest.approx(sessions[1].gain_kg)  # from the first's post-weight
    assert second.nadir is not None and second.nadir.systolic == pytest.approx(142 - 12 * 3.4)
    assert second.nadir_low is False and second.fell_20 is True
    fourth = data.named[3].details
    assert fourth.ended_early and fourth.ended_early_reason == "cramps"
    night_of_session = (sessions[1].start - timedelta(days=1)).date()
    page = dashboard.queries.night_page(night_of_session)
    session_ids = {c["event_id"] for c in sessions[1].cramps}
    assert not session_ids & {e["event_id"] for e in page["events"]}
    assert [n.session_id for n in page["named_sessions"]] == [sessions[1].session_id]
    report_cramps = dashboard.queries.cramps_between(FIRST, LAST)
    assert not session_ids & {c["event_id"] for c in report_cramps}


def test_a_session_logged_over_a_night_recording_takes_its_part_out_of_the_night(
    dashboard,
) -> None:
    night = LAST - timedelta(days=1)
    start = datetime.combine(night, time(22, 0), tzinfo=TZ)
    states = session_state(start, TZ, _night_tag(), 8 * 3600, 0)  # a night recording, 8 h
    send(dashboard, "state", {**states, "session_kind": "night"} | {"session_id": None})
    for k, offset in enumerate((2 * 3600, 6 * 3600)):
        send(dashboard, "event", event(start, CHANNELS[k], "cramp", offset, 30.0, 120.0, f"n{k}"))
    before = dashboard.queries.night(night)
    assert before.cramps == 2 and before.good_minutes == pytest.approx(8 * 60)
    # nocturnal dialysis logged afterwards, 03:00-07:00: the device was not told
    dashboard.sessions.log({"start": (start + timedelta(hours=5)).isoformat(),
                            "end": (start + timedelta(hours=9)).isoformat()}, "api")  # fmt: skip
    after = dashboard.queries.night(night)
    assert after.cramps == 1  # the 04:00 cramp is the session's
    share = 1 - 3 / 8  # the recording ran 22:00-06:00: 03:00-06:00 is the session's
    assert after.good_minutes == pytest.approx(before.good_minutes * share, rel=1e-6)
    (summary,) = dashboard.queries.sessions.data().summaries
    assert summary.cramps == 1 and summary.first_cramp_min == pytest.approx(60.0)


def _night_tag():
    from firmware_host.device.session_control import NIGHT_TAG

    return NIGHT_TAG


# -- one set of checks, every way in -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"pre_weight_kg": 500}, "outside 20-300 kg"),
        ({"pre_weight_kg": "72,4"}, "use a dot for decimals"),
        ({"pre_weight_kg": "160 stone"}, "unknown unit 'stone'; give kg or lb"),
        ({"dialysate_sodium_mmol_l": 100}, "dialysate sodium is set at about 135-145"),
        ({"uf_volume_ml": "12 L"}, "12 L is 1.2e+04 mL, outside 0-1e+04 mL"),
        ({"end": "2026-11-16T07:00"}, "is not after start"),
        ({"end": "2026-11-17T07:00"}, "more than 16 h"),
        ({"start": "2019-05-01T07:30"}, "before 2020"),
        ({"start": "2026-11-16"}, "a date only"),
        ({"blood_pressure": [{"time": "2026-11-16T08:00", "systolic": 70, "diastolic": 90}]},
         "write it as systolic/diastolic"),
        ({"blood_pressure": [{"time": "2026-11-16T19:00", "systolic": 120, "diastolic": 70}]},
         "more than 2 h from the session"),
        ({"blood_pressure": [{"time": "2026-11-16T08:00", "systolic": 120}]}, "diastolic is missing"),
        ({"ended_early_reason": "cramps"}, "ended_early is not true"),
        ({"ended_early": "yes"}, "give true or false"),
        ({"weight": 70}, "unknown field(s) weight"),
        ({"post_weight_kg": 58.0}, "more than 10 kg apart"),
    ],
)  # fmt: skip
def test_mistakes_in_details_are_refused_the_same_way_by_the_api_and_mqtt(
    dashboard, client: TestClient, fields: dict, words: str
) -> None:
    base = {"start": "2026-11-16T07:30", "end": "2026-11-16T11:30", "pre_weight_kg": 72.0}
    response = client.post("/api/sessions", json={**base, **fields})
    assert response.status_code == 400 and words in response.json()["error"], response.json()
    payload = json.dumps({"schema": "crampwatch.session/1", **base, **fields}).encode()
    assert not dashboard.ingest.handle("crampwatch/alice/session", payload)
    refusal = dashboard.store.query("SELECT reason FROM refusal ORDER BY id DESC LIMIT 1")[0]
    assert words in refusal["reason"]
    assert client.get("/api/sessions?from=2026-11-01&to=2026-11-30").json() == []  # nothing stored


def test_the_command_line_logs_a_session_and_a_lab_result_through_the_same_checks(
    dashboard, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", str(dashboard.store.path), "--tz", "Europe/Berlin"]
    argv = ["session", "log", "--start", "2026-11-16T07:30", "--end", "2026-11-16T11:30",
            "--pre-weight", "160 lb", "--post-weight", "70.1", "--uf", "2.3 L",
            "--bp", "07:30 140/80", "--bp", "10:45 86/50 pulse 96 uf 1900", *db]  # fmt: skip
    assert main(argv) == 0
    assert "logged: session dialysis-20261116T063000Z" in capsys.readouterr().out
    assert main(["session", "log", "--id", "dialysis-20261116T063000Z", "--ended-early",
                 "low blood pressure", *db]) == 0  # fmt: skip
    assert main(["session", "log", "--start", "2026-11-18T07:30", "--sodium", "100", *db]) == 2
    assert "dialysate sodium is set at about 135-145" in capsys.readouterr().err
    assert main(["session", "lab", "calcium", "8.8 mg/dL", "--time", "2026-11-16T07:00", *db]) == 0
    assert "calcium 2.2 mmol/L" in capsys.readouterr().out
    assert main(["session", "lab", "calcium", "9.2", *db]) == 2
    assert "has no unit" in capsys.readouterr().err
    (row,) = dashboard.queries.sessions.rows()
    details = row["details"]
    assert details.pre_weight_kg == pytest.approx(72.575, abs=0.001) and details.ended_early
    assert [r.systolic for r in details.blood_pressure] == [140.0, 86.0]
    assert row["figures"].nadir_low and details.blood_pressure[1].uf_removed_ml == 1900.0


@pytest.mark.parametrize(
    ("payload", "stored"),
    [
        ({"analyte": "calcium", "value": "8.8 mg/dL"}, 2.1956),
        ({"analyte": "Ca", "value": 2.3, "unit": "mmol/L"}, 2.3),
        ({"analyte": "phosphate", "value": "5.8 mg/dL"}, 1.8728),
        ({"analyte": "K", "value": 5.1}, 5.1),
        ({"analyte": "magnesium", "value": "1.8 mEq/L"}, 0.9),
    ],
)
def test_lab_results_are_kept_in_mmol_per_litre(payload: dict, stored: float) -> None:
    lab = lab_from_payload(payload, tz=TZ, source="api")
    assert lab.value == pytest.approx(stored, abs=1e-4) and lab.unit == "mmol/L"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"analyte": "calcium", "value": "9.2"}, "has no unit: give the unit from the report"),
        ({"analyte": "calcium", "value": "9.2 mmol/L"}, "outside 1-4.5 mmol/L"),
        ({"analyte": "sodium", "value": "140 mmol/L"}, "not one of calcium, phosphorus"),
        ({"analyte": "potassium"}, "value is missing"),
        ({"analyte": "potassium", "value": 4, "unit": "g"}, "unknown unit 'g'"),
    ],
)
def test_lab_mistakes_are_refused_with_what_to_give(payload: dict, words: str) -> None:
    with pytest.raises(DetailsError) as refused:
        lab_from_payload(payload, tz=TZ, source="api")
    assert words in str(refused.value)


def test_a_lab_result_over_mqtt_needs_its_time() -> None:
    with pytest.raises(DetailsError, match="time is missing"):
        lab_from_payload({"analyte": "calcium", "value": "2.2 mmol/L"}, tz=TZ, source="mqtt",
                         time_optional=False)  # fmt: skip


def test_details_given_in_parts_keep_what_was_logged_and_null_clears_a_field() -> None:
    first = details_update({"start": "2026-11-16T07:30", "pre_weight_kg": 72}, tz=TZ)
    details = merged_details(Details(), first.fields)
    second = details_update({"post_weight_kg": "70.2 kg", "pre_weight_kg": None}, tz=TZ)
    details = merged_details(details, second.fields)
    assert details.start == datetime(2026, 11, 16, 6, 30, tzinfo=UTC)
    assert details.pre_weight_kg is None and details.post_weight_kg == 70.2
    assert Details.from_stored(json.dumps(details.to_dict())) == details


# -- device messages about sessions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"session_kind": "dialysis", "session_id": None}, "has no session_id"),
        ({"session_kind": "Dialysis!"}, "session kind 'Dialysis!' is not allowed"),
        ({"session_kind": "night", "session_id": "x"}, "only named sessions have one"),
        ({"session_id": "bad id/#"}, "session id"),
        ({"cramps_session": 1.5}, "'cramps_session' must be a whole number"),
    ],
)
def test_device_messages_with_a_bad_session_are_refused(
    dashboard, change: dict, words: str
) -> None:
    state = session_state(datetime(2026, 11, 16, 7, 30, tzinfo=TZ), TZ, _dialysis("d-1"), 600, 0)
    state.update(change)
    state = {k: v for k, v in state.items() if v is not None}
    assert not dashboard.ingest.handle(f"crampwatch/{DEVICE}/state", json.dumps(state).encode())
    reason = dashboard.store.query("SELECT reason FROM refusal ORDER BY id DESC LIMIT 1")[0][0]
    assert words in reason


def _dialysis(session_id: str):
    from firmware_host.device.session_control import SessionTag

    return SessionTag("dialysis", session_id)


# -- pages ---------------------------------------------------------------------------------------


def test_the_session_list_shows_cramps_first_cramp_minutes_and_the_ultrafiltration_rate(
    client: TestClient, sessions
) -> None:
    page = client.get(f"/sessions?first={FIRST}&last={LAST}")
    assert page.status_code == 200
    table = page.text.split('id="session-table"')[1].split("</table>")[0]
    for scene in sessions:
        row = table.split(f'data-session="{scene.session_id}"')[1].split("</tr>")[0]
        assert f"<td>{len(scene.cramps)}</td>" in row and f"{scene.uf_rate:.1f}" in row
        if scene.cramps:
            assert "<td>60</td>" in row  # minutes into the session of the first cramp
    assert "What goes with cramps in your sessions" in page.text
    assert 'data-factor="uf_rate"' in page.text and "rank correlation" in page.text


def test_the_session_page_has_the_timeline_blood_pressure_and_the_cramps(
    client: TestClient, sessions
) -> None:
    scene = next(s for s in sessions if len(s.cramps) >= 2)
    page = client.get(f"/sessions/{scene.session_id}")
    assert page.status_code == 200
    text = page.text
    assert 'id="timeline"' in text and 'id="measures"' in text
    timeline = json.loads(text.split('id="timeline-data">')[1].split("</script>")[0])
    assert timeline["lanes"] == ["left calf", "right calf"]
    assert len([b for b in timeline["bars"] if b["kind"] == "cramp"]) == len(scene.cramps)
    measures = json.loads(text.split('id="measures-data">')[1].split("</script>")[0])
    assert len(measures["systolic"]) == 5 and measures["uf_measured"] is True
    assert measures["from"] == timeline["from"] and measures["to"] == timeline["to"]
    assert text.count('class="cramp-item') == len(scene.cramps)
    assert f'id="figure-cramps">{len(scene.cramps)}<' in text
    api = client.get(f"/api/sessions/{scene.session_id}").json()
    assert api["summary"]["cramps"] == len(scene.cramps) and api["figures"]["uf_rate"]
    assert client.get("/sessions/no-such-session").status_code == 404


def test_the_details_form_works_without_a_script_and_a_mistake_keeps_what_was_typed(
    client: TestClient, sessions
) -> None:
    scene = sessions[0]
    path = f"/sessions/{scene.session_id}"
    token = form_token(client, path)
    form = {"csrf_token": token, "start": "2026-11-09T07:30", "end": "2026-11-09T11:30",
            "pre_weight_kg": "71.4", "post_weight_kg": "70", "uf_volume_ml": "1.4 L",
            "dialysate_sodium_mmol_l": "137", "blood_pressure": "07:30 150/90\n09:30 118/70 uf 700",
            "ended_early": "yes", "ended_early_reason": "access problem", "note": "new needle"}  # fmt: skip
    saved = client.post(f"{path}/details", data=form, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"{path}#details"
    details = client.get(f"/api/sessions/{scene.session_id}").json()["details"]
    assert (
        details["dialysate_sodium_mmol_l"] == 137
        and details["ended_early_reason"] == "access problem"
    )
    assert [r["systolic"] for r in details["blood_pressure"]] == [150.0, 118.0]
    wrong = client.post(f"{path}/details", data={**form, "pre_weight_kg": "7140"})
    assert wrong.status_code == 400 and "outside 20-300 kg" in wrong.text
    assert 'value="7140"' in wrong.text  # what was typed is still there
    forged = client.post(f"{path}/details", data={**form, "csrf_token": "a guess"})
    assert forged.status_code == 403


def test_a_session_started_and_ended_on_the_dashboard_is_in_progress_until_it_ends(
    client: TestClient,
) -> None:
    token = form_token(client, "/sessions")
    started = client.post("/sessions/start", data={"csrf_token": token, "kind": "dialysis"},
                          follow_redirects=False)  # fmt: skip
    assert started.status_code == 303
    path = started.headers["location"]
    assert 'id="in-progress"' in client.get(path).text
    assert "session in progress since" in client.get("/sessions").text
    assert "A dialysis session is in progress since" in client.get("/").text
    assert client.post(f"{path}/end", data={"csrf_token": token}).status_code == 200
    assert 'id="in-progress"' not in client.get(path).text
    api = client.post("/api/sessions/start", json={"session_kind": "infusion"})
    assert api.status_code == 201 and api.json()["devices_told"] == []  # no broker here
    session_id = api.json()["session_id"]
    assert client.post(f"/api/sessions/{session_id}/end", json={}).status_code == 200
    assert client.post("/api/sessions/start", json={"session_kind": "night"}).status_code == 400
    assert client.delete(f"/api/sessions/{session_id}").status_code == 200


def test_a_recorded_session_cannot_be_deleted(client: TestClient, sessions) -> None:
    response = client.delete(f"/api/sessions/{sessions[0].session_id}")
    assert response.status_code == 400 and "recorded by a device" in response.json()["error"]


def test_the_report_has_a_dialysis_section_and_the_nights_keep_their_cramps(
    client: TestClient, sessions
) -> None:
    text = client.get(f"/report?first={FIRST}&last={LAST}").text
    section = text.split('id="report-dialysis"')[1].split("</section>")[0]
    total = sum(len(s.cramps) for s in sessions)
    assert f"{len(sessions)} sessions in this period" in section
    assert f"<strong>{total} cramps</strong>" in section
    assert "Ultrafiltration rate above 13 mL/kg/h in" in section
    assert "Latest labs: calcium 2.05 mmol/L" in section
    assert "rank correlation" in section  # enough sessions for the analysis (4 needed here)


# -- the analysis ------------------------------------------------------------------------------


def summaries(cramps: list[int], complete: bool = True) -> list[SessionSummary]:
    start = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    out = []
    for i, count in enumerate(cramps):
        begin = start + timedelta(days=2 * i)
        onsets = tuple(200.0 - 30 * k for k in range(count))  # late in the session
        out.append(SessionSummary(f"s{i}", "dialysis", begin, begin + timedelta(hours=4), begin,
                                  count, 1.0, None, None, min(onsets, default=None), 0, 240.0,
                                  240.0 if complete else 30.0, True, complete, onsets))  # fmt: skip
    return out


def test_too_few_sessions_are_said_in_words_not_numbers() -> None:
    result = session_insights(
        summaries([0, 1, 2]), {f"s{i}": {"uf_rate": 8.0 + i} for i in range(3)}
    )
    for row in result.results:
        assert row.status == "too_few" and row.rho is None
        known = 3 if row.factor in ("uf_rate", "hour_of_session") else 0  # the others not logged
        assert row.message == f"not enough sessions yet ({known} of 10 needed)"
    assert result.sessions_used == 3


def test_sessions_with_a_faster_ultrafiltration_and_more_cramps_show_a_link_with_bh_q() -> None:
    cramps = [0, 0, 1, 0, 1, 2, 1, 3, 2, 4, 3, 5]
    factors = {f"s{i}": {"uf_rate": 6.0 + i, "sodium": 140.0 - (i % 2) * 2,
                         "idwg": 1.0 + 0.2 * i} for i in range(12)}  # fmt: skip
    result = session_insights(summaries(cramps) + summaries([9], complete=False), factors)
    by = {r.factor: r for r in result.results}
    rate = by["uf_rate"]
    assert rate.status == "ok" and rate.sessions == 12 and rate.rho > 0.8
    assert rate.q_value is not None and rate.q_value >= rate.p_value
    assert rate.message.startswith(
        "In sessions with a higher ultrafiltration rate (above 11.5 mL/kg/h)"
    )
    assert "more cramps per session" in rate.message and "12" not in rate.message.split("(")[0]
    assert by["calcium"].status == "too_few" and by["calcium"].sessions == 0
    hour = by["hour_of_session"]
    assert (
        hour.status == "ok" and hour.rho > 0 and "Later in the session, more cramps" in hour.message
    )
    assert [h.hour for h in result.by_hour] == [1, 2, 3, 4]
    assert result.incomplete_left_out == 1 and result.sessions_used == 12


# -- the store ---------------------------------------------------------------------------------


def test_a_store_written_before_sessions_is_migrated_and_its_recordings_are_nights(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:3]:
        if isinstance(step, str):
            db.executescript(step)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO session (device, session_start, recorded_s, good_s, cramps, updated)"
               " VALUES ('bed', '2026-11-16T21:30:00.000Z', 28000, '{\"a\": 27000}', 0, 'x')")  # fmt: skip
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        (row,) = store.query("SELECT kind, session_id FROM session")
        assert (row["kind"], row["session_id"]) == ("night", None)


def test_stored_details_that_cannot_be_read_are_skipped_and_counted(
    dashboard, client: TestClient, sessions
) -> None:
    with dashboard.store.transaction() as db:
        db.execute("UPDATE named_session SET details = '{\"pre_weight_kg\": \"heavy\"}'"
                   " WHERE session_id = ?", (sessions[0].session_id,))  # fmt: skip
    assert client.get("/sessions").status_code == 200
    page = client.get(f"/sessions/{sessions[0].session_id}")  # shown, without its details
    assert page.status_code == 200 and 'id="figure-ufr">—' in page.text
    assert dashboard.queries.unreadable.counts().get("session details") == 1
    first = dashboard.queries.sessions.data().summaries[0]
    assert first.session_id == sessions[0].session_id and first.cramps == len(sessions[0].cramps)


def test_a_long_report_lists_the_sessions_by_month(dashboard, client: TestClient) -> None:
    day = date(2026, 6, 1)
    for n in range(45):  # three a week for fifteen weeks, logged (nothing recorded them)
        start = datetime.combine(day + timedelta(days=7 * (n // 3) + 2 * (n % 3)), time(7, 30))
        dashboard.sessions.log({"start": start.isoformat(), "end": (start + timedelta(hours=4))
                                .isoformat(), "pre_weight_kg": 72.5, "post_weight_kg": 70.0,
                                "uf_volume_ml": 3600 if n % 5 == 0 else 2400}, "api")  # fmt: skip
    text = client.get("/report?first=2026-06-01&last=2026-09-30").text
    months = text.split('id="report-session-months"')[1].split("</table>")[0]
    assert 'id="report-session-table"' not in text
    assert "<td>Jun 2026</td>" in months and "<td>Sep 2026</td>" in months
    assert "(0 recorded)" in months  # logged sessions without a recording are said to be so
    assert "45 sessions in this period (0 recorded by the sensor" in text
