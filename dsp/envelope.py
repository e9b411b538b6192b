"""Envelope at a fixed hop: RMS over a sliding window (raw mode) or hop means (envelope mode), of
the measured samples only.

Hop k (k = 0, 1, ...) ends at sample (k + 1) * hop and its window covers the `window` samples before
that (samples before the start of the stream are not measured). The value of a hop is the RMS (or
mean) of the window's measured samples; a hop with fewer than `min_measured` of them is not a
measurement and is NaN. Each window is summed on its own, in the same order whatever the block
split, and measured samples are counted in integers, so the output is bit-identical over any split.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class HopWindowStatistic:
    """Mean of squares (then square root) or plain mean over the measured samples of a window,
    emitted every `hop` samples."""

    def __init__(
        self, window: int, hop: int, n_channels: int, *, rms: bool, min_measured: int = 1
    ) -> None:
        if window < 1 or hop < 1:
            raise ValueError("window and hop must be at least one sample")
        self.window, self.hop, self.rms = window, hop, rms
        self.min_measured = max(1, min(min_measured, window))
        self.n_channels = n_channels
        self._tail = np.zeros((n_channels, window))  # the last `window` samples, channel-major
        # Which of them are measured (before the stream starts: none).
        self._tail_measured = np.zeros((n_channels, window), dtype=bool)
        self._tail_complete = False
        self._consumed = 0

    @property
    def hops_emitted(self) -> int:
        return self._consumed // self.hop

    def process(self, block: np.ndarray, measured: np.ndarray | None = None) -> np.ndarray:
        """Take (n, channels) samples and which of them are measured (None: all), return
        (m, channels) values for the hops that ended in them (NaN: too little measured)."""
        n = block.shape[0]
        values = block.T * block.T if self.rms else block.T
        complete = measured is None and self._tail_complete
        if measured is not None:
            values = np.where(measured.T, values, 0.0)
        buffer = np.concatenate([self._tail, values], axis=1)
        first_end = (self._consumed // self.hop + 1) * self.hop
        last_end = self._consumed + n
        self._tail = buffer[:, -self.window :].copy()
        start_in_buffer = first_end - self._consumed  # window [end - W, end) -> buffer end - N
        count = 0 if first_end > last_end else (last_end - first_end) // self.hop + 1
        counts = None
        if not complete:
            mask = np.ones((self.n_channels, n), dtype=bool) if measured is None else measured.T
            flags = np.concatenate([self._tail_measured, mask], axis=1)
            self._tail_measured = flags[:, -self.window :].copy()
            self._tail_complete = bool(self._tail_measured.all())
            if count:
                cumulative = np.zeros((self.n_channels, flags.shape[1] + 1), dtype=np.int64)
                np.cumsum(flags, axis=1, out=cumulative[:, 1:])
                ends = start_in_buffer + self.window + np.arange(count) * self.hop
                counts = cumulative[:, ends] - cumulative[:, ends - self.window]
        self._consumed = last_end
        if count == 0:
            return np.empty((0, self.n_channels))
        windows = sliding_window_view(buffer, self.window, axis=1)
        picked = windows[
            :, start_in_buffer : start_in_buffer + (count - 1) * self.hop + 1 : self.hop
        ]
        sums = picked.sum(axis=-1)
        if counts is None or counts.min() == self.window:
            means = sums / self.window
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                means = np.where(counts >= self.min_measured, sums / counts, np.nan)
        if self.rms:
            np.sqrt(means, out=means)
        return np.ascontiguousarray(means.T)
