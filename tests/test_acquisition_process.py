"""The acquisition process: a converter run in a process of its own, read through shared memory.

The converters here are built in the child from the recipes below (module-level functions, so the
child can import them): the real MCP3008 driver on a zero-cost spidev stand-in, and a converter
that makes frames as fast as it can. Checked: rows in order with their times, the known sequence
intact, overrun as a gap (never a join), a virtual clock never losing rows, errors raised in the
parent, log lines coming through, and no process or shared memory left behind after SIGTERM or
SIGKILL of the parent.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import types
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from hardware.acquisition import AcquisitionError, Frame, ThreadedSource, contiguous
from hardware.acquisition_process import ProcessSource
from hardware.clock import Clock, SystemClock, VirtualClock
from hardware.instant_buses import InstantMCP3008SPI, mcp3008_code
from hardware.log_coalescing import COALESCE, repeated
from hardware.mcp3008 import MCP3008Source

ROOT = Path(__file__).resolve().parents[1]
LSB = 3.3 / 1024
log = logging.getLogger("hardware.tests")


# ---- recipes (built in the acquisition process) ----------------------------------------------


def instant_mcp3008(seconds: float, clock: Clock) -> MCP3008Source:
    """The real MCP3008 driver, 2 channels at 1 kHz, on a bus that answers at once, for
    `seconds` from its first slot."""
    first: list[float] = []

    def finished() -> bool:
        now = clock.monotonic()
        first[:] = first or [now]
        return now - first[0] >= seconds

    return MCP3008Source(
        InstantMCP3008SPI(), [("a", 0), ("b", 1)], fs=1000.0, clock=clock, is_finished=finished
    )


class Burst(ThreadedSource):
    """Frames as fast as it can (value = frame number); optional failure and log lines."""

    def __init__(self, frames: int, clock: Clock, fail_after: int | None = None) -> None:
        super().__init__(("k",), 1000.0, clock=clock, block_frames=64)
        self.total, self.fail_after, self.k = frames, fail_after, 0

    def _open_device(self) -> None:
        pass

    def _close_device(self) -> None:
        pass

    def _begin(self) -> None:
        log.warning("burst starting", extra=repeated("burst"))

    def _next_frame(self) -> Frame | None:
        if self.k == self.fail_after:
            raise OSError(5, "the bus went away")
        if self.k >= self.total:
            return None
        self.k += 1
        if not isinstance(self.clock, SystemClock):
            self.clock.sleep(0.001)
        return Frame(self.clock.monotonic(), np.array([float(self.k - 1)]))


def burst(frames: int, virtual: bool, fail_after: int | None = None) -> Burst:
    return Burst(frames, VirtualClock() if virtual else SystemClock(), fail_after)


def refuse() -> ThreadedSource:
    raise ValueError("no MCP3008 answers on /dev/spidev0.0")


# ---- helpers -----------------------------------------------------------------------------------


def read_all(source: ProcessSource) -> tuple[np.ndarray, np.ndarray]:
    """Samples (NaN rows where rows were dropped) and the row times."""
    with source:
        source.start()
        blocks = list(source.blocks(timeout=30))
    samples = np.concatenate(list(contiguous(iter(blocks), len(source.channels))))
    times = np.full(len(samples), np.nan)
    for block in blocks:
        times[block.first_index : block.first_index + block.n] = block.times
    return samples, times


def shm_exists(name: str) -> bool:
    return Path("/dev/shm", name.lstrip("/")).exists()


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if status == "Z":  # exited, waiting for its parent to collect it
            return True
        time.sleep(0.05)
    return False


# ---- tests -------------------------------------------------------------------------------------


def test_rows_arrive_in_order_with_their_times_and_the_process_ends_cleanly() -> None:
    source = ProcessSource(partial(instant_mcp3008, 2.0, VirtualClock()), clock=VirtualClock())
    samples, times = read_all(source)
    assert source.channels == ("a", "b") and source.nominal_fs == 1000.0
    assert samples.shape == (2000, 2) and not np.isnan(samples).any()
    codes = np.round(samples.ravel() / LSB).astype(int)  # frame by frame, a then b
    assert codes.tolist() == [mcp3008_code(k) for k in range(4000)]
    assert times == pytest.approx(np.arange(2000) / 1000.0)
    assert source.report.exit_code == 0 and source.stats.frames == 2000
    assert source.clock.monotonic() == pytest.approx(1.999)  # this side followed its time


def test_a_real_time_converter_accounts_for_every_slot_and_reports_what_it_kept() -> None:
    """Real time, however busy the host: every slot is a row (missed ones NaN, counted), the
    values kept are the bus's sequence in order, each row is timed inside its own slot."""
    source = ProcessSource(partial(instant_mcp3008, 2.0, SystemClock()), clock=SystemClock())
    samples, times = read_all(source)
    assert abs(len(samples) - 2000) <= 2
    kept = ~np.isnan(samples).any(axis=1)
    assert int((~kept).sum()) == source.stats.missing_frames == source.stats.missed_slots
    codes = np.round(samples[kept].ravel() / LSB).astype(int)
    assert codes.tolist() == [mcp3008_code(k) for k in range(len(codes))]
    slot_start = times[kept][0] + (np.flatnonzero(kept) - np.flatnonzero(kept)[0]) / 1000.0
    assert np.all(times[kept] - slot_start < 1e-3)  # a late frame takes a later slot
    assert kept.mean() > 0.5  # a sanity floor (the benchmark measures what a host keeps)


