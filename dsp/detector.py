"""Cramp/movement detector on the hop-rate envelope of one channel.

Per hop: hysteresis against the noise floor (on above max(3 x floor, floor + 8 uV), off after 0.5 s
below max(1.5 x floor, floor + 2 uV)); active runs less than 2 s apart merge into one stretch. A stretch
becomes a cramp once it has been *tonic* for the cramp duration: no dip of the envelope below
`tonic_ratio` of its recent maximum (within the stretch) lasting `dip_min_s`. Rhythmic activity such
as walking dips at every stride and so never becomes a cramp however long it lasts. Everything else
of at least `movement_min_s` is a movement. The floor learns only from quiet ticks.

Quiet ticks take a vectorized fast path; only ticks with activity are walked hop by hop.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from dsp.config import PipelineConfig
from dsp.events import (
    KIND_CRAMP,
    KIND_MOVEMENT,
    PHASE_ENDED,
    PHASE_STARTED,
    STATE_CRAMP,
    STATE_IDLE,
    STATE_MOVEMENT,
    STATE_SIGNAL_LOST,
    EnvelopeTrace,
    Event,
    StateChange,
    stable_event_id,
)
from dsp.noise_floor import NoiseFloor

_IDLE, _ACTIVE, _PENDING = 0, 1, 2


@dataclass(frozen=True)
class EventContext:
    """Who and what an event belongs to: device, recording identity, session start, settings."""

    device: str
    source_id: str
    session_start: datetime
    pipeline: dict[str, Any]
    settings_hash: str


@dataclass(frozen=True)
class Timebase:
    """Hop index to seconds from the start of the recording."""

    fs: float
    hop: int
    window: int

    def window_end_s(self, hop_index: int) -> float:
        return (hop_index + 1) * self.hop / self.fs

    def window_start_s(self, hop_index: int) -> float:
        return max(0, (hop_index + 1) * self.hop - self.window) / self.fs


@dataclass
class _Stretch:
    """An active stretch (possibly several merged runs) being followed."""

    onset_hop: int
    start_s: float
    floor_uv: float
    pre: np.ndarray
    values: array = field(default_factory=lambda: array("d"))
    cramp: bool = False
    problems: set[str] = field(default_factory=set)
    spectrum: np.ndarray | None = None
    run_end_hop: int = -1
    tonic_hops: int = 0
    tonic_start_hop: int = 0


class ChannelDetector:
    """The detector for one channel; fed one tick of envelope hops at a time."""

    def __init__(
        self,
        config: PipelineConfig,
        channel: str,
        context: EventContext,
        timebase: Timebase,
        hops_per_tick: int,
    ) -> None:
        det = config.detector
        calibration = config.calibration_of(channel)
        self.det = det
        self.channel = channel
        self.context = context
        self.tb = timebase
        self.hops_per_tick = hops_per_tick
        hop_s = timebase.hop / timebase.fs
        self.hop_s = hop_s
        tick_s = hops_per_tick * hop_s
        self.floor = NoiseFloor(
            capacity=math.ceil(det.floor_window_s / tick_s),
            percentile=det.floor_percentile,
            warmup=math.ceil(det.floor_warmup_s / tick_s),
            initial_uv=calibration.floor_uv if calibration else det.initial_floor_uv,
        )
        self.mvc_uv = calibration.mvc_uv if calibration else None
        self.off_hold_hops = max(1, math.ceil(det.off_hold_s / hop_s - 1e-9))
        self.dip_min_hops = max(1, math.ceil(det.dip_min_s / hop_s - 1e-9))
        self.tonic_window_hops = max(1, round(det.tonic_window_s / hop_s))
        self.pre_hops = round(det.trace_pre_s / hop_s)
        self.settle_ticks = math.ceil(config.quality.settle_s / tick_s - 1e-9)
        self.mode = _IDLE
        self.state = STATE_IDLE
        self.stretch: _Stretch | None = None
        self.on_thr = self.off_thr = math.inf
        self._update_thresholds()
        self._recent_ticks: deque[np.ndarray] = deque(
            maxlen=math.ceil(det.trace_pre_s / tick_s) + 1
        )
        self._below = 0
        self._dip = 0
        self._in_dip = False
        self._dip_low = 0.0
        self._max_window: deque[tuple[int, float]] = deque()
        self._settle_left = 0
        self.tick_samples = hops_per_tick * timebase.hop
        self._spectrum_freqs = np.fft.rfftfreq(self.tick_samples, 1 / timebase.fs)
        self._band = config.filter.effective_band(config.fs) if config.mode == "raw" else None
        self.records: list[Event | StateChange] = []  # in the order they happened

    # ---- per tick -------------------------------------------------------------------------------

    def process_tick(
        self,
        first_hop: int,
        env: np.ndarray,
        filtered: np.ndarray | None,
        blocked: bool,
        problems: tuple[str, ...],
        tick_max: float,
        tick_median: float,
        partly_missing: bool = False,
    ) -> None:
        """Take the envelope hops of one tick (and its filtered samples, for the spectrum).

        `tick_max` and `tick_median` are of `env`, computed by the caller for all ticks at once;
        `partly_missing` says the tick's envelope was held over missing samples, so it does not
        teach the noise floor.
        """
        if blocked:
            self._process_blocked(first_hop)
        elif self._settle_left > 0:
            self._settle_left -= 1
            self._process_blocked(first_hop, settling=True)
        elif self.mode == _IDLE and tick_max <= self.on_thr:
            if self.state != STATE_IDLE:
                self._set_state(STATE_IDLE, self.tb.window_end_s(first_hop - 1))
            if len(env) == self.hops_per_tick and not partly_missing:
                self.floor.add(tick_median)
                self._update_thresholds()
        else:
            for i, value in enumerate(env.tolist()):
                self._process_hop(first_hop + i, value, env, i)
            if self.stretch is not None:
                if filtered is not None:
                    self._add_spectrum(filtered)
                self.stretch.problems.update(problems)
        self._recent_ticks.append(env)

    def finish(self, next_hop: int) -> None:
        """End of the recording: close whatever is open."""
        if self.stretch is not None:
            self._close_early(self.tb.window_end_s(next_hop - 1), "recording_ended")

    # ---- internals ------------------------------------------------------------------------------

    def _update_thresholds(self) -> None:
        """Thresholds from the floor (DESIGN.md), or in % of the channel's MVC when configured
        (never closer to the floor than the floor margins)."""
        if not self.floor.ready:
            self.on_thr = self.off_thr = math.inf
            return
        f, det = self.floor.value, self.det
        if det.on_mvc_percent is not None and det.off_mvc_percent is not None and self.mvc_uv:
            self.on_thr = max(det.on_mvc_percent / 100 * self.mvc_uv, f + det.on_margin_uv)
            self.off_thr = max(det.off_mvc_percent / 100 * self.mvc_uv, f + det.off_margin_uv)
            return
        self.on_thr = max(det.on_factor * f, f + det.on_margin_uv)
        self.off_thr = max(det.off_factor * f, f + det.off_margin_uv)

    def _process_blocked(self, first_hop: int, settling: bool = False) -> None:
        at_s = self.tb.window_end_s(first_hop - 1)
        if self.stretch is not None:
            self._close_early(at_s, "signal_lost")
        if not settling:
            self._settle_left = self.settle_ticks
        self._set_state(STATE_SIGNAL_LOST, at_s)

    def _process_hop(self, k: int, value: float, env: np.ndarray, i: int) -> None:
        if self.mode == _IDLE:
            if value > self.on_thr:
                self._open(k, env, i)
            else:
                return
        stretch = self.stretch
        assert stretch is not None
        if self.mode == _PENDING:
            gap_s = self.tb.window_end_s(k) - self.tb.window_start_s(stretch.run_end_hop)
            if value > self.on_thr and gap_s < self.det.merge_gap_s:
                self.mode = _ACTIVE
                self._below = 0
            elif gap_s >= self.det.merge_gap_s:
                self._close(self.tb.window_start_s(stretch.run_end_hop))
                if value > self.on_thr:
                    self._open(k, env, i)
                    stretch = self.stretch
                    assert stretch is not None
                else:
                    return
        stretch.values.append(value)
        self._track_tonic(k, value)
        if self.mode == _ACTIVE:
            if value > self.off_thr:
                self._below = 0
            else:
                self._below += 1
                if self._below >= self.off_hold_hops:
                    stretch.run_end_hop = k - self._below + 1
                    self.mode = _PENDING
                    # A dip that never recovered was the cramp fading out, not a phasic dip.
                    run_end_s = self.tb.window_start_s(stretch.run_end_hop)
                    if not stretch.cramp and self._tonic_for(run_end_s):
                        self._declare_cramp(run_end_s)
                    return
            now_s = self.tb.window_start_s(k)
            if (
                self._below == 0
                and not stretch.cramp
                and not self._in_dip
                and self._tonic_for(now_s)
            ):
                self._declare_cramp(now_s)
            if now_s - stretch.start_s >= self.det.max_event_s:
                # Hours of "activity" is a baseline shift (electrode, posture), not a cramp: close
                # the stretch and learn the floor afresh.
                self._close(now_s, extra_problem="too_long")
                self.floor.reset()
                self._update_thresholds()

    def _open(self, k: int, env: np.ndarray, i: int) -> None:
        recent = [*self._recent_ticks, env[:i]]
        pre = np.concatenate(recent)[-self.pre_hops :] if self.pre_hops else np.empty(0)
        self.stretch = _Stretch(
            onset_hop=k,
            start_s=self.tb.window_end_s(k - 1),
            floor_uv=self.floor.value,
            pre=pre,
            tonic_start_hop=k,
        )
        self.mode = _ACTIVE
        self._below = 0
        self._dip = 0
        self._in_dip = False
        self._max_window.clear()
        self._set_state(STATE_MOVEMENT, self.stretch.start_s)

    def _track_tonic(self, k: int, value: float) -> None:
        """Follow dips: the envelope below `tonic_ratio` of its recent maximum for `dip_min_s`.

        A dip that is followed by renewed activity (at least twice the dip's lowest value) marks
        phasic activity: the tonic run starts again from there.
        """
        window = self._max_window
        while window and window[-1][1] <= value:
            window.pop()
        window.append((k, value))
        if window[0][0] <= k - self.tonic_window_hops:
            window.popleft()
        low = value < self.det.tonic_ratio * window[0][1]
        if self._in_dip:
            self._dip_low = min(self._dip_low, value)
            if not low and value >= 2.0 * self._dip_low:
                self._in_dip = False
                self._dip = 0
                assert self.stretch is not None
                self.stretch.tonic_start_hop = k
        elif low:
            self._dip += 1
            if self._dip >= self.dip_min_hops:
                self._in_dip = True
                self._dip_low = value
        else:
            self._dip = 0

    def _tonic_for(self, until_s: float) -> bool:
        """Has the stretch been tonic for the cramp duration, up to `until_s`?"""
        stretch = self.stretch
        assert stretch is not None
        tonic_start_s = self.tb.window_end_s(stretch.tonic_start_hop - 1)
        return until_s - tonic_start_s >= self.det.cramp_min_s

    def _declare_cramp(self, until_s: float) -> None:
        stretch = self.stretch
        assert stretch is not None
        if stretch.tonic_start_hop > stretch.onset_hop:
            self._split_off_movement(stretch.tonic_start_hop)
        stretch.cramp = True
        self._set_state(STATE_CRAMP, until_s)
        self._emit(stretch, PHASE_STARTED, end_s=None, duration_s=until_s - stretch.start_s)

    def _split_off_movement(self, cramp_onset_hop: int) -> None:
        """The stretch was phasic before it turned tonic: report that part as a movement."""
        stretch = self.stretch
        assert stretch is not None
        split = cramp_onset_hop - stretch.onset_hop
        head = _Stretch(
            onset_hop=stretch.onset_hop,
            start_s=stretch.start_s,
            floor_uv=stretch.floor_uv,
            pre=stretch.pre,
            values=stretch.values[:split],
            problems=set(stretch.problems),
            spectrum=stretch.spectrum,
        )
        cramp_start_s = self.tb.window_end_s(cramp_onset_hop - 1)
        if cramp_start_s - head.start_s >= self.det.movement_min_s:
            self._emit(
                head, PHASE_ENDED, end_s=cramp_start_s, duration_s=cramp_start_s - head.start_s
            )
        before = np.concatenate([stretch.pre, np.frombuffer(head.values)])
        stretch.pre = before[-self.pre_hops :] if self.pre_hops else np.empty(0)
        stretch.values = stretch.values[split:]
        stretch.onset_hop = cramp_onset_hop
        stretch.start_s = cramp_start_s

    def _close_early(self, at_s: float, problem: str) -> None:
        """The stretch is cut short (signal lost, recording over) at `at_s`.

        A stretch already past its last active run ends where that run ended; if the signal was
        lost so soon after, the event still says so (the loss may be why the envelope fell).
        """
        stretch = self.stretch
        assert stretch is not None
        if self.mode == _PENDING:
            lost = problem if problem == "signal_lost" else None
            self._close(self.tb.window_start_s(stretch.run_end_hop), extra_problem=lost)
        else:
            self._close(at_s, extra_problem=problem)

    def _close(self, end_s: float, extra_problem: str | None = None) -> None:
        stretch = self.stretch
        assert stretch is not None
        if extra_problem:
            stretch.problems.add(extra_problem)
        end_s = max(end_s, stretch.start_s)
        duration = end_s - stretch.start_s
        if stretch.cramp or duration >= self.det.movement_min_s:
            self._emit(stretch, PHASE_ENDED, end_s=end_s, duration_s=duration)
        self.stretch = None
        self.mode = _IDLE
        self._set_state(STATE_IDLE, end_s)

    def _emit(self, stretch: _Stretch, phase: str, end_s: float | None, duration_s: float) -> None:
        # A copy, not a view: a view would keep the growing array from growing for as long as
        # anything holds this frame (a sampling profiler, such as every Dask worker runs).
        values = np.array(stretch.values) if len(stretch.values) else np.zeros(1)
        active = values[: max(1, round(duration_s / self.hop_s))]
        kind = KIND_CRAMP if stretch.cramp else KIND_MOVEMENT
        ctx = self.context
        event_id = stable_event_id(
            ctx.source_id,
            ctx.session_start.isoformat(),
            ctx.device,
            self.channel,
            kind,
            stretch.onset_hop,
            ctx.settings_hash,
        )
        quality = ",".join(sorted(stretch.problems)) or "good"
        self.records.append(
            Event(
                event_id=event_id,
                device=ctx.device,
                channel=self.channel,
                kind=kind,
                phase=phase,
                start_s=stretch.start_s,
                end_s=end_s,
                duration_s=duration_s,
                peak_uv=float(active.max()),
                mean_uv=float(active.mean()),
                floor_uv=stretch.floor_uv,
                area_uvs=float(np.clip(active - stretch.floor_uv, 0, None).sum() * self.hop_s),
                median_freq_hz=self._median_frequency(stretch.spectrum),
                quality=quality,
                envelope=self._trace(stretch, values),
                pipeline=ctx.pipeline,
                session_start=ctx.session_start,
            )
        )

    def _trace(self, stretch: _Stretch, values: np.ndarray) -> EnvelopeTrace:
        series = np.concatenate([stretch.pre, values])
        group = max(1, math.ceil(len(series) / self.det.trace_max_points))
        usable = len(series) // group * group
        binned = series[:usable].reshape(-1, group).mean(axis=1) if usable else series
        first_hop = stretch.onset_hop - len(stretch.pre)
        t0 = self.tb.window_end_s(first_hop) + (group - 1) * self.hop_s / 2
        return EnvelopeTrace(
            t0_s=round(t0, 4), dt_s=round(group * self.hop_s, 6), uv=tuple(float(v) for v in binned)
        )

    def _add_spectrum(self, filtered: np.ndarray) -> None:
        """Add the tick's power spectrum (a partial tick is zero-padded to the tick length)."""
        stretch = self.stretch
        assert stretch is not None
        power = np.abs(np.fft.rfft(filtered * np.hanning(len(filtered)), n=self.tick_samples)) ** 2
        stretch.spectrum = power if stretch.spectrum is None else stretch.spectrum + power

    def _median_frequency(self, spectrum: np.ndarray | None) -> float | None:
        if spectrum is None or self._band is None:
            return None
        freqs = self._spectrum_freqs
        in_band = (freqs >= self._band[0]) & (freqs <= self._band[1])
        power = spectrum[in_band]
        if power.sum() <= 0:
            return None
        cumulative = np.cumsum(power)
        return float(freqs[in_band][np.searchsorted(cumulative, cumulative[-1] / 2)])

    def _set_state(self, state: str, at_s: float) -> None:
        if state != self.state:
            self.state = state
            self.records.append(StateChange(self.channel, state, at_s))
