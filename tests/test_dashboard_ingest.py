"""Dashboard ingest and store: by-id storage, duplicates, out-of-order and malformed messages,
schema migrations, and a fuzz run of random and mutated payloads."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards.ingest import Ingest
from dashboards.intake_log import IntakeLog, load_catalogue
from dashboards.store import SCHEMA_VERSION, Store, StoreError

TZ = ZoneInfo("Europe/Berlin")


def event(event_id: str = "e1", phase: str = "ended", **changes) -> dict:
    payload = {
        "schema": "crampwatch.event/1", "event_id": event_id, "device": "bedroom",
        "channel": "left_calf", "kind": "cramp", "phase": phase,
        "start": "2026-11-20T23:10:00.000Z",
        "end": "2026-11-20T23:11:30.000Z" if phase == "ended" else None,
        "start_s": 2400.0, "end_s": 2490.0 if phase == "ended" else None, "duration_s": 90.0,
        "peak_uv": 120.5, "mean_uv": 60.1, "floor_uv": 3.2, "area_uvs": 5400.0,
        "median_freq_hz": 80.0, "quality": "good", "envelope": {"t0_s": 0, "dt_s": 1, "uv": [1]},
        "pipeline": {"version": "0.1.0"},
    }  # fmt: skip
    payload.update(changes)
    return payload


def state(recorded_s: float, session: str = "2026-11-20T22:30:00.000Z") -> dict:
    return {
        "schema": "crampwatch.state/1", "device": "bedroom", "session_start": session,
        "recorded_s": recorded_s, "cramps_tonight": 1,
        "channels": {"left_calf": {"state": "idle", "since": "2026-11-20T22:30:00.000Z",
                                   "since_s": 0.0, "good_s": recorded_s}},
    }  # fmt: skip


@pytest.fixture
def ingest(tmp_path: Path):
    store = Store(tmp_path / "dashboard.db")
    intake = IntakeLog(store, load_catalogue(store), TZ)
    yield Ingest(store, intake.from_mqtt)
    store.close()


def send(ingest: Ingest, leaf: str, payload: dict | bytes, device: str = "bedroom") -> bool:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ingest.handle(f"crampwatch/{device}/{leaf}", body)


def count(ingest: Ingest, table: str) -> int:
    return ingest.store.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]


def test_an_event_delivered_twice_is_stored_once(ingest: Ingest) -> None:
    assert send(ingest, "event", event())
    assert send(ingest, "event", event())
    assert count(ingest, "event") == 1


def test_ended_before_started_keeps_both_phases_and_the_night_uses_the_ended(
    ingest: Ingest,
) -> None:
    from dashboards.catalogue import Catalogue
    from dashboards.queries import Queries

    send(ingest, "event", event(phase="ended"))
    send(ingest, "event", event(phase="started"))
    assert count(ingest, "event") == 2
    queries = Queries(ingest.store, Catalogue(), TZ)
    detail = queries.night_detail(queries.last_night())
    assert [(e["event_id"], e["phase"]) for e in detail["events"]] == [("e1", "ended")]


def test_an_older_state_arriving_late_does_not_move_the_session_back(ingest: Ingest) -> None:
    send(ingest, "state", state(3600.0))
    send(ingest, "state", state(600.0))
    row = ingest.store.query("SELECT recorded_s FROM session")[0]
    assert row["recorded_s"] == 3600.0


@pytest.mark.parametrize(
    ("leaf", "payload", "reason"),
    [
        ("event", b"not json", "not JSON"),
        ("event", b"[1, 2]", "not a JSON object"),
        ("event", event(schema="crampwatch.event/9"), "schema"),
        ("event", event(device="kitchen"), "does not match the topic"),
        ("event", event(kind="yawn"), "kind"),
        ("event", event(duration_s="long"), "must be a number"),
        ("event", event(start="yesterday"), "ISO 8601"),
        ("event", b'{"duration_s": NaN}', "not a number JSON allows"),
        ("state", {**state(10.0), "channels": {}}, "channels is empty"),
        ("status", b"sleeping", "online or offline"),
        ("intake", {"factor": "magnesium", "amount": "300 mL", "time": "2026-11-20T20:00:00Z"}, "volume"),
        ("gossip", {"a": 1}, "unknown message kind"),
    ],
)  # fmt: skip
def test_a_malformed_message_is_refused_counted_and_kept_with_its_reason(
    ingest: Ingest, leaf: str, payload: dict | bytes, reason: str
) -> None:
    assert not send(ingest, leaf, payload)
    assert ingest.store.counter("refused") == 1
    refusal = ingest.store.query("SELECT topic, reason FROM refusal")[0]
    assert reason in refusal["reason"] and refusal["topic"].endswith(leaf)
    assert count(ingest, "event") == count(ingest, "intake") == count(ingest, "session") == 0


def test_intake_over_mqtt_lands_in_the_intake_table_by_entry_id(ingest: Ingest) -> None:
    entry = {"schema": "crampwatch.intake/1", "entry_id": "i1", "time": "2026-11-20T20:00:00Z",
             "factor": "magnesium", "amount": 0.3, "unit": "g", "note": "<b>tablet</b>"}  # fmt: skip
    assert send(ingest, "intake", entry, device="anna")
    assert send(ingest, "intake", entry, device="anna")
    stored = ingest.store.intakes()
    assert len(stored) == 1 and stored[0].amount == 300.0 and stored[0].unit == "mg"
    assert stored[0].note == "<b>tablet</b>"  # stored as text; the pages escape it


def test_the_schema_is_versioned_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.db"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer crampwatch"):
        Store(path)


def test_a_file_that_is_not_a_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "dashboard.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match="--db"):
        Store(path)


def _mutations(rng: random.Random, payload: dict) -> bytes:
    """A valid payload with one thing broken, or random bytes."""
    choice = rng.randrange(6)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    mutated = dict(payload)
    key = rng.choice(list(mutated))
    if choice == 1:
        del mutated[key]
    elif choice == 2:
        mutated[key] = rng.choice([None, -1, 1e308, "", "x" * 500, [], {}, True, "2026-13-45"])
    elif choice == 3:
        mutated[rng.choice(["extra", key])] = {"nested": [1, 2, {"deep": None}]}
    elif choice == 4:
        text = json.dumps(mutated)
        cut = rng.randrange(len(text))
        return text[:cut].encode()
    return json.dumps(mutated).encode()


def test_fuzz_thousands_of_random_and_mutated_payloads_never_stop_ingest(ingest: Ingest) -> None:
    rng = random.Random(1234)
    valid_event_ids = set()
    templates = {"event": event(), "state": state(100.0), "quality": {
        "schema": "crampwatch.quality/1", "device": "bedroom", "channel": "left_calf",
        "at": "2026-11-20T23:00:00.000Z", "at_s": 1800.0, "good": False,
        "problems": ["electrode_off"]},
        "intake": {"factor": "water", "amount": 250, "unit": "mL", "time": "2026-11-20T20:00:00Z"},
        "envelope": {"schema": "crampwatch.envelope/1", "device": "bedroom",
                     "at": "2026-11-20T23:00:00.000Z", "channels": {}},
        "marker": {"schema": "crampwatch.marker/1", "device": "bedroom",
                   "at": "2026-11-20T23:00:00.000Z", "at_s": 1.0, "source": "button"}}  # fmt: skip
    leaves = [*templates, "status", "bogus"]
    stored = refused = 0
    for i in range(3000):
        leaf = rng.choice(leaves)
        if leaf in templates:
            template = dict(templates[leaf])
            if leaf == "event":
                template["event_id"] = f"e{i % 50}"
            payload = (
                _mutations(rng, template) if rng.random() < 0.8 else json.dumps(template).encode()
            )
        else:
            payload = rng.choice([b"online", b"offline", b"", b"\xff\xfe", b"{}"])
        topic = rng.choice([f"crampwatch/bedroom/{leaf}", f"crampwatch/bedroom/{leaf}/x", "x/y"])
        ok = ingest.handle(topic, payload)
        stored += ok
        refused += not ok
        if ok and leaf == "event" and topic == "crampwatch/bedroom/event":
            valid_event_ids.add(json.loads(payload)["event_id"])
    assert refused > 1000 and stored > 200
    assert ingest.store.counter("refused") == refused and ingest.store.counter("stored") == stored
    # Every stored event is a whole, valid one, stored once per id and phase.
    rows = ingest.store.query("SELECT event_id, phase, payload FROM event")
    assert {r["event_id"] for r in rows} == valid_event_ids
    assert len({(r["event_id"], r["phase"]) for r in rows}) == len(rows)
    assert ingest.store.query("SELECT COUNT(*) AS n FROM refusal")[0]["n"] <= 1000


def test_the_dashboard_survives_a_broker_restart_and_gets_what_was_sent_while_it_was_away(
    mosquitto, tmp_path: Path
) -> None:
    import time

    import paho.mqtt.client as mqtt

    from dashboards.server import build

    process = build(tmp_path / "d.db", broker=("127.0.0.1", mosquitto.port), tz=TZ)
    assert process.mqtt is not None and process.mqtt.connected.wait(10)
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()

    def publish(event_id: str) -> None:
        device.publish(
            "crampwatch/bedroom/event", json.dumps(event(event_id)), qos=1
        ).wait_for_publish(10)

    def stored() -> set[str]:
        return {r["event_id"] for r in process.store.query("SELECT event_id FROM event")}

    def wait(predicate, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.05)
        return predicate()

    publish("before")
    assert wait(lambda: stored() == {"before"})
    mosquitto.restart()
    assert process.mqtt.connected.wait(1) or wait(process.mqtt.connected.is_set, 30)
    device.reconnect()
    publish("after-restart")
    assert wait(lambda: "after-restart" in stored())
    process.mqtt.stop()  # the dashboard goes away; its session stays on the broker
    publish("while-away")
    process.close()
    again = build(tmp_path / "d.db", broker=("127.0.0.1", mosquitto.port), tz=TZ)
    assert wait(
        lambda: (
            "while-away" in {r["event_id"] for r in again.store.query("SELECT event_id FROM event")}
        )
    )
    again.close()
    device.loop_stop()
