"""Named sessions on the device: the command contract (`messaging.sessions`), the session control
(commands, floods, the long press), the state cut where a session starts and ends, the session
in every message; end to end against a real Mosquitto: `crampwatch run --session dialysis` and a
session started and ended over MQTT reach the dashboard as a session, never as a night."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from dashboards.server import build
from dsp.events import QualityChange
from dsp.limb_movements import LimbMovementRules, LimbMovementSummary, PlmFigures
from firmware_host.cli import main
from firmware_host.device.messages import (
    ChannelStates,
    EnvelopeSummary,
    marker_payload,
    quality_payload,
)
from firmware_host.device.session_control import (
    MAX_CHANGES_PER_MINUTE,
    NIGHT_TAG,
    SessionControl,
    SessionTag,
)
from hardware.synthetic_emg import SyntheticEMG, scenario
from messaging.sessions import (
    CommandError,
    end_command,
    parse_command,
    start_command,
)
from messaging.topics import Topics
from tests.broker import Collector, Mosquitto

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 16, 6, 30, tzinfo=UTC)

# -- the command contract ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"start dialysis", "not JSON"),
        (b'{"schema": "crampwatch.command/1", "command": "start_session", "session_kind": NaN}',
         "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"[" * 5000 + b"]" * 5000, "over the 1024"),
        (b"[" * 500 + b"]" * 500, "not a JSON object"),
        (b'{"schema": "crampwatch.command/1", "command": "start_session", "kind": "dialysis"}',
         "unknown field(s) kind"),
        (b'{"command": "start_session", "session_kind": "dialysis"}', "expected 'crampwatch.command/1'"),
        (b'{"schema": "crampwatch.command/1", "command": "reboot"}', "not one of start_session"),
        (b'{"schema": "crampwatch.command/1", "command": "start_session"}', "needs a session_kind"),
        (b'{"schema": "crampwatch.command/1", "command": "start_session", "session_kind": "night"}',
         "a night is not started"),
        (b'{"schema": "crampwatch.command/1", "command": "start_session", "session_kind": "Dial ysis"}',
         "lower-case letters"),
        (b'{"schema": "crampwatch.command/1", "command": "start_session", "session_kind": "dialysis",'
         b' "session_id": "a/b#"}', "session id"),
        (b'{"schema": "crampwatch.command/1", "command": "end_session", "session_kind": "dialysis"}',
         "takes no session_kind"),
        (b'\xff\xfe', "not UTF-8"),
    ],
)  # fmt: skip
def test_a_bad_command_is_refused_with_what_was_wrong(payload: bytes, words: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse_command(payload)
    assert words in str(refused.value)


def test_a_command_reads_back_as_it_was_written() -> None:
    for command in (start_command("dialysis", "dialysis-1"), start_command("infusion"),
                    end_command(), end_command("dialysis-1")):  # fmt: skip
        assert parse_command(command.payload()) == command
    with pytest.raises(ValueError, match="a night is not started"):
        start_command("night")


# -- the session control -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_commands_start_and_end_sessions_in_order_and_repeats_change_nothing() -> None:
    control = SessionControl()
    control.on_command(start_command("dialysis", "d-1").payload())
    control.on_command(start_command("dialysis", "d-1").payload())  # QoS 1: delivered twice
    (change,) = control.take(100.0)
    assert (change.before, change.after, change.at_s) == (NIGHT_TAG, SessionTag("dialysis", "d-1"),
                                                          100.0)  # fmt: skip
    control.on_command(end_command("another").payload())  # not the current session
    assert control.take(150.0) == [] and control.current.session_id == "d-1"
    control.on_command(end_command("d-1").payload())
    control.on_command(end_command().payload())  # nothing left to end
    (change,) = control.take(200.0)
    assert change.after == NIGHT_TAG and change.at_s == 200.0
    assert control.take(250.0) == []


def test_a_retained_command_and_a_flood_are_refused_and_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    control = SessionControl(monotonic=clock)
    with caplog.at_level(logging.WARNING, logger="crampwatch.session"):
        assert not control.on_command(start_command("dialysis").payload(), retained=True)
        for i in range(MAX_CHANGES_PER_MINUTE + 30):
            payload = (start_command if i % 2 == 0 else end_command)(
                *(("dialysis",) if i % 2 == 0 else ())).payload()  # fmt: skip
            control.on_command(payload)
        for _ in range(50):
            control.on_command(b"garbage")
    assert len(control.take(10.0)) == MAX_CHANGES_PER_MINUTE
    assert control.refused == 1 + 30 + 50

    def warnings() -> list[str]:  # (the sessions started meanwhile are logged as information)
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    assert len(warnings()) == 1 and "retained" in warnings()[0]
    clock.now = 61.0
    with caplog.at_level(logging.WARNING, logger="crampwatch.session"):
        control.on_command(b"garbage")
    assert "80 more refused since the last warning" in warnings()[-1]
    assert control.on_command(start_command("dialysis", "later").payload())  # room again


def test_a_hold_starts_the_session_at_its_press_and_the_next_hold_ends_it_at_the_hold() -> None:
    control = SessionControl(hold_kind="dialysis")
    control.hold(press_at_s=97.0, held_at_s=100.0)
    (started,) = control.take(101.5)
    assert started.after.kind == "dialysis" and started.at_s == 97.0 and started.source == "button"
    control.hold(press_at_s=1997.0, held_at_s=2000.0)
    (ended,) = control.take(2001.0)
    assert ended.before == started.after and ended.after == NIGHT_TAG and ended.at_s == 2000.0


def test_the_long_press_of_the_real_button_starts_and_ends_a_dialysis_session() -> None:
    import argparse

    from firmware_host.device import live_sources
    from firmware_host.device.device_panel import DevicePanel
    from hardware.pins import MARKER_BUTTON_PIN

    args = argparse.Namespace(sim="mcp3008", signal="synthetic", signal_fs=None,
                              signal_units=None, hours=0.01, seed=1, speed=0, rate=None,
                              bus_error_rate=0.0)  # fmt: skip
    live = live_sources.open_live(args)
    control = SessionControl()
    with DevicePanel(live, ("left_calf", "right_calf"), control) as panel:
        panel.button.hold_time = 0.2  # gpiozero's hold timer runs in real time
        panel.button._button.hold_time = 0.2
        from dsp.pipeline import PipelineOutput

        idle = PipelineOutput(0, np.empty((0, 2)))
        panel.update(idle, elapsed_s=0.0)
        live.source.clock.sleep(30.0)
        button = live.pin_factory.pin(MARKER_BUTTON_PIN)
        button.drive_low()
        deadline = time.monotonic() + 5
        markers: list[dict] = []
        while time.monotonic() < deadline and not any(m["source"] == "hold" for m in markers):
            markers += panel.update(idle, elapsed_s=30.0)
            time.sleep(0.05)
        button.drive_high()
    (started,) = control.take(31.0)
    assert [m["source"] for m in markers] == ["button", "hold"]
    assert started.after.kind == "dialysis" and started.at_s == pytest.approx(29.8, abs=0.05)


# -- the state and the messages ----------------------------------------------------------------


def plm(count: int, scored_s: float) -> LimbMovementSummary:
    figures = PlmFigures(plm=count, plm_series=1, scored_s=scored_s)
    return LimbMovementSummary({"a": figures}, figures, (), LimbMovementRules())


def test_the_state_is_cut_where_a_named_session_starts_and_ends() -> None:
    states = ChannelStates("bed", ("a",), START)
    states.set_limb_movements(plm(10, 3600.0))
    states.change("a", "cramp", 600.0)
    states.change("a", "signal_lost", 3000.0)
    dialysis = SessionTag("dialysis", "d-1")
    last_night = json.loads(states.payload(3600.0))
    states.begin(3600.0, dialysis)
    states.change("a", "idle", 4200.0)  # the signal comes back 10 min into the session
    states.change("a", "cramp", 5000.0)
    states.set_limb_movements(plm(12, 7200.0))
    session = json.loads(states.payload(7200.0))
    states.begin(7200.0, NIGHT_TAG)
    states.change("a", "idle", 7300.0)
    states.set_limb_movements(plm(15, 9000.0))
    after = json.loads(states.payload(9000.0))
    assert (last_night["session_kind"], last_night["recorded_s"]) == ("night", 3600.0)
    assert last_night["channels"]["a"]["good_s"] == 3000.0 and "session_id" not in last_night
    assert session["session_start"] == "2026-11-16T07:30:00.000Z"
    assert (session["session_kind"], session["session_id"]) == ("dialysis", "d-1")
    assert session["recorded_s"] == 3600.0 and session["channels"]["a"]["good_s"] == 3000.0
    assert session["cramps_session"] == 1 and session["cramps_tonight"] == 1  # the night's stays
    assert "plm_tonight" not in session  # a sleep measure: not for a daytime session
    assert session["recording_start"] == last_night["session_start"]
    assert (after["session_kind"], after["recorded_s"], after["cramps_tonight"]) == ("night",
                                                                                    1800.0, 1)  # fmt: skip
    assert after["plm_tonight"] == 3 and after["plm_per_hour"] == pytest.approx(6.0)  # since 2 h


def test_every_message_says_which_session_it_belongs_to() -> None:
    tag = SessionTag("dialysis", "d-1")
    quality = json.loads(quality_payload(QualityChange("a", 5.0, ("electrode_off",)),
                                         "bed", START, tag))  # fmt: skip
    marker = json.loads(marker_payload("bed", "2026-11-16T07:00:00.000Z", 5.0, "button", tag))
    (envelope,) = EnvelopeSummary("bed", ("a",), 0.02, START, session=lambda: tag).add(
        0, np.ones((50, 1))
    )
    for payload in (quality, marker, json.loads(envelope)):
        assert (payload["session_kind"], payload["session_id"]) == ("dialysis", "d-1")
    night = json.loads(marker_payload("bed", "2026-11-16T07:00:00.000Z", 5.0, "button"))
    assert night["session_kind"] == "night" and "session_id" not in night


# -- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cramp_at_40(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s, two calves at 1 kHz: one cramp (40-60 s)."""
    plan = scenario(21, fs=1000.0, duration_s=75.0, channels=("left_calf", "right_calf"),
                    events=[("cramp", 40.0, 60.0, "left_calf")])  # fmt: skip
    path = tmp_path_factory.mktemp("sessions") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=21).render().astype(np.float32))
    return path


