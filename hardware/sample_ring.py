"""A ring of sample rows in shared memory: one writer (the acquisition process), one reader.

Layout (all 8-byte words): a header of counters, then per row its slot index (int64), its clock
time (float64, NaN for a slot the host missed) and one float64 per channel. The writer fills
rows and then publishes how many it has written in total (`written`); the reader copies rows out
and then publishes how many it has taken (`consumed`). The writer never waits for the reader: a
row that does not fit is not written (its slot index is skipped, so the reader sees the gap).
Publication order between the processes is carried by a pipe (see `hardware.acquisition_process`):
the writer announces `written` there after filling the rows, and the reader only reads up to what
was announced. Counters the writer keeps (`AcquisitionStats`) travel in the header.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import fields
from multiprocessing import shared_memory

import numpy as np

from hardware.acquisition import AcquisitionStats

HEADER_WORDS = 32
WRITTEN, CONSUMED = 0, 1
STATS_AT = 8  # AcquisitionStats fields from this header word on, in declaration order
STAT_NAMES = tuple(f.name for f in fields(AcquisitionStats))
assert STATS_AT + len(STAT_NAMES) <= HEADER_WORDS


class SampleRing:
    """Rows of (index, time, channels...) in a shared-memory block; see the module doc.

    The reader's side creates the block (`create`, a `SharedMemory`: the resource tracker removes
    it if this process is killed) and removes it (`unlink`); the writer's side maps it by name
    (`attach`), without registering it anywhere."""

    def __init__(
        self,
        buffer: memoryview | mmap.mmap,
        n_channels: int,
        capacity: int,
        name: str,
        owner: shared_memory.SharedMemory | None = None,
    ) -> None:
        self.name = name
        self.n_channels = n_channels
        self.capacity = capacity
        self._buffer = buffer
        self._owner = owner
        offset = 0

        def take(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
            nonlocal offset
            array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
            offset += array.nbytes
            return array

        self.header = take(np.int64, (HEADER_WORDS,))
        self.index = take(np.int64, (capacity,))
        self.times = take(np.float64, (capacity,))
        self.samples = take(np.float64, (capacity, n_channels))

    @staticmethod
    def nbytes(n_channels: int, capacity: int) -> int:
        return 8 * (HEADER_WORDS + capacity * (2 + n_channels))

    @classmethod
    def create(cls, n_channels: int, capacity: int) -> SampleRing:
        if n_channels < 1 or capacity < 2:
            raise ValueError(f"a ring needs channels and rows, got {n_channels} x {capacity}")
        memory = shared_memory.SharedMemory(create=True, size=cls.nbytes(n_channels, capacity))
        ring = cls(memory.buf, n_channels, capacity, memory.name, memory)
        ring.header[:] = 0
        return ring

    @classmethod
    def attach(cls, name: str, n_channels: int, capacity: int) -> SampleRing:
        """Map the block another process created (POSIX shared memory lives in /dev/shm)."""
        fd = os.open(os.path.join("/dev/shm", name.lstrip("/")), os.O_RDWR)
        try:
            buffer = mmap.mmap(fd, cls.nbytes(n_channels, capacity))
        finally:
            os.close(fd)
        return cls(buffer, n_channels, capacity, name)

    @property
    def written(self) -> int:
        return int(self.header[WRITTEN])

    @property
    def consumed(self) -> int:
        return int(self.header[CONSUMED])

    # ---- the writer -----------------------------------------------------------------------------

    def free(self) -> int:
        """Rows the writer may fill now (the reader may free more meanwhile, never fewer)."""
        return self.capacity - (self.written - self.consumed)

    def write(self, first_index: int, samples: np.ndarray, times: np.ndarray) -> int:
        """Put as many of the rows as fit (from the first on); returns how many. The caller
        publishes them (`written` is updated here, and announced by the caller)."""
        n = min(len(samples), self.free())
        if n <= 0:
            return 0
        start = self.written % self.capacity
        head = min(n, self.capacity - start)
        for lo, hi, at in ((0, head, start), (head, n, 0)):
            if hi > lo:
                stop = at + hi - lo
                self.index[at:stop] = np.arange(first_index + lo, first_index + hi)
                self.times[at:stop] = times[lo:hi]
                self.samples[at:stop] = samples[lo:hi]
        self.header[WRITTEN] = self.written + n
        return n

    def put_stats(self, stats: AcquisitionStats) -> None:
        for i, name in enumerate(STAT_NAMES):
            self.header[STATS_AT + i] = getattr(stats, name)

    # ---- the reader -----------------------------------------------------------------------------

    def read(self, upto: int, max_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of (index, times, samples) of the rows from `consumed` to `upto` (at most
        `max_rows`); marks them consumed."""
        begin = self.consumed
        n = max(0, min(upto - begin, max_rows))
        positions = (begin + np.arange(n)) % self.capacity
        out = (
            self.index[positions].copy(),
            self.times[positions].copy(),
            self.samples[positions].copy(),
        )
        self.header[CONSUMED] = begin + n
        return out

    def stats(self) -> AcquisitionStats:
        return AcquisitionStats(
            **{name: int(self.header[STATS_AT + i]) for i, name in enumerate(STAT_NAMES)}
        )

    # ---- both -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Detach (the arrays must not be used after this)."""
        del self.header, self.index, self.times, self.samples
        if self._owner is not None:
            self._owner.close()
        elif isinstance(self._buffer, mmap.mmap):
            self._buffer.close()

    def unlink(self) -> None:
        """Remove the block (the creating side does this once the writer is gone)."""
        if self._owner is not None:
            self._owner.unlink()
