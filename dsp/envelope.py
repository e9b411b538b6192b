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


class MissingSampleTracker:
    """Which hops' windows contain missing (non-finite) samples, carried across blocks.

    Such a hop's envelope is not a measurement of the muscle (the filter held the last sample), so
    the pipeline reports it as missing and the detector holds the envelope over it.
    """

    def __init__(self, window: int, hop: int, n_channels: int) -> None:
        self.window, self.hop = window, hop
        self._last_missing = np.full(n_channels, -(2**62), dtype=np.int64)
        self._consumed = 0

    @property
    def hops_seen(self) -> int:
        return self._consumed // self.hop

    def process(self, block: np.ndarray) -> np.ndarray | None:
        """Boolean (hops ending in this block, channels), or None when no such hop is affected."""
        start, n = self._consumed, block.shape[0]
        self._consumed += n
        ends = np.arange((start // self.hop + 1) * self.hop, start + n + 1, self.hop)
        finite = np.isfinite(block)
        if finite.all():
            if len(ends) == 0 or self._last_missing.max() < ends[0] - self.window:
                return None
            last_at_end = np.broadcast_to(self._last_missing, (len(ends), block.shape[1]))
        else:
            positions = np.where(finite, -(2**62), np.arange(start, start + n)[:, None])
            np.maximum.accumulate(positions, axis=0, out=positions)
            np.maximum(positions, self._last_missing, out=positions)
            self._last_missing = positions[-1].copy()
            if len(ends) == 0:
                return None
            last_at_end = positions[ends - 1 - start]
        return last_at_end >= (ends - self.window)[:, None]