def run_args(recording: Path, broker: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--play", str(recording), "--signal-fs", "1000", "--signal-units", "uV",
            "--broker", broker, "--outbox", str(tmp_path / "outbox.db"), "--device", "chair",
            "--no-record", "--no-discovery", *extra]  # fmt: skip


def wait_for(predicate, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_session_recorded_as_dialysis_reaches_the_dashboard_as_a_session_not_a_night(
    cramp_at_40: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dashboard = build(tmp_path / "dashboard.db", broker=("127.0.0.1", mosquitto.port),
                      tz=ZoneInfo("UTC"), min_nights=1, min_sessions=1)  # fmt: skip
    try:
        assert dashboard.mqtt is not None and dashboard.mqtt.connected.wait(10)
        collector = Collector(mosquitto, "crampwatch/chair/#")
        argv = run_args(cramp_at_40, mosquitto.address, tmp_path, "--speed", "0", "--session",
                        "dialysis")  # fmt: skip
        assert main(argv) == 0
        assert collector.wait_for(
            lambda: any(b'"phase":"ended"' in p for p in collector.on("/event"))
        )
        for topic in ("/event", "/state", "/quality", "/envelope"):
            for message in collector.json_on(topic):
                assert message["session_kind"] == "dialysis", (topic, message)
        session_id = collector.json_on("/state")[-1]["session_id"]

        def stored() -> bool:  # the last state too
            data = dashboard.queries.sessions.data()
            return data.index(session_id) == 0 and data.summaries[0].recorded_minutes > 1.2

        assert wait_for(stored)
        summary = dashboard.queries.sessions.data().summaries[0]
        assert summary.has_recording and summary.recorded_minutes == pytest.approx(1.25, abs=0.02)
        assert summary.cramps == 1
        assert summary.first_cramp_min == pytest.approx(40 / 60, abs=0.05)
        today = datetime.now(UTC).date()
        nights = dashboard.queries.nights(today - timedelta(days=1), today)
        assert all(n.cramps == 0 and not n.has_data for n in nights)  # no night got any of it
        collector.close()
    finally:
        dashboard.close()


def publish(mosquitto: Mosquitto, topic: str, payload: bytes, retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_a_session_started_and_ended_over_mqtt_cuts_the_recording_and_bad_commands_change_nothing(
    cramp_at_40: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dashboard = build(tmp_path / "dashboard.db", broker=("127.0.0.1", mosquitto.port),
                      tz=ZoneInfo("UTC"), min_nights=1, min_sessions=1)  # fmt: skip
    log = tmp_path / "daemon.log"
    collector = Collector(mosquitto, "crampwatch/chair/#")
    command = Topics("chair").command
    # kept by the broker, it arrives marked retained when the device subscribes: refused
    publish(mosquitto, command, start_command("dialysis").payload(), retain=True)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "firmware_host.cli",
         *run_args(cramp_at_40, mosquitto.address, tmp_path, "--speed", "4")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    try:
        assert dashboard.mqtt is not None and dashboard.mqtt.connected.wait(10)
        assert collector.wait_for(lambda: collector.on("/state"))  # connected and subscribed
        for bad in (b"garbage", b'{"schema": "crampwatch.command/1", "command": "reboot"}',
                    b"[" * 800 + b"]" * 800):  # fmt: skip
            publish(mosquitto, command, bad)
        session_id, _ = dashboard.sessions.start("dialysis", "api")  # the dashboard tells it
        assert collector.wait_for(lambda: any(
            s.get("session_id") == session_id for s in collector.json_on("/state")))  # fmt: skip
        assert collector.wait_for(lambda: any(
            e["phase"] == "ended" for e in collector.json_on("/event")), timeout_s=40)  # fmt: skip
        dashboard.sessions.end(session_id, "api")
        assert collector.wait_for(
            lambda: collector.json_on("/state")[-1]["session_kind"] == "night"
        )
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        collector.close()
    try:
        states = collector.json_on("/state")
        starts = sorted({(s["session_start"], s["session_kind"]) for s in states})
        assert [kind for _, kind in starts] == ["night", "dialysis", "night"]  # cut twice
        (event,) = [e for e in collector.json_on("/event") if e["phase"] == "ended"]
        assert (event["session_kind"], event["session_id"]) == ("dialysis", session_id)
        text = log.read_text()
        assert "refused a command on MQTT" in text and "retained" in text
        assert f"dialysis session {session_id} started" in text
        assert wait_for(lambda: dashboard.queries.sessions.data().summaries
                        and dashboard.queries.sessions.data().summaries[0].cramps == 1)  # fmt: skip
        named = dashboard.queries.sessions.data().named[0]
        assert named.session_id == session_id and named.device == "chair" and named.recordings
        today = datetime.now(UTC).date()
        assert all(
            n.cramps == 0 for n in dashboard.queries.nights(today - timedelta(days=1), today)
        )
    finally:
        dashboard.close()


def test_run_refuses_a_session_kind_it_cannot_use(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--sim", "mcp3008", "--session", "Dialysis!", "--no-mqtt"]) == 2
    assert "--session: session kind 'Dialysis!' is not allowed" in capsys.readouterr().err


def test_the_session_control_is_safe_from_many_threads() -> None:
    control = SessionControl()
    done = threading.Barrier(4)

    def hammer() -> None:
        done.wait()
        for _ in range(200):
            control.on_command(b"{}")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert control.refused == 800 and control.take(1.0) == []
