"""The daemon against failing disks: a full filesystem under the outbox and the recording, space
that comes back mid-night, a read-only or damaged outbox, a file-size limit; and many short nights
recorded into a small filesystem under a budget. A real Mosquitto receives what was detected."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_host.cli import main
from firmware_host.device.night_budget import RecordingBudget
from firmware_host.device.night_recorder import NightRecorder, open_night
from firmware_host.device.outbox import Outbox
from hardware.synthetic_emg import SyntheticEMG, scenario
from tests.broker import Collector, Mosquitto
from tests.small_disk import small_disk
from tests.test_night_recording import MCP_SCALING, STARTED

ROOT = Path(__file__).resolve().parents[1]
NIGHT_S = 1600.0
CRAMPS = [(60.0 + 95.0 * i, 60.0 + 95.0 * i + 25.0) for i in range(16)]
MB = 1_000_000


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """27 minutes, two calves at 1 kHz (.npy in uV): 16 cramps, alternating calves."""
    events = [("cramp", a, b, "ch1" if i % 2 else "ch0") for i, (a, b) in enumerate(CRAMPS)]
    plan = scenario(21, fs=1000.0, duration_s=NIGHT_S, channels=("ch0", "ch1"), events=events)
    path = tmp_path_factory.mktemp("faults") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=21).render().astype(np.float32))
    return path


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crampwatch.toml"
    path.write_text(text)
    return path


def run_args(night: Path, broker: str, outbox: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", "--play", str(night), "--signal-fs", "1000", "--signal-units", "uV",
        "--broker", broker, "--outbox", str(outbox), "--device", "bedroom", "--out", str(out),
        *extra,
    ]  # fmt: skip


def detected(out: Path) -> set[tuple[str, str]]:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return {(e["event_id"], e["phase"]) for e in lines if "event_id" in e}


def delivered(collector: Collector) -> set[tuple[str, str]]:
    return {(e["event_id"], e["phase"]) for e in collector.json_on("/event")}


def last_state(collector: Collector) -> dict:
    return collector.json_on("/state")[-1]


def test_a_full_disk_under_outbox_and_recording_loses_no_event_and_the_night_ends_with_0(
    night: Path, mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # The landed defaults' layout (outbox and nights on one small filesystem), with no floor.
    config = config_file(
        tmp_path, "[recording]\nmin_free_mb = 0\nmax_mb = 0\n[outbox]\nretry_s = 0.5\n"
    )
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    out = tmp_path / "events.jsonl"
    with small_disk(tmp_path / "disk", 3 * MB) as disk:
        args = run_args(night, mosquitto.address, disk.path / "outbox.db", out, "--speed", "0",
                        "--record-dir", str(disk.path / "nights"), "--config", str(config))  # fmt: skip
        assert main(args) == 0
        assert disk.free_bytes() < 64 * 1024  # the disk did fill up
    err = capsys.readouterr().err
    assert "night recording paused" in err and "database or disk is full" in err
    events = detected(out)
    assert len([e for e in events if e[1] == "ended"]) >= len(CRAMPS)
    assert collector.wait_for(lambda: delivered(collector) == events, 20)
    storage = last_state(collector)["storage"]
    assert storage["outbox"]["storage"] == "memory" and storage["outbox"]["dropped"] == 0
    assert storage["recording"]["state"] == "paused" and storage["recording"]["lost_s"] > 0
    collector.close()


@pytest.mark.slow
def test_when_space_returns_mid_night_the_outbox_goes_back_to_disk(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = config_file(tmp_path, "[outbox]\nretry_s = 1\n")
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    out, log = tmp_path / "events.jsonl", tmp_path / "daemon.log"
    with small_disk(tmp_path / "disk", 4 * MB) as disk:
        outbox = disk.path / "outbox.db"
        Outbox(outbox).close()
        disk.fill()
        args = run_args(night, mosquitto.address, outbox, out, "--speed", "160", "--no-record",
                        "--config", str(config))  # fmt: skip
        daemon = subprocess.Popen(
            [sys.executable, "-m", "firmware_host.cli", *args], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=log.open("w"),
        )  # fmt: skip
        try:
            assert collector.wait_for(lambda: len(collector.on("/event")) >= 4, 60)
            assert last_state(collector)["storage"]["outbox"]["storage"] == "memory"
            disk.free()
            assert daemon.wait(timeout=90) == 0
        finally:
            daemon.kill()
        with Outbox(outbox) as stored:
            kept = stored.counts()
        text = log.read_text()
    events = detected(out)
    assert len([e for e in events if e[1] == "ended"]) == len(CRAMPS)
    assert collector.wait_for(lambda: delivered(collector) == events, 20)
    assert "holding messages in memory" in text and "the disk works again" in text
    assert last_state(collector)["storage"]["outbox"]["storage"] == "disk"
    assert kept.sent + kept.unsent >= len(events) // 2  # the later messages went through the file
    collector.close()


def test_a_read_only_outbox_still_delivers_every_event(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    out = tmp_path / "events.jsonl"
    with small_disk(tmp_path / "disk", 1 * MB) as disk:
        Outbox(disk.path / "outbox.db").close()
        disk.read_only()
        args = run_args(night, mosquitto.address, disk.path / "outbox.db", out, "--speed", "0",
                        "--no-record")  # fmt: skip
        assert main(args) == 0
    events = detected(out)
    assert len([e for e in events if e[1] == "ended"]) == len(CRAMPS)
    assert collector.wait_for(lambda: delivered(collector) == events, 20)
    outbox = last_state(collector)["storage"]["outbox"]
    assert outbox["storage"] == "memory" and "read" in outbox["problem"].lower()
    collector.close()


def test_a_damaged_outbox_is_moved_aside_and_the_night_goes_on(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    out, outbox = tmp_path / "events.jsonl", tmp_path / "outbox.db"
    outbox.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 40)  # a header, then garbage
    args = run_args(night, mosquitto.address, outbox, out, "--speed", "0", "--no-record")
    assert main(args) == 0
    events = detected(out)
    assert collector.wait_for(lambda: delivered(collector) == events, 20)
    assert len(list(tmp_path.glob("outbox.db.damaged-*"))) == 1
    assert last_state(collector)["storage"]["outbox"]["storage"] == "disk"
    collector.close()


# Above the events file the test reads back (about 150 KB for this night), below what the outbox and
# the recording would grow to.
FILE_LIMIT = 200_000


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past it fail with EFBIG instead


def test_a_file_size_limit_on_outbox_and_recording_keeps_detection_and_delivery(
    night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The same faults without root: every file the daemon writes stops growing at 200 KB."""
    config = config_file(tmp_path, "[outbox]\nretry_s = 0.5\n")
    collector = Collector(mosquitto, "crampwatch/bedroom/#")
    out, log = tmp_path / "events.jsonl", tmp_path / "daemon.log"
    (tmp_path / "big").mkdir()
    args = run_args(night, mosquitto.address, tmp_path / "big" / "outbox.db", out, "--speed", "0",
                    "--record-dir", str(tmp_path / "big" / "nights"), "--config", str(config))  # fmt: skip
    out.touch()
    daemon = subprocess.run(
        [sys.executable, "-m", "firmware_host.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=log.open("w"), preexec_fn=_limit_file_size, timeout=120,
    )  # fmt: skip
    assert daemon.returncode == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "night recording paused" in text and "File too large" in text
    events = detected(out)
    assert len([e for e in events if e[1] == "ended"]) == len(CRAMPS)
    assert collector.wait_for(lambda: delivered(collector) == events, 20)
    collector.close()


# --- the recording budget ---------------------------------------------------------------------


def noise_volts(n: int, seed: int) -> np.ndarray:
    """Not ADC codes (no step): stored as float32, about 8 KB per second of two channels."""
    return np.random.default_rng(seed).normal(1.65, 0.01, (n, 2))


def test_the_recorder_never_writes_past_the_floor_and_resumes_when_space_returns(
    tmp_path: Path,
) -> None:
    floor = 400_000
    with small_disk(tmp_path / "disk", 2 * MB) as disk:
        disk.fill(leave_bytes=700_000)
        budget = RecordingBudget(disk.path / "nights", min_free_bytes=floor)
        night_dir = disk.path / "nights" / "tonight"
        volts = noise_volts(120_000, 1)
        states = []
        with NightRecorder(
            night_dir, fs=1000.0, channels=("a", "b"), scaling=MCP_SCALING, lsb_v=None,
            started=STARTED, device="bedside", budget=budget, retry_s=2.0,
        ) as recorder:  # fmt: skip
            for i in range(0, 60_000, 500):
                recorder.write(volts[i : i + 500])
                assert disk.free_bytes() >= floor
                states.append(recorder.state)
            disk.free()
            for i in range(60_000, 120_000, 500):
                recorder.write(volts[i : i + 500])
                states.append(recorder.state)
            status = recorder.status()
        assert "paused" in states and states[-1] == "recording"
        assert status["lost_s"] > 0 and status["problem"] is None
        back = np.concatenate(list(open_night(night_dir).blocks(8192)))
        stored = volts.astype(np.float32).astype(np.float64)
        gap = np.isnan(back[:, 0])
        assert back.shape == volts.shape and 0 < gap.sum() < 60_000
        assert np.array_equal(back[~gap], stored[~gap])
        assert not gap[-50_000:].any()  # resumed within two seconds of signal after space came back


def test_many_short_nights_on_a_small_disk_keep_the_budget_and_the_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    floor_mb, max_nights = 0.6, 4
    config = config_file(
        tmp_path,
        f"[recording]\nmin_free_mb = {floor_mb}\nmax_mb = 0.8\nmax_nights = {max_nights}\n",
    )
    clip = tmp_path / "clip.npy"
    np.save(clip, np.random.default_rng(2).normal(0.0, 20.0, (20_000, 2)).astype(np.float32))
    with small_disk(tmp_path / "disk", 2 * MB) as disk:
        disk.fill(leave_bytes=1_200_000)
        nights = disk.path / "nights"
        (nights / "notes").mkdir(parents=True)  # not a night: never removed
        (nights / "notes" / "todo.txt").write_text("keep me")
        made = []
        for k in range(12):
            args = ["run", "--play", str(clip), "--signal-fs", "1000", "--signal-units", "uV",
                    "--speed", "0", "--no-mqtt", "--record-dir", str(nights), "--config",
                    str(config), "--device", f"n{k:02d}"]  # fmt: skip
            assert main(args) == 0
            made += [p for p in nights.glob(f"*_n{k:02d}")]
            kept = sorted(p for p in nights.iterdir() if p.name != "notes")
            assert disk.free_bytes() >= floor_mb * MB
            assert len(kept) <= max_nights
            assert sum(f.stat().st_size for p in kept for f in p.iterdir()) <= 0.8 * MB
            assert kept[-1] == made[-1]  # the newest night is always kept
            assert open_night(kept[-1]).info.complete
        assert (nights / "notes" / "todo.txt").read_text() == "keep me"
    err = capsys.readouterr().err
    assert "removed the oldest recorded night" in err
