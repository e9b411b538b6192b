"""Per-channel signal quality, assessed once per tick: electrode off, clipping, mains, gaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.config import PipelineConfig

ELECTRODE_OFF = "electrode_off"
CLIPPING = "clipping"
MAINS = "mains"
GAP = "gap"

MIN_JUDGED_FRACTION = 0.1
"""A tick with less of its samples measured cannot be judged for hum or a loose electrode (a
tenth of a second holds five mains cycles)."""


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
        u = (np.arange(tick_samples) - tick_samples / 2) / tick_samples
        self._hann = window
        self._fit_basis = np.stack([np.cos(phase), np.sin(phase), np.ones(tick_samples), u, u * u])
        self.min_judged = MIN_JUDGED_FRACTION

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
        railed_fraction = self._railed_fraction(scaled, finite, shape)  # NaN is never at a rail
        if finite.all():
            gap_fraction = np.zeros(shape)
            mains = self._mains_dominated(self._hum_amplitude(scaled), filtered, measured, shape)
        else:
            gap_fraction = 1.0 - finite.mean(axis=1)
            mains = self._hum_share_of_measured(scaled, finite) >= self.config.mains_fraction
        gap = gap_fraction > 0
        # Reduced over a copy with the hops last: numpy reduces a contiguous last axis many times
        # faster than the middle one (the values are the same).
        hops_last = np.ascontiguousarray(env.transpose(0, 2, 1))
        env_max, env_min = np.fmax.reduce(hops_last, axis=-1), np.fmin.reduce(hops_last, axis=-1)
        with np.errstate(invalid="ignore"):
            if self.raw_mode:
                flat = env_max <= self.config.flat_uv
            else:
                flat = env_max - env_min <= self.config.flat_uv
        electrode_off = (flat | (railed_fraction >= self.config.railed_fraction)) & (
            gap_fraction < 1
        )
        clipping = (railed_fraction > 0) & ~electrode_off
        mains &= ~electrode_off
        blocking = (
            electrode_off | mains | (railed_fraction >= self.config.clipping_blocking_fraction)
        )
        return TickQuality(electrode_off, clipping, mains, gap, blocking, gap_fraction)

    def _railed_fraction(
        self, scaled: np.ndarray, finite: np.ndarray, shape: tuple[int, int]
    ) -> np.ndarray:
        """The share of the measured samples that sit at a rail."""
        if self.rails_uv is None:
            return np.zeros(shape)
        low, high = self.rails_uv
        tolerance = 1e-9 * max(abs(low), abs(high), 1.0)
        if not (np.fmin.reduce(scaled, axis=None) <= low + tolerance) and not (
            np.fmax.reduce(scaled, axis=None) >= high - tolerance
        ):
            return np.zeros(shape)
        with np.errstate(invalid="ignore"):
            at_rail = (scaled <= low + tolerance) | (scaled >= high - tolerance)
        return at_rail.sum(axis=1) / np.maximum(finite.sum(axis=1), 1)

    def _hum_amplitude(self, scaled: np.ndarray) -> np.ndarray:
        """Amplitude of the mains frequency per tick: Hann-windowed demodulation, the window's DC
        removed. Shape (ticks, channels)."""
        if not self.check_mains:
            return np.zeros((scaled.shape[0], scaled.shape[2]))
        projections = np.matmul(self._projectors, scaled)  # (ticks, 3, channels)
        mean = projections[:, 2] / self._window_sum
        cos_part = projections[:, 0] - mean * self._phasor_sums[0]
        sin_part = projections[:, 1] - mean * self._phasor_sums[1]
        return np.hypot(cos_part, sin_part) / self._window_gain

    def _hum_share_of_measured(self, scaled: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """The hum's share of the power of the measured samples only, whatever is missing.

        A weighted least-squares fit (Hann weights on the measured samples) of a sine at the mains
        frequency plus a quadratic (baseline wander, which would leak into the sine over an
        irregular set of samples); the share is the sine's power against the sine's plus what the
        fit leaves (muscle, harmonics), both from the same samples. Ticks with too little measured
        (or no hum check) give 0.
        """
        n_ticks, _, n_ch = scaled.shape
        share = np.zeros((n_ticks, n_ch))
        judged = finite.mean(axis=1) >= self.min_judged
        if not self.check_mains or not judged.any():
            return share
        basis = self._fit_basis  # (5, samples): cos, sin, 1, u, u^2
        size = len(basis)
        weights = np.where(finite, 1.0, 0.0)
        x = np.where(finite, scaled, 0.0)
        pairs = [(i, j) for i in range(size) for j in range(i, size)]
        products = np.stack([self._hann * basis[i] * basis[j] for i, j in pairs])
        g = np.einsum("kn,tnc->tck", products, weights)[judged]
        r = np.einsum("kn,tnc->tck", self._hann * basis, x)[judged]
        energy = np.einsum("n,tnc->tc", self._hann, x * x)[judged]
        gram = np.empty((len(g), size, size))
        for k, (i, j) in enumerate(pairs):
            gram[:, i, j] = gram[:, j, i] = g[:, k]
        scale = np.trace(gram, axis1=-2, axis2=-1)[:, None, None]
        c = np.linalg.solve(gram + 1e-12 * scale * np.eye(size), r[..., None])[..., 0]
        total_weight = gram[:, 2, 2]  # the sum of the weights (basis 1 x 1)
        residual = np.maximum(energy - np.einsum("jk,jk->j", c, r), 0.0) / total_weight
        hum_power = (c[:, 0] ** 2 + c[:, 1] ** 2) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            share[judged] = np.where(hum_power > 0, hum_power / (hum_power + residual), 0.0)
        return share

    def _mains_dominated(
        self,
        hum: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        shape: tuple[int, int],
    ) -> np.ndarray:
        """Complete ticks: the hum's power against the band-passed signal's."""
        if not self.check_mains:
            return np.zeros(shape, dtype=bool)
        mains_power = hum**2 / 2.0
        band_energy = np.einsum("tnc,tnc->tc", filtered, filtered)
        if measured is None:
            band_power = band_energy / filtered.shape[1]
        else:  # the mean over the measured samples (the others are 0)
            band_power = band_energy / np.maximum(measured.sum(axis=1), 1)
        total = mains_power + band_power
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, mains_power / total, 0.0)
        return share >= self.config.mains_fraction
