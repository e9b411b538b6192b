"""Small hand-made test signals (the realistic ones come from hardware.synthetic_emg)."""

from __future__ import annotations

import numpy as np
from scipy import signal


def emg_like(n: int, fs: float, seed: int, channels: int = 1) -> np.ndarray:
    """Unit-RMS band-limited noise, roughly the spectrum of surface EMG."""
    rng = np.random.default_rng(seed)
    sos = signal.butter(4, [20, min(450, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal((n + 2000, channels)), axis=0)[2000:]
    return noise / noise.std(axis=0)


def with_bursts(
    fs: float,
    duration_s: float,
    bursts: list[tuple[float, float, float]],
    *,
    floor_uv: float = 3.0,
    seed: int = 0,
    channels: int = 1,
    dc_uv: float = 0.0,
    mains_uv: float = 0.0,
) -> np.ndarray:
    """EMG-like noise at `floor_uv` RMS with bursts (start_s, end_s, rms_uv) on every channel."""
    n = round(duration_s * fs)
    amplitude = np.full(n, floor_uv)
    for start, end, rms in bursts:
        amplitude[round(start * fs) : round(end * fs)] = rms
    t = np.arange(n) / fs
    x = emg_like(n, fs, seed, channels) * amplitude[:, None]
    return x + dc_uv + mains_uv * np.sin(2 * np.pi * 50 * t)[:, None]


def walking(
    fs: float,
    duration_s: float,
    start_s: float,
    end_s: float,
    *,
    seed: int = 0,
    floor_uv: float = 3.0,
    burst_uv: float = 100.0,
    relaxed_uv: float = 9.0,
    stride_s: float = 1.1,
    duty: float = 0.4,
) -> np.ndarray:
    """One channel: rest, then rhythmic calf bursts every stride, then rest."""
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    amplitude = np.full(n, floor_uv)
    inside = (t >= start_s) & (t < end_s)
    in_burst = ((t - start_s) % stride_s) < duty * stride_s
    amplitude[inside & in_burst] = burst_uv
    amplitude[inside & ~in_burst] = relaxed_uv
    return emg_like(n, fs, seed) * amplitude[:, None]


def quiet_standing(
    fs: float,
    duration_s: float,
    start_s: float,
    end_s: float,
    *,
    seed: int = 0,
    floor_uv: float = 3.0,
    low: float = 2.0,
    high: float = 4.0,
) -> np.ndarray:
    """One calf channel: rest, then quiet standing, then rest.

    Standing holds the calf (soleus, gastrocnemius) in low-level tonic activity that follows the
    body's postural sway: the centre of pressure drifts forwards and back over seconds (most of
    its power below 0.5 Hz), and the plantar flexors are more active the further forward it is.
    The envelope here is `low` to `high` times the resting floor, following a sway made of slow
    random drift under 0.5 Hz; rest before and after.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    drift = signal.sosfiltfilt(
        signal.butter(2, 0.5, fs=fs, output="sos"), rng.standard_normal(n + round(20 * fs))
    )[round(10 * fs) : round(10 * fs) + n]
    sway = (drift - drift.min()) / (drift.max() - drift.min())  # 0 (back) .. 1 (forward)
    amplitude = np.full(n, floor_uv)
    standing = (t >= start_s) & (t < end_s)
    amplitude[standing] = floor_uv * (low + (high - low) * sway[standing])
    return emg_like(n, fs, seed + 1) * amplitude[:, None]
