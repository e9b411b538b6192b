"""Cramp/movement detector on the hop-rate envelope of one channel.

Per hop: hysteresis against the noise floor (on above max(3 x floor, floor + 8 uV), off after 0.5 s
below max(1.5 x floor, floor + 2 uV)); active runs less than 2 s apart merge into one stretch. A stretch
becomes a cramp once it has been *tonic* for the cramp duration: no dip of the envelope below
`tonic_ratio` of its recent maximum (within the stretch) lasting `dip_min_s`. Rhythmic activity such
as walking dips at every stride and so never becomes a cramp however long it lasts. Everything else
of at least `movement_min_s` is a movement. The floor learns only from quiet ticks.

Hops that are not measurements (NaN: too many samples missing) are neither above nor below a
threshold; time goes on over them. A *short* gap, up to `max_gap_s` (2 s, the merge rule's span),
keeps an event open and is noted on it (`gap`): activity that resumes within 2 s is one event anyway,
so nothing a shorter gap hides could have ended it, and a cramp, a contraction lasting seconds to
minutes, does not stop and start again within a second or two. A longer gap ends the event where the
gap began (`signal_lost`). With no event open, a gap that could hold a whole movement
(`movement_min_s`) is signal lost. An event never ends later than its last measured active hop, so
a gap cannot lengthen it into a cramp.

Nothing is detected before the floor is known: the warm-up ticks are judged once it is, and the
ticks since the start are judged again if the recording turns out to have started inside an event
(see `_judge_start`).

Quiet ticks take a vectorized fast path; only ticks with activity are walked hop by hop.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from dsp.config import PipelineConfig
from dsp.events import (
    CONFIDENCE_HIGH,
    CONFIDENCE_LOW,
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
from dsp.quality import GAP

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
        *,
        start_floor_uv: float | None = None,
    ) -> None:
        det = config.detector
        calibration = config.calibration_of(channel)
        self.config = config
        self.det = det
        self.channel = channel
        self.context = context
        self.tb = timebase
        self.hops_per_tick = hops_per_tick
        hop_s = timebase.hop / timebase.fs
        self.hop_s = hop_s
        tick_s = hops_per_tick * hop_s
        given = det.initial_floor_uv
        if given is None and calibration is not None:
            given = calibration.floor_uv
        self.floor = NoiseFloor(
            capacity=math.ceil(det.floor_window_s / tick_s),
            percentile=det.floor_percentile,
            warmup=math.ceil(det.floor_warmup_s / tick_s),
            initial_uv=given if start_floor_uv is None else start_floor_uv,
            fixed=not det.learn_floor and start_floor_uv is None,
        )
        # With no floor given, the ticks since the start are kept (up to the longest event) so
        # that they can be judged again once the floor is known: the warm-up when it ends, and
        # all of it if the recording turns out to have started inside an event.
        self._history: list[tuple] | None = None if self.floor.ready else []
        self._history_limit = math.ceil(det.max_event_s / tick_s)
        self._provisional_uv = math.nan  # the floor learned from the warm-up
        self._emitted: set[tuple[str, str]] = set()  # (event_id, phase) reported
        self._quiet_seen = False  # a measured quiet hop has been seen
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
        self._gap_start: int | None = None  # first hop of the run of missing hops in progress
        self._gap_ended_at = -2  # the last hop of the latest run of missing hops
        self._gap_began_at = -2  # and its first
        self._gap_was_lost = False  # that run was long enough to be reported as signal lost
        self._last_above_hop = -1
        # A gap this long while no event is open could hide a whole movement: signal lost.
        self.idle_gap_s = max(det.movement_min_s, hop_s)
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
        missing_hops: int = 0,
    ) -> None:
        """Take the envelope hops of one tick (and its filtered samples, for the spectrum).

        `tick_max` and `tick_median` are of the measured hops of `env`, computed by the caller for
        all ticks at once; `missing_hops` counts the hops that are not measurements (NaN).
        """
        if self._history is not None:
            tick = (first_hop, env.copy(), blocked, problems, tick_max, tick_median, missing_hops)
            self._history.append(tick)
        self._process_tick(
            first_hop, env, filtered, blocked, problems, tick_max, tick_median, missing_hops
        )
        if self._history is not None:
            self._judge_start(first_hop + len(env))

    def _process_tick(
        self,
        first_hop: int,
        env: np.ndarray,
        filtered: np.ndarray | None,
        blocked: bool,
        problems: tuple[str, ...],
        tick_max: float,
        tick_median: float,
        missing_hops: int,
    ) -> None:
        if blocked:
            self._process_blocked(first_hop)
        elif self._settle_left > 0:
            self._settle_left -= 1
            self._process_blocked(first_hop, settling=True)
        elif (
            self.mode == _IDLE
            and missing_hops == 0
            and self._gap_start is None
            and tick_max <= self.on_thr
        ):
            if self.state != STATE_IDLE:
                self._set_state(STATE_IDLE, self.tb.window_end_s(first_hop - 1))
            self._quiet_seen = True
            if len(env) == self.hops_per_tick:
                self.floor.add(tick_median)
                self._update_thresholds()
        else:
            quiet = self.mode == _IDLE and self.state == STATE_IDLE and tick_max <= self.on_thr
            for i, value in enumerate(env.tolist()):
                if value != value:  # NaN: this hop is not a measurement
                    self._process_missing(first_hop + i)
                    continue
                if self._gap_start is not None:
                    self._gap_over(first_hop + i)
                self._process_hop(first_hop + i, value, env, i)
            if self.stretch is not None:
                if filtered is not None:
                    self._add_spectrum(filtered)
                self.stretch.problems.update(problems)
            elif (
                quiet
                and self.state == STATE_IDLE
                and len(env) == self.hops_per_tick
                and 2 * missing_hops <= self.hops_per_tick
            ):
                # A quiet tick with a few hops missing still measures the resting level (the
                # median of its measured hops).
                self.floor.add(tick_median)
                self._update_thresholds()
        self._recent_ticks.append(env)

    def _judge_start(self, next_hop: int) -> None:
        """While the floor is not yet known to come from real quiet: at the end of the warm-up,
        run the detector over the warm-up ticks with the floor just learned; and if the floor
        later falls so far that the warm-up itself was above the 'on' threshold (the recording
        started inside an event), run it again from the start with the floor learned since,
        noting `floor_revised` on what that finds. After max_event_s, the start is settled."""
        assert self._history is not None
        if not self.floor.ready:
            return
        if math.isnan(self._provisional_uv):
            self._provisional_uv = self.floor.value
            self._rerun_from_start(next_hop, self.floor.value, revised=False)
        elif self._on_threshold(self.floor.value) < self._provisional_uv:
            self._rerun_from_start(next_hop, self.floor.value, revised=True)
            self._history = None
        if self._history is not None and len(self._history) >= self._history_limit:
            self._history = None

    def _rerun_from_start(self, next_hop: int, floor_uv: float, *, revised: bool) -> None:
        """Judge the kept ticks again with `floor_uv` as the starting floor, report what that
        finds that was not reported yet, and carry on from its state (what was reported with the
        old floor stays reported; a cramp announced then is closed, saying why)."""
        assert self._history is not None
        rerun = ChannelDetector(
            self.config,
            self.channel,
            self.context,
            self.tb,
            self.hops_per_tick,
            start_floor_uv=floor_uv,
        )
        for first_hop, env, blocked, problems, tick_max, tick_median, missing in self._history:
            rerun._process_tick(
                first_hop, env, None, blocked, problems, tick_max, tick_median, missing
            )
        now_s = self.tb.window_end_s(next_hop - 1)
        if self.stretch is not None and self.stretch.cramp:
            same = rerun.stretch is not None and rerun.stretch.onset_hop == self.stretch.onset_hop
            if not same:  # a cramp announced with the old floor is closed, saying why
                self._close_early(now_s, "floor_revised")
        last_state_s = max(
            (r.at_s for r in self.records if isinstance(r, StateChange)), default=-math.inf
        )
        for record in rerun.records:
            if isinstance(record, Event):
                if (record.event_id, record.phase) in self._emitted:
                    continue
                if revised:
                    record = _with_problem(record, "floor_revised")
                self._emitted.add((record.event_id, record.phase))
                self.records.append(record)
            elif record.at_s >= last_state_s and record.state != self.state:
                self.records.append(record)
                self.state = record.state
        if revised and rerun.stretch is not None:
            rerun.stretch.problems.add("floor_revised")
        keep = {"records", "_history", "_emitted", "_provisional_uv", "_history_limit", "state"}
        for name, value in vars(rerun).items():
            if name not in keep:
                setattr(self, name, value)
        if rerun.state != self.state:
            self._set_state(rerun.state, now_s)

    def _on_threshold(self, floor_uv: float) -> float:
        return max(self.det.on_factor * floor_uv, floor_uv + self.det.on_margin_uv)

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

    def _process_missing(self, k: int) -> None:
        """Hop k is not a measurement (too many of its window's samples are missing).

        Inside an event, a gap of up to `max_gap_s` keeps the event open (time passes, nothing is
        learned about the muscle) and is noted on it; a longer one ends it as signal lost where the
        gap began. With no event open, a gap long enough to hide a whole movement is signal lost.
        """
        if self._gap_start is None:
            self._gap_start = self._gap_began_at = k
            self._gap_was_lost = False
        lost_at = self.tb.window_end_s(self._gap_start - 1)
        gap_s = (k + 1 - self._gap_start) * self.hop_s
        stretch = self.stretch
        if stretch is not None:
            stretch.values.append(math.nan)
            stretch.problems.add(GAP)
            if self.mode == _PENDING and (
                self.tb.window_end_s(k) - self.tb.window_start_s(stretch.run_end_hop)
                >= self.det.merge_gap_s
            ):
                self._close(self.tb.window_start_s(stretch.run_end_hop))
            elif gap_s > self.det.max_gap_s:
                self._close_early(lost_at, "signal_lost")
                self._lose_signal(lost_at)
                return
        if self.stretch is None and gap_s >= self.idle_gap_s:
            self._lose_signal(lost_at)

    def _lose_signal(self, at_s: float) -> None:
        self._gap_was_lost = True
        self._set_state(STATE_SIGNAL_LOST, at_s)

    def _gap_over(self, k: int) -> None:
        """Hop k is measured again after a run of missing hops."""
        self._gap_start = None
        self._gap_ended_at = k - 1
        if self.stretch is None and self.state == STATE_SIGNAL_LOST:
            self._set_state(STATE_IDLE, self.tb.window_end_s(k - 1))

    def _process_hop(self, k: int, value: float, env: np.ndarray, i: int) -> None:
        if self.mode == _IDLE:
            if value > self.on_thr:
                self._open(k, env, i)
            else:
                self._quiet_seen = True
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
                self._last_above_hop = k
            else:
                self._below += 1
                if self._below >= self.off_hold_hops:
                    # The run ends after its last measured active hop (before a gap, if the
                    # envelope was missing in between: what the gap hid is not claimed).
                    stretch.run_end_hop = self._last_above_hop + 1
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
        if self._gap_ended_at == k - 1 and self._gap_began_at > 0:
            # It began while the envelope was missing: when is unsure.
            self.stretch.problems.add("signal_lost" if self._gap_was_lost else GAP)
        if not self._quiet_seen:  # active from the first measurement: it began before
            self.stretch.problems.add("recording_started")
        self.mode = _ACTIVE
        self._below = 0
        self._last_above_hop = k
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
        active = active[~np.isnan(active)] if np.isnan(active).any() else active
        if active.size == 0:
            active = np.zeros(1)
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
        mean_uv = float(active.mean())
        mvc_percent = 100.0 * mean_uv / self.mvc_uv if self.mvc_uv else None
        confidence = None
        if kind == KIND_CRAMP and mvc_percent is not None:
            weak = mvc_percent < self.det.weak_mvc_percent
            confidence = CONFIDENCE_LOW if weak else CONFIDENCE_HIGH
        if self._history is not None:
            self._emitted.add((event_id, phase))
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
                mean_uv=mean_uv,
                floor_uv=stretch.floor_uv,
                area_uvs=float(np.clip(active - stretch.floor_uv, 0, None).sum() * self.hop_s),
                median_freq_hz=self._median_frequency(stretch.spectrum),
                quality=quality,
                envelope=self._trace(stretch, values),
                pipeline=ctx.pipeline,
                session_start=ctx.session_start,
                mvc_percent=mvc_percent,
                confidence=confidence,
            )
        )

    def _trace(self, stretch: _Stretch, values: np.ndarray) -> EnvelopeTrace:
        series = np.concatenate([stretch.pre, values])
        group = max(1, math.ceil(len(series) / self.det.trace_max_points))
        usable = len(series) // group * group
        if usable and group > 1:
            parts = series[:usable].reshape(-1, group)
            measured = ~np.isnan(parts)
            counts = measured.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                binned = np.where(measured, parts, 0.0).sum(axis=1) / counts  # NaN: none measured
        else:
            binned = series[:usable] if usable else series
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


def _with_problem(event: Event, problem: str) -> Event:
    problems = {p for p in event.quality.split(",") if p != "good"} | {problem}
    return replace(event, quality=",".join(sorted(problems)))
