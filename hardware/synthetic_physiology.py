"""Physiological components for the synthetic EMG nights: ECG leaking onto a calf channel,
fasciculations (isolated motor-unit twitches) and quiet standing, each with its ground truth.

These are modelled from physiology, not from the detector's rules; :mod:`hardware.synthetic_emg`
renders them into a night (scenario kinds ``ecg``, ``fasciculations`` and ``standing``, or
:func:`hardware.synthetic_emg.with_events` on any plan) and exposes the truth through
:meth:`NightPlan.heartbeats` and :meth:`NightPlan.twitches`.

**ECG.** The heart's far field reaches leg electrodes as a small PQRST complex. Each beat is a sum
of five Gaussians (P, Q, R, S, T; McSharry et al. 2003 morphology) in uV at the electrodes, the QT
part stretched with the square root of the RR interval (Bazett). R is the dominant wave, 8-12 ms wide
(a QRS of about 80-100 ms); P and T are slow and mostly fall below the EMG band, so what survives the
20-450 Hz band-pass is a bi-/triphasic QRS spike of some 50-60 ms, as on real leg EMG. RR intervals:
the mean heart rate with slow drift (tens of minutes), respiratory sinus arrhythmia at the breathing
rate (0.2-0.33 Hz), Mayer waves near 0.1 Hz and a beat-to-beat random part, kept within 40-180 bpm.
Amplitude: ``r_uv``, the R peak at the electrodes; :func:`ecg_r_uv_for_envelope` gives the R amplitude
that lifts a 250 ms RMS envelope to a wanted peak over a given floor (e.g. 3.5 x 4.5 uV).

**Fasciculations.** Spontaneous discharges of single motor units: surface motor-unit action potentials
(MUAPs) of 15-40 ms, biphasic or triphasic (first and second Hermite-Rodriguez functions, the usual
surface-MUAP model, Lo Conte et al. 1994), from a few units that fire irregularly, 0.5-2 s apart
(cramp-fasciculation syndrome). Each unit keeps its shape, duration and polarity; amplitudes vary by
about 10 % from twitch to twitch. Truth: every twitch (:class:`Twitch`).

**Quiet standing.** Tonic calf (soleus) activity at 2-4 x the rest floor, modulated by postural sway
(a few slow components, 0.05-0.8 Hz, +-25-50 %) and by weight shifting between the legs (anti-phase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

__all__ = [
    "ECG_SUPPORT_S",
    "HR_MAX_BPM",
    "HR_MIN_BPM",
    "EcgParams",
    "FasciculationParams",
    "Twitch",
    "ecg_beat",
    "ecg_r_uv_for_envelope",
    "heartbeat_times",
    "muap",
    "twitch_train",
]

HR_MIN_BPM = 40.0
HR_MAX_BPM = 180.0
ECG_SUPPORT_S = (-0.35, 0.75)
"""A beat's waveform lies within these times around its R peak (at RR up to 1.5 s)."""

# P, Q, R, S, T: amplitude relative to R, centre (s from R; T scaled by sqrt(RR)), width (s)
_WAVES = (
    (0.12, -0.17, 0.025),
    (-0.12, -0.028, 0.008),
    (1.0, 0.0, 0.010),
    (-0.25, 0.028, 0.009),
    (0.30, 0.28, 0.045),
)
_MUAP_HALF_SPAN = 3.0  # a MUAP lies within |t - centre| <= 3 lambda: duration = 6 lambda


@dataclass(frozen=True)
class EcgParams:
    """One ECG segment's heart and waveform (drawn from the segment's seed, or given)."""

    hr_bpm: float
    r_uv: float
    qrs_width: float = 1.0
    """Scales the Q, R and S widths (1: R sigma 10 ms)."""
    rs_ratio: float = 0.25
    """S depth relative to R (the lead's view of the heart)."""
    resp_hz: float = 0.25
    rsa_depth: float = 0.04
    """Respiratory sinus arrhythmia: RR modulation at resp_hz, relative."""
    mayer_depth: float = 0.03
    drift_depth: float = 0.06
    """Slow heart-rate drift over tens of minutes, relative."""
    jitter: float = 0.015
    """Beat-to-beat random part of RR (AR(1), relative standard deviation)."""


@dataclass(frozen=True)
class FasciculationParams:
    """One fasciculation segment: its motor units and firing."""

    min_interval_s: float = 0.5
    max_interval_s: float = 2.0
    n_units: int = 3
    peak_uv: tuple[float, float] = (30.0, 150.0)
    duration_s: tuple[float, float] = (0.015, 0.040)


@dataclass(frozen=True, slots=True)
class Twitch:
    """One fasciculation: a single motor-unit potential centred at ``time_s``."""

    time_s: float
    duration_s: float
    """Its support (6 lambda of the Hermite-Rodriguez shape), from start_s to end_s."""
    peak_uv: float
    """The waveform is peak_uv x a unit-peak MUAP shape (negative: the unit is seen inverted)."""
    unit: int
    phases: int
    """2: biphasic, 3: triphasic."""
    channel: int = 0

    @property
    def start_s(self) -> float:
        return self.time_s - self.duration_s / 2

    @property
    def end_s(self) -> float:
        return self.time_s + self.duration_s / 2


# --------------------------------------------------------------------------------------------------
# ECG


