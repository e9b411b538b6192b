"""Poisoned messages and a poisoned store: each message that once broke the dashboard for good is
refused on arrival (counted, kept with its reason, no traceback); times in any ISO 8601 form are
stored in one canonical UTC form and land in the right night; a store that already holds such
rows is repaired by the schema migration; and every page answers whatever the store holds."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from dashboards.ingest import Ingest
from dashboards.intake_log import IntakeLog, load_catalogue
from dashboards.server import build
from dashboards.store import MIGRATIONS, SCHEMA_VERSION, Store
from dashboards.web import MAX_RANGE_DAYS, NIGHTS_PAGE_DAYS

TZ = ZoneInfo("UTC")
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
PAGES = ("/", "/nights", "/insights", "/report", "/status", "/intake", "/api/nights",
         "/api/insights", "/api/status", "/api/events", "/api/intake", "/sessions",
         "/api/sessions", "/api/sessions/insights", "/api/labs")  # fmt: skip


def event(event_id: str = "e1", **changes) -> dict:
    payload = {
        "schema": "crampwatch.event/1", "event_id": event_id, "device": "bed", "channel": "left",
        "kind": "cramp", "phase": "ended", "start": "2026-11-20T23:10:00.000Z",
        "end": "2026-11-20T23:11:30.000Z", "start_s": 2400.0, "end_s": 2490.0, "duration_s": 90.0,
        "peak_uv": 120.5, "mean_uv": 60.1, "floor_uv": 3.2, "area_uvs": 5400.0,
        "median_freq_hz": 80.0, "quality": "good",
        "envelope": {"t0_s": 2390.0, "dt_s": 1.0, "uv": [3.0, 50.0, 120.0, 4.0]},
        "pipeline": {"software": "crampwatch 0.1.0",
                     "settings": {"detector": {"max_event_s": 1800.0}}},
    }  # fmt: skip
    payload.update(changes)
    return payload


def state(**changes) -> dict:
    payload = {
        "schema": "crampwatch.state/1", "device": "bed", "session_start": "2026-11-20T21:30:00.000Z",
        "recorded_s": 8 * 3600.0, "cramps_tonight": 1,
        "channels": {"left": {"state": "idle", "since": "2026-11-20T21:30:00.000Z",
                              "since_s": 0.0, "good_s": 8 * 3600.0}},
    }  # fmt: skip
    payload.update(changes)
    return payload


@pytest.fixture
def dashboard(tmp_path: Path):
    process = build(tmp_path / "d.db", broker=None, tz=TZ, min_nights=1)
    process.ingest.clock = lambda: NOW
    yield process
    process.close()


@pytest.fixture
def client(dashboard) -> TestClient:
    return TestClient(dashboard.app, base_url="http://127.0.0.1:8080")


def send(dashboard, leaf: str, payload: dict | bytes) -> bool:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return dashboard.ingest.handle(f"crampwatch/bed/{leaf}", body)


def deep(levels: int) -> bytes:
    return b'{"schema": "crampwatch.event/1", "x": ' + b"[" * levels + b"]" * levels + b"}"


POISON = [
    ("event", event(end="2026-11-20T23:00:00.000Z"), "before start"),
    ("event", event(start="9999-12-31T23:00:00Z", end="9999-12-31T23:01:30Z"), "more than a day after"),
    ("event", event(start="1970-01-01T00:40:00Z", end="1970-01-01T00:41:30Z"), "before 2020"),
    ("event", event(start="2026-11-22T23:10:00Z", end="2026-11-22T23:11:30Z"), "more than a day after"),
    ("event", event(duration_s=3 * 3600.0, end="2026-11-21T02:10:00Z"), "outside 0..1805"),
    ("event", event(duration_s=10.0), "does not match end - start"),
    ("event", event(start="2026-11-20T23:10:00"), "no time zone"),
    ("event", event(start="0001-01-01T00:00:00+01:00"), "out of range"),
    ("event", event(envelope={"t0_s": "a", "dt_s": 1, "uv": [1, 2]}), "envelope trace"),
    ("event", event(envelope={"t0_s": 0, "dt_s": 1, "uv": ["a", "b"]}), "envelope trace"),
    ("event", event(envelope={"t0_s": 0, "dt_s": 0, "uv": [1, 2]}), "envelope.dt_s"),
    ("event", event(peak_uv=True), "must be a number"),
    ("event", event(peak_uv=10**300), "out of range"),
    ("event", event(mean_uv="60"), "must be a number"),
    ("event", event(quality={"bad": 1}), "wrong type"),
    ("event", deep(5000), "nested deeper"),
    ("event", deep(100), "nested deeper"),
    ("event", b'{"duration_s": ' + b"9" * 5000 + b"}", "number JSON cannot hold"),
    ("event", b'{"duration_s": 1e400}', "too large"),
    ("state", state(recorded_s=1e9), "outside"),
    ("state", state(session_start="1970-01-01T00:00:00Z"), "before 2020"),
    ("state", state(cramps_tonight=1.5), "whole number"),
    ("quality", {"schema": "crampwatch.quality/1", "device": "bed", "channel": "left",
                 "at": "99991231T000000Z", "problems": []}, "more than a day after"),
    ("marker", {"schema": "crampwatch.marker/1", "device": "bed", "at": "1970-01-01T00:00:00Z",
                "source": "button"}, "before 2020"),
    ("envelope", {"schema": "crampwatch.envelope/1", "device": "bed",
                  "at": "2026-11-20T23:00:00Z", "channels": {"left": {"mean_uv": "x"}}}, "number"),
    ("intake", b'{"factor": "water", "amount": ' + b"9" * 5000 + b', "time": "2026-11-20T20:00:00Z"}',
     "number JSON cannot hold"),
    ("intake", b'{"factor": "water", "note": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested deeper"),
    ("intake", {"factor": "water", "amount": True, "unit": "mL", "time": "2026-11-20T20:00:00Z"},
     "not a number"),
]  # fmt: skip


@pytest.mark.parametrize(("leaf", "payload", "reason"), POISON)
def test_a_poisoned_message_is_refused_counted_and_kept_without_a_traceback(
    dashboard, client: TestClient, caplog: pytest.LogCaptureFixture, leaf: str, payload, reason: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert not send(dashboard, leaf, payload)
    assert dashboard.store.counter("refused") == 1
    assert reason in dashboard.store.query("SELECT reason FROM refusal")[0]["reason"]
    assert not any(record.exc_info for record in caplog.records)
    for table in ("event", "session", "quality", "marker", "intake"):
        assert dashboard.store.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0
    for page in PAGES:
        assert client.get(page).status_code == 200, page


def test_times_in_any_iso_form_are_stored_in_utc_and_land_in_their_night(
    dashboard, client: TestClient
) -> None:
    send(dashboard, "state", state())
    forms = {
        "z": ("2026-11-20T23:10:00.000Z", "2026-11-20T23:11:30.000Z"),
        "offset": ("2026-11-21T00:30:00+01:00", "2026-11-21T00:31:30+01:00"),
        "basic": ("20261121T020500Z", "20261121T020630Z"),
        "basic_offset": ("20261121T043000+0100", "20261121T043130+0100"),
    }
    for name, (start, end) in forms.items():
        assert send(dashboard, "event", event(name, start=start, end=end))
    rows = dashboard.store.query("SELECT event_id, start, end, payload FROM event ORDER BY start")
    assert [(r["event_id"], r["start"]) for r in rows] == [
        ("z", "2026-11-20T23:10:00.000Z"), ("offset", "2026-11-20T23:30:00.000Z"),
        ("basic", "2026-11-21T02:05:00.000Z"), ("basic_offset", "2026-11-21T03:30:00.000Z"),
    ]  # fmt: skip
    assert all(json.loads(r["payload"])["end"] == r["end"] for r in rows)
    nights = client.get("/api/nights", params={"from": "2026-11-20", "to": "2026-11-20"}).json()
    assert nights[0]["cramps"] == 4
    assert len(client.get("/api/events", params={"night": "2026-11-20"}).json()["events"]) == 4


def _poison_the_store(store: Store) -> None:
    """Rows no message can deliver any more, written straight into the tables."""
    good = event("good")
    rows = [
        (event("backwards", end="2026-11-20T23:00:00.000Z"), "2026-11-20T23:10:00.000Z", "2026-11-20T23:00:00.000Z"),
        (event("far", start="9999-12-31T23:00:00Z"), "9999-12-31T23:00:00Z", "9999-12-31T23:01:30Z"),
        (event("epoch", start="1970-01-01T00:00:00Z"), "1970-01-01T00:00:00Z", "1970-01-01T00:01:30Z"),
        (event("strings", envelope={"t0_s": 0, "dt_s": 1, "uv": ["a", "b"]}), good["start"], good["end"]),
        (event("garbage"), "not a time", None),
        (good, good["start"], good["end"]),
    ]  # fmt: skip
    with store.transaction() as db:
        for payload, start, end in rows:
            db.execute(
                "INSERT INTO event VALUES (?, 'ended', 'bed', 'left', 'cramp', ?, ?, 90.0, 1.0, ?, ?)",
                (payload["event_id"], start, end, json.dumps(payload), "2026-11-21T00:00:00.000Z"),
            )
        db.execute("INSERT INTO event VALUES ('notjson', 'ended', 'bed', 'left', 'cramp',"
                   " '2026-11-20T23:20:00.000Z', NULL, 1.0, NULL, '{oops', '2026-11-21')")  # fmt: skip
        sessions = [("1970-01-01T00:00:00Z", 3600.0, "{}"), ("9999-12-31T00:00:00Z", 3600.0, "{}"),
                    ("2026-11-20T21:30:00.000Z", 28800.0, '{"left": 28800.0}'),
                    ("2026-11-19T21:30:00.000Z", 28800.0, '"not an object"')]  # fmt: skip
        for start, recorded, good_s in sessions:
            db.execute("INSERT INTO session (device, session_start, recorded_s, good_s, cramps,"
                       " updated) VALUES ('bed', ?, ?, ?, 0, '2026-11-21')",
                       (start, recorded, good_s))  # fmt: skip
        db.execute(
            "INSERT INTO device (device, last_seen, state) VALUES ('bed', '2026-11-21', '[1')"
        )


def _poison_the_newer_tables(store: Store) -> None:
    """Rows the first schema had no room for, or that only pages read: intake, signal quality,
    marker presses, the patient's word and session measures that no message could deliver."""
    good_time = "2026-11-20T19:00:00.000Z"
    with store.transaction() as db:
        for entry_id, at, amount in (("good-intake", good_time, 250.0), ("bad-time", "not a time", 250.0),
                                     ("text-amount", good_time, "lots"), ("inf", good_time, 1e999)):  # fmt: skip
            db.execute("INSERT INTO intake VALUES (?, ?, 'water', ?, 'mL', '', 'api', ?)",
                       (entry_id, at, amount, good_time))  # fmt: skip
        db.execute(
            "INSERT INTO quality VALUES ('bed', 'left', '2026-11-20T23:30:00.000Z', '\"x\"')"
        )
        db.execute(
            "INSERT INTO quality VALUES ('bed', 'left', '2026-11-20T23:40:00.000Z', '{oops')"
        )
        db.execute("INSERT INTO marker VALUES ('bed', '2026-11-20Tgarbage', 'button')")
        db.execute("INSERT INTO label VALUES ('marker:bed@garbage', 'missed_cramp', 'garbage', ?)",
                   (good_time,))  # fmt: skip
        db.execute("INSERT INTO session (device, session_start, recorded_s, good_s, cramps,"
                   " updated, measures) VALUES ('bed', '2026-11-20T22:00:00.000Z', 3600.0,"
                   " '{\"left\": 3600.0}', 0, ?, '{oops')", (good_time,))  # fmt: skip
        # named sessions and lab results no message or form could deliver
        db.execute("INSERT INTO session (device, session_start, recorded_s, good_s, cramps,"
                   " updated, kind, session_id) VALUES ('bed', '2026-11-21T06:30:00.000Z', 900.0,"
                   " '{}', 0, ?, 'Dialysis!', 'x')", (good_time,))  # fmt: skip
        for session_id, details, span in (
            ("bad-details", '{"pre_weight_kg": "heavy"}', "2026-11-21T07:00:00.000Z"),
            ("bad-json", "{oops", "2026-11-21T08:00:00.000Z"),
            ("bad-span", "{}", "not a time"),
        ):
            db.execute("INSERT INTO named_session (session_id, kind, details, source, span_start,"
                       " span_end, updated) VALUES (?, 'dialysis', ?, 'api', ?, ?, ?)",
                       (session_id, details, span, span, good_time))  # fmt: skip
        db.execute("INSERT INTO lab_result VALUES ('bad-lab', ?, 'calcium', 40.0, 'mmol/L', '',"
                   " 'api', ?)", (good_time, good_time))  # fmt: skip


