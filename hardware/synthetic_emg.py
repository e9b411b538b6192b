"""Seeded synthetic calf surface EMG with ground truth, for tests, demos, benchmarks and simulated ADCs.

A night is made in two steps:

1. :func:`plan_night` (a random, realistic night) or :func:`scenario` (an explicit list of events) draws
   a :class:`NightPlan`: every event, its timing, intensity and shape parameters, and the per-channel
   background (rest floor, spectrum, mains, baseline wander). Its ``annotations`` are the ground truth,
   known before any sample exists.
2. :class:`SyntheticEMG` renders the plan into microvolts at the electrodes, shape ``(n, n_channels)``,
   float64. The noise seed is separate from the plan seed, so one plan can be rendered with many noise
   realisations.

Signal model, per channel (all levels in uV)::

    x(t) = shaped_noise(t) * (floor_emg(t) + activity(t))   # sEMG, band-limited, Shwedyk-type spectrum
         + amplifier white noise + mains (f0, 3 f0, 5 f0) + baseline wander + DC offset
         + motion artifacts (< 0.3 s low-frequency spikes/steps)
    then electrode-off stretches replace the signal, everything is clipped to the rails, gaps become NaN.

Levels are defined as the RMS seen through the pipeline's default band-pass (4th-order Butterworth,
20 Hz to min(450 Hz, 0.45 fs)), mains and wander excluded. The rest floor ``floor(t)`` is that RMS at
rest (sEMG plus amplifier noise); an event adds its activity level on top of it, so the target in-band
RMS during an event is ``floor(t) + activity(t)`` (see :meth:`NightPlan.envelope_uv`). Event intensities
in this module ("cramp plateau 25-200 uV", "PLM 8-40 uV") are therefore levels *above the floor*, in the
sense of the AASM "+8 uV over resting EMG" criterion.

Event timing conventions (annotation = segment):

- ``cramp``: ``start_s`` is the start of the fast rise (the end of the prodrome), ``end_s`` is the end of
  the decay, when the activity is back to zero. Rise and decay times are in the segment parameters
  (``rise_s``, ``decay_s``), so the half-way points can be computed if wanted.
- ``prodrome``: from the start of the slow rise to the cramp's ``start_s``.
- ``movement`` / ``walking``: the burst (or the walk) is entirely inside the annotation; the activity is
  zero at both ends.
- ``electrode_off`` / ``clipping`` / ``gap``: sample ``i`` (at ``t = i / fs``) is affected iff
  ``start_s <= t < end_s``. Gaps are NaN on all channels (annotation channel None) unless a scenario
  names a channel.

Determinism: samples are made in fixed internal chunks (:data:`CHUNK_S`), chunk ``k`` from its own RNG
seeded by ``(seed, k)``. The noise filters are warmed up on the tail of chunk ``k - 1``'s white noise
(:data:`WARMUP_S`, far longer than the filters' memory), so the noise is continuous across chunks to
float precision and any chunk can be made without the ones before it. Every output, whatever block size
it is streamed with, is a slice of the same chunks, so it is bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from scipy import signal

from dsp.annotations import Annotation
from hardware.synthetic_physiology import (
    ECG_SUPPORT_S,
    EcgParams,
    FasciculationParams,
    Twitch,
    ecg_beat,
    heartbeat_times,
    muap,
    twitch_train,
)

__all__ = [
    "CHUNK_S",
    "WARMUP_S",
    "ChannelParams",
    "MotionArtifact",
    "NightPlan",
    "Segment",
    "SyntheticEMG",
    "default_channel_names",
    "plan_night",
    "scenario",
    "with_events",
]

CHUNK_S = 10.0
"""Internal generation chunk, seconds (rounded to a whole number of control steps)."""
WARMUP_S = 0.5
"""White noise of the previous chunk that the noise filters run over before each chunk."""
QUIET_START_S = 60.0
"""plan_night keeps the first minute quiet rest, so detectors can learn a floor."""
MIN_GAP_S = 30.0
"""plan_night keeps at least this much quiet between events."""
END_MARGIN_S = 5.0
"""plan_night ends every event at least this long before the end of the recording."""
CONTROL_RATE_HZ = 200.0
"""Envelopes and slow components are computed on a grid near this rate and interpolated linearly."""
MIN_FS = 100.0

_MAINS_HARMONICS = (1, 3, 5)
_MAINS_BLOCK = 128
_BAND_LOW_HZ = 20.0
_BAND_HIGH_HZ = 450.0

_KIND_OF_STYLE = {
    "turnover": "movement",
    "plm": "movement",
    "walking": "walking",
    "prodrome": "prodrome",
    "cramp": "cramp",
    "flat": "electrode_off",
    "railed": "electrode_off",
    "hum": "electrode_off",
    "clipping": "clipping",
    "gap": "gap",
    "ecg": "ecg",
    "fasciculation": "fasciculation",
    "standing": "standing",
}
_ACTIVITY_STYLES = frozenset(
    {"turnover", "plm", "walking", "prodrome", "cramp", "clipping", "standing"}
)
_ADDITIVE_STYLES = frozenset({"ecg", "fasciculation"})
PHYSIOLOGY_KINDS = ("ecg", "fasciculations", "standing")
"""Event kinds of :func:`scenario` and :func:`with_events` built in hardware.synthetic_physiology."""
_ELECTRODE_OFF_STYLES = frozenset({"flat", "railed", "hum"})


# --------------------------------------------------------------------------------------------------
# Plan data


@dataclass(frozen=True)
class ChannelParams:
    """Background of one channel for one night (all amplitudes in uV)."""

    name: str
    floor_uv: float
    """Nominal rest floor: in-band RMS at rest."""
    floor_depth: float
    """Slow floor variation: floor(t) = floor_uv * (1 + floor_depth * s(t)), |s| <= 1."""
    floor_freqs_hz: tuple[float, ...]
    floor_phases: tuple[float, ...]
    spectrum_fl_hz: float
    """Shwedyk-type sEMG spectrum f^2 / ((f^2 + fl^2)(f^2 + fh^2)^2): lower and upper corners."""
    spectrum_fh_hz: float
    mains_uv: tuple[float, float, float]
    """Peak amplitudes of the mains fundamental, 3rd and 5th harmonics."""
    mains_phases: tuple[float, float, float]
    wander_uv: float
    """Bound on the baseline wander (a sum of slow sinusoids, |wander| <= wander_uv)."""
    wander_freqs_hz: tuple[float, ...]
    wander_phases: tuple[float, ...]
    wander_weights: tuple[float, ...]
    dc_offset_uv: float


@dataclass(frozen=True)
class Segment:
    """One event on one channel (or on all, ``channel`` None) with its rendering parameters."""

    style: str
    """turnover, plm, walking, prodrome, cramp, flat, railed, hum, clipping or gap."""
    channel: int | None
    start_s: float
    end_s: float
    level_uv: float = 0.0
    """Main activity level above the floor (plateau, burst peak), or the value/hum amplitude."""
    params: tuple[tuple[str, float], ...] = ()
    seed: int = 0
    """Seeds the segment's own fine random detail (modulation, stride-to-stride variation)."""
    event: int = 0
    """Index of the top-level event this belongs to (both legs of a turnover, a whole PLM series,
    a prodrome and its cramp share one); events are numbered in time order (plan_night) or in the
    order given (scenario)."""

    @property
    def kind(self) -> str:
        """The annotation kind of this segment."""
        return _KIND_OF_STYLE[self.style]

    def param(self, name: str, default: float = 0.0) -> float:
        """A named shape parameter."""
        for key, value in self.params:
            if key == name:
                return value
        return default


