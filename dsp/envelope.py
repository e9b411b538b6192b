"""Envelope at a fixed hop: RMS over a sliding window (raw mode) or hop means (envelope mode).

Hop k (k = 0, 1, ...) ends at sample (k + 1) * hop and its window covers the `window` samples before
that (samples before the start of the stream count as zero). Each window is summed on its own, in the
same order whatever the block split, so the output is bit-identical over any split.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class HopWindowStatistic:
    """Mean of squares (then square root) or plain mean over a window, emitted every `hop` samples."""

    def __init__(self, window: int, hop: int, n_channels: int, *, rms: bool) -> None:
        if window < 1 or hop < 1:
            raise ValueError("window and hop must be at least one sample")
        self.window, self.hop, self.rms = window, hop, rms
        self.n_channels = n_channels
        self._tail = np.zeros((n_channels, window))  # the last `window` samples, channel-major
        self._consumed = 0

    @property
    def hops_emitted(self) -> int:
        return self._consumed // self.hop

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take (n, channels) samples, return (m, channels) values for the hops that ended in them."""
        n = block.shape[0]
        values = block.T * block.T if self.rms else block.T
        buffer = np.concatenate([self._tail, values], axis=1)
        first_end = (self._consumed // self.hop + 1) * self.hop
        last_end = self._consumed + n
        self._tail = buffer[:, -self.window :].copy()
        count = 0 if first_end > last_end else (last_end - first_end) // self.hop + 1
        start_in_buffer = (
            first_end - self._consumed
        )  # window [end - W, end) -> buffer index end - N
        self._consumed = last_end
        if count == 0:
            return np.empty((0, self.n_channels))
        windows = sliding_window_view(buffer, self.window, axis=1)
        picked = windows[
            :, start_in_buffer : start_in_buffer + (count - 1) * self.hop + 1 : self.hop
        ]
        means = picked.sum(axis=-1) / self.window
        if self.rms:
            np.sqrt(means, out=means)
        return np.ascontiguousarray(means.T)
