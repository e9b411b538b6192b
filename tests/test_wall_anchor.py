"""A clock that jumps: the session's wall-time anchor, corrected when the system clock steps, and
the daemon's messages dated from it (an injected clock stands in for NTP)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from dsp.config import PipelineConfig
from firmware_host.cli import build_parser
from firmware_host.commands.run import settings
from firmware_host.device.daemon import Daemon, Outputs
from firmware_host.device.wall_anchor import WallAnchor
from firmware_host.event_output import EventWriter
from firmware_host.run_summary import RunSummary
from hardware.synthetic_emg import SyntheticEMG, scenario

NIGHT = datetime(2026, 11, 2, 22, 0, tzinfo=UTC).timestamp()


class SteppingClock:
    """Monotonic time that moves by `tick` per look; wall time = monotonic + offset, where the
    offset changes by `step` once monotonic time passes `step_at` (NTP stepping the clock)."""

    def __init__(self, wall_start: float, step_at: float, step: float, tick: float = 0.1) -> None:
        self.mono, self.tick = 1000.0, tick
        self.offset = wall_start - self.mono
        self.step_at, self.step = 1000.0 + step_at, step

    def monotonic(self) -> float:
        self.mono += self.tick
        return self.mono

    def time(self) -> float:
        stepped = self.mono >= self.step_at
        return self.mono + self.offset + (self.step if stepped else 0.0)


def test_a_clock_set_forward_by_three_hours_moves_the_anchor_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SteppingClock(NIGHT - 3 * 3600, step_at=12.0, step=3 * 3600.0)
    anchor = WallAnchor(clock)
    before = anchor.start
    while clock.mono < 1011.0:
        assert not anchor.check()
    while not anchor.check():
        pass
    assert anchor.start - before == timedelta(hours=3)
    assert anchor.at(30.0) == anchor.start + timedelta(seconds=30)
    (line,) = [r.getMessage() for r in caplog.records if "stepped" in r.getMessage()]
    assert "forwards by 3 h 0 min 0 s" in line and anchor.start.strftime("%H:%M:%S") in line


def test_a_clock_set_backwards_and_small_slews_are_told_apart() -> None:
    clock = SteppingClock(NIGHT, step_at=5.0, step=-600.0)
    anchor = WallAnchor(clock, step_s=1.0)
    clock.offset += 0.5  # a half-second slew: not a step
    assert not anchor.check()
    clock.mono += 10.0
    assert anchor.check() and anchor.corrections[-1].step_s == pytest.approx(-600.0, abs=1.0)


def test_a_clock_before_crampwatch_existed_is_called_out_until_it_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SteppingClock(12.0, step_at=12.0, step=NIGHT - 12.0)  # boots at 1970-01-01
    anchor = WallAnchor(clock)
    assert not anchor.plausible
    assert "1970-01-01 00:00:12 UTC, before crampwatch existed" in caplog.text
    while not anchor.check():
        pass
    assert anchor.plausible and anchor.start.year == 2026
    assert "(it had not been set)" in caplog.records[-1].getMessage()


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = scenario(
        3,
        fs=1000.0,
        duration_s=90.0,
        channels=("ch0", "ch1"),
        events=[("cramp", 30.0, 60.0, "ch0")],
    )
    path = tmp_path_factory.mktemp("clock") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=3).render())
    return path


def events_of(path: Path) -> list[dict]:
    return [line for line in map(json.loads, path.read_text().splitlines()) if "event_id" in line]


def run_daemon(night: Path, out: Path, clock: SteppingClock | None) -> Daemon:
    argv = ["run", "--play", str(night), "--signal-fs", "1000", "--signal-units", "uV",
            "--speed", "0", "--no-mqtt", "--no-record", "--out", str(out)]  # fmt: skip
    daemon = Daemon(settings(build_parser().parse_args(argv)), wall_clock=clock)
    daemon.run()
    return daemon


def test_events_made_after_the_clock_steps_carry_the_corrected_times(
    night: Path, tmp_path: Path
) -> None:
    """A Pi that boots 3 h behind and is set right moments into the night: the cramp, found later,
    is dated from the corrected start; its offsets and duration are those of a steady clock."""
    run_daemon(night, tmp_path / "steady.jsonl", SteppingClock(NIGHT, 1e9, 0.0, tick=0.001))
    steady = events_of(tmp_path / "steady.jsonl")
    clock = SteppingClock(NIGHT - 3 * 3600, step_at=0.003, step=3 * 3600.0, tick=0.001)
    daemon = run_daemon(night, tmp_path / "stepped.jsonl", clock)
    stepped = events_of(tmp_path / "stepped.jsonl")
    assert daemon.anchor is not None and len(daemon.anchor.corrections) == 1
    start = daemon.anchor.start
    assert [
        (e["kind"], e["phase"], e["start_s"], e["end_s"], e["duration_s"]) for e in stepped
    ] == [(e["kind"], e["phase"], e["start_s"], e["end_s"], e["duration_s"]) for e in steady]
    cramps = [e for e in stepped if e["kind"] == "cramp"]
    assert cramps
    for event in stepped:
        expected = start + timedelta(seconds=event["start_s"])
        assert event["start"] == expected.strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{expected.microsecond // 1000:03d}Z"
        )
        assert abs(datetime.fromisoformat(event["start"]) - datetime.fromtimestamp(NIGHT, UTC)) < (
            timedelta(minutes=5)
        )  # the night's real time, not 3 h earlier


def test_a_marker_is_dated_from_the_anchor_like_the_events() -> None:
    clock = SteppingClock(NIGHT - 3 * 3600, step_at=1.0, step=3 * 3600.0)
    anchor = WallAnchor(clock)
    config = PipelineConfig(fs=1000.0, channels=("ch0",))
    stream = io.StringIO()
    outputs = Outputs(config, anchor, RunSummary(config.channels))
    outputs.writer = EventWriter(stream, "jsonl")
    while not anchor.check():
        pass
    stale = (datetime.fromtimestamp(NIGHT, UTC) - timedelta(hours=3)).isoformat()
    outputs._marker({"type": "marker", "source": "button", "at_s": 5.0, "wall": stale})
    (marker,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert marker["wall"].startswith((anchor.start + timedelta(seconds=5)).strftime("%Y-%m-%dT%H"))
    assert datetime.fromisoformat(marker["wall"]) - anchor.at(5.0) < timedelta(milliseconds=1)


def test_the_log_gets_no_flood_from_a_clock_that_stays_put(caplog) -> None:
    caplog.set_level(logging.INFO)
    anchor = WallAnchor(SteppingClock(NIGHT, step_at=1e9, step=0.0))
    for _ in range(1000):
        assert not anchor.check()
    assert not [r for r in caplog.records if "clock" in r.getMessage()]
