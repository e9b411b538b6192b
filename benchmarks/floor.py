"""The bare scipy floor: the least any streaming EMG envelope detector has to compute.

A 4th-order Butterworth band-pass as second-order sections (20-450 Hz, no notch) run with carried
filter state, then an RMS envelope over 250 ms every 20 ms from a cumulative sum of squares. Nothing
else: no scaling, no gap handling, no quality checks, no detection.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

BAND_HZ = (20.0, 450.0)
ORDER = 4
WINDOW_S = 0.25
HOP_S = 0.02


def floor_sos(fs: float) -> np.ndarray:
    """The pipeline's default band-pass (without the notch) as second-order sections."""
    low, high = BAND_HZ[0], min(BAND_HZ[1], 0.45 * fs)
    return signal.butter(ORDER, [low, high], btype="bandpass", fs=fs, output="sos")


class ScipyFloor:
    """Streaming `sosfilt` with zi plus cumulative-sum RMS; feed blocks of shape (n, channels)."""

    def __init__(self, fs: float, n_channels: int) -> None:
        self.sos = floor_sos(fs)
        self.window = round(WINDOW_S * fs)
        self.hop = round(HOP_S * fs)
        self._zi = np.zeros((self.sos.shape[0], 2, n_channels))
        # squares not yet covered by a whole hop; zeros before the start, as in the pipeline
        self._carry = np.zeros((self.window - self.hop, n_channels))
        self.hops_emitted = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter one block and return the RMS of every window that ended in it, (m, channels)."""
        filtered, self._zi = signal.sosfilt(self.sos, block, axis=0, zi=self._zi)
        squares = np.concatenate([self._carry, filtered * filtered])
        n_hops = max(0, (len(squares) - self.window) // self.hop + 1)
        sums = np.empty((len(squares) + 1, squares.shape[1]))
        sums[0] = 0.0
        np.cumsum(squares, axis=0, out=sums[1:])
        starts = np.arange(n_hops) * self.hop
        means = (sums[starts + self.window] - sums[starts]) / self.window
        self._carry = squares[n_hops * self.hop :]
        self.hops_emitted += n_hops
        return np.sqrt(np.maximum(means, 0.0))