READS = ("/events/good", "/events/strings", "/events/notjson", "/nights/2026-11-20",
         "/nights?first=2026-11-01&last=2026-11-30", "/nights?factor=water",
         "/api/nights?from=2026-11-20", "/api/nights/2026-11-20", "/api/labels",
         "/api/nights/2026-11-20/truth.csv", "/api/nights/2026-11-20/detections.jsonl",
         "/report?first=2026-11-01&last=2026-11-30")  # fmt: skip


def test_every_page_answers_whatever_the_store_holds(dashboard, client: TestClient) -> None:
    _poison_the_store(dashboard.store)
    _poison_the_newer_tables(dashboard.store)
    for page in (*PAGES, *READS):
        started = time.monotonic()
        response = client.get(page)
        assert response.status_code in (200, 404), (page, response.text[:300])
        assert time.monotonic() - started < 5, page
    nights = client.get("/api/nights").json()
    assert [n["night"] for n in nights] == ["2026-11-20"]  # no 1970, no 9999, no bad good_s
    assert nights[-1]["cramps"] == 2  # good, and strings (its trace is left out); others skipped
    assert nights[-1]["sessions"] == 2  # the one with unreadable measures still counts
    strings = client.get("/events/strings")
    assert strings.status_code == 200 and "No envelope trace" in strings.text
    assert [e["entry_id"] for e in client.get("/api/intake").json()] == ["good-intake"]
    assert "lots" not in client.get("/intake").text
    status = client.get("/api/status").json()
    assert status["ingest"]["unreadable_rows"] >= 10
    assert "skipped as unreadable" in client.get("/status").text
    skipped = dashboard.queries.unreadable.counts()
    for table in ("event", "session", "intake", "quality", "marker", "label", "session measures",
                  "device state", "named session", "session details", "lab result"):  # fmt: skip
        assert skipped.get(table), (table, skipped)


