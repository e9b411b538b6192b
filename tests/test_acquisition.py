"""The acquisition-source interface: threaded sources, gaps, retries, rate estimate, file source,
and the analog inputs that simulated chips sample."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hardware.acquisition import (
    AcquisitionError,
    Frame,
    RateEstimator,
    RetryPolicy,
    ThreadedSource,
    contiguous,
)
from hardware.analog_inputs import AnalogInputs, InputFault, SignalPlayer
from hardware.clock import ScaledClock, VirtualClock
from hardware.file_source import FileSource
from hardware.front_end import FrontEnd
from hardware.recordings import RecordingError, open_recording


class FakeConverter(ThreadedSource):
    """A converter whose frames, failures and missed slots the test scripts."""

    def __init__(self, script: list, fs: float = 100.0, clock=None, **kwargs) -> None:
        super().__init__(("a", "b"), fs, clock=clock or VirtualClock(), block_frames=8, **kwargs)
        self.script = iter(script)
        self.opened = self.closed = False
        self.k = 0
        self.gate = threading.Event()

    def _open_device(self) -> None:
        self.opened = True

    def _close_device(self) -> None:
        self.closed = True

    def _begin(self) -> None:
        pass

    def _next_frame(self) -> Frame | None:
        step = next(self.script, None)
        if step is None:
            return None
        if step == "boom":
            raise RuntimeError("the converter caught fire")
        if step == "gate":
            self.gate.wait(timeout=10)
            return self._next_frame()
        missed, failures = step
        self.clock.sleep((missed + 1) / self.nominal_fs)
        attempts = iter(range(100))

        def access() -> float:
            if next(attempts) < failures:
                raise OSError(5, "Input/output error")
            return float(self.k)

        slot = self.k + missed
        value = self._with_retries(lambda: access() * 0 + slot)
        self.k = slot + 1
        values = np.array([np.nan if value is None else value, 1.0])
        return Frame(self.clock.monotonic(), values, missed_before=missed)


def read_all(source: ThreadedSource) -> np.ndarray:
    with source:
        source.start()
        return np.concatenate(list(contiguous(source.blocks(timeout=5), 2)))


def test_frames_arrive_in_blocks_with_missed_slots_as_nan() -> None:
    script = [(0, 0)] * 10 + [(3, 0)] + [(0, 0)] * 10
    source = FakeConverter(script)
    samples = read_all(source)
    assert len(samples) == 24 and source.opened and source.closed
    assert np.isnan(samples[10:13, 0]).all() and np.isnan(samples[10:13, 1]).all()
    assert samples[13, 0] == 13.0 and np.array_equal(samples[:10, 0], np.arange(10.0))
    assert source.stats.frames == 24 and source.stats.missing_frames == 3


def test_bus_errors_are_retried_counted_and_never_fatal() -> None:
    script = [(0, 1), (0, 2), (0, 3), (0, 0)]  # 3 attempts: the third access fails for good
    source = FakeConverter(script, retry=RetryPolicy(attempts=3, first_wait_s=0.001))
    samples = read_all(source)
    assert samples[:, 0].tolist()[:2] == [0.0, 1.0]
    assert np.isnan(samples[2, 0]) and samples[2, 1] == 1.0 and samples[3, 0] == 3.0
    assert source.stats.bus_errors == 6 and source.stats.retries == 5


class HurriedClock(VirtualClock):
    """Virtual time that the converter must treat as real time (it may not wait for a reader)."""

    real_time = True


def test_a_reader_that_falls_behind_gets_a_gap_not_a_join() -> None:
    script = [(0, 0)] * 100 + ["gate"] + [(0, 0)] * 40
    source = FakeConverter(script, queue_blocks=2, clock=HurriedClock())
    with source:
        source.start()
        deadline = time.monotonic() + 5
        while source.stats.overruns == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        first = [source.read_block(timeout=5), source.read_block(timeout=5)]
        source.gate.set()
        blocks = first + list(source.blocks(timeout=5))
    assert source.stats.overruns > 0
    joined = np.concatenate(list(contiguous(iter(blocks), 2)))
    assert len(joined) == blocks[-1].first_index + blocks[-1].n
    assert 0 < np.isnan(joined[:, 0]).sum() <= source.stats.dropped_frames
    received = ~np.isnan(joined[:, 0])
    assert np.array_equal(joined[received, 0], np.flatnonzero(received).astype(float))


def test_on_a_virtual_clock_the_converter_waits_for_a_slow_reader() -> None:
    source = FakeConverter([(0, 0)] * 300, queue_blocks=2)
    with source:
        source.start()
        time.sleep(0.2)  # the reader is away: the converter waits instead of dropping
        samples = np.concatenate(list(contiguous(source.blocks(timeout=5), 2)))
    assert source.stats.overruns == 0 and len(samples) == 300
    assert np.array_equal(samples[:, 0], np.arange(300.0))


def test_blocks_carry_each_rows_time_and_nan_for_missed_slots() -> None:
    source = FakeConverter([(0, 0)] * 5 + [(2, 0)] + [(0, 0)] * 4)
    with source:
        source.start()
        blocks = list(source.blocks(timeout=5))
    times = np.concatenate([b.times for b in blocks])
    assert np.isnan(times[5:7]).all() and source.stats.missed_slots == 2
    assert times[~np.isnan(times)] == pytest.approx(
        [0.01 * k for k in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)]
    )
    assert blocks[0].t_first == pytest.approx(0.01) and blocks[-1].t_last == pytest.approx(0.12)


def test_a_broken_device_ends_the_stream_with_a_clear_error() -> None:
    source = FakeConverter([(0, 0)] * 5 + ["boom"])
    with source:
        source.start()
        with pytest.raises(AcquisitionError, match="caught fire"):
            list(source.blocks(timeout=5))


def test_the_rate_estimate_follows_a_chip_that_runs_fast() -> None:
    rate = RateEstimator(860.0, window_s=10.0)
    for k in range(0, 20000, 100):
        rate.add(k, k / (860.0 * 1.07))
    assert rate.fs == pytest.approx(860.0 * 1.07, rel=1e-6)


def test_the_signal_player_samples_and_holds_moving_forward() -> None:
    x = np.arange(100.0)[:, None] * np.array([[1.0, -1.0]])
    player = SignalPlayer(iter(np.array_split(x, 7)), fs=10.0, channels=("a", "b"))
    assert player.at(0.0).tolist() == [0.0, -0.0]
    assert player.at(0.19).tolist() == [1.0, -1.0]
    assert player.at(5.0).tolist() == [50.0, -50.0]
    assert not player.ended(9.9) and player.ended(10.0)
    assert np.isnan(player.at(10.5)).all()


def test_a_file_in_counts_cannot_drive_a_simulated_electrode(tmp_path: Path) -> None:
    path = tmp_path / "counts.txt"
    path.write_text("# Sampling Rate (Hz):= 1000.00\n# Resolution:= 12\n" + "2048\n" * 2000)
    with pytest.raises(RecordingError, match="uV, mV or V"):
        SignalPlayer.from_file(path)


def test_analog_inputs_map_channels_through_the_front_end_and_apply_faults() -> None:
    x = np.full((1000, 2), 100.0)  # 100 uV on both channels
    player = SignalPlayer(iter([x]), fs=100.0, channels=("a", "b"))
    inputs = AnalogInputs(
        player,
        FrontEnd(gain=1000, offset_v=1.65, rails_v=(0.0, 3.3)),
        wiring=[0, 1, None],
        faults=[InputFault("railed", 0, 2.0, 3.0), InputFault("electrode_off", 1, 4.0, 5.0)],
    )
    assert inputs.volts(1.0) == pytest.approx([1.75, 1.75, 1.65])
    assert inputs.volts(2.5)[0] == 3.3
    assert inputs.volts(4.5)[1] == pytest.approx(1.65) and inputs.volts(4.5)[0] == pytest.approx(
        1.75
    )


def test_a_stuck_input_holds_the_value_it_had() -> None:
    t = np.arange(1000) / 100.0
    x = np.column_stack([np.sin(t) * 100])
    player = SignalPlayer(iter([x]), fs=100.0, channels=("a",))
    inputs = AnalogInputs(player, FrontEnd(), wiring=[0], faults=[InputFault("stuck", 0, 2.0, 4.0)])
    held = [inputs.volts(s)[0] for s in (2.0, 2.5, 3.9)]
    assert held[0] == held[1] == held[2] and inputs.volts(4.5)[0] != held[0]


def test_a_file_source_plays_blocks_on_its_clock(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((5000, 2))
    np.save(tmp_path / "x.npy", x)
    clock = VirtualClock()
    source = FileSource(
        open_recording(tmp_path / "x.npy", fs=500.0), block_frames=1000, clock=clock
    )
    with source:
        source.start()
        blocks = list(source.blocks())
    assert np.array_equal(np.concatenate([b.samples for b in blocks]), x)
    assert [b.first_index for b in blocks] == [0, 1000, 2000, 3000, 4000]
    assert clock.monotonic() == pytest.approx(4999 / 500.0)


def test_clocks() -> None:
    fast = ScaledClock(speed=100.0)
    before = fast.monotonic()
    fast.sleep(1.0)  # 10 ms of real time
    assert fast.monotonic() - before >= 0.99
    virtual = VirtualClock()
    for _ in itertools.repeat(None, 3):
        virtual.sleep(0.5)
    assert virtual.monotonic() == 1.5
    with pytest.raises(ValueError):
        ScaledClock(speed=0)