@dataclass(frozen=True)
class MotionArtifact:
    """A short low-frequency spike or step (< 0.3 s) added to one channel; not annotated."""

    channel: int
    start_s: float
    duration_s: float
    amplitude_uv: float
    shape: str  # "spike" (biphasic) or "step" (fast edge, slower return)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class NightPlan:
    """The ground truth and all parameters of a synthetic night, known before any sample is made."""

    fs: float
    duration_s: float
    channels: tuple[str, ...]
    annotations: tuple[Annotation, ...]
    segments: tuple[Segment, ...] = ()
    artifacts: tuple[MotionArtifact, ...] = ()
    channel_params: tuple[ChannelParams, ...] = ()
    mains_hz: float = 50.0
    rails_uv: tuple[float, float] | None = (-5000.0, 5000.0)
    amp_noise_uv: float = 0.5
    """RMS of the white amplifier noise over the whole band 0..fs/2 (part of the floor)."""

    @property
    def n_samples(self) -> int:
        """Number of samples: round(duration_s * fs)."""
        return round(self.duration_s * self.fs)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def channel_index(self, channel: int | str) -> int:
        """Index of a channel given by index or name."""
        if isinstance(channel, str):
            return self.channels.index(channel)
        return int(channel)

    def segments_of(self, style: str) -> tuple[Segment, ...]:
        """Segments of one style (e.g. "plm", "turnover", "cramp", "railed"), in time order."""
        return tuple(s for s in self.segments if s.style == style)

    def heartbeats(self, channel: int | str) -> np.ndarray:
        """Ground truth of the ECG on a channel: the R-peak times (s) of every beat, sorted."""
        c = self.channel_index(channel)
        beats = [_ecg_truth(s)[0] for s in self.segments if s.style == "ecg" and s.channel == c]
        return np.sort(np.concatenate(beats)) if beats else np.empty(0)

    def twitches(self, channel: int | str | None = None) -> tuple[Twitch, ...]:
        """Ground truth of the fasciculations: every twitch (on one channel, or all), by time."""
        c = None if channel is None else self.channel_index(channel)
        out = [
            twitch
            for seg in self.segments
            if seg.style == "fasciculation" and (c is None or seg.channel == c)
            for twitch in _twitch_truth(seg)
        ]
        return tuple(sorted(out, key=lambda tw: (tw.time_s, tw.channel)))

    def floor_uv_at(self, t: np.ndarray | float) -> np.ndarray:
        """Rest floor (in-band RMS, uV) at times ``t`` (s): shape (len(t), n_channels)."""
        tt = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return np.stack([_floor(cp, tt) for cp in self.channel_params], axis=1)

    def envelope_uv(self, t: np.ndarray | float) -> np.ndarray:
        """Target in-band RMS (floor + activity, uV) at times ``t`` (s): shape (len(t), n_channels).

        This is the true envelope the noise is modulated with; mains, wander, artifacts and the
        quality stretches (electrode off, clipping, gaps) are not in it.
        """
        tt = np.atleast_1d(np.asarray(t, dtype=np.float64))
        out = np.empty((tt.size, self.n_channels))
        for c, cp in enumerate(self.channel_params):
            floor = _floor(cp, tt)
            out[:, c] = floor + _activity(self.segments, c, tt, floor)
        return out


def default_channel_names(n: int) -> tuple[str, ...]:
    """``("ch0", "ch1", ...)``."""
    return tuple(f"ch{i}" for i in range(n))


# --------------------------------------------------------------------------------------------------
# Small signal helpers (vectorised over time)


def _slow_sum(
    t: np.ndarray, freqs: Sequence[float], phases: Sequence[float], weights: Sequence[float]
) -> np.ndarray:
    """Normalised sum of sinusoids, bounded by 1 in magnitude."""
    out = np.zeros_like(t)
    total = float(sum(weights)) or 1.0
    for f, p, w in zip(freqs, phases, weights, strict=True):
        out += w * np.sin(2.0 * np.pi * f * t + p)
    return out / total