def heartbeat_times(
    params: EcgParams, start_s: float, end_s: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """R-peak times in [start_s, end_s) and each beat's RR interval (s), deterministic in seed."""
    rng = np.random.default_rng(seed)
    mayer_hz = float(rng.uniform(0.08, 0.12))
    drift_hz = tuple(float(1.0 / rng.uniform(600.0, 3600.0)) for _ in range(2))
    phases = rng.uniform(0, 2 * np.pi, 4)
    rr0 = 60.0 / params.hr_bpm
    n_max = math.ceil((end_s - start_s) / (60.0 / HR_MAX_BPM)) + 2
    noise = rng.standard_normal(n_max)
    # AR(1) beat-to-beat variability with unit variance: correlation 0.6 from beat to beat
    ar = np.empty(n_max)
    ar[0] = noise[0]
    for i in range(1, n_max):
        ar[i] = 0.6 * ar[i - 1] + 0.8 * noise[i]
    times = np.empty(n_max)
    rrs = np.empty(n_max)
    t = start_s + float(rng.uniform(0.0, rr0))
    n = 0
    while t < end_s and n < n_max:
        drift = 0.5 * sum(
            math.sin(2 * math.pi * f * t + p) for f, p in zip(drift_hz, phases[2:], strict=True)
        )
        rr = rr0 * (
            1.0
            + params.drift_depth * drift
            + params.rsa_depth * math.sin(2 * math.pi * params.resp_hz * t + phases[0])
            + params.mayer_depth * math.sin(2 * math.pi * mayer_hz * t + phases[1])
            + params.jitter * ar[n]
        )
        rr = min(max(rr, 60.0 / HR_MAX_BPM), 60.0 / HR_MIN_BPM)
        times[n], rrs[n] = t, rr
        t += rr
        n += 1
    return times[:n], rrs[:n]


def ecg_beat(t_rel: np.ndarray, rr_s: float, params: EcgParams) -> np.ndarray:
    """One beat at the electrodes (uV), at times relative to its R peak."""
    out = np.zeros_like(t_rel)
    qt = math.sqrt(rr_s)
    for i, (amp, centre, width) in enumerate(_WAVES):
        if i in (1, 2, 3):
            width *= params.qrs_width
        if i == 3:
            amp = -params.rs_ratio
        if i == 4:
            centre, width = centre * qt, width * qt
        out += amp * np.exp(-0.5 * ((t_rel - centre) / width) ** 2)
    return params.r_uv * out


@lru_cache(maxsize=64)
def _in_band_energy_per_r2(fs: float, qrs_width: float, rs_ratio: float) -> float:
    """Largest 250 ms mean square of one beat (R = 1 uV) through the default EMG band-pass."""
    params = EcgParams(hr_bpm=60.0, r_uv=1.0, qrs_width=qrs_width, rs_ratio=rs_ratio)
    t = np.arange(round(-1.0 * fs), round(1.5 * fs)) / fs
    high = min(450.0, 0.45 * fs)
    sos = signal.butter(4, [20.0, high], btype="bandpass", fs=fs, output="sos")
    y = signal.sosfilt(sos, ecg_beat(t, 1.0, params))
    n = round(0.25 * fs)
    power = np.convolve(y * y, np.ones(n) / n, mode="valid")
    return float(power.max())


def ecg_r_uv_for_envelope(
    envelope_peak_uv: float,
    floor_uv: float,
    fs: float,
    *,
    qrs_width: float = 1.0,
    rs_ratio: float = 0.25,
) -> float:
    """The R amplitude (uV) at which each QRS lifts a 250 ms RMS envelope over a rest floor of
    ``floor_uv`` to ``envelope_peak_uv`` (in the 20-450 Hz EMG band), e.g. 3.5 x 4.5 uV."""
    if not envelope_peak_uv > floor_uv > 0:
        raise ValueError("envelope_peak_uv must be above floor_uv, and floor_uv above 0")
    energy = _in_band_energy_per_r2(float(fs), qrs_width, rs_ratio)
    return math.sqrt((envelope_peak_uv**2 - floor_uv**2) / energy)


# --------------------------------------------------------------------------------------------------
# Fasciculations


def muap(t_rel: np.ndarray, duration_s: float, phases: int) -> np.ndarray:
    """A unit-peak surface MUAP (Hermite-Rodriguez order 1: biphasic, 2: triphasic) of the given
    support, centred at 0."""
    lam = duration_s / (2 * _MUAP_HALF_SPAN)
    x = t_rel / lam
    inside = np.abs(x) <= _MUAP_HALF_SPAN
    gauss = np.exp(-(x * x))
    if phases == 2:
        shape = x * gauss / (math.sqrt(0.5) * math.exp(-0.5))
    else:
        shape = (1.0 - 2.0 * x * x) * gauss
    return np.where(inside, shape, 0.0)


def twitch_train(
    params: FasciculationParams, start_s: float, end_s: float, seed: int, channel: int = 0
) -> tuple[Twitch, ...]:
    """Every twitch of a fasciculation stretch, deterministic in seed."""
    rng = np.random.default_rng(seed)
    lo, hi = params.peak_uv
    units = [
        (
            float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
            float(rng.uniform(*params.duration_s)),
            int(rng.integers(2, 4)),
            1.0 if rng.random() < 0.5 else -1.0,
        )
        for _ in range(params.n_units)
    ]
    twitches = []
    log_lo, log_hi = math.log(params.min_interval_s), math.log(params.max_interval_s)
    t = start_s + float(rng.uniform(0.0, params.max_interval_s))
    while True:
        unit = int(rng.integers(0, params.n_units))
        amp, dur, phases, sign = units[unit]
        if t + dur / 2 > end_s:
            break
        if t - dur / 2 >= start_s:
            peak = amp * float(np.clip(1.0 + 0.1 * rng.standard_normal(), 0.7, 1.3))
            twitches.append(Twitch(t, dur, sign * peak, unit, phases, channel))
        t += math.exp(rng.uniform(log_lo, log_hi))
    return tuple(twitches)
