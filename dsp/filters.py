"""Stateful IIR filtering (second-order sections) that is exact over any block split, and that
never turns missing samples into measurement.

Missing samples (NaN/inf) are not measured, so the filter's output there is no measurement either
(it is 0 and marked as not measured). The filter still has to get across a gap, and how it does
decides how long its output stays wrong afterwards: holding the last value makes a step (baseline
wander of tens of uV over a second or two) that rings through the band-pass at many times the
resting EMG and looks like a movement. So:

- a gap of up to `bridge_max` samples is crossed on the straight line from the last measured
  sample to the next one: the line only steers the filter's state and is never output (the
  samples after it wait for the next measured one, across blocks);
- a longer gap restarts the filter in the steady state of the next measured sample, as at the
  start of a channel (a DC offset then does not ring through the band-pass);
- after a gap, the output is not a measurement for as long as the gap lasted, at most `settle`
  samples (the filter's transient: a single missing sample spoils about one sample, a long gap
  the band-pass's settling time); after a restart, for `settle` samples.

`process` returns the output and which samples of it are measurements (None: all of them).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class _ChannelGapState:
    """Where one channel stands with respect to missing samples (positions are absolute)."""

    started: bool = False
    last_value: float = 0.0  # the last measured sample
    pending: int = 0  # missing samples since it, not yet run through the filter
    measured_from: int = 0  # the output is not a measurement before this sample


class StreamingSOSFilter:
    """`scipy.signal.sosfilt` with state carried across blocks of shape (n, channels), crossing
    gaps of missing samples as described in the module docstring."""

    def __init__(
        self, sos: np.ndarray, n_channels: int, *, settle: int = 0, bridge_max: int = 0
    ) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.n_channels = n_channels
        self.settle = max(0, settle)
        self.bridge_max = max(0, bridge_max)
        self._zi_unit = signal.sosfilt_zi(self.sos)  # steady state for a unit step
        self._zi = np.zeros((self.sos.shape[0], 2, n_channels))
        self._gaps = [_ChannelGapState() for _ in range(n_channels)]
        self._position = 0
        self._all_clear = False  # every channel started, nothing pending, nothing settling

    def process(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Filter (n, channels) samples; returns the output and the mask of the samples that are
        measurements (None when all are)."""
        n = block.shape[0]
        if n == 0:
            return np.empty((0, self.n_channels)), None
        if self._all_clear and np.isfinite(block).all():
            out, self._zi = signal.sosfilt(self.sos, block, axis=0, zi=self._zi)
            self._position += n
            for gap, value in zip(self._gaps, block[-1].tolist(), strict=True):
                gap.last_value = value
            return out, None
        out = np.zeros(block.shape)
        measured = np.zeros(block.shape, dtype=bool)
        for ch in range(self.n_channels):
            out[:, ch], measured[:, ch] = self._process_channel(block[:, ch], ch)
        self._position += n
        self._all_clear = all(
            g.started and g.pending == 0 and g.measured_from <= self._position for g in self._gaps
        )
        return out, (None if measured.all() else measured)

    def _process_channel(self, column: np.ndarray, ch: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(column)
        gap = self._gaps[ch]
        out = np.zeros(n)
        measured = np.zeros(n, dtype=bool)
        finite = np.isfinite(column)
        valid_at = np.flatnonzero(finite)
        if valid_at.size == 0:
            if gap.started:
                gap.pending += n
            return out, measured
        first, last = int(valid_at[0]), int(valid_at[-1])
        if not gap.started or gap.pending + first > self.bridge_max:
            # The channel's first measured sample, or the end of a long gap: restart.
            length = gap.pending + first if gap.started else None
            self._restart(ch, column[first], self._position + first, length)
            begin, prefix = first, 0
        else:
            begin, prefix = 0, gap.pending  # a short gap carried over: bridge it
        # From `begin` to the last measured sample, behind the carried gap's missing samples.
        span = np.concatenate([np.full(prefix, np.nan), column[begin : last + 1]])
        span_finite = np.concatenate([np.zeros(prefix, dtype=bool), finite[begin : last + 1]])
        filled, gap_ends, gap_lengths = _bridge(span, span_finite, gap.last_value)
        restarts = gap_ends[gap_lengths > self.bridge_max]
        out[begin : last + 1] = self._filter_span(ch, filled, restarts)[prefix:]
        offset = self._position + begin - prefix  # absolute position of span[0]
        settled = self._settled(len(span), gap_ends, gap_lengths, offset, gap)
        measured[begin : last + 1] = (span_finite & settled)[prefix:]
        out[~measured] = 0.0
        gap.last_value = float(column[last])
        gap.pending = n - 1 - last
        return out, measured

    def _restart(self, ch: int, value: float, at: int, gap_length: int | None) -> None:
        """Start the filter in the steady state of `value` (sample `at`, after a gap of
        `gap_length` samples, or the channel's first)."""
        gap = self._gaps[ch]
        self._zi[:, :, ch] = self._zi_unit * value
        settle = self.settle if gap_length is None else min(gap_length, self.settle)
        gap.started = True
        gap.pending = 0
        gap.measured_from = max(gap.measured_from, at + settle)

    def _filter_span(self, ch: int, filled: np.ndarray, restarts: np.ndarray) -> np.ndarray:
        """sosfilt over `filled`, restarting in the steady state of the sample after a long gap."""
        out = np.empty(len(filled))
        begin = 0
        zi = self._zi[:, :, ch]
        for at in restarts.tolist():
            out[begin:at], _ = signal.sosfilt(self.sos, filled[begin:at], zi=zi)
            zi = self._zi_unit * filled[at]
            begin = at
        out[begin:], self._zi[:, :, ch] = signal.sosfilt(self.sos, filled[begin:], zi=zi)
        return out

    def _settled(
        self,
        n: int,
        gap_ends: np.ndarray,
        gap_lengths: np.ndarray,
        offset: int,
        gap: _ChannelGapState,
    ) -> np.ndarray:
        """Which of the span's n samples are past the filter's transient after every gap (the
        transient after a gap lasts as long as the gap, at most `settle` samples)."""
        until = np.zeros(n, dtype=np.int64)
        until[gap_ends] = offset + gap_ends + np.minimum(gap_lengths, self.settle)
        until[0] = max(until[0], gap.measured_from)
        np.maximum.accumulate(until, out=until)
        gap.measured_from = int(until[-1])
        return offset + np.arange(n) >= until


def _bridge(
    span: np.ndarray, finite: np.ndarray, before: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill the gaps of `span` (which ends with a measured sample) on straight lines between the
    measured samples around them (`before` is the one just before span[0]).

    Returns the filled span, where each gap ends (the index of the next measured sample) and its
    length. The arithmetic depends only on the distances to the measured samples around a gap, so
    a gap split across blocks is filled exactly as in one block.
    """
    if finite.all():
        empty = np.empty(0, dtype=np.int64)
        return span, empty, empty
    edges = np.diff(finite.astype(np.int8), prepend=np.int8(1))
    starts = np.flatnonzero(edges == -1)  # first missing sample of each gap
    ends = np.flatnonzero(edges == 1)  # first measured sample after it
    lengths = ends - starts
    first = np.where(starts > 0, span[np.maximum(starts - 1, 0)], before)
    rise = span[ends] - first
    # Position of each missing sample within its gap (1 .. length), gap by gap.
    step = np.repeat(lengths + 1, lengths)
    position = np.arange(1, len(step) + 1) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    filled = span.copy()
    filled[~finite] = np.repeat(first, lengths) + np.repeat(rise, lengths) * (position / step)
    return filled, ends, lengths
