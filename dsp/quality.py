"""Per-channel signal quality, assessed once per tick: electrode off, clipping, mains, gaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.config import PipelineConfig

ELECTRODE_OFF = "electrode_off"
CLIPPING = "clipping"
MAINS = "mains"
GAP = "gap"


@dataclass(frozen=True, slots=True)
class TickQuality:
    """Quality of complete ticks: boolean arrays of shape (ticks, channels) per problem.

    `blocking` marks ticks where detection must stop: electrode off, mains, and heavy clipping
    (QualityConfig); a strong cramp that clips now and then is still a cramp. Missing samples
    (`gap`) are reported here but do not block: the envelope is measured from the samples that are
    there, and the detector decides from the hops that are not measured (dsp.detector).
    """

    electrode_off: np.ndarray
    clipping: np.ndarray
    mains: np.ndarray
    gap: np.ndarray
    blocking: np.ndarray
    gap_fraction: np.ndarray

    @classmethod
    def good(cls, shape: tuple[int, int]) -> TickQuality:
        """No problem anywhere."""
        clear = np.zeros(shape, dtype=bool)
        return cls(clear, clear, clear, clear, clear, np.zeros(shape))

    def problems(self, tick: int, channel: int) -> tuple[str, ...]:
        names = (ELECTRODE_OFF, CLIPPING, MAINS, GAP)
        flags = (self.electrode_off, self.clipping, self.mains, self.gap)
        return tuple(name for name, flag in zip(names, flags, strict=True) if flag[tick, channel])


class QualityAssessor:
    """Vectorized over ticks: takes the scaled input and the filtered signal of whole ticks."""

    def __init__(
        self, config: PipelineConfig, rails_uv: tuple[float, float] | None, tick_samples: int
    ) -> None:
        self.config = config.quality
        self.rails_uv = rails_uv
        self.raw_mode = config.mode == "raw"
        self.check_mains = self.raw_mode and config.filter.notch_hz is not None
        t = np.arange(tick_samples) / config.fs
        window = np.hanning(tick_samples)
        self._window_sum = window.sum()
        self._window_gain = self._window_sum / 2.0
        phase = 2 * np.pi * (config.filter.notch_hz or 0.0) * t
        # Rows: windowed cosine, windowed sine, window; real, so one BLAS product per tick.
        self._projectors = np.stack([window * np.cos(phase), window * np.sin(phase), window])
        self._phasor_sums = self._projectors[:2].sum(axis=1)

    def assess(
        self,
        scaled: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        env: np.ndarray,
    ) -> TickQuality:
        """Arrays of shape (ticks, samples or hops per tick, channels): input in uV, the filtered
        signal (0 where it is not a measurement), which filtered samples are measurements (None:
        all), and the envelope hops (NaN: not measured)."""
        shape = (scaled.shape[0], scaled.shape[2])
        finite = np.isfinite(scaled)
        railed_fraction = self._railed_fraction(scaled, shape)  # NaN is never at a rail
        coverage = None
        if finite.all():
            gap_fraction = np.zeros(shape)
        else:
            gap_fraction = 1.0 - finite.mean(axis=1)
            # The Hann window's share that was measured: the hum's demodulated amplitude shrinks
            # with it (missing samples carry no hum) and is scaled back up.
            coverage = np.matmul(self._projectors[2], finite.astype(float)) / self._window_sum
            # Missing samples take the tick's mean, so they add no step and no hum.
            zeroed = np.where(finite, scaled, 0.0)
            count = np.maximum(finite.sum(axis=1, keepdims=True), 1)
            scaled = np.where(finite, scaled, zeroed.sum(axis=1, keepdims=True) / count)
        gap = gap_fraction > 0
        env_max, env_min = np.fmax.reduce(env, axis=1), np.fmin.reduce(env, axis=1)  # NaN: none
        with np.errstate(invalid="ignore"):
            if self.raw_mode:
                flat = env_max <= self.config.flat_uv
            else:
                flat = env_max - env_min <= self.config.flat_uv
        electrode_off = (flat | (railed_fraction >= self.config.railed_fraction)) & (
            gap_fraction < 1
        )
        clipping = (railed_fraction > 0) & ~electrode_off
        mains = self._mains_dominated(scaled, filtered, measured, coverage, shape) & ~electrode_off
        blocking = (
            electrode_off | mains | (railed_fraction >= self.config.clipping_blocking_fraction)
        )
        return TickQuality(electrode_off, clipping, mains, gap, blocking, gap_fraction)

    def _railed_fraction(self, scaled: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        if self.rails_uv is None:
            return np.zeros(shape)
        low, high = self.rails_uv
        tolerance = 1e-9 * max(abs(low), abs(high), 1.0)
        if scaled.min() > low + tolerance and scaled.max() < high - tolerance:
            return np.zeros(shape)
        at_rail = (scaled <= low + tolerance) | (scaled >= high - tolerance)
        return at_rail.mean(axis=1)

    def _mains_dominated(
        self,
        scaled: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        coverage: np.ndarray | None,
        shape: tuple[int, int],
    ) -> np.ndarray:
        if not self.check_mains:
            return np.zeros(shape, dtype=bool)
        # Hann-windowed demodulation at the mains frequency, with the window's DC removed.
        projections = np.matmul(self._projectors, scaled)  # (ticks, 3, channels)
        mean = projections[:, 2] / self._window_sum
        cos_part = projections[:, 0] - mean * self._phasor_sums[0]
        sin_part = projections[:, 1] - mean * self._phasor_sums[1]
        amplitude = np.hypot(cos_part, sin_part) / self._window_gain
        if coverage is not None:
            # Hum is judged only where most of the window was measured.
            with np.errstate(invalid="ignore", divide="ignore"):
                amplitude = np.where(coverage >= 0.5, amplitude / coverage, 0.0)
        mains_power = amplitude**2 / 2.0
        band_energy = np.einsum("tnc,tnc->tc", filtered, filtered)
        if measured is None:
            band_power = band_energy / filtered.shape[1]
        else:  # the mean over the measured samples (the others are 0)
            band_power = band_energy / np.maximum(measured.sum(axis=1), 1)
        total = mains_power + band_power
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, mains_power / total, 0.0)
        return share >= self.config.mains_fraction