class _GridSines:
    """``_slow_sum`` on a uniform grid t_j = j * dt, by angle addition (a small matrix product)."""

    def __init__(
        self,
        freqs: Sequence[float],
        phases: Sequence[float],
        weights: Sequence[float],
        dt: float,
        block: int = 64,
    ) -> None:
        self._w = 2.0 * np.pi * np.asarray(freqs, dtype=np.float64)
        self._ph = np.asarray(phases, dtype=np.float64)
        wt = np.asarray(weights, dtype=np.float64) / (float(sum(weights)) or 1.0)
        r = np.arange(block) * dt
        self._right = np.vstack(
            [wt[:, None] * np.cos(np.outer(self._w, r)), wt[:, None] * np.sin(np.outer(self._w, r))]
        )
        self._dt = dt
        self._block = block

    def __call__(self, j0: int, n: int) -> np.ndarray:
        if self._w.size == 0:
            return np.zeros(n)
        nq = -(-n // self._block)
        tq = (j0 + self._block * np.arange(nq, dtype=np.float64)) * self._dt
        ang = np.outer(tq, self._w) + self._ph
        left = np.hstack([np.sin(ang), np.cos(ang)])
        return (left @ self._right).reshape(-1)[:n]


def _edge(x: np.ndarray) -> np.ndarray:
    """Raised-cosine step: 0 for x <= 0, 1 for x >= 1."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _floor(cp: ChannelParams, t: np.ndarray) -> np.ndarray:
    s = _slow_sum(t, cp.floor_freqs_hz, cp.floor_phases, (1.0,) * len(cp.floor_freqs_hz))
    return cp.floor_uv * (1.0 + cp.floor_depth * s)


@dataclass(frozen=True)
class _Detail:
    """Fine random detail of one segment, derived from its seed."""

    mod_freqs: tuple[float, ...] = ()
    mod_phases: tuple[float, ...] = ()
    mod_weights: tuple[float, ...] = ()
    stride_gain: np.ndarray = field(default_factory=lambda: np.ones(1))
    jitter_freqs: tuple[float, ...] = ()
    jitter_phases: tuple[float, ...] = ()


@lru_cache(maxsize=4096)
def _detail(seg: Segment) -> _Detail:
    rng = np.random.default_rng(seg.seed)
    if seg.style == "cramp":
        # slow random intensity modulation, 0.05-0.5 Hz
        n = 4
        freqs = tuple(np.exp(rng.uniform(np.log(0.05), np.log(0.5), n)))
        return _Detail(freqs, tuple(rng.uniform(0, 2 * np.pi, n)), tuple(rng.uniform(0.4, 1.0, n)))
    if seg.style in ("turnover", "plm", "clipping"):
        # irregular within-burst fluctuation, 0.5-3 Hz
        n = 3
        freqs = tuple(rng.uniform(0.5, 3.0, n))
        return _Detail(freqs, tuple(rng.uniform(0, 2 * np.pi, n)), tuple(rng.uniform(0.4, 1.0, n)))
    if seg.style == "standing":
        # postural sway: a few slow components, weighted towards the slowest; weight shifting
        # between the legs every 10-50 s
        n = 4
        freqs = tuple(np.exp(rng.uniform(np.log(0.05), np.log(0.8), n)))
        weights = tuple(float(np.sqrt(0.05 / f)) for f in freqs)
        shift = tuple(rng.uniform(0.02, 0.1, 2))
        return _Detail(
            freqs,
            tuple(rng.uniform(0, 2 * np.pi, n)),
            weights,
            jitter_freqs=shift,
            jitter_phases=tuple(rng.uniform(0, 2 * np.pi, 2)),
        )
    if seg.style == "walking":
        period = seg.param("period_s", 1.1)
        n_strides = int((seg.end_s - seg.start_s) / period) + 8
        gains = np.clip(1.0 + 0.12 * rng.standard_normal(n_strides), 0.7, 1.3)
        jf = tuple(rng.uniform(0.01, 0.05, 3))
        jp = tuple(rng.uniform(0, 2 * np.pi, 3))
        return _Detail(stride_gain=gains, jitter_freqs=jf, jitter_phases=jp)
    return _Detail()


def _segment_activity(seg: Segment, t: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Activity (uV above the floor) of one segment at times t, all inside [start, end]."""
    d = _detail(seg)
    s, e = seg.start_s, seg.end_s
    if seg.style in ("turnover", "plm", "clipping"):
        rise = seg.param("rise_s", 0.2)
        fall = seg.param("fall_s", 0.3)
        shape = _edge((t - s) / rise) * _edge((e - t) / fall)
        mod = 1.0 + seg.param("mod_depth", 0.2) * _slow_sum(
            t, d.mod_freqs, d.mod_phases, d.mod_weights
        )
        return seg.level_uv * shape * mod
    if seg.style == "standing":
        sway = _slow_sum(t, d.mod_freqs, d.mod_phases, d.mod_weights)
        shift = _slow_sum(t, d.jitter_freqs, d.jitter_phases, (1.0, 1.0))
        mod = 1.0 + seg.param("depth", 0.35) * (0.7 * sway + 0.3 * seg.param("side", 1.0) * shift)
        ramp_s = seg.param("ramp_s", 2.0)
        ramp = _edge((t - s) / ramp_s) * _edge((e - t) / ramp_s)
        return ramp * np.maximum(seg.param("ratio", 3.0) * mod - 1.0, 0.0) * floor
    if seg.style == "prodrome":
        x = np.clip((t - s) / max(e - s, 1e-9), 0.0, 1.0)
        return seg.param("gain", 0.5) * floor * x**1.5
    if seg.style == "cramp":
        rise = seg.param("rise_s", 1.0)
        decay = seg.param("decay_s", 2.0)
        plateau = seg.level_uv * (
            1.0
            + seg.param("mod_depth", 0.2) * _slow_sum(t, d.mod_freqs, d.mod_phases, d.mod_weights)
        )
        rho = _edge((t - s) / rise)
        start_level = seg.param("start_gain", 0.0) * floor
        return (start_level * (1.0 - rho) + plateau * rho) * _edge((e - t) / decay)
    if seg.style == "walking":
        period = seg.param("period_s", 1.1)
        duty = seg.param("duty", 0.4)
        jitter = seg.param("jitter", 0.1)
        phase = (t - s) / period + seg.param("phase_offset", 0.0)
        phase = phase + jitter * _slow_sum(t - s, d.jitter_freqs, d.jitter_phases, (1.0, 1.0, 1.0))
        stride = np.clip(np.floor(phase).astype(np.int64) + 2, 0, d.stride_gain.size - 1)
        u = (phase - np.floor(phase)) / duty
        taper = 0.3
        burst = np.where(u < 1.0, _edge(u / taper) * _edge((1.0 - u) / taper), 0.0)
        low = (seg.param("low_ratio", 3.0) - 1.0) * floor
        peak = seg.level_uv * d.stride_gain[stride]
        ramp = _edge((t - s) / 1.0) * _edge((e - t) / 1.0)
        return ramp * (low + (peak - low) * burst)
    return np.zeros_like(t)


@lru_cache(maxsize=256)
def _ecg_truth(seg: Segment) -> tuple[np.ndarray, np.ndarray, EcgParams]:
    """R-peak times, RR intervals and waveform parameters of an ECG segment."""
    params = EcgParams(
        **{k: v for k, v in seg.params if k in EcgParams.__dataclass_fields__}  # type: ignore[arg-type]
    )
    times, rrs = heartbeat_times(params, seg.start_s, seg.end_s, seg.seed)
    return times, rrs, params


@lru_cache(maxsize=256)
def _twitch_truth(seg: Segment) -> tuple[Twitch, ...]:
    params = FasciculationParams(
        min_interval_s=seg.param("min_interval_s", 0.5),
        max_interval_s=seg.param("max_interval_s", 2.0),
        n_units=int(seg.param("n_units", 3)),
        peak_uv=(seg.param("peak_lo_uv", 30.0), seg.param("peak_hi_uv", 150.0)),
        duration_s=(seg.param("duration_lo_s", 0.015), seg.param("duration_hi_s", 0.040)),
    )
    return twitch_train(params, seg.start_s, seg.end_s, seg.seed, int(seg.channel or 0))


@lru_cache(maxsize=256)
def _twitch_times(seg: Segment) -> np.ndarray:
    return np.array([tw.time_s for tw in _twitch_truth(seg)])


def _add_waveforms(y: np.ndarray, segs: Sequence[Segment], a: int, fs: float) -> None:
    """Add the ECG beats and MUAPs of these segments to chunk y (starting at sample a)."""
    n = y.shape[0]
    t_lo, t_hi = a / fs, (a + n) / fs
    for seg in segs:
        if seg.style == "ecg":
            times, rrs, params = _ecg_truth(seg)
            pre, post = ECG_SUPPORT_S
            k0, k1 = np.searchsorted(times, [t_lo - post, t_hi - pre])
            for tb, rr in zip(times[k0:k1].tolist(), rrs[k0:k1].tolist(), strict=True):
                i0 = max(math.ceil((tb + pre) * fs) - a, 0)
                i1 = min(math.floor((tb + post) * fs) - a + 1, n)
                if i1 > i0:
                    y[i0:i1] += ecg_beat((a + np.arange(i0, i1)) / fs - tb, rr, params)
        else:
            twitches = _twitch_truth(seg)
            k0, k1 = np.searchsorted(_twitch_times(seg), [t_lo - 0.05, t_hi + 0.05])
            for tw in twitches[k0:k1]:
                i0 = max(math.ceil(tw.start_s * fs) - a, 0)
                i1 = min(math.floor(tw.end_s * fs) - a + 1, n)
                if i1 > i0:
                    t_rel = (a + np.arange(i0, i1)) / fs - tw.time_s
                    y[i0:i1] += tw.peak_uv * muap(t_rel, tw.duration_s, tw.phases)


class _Timed(Protocol):
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...


_T = TypeVar("_T", bound=_Timed)


class _TimeIndex(Generic[_T]):
    """Segments (or artifacts) sorted by start, with a fast query for those overlapping a range."""

    def __init__(self, segments: Iterable[_T]) -> None:
        self.segments = tuple(sorted(segments, key=lambda s: s.start_s))
        self._starts = np.array([s.start_s for s in self.segments])
        self._max_len = max((s.end_s - s.start_s for s in self.segments), default=0.0)

    def overlapping(self, t_lo: float, t_hi: float) -> list[_T]:
        i0 = int(np.searchsorted(self._starts, t_lo - self._max_len, side="left"))
        i1 = int(np.searchsorted(self._starts, t_hi, side="right"))
        return [s for s in self.segments[i0:i1] if s.end_s >= t_lo]


def _activity(
    segments: Sequence[Segment], channel: int, t: np.ndarray, floor: np.ndarray
) -> np.ndarray:
    """Sum of the activity of the segments on a channel at sorted times t."""
    out = np.zeros_like(t)
    if t.size == 0:
        return out
    t_lo, t_hi = t[0], t[-1]
    for seg in segments:
        if seg.style not in _ACTIVITY_STYLES or seg.channel != channel:
            continue
        if seg.end_s < t_lo or seg.start_s > t_hi:
            continue
        i0, i1 = np.searchsorted(t, [seg.start_s, seg.end_s], side="left")
        if i1 > i0:
            out[i0:i1] += _segment_activity(seg, t[i0:i1], floor[i0:i1])
    return out


def _artifact_shape(shape: str, u: np.ndarray) -> np.ndarray:
    """Unit-peak artifact waveform on u in [0, 1] (zero at both ends)."""
    if shape == "spike":
        # biphasic; peak of sin(2 pi u) sin(pi u)^2 is 0.6495...
        return np.sin(2 * np.pi * u) * np.sin(np.pi * u) ** 2 / 0.649519052838329
    return np.sin(np.pi * np.clip(u, 0.0, 1.0) ** 0.3) ** 2


# --------------------------------------------------------------------------------------------------
# Filters


def _band_high(fs: float) -> float:
    return min(_BAND_HIGH_HZ, 0.45 * fs)


def _check_fs(fs: float) -> None:
    if not (math.isfinite(fs) and fs >= MIN_FS):
        raise ValueError(f"fs must be at least {MIN_FS:g} Hz for a 20 Hz+ EMG band, got {fs!r}")


def _shaping_sos(fs: float, fl: float, fh: float) -> np.ndarray:
    """sEMG-shaped noise filter: Shwedyk spectrum, then 20 Hz high-pass and min(450, 0.45 fs) low-pass."""
    wl, wh = 2 * np.pi * fl, 2 * np.pi * fh
    z, p, k = signal.bilinear_zpk([0.0], [-wl, -wh, -wh], wh * wh, fs)
    shape = signal.zpk2sos(z, p, k)
    hp = signal.butter(2, _BAND_LOW_HZ, btype="highpass", fs=fs, output="sos")
    lp = signal.butter(4, _band_high(fs), btype="lowpass", fs=fs, output="sos")
    return np.vstack([shape, hp, lp])


@lru_cache(maxsize=64)
def _band_power_gain(fs: float) -> float:
    """Mean |H|^2 of the default band-pass: the in-band fraction of white noise power."""
    bp = signal.butter(4, [_BAND_LOW_HZ, _band_high(fs)], btype="bandpass", fs=fs, output="sos")
    _, h = signal.sosfreqz(bp, worN=1 << 15)
    return float(np.mean(np.abs(h) ** 2))


def _inband_rms_of_white_through(sos: np.ndarray, fs: float) -> float:
    bp = signal.butter(4, [_BAND_LOW_HZ, _band_high(fs)], btype="bandpass", fs=fs, output="sos")
    _, h = signal.sosfreqz(np.vstack([sos, bp]), worN=1 << 15)
    return float(np.sqrt(np.mean(np.abs(h) ** 2)))


# --------------------------------------------------------------------------------------------------
# Planning


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _r(x: float) -> float:
    """Round a time to the millisecond (readable ground truth)."""
    return round(float(x), 3)


def _ceil_ms(x: float) -> float:
    """Round a duration up to the millisecond (keeps lower bounds like 10 s after rounding)."""
    return math.ceil(round(float(x) * 1000.0, 6)) / 1000.0


def _channel_params(
    rng: np.random.Generator,
    names: Sequence[str],
    fs: float,
    mains_hz: float,
    floor_uv: float | None,
    floor_variation: float | None,
    mains_uv: float | None,
    wander_uv: float | None,
    dc_offset_uv: float,
) -> tuple[ChannelParams, ...]:
    out = []
    for name in names:
        depth = float(rng.uniform(0.05, 0.2)) if floor_variation is None else float(floor_variation)
        if floor_uv is None:
            # keep floor(t) = base * (1 +- depth) inside 1.5-4 uV
            base = float(rng.uniform(1.5 / (1.0 - depth), 4.0 / (1.0 + depth)))
        else:
            base = float(floor_uv)
        floor_freqs = tuple(float(1.0 / rng.uniform(120.0, 1200.0)) for _ in range(3))
        floor_phases = tuple(float(x) for x in rng.uniform(0, 2 * np.pi, 3))
        # spectral peak about 60-95 Hz, median frequency about 85-130 Hz (at fs >= 1 kHz)
        fl = float(rng.uniform(55.0, 95.0))
        fh = float(rng.uniform(115.0, 165.0))
        a1 = float(rng.uniform(1.0, 5.0)) if mains_uv is None else float(mains_uv)
        ratios = (1.0, float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.05, 0.2)))
        amps = tuple(
            a1 * r if h * mains_hz < 0.45 * fs else 0.0
            for h, r in zip(_MAINS_HARMONICS, ratios, strict=True)
        )
        mains_phases = tuple(float(x) for x in rng.uniform(0, 2 * np.pi, 3))
        wuv = float(rng.uniform(15.0, 60.0)) if wander_uv is None else float(wander_uv)
        breathing = float(rng.uniform(0.2, 0.33))
        wfreqs = (breathing, *(_loguniform(rng, 0.01, 0.8) for _ in range(4)))
        wweights = (1.0, *(float(rng.uniform(0.5, 1.5)) for _ in range(4)))
        wphases = tuple(float(x) for x in rng.uniform(0, 2 * np.pi, 5))
        out.append(
            ChannelParams(
                name=name,
                floor_uv=base,
                floor_depth=depth,
                floor_freqs_hz=floor_freqs,
                floor_phases=floor_phases,
                spectrum_fl_hz=fl,
                spectrum_fh_hz=fh,
                mains_uv=amps,  # type: ignore[arg-type]
                mains_phases=mains_phases,  # type: ignore[arg-type]
                wander_uv=wuv,
                wander_freqs_hz=wfreqs,
                wander_phases=wphases,
                wander_weights=wweights,
                dc_offset_uv=float(dc_offset_uv),
            )
        )
    return tuple(out)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


