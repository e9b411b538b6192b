"""A recorded file as an acquisition source: the same interface the converters offer."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hardware.acquisition import AcquisitionSource, SampleBlock
from hardware.clock import Clock
from hardware.recordings import Recording


class FileSource(AcquisitionSource):
    """Plays a recording block by block; with a clock, paced at `speed` times real time."""

    def __init__(
        self, recording: Recording, *, block_frames: int = 4096, clock: Clock | None = None
    ) -> None:
        super().__init__()
        self.recording = recording
        info = recording.info
        self.channels = info.channels
        self.nominal_fs = info.fs
        self.units = info.units or "uV"
        self.block_frames = block_frames
        self.clock = clock
        self._blocks: Iterator[np.ndarray] | None = None
        self._index = 0
        self._t0 = 0.0

    def open(self) -> None:
        self._blocks = self.recording.blocks(self.block_frames)

    def start(self) -> None:
        self._t0 = self.clock.monotonic() if self.clock else 0.0

    def read_block(self, timeout: float | None = None) -> SampleBlock | None:
        if self._blocks is None:
            raise RuntimeError("open() the source before reading")
        samples = next(self._blocks, None)
        if samples is None:
            return None
        first = self._index
        self._index += len(samples)
        t_first, t_last = first / self.nominal_fs, (self._index - 1) / self.nominal_fs
        if self.clock is not None:  # wait until the last sample would have been recorded
            self.clock.sleep(self._t0 + t_last - self.clock.monotonic())
        self.stats.frames += len(samples)
        missing = int(np.isnan(samples).any(axis=1).sum())
        self.stats.missing_frames += missing
        return SampleBlock(samples, first, t_first, t_last, self.nominal_fs)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.recording.close()
