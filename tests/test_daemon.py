"""`crampwatch run` as the device daemon against a real Mosquitto: topics and payloads, retained
state, broker outages, SIGKILL and restart, SIGTERM, bad settings."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dsp.events import EVENT_FIELDS
from firmware_host.cli import main
from firmware_host.device.outbox import Outbox
from hardware.synthetic_emg import SyntheticEMG, scenario
from tests.broker import Collector, Mosquitto, free_port

ROOT = Path(__file__).resolve().parents[1]
NIGHT_S = 1200.0
CRAMPS = [(100.0, 130.0), (400.0, 460.0), (700.0, 725.0), (1000.0, 1040.0)]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 minutes, two calves at 1 kHz (.npy: channels ch0, ch1): four cramps, movements."""
    events = [("cramp", a, b, "ch1" if i % 2 else "ch0") for i, (a, b) in enumerate(CRAMPS)]
    events += [("movement", t, t + 3.0) for t in (250.0, 560.0, 880.0, 1120.0)]
    plan = scenario(11, fs=1000.0, duration_s=NIGHT_S, channels=("ch0", "ch1"), events=events)
    path = tmp_path_factory.mktemp("daemon") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=11).render().astype(np.float32))
    return path


def daemon_args(night: Path, broker: str, outbox: Path, *extra: str) -> list[str]:
    return [
        "run", "--play", str(night), "--signal-fs", "1000", "--signal-units", "uV",
        "--broker", broker, "--outbox", str(outbox), "--device", "bedroom", "--no-record", *extra,
    ]  # fmt: skip


