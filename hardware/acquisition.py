"""The acquisition-source interface, and the converter loop that chip sources share.

Every source (a real or simulated converter, a recorded file) is opened, started, read block by block
and stopped the same way, so the rest of crampwatch does not care where samples come from. A block
carries its samples (NaN where a sample is missing), the index of its first sample since the start,
each row's clock time (when its conversion happened) and the running estimate of the true sampling
rate. Samples are never invented and never silently joined: a missed conversion, a bus error that
outlasts its retries, or a block the consumer was too slow to take becomes missing samples at the
right place.

`ThreadedSource` is a converter's loop. It runs on a thread of its own (`start()`), or, for the
daemon, in an acquisition process of its own (`hardware.acquisition_process`), where nothing the
rest of the program does can hold it up.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import numpy as np

from hardware.clock import Clock, SystemClock, is_real_time
from hardware.log_coalescing import repeated

log = logging.getLogger(__name__)
T = TypeVar("T")


class AcquisitionError(RuntimeError):
    """The source cannot go on (not a passing bus error: those are retried and counted)."""


@dataclass(frozen=True)
class SampleBlock:
    """Consecutive samples of every channel, shape (n, channels), NaN where missing. `times`
    (when given) is each row's clock time, NaN for a slot the host missed (no conversion)."""

    samples: np.ndarray
    first_index: int
    t_first: float
    t_last: float
    fs_estimate: float
    times: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def missing(self) -> int:
        """Frames with at least one missing sample."""
        return int(np.isnan(self.samples).any(axis=1).sum())


@dataclass
class AcquisitionStats:
    """Counters a source keeps while it runs (read them any time).

    `frames`: rows (slots) the converter loop produced; `missing_frames`: those with a missing
    value; `missed_slots`: those the host was too late for (part of `missing_frames`);
    `dropped_frames`: rows with values that the reader lost for being too slow (they reach it as
    missing rows too). Slots kept: `frames - missed_slots - dropped_frames`. `loop_cpu_us`: CPU
    time the converter loop's thread has used (what the frames cost the host)."""

    frames: int = 0
    missing_frames: int = 0
    missed_slots: int = 0  # slots the host was too late for (part of missing_frames)
    bus_errors: int = 0
    retries: int = 0
    overruns: int = 0
    dropped_frames: int = 0
    loop_cpu_us: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class AcquisitionSource(ABC):
    """Open, start, read blocks, stop, close; also a context manager (open on enter)."""

    channels: tuple[str, ...]
    nominal_fs: float
    units: str

    def __init__(self) -> None:
        self.stats = AcquisitionStats()

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def read_block(self, timeout: float | None = None) -> SampleBlock | None:
        """The next block; None once the source has ended and everything was read. Raises
        `TimeoutError` when nothing came within `timeout` seconds."""

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def blocks(self, timeout: float | None = None) -> Iterator[SampleBlock]:
        """Every block until the source ends."""
        while (block := self.read_block(timeout)) is not None:
            yield block

    def __enter__(self) -> AcquisitionSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.close()


def contiguous(blocks: Iterator[SampleBlock], n_channels: int) -> Iterator[np.ndarray]:
    """Sample arrays with NaN rows where blocks were dropped, so indices stay continuous."""
    expected = 0
    for block in blocks:
        if block.first_index > expected:
            yield np.full((block.first_index - expected, n_channels), np.nan)
        yield block.samples
        expected = block.first_index + block.n


@dataclass(frozen=True)
class Frame:
    """One sample of every channel at clock time `t`, after `missed_before` lost frame slots."""

    t: float
    values: np.ndarray
    missed_before: int = 0


@dataclass
class RetryPolicy:
    """Bus errors: retry at once, then with doubling waits, at most `attempts` tries per access."""

    attempts: int = 3
    first_wait_s: float = 0.0005
    max_wait_s: float = 0.05