def test_a_damaged_night_summary_is_skipped_and_counted(dashboard, client: TestClient) -> None:
    assert send(dashboard, "state", state())
    assert send(dashboard, "event", event())
    assert client.get("/api/nights").json()[-1]["cramps"] == 1
    with dashboard.store.transaction() as db:
        db.execute("INSERT INTO night_summary VALUES ('2026-11-18', '{oops')")
        db.execute("""INSERT INTO night_summary VALUES ('2026-11-17', '{"night": "2026-11-17"}')""")
    assert send(dashboard, "event", event("later", start="2026-11-21T01:00:00.000Z",
                                          end="2026-11-21T01:01:30.000Z"))  # fmt: skip
    for page in (*PAGES, "/nights/2026-11-18", "/nights/2026-11-20"):
        assert client.get(page).status_code == 200, page
    nights = client.get("/api/nights").json()
    assert [(n["night"], n["cramps"]) for n in nights] == [("2026-11-20", 2)]
    assert dashboard.queries.unreadable.counts()["night summary"] == 2


def test_the_migration_moves_implausible_rows_to_the_refusals(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a store as the first schema left it
        db.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version=1; COMMIT;")
    old = Store.__new__(Store)  # write through today's code paths without migrating
    old.path, old._lock, old._writes = path, __import__("threading").RLock(), 0
    old._db = sqlite3.connect(path, check_same_thread=False)
    _poison_the_store(old)
    with old.transaction() as db:
        offset = event("offset", start="2026-11-21T00:30:00+01:00", end="2026-11-21T00:31:30+01:00")
        db.execute("INSERT INTO event VALUES ('offset', 'ended', 'bed', 'left', 'cramp', ?, ?,"
                   " 90.0, 1.0, ?, '2026-11-21T00:00:00.000Z')",
                   (offset["start"], offset["end"], json.dumps(offset)))  # fmt: skip
        db.execute("INSERT INTO quality VALUES ('bed', 'left', '20261120T230000Z', '[]')")
        db.execute("INSERT INTO quality VALUES ('bed', 'left', '2026-11-20T23:00:00.000Z', '[]')")
        db.execute("INSERT INTO marker VALUES ('bed', '1970-01-01T00:00:00Z', 'button')")
        db.execute("INSERT INTO intake VALUES ('i1', '2026-11-20T20:00:00+01:00', 'water', 250,"
                   " 'mL', '', 'api', '2026-11-20')")  # fmt: skip
    old._db.close()

    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        events = {r["event_id"]: r for r in store.query("SELECT * FROM event")}
        assert set(events) == {"good", "offset", "garbage"}  # its message was fine
        assert events["garbage"]["start"] == "2026-11-20T23:10:00.000Z"
        assert events["offset"]["start"] == "2026-11-20T23:30:00.000Z"
        assert json.loads(events["offset"]["payload"])["end"] == "2026-11-20T23:31:30.000Z"
        sessions = [r["session_start"] for r in store.query("SELECT * FROM session")]
        assert sessions == ["2026-11-20T21:30:00.000Z"]
        assert [r["at"] for r in store.query("SELECT at FROM quality")] == [
            "2026-11-20T23:00:00.000Z"
        ]  # the same change twice, in two forms: kept once
        assert store.query("SELECT COUNT(*) AS n FROM marker")[0]["n"] == 0
        assert store.query("SELECT time FROM intake")[0]["time"] == "2026-11-20T19:00:00.000Z"
        assert store.query("SELECT state FROM device")[0]["state"] is None
        reasons = [r["reason"] for r in store.query("SELECT reason FROM refusal")]
        assert len(reasons) == store.counter("refused") == 10
        assert all(r.startswith("removed from the store on upgrade: ") for r in reasons)
        assert any("before start" in r for r in reasons)
        assert any("before 2020" in r for r in reasons)


def test_the_nights_pages_show_at_most_a_year_and_say_so(dashboard, client: TestClient) -> None:
    early = {"left": {"state": "idle", "since": "2020-01-02T21:30:00Z", "good_s": 3600.0}}
    assert send(dashboard, "state", state(session_start="2020-01-02T21:30:00Z", recorded_s=3600.0,
                                          channels=early))  # fmt: skip
    assert send(dashboard, "state", state())
    assert client.get("/api/nights", params={"from": "2020-01-01", "to": "2020-01-03"}).json()[1][
        "has_data"
    ]
    page = client.get("/nights").text  # the default period, not the seven years stored
    assert page.count('<a href="/nights/20') == NIGHTS_PAGE_DAYS
    assert 'id="range-note"' not in page
    asked = client.get("/nights", params={"first": "2020-01-01", "last": "2026-11-20"}).text
    assert asked.count('<a href="/nights/20') == MAX_RANGE_DAYS == 366
    assert "At most a year is shown at a time: 2025-11-20 to 2026-11-20" in asked
    report = client.get("/report", params={"first": "2019-01-01", "last": "2026-11-20"})
    assert report.status_code == 200 and "At most a year is shown" in report.text
    far = client.get("/api/nights", params={"from": "0001-01-01", "to": "0001-01-02"})
    assert far.status_code == 400 and "between 2000-01-01" in far.json()["error"]


def test_a_message_no_check_foresaw_is_refused_and_counted(
    dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(__import__("dashboards.ingest").ingest.VALIDATORS, "marker", broken)
    assert not send(dashboard, "marker", {"x": 1})
    assert dashboard.store.counter("refused") == 1
    assert "ZeroDivisionError" in dashboard.store.query("SELECT reason FROM refusal")[0]["reason"]


def test_intake_from_every_way_in_refuses_what_is_not_a_plain_amount(
    dashboard, client: TestClient
) -> None:
    for body in ({"factor": "water", "amount": True, "unit": "mL"},
                 {"factor": "water", "amount": "9" * 5000 + " mL"}):  # fmt: skip
        response = client.post("/api/intake", json=body)
        assert response.status_code in (400, 422), response.text
    nested = b'{"factor": "water", "amount": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    digits = b'{"factor": "water", "amount": ' + b"9" * 5000 + b"}"
    for raw in (nested, digits):
        response = client.post("/api/intake", content=raw,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        assert 400 <= response.status_code < 500, response.text
    assert dashboard.store.intakes() == []


def test_the_intake_command_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from firmware_host.cli import main

    db = ["--db", str(tmp_path / "d.db"), "--tz", "Europe/Berlin"]
    cases = [
        (["intake", "add", "water", "250mL", "--time", "0001-01-01T00:00"], "out of range"),
        (["intake", "add", "water", "250mL", "--time", "9999-12-31T23:59"], "future"),
        (["intake", "add", "water", "9" * 5000 + "mL"], "characters long"),
    ]
    big = tmp_path / "big.csv"
    big.write_text("Date,Water (g)\n2026-11-01," + "1" * 140_000 + "\n")
    cases.append((["intake", "import", str(big)], "cannot be read as CSV"))
    for argv, message in cases:
        assert main([*argv, *db]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err) < 600, err
    with Store(tmp_path / "d.db") as store:
        assert store.intakes() == []


def test_an_intake_import_reports_ten_problems_and_counts_the_rest(tmp_path: Path) -> None:
    from dashboards.catalogue import IntakeError

    store = Store(tmp_path / "d.db")
    log = IntakeLog(store, load_catalogue(store), TZ)
    rows = "".join(f"2026-10-{day:02d},lots\n" for day in range(1, 31))
    with pytest.raises(IntakeError) as error:
        log.import_cronometer("Date,Water (g)\n" + rows)
    assert str(error.value).count("is not a number") == 10
    assert "... and 20 more" in str(error.value)
    store.close()


def test_an_ingest_with_a_fixed_clock_judges_times_against_receipt(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.db")
    early = Ingest(
        store, lambda payload, person: None, clock=lambda: datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert not early.handle("crampwatch/bed/event", json.dumps(event()).encode())
    late = Ingest(store, lambda payload, person: None, clock=lambda: NOW)
    assert late.handle("crampwatch/bed/event", json.dumps(event()).encode())
    store.close()