def _pick_channels(rng: np.random.Generator, n_ch: int, p_all: float) -> list[int]:
    if n_ch == 1 or rng.random() < p_all:
        return list(range(n_ch))
    return [int(rng.integers(0, n_ch))]


@dataclass
class _Block:
    """A top-level event (or event series) with times relative to its own start."""

    name: str
    footprint_s: float
    segments: list[Segment]
    artifacts: list[MotionArtifact] = field(default_factory=list)
    droppable: bool = True


def _place(seg: Segment, dt: float, event: int) -> Segment:
    return replace(seg, start_s=_r(seg.start_s + dt), end_s=_r(seg.end_s + dt), event=event)


def _cramp_segments(
    rng: np.random.Generator,
    channels: Sequence[int],
    start: float,
    end: float,
    prodrome_s: float | None,
    overrides: Mapping[str, Any] | None = None,
) -> list[Segment]:
    """A cramp on each channel in [start, end], preceded by a prodrome of prodrome_s (None/0: none)."""
    ov = dict(overrides or {})
    dur = end - start
    out: list[Segment] = []
    gain = float(ov.get("prodrome_gain", rng.uniform(0.3, 0.8)))
    rise = float(ov.get("rise_s", rng.uniform(0.5, 2.0)))
    decay = float(ov.get("decay_s", rng.uniform(1.0, 3.0)))
    scale = min(1.0, 0.6 * dur / (rise + decay))
    rise, decay = rise * scale, decay * scale
    for c in channels:
        level = float(ov.get("level_uv", _loguniform(rng, 25.0, 200.0)))
        depth = float(ov.get("mod_depth", rng.uniform(0.1, 0.3)))
        has_prodrome = bool(prodrome_s and prodrome_s > 0)
        if has_prodrome:
            assert prodrome_s is not None
            out.append(
                Segment(
                    "prodrome",
                    c,
                    _r(start - prodrome_s),
                    _r(start),
                    0.0,
                    (("gain", gain),),
                    _seed(rng),
                )
            )
        params = (
            ("rise_s", rise),
            ("decay_s", decay),
            ("mod_depth", depth),
            ("start_gain", gain if has_prodrome else 0.0),
        )
        out.append(Segment("cramp", c, _r(start), _r(end), level, params, _seed(rng)))
    return out


def _burst_segment(
    rng: np.random.Generator,
    style: str,
    channel: int,
    start: float,
    end: float,
    level: float,
    overrides: Mapping[str, Any] | None = None,
) -> Segment:
    ov = dict(overrides or {})
    dur = end - start
    if style == "turnover":
        rise, fall, depth = rng.uniform(0.1, 0.4), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.4)
    else:
        rise, fall, depth = rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.5), rng.uniform(0.1, 0.3)
    rise = min(float(ov.get("rise_s", rise)), 0.4 * dur)
    fall = min(float(ov.get("fall_s", fall)), 0.4 * dur)
    params = (("rise_s", rise), ("fall_s", fall), ("mod_depth", float(ov.get("mod_depth", depth))))
    return Segment(
        style, channel, _r(start), _r(end), float(ov.get("level_uv", level)), params, _seed(rng)
    )


def _walking_segments(
    rng: np.random.Generator,
    channels: Sequence[int],
    start: float,
    end: float,
    overrides: Mapping[str, Any] | None = None,
) -> list[Segment]:
    ov = dict(overrides or {})
    period = float(ov.get("period_s", rng.uniform(1.0, 1.2)))
    duty = float(ov.get("duty", rng.uniform(0.35, 0.45)))
    low_ratio = float(ov.get("low_ratio", rng.uniform(2.0, 4.0)))
    jitter = float(ov.get("jitter", rng.uniform(0.05, 0.2)))
    base = float(rng.uniform(40.0, 150.0))
    out = []
    for c in channels:
        level = float(ov.get("level_uv", np.clip(base * rng.uniform(0.85, 1.15), 40.0, 150.0)))
        params = (
            ("period_s", period),
            ("duty", duty),
            ("low_ratio", low_ratio),
            ("jitter", jitter),
            ("phase_offset", 0.5 * (c % 2)),
        )
        out.append(Segment("walking", c, _r(start), _r(end), level, params, _seed(rng)))
    return out


def _electrode_off_segments(
    rng: np.random.Generator,
    channels: Sequence[int],
    start: float,
    end: float,
    rails_uv: tuple[float, float] | None,
    dc_offset_uv: float,
    overrides: Mapping[str, Any] | None = None,
) -> list[Segment]:
    ov = dict(overrides or {})
    modes = ["flat", "railed", "hum"] if rails_uv is not None else ["flat", "hum"]
    mode = str(ov.get("mode", modes[int(rng.integers(0, len(modes)))]))
    if mode not in ("flat", "railed", "hum"):
        raise ValueError(f"electrode_off mode must be flat, railed or hum, not {mode!r}")
    if mode == "railed" and rails_uv is None:
        raise ValueError("electrode_off mode 'railed' needs rails_uv")
    out = []
    for c in channels:
        if mode == "flat":
            value = float(ov.get("value_uv", round(dc_offset_uv + rng.uniform(-100.0, 100.0), 1)))
        elif mode == "railed":
            assert rails_uv is not None
            value = float(ov.get("value_uv", rails_uv[int(rng.integers(0, 2))]))
        else:
            hum = float(rng.uniform(300.0, 2000.0))
            if rails_uv is not None:
                hum = min(hum, 0.5 * min(abs(rails_uv[0]), abs(rails_uv[1])))
            value = float(ov.get("hum_uv", ov.get("value_uv", hum)))
        out.append(Segment(mode, c, _r(start), _r(end), value, (), _seed(rng)))
    return out


def _clipping_segments(
    rng: np.random.Generator,
    channels: Sequence[int],
    start: float,
    end: float,
    rails_uv: tuple[float, float],
    overrides: Mapping[str, Any] | None = None,
) -> list[Segment]:
    ov = dict(overrides or {})
    dur = end - start
    rail = max(abs(rails_uv[0]), abs(rails_uv[1]))
    out = []
    for c in channels:
        swing = float(ov.get("swing_uv", rng.uniform(1.3, 1.8) * rail))
        hz = float(ov.get("swing_hz", rng.uniform(0.3, 1.5)))
        n_half = max(1, round(2.0 * dur * hz))
        level = float(ov.get("level_uv", rng.uniform(50.0, 300.0)))
        rise = min(0.3, 0.3 * dur)
        params = (
            ("swing_uv", swing),
            ("n_half", float(n_half)),
            ("rise_s", rise),
            ("fall_s", rise),
            ("mod_depth", 0.2),
        )
        out.append(Segment("clipping", c, _r(start), _r(end), level, params, _seed(rng)))
    return out