def start_daemon(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "firmware_host.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def events_in(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if "event_id" in line]


def keys(events: list[dict]) -> list[tuple[str, str]]:
    return sorted((e["event_id"], e["phase"]) for e in events)


def test_a_simulated_nights_messages_reach_an_independent_subscriber(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # Line-buffered into a file, so that nothing is held back when it is stopped.
    received = tmp_path / "mosquitto_sub.txt"
    sub = subprocess.Popen(
        ["stdbuf", "-oL", "mosquitto_sub", "-p", str(mosquitto.port), "-v",
         "-t", "crampwatch/#", "-t", "homeassistant/#"],
        stdout=received.open("w"),
    )  # fmt: skip
    time.sleep(0.5)
    out = tmp_path / "events.jsonl"
    args = daemon_args(
        night, mosquitto.address, tmp_path / "outbox.db", "--speed", "0", "--out", str(out)
    )
    assert main(args) == 0
    time.sleep(1.0)
    sub.terminate()
    sub.wait(timeout=10)
    lines = received.read_text().splitlines()
    by_topic: dict[str, list[str]] = {}
    for line in lines:
        topic, _, payload = line.partition(" ")
        by_topic.setdefault(topic, []).append(payload)
    events = [json.loads(p) for p in by_topic["crampwatch/bedroom/event"]]
    assert keys(events) == keys(events_in(out))
    cramps = [e for e in events if e["kind"] == "cramp" and e["phase"] == "ended"]
    assert len(cramps) == len(CRAMPS)
    for event in events:
        assert set(EVENT_FIELDS) <= set(event) and event["schema"] == "crampwatch.event/1"
        assert event["device"] == "bedroom"
    assert by_topic["crampwatch/bedroom/status"] == ["online", "offline"]
    state = json.loads(by_topic["crampwatch/bedroom/state"][-1])
    assert state["schema"] == "crampwatch.state/1" and state["cramps_tonight"] == len(CRAMPS)
    assert set(state["channels"]) == {"ch0", "ch1"}
    assert {"state", "since", "good_s"} <= set(state["channels"]["ch0"])
    assert state["recorded_s"] == pytest.approx(NIGHT_S, abs=1)
    assert state["channels"]["ch0"]["good_s"] == pytest.approx(NIGHT_S, abs=1)
    envelope = json.loads(by_topic["crampwatch/bedroom/envelope"][0])
    assert envelope["schema"] == "crampwatch.envelope/1" and envelope[
        "interval_s"
    ] == pytest.approx(1.0)
    assert len(by_topic["crampwatch/bedroom/envelope"]) >= 0.9 * NIGHT_S
    assert any(t.startswith("homeassistant/binary_sensor/crampwatch_bedroom/") for t in by_topic)

    late = Collector(mosquitto, "crampwatch/#")
    assert late.wait_for(lambda: late.on("/status") == [b"offline"] and len(late.on("/state")) == 1)
    assert all(retained for _, _, retained in late.messages)
    assert json.loads(late.on("/state")[0]) == state
    late.close()


@pytest.mark.slow
def test_a_broker_outage_mid_night_loses_nothing_and_duplicates_keep_their_ids(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, "crampwatch/bedroom/event")
    out = tmp_path / "events.jsonl"
    # 20 minutes of night in about 15 s; the broker is away for about 5 minutes of it.
    daemon = start_daemon(
        daemon_args(night, mosquitto.address, tmp_path / "outbox.db", "--speed", "80", "--out", str(out)),
        tmp_path / "daemon.log",
    )  # fmt: skip
    assert collector.wait_for(lambda: len(collector.on("/event")) >= 2, 30)  # first cramp started
    mosquitto.stop()
    time.sleep(4.0)
    mosquitto.start()
    assert daemon.wait(timeout=90) == 0
    assert collector.wait_for(lambda: keys(collector.json_on("/event")) and
                              set(keys(collector.json_on("/event"))) == set(keys(events_in(out))), 30)  # fmt: skip
    received = collector.json_on("/event")
    for event_id, phase in {(e["event_id"], e["phase"]) for e in received}:
        copies = [e for e in received if (e["event_id"], e["phase"]) == (event_id, phase)]
        assert all(c == copies[0] for c in copies)  # a duplicate is the same message
    log = (tmp_path / "daemon.log").read_text()
    assert "lost the MQTT broker" in log and "(again)" in log
    collector.close()


@pytest.mark.slow
def test_after_sigkill_the_will_says_offline_and_a_restart_delivers_what_was_not_sent(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    outbox_path = tmp_path / "outbox.db"
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    daemon = start_daemon(
        daemon_args(night, mosquitto.address, outbox_path, "--speed", "60"), tmp_path / "first.log"
    )
    assert collector.wait_for(lambda: collector.on("/status")[-1:] == [b"online"], 20)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    assert collector.wait_for(lambda: collector.on("/status")[-1:] == [b"offline"], 10)

    # Now with the broker away: events pile up in the outbox, then the daemon is killed.
    mosquitto.stop()
    daemon = start_daemon(
        daemon_args(night, mosquitto.address, outbox_path, "--speed", "40"), tmp_path / "second.log"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _unsent_events(outbox_path) < 3:
        time.sleep(0.2)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    with Outbox(outbox_path) as outbox:
        waiting = [json.loads(m.payload) for m in outbox.unsent(limit=1000) if m.kind == "event"]
    assert len(waiting) >= 3

    mosquitto.start()
    restarted = start_daemon(
        daemon_args(night, mosquitto.address, outbox_path, "--speed", "0", "--hours", "0.01"),
        tmp_path / "third.log",
    )
    assert restarted.wait(timeout=60) == 0
    wanted = {(e["event_id"], e["phase"]) for e in waiting}
    assert collector.wait_for(
        lambda: wanted <= {(e["event_id"], e["phase"]) for e in collector.json_on("/event")}, 30
    )
    collector.close()


def _unsent_events(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with Outbox(path) as outbox:
            return sum(1 for m in outbox.unsent(limit=1000) if m.kind == "event")
    except Exception:  # the daemon may be creating it
        return 0


def test_sigterm_stops_cleanly_closing_events_and_saying_offline(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    out = tmp_path / "events.jsonl"
    daemon = start_daemon(
        daemon_args(night, mosquitto.address, tmp_path / "outbox.db", "--speed", "20", "--out", str(out)),
        tmp_path / "daemon.log",
    )  # fmt: skip
    # Stop in the middle of the first cramp (100-130 s of the night, 5-6.5 s at 20x).
    assert collector.wait_for(
        lambda: any(e["phase"] == "started" for e in collector.json_on("/event")), 30
    )
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert collector.wait_for(lambda: collector.on("/status")[-1:] == [b"offline"], 10)
    written = events_in(out)
    assert [e["phase"] for e in written if e["kind"] == "cramp"] == ["started", "ended"]
    assert collector.wait_for(lambda: keys(collector.json_on("/event")) == keys(written), 10)
    assert "SIGTERM received: stopping cleanly" in (tmp_path / "daemon.log").read_text()
    collector.close()


def test_an_unreachable_broker_at_start_is_logged_and_the_daemon_keeps_detecting(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "events.jsonl"
    outbox = tmp_path / "outbox.db"
    args = daemon_args(night, f"127.0.0.1:{free_port()}", outbox, "--speed", "0", "--out", str(out))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "cannot reach the MQTT broker" in err
    # Retried every few seconds, said once (and counted at the end if it went on).
    assert len([line for line in err.splitlines() if "cannot reach" in line]) <= 2
    with Outbox(outbox) as stored:
        unsent = [json.loads(m.payload) for m in stored.unsent(limit=1000) if m.kind == "event"]
    assert keys(unsent) == keys(events_in(out)) and len(unsent) >= 2 * len(CRAMPS)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[mqtt]\nbrokr = 'x'\n", "unknown key 'brokr' in [mqtt]; allowed: enabled, broker"),
        ("[mqtt]\nbroker = 'host:notaport'\n", "[mqtt] broker = 'host:notaport'"),
        ("[pipeline]\nnotch_hz = 55\n", "must be one of 0, 50, 60"),
        (
            "[source]\nspeed = 'fast'\n",
            "[source] speed = 'fast': must be a whole number or a number",
        ),
        ("[device]\nid = 'my room'\n", "letters, digits"),
        ("[sauce]\nkind = 'file'\n", "unknown section [sauce]"),
        ("[mqtt\n", "not valid TOML"),
    ],
)
def test_a_bad_config_exits_non_zero_before_starting_anything(
    config: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "crampwatch.toml"
    path.write_text(config)
    outbox = tmp_path / "outbox.db"
    assert main(["run", "--config", str(path), "--outbox", str(outbox)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert not outbox.exists()
    assert main(["config", "check", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_the_command_line_overrides_the_config_file_which_overrides_the_defaults(
    tmp_path: Path,
) -> None:
    from firmware_host.cli import build_parser
    from firmware_host.commands.run import settings

    path = tmp_path / "crampwatch.toml"
    path.write_text(
        "[device]\nid = 'from-file'\n[mqtt]\nbroker = 'pi.local:1884'\n[source]\nspeed = 3\n"
    )
    args = settings(build_parser().parse_args(["run", "--config", str(path), "--device", "cli"]))
    assert (args.device, args.broker, args.speed, args.keepalive_s) == (
        "cli",
        "pi.local:1884",
        3,
        30,
    )


def test_the_example_config_is_valid_and_holds_every_default(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from firmware_host.device.daemon_config import SETTINGS, load_config

    assert main(["config", "example"]) == 0
    path = tmp_path / "example.toml"
    path.write_text(capsys.readouterr().out)
    values = load_config(path)
    assert values == {s.dest: s.default for s in SETTINGS if s.default is not None}
    assert main(["config", "check", str(path)]) == 0
    # Every commented-out key is valid once uncommented.
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and not line.startswith("# ") else line
        for line in path.read_text().splitlines()
    )
    path.write_text(uncommented)
    assert len(load_config(path)) == len(SETTINGS)


def test_install_service_writes_a_unit_that_restarts_on_failure_and_a_valid_config(
    tmp_path: Path,
) -> None:
    import configparser

    from firmware_host.device.daemon_config import load_config

    config = tmp_path / "etc" / "crampwatch.toml"
    argv = ["install-service", "--config", str(config), "--user", "pi"]
    assert main([*argv, "--unit-dir", str(tmp_path / "units"), "--no-start"]) == 0
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(tmp_path / "units" / "crampwatch.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["User"] == "pi"
    assert service["ExecStart"].endswith(f"run --config {config}")
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # Started once the clock is set (ordered after the passive time targets, not pulling them
    # in), and the converter's process may ask for real-time priority.
    assert {"time-set.target", "time-sync.target"} <= set(unit["Unit"]["After"].split())
    assert "time-sync.target" not in unit["Unit"].get("Wants", "")
    assert int(service["LimitRTPRIO"]) >= 1
    assert load_config(config)  # the example it wrote is valid


def test_home_assistant_discovery_can_be_switched_off(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, ["homeassistant/#", "crampwatch/#"])
    args = daemon_args(
        night, mosquitto.address, tmp_path / "outbox.db", "--speed", "0", "--no-discovery"
    )
    assert main(args) == 0
    assert collector.wait_for(lambda: collector.on("/status")[-1:] == [b"offline"], 10)
    assert not [t for t, _, _ in collector.messages if t.startswith("homeassistant/")]
    collector.close()


@pytest.mark.slow
def test_the_recorded_night_exports_to_edf_that_replays_to_the_live_runs_events(
    tmp_path: Path,
) -> None:
    import edfio

    plan = scenario(12, fs=1000.0, duration_s=150.0, channels=("ch0", "ch1"),
                    events=[("cramp", 40.0, 75.0, "ch1"), ("movement", 100.0, 103.0)])  # fmt: skip
    night = tmp_path / "short.npy"
    np.save(night, SyntheticEMG(plan, seed=12).render())

    live_out, replay_out, edf = (
        tmp_path / "live.jsonl",
        tmp_path / "replay.jsonl",
        tmp_path / "n.edf",
    )
    argv = ["run", "--sim", "mcp3008", "--signal", str(night), "--signal-fs", "1000",
            "--signal-units", "uV", "--speed", "0", "--no-mqtt", "--record-dir",
            str(tmp_path / "nights"), "--out", str(live_out)]  # fmt: skip
    assert main(argv) == 0
    (recorded,) = (tmp_path / "nights").iterdir()
    assert main(["export", str(recorded), "--edf", str(edf)]) == 0
    independent = edfio.read_edf(edf)
    signals = [s for s in independent.signals]
    assert [s.sampling_frequency for s in signals] == [1000.0, 1000.0]
    assert signals[0].physical_dimension == "uV"
    assert independent.duration == pytest.approx(150.0, abs=1)
    labels = [a.text for a in independent.annotations]
    assert "cramp ch1" in labels
    replay = [
        "replay",
        str(edf),
        "--no-progress",
        "--rails",
        "-1650",
        "1650",
        "--out",
        str(replay_out),
    ]
    assert main(replay) == 0
    live = [e for e in events_in(live_out) if e["phase"] == "ended"]
    replayed = [e for e in events_in(replay_out) if e["phase"] == "ended"]
    assert [(e["kind"], e["channel"]) for e in replayed] == [
        (e["kind"], e["channel"]) for e in live
    ]
    for ours, theirs in zip(replayed, live, strict=True):
        assert abs(ours["start_s"] - theirs["start_s"]) <= 0.02
        assert abs(ours["end_s"] - theirs["end_s"]) <= 0.02
