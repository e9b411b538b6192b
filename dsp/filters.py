"""Stateful IIR filtering (second-order sections) that is exact over any block split.

Missing samples (NaN/inf) are held at the channel's last valid value, so a gap never poisons the
filter state; the quality stage reports the gap. Each channel's filter starts in the steady state
of its first valid sample, so a DC offset does not ring through the band-pass at start-up.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from dsp.config import PipelineConfig


def band_pass_notch_sos(config: PipelineConfig) -> np.ndarray:
    """Butterworth band-pass plus mains notches, as one cascade of second-order sections."""
    low, high = config.filter.effective_band(config.fs)
    sections = [
        signal.butter(
            config.filter.order, [low, high], btype="bandpass", fs=config.fs, output="sos"
        )
    ]
    for freq in config.filter.notch_frequencies(config.fs):
        b, a = signal.iirnotch(freq, config.filter.notch_q, fs=config.fs)
        sections.append(signal.tf2sos(b, a))
    return np.vstack(sections)


def envelope_lowpass_sos(config: PipelineConfig) -> np.ndarray:
    """Smoothing for sensors that already deliver a rectified envelope."""
    return signal.butter(
        2, config.filter.envelope_lowpass_hz, btype="lowpass", fs=config.fs, output="sos"
    )


def hold_missing(block: np.ndarray, last_valid: np.ndarray) -> np.ndarray:
    """Replace non-finite samples by the last finite sample before them (per channel).

    `last_valid` is the carried-over value per channel and is updated in place.
    """
    finite = np.isfinite(block)
    if finite.all():
        last_valid[:] = block[-1]
        return block
    n = block.shape[0]
    positions = np.where(finite, np.arange(n)[:, None], -1)
    np.maximum.accumulate(positions, axis=0, out=positions)
    columns = np.arange(block.shape[1])[None, :]
    filled = block[np.maximum(positions, 0), columns]
    filled = np.where(positions >= 0, filled, last_valid[None, :])
    last_valid[:] = filled[-1]
    return filled


class StreamingSOSFilter:
    """`scipy.signal.sosfilt` with state carried across blocks of shape (n, channels)."""

    def __init__(self, sos: np.ndarray, n_channels: int) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.n_channels = n_channels
        self._zi_unit = signal.sosfilt_zi(self.sos)  # steady state for a unit step
        self._zi = np.zeros((self.sos.shape[0], 2, n_channels))
        self._started = np.zeros(n_channels, dtype=bool)
        self._last_valid = np.zeros(n_channels)

    def process(self, block: np.ndarray) -> np.ndarray:
        if block.shape[0] == 0:
            return np.empty((0, self.n_channels))
        if not self._started.all():
            return self._process_starting(block)
        held = hold_missing(block, self._last_valid)
        out, self._zi = signal.sosfilt(self.sos, held, axis=0, zi=self._zi)
        return out

    def _process_starting(self, block: np.ndarray) -> np.ndarray:
        """Channel by channel until each has seen its first valid sample (happens once)."""
        out = np.zeros(block.shape)
        for ch in range(self.n_channels):
            column = block[:, ch]
            begin = 0
            if not self._started[ch]:
                finite_at = np.flatnonzero(np.isfinite(column))
                if finite_at.size == 0:
                    continue
                begin = int(finite_at[0])
                self._zi[:, :, ch] = self._zi_unit * column[begin]
                self._started[ch] = True
            last = self._last_valid[ch : ch + 1]
            held = hold_missing(column[begin:, None], last)[:, 0]
            out[begin:, ch], self._zi[:, :, ch] = signal.sosfilt(
                self.sos, held, zi=self._zi[:, :, ch]
            )
        return out