def _physiology_segments(
    kind: str,
    rng: np.random.Generator,
    channels: Sequence[int],
    start: float,
    end: float,
    overrides: Mapping[str, Any] | None = None,
) -> list[Segment]:
    """ECG, fasciculation or standing segments (hardware.synthetic_physiology) on the channels."""
    ov = dict(overrides or {})
    if kind == "ecg":
        known = set(EcgParams.__dataclass_fields__)
        unknown = set(ov) - known
        if unknown:
            raise ValueError(f"unknown ecg settings {sorted(unknown)}; use {sorted(known)}")
        hr = float(ov.get("hr_bpm", rng.uniform(55.0, 85.0)))
        if not 40.0 <= hr <= 180.0:
            raise ValueError(f"ecg hr_bpm {hr:g} is outside 40-180 bpm")
        rhythm = {
            "hr_bpm": hr,
            "resp_hz": float(rng.uniform(0.2, 0.33)),
            "rsa_depth": float(rng.uniform(0.02, 0.06)),
            "mayer_depth": float(rng.uniform(0.01, 0.04)),
            "drift_depth": float(rng.uniform(0.03, 0.1)),
            "jitter": float(rng.uniform(0.01, 0.025)),
        }
        out = []
        for c in channels:
            # one heart (the rhythm and the seed are shared); each lead sees its own waveform
            drawn = {
                **rhythm,
                "r_uv": float(np.exp(rng.uniform(np.log(10.0), np.log(40.0)))),
                "qrs_width": float(rng.uniform(0.8, 1.2)),
                "rs_ratio": float(rng.uniform(0.1, 0.5)),
            }
            drawn.update({k: float(v) for k, v in ov.items()})
            params = tuple(sorted(drawn.items()))
            out.append(Segment("ecg", c, _r(start), _r(end), drawn["r_uv"], params, 0))
        seed = _seed(rng)
        return [replace(seg, seed=seed) for seg in out]
    if kind == "fasciculations":
        names = (
            "min_interval_s",
            "max_interval_s",
            "n_units",
            "peak_lo_uv",
            "peak_hi_uv",
            "duration_lo_s",
            "duration_hi_s",
        )
        unknown = set(ov) - set(names)
        if unknown:
            raise ValueError(f"unknown fasciculation settings {sorted(unknown)}; use {names}")
        params = tuple((k, float(ov[k])) for k in names if k in ov)
        if (
            not 0
            < dict(params).get("min_interval_s", 0.5)
            <= dict(params).get("max_interval_s", 2.0)
        ):
            raise ValueError("fasciculations need 0 < min_interval_s <= max_interval_s")
        return [
            Segment("fasciculation", c, _r(start), _r(end), 0.0, params, _seed(rng))
            for c in channels
        ]
    if kind == "standing":
        depth = float(ov.get("depth", rng.uniform(0.25, 0.5)))
        ramp = float(ov.get("ramp_s", rng.uniform(1.0, 3.0)))
        seed = _seed(rng)
        out = []
        for i, c in enumerate(channels):
            ratio = float(ov.get("ratio", rng.uniform(2.0, 4.0)))
            if not (ratio * (1.0 - depth) >= 1.0 and ratio > 1.0):
                raise ValueError(
                    f"standing ratio {ratio:g} with sway depth {depth:g} would dip below the floor"
                )
            params = (("ratio", ratio), ("depth", depth), ("side", 1.0 - 2.0 * (i % 2)),
                      ("ramp_s", min(ramp, 0.25 * (end - start))))  # fmt: skip
            out.append(Segment("standing", c, _r(start), _r(end), 0.0, params, seed))
        return out
    raise AssertionError(kind)


def _sample_block(
    kind: str,
    rng: np.random.Generator,
    n_ch: int,
    rails_uv: tuple[float, float] | None,
    dc_offset_uv: float,
) -> _Block:
    """Draw one top-level event of a kind, with times relative to 0."""
    if kind == "cramp":
        dur = _ceil_ms(_loguniform(rng, 10.0, 600.0))
        pro = _ceil_ms(rng.uniform(10.0, 40.0))
        chans = _pick_channels(rng, n_ch, 0.25)
        return _Block(kind, pro + dur, _cramp_segments(rng, chans, pro, pro + dur, pro))
    if kind == "turnover":
        dur = _ceil_ms(rng.uniform(1.2, 5.0))
        chans = _pick_channels(rng, n_ch, 0.8)
        segs = []
        for c in chans:
            # the legs start and stop within 0.1 s of each other
            s = _r(rng.uniform(0.0, 0.1)) if len(chans) > 1 else 0.0
            e = dur - (_r(rng.uniform(0.0, 0.1)) if len(chans) > 1 else 0.0)
            segs.append(_burst_segment(rng, "turnover", c, s, e, float(rng.uniform(10.0, 60.0))))
        arts = []
        if rng.random() < 0.5:
            at = float(rng.uniform(0.0, min(1.0, dur)))
            amp = float(rng.uniform(30.0, 300.0)) * (1 if rng.random() < 0.5 else -1)
            d = float(rng.uniform(0.05, 0.3))
            shape = "spike" if rng.random() < 0.5 else "step"
            arts = [MotionArtifact(c, at, d, amp, shape) for c in chans]
        return _Block(kind, dur, segs, arts)
    if kind == "plm":
        n_mov = int(np.clip(round(rng.lognormal(np.log(14.0), 0.5)), 5, 40))
        chans = _pick_channels(rng, n_ch, 0.4)
        base = float(rng.uniform(8.0, 30.0))
        series = float(rng.integers(0, 2**31))
        segs = []
        onset = 0.0
        end = 0.0
        prev_dur = 0.0
        for i in range(n_mov):
            dur = float(np.clip(_ceil_ms(rng.lognormal(np.log(2.6), 0.45)), 0.5, 10.0))
            if i > 0:
                interval = float(np.clip(rng.lognormal(np.log(28.0), 0.35), 5.0, 90.0))
                # onset to onset 5-90 s, and at least 3 s quiet between movements
                interval = _ceil_ms(max(interval, prev_dur + 3.0))
                onset = _r(onset + interval)
            level = float(np.clip(base * rng.uniform(0.7, 1.4), 8.0, 40.0))
            for c in chans:
                seg = _burst_segment(rng, "plm", c, onset, onset + dur, level)
                segs.append(
                    Segment(
                        seg.style,
                        seg.channel,
                        seg.start_s,
                        seg.end_s,
                        seg.level_uv,
                        (*seg.params, ("series", series), ("index", float(i))),
                        seg.seed,
                    )
                )
            prev_dur = dur
            end = onset + dur
        return _Block(kind, end, segs)
    if kind == "walk":
        dur = _ceil_ms(rng.uniform(60.0, 300.0))
        return _Block(kind, dur, _walking_segments(rng, list(range(n_ch)), 0.0, dur))
    if kind == "electrode_off":
        dur = _ceil_ms(_loguniform(rng, 30.0, 600.0))
        chans = _pick_channels(rng, n_ch, 0.25)
        return _Block(
            kind, dur, _electrode_off_segments(rng, chans, 0.0, dur, rails_uv, dc_offset_uv)
        )
    if kind == "clipping":
        assert rails_uv is not None
        dur = _ceil_ms(rng.uniform(2.0, 30.0))
        chans = _pick_channels(rng, n_ch, 0.3)
        return _Block(kind, dur, _clipping_segments(rng, chans, 0.0, dur, rails_uv))
    if kind == "gap":
        dur = _ceil_ms(_loguniform(rng, 0.02, 5.0))
        return _Block(kind, dur, [Segment("gap", None, 0.0, dur)])
    raise AssertionError(kind)


def _annotations(segments: Sequence[Segment], channels: Sequence[str]) -> tuple[Annotation, ...]:
    anns = [
        Annotation(s.kind, s.start_s, s.end_s, None if s.channel is None else channels[s.channel])
        for s in segments
    ]
    anns.sort(key=lambda a: (a.start_s, a.end_s, a.kind, a.channel or ""))
    return tuple(anns)


def _check_rails(rails_uv: tuple[float, float] | None) -> tuple[float, float] | None:
    if rails_uv is None:
        return None
    lo, hi = float(rails_uv[0]), float(rails_uv[1])
    if not lo < 0.0 < hi:
        raise ValueError(f"rails_uv must be (negative, positive), got {rails_uv!r}")
    return (lo, hi)


