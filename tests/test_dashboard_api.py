"""The dashboard's JSON API and pages: intake CRUD, refusals with reasons, escaping, the token,
nights and insights, and a fuzz run against the OpenAPI description."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from dashboards.server import build

TZ = ZoneInfo("Europe/Berlin")
TEST_HOST = "testserver"  # the name Starlette's and schemathesis' test clients send


@pytest.fixture
def dashboard(tmp_path: Path):
    process = build(tmp_path / "dashboard.db", broker=None, tz=TZ, min_nights=3,
                    allowed_hosts=[TEST_HOST])  # fmt: skip
    yield process
    process.close()


@pytest.fixture
def client(dashboard) -> TestClient:
    return TestClient(dashboard.app)


def test_intake_can_be_added_listed_edited_and_deleted(client: TestClient) -> None:
    added = client.post("/api/intake", json={"factor": "magnesium", "amount": "0.3 g",
                                             "time": "2026-11-20T20:00:00+01:00"})  # fmt: skip
    assert added.status_code == 201
    entry = added.json()
    assert (entry["amount"], entry["unit"], entry["time"]) == (
        300.0,
        "mg",
        "2026-11-20T19:00:00.000Z",
    )
    listed = client.get("/api/intake").json()
    assert [e["entry_id"] for e in listed] == [entry["entry_id"]]
    changed = client.put(f"/api/intake/{entry['entry_id']}", json={"factor": "magnesium", "amount": "400 mg",
                         "time": "2026-11-20T20:00:00+01:00"})  # fmt: skip
    assert changed.status_code == 200 and client.get("/api/intake").json()[0]["amount"] == 400.0
    assert client.delete(f"/api/intake/{entry['entry_id']}").status_code == 200
    assert client.get("/api/intake").json() == []
    assert client.delete(f"/api/intake/{entry['entry_id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"factor": "magnesium", "amount": "300 mL"}, "is a volume"),
        ({"factor": "water", "amount": -1}, "negative"),
        ({"factor": "water", "amount": "lots"}, "lots"),
        ({"factor": "water", "amount": 250, "unit": "mL", "time": "next tuesday"}, "time"),
        ({"factor": "", "amount": 1}, "factor"),
    ],
)
def test_bad_intake_gets_a_message_that_says_what_was_wrong(
    client: TestClient, body: dict, message: str
) -> None:
    response = client.post("/api/intake", json=body)
    assert response.status_code in (400, 422)
    assert message in json.dumps(response.json())
    assert client.get("/api/intake").json() == []


def test_text_with_html_is_shown_as_text(client: TestClient) -> None:
    note = '<script>alert("x")</script><b>bold</b>'
    client.post("/api/intake", json={"factor": "water", "amount": 250, "unit": "mL", "note": note})
    page = client.get("/intake").text
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<b>bold</b>" not in page


def test_nights_insights_and_the_report_come_from_stored_events_and_intake(
    dashboard, client: TestClient
) -> None:
    start = datetime(2026, 11, 10, 21, 30, tzinfo=UTC)
    for night in range(6):
        session = start + timedelta(days=night)
        dashboard.ingest.handle("crampwatch/bed/state", json.dumps({
            "schema": "crampwatch.state/1", "device": "bed", "session_start": session.isoformat(),
            "recorded_s": 8 * 3600.0, "cramps_tonight": night % 2,
            "channels": {"left": {"state": "idle", "since": session.isoformat(), "since_s": 0.0,
                                  "good_s": 8 * 3600.0}}}).encode())  # fmt: skip
        for k in range(night % 3):
            onset = session + timedelta(hours=2 + k)
            dashboard.ingest.handle("crampwatch/bed/event", json.dumps({
                "schema": "crampwatch.event/1", "event_id": f"n{night}k{k}", "device": "bed",
                "channel": "left", "kind": "cramp", "phase": "ended", "start": onset.isoformat(),
                "end": (onset + timedelta(seconds=60)).isoformat(), "start_s": 7200.0,
                "end_s": 7260.0, "duration_s": 60.0, "peak_uv": 100.0}).encode())  # fmt: skip
        client.post("/api/intake", json={"factor": "magnesium", "amount": 100 * (night % 3),
                    "unit": "mg", "time": (session - timedelta(hours=2)).isoformat()})  # fmt: skip
    nights = client.get("/api/nights", params={"from": "2026-11-10", "to": "2026-11-15"}).json()
    assert [n["cramps"] for n in nights] == [0, 1, 2, 0, 1, 2]
    assert all(n["complete"] for n in nights)
    insights = client.get("/api/insights").json()
    magnesium = [r for r in insights["results"] if r["factor"] == "magnesium" and r["lag"] == 0]
    assert magnesium[0]["rho"] == pytest.approx(1.0) and magnesium[0]["nights"] == 6
    assert any("not cause" in c for c in insights["caveats"])
    assert "4 of the 7 nights" in (insights["notice"] or "")
    report = client.get("/report", params={"first": "2026-11-10", "last": "2026-11-15"}).text
    assert "2026-11-15" in report and "doctor" in report
    for page in ("/", "/nights?factor=magnesium", "/insights", "/status", "/events/n1k0"):
        assert client.get(page).status_code == 200


def test_a_token_is_required_when_one_is_set(tmp_path: Path) -> None:
    process = build(
        tmp_path / "d.db", broker=None, tz=TZ, token="s3cret", allowed_hosts=[TEST_HOST]
    )
    client = TestClient(process.app)
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/?token=s3cret").status_code == 200
    assert client.get("/api/status").status_code == 200  # the cookie set above
    process.close()


def test_listening_beyond_loopback_without_a_token_is_refused(
    capsys: pytest.CaptureFixture,
) -> None:
    from firmware_host.cli import main

    assert main(["dashboard", "--host", "0.0.0.0", "--broker", "none"]) == 2
    assert "--token" in capsys.readouterr().err


def test_bad_query_dates_say_what_is_expected(client: TestClient) -> None:
    response = client.get("/api/nights", params={"from": "yesterday"})
    assert response.status_code == 400 and "2026-11-21" in response.json()["error"]


def test_fuzzing_the_api_against_its_openapi_description_finds_no_server_error(
    tmp_path: Path,
) -> None:
    process = build(tmp_path / "fuzz.db", broker=None, tz=TZ, allowed_hosts=[TEST_HOST])
    schema = schemathesis.openapi.from_asgi("/openapi.json", process.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    # The live stream never ends by design; it has no input to fuzz.
    operations = [op for op in operations if op.path != "/api/live"]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def no_server_error(case) -> None:
            response = case.call()
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text}"

        no_server_error()
    process.close()


def test_intake_from_the_command_line_lands_in_the_same_table(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from dashboards.store import Store
    from firmware_host.cli import main

    db = ["--db", str(tmp_path / "d.db"), "--tz", "Europe/Berlin"]
    assert main(["intake", "add", "magnesium", "300mg", "--time", "2026-11-20T20:00", *db]) == 0
    assert "logged: 300 mg magnesium" in capsys.readouterr().out
    assert main(["intake", "add", "magnesium", "300mL", *db]) == 2
    assert "is a volume" in capsys.readouterr().err
    csv = tmp_path / "dailysummary.csv"
    csv.write_text("Date,Energy (kcal),Water (g),Magnesium (mg)\n2026-11-19,1800,1500,250\n")
    assert main(["intake", "import", str(csv), *db]) == 0
    with Store(tmp_path / "d.db") as store:
        entries = {(e.factor, e.amount, e.source) for e in store.intakes()}
    assert entries == {("magnesium", 300.0, "cli"), ("water", 1500.0, "cronometer"),
                       ("magnesium", 250.0, "cronometer")}  # fmt: skip


def test_a_range_with_one_end_stops_at_the_data_and_never_runs_backwards(
    dashboard, client: TestClient
) -> None:
    session = "2026-11-10T21:30:00+00:00"
    dashboard.ingest.handle("crampwatch/bed/state", json.dumps({
        "schema": "crampwatch.state/1", "device": "bed", "session_start": session,
        "recorded_s": 3600.0, "cramps_tonight": 0,
        "channels": {"left": {"state": "idle", "since": session, "good_s": 3600.0}}}).encode())  # fmt: skip
    after = client.get("/api/nights", params={"from": "2026-12-01"})
    before = client.get("/api/nights", params={"to": "2026-11-01"})
    since = client.get("/api/nights", params={"from": "2026-11-08"})
    assert after.status_code == before.status_code == since.status_code == 200
    assert [n["night"] for n in after.json()] == ["2026-12-01"]
    assert [n["night"] for n in before.json()] == ["2026-11-01"]
    assert [n["night"] for n in since.json()] == ["2026-11-08", "2026-11-09", "2026-11-10"]
