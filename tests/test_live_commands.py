"""`crampwatch run --sim` and `crampwatch calibrate`: the live path on simulated converters."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from firmware_host.calibration_file import load_calibration
from firmware_host.cli import main
from firmware_host.device.live_sources import SlotKeeping
from hardware.acquisition import AcquisitionStats
from hardware.synthetic_emg import SyntheticEMG, scenario


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = scenario(
        4,
        fs=1000.0,
        duration_s=120.0,
        channels=("left_calf", "right_calf"),
        events=[("cramp", 40.0, 70.0, "left_calf"), ("movement", 90.0, 93.0)],
    )
    path = tmp_path_factory.mktemp("live") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=4).render())
    return path


def events_in(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if "event_id" in line]


def run_sim(recording: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "run",
            "--sim",
            "mcp3008",
            "--signal",
            str(recording),
            "--signal-fs",
            "1000",
            "--signal-units",
            "uV",
            "--speed",
            "0",
            "--out",
            str(out),
            "--no-mqtt",
            "--no-record",
            *extra,
        ]
    )


@pytest.mark.slow
def test_the_simulated_mcp3008_gives_the_replays_events_within_one_hop(
    recording: Path, tmp_path: Path
) -> None:
    assert (
        main(
            [
                "replay",
                str(recording),
                "--fs",
                "1000",
                "--units",
                "uV",
                "--no-progress",
                "--out",
                str(tmp_path / "replay.jsonl"),
            ]
        )
        == 0
    )
    assert run_sim(recording, tmp_path / "run.jsonl") == 0
    replayed, live = events_in(tmp_path / "replay.jsonl"), events_in(tmp_path / "run.jsonl")
    assert [(e["channel"], e["kind"], e["phase"]) for e in live] == [
        (e["channel"], e["kind"], e["phase"]) for e in replayed
    ]
    assert any(e["kind"] == "cramp" for e in live)
    for ours, theirs in zip(live, replayed, strict=True):
        assert abs(ours["start_s"] - theirs["start_s"]) <= 0.02
        if theirs["end_s"] is not None:
            assert abs(ours["end_s"] - theirs["end_s"]) <= 0.02


@pytest.mark.slow
def test_bus_errors_leave_gaps_and_the_run_goes_on(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    assert run_sim(recording, out, "--bus-error-rate", "0.3") == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    summary = lines[-1]
    stats = summary["acquisition"]
    assert stats["bus_errors"] > 0 and stats["missing_frames"] > 0
    assert stats["frames"] == 120_000  # every slot accounted for: nothing invented, nothing joined
    assert any(e.get("kind") == "cramp" for e in lines)


def test_run_refuses_a_recording_that_is_not_there_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["run", "--play", str(tmp_path / "missing.edf"), "--no-mqtt"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_guided_calibration_on_a_simulated_chip_saves_floor_and_mvc(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    assert (
        main(
            [
                "calibrate",
                "--sim",
                "mcp3008",
                "--speed",
                "0",
                "--rest-s",
                "10",
                "--mvc",
                "--mvc-s",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = load_calibration(out)
    assert set(saved) == {"left_calf", "right_calf"}
    for calibration in saved.values():
        assert 1.0 < calibration.floor_uv < 8.0
        assert calibration.mvc_uv is not None and calibration.mvc_uv > 20 * calibration.floor_uv


def test_calibration_from_a_recording_feeds_the_detector(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    assert (
        main(
            [
                "calibrate",
                str(recording),
                "--fs",
                "1000",
                "--units",
                "uV",
                "--rest",
                "5",
                "35",
                "--mvc",
                "45",
                "65",
                "--channel",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = load_calibration(out)
    assert list(saved) == ["ch0"] and saved["ch0"].mvc_uv > 10 * saved["ch0"].floor_uv
    events = tmp_path / "events.jsonl"
    assert (
        main(
            [
                "replay",
                str(recording),
                "--fs",
                "1000",
                "--units",
                "uV",
                "--channel",
                "0",
                "--calibration",
                str(out),
                "--mvc-percent",
                "20",
                "10",
                "--no-progress",
                "--out",
                str(events),
            ]
        )
        == 0
    )
    found = events_in(events)
    assert [e["kind"] for e in found if e["phase"] == "ended"] == ["cramp", "movement"]
    assert found[0]["pipeline"]["settings"]["calibration"]["ch0"]["floor_uv"] == pytest.approx(
        saved["ch0"].floor_uv, rel=1e-3
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate"], "give a recording"),
        (["calibrate", "RECORDING", "--fs", "1000"], "--rest"),
        (["calibrate", "RECORDING", "--fs", "1000", "--rest", "5", "500"], "outside"),
        (
            ["calibrate", "RECORDING", "--fs", "1000", "--rest", "5", "35", "--mvc", "80", "85"],
            "not clearly above rest",
        ),
        (["replay", "RECORDING", "--fs", "1000", "--calibration", "missing.json"], "calibrate"),
        (["replay", "RECORDING", "--fs", "1000", "--mvc-percent", "20", "10"], "MVC"),
    ],
)
def test_calibration_mistakes_are_explained(
    argv: list[str], message: str, recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = [str(recording) if a == "RECORDING" else a for a in argv]
    argv = [str(tmp_path / a) if a == "missing.json" else a for a in argv]
    if argv[0] == "calibrate":
        argv += ["--out", str(tmp_path / "c.json")]
    else:
        argv += ["--no-progress", "--out", str(tmp_path / "e.jsonl")]
    assert main(argv) != 0
    assert message in capsys.readouterr().err


CHIP_RATE = 860 * 1.04  # conversions per second of the simulated ADS1115 (its clock 4 % fast)


def calves_file(directory: Path, fs: float, channels: tuple[str, ...], seed: int) -> Path:
    """28 s of synthetic EMG at `fs`: a cramp on the first channel from 6 to 20 s."""
    plan = scenario(
        seed, fs=fs, duration_s=28.0, channels=channels, events=[("cramp", 6.0, 20.0, channels[0])]
    )
    path = directory / f"calves-{len(channels)}.npy"
    np.save(path, SyntheticEMG(plan, seed=seed).render())
    return path


@pytest.fixture(scope="module")
def at_the_chips_rate(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, float]]:
    """Files sampled at the rate each channel gets from the simulated ADS1115: one input, one
    conversion per sample; two inputs (MUX switching), one sample per four conversions."""
    directory = tmp_path_factory.mktemp("ads")
    one = round(CHIP_RATE, 1)
    two = round(CHIP_RATE / 4, 1)
    return {
        1: (calves_file(directory, one, ("left_calf",), 4), one),
        2: (calves_file(directory, two, ("left_calf", "right_calf"), 5), two),
    }


def run_ads1115(recording: Path, signal_fs: float, out: Path, *extra: str) -> int:
    """The simulated ADS1115 on the virtual clock (--speed 0), events written to `out`."""
    return main(
        ["run", "--sim", "ads1115", "--signal", str(recording), "--signal-fs", str(signal_fs),
         "--signal-units", "uV", "--speed", "0", "--out", str(out), "--no-mqtt", "--no-record",
         *extra]
    )  # fmt: skip


def replay_to(recording: Path, fs: float, out: Path) -> list[dict]:
    argv = ["replay", str(recording), "--fs", str(fs), "--units", "uV", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    return events_in(out)


@pytest.mark.slow
@pytest.mark.parametrize("inputs", [1, 2])
def test_the_simulated_ads1115_at_speed_0_finds_the_replays_events_within_one_hop(
    inputs: int, at_the_chips_rate: dict[int, tuple[Path, float]], tmp_path: Path
) -> None:
    """RDY pulses and MUX switching on the virtual clock: every conversion kept, and the events
    are those of replaying the same file (within one 20 ms hop; the first conversion after the
    configuration is not used, so the live stream starts a conversion later)."""
    recording, fs = at_the_chips_rate[inputs]
    replayed = replay_to(recording, fs, tmp_path / "replay.jsonl")
    out = tmp_path / "run.jsonl"
    assert run_ads1115(recording, fs, out) == 0
    summary = json.loads(out.read_text().splitlines()[-1])
    stats = summary["acquisition"]
    assert stats["missing_frames"] == 0 and stats["missed_slots"] == 0
    assert stats["frames"] == pytest.approx(28.0 * fs, abs=2)
    live = events_in(out)
    assert any(e["kind"] == "cramp" for e in live)
    assert [(e["channel"], e["kind"], e["phase"]) for e in live] == [
        (e["channel"], e["kind"], e["phase"]) for e in replayed
    ]
    for ours, theirs in zip(live, replayed, strict=True):
        assert abs(ours["start_s"] - theirs["start_s"]) <= 0.02
        if theirs["end_s"] is not None:
            assert abs(ours["end_s"] - theirs["end_s"]) <= 0.02
    assert live[0]["pipeline"]["settings"]["fs"] == fs  # the measured rate is the chip's


@pytest.mark.slow
def test_the_simulated_ads1115_at_speed_0_gives_the_same_night_every_time(
    tmp_path: Path,
) -> None:
    """Two inputs with bus errors on the virtual clock, twice: the same samples (so the same
    events and counts), whatever else the computer does."""
    runs = []
    for attempt in range(2):
        out = tmp_path / f"run{attempt}.jsonl"
        argv = ["run", "--sim", "ads1115", "--hours", "0.01", "--speed", "0",
                "--bus-error-rate", "0.05", "--out", str(out), "--no-mqtt", "--no-record"]  # fmt: skip
        assert main(argv) == 0
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        for line in lines:
            for key in ("event_id", "start", "end", "at"):
                line.pop(key, None)
        lines[-1]["acquisition"].pop("loop_cpu_us")  # what the host spent: not the night
        runs.append(lines)
    assert runs[0] == runs[1]
    stats = runs[0][-1]["acquisition"]
    assert stats["bus_errors"] > 0 and stats["missed_slots"] == 0
    assert stats["frames"] == pytest.approx(36.0 * CHIP_RATE / 4, abs=2)


def test_marker_presses_are_written_beside_the_events_and_the_led_follows_cramps() -> None:
    import argparse

    from dsp.events import StateChange
    from dsp.pipeline import PipelineOutput
    from firmware_host.device import live_sources
    from firmware_host.device.device_panel import DevicePanel
    from hardware.pins import MARKER_BUTTON_PIN

    args = argparse.Namespace(
        sim="mcp3008",
        signal="synthetic",
        signal_fs=None,
        signal_units=None,
        hours=0.01,
        seed=1,
        speed=0,
        rate=None,
        bus_error_rate=0.0,
    )
    live = live_sources.open_live(args)
    with DevicePanel(live, ("left_calf", "right_calf")) as panel:
        assert panel.led.state == "ok"
        live.source.clock.sleep(12.5)
        button = live.pin_factory.pin(MARKER_BUTTON_PIN)
        button.drive_low()
        button.drive_high()
        cramp = PipelineOutput(
            0, np.empty((0, 2)), state_changes=[StateChange("left_calf", "cramp", 12.0)]
        )
        markers = panel.update(cramp, elapsed_s=12.5)
        assert panel.led.state == "cramp"
        idle = PipelineOutput(
            0, np.empty((0, 2)), state_changes=[StateChange("left_calf", "idle", 20.0)]
        )
        assert panel.update(idle, elapsed_s=20.0) == []
        assert panel.led.state == "ok"
    (record,) = markers
    assert record["type"] == "marker" and record["at_s"] == pytest.approx(12.5, abs=0.01)


class FakeProcessSource:
    """What SlotKeeping reads of a source: counters and the nominal rate."""

    def __init__(self) -> None:
        self.stats = AcquisitionStats()
        self.nominal_fs = 1000.0

    def run(self, seconds: float, share_kept: float, speed: float, cpu_per_frame_s: float) -> None:
        due = round(seconds * self.nominal_fs * speed)
        kept = round(due * share_kept)
        self.stats.frames += due
        self.stats.missed_slots += due - kept
        self.stats.missing_frames += due - kept
        self.stats.loop_cpu_us += round(kept * cpu_per_frame_s * 1e6)


def test_a_host_that_cannot_keep_up_is_told_once_then_summarised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--speed 10 with 60 % of slots kept and 0.1 ms of CPU per frame: one warning after a few
    seconds (the speed, the share, the fastest speed measured to work, --speed 0), then one
    summary a minute, then a word when every slot is kept again."""
    caplog.set_level(logging.INFO, logger="crampwatch")
    source, now = FakeProcessSource(), [0.0]
    keeping = SlotKeeping(source, speed=10.0, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(260):  # 130 s in half-second blocks
        now[0] += 0.5
        source.run(0.5, 0.6, 10.0, 1e-4)
        keeping.check()
    for _ in range(300):  # keeping up again
        now[0] += 0.5
        source.run(0.5, 1.0, 10.0, 1e-4)
        keeping.check()
    keeping.finish()
    lines = [r.getMessage() for r in caplog.records]
    warnings = [line for line in lines if "too fast" in line]
    assert warnings == [
        "--speed 10 is too fast for this computer: it kept only 60.0 % of the simulated "
        "converter's slots over 50 s of signal (the rest are gaps, reported as signal lost). "
        "This computer manages about --speed 2; --speed 0 runs as fast as it can and keeps "
        "every sample."
    ]  # 0.25 / (0.1 ms x 1000 frames/s) = 2.5, and it reached 6
    summaries = [line for line in lines if line.startswith("acquisition: kept")]
    assert len(summaries) == 3 and "kept 60.0 % of slots in the last 60 s" in summaries[0]
    assert lines[-1] == "acquisition: every slot kept in the last 60 s"


def test_a_host_that_keeps_up_is_not_warned(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crampwatch")
    source, now = FakeProcessSource(), [0.0]
    keeping = SlotKeeping(source, speed=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(100):
        now[0] += 0.5
        source.run(0.5, 0.995, 1.0, 1e-4)
        keeping.check()
    keeping.finish()
    assert not caplog.records


@pytest.mark.slow
def test_a_speed_no_computer_keeps_up_with_is_said_plainly_once(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The issue's case: a recording played at --speed 1000 through the simulated MCP3008.
    Every line of the log has its time and level; the speed is named once, with what to do."""
    assert run_sim(recording, tmp_path / "run.jsonl", "--speed", "1000") == 0
    err = capsys.readouterr().err.splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ", line) for line in err), err
    (warning,) = [line for line in err if "kept only" in line]
    assert "--speed 1000" in warning and "--speed 0 runs as fast as it can" in warning
    assert re.search(r"kept only \d+\.\d %", warning)
    assert "manages about --speed" in warning or "cannot keep this pace" in warning
    assert len([line for line in err if "signal lost at" in line]) <= 2  # coalesced per channel