def plan_night(
    seed: int,
    *,
    duration_s: float = 8 * 3600,
    fs: float = 1000.0,
    channels: Sequence[str] = ("left_calf", "right_calf"),
    n_cramps: int | None = None,
    n_turnovers: int | None = None,
    n_plm_series: int | None = None,
    n_walks: int | None = None,
    electrode_off: bool = True,
    clipping: bool = False,
    gaps: bool = False,
    mains_hz: float = 50.0,
    rails_uv: tuple[float, float] | None = (-5000.0, 5000.0),
    floor_uv: float | None = None,
    floor_variation: float | None = None,
    mains_uv: float | None = None,
    wander_uv: float | None = None,
    dc_offset_uv: float = 0.0,
    amp_noise_uv: float = 0.5,
    motion_artifacts_per_hour: float = 2.0,
) -> NightPlan:
    """Draw a realistic random night (deterministic in ``seed``) and its ground truth.

    ``None`` counts are drawn for the duration (about 1.5 cramps, capped at 4, 0-3 PLM series and
    0-2 walks per 8 h; 4 turnovers an hour). ``electrode_off``, ``clipping`` and ``gaps`` add 1-2,
    1-3 and 1-5 stretches. Events never overlap (on any channel), are at least 30 s apart and end
    5 s before the end; the first 60 s are quiet rest. Randomly counted events and the boolean
    stretches are dropped when the recording is too short for them; explicit counts that do not fit
    raise ValueError. ``floor_uv``/``mains_uv``/``wander_uv`` None draw per-channel values (floor
    1.5-4 uV including its slow +-5-20 % variation, mains fundamental 1-5 uV peak, wander bound
    15-60 uV); ``motion_artifacts_per_hour`` adds unannotated artifacts besides those at turnovers.
    """
    _check_fs(fs)
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    rails = _check_rails(rails_uv)
    names = tuple(channels)
    if not names or len(set(names)) != len(names):
        raise ValueError("channels must be distinct names, at least one")
    if clipping and rails is None:
        raise ValueError("clipping needs rails_uv")
    n_ch = len(names)
    hours8 = duration_s / (8 * 3600)
    ss = np.random.SeedSequence(seed)
    (r_ch, r_count, r_cramp, r_turn, r_plm, r_walk, r_off, r_clip, r_gap, r_place, r_art) = (
        np.random.default_rng(s) for s in ss.spawn(11)
    )

    def count(explicit: int | None, lam: float, cap: float) -> tuple[int, bool]:
        if explicit is not None:
            if explicit < 0:
                raise ValueError("event counts must be >= 0")
            return int(explicit), False
        return int(min(r_count.poisson(lam), math.ceil(cap))), True

    blocks: list[_Block] = []
    specs = [
        ("cramp", r_cramp, count(n_cramps, 1.5 * hours8, 4 * hours8)),
        ("turnover", r_turn, count(n_turnovers, 4.0 * duration_s / 3600, 1e9)),
        ("plm", r_plm, count(n_plm_series, 1.2 * hours8, 3 * hours8)),
        ("walk", r_walk, count(n_walks, 0.8 * hours8, 2 * hours8)),
        ("electrode_off", r_off, ((1 + int(r_count.random() < 0.3)) if electrode_off else 0, True)),
        ("clipping", r_clip, (int(r_count.integers(1, 4)) if clipping else 0, True)),
        ("gap", r_gap, (int(r_count.integers(1, 6)) if gaps else 0, True)),
    ]
    for kind, rng, (n, droppable) in specs:
        for _ in range(n):
            block = _sample_block(kind, rng, n_ch, rails, dc_offset_uv)
            block.droppable = droppable
            blocks.append(block)

    available = duration_s - QUIET_START_S - END_MARGIN_S

    def needed() -> float:
        return sum(b.footprint_s for b in blocks) + (MIN_GAP_S + 0.001) * max(len(blocks) - 1, 0)

    while blocks and needed() > available:
        droppable = [i for i, b in enumerate(blocks) if b.droppable]
        if not droppable:
            raise ValueError(
                f"the requested events need {needed():.0f} s but only {max(available, 0):.0f} s "
                f"are available (first {QUIET_START_S:g} s quiet, {MIN_GAP_S:g} s between events)"
            )
        blocks.pop(droppable[int(r_place.integers(0, len(droppable)))])

    order = r_place.permutation(len(blocks))
    slack = available - needed()
    offsets = np.sort(r_place.uniform(0.0, max(slack, 0.0), len(blocks)))
    segments: list[Segment] = []
    artifacts: list[MotionArtifact] = []
    cursor = QUIET_START_S
    for rank, bi in enumerate(order):
        block = blocks[int(bi)]
        t0 = _ceil_ms(cursor + float(offsets[rank]))
        segments.extend(_place(s, t0, rank) for s in block.segments)
        artifacts.extend(
            MotionArtifact(a.channel, _r(a.start_s + t0), a.duration_s, a.amplitude_uv, a.shape)
            for a in block.artifacts
        )
        cursor += block.footprint_s + MIN_GAP_S + 0.001  # + 1 ms: room for rounding t0 up

    if duration_s > QUIET_START_S + 1.0:
        n_art = int(r_art.poisson(motion_artifacts_per_hour * duration_s / 3600))
        for _ in range(n_art):
            at = _r(r_art.uniform(QUIET_START_S, duration_s - 1.0))
            amp = float(r_art.uniform(30.0, 300.0)) * (1 if r_art.random() < 0.5 else -1)
            d = float(r_art.uniform(0.05, 0.3))
            shape = "spike" if r_art.random() < 0.5 else "step"
            for c in _pick_channels(r_art, n_ch, 0.3):
                artifacts.append(MotionArtifact(c, at, d, amp, shape))

    segments.sort(key=lambda s: (s.start_s, s.end_s, -1 if s.channel is None else s.channel))
    artifacts.sort(key=lambda a: (a.start_s, a.channel))
    cps = _channel_params(
        r_ch, names, fs, mains_hz, floor_uv, floor_variation, mains_uv, wander_uv, dc_offset_uv
    )
    return NightPlan(
        fs=float(fs),
        duration_s=float(duration_s),
        channels=names,
        annotations=_annotations(segments, names),
        segments=tuple(segments),
        artifacts=tuple(artifacts),
        channel_params=cps,
        mains_hz=float(mains_hz),
        rails_uv=rails,
        amp_noise_uv=float(amp_noise_uv),
    )


EventSpec = tuple[Any, ...]
"""(kind, start_s, end_s[, channel[, params]]): channel a name, an index or None (all channels)."""


