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
    """Which hops' windows are mostly made of missing (non-finite) samples, across blocks.

    Over such a hop the envelope is not a measurement of the muscle (the filter held the last
    sample), so the pipeline reports it as missing and the detector holds the envelope over it.
    A few scattered dropouts (below `fraction` of a window) are ordinary and are not held.
    Counting is in integers, so the result is the same over any block split.
    """

    def __init__(self, window: int, hop: int, n_channels: int, fraction: float = 0.1) -> None:
        self.window, self.hop = window, hop
        self.limit = fraction * window
        self._tail = np.zeros((window, n_channels), dtype=np.int64)
        self._tail_missing = False
        self._consumed = 0

    @property
    def hops_seen(self) -> int:
        return self._consumed // self.hop

    def process(self, block: np.ndarray) -> np.ndarray | None:
        """Boolean (hops ending in this block, channels), or None when no such hop is held."""
        start, n = self._consumed, block.shape[0]
        self._consumed += n
        missing = ~np.isfinite(block)
        if not self._tail_missing and not missing.any():
            return None
        buffer = np.concatenate([self._tail, missing.astype(np.int64)])  # row 0: sample start - W
        self._tail = buffer[-self.window :]
        self._tail_missing = bool(self._tail.any())
        ends = np.arange((start // self.hop + 1) * self.hop, start + n + 1, self.hop)
        if len(ends) == 0:
            return None
        counts = np.vstack([np.zeros((1, block.shape[1]), dtype=np.int64), buffer.cumsum(axis=0)])
        rows = ends - start + self.window  # buffer row just past each window
        held = counts[rows] - counts[rows - self.window] > self.limit
        return held if held.any() else None