class RateEstimator:
    """Running estimate of the true sampling rate from (frame index, clock time) pairs."""

    def __init__(self, nominal_fs: float, window_s: float = 30.0) -> None:
        self.nominal_fs = nominal_fs
        self.window_s = window_s
        self._points: deque[tuple[int, float]] = deque()

    def add(self, index: int, t: float) -> None:
        self._points.append((index, t))
        while len(self._points) > 2 and t - self._points[1][1] >= self.window_s:
            self._points.popleft()

    @property
    def fs(self) -> float:
        if len(self._points) < 2:
            return self.nominal_fs
        (i0, t0), (i1, t1) = self._points[0], self._points[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 and i1 > i0 else self.nominal_fs


_END = object()


class ThreadedSource(AcquisitionSource):
    """A converter's loop: frames gathered into blocks, on a thread of its own (`start()`, blocks
    on a bounded queue) or on the caller's thread (`run`, as the acquisition process does).

    Subclasses open the device and produce frames (`_next_frame`), pacing themselves on the chip's
    data-ready signal or on the clock; `_with_retries` gives them the shared bus-error policy.
    On a real-time clock a reader too slow to take a block loses it (a gap, counted); on a virtual
    clock the loop waits for the reader instead (nothing is late in virtual time).
    """

    units = "V"

    def __init__(
        self,
        channels: tuple[str, ...],
        nominal_fs: float,
        *,
        clock: Clock | None = None,
        block_frames: int = 256,
        queue_blocks: int = 256,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.nominal_fs = float(nominal_fs)
        self.clock = clock or SystemClock()
        self.block_frames = block_frames
        self.max_block_s: float | None = None  # also end a block once it spans this (clock s)
        self.retry = retry or RetryPolicy()
        self.rate = RateEstimator(self.nominal_fs)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_blocks)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False
        self._failure: BaseException | None = None
        self._next_index = 0
        self._t_last = 0.0

    # ---- subclass hooks -------------------------------------------------------------------------

    @abstractmethod
    def _open_device(self) -> None: ...

    @abstractmethod
    def _close_device(self) -> None: ...

    @abstractmethod
    def _begin(self) -> None:
        """Put the converter into its running mode (called on the acquisition thread)."""

    @abstractmethod
    def _next_frame(self) -> Frame | None:
        """Wait for and read the next frame; None when the source has nothing more."""

    # ---- the interface --------------------------------------------------------------------------

    def open(self) -> None:
        self._open_device()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"acquire-{type(self).__name__}", daemon=True
        )
        self._thread.start()

    def read_block(self, timeout: float | None = None) -> SampleBlock | None:
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty as error:
            raise TimeoutError(f"no samples from {type(self).__name__} in {timeout} s") from error
        if item is _END:
            self._ended = True
            if self._failure is not None:
                raise AcquisitionError(str(self._failure)) from self._failure
            return None
        assert isinstance(item, SampleBlock)
        return item

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def close(self) -> None:
        self.stop()
        self._close_device()

    # ---- the loop -------------------------------------------------------------------------------

    def run(self, deliver: Callable[[SampleBlock], None]) -> None:
        """The converter loop on the calling thread, until the source ends or `stop()`: every
        block (slots the host missed as NaN rows) goes to `deliver`. Raises what stopped the
        converter (after delivering what it read)."""
        rows: list[np.ndarray] = []
        times: list[float] = []
        nan_row = np.full(len(self.channels), np.nan)
        block_t0 = 0.0
        cpu0 = time.thread_time()
        try:
            self._begin()
            while not self._stop.is_set():
                frame = self._next_frame()
                if frame is None:
                    break
                if not rows:
                    block_t0 = frame.t
                if frame.missed_before:
                    self.stats.missed_slots += frame.missed_before
                    rows += [nan_row] * frame.missed_before
                    times += [math.nan] * frame.missed_before
                rows.append(frame.values)
                times.append(frame.t)
                if len(rows) >= self.block_frames or (
                    self.max_block_s is not None and frame.t - block_t0 >= self.max_block_s
                ):
                    self.stats.loop_cpu_us = int((time.thread_time() - cpu0) * 1e6)
                    deliver(self._block(rows, times))
                    rows, times = [], []
        finally:
            self.stats.loop_cpu_us = int((time.thread_time() - cpu0) * 1e6)
            if rows:
                deliver(self._block(rows, times))

    def _block(self, rows: list[np.ndarray], times: list[float]) -> SampleBlock:
        samples = np.vstack(rows)
        t = np.array(times)
        first = self._next_index
        self._next_index += len(samples)
        timed = np.flatnonzero(np.isfinite(t))
        t_first = float(t[timed[0]]) if len(timed) else self._t_last
        if len(timed):
            self._t_last = float(t[timed[-1]])
            self.rate.add(first + int(timed[0]), t_first)
            self.rate.add(first + int(timed[-1]), self._t_last)
        self.stats.frames += len(samples)
        self.stats.missing_frames += int(np.isnan(samples).any(axis=1).sum())
        return SampleBlock(samples, first, t_first, self._t_last, self.rate.fs, t)

    # ---- shared helpers -------------------------------------------------------------------------

    def _with_retries(self, access: Callable[[], T]) -> T | None:
        """Run one bus access; retry OSErrors with backoff; None if every attempt failed."""
        wait = self.retry.first_wait_s
        for attempt in range(self.retry.attempts):
            try:
                return access()
            except OSError as error:
                self.stats.bus_errors += 1
                if attempt + 1 == self.retry.attempts:
                    log.debug("bus access failed %d times: %s", self.retry.attempts, error)
                    return None
                self.stats.retries += 1
                if attempt:
                    self.clock.sleep(wait)
                    wait = min(wait * 2, self.retry.max_wait_s)
        return None

    # ---- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.run(self._offer)
        except Exception as error:  # reported to the reader; the thread must not die silently
            log.exception("acquisition stopped")
            self._failure = error
        finally:
            self._put_end()

    def _offer(self, block: SampleBlock) -> None:
        """Queue a block for the reader. Real time: drop it when the reader is too far behind
        (a gap, counted); virtual time: wait for room."""
        if not is_real_time(self.clock):
            while not self._stop.is_set():
                try:
                    self._queue.put(block, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            self.stats.overruns += 1
            self.stats.dropped_frames += block.n - block.missing
            log.warning(
                "the reader fell behind the converter: %d frames dropped (they become a gap)",
                block.n,
                extra=repeated("reader behind"),
            )

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(_END, timeout=0.5)
                return
            except queue.Full:
                if self._stop.is_set():  # make room: the reader has gone
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()