def scenario(
    seed: int,
    *,
    fs: float,
    duration_s: float,
    events: Sequence[EventSpec],
    channels: Sequence[str] | None = None,
    prodrome: bool = True,
    mains_hz: float = 50.0,
    rails_uv: tuple[float, float] | None = (-5000.0, 5000.0),
    floor_uv: float | None = None,
    floor_variation: float | None = None,
    mains_uv: float | None = None,
    wander_uv: float | None = None,
    dc_offset_uv: float = 0.0,
    amp_noise_uv: float = 0.5,
    motion_artifacts: Sequence[tuple[float, float, float] | tuple[float, float, float, Any]] = (),
) -> NightPlan:
    """An explicit plan: ``events`` like ``[("cramp", 120, 180), ("movement", 600, 603, "ch0")]``.

    Kinds: cramp, movement, walking, prodrome, electrode_off, clipping, gap, and the physiological
    ecg, fasciculations and standing (hardware.synthetic_physiology). A 3-tuple puts the
    event on every channel (a gap: one annotation with channel None); a 4th element names the
    channel (name, index or None); an optional 5th is a dict of overrides, e.g. ``{"level_uv": 80}``
    (cramp: level_uv, rise_s, decay_s, mod_depth, prodrome_s, prodrome_gain; movement: level_uv,
    rise_s, fall_s; walking: level_uv, period_s, duty, low_ratio, jitter; electrode_off: mode
    flat/railed/hum, value_uv, hum_uv; clipping: level_uv, swing_uv, swing_hz; ecg: hr_bpm, r_uv
    and the other EcgParams fields; fasciculations: min_interval_s, max_interval_s, n_units,
    peak_lo_uv, peak_hi_uv, duration_lo_s, duration_hi_s; standing: ratio (of the floor, 2-4),
    depth (of the sway), ramp_s). Other parameters are
    drawn from ``seed``. Each cramp gets a 10-40 s prodrome before ``start`` (shortened so that it stays
    after 0 and after the previous event on its channel) unless ``prodrome=False``. Events may
    overlap here; activities then add. ``motion_artifacts`` are ``(start_s, duration_s, amplitude_uv
    [, channel])``. Channels default to ``ch0, ch1``.
    """
    _check_fs(fs)
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    rails = _check_rails(rails_uv)
    names = tuple(channels) if channels is not None else default_channel_names(2)
    if not names or len(set(names)) != len(names):
        raise ValueError("channels must be distinct names, at least one")
    n_ch = len(names)
    ss = np.random.SeedSequence(seed)
    r_ch, r_ev = (np.random.default_rng(s) for s in ss.spawn(2))

    def chan_list(spec: Any) -> list[int] | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec not in names:
                raise ValueError(f"unknown channel {spec!r}; channels are {names}")
            return [names.index(spec)]
        idx = int(spec)
        if not 0 <= idx < n_ch:
            raise ValueError(f"channel index {idx} out of range")
        return [idx]

    parsed = []
    for ev in events:
        if not 3 <= len(ev) <= 5:
            raise ValueError(f"event must be (kind, start, end[, channel[, params]]), got {ev!r}")
        kind, start, end = str(ev[0]), float(ev[1]), float(ev[2])
        chans = chan_list(ev[3]) if len(ev) >= 4 else None
        ov = dict(ev[4]) if len(ev) == 5 and ev[4] is not None else {}
        if not 0.0 <= start < end <= duration_s:
            raise ValueError(f"event {ev!r} must satisfy 0 <= start < end <= duration_s")
        parsed.append((kind, start, end, chans, ov))

    # previous event end per channel, for clamping prodromes
    def prev_end(c: int, before: float) -> float:
        ends = [e for (_, s, e, ch, _) in parsed if (ch is None or c in ch) and s < before]
        ends = [min(e, before) for e in ends]
        return max(ends, default=0.0)

    segments: list[Segment] = []
    for event, (kind, start, end, chans, ov) in enumerate(parsed):
        n_before = len(segments)
        cl = chans if chans is not None else list(range(n_ch))
        if kind == "cramp":
            for c in cl:
                pro = float(ov.get("prodrome_s", r_ev.uniform(10.0, 40.0))) if prodrome else 0.0
                pro = min(pro, start - prev_end(c, start))
                pro = pro if pro >= 1.0 else 0.0
                segments.extend(_cramp_segments(r_ev, [c], start, end, pro, ov))
        elif kind == "movement":
            for c in cl:
                segments.append(
                    _burst_segment(
                        r_ev, "turnover", c, start, end, float(r_ev.uniform(10.0, 60.0)), ov
                    )
                )
        elif kind == "walking":
            segments.extend(_walking_segments(r_ev, cl, start, end, ov))
        elif kind == "prodrome":
            gain = float(ov.get("gain", ov.get("prodrome_gain", r_ev.uniform(0.3, 0.8))))
            segments.extend(
                Segment("prodrome", c, start, end, 0.0, (("gain", gain),), _seed(r_ev)) for c in cl
            )
        elif kind == "electrode_off":
            segments.extend(_electrode_off_segments(r_ev, cl, start, end, rails, dc_offset_uv, ov))
        elif kind == "clipping":
            if rails is None:
                raise ValueError("clipping needs rails_uv")
            segments.extend(_clipping_segments(r_ev, cl, start, end, rails, ov))
        elif kind == "gap":
            if chans is None:
                segments.append(Segment("gap", None, start, end))
            else:
                segments.extend(Segment("gap", c, start, end) for c in chans)
        elif kind in PHYSIOLOGY_KINDS:
            segments.extend(_physiology_segments(kind, r_ev, cl, start, end, ov))
        else:
            raise ValueError(
                f"unknown event kind {kind!r}; expected cramp, movement, walking, prodrome, "
                "electrode_off, clipping, gap, ecg, fasciculations or standing"
            )
        segments[n_before:] = [replace(seg, event=event) for seg in segments[n_before:]]

    artifacts = []
    for art in motion_artifacts:
        at, d, amp = float(art[0]), float(art[1]), float(art[2])
        cl = chan_list(art[3]) if len(art) > 3 else None
        for c in cl if cl is not None else range(n_ch):
            artifacts.append(MotionArtifact(c, at, d, amp, "spike"))

    segments.sort(key=lambda s: (s.start_s, s.end_s, -1 if s.channel is None else s.channel))
    cps = _channel_params(
        r_ch, names, fs, mains_hz, floor_uv, floor_variation, mains_uv, wander_uv, dc_offset_uv
    )
    return NightPlan(
        fs=float(fs),
        duration_s=float(duration_s),
        channels=names,
        annotations=_annotations(segments, names),
        segments=tuple(segments),
        artifacts=tuple(sorted(artifacts, key=lambda a: (a.start_s, a.channel))),
        channel_params=cps,
        mains_hz=float(mains_hz),
        rails_uv=rails,
        amp_noise_uv=float(amp_noise_uv),
    )