def test_a_reader_that_stops_reading_loses_rows_as_a_gap_never_a_join() -> None:
    source = ProcessSource(partial(burst, 200_000, False), clock=SystemClock(), ring_s=1.0)
    with source:
        source.start()
        time.sleep(1.5)  # not reading: the ring (4096 rows) fills and the rest is dropped
        blocks = list(source.blocks(timeout=30))
    samples = np.concatenate(list(contiguous(iter(blocks), 1)))[:, 0]
    stats = source.stats
    assert stats.overruns > 0 and stats.dropped_frames > 0
    present = ~np.isnan(samples)
    assert np.array_equal(samples[present], np.flatnonzero(present))  # each row in its place
    assert int((~present).sum()) == stats.dropped_frames
    assert len(samples) == 200_000 or not present[-1]


def test_on_a_virtual_clock_the_process_waits_for_its_reader() -> None:
    source = ProcessSource(partial(burst, 20_000, True), clock=VirtualClock(), ring_s=1.0)
    with source:
        source.start()
        time.sleep(1.0)
        samples = np.concatenate([b.samples for b in source.blocks(timeout=30)])[:, 0]
    assert np.array_equal(samples, np.arange(20_000.0)) and source.stats.dropped_frames == 0


def test_an_error_building_the_converter_is_raised_here_as_it_was() -> None:
    with pytest.raises(ValueError, match=r"no MCP3008 answers on /dev/spidev0\.0"):
        ProcessSource(refuse, clock=SystemClock()).open()


def test_an_error_during_acquisition_ends_the_stream_with_a_clear_error() -> None:
    source = ProcessSource(partial(burst, 10_000, True, 500), clock=VirtualClock())
    read: list[np.ndarray] = []
    with source, pytest.raises(AcquisitionError, match="the bus went away"):
        source.start()
        for block in source.blocks(timeout=30):
            read.append(block.samples)
    assert np.array_equal(np.concatenate(read)[:, 0], np.arange(500.0))  # all it read first


def test_a_recipe_the_process_cannot_import_is_refused_with_a_clear_error() -> None:
    module = types.ModuleType("crampwatch_only_here")
    exec("def build():\n    raise AssertionError('never runs')\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        with pytest.raises(AcquisitionError, match="importable module"):
            ProcessSource(module.build, clock=SystemClock()).open()
    finally:
        del sys.modules[module.__name__]


def test_log_lines_of_the_process_arrive_here_with_their_level_and_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hardware")
    read_all(ProcessSource(partial(burst, 100, True), clock=VirtualClock()))
    (record,) = [r for r in caplog.records if r.getMessage() == "burst starting"]
    assert record.levelname == "WARNING" and record.name == "hardware.tests"
    assert getattr(record, COALESCE) == "burst"


PARENT = """
import sys, time
from functools import partial
from hardware.acquisition_process import ProcessSource
from hardware.clock import SystemClock
from tests.test_acquisition_process import instant_mcp3008
source = ProcessSource(partial(instant_mcp3008, 600.0, SystemClock()), clock=SystemClock())
source.open()
source.start()
print(source.report.pid, source._ring.name, flush=True)
while True:
    source.read_block(timeout=5)
"""


@pytest.mark.slow
def test_the_process_and_its_shared_memory_do_not_outlive_a_killed_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child, ring = parent.stdout.readline().split()
    assert not gone(int(child), 0.2) and shm_exists(ring)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    assert gone(int(child), 5.0), "the acquisition process outlived its parent"
    deadline = time.monotonic() + 10.0
    while shm_exists(ring) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not shm_exists(ring), "the shared memory outlived both"


@pytest.mark.slow
def test_sigterm_to_the_daemon_and_its_acquisition_process_stops_both_cleanly(
    tmp_path: Path,
) -> None:
    """As systemd stops a service: SIGTERM to every process of it."""
    log_path = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "firmware_host.cli", "run", "--sim", "mcp3008", "--speed", "1",
         "--hours", "1", "--no-mqtt", "--no-record"],
        cwd=ROOT, stderr=log_path.open("w"),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "(measured)" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    children = Path(f"/proc/{daemon.pid}/task/{daemon.pid}/children").read_text().split()
    assert children, "no acquisition process"
    for pid in (daemon.pid, *map(int, children)):
        os.kill(pid, signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert all(gone(int(pid), 5.0) for pid in children)
    text = log_path.read_text()
    assert "SIGTERM received: stopping cleanly" in text and "Traceback" not in text