def with_events(plan: NightPlan, seed: int, events: Sequence[EventSpec]) -> NightPlan:
    """``plan`` with physiological components added (any plan: a random night or a scenario).

    ``events`` are ``(kind, start_s, end_s[, channel[, settings]])`` with kind ``ecg``,
    ``fasciculations`` or ``standing`` (see :func:`scenario`); unset details are drawn from
    ``seed``. Example: ECG under a whole random night on the left calf::

        night = plan_night(3)
        r = ecg_r_uv_for_envelope(3.5 * 4.5, 4.5, night.fs)
        night = with_events(night, 1, [("ecg", 0, night.duration_s, "left_calf", {"r_uv": r})])
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    n_ch = plan.n_channels
    first = max((s.event for s in plan.segments), default=-1) + 1
    added: list[Segment] = []
    for i, ev in enumerate(events):
        if not 3 <= len(ev) <= 5:
            raise ValueError(f"event must be (kind, start, end[, channel[, settings]]), got {ev!r}")
        kind, start, end = str(ev[0]), float(ev[1]), float(ev[2])
        if kind not in PHYSIOLOGY_KINDS:
            raise ValueError(f"with_events adds {', '.join(PHYSIOLOGY_KINDS)}, not {kind!r}")
        if not 0.0 <= start < end <= plan.duration_s:
            raise ValueError(f"event {ev!r} must satisfy 0 <= start < end <= duration_s")
        spec = ev[3] if len(ev) >= 4 else None
        chans = list(range(n_ch)) if spec is None else [plan.channel_index(spec)]
        if not all(0 <= c < n_ch for c in chans):
            raise ValueError(f"channel {spec!r} is not one of {plan.channels}")
        ov = dict(ev[4]) if len(ev) == 5 and ev[4] is not None else {}
        segs = _physiology_segments(kind, rng, chans, start, end, ov)
        added.extend(replace(seg, event=first + i) for seg in segs)
    segments = sorted(
        (*plan.segments, *added),
        key=lambda s: (s.start_s, s.end_s, -1 if s.channel is None else s.channel),
    )
    return replace(
        plan, segments=tuple(segments), annotations=_annotations(segments, plan.channels)
    )


# --------------------------------------------------------------------------------------------------
# Rendering


class SyntheticEMG:
    """Renders a :class:`NightPlan` into microvolts, shape (n, n_channels), float64.

    ``seed`` drives the noise only (the plan fixes everything else). :meth:`blocks`,
    :meth:`render` and :meth:`render_range` give bit-identical samples for the same (plan, seed).
    """

    def __init__(self, plan: NightPlan, seed: int) -> None:
        _check_fs(plan.fs)
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if len(plan.channel_params) != plan.n_channels:
            raise ValueError("plan.channel_params must have one entry per channel")
        self.plan = plan
        self.seed = int(seed)
        fs = plan.fs
        self.n_samples = plan.n_samples
        self._m = max(1, round(fs / CONTROL_RATE_HZ))  # samples per control step
        self.chunk_size = self._m * max(1, round(CHUNK_S * fs / self._m))
        self._warmup = min(self.chunk_size, math.ceil(WARMUP_S * fs))
        self._frac = np.arange(self._m) / self._m

        self._sos: list[np.ndarray] = []
        self._noise_gain: list[float] = []
        amp_inband2 = plan.amp_noise_uv**2 * _band_power_gain(fs)
        self._amp_inband2 = amp_inband2
        for cp in plan.channel_params:
            sos = _shaping_sos(fs, cp.spectrum_fl_hz, cp.spectrum_fh_hz)
            self._sos.append(sos)
            self._noise_gain.append(1.0 / _inband_rms_of_white_through(sos, fs))

        # mains as a matrix product: m[q*B + r] = sum_h S_hq C_hr + C_hq S_hr
        b = _MAINS_BLOCK
        r = np.arange(b)
        self._mains_right = []
        for cp in plan.channel_params:
            rows = []
            for h, amp in zip(_MAINS_HARMONICS, cp.mains_uv, strict=True):
                w = 2 * np.pi * h * plan.mains_hz / fs
                unit = amp / cp.mains_uv[0] if cp.mains_uv[0] > 0 else (1.0 if h == 1 else 0.0)
                rows.append(unit * np.cos(w * r))
                rows.append(unit * np.sin(w * r))
            self._mains_right.append(np.array(rows))

        segs = plan.segments
        dt_ctrl = self._m / fs
        self._floor_sines = [
            _GridSines(cp.floor_freqs_hz, cp.floor_phases, (1.0,) * len(cp.floor_freqs_hz), dt_ctrl)
            for cp in plan.channel_params
        ]
        self._wander_sines = [
            _GridSines(cp.wander_freqs_hz, cp.wander_phases, cp.wander_weights, dt_ctrl)
            for cp in plan.channel_params
        ]
        chans = range(plan.n_channels)
        self._activity_segs = [
            _TimeIndex([s for s in segs if s.channel == c and s.style in _ACTIVITY_STYLES])
            for c in chans
        ]
        self._additive_segs = [
            _TimeIndex([s for s in segs if s.channel == c and s.style in _ADDITIVE_STYLES])
            for c in chans
        ]
        self._swing_segs = [
            _TimeIndex([s for s in segs if s.channel == c and s.style == "clipping"]) for c in chans
        ]
        self._off_segs = [
            _TimeIndex([s for s in segs if s.channel == c and s.style in _ELECTRODE_OFF_STYLES])
            for c in chans
        ]
        self._gap_segs = _TimeIndex([s for s in segs if s.style == "gap"])
        self._artifacts = [_TimeIndex(a for a in plan.artifacts if a.channel == c) for c in chans]

    # -- public ------------------------------------------------------------------------------------

    @property
    def n_chunks(self) -> int:
        return -(-self.n_samples // self.chunk_size)

    def blocks(self, block_size: int) -> Iterator[np.ndarray]:
        """Stream the recording in blocks of ``block_size`` samples (the last may be shorter)."""
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        pending: list[np.ndarray] = []
        n_pending = 0
        tail = self._driver(-1)[:, -self._warmup :]
        for k in range(self.n_chunks):
            chunk, tail = self._chunk(k, tail)
            pos = 0
            if n_pending:
                take = min(block_size - n_pending, chunk.shape[0])
                pending.append(chunk[:take])
                n_pending += take
                pos = take
                if n_pending == block_size:
                    yield np.concatenate(pending)
                    pending, n_pending = [], 0
            while chunk.shape[0] - pos >= block_size:
                yield chunk[pos : pos + block_size]
                pos += block_size
            if pos < chunk.shape[0]:
                pending.append(chunk[pos:])
                n_pending += chunk.shape[0] - pos
        if n_pending:
            yield np.concatenate(pending)

    def render(self) -> np.ndarray:
        """The whole recording, (n_samples, n_channels) (for short scenarios)."""
        return self.render_range(0, self.n_samples)

    def render_range(self, start_sample: int, stop_sample: int) -> np.ndarray:
        """Samples [start_sample, stop_sample), equal to that slice of :meth:`render`."""
        start, stop = int(start_sample), int(stop_sample)
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"range [{start}, {stop}) outside [0, {self.n_samples}]")
        out = np.empty((stop - start, self.plan.n_channels))
        if stop == start:
            return out
        cn = self.chunk_size
        k0, k1 = start // cn, (stop - 1) // cn
        tail = self._driver(k0 - 1)[:, -self._warmup :]
        for k in range(k0, k1 + 1):
            chunk, tail = self._chunk(k, tail)
            a = k * cn
            lo, hi = max(start, a), min(stop, a + chunk.shape[0])
            out[lo - start : hi - start] = chunk[lo - a : hi - a]
        return out

    # -- internals ---------------------------------------------------------------------------------

    def _rng(self, k: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, k + 1])))

    def _driver(self, k: int) -> np.ndarray:
        """White noise driving the sEMG filters in chunk k (k = -1: the pre-roll)."""
        return self._rng(k).standard_normal((self.plan.n_channels, self.chunk_size))

    def _expand(self, ctrl: np.ndarray) -> np.ndarray:
        """Linear interpolation from the control grid (n_ctrl,) to samples (chunk_size,)."""
        base = ctrl[:-1, None] + np.diff(ctrl)[:, None] * self._frac
        return base.reshape(-1)

    def _index(self, t: float) -> int:
        """First sample at or after time t."""
        return math.ceil(t * self.plan.fs - 1e-9)

    def _chunk(self, k: int, tail: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples of chunk k, (n, n_channels), and its driver tail for the next chunk."""
        plan, fs, cn = self.plan, self.plan.fs, self.chunk_size
        a = k * cn
        n = min(cn, self.n_samples - a)
        rng = self._rng(k)
        drv = rng.standard_normal((plan.n_channels, cn))
        amp = rng.standard_normal((plan.n_channels, cn)) if plan.amp_noise_uv > 0 else None
        new_tail = drv[:, -self._warmup :].copy()

        m = self._m
        j0 = a // m
        n_ctrl = cn // m + 1
        tc = (j0 + np.arange(n_ctrl)) * (m / fs)
        t_lo, t_hi = a / fs, (a + cn) / fs
        mains = self._mains(a)
        x = np.empty((plan.n_channels, cn))
        for c, cp in enumerate(plan.channel_params):
            # sEMG: filtered white noise, warmed up on the previous chunk's tail
            y = signal.sosfilt(self._sos[c], np.concatenate([tail[c], drv[c]]))[self._warmup :]
            floor = cp.floor_uv * (1.0 + cp.floor_depth * self._floor_sines[c](j0, n_ctrl))
            floor_emg = np.sqrt(np.maximum(floor * floor - self._amp_inband2, 0.0))
            active = self._activity_segs[c].overlapping(t_lo, t_hi)
            env = floor_emg + _activity(active, c, tc, floor)
            y *= self._expand(env * self._noise_gain[c])
            additive = self._additive_segs[c].overlapping(t_lo - 1.0, t_hi + 1.0)
            if additive:
                _add_waveforms(y, additive, a, fs)
            # slow additive parts: DC, wander, clipping swings
            base_c = cp.wander_uv * self._wander_sines[c](j0, n_ctrl) + cp.dc_offset_uv
            for seg in self._swing_segs[c].overlapping(t_lo, t_hi):
                i0, i1 = np.searchsorted(tc, [seg.start_s, seg.end_s])
                u = (tc[i0:i1] - seg.start_s) / (seg.end_s - seg.start_s)
                base_c[i0:i1] += seg.param("swing_uv") * np.sin(np.pi * seg.param("n_half", 1) * u)
            base = self._expand(base_c)
            y += base
            if amp is not None:
                y += plan.amp_noise_uv * amp[c]
            if cp.mains_uv[0] > 0:
                y += cp.mains_uv[0] * mains[c]
            for art in self._artifacts[c].overlapping(t_lo, t_hi):
                sl = self._slice(art, a, cn)
                if sl is not None:
                    u = ((a + np.arange(sl.start, sl.stop)) / fs - art.start_s) / art.duration_s
                    y[sl] += art.amplitude_uv * _artifact_shape(art.shape, u)
            for seg in self._off_segs[c].overlapping(t_lo, t_hi):
                sl = self._slice(seg, a, cn)
                if sl is None:
                    continue
                if seg.style == "hum":
                    noise = 5.0 * plan.amp_noise_uv * amp[c, sl] if amp is not None else 0.0
                    y[sl] = base[sl] + seg.level_uv * mains[c, sl] + noise
                else:
                    y[sl] = seg.level_uv
            x[c] = y
        if plan.rails_uv is not None:
            np.clip(x, plan.rails_uv[0], plan.rails_uv[1], out=x)
        for seg in self._gap_segs.overlapping(t_lo, t_hi):
            sl = self._slice(seg, a, cn)
            if sl is not None:
                if seg.channel is None:
                    x[:, sl] = np.nan
                else:
                    x[seg.channel, sl] = np.nan
        return np.ascontiguousarray(x[:, :n].T), new_tail

    def _slice(self, seg: Segment | MotionArtifact, a: int, cn: int) -> slice | None:
        """Samples of chunk-local range [0, cn) (chunk starting at sample a) inside seg."""
        i0 = max(self._index(seg.start_s) - a, 0)
        i1 = min(self._index(seg.end_s) - a, cn)
        return slice(i0, i1) if i1 > i0 else None

    def _mains(self, a: int) -> np.ndarray:
        """Unit mains waveform (fundamental peak 1, with the channel's harmonics), (n_ch, chunk)."""
        plan, cn, b = self.plan, self.chunk_size, _MAINS_BLOCK
        nq = -(-cn // b)
        iq = a + b * np.arange(nq, dtype=np.float64)
        out = np.empty((plan.n_channels, cn))
        for c, cp in enumerate(plan.channel_params):
            cols = []
            for h, ph in zip(_MAINS_HARMONICS, cp.mains_phases, strict=True):
                cyc = np.mod(iq * (h * plan.mains_hz / plan.fs), 1.0)
                ang = 2 * np.pi * cyc + ph
                cols.append(np.sin(ang))
                cols.append(np.cos(ang))
            left = np.stack(cols, axis=1)  # (nq, 6)
            out[c] = (left @ self._mains_right[c]).reshape(-1)[:cn]
        return out
