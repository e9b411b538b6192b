"""Heartbeats among a channel's spikes: a steady 40-180 bpm rhythm of like spikes, tracked beat by beat.

The QRS complexes of an ECG leaking onto a leg electrode are spikes (dsp/spikes.py) at the heart's
rhythm, all of one shape; fasciculations are spikes at random, of a few shapes. This tracker tells
them apart the way beat trackers do. Every pair of like spikes 0.33-1.5 s apart (40-180 bpm) starts
a candidate *train*; "like" is a peak within `amplitude_ratio` (1.5x) of the train's recent beats
and a waveform that correlates at least `shape_similarity` (0.8) with its last beat. A like spike
one RR after a train's last beat (within `tolerance`, 15 %) extends it, the RR following the median
of the last three intervals; once it has three beats in step, a train may bridge one beat that was
not seen. A train of `confirm_beats` (8) beats is the heart when its RR changes by at most
`steadiness` (12 %) from beat to beat and no like spike lies between its beats (a motor unit that
twitched eight times in a chance rhythm leaves its other twitches there): its spikes are heartbeats,
and it follows them back through the spikes still waiting for their label. The channel carries ECG
from then on while a beat was seen in the last `memory_s` (10 s).

Once the rhythm is known:

- **Missed beats** (a QRS hidden in a movement or a cramp): a spike 2-4 RR after the last beat
  still fits (the tolerance widens with each missed beat); a heart whose last eight beats mostly
  came after missed ones is dropped and found again.
- **The next beat** is the like spike closest to where it is expected, within its window: a twitch
  just before it does not take its place.
- **Heart rate changes**: gradual ones are followed interval by interval; a jump of more than the
  tolerance from one beat to the next starts a new train, which takes over once it has 8 beats and
  the old heart no longer explains them (its first beats become heartbeats then: nothing is lost,
  only the note may lag).
- **Ectopic beats**: a premature spike (0.4-0.85 RR after the last beat) followed by a compensatory
  pause (the next beat two RR after the last) is a ventricular ectopic beat; a premature like spike
  followed by a beat one RR later (the rhythm resets, as after an atrial ectopic beat) is taken as
  the new phase. Both are heartbeats.
- Anything else (a spike off the rhythm, or unlike the beats) is not a heartbeat.

A spike's label is final `settle_s` (15 s) after it, when no train can claim it any more. Spikes must
be given in time order; everything depends only on them, so any block split gives the same labels.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RhythmRules:
    """How a heart rhythm is recognised among spikes (seconds, ratios)."""

    min_bpm: float = 40.0
    max_bpm: float = 180.0
    tolerance: float = 0.15
    """How far (relative to RR) a beat may be from where the rhythm expects it."""
    amplitude_ratio: float = 1.5
    """A beat's peak within this factor of the train's recent beats (the lead sees one heart)."""
    shape_similarity: float = 0.8
    """A beat's waveform correlates at least this well with the train's last beat (one lead sees
    the same QRS every beat; the twitches of different motor units differ)."""
    shape_lag_s: float = 0.005
    confirm_beats: int = 8
    steadiness: float = 0.12
    """To be confirmed, a train's RR may change by at most this much (relative) from beat to beat."""
    max_missed: int = 3
    """A known rhythm bridges up to this many beats that were not seen."""
    memory_s: float = 10.0
    settle_s: float = 15.0
    max_trains: int = 32

    def __post_init__(self) -> None:
        if not 0 < self.min_bpm < self.max_bpm:
            raise ValueError("RhythmRules needs 0 < min_bpm < max_bpm")
        if not 0 < self.tolerance < 0.5:
            raise ValueError("RhythmRules.tolerance must be between 0 and 0.5")
        if self.amplitude_ratio < 1 or self.confirm_beats < 3 or self.max_missed < 0:
            raise ValueError(
                "RhythmRules: amplitude_ratio >= 1, confirm_beats >= 3, max_missed >= 0"
            )
        if self.settle_s < 60.0 / self.min_bpm * (1 + self.tolerance) * self.confirm_beats:
            raise ValueError("RhythmRules.settle_s must cover confirm_beats at the slowest rate")


@dataclass(slots=True)
class _Mark:
    """One spike while its label can still change."""

    t: float
    uv: float
    shape: np.ndarray | None = None
    counts: bool = True
    """Whether it counts as an "other" spike when it is not a heartbeat."""
    heartbeat: bool = False


@dataclass(slots=True)
class _Train:
    """A candidate rhythm (or, once confirmed, the heart)."""

    beats: list[_Mark]
    rr: float
    steps: list[int] = field(default_factory=list)
    """How many RR each beat came after the one before (2: a beat was not seen)."""
    rrs: deque[float] = field(default_factory=lambda: deque(maxlen=3))
    amps: deque[float] = field(default_factory=lambda: deque(maxlen=5))
    amp: float = 0.0
    """The median of `amps` (the train's reference peak)."""
    confirmed: bool = False
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    """Times of the heart's recent beats (once confirmed)."""
    in_step: bool = True
    """Its last beat came one RR after the one before (a missed beat is bridged only then)."""

    @property
    def last(self) -> _Mark:
        return self.beats[-1]

    def looks_like(self, mark: _Mark, rules: RhythmRules, max_lag: int) -> bool:
        """The spike's peak is like the train's recent beats and its waveform like the last."""
        ratio = rules.amplitude_ratio
        if not self.amp / ratio <= mark.uv <= self.amp * ratio:
            return False
        return _alike_shapes(self.last.shape, mark.shape, rules.shape_similarity, max_lag)


def _alike_shapes(a: np.ndarray | None, b: np.ndarray | None, limit: float, max_lag: int) -> bool:
    """Cross-correlation of two unit-norm waveforms at the best lag within +-max_lag."""
    if a is None or b is None:
        return True
    full = np.correlate(a, b, mode="full")
    middle = len(b) - 1
    return float(full[max(0, middle - max_lag) : middle + max_lag + 1].max()) >= limit


def _unit(shape: np.ndarray | None) -> np.ndarray | None:
    if shape is None:
        return None
    norm = math.sqrt(float(shape @ shape))
    return shape / norm if norm > 0 else np.zeros_like(shape)


class HeartRhythm:
    """One channel: :meth:`add` spikes in time order, :meth:`settle` to take the final labels."""

    _HEALTH_STEPS = 8
    """A heart whose last 8 beats came mostly after missed ones is not a heart any more."""

    def __init__(self, rules: RhythmRules | None = None, max_lag: int = 0) -> None:
        self.rules = rules or RhythmRules()
        self.max_lag = max_lag
        self.min_rr = 60.0 / self.rules.max_bpm
        self.max_rr = 60.0 / self.rules.min_bpm
        self._window: deque[_Mark] = deque()
        self._trains: list[_Train] = []
        self._heart: _Train | None = None
        # The heart's next beat while its window is open: (mark, k, misfit, window end)
        self._pending: tuple[_Mark, int, float, float] | None = None

    @property
    def idle(self) -> bool:
        """Nothing in hand: no spike waiting for its label and no rhythm."""
        return not self._window and self._heart is None

    def rate_bpm(self) -> float | None:
        """The heart rate of the rhythm, when there is one."""
        return 60.0 / self._heart.rr if self._heart is not None else None

    def present(self, now_s: float) -> bool:
        """Is there a heart rhythm on the channel (a beat within `memory_s`)?"""
        heart = self._heart
        return heart is not None and now_s - heart.last.t <= self.rules.memory_s

    def add(
        self, t_s: float, uv: float, shape: np.ndarray | None = None, counts: bool = True
    ) -> None:
        """Take the next spike (at `t_s`, peak `uv`, its waveform around its centre, if known);
        `counts`: whether :meth:`settle` counts it among the other spikes if it is not a
        heartbeat."""
        mark = _Mark(t_s, uv, _unit(shape), counts)
        self._commit_due(t_s)
        self._forget(t_s)
        heart = self._heart
        k_heart = 0
        if heart is not None:
            k_heart = self._fit(heart, mark, self.rules.max_missed + 1 if heart.in_step else 1)
            if k_heart:
                self._offer(heart, mark, k_heart)
            elif self._pending is None and self._reanchor(heart, mark):
                k_heart = 1
        for train in list(self._trains):
            k = self._fit(train, mark, self._reach(train))
            if k:
                self._extend(train, mark, k)
                if len(train.beats) >= self.rules.confirm_beats:
                    if heart is not None and self._heart_explains(heart, train):
                        self._trains.remove(train)  # the heart already follows these beats
                        continue
                    if self._steady(train) and self._alone(train):
                        self._confirm(train)
                        break
                    del train.beats[0], train.steps[0]  # not yet: judge on without the first
        if k_heart != 1:
            self._spawn(mark)
        self._window.append(mark)

    def settle(self, now_s: float) -> tuple[int, int]:
        """Labels that are final at `now_s` (math.inf: all): (heartbeats, other spikes that
        count)."""
        self._commit_due(now_s)
        beats = others = 0
        window = self._window
        limit = now_s - self.rules.settle_s
        while window and window[0].t < limit:
            mark = window.popleft()
            if mark.heartbeat:
                beats += 1
            elif mark.counts:
                others += 1
        if self._heart is not None and now_s - self._heart.last.t > self.rules.memory_s:
            self._heart = self._pending = None
        return beats, others

    # ---- internals ------------------------------------------------------------------------------

    def _forget(self, now_s: float) -> None:
        """Drop candidate trains that can no longer be extended."""
        slack = self.rules.tolerance * 1.25
        self._trains = [
            tr for tr in self._trains if now_s - tr.last.t <= (self._reach(tr) + slack) * tr.rr
        ]

    @staticmethod
    def _reach(train: _Train) -> int:
        """A candidate train may bridge one beat that was not seen (an ectopic beat's
        compensatory pause) once it has three beats in step, and only once."""
        bridged = 2 in train.steps[-len(train.beats) + 1 :] if len(train.beats) > 1 else False
        return 2 if train.in_step and len(train.beats) >= 3 and not bridged else 1

    def _fit(self, train: _Train, mark: _Mark, max_k: int) -> int:
        """How many RR after the train's last beat the spike comes (0: it does not fit)."""
        d = mark.t - train.last.t
        k = round(d / train.rr)
        if not 1 <= k <= max_k:
            return 0
        if abs(d - k * train.rr) > self._allowed(train, k):
            return 0
        return k if train.looks_like(mark, self.rules, self.max_lag) else 0

    def _allowed(self, train: _Train, k: int) -> float:
        return self.rules.tolerance * train.rr * (1 + 0.25 * (k - 1))

    def _offer(self, heart: _Train, mark: _Mark, k: int) -> None:
        """The heart's next beat is the spike that fits best within the expected window (a
        twitch may come first, just before the beat)."""
        allowed = self._allowed(heart, k)
        timing = (mark.t - heart.last.t - k * heart.rr) / allowed
        size = math.log(mark.uv / heart.amp) / math.log(max(self.rules.amplitude_ratio, 1.0 + 1e-9))
        misfit = timing * timing + size * size
        pending = self._pending
        if pending is None or misfit < pending[2]:
            end = heart.last.t + k * heart.rr + allowed
            self._pending = (mark, k, misfit, end)

    def _commit_due(self, now_s: float) -> None:
        pending, heart = self._pending, self._heart
        if pending is None or now_s <= pending[3]:
            return
        self._pending = None
        if heart is None:
            return
        mark, k = pending[0], pending[1]
        if k == 2:
            self._ectopic_before(heart, mark)
        self._extend(heart, mark, k)
        recent = heart.steps[-self._HEALTH_STEPS :]
        if len(recent) == self._HEALTH_STEPS and 2 * recent.count(1) < len(recent):
            self._heart = None  # it no longer beats in step: find the rhythm again

    def _extend(self, train: _Train, mark: _Mark, k: int) -> None:
        train.in_step = k == 1
        train.steps.append(k)
        if train.confirmed:
            del train.steps[: -self._HEALTH_STEPS]
        if k == 1:
            train.rrs.append(mark.t - train.last.t)
            train.rr = statistics.median(train.rrs)
        train.amps.append(mark.uv)
        train.amp = statistics.median(train.amps)
        if train.confirmed:
            mark.heartbeat = True
            train.beats[-1] = mark  # the heart keeps only its last beat
            train.recent.append(mark.t)
        else:
            train.beats.append(mark)

    def _steady(self, train: _Train) -> bool:
        """Sinus rhythm changes little from one beat to the next; twitches that happened to
        fall in line do not."""
        times = [mark.t for mark in train.beats]
        rrs = [
            b - a if k == 1 else None
            for a, b, k in zip(times[:-1], times[1:], train.steps, strict=True)
        ]
        whole = [rr for rr in rrs if rr is not None]
        if len(whole) < self.rules.confirm_beats - 2:
            return False
        limit = self.rules.steadiness * statistics.median(whole)
        return all(
            abs(b - a) <= limit
            for a, b in itertools.pairwise(rrs)
            if a is not None and b is not None
        )

    def _alone(self, train: _Train) -> bool:
        """A heart leaves no spike like its beats between them (one, an atrial ectopic beat,
        at most); a motor unit twitching at random that happened to fall in line leaves many."""
        first, last = train.beats[0].t, train.last.t
        members = {id(mark) for mark in train.beats}
        alike = sum(
            1
            for mark in self._window
            if first < mark.t < last
            and id(mark) not in members
            and train.looks_like(mark, self.rules, self.max_lag)
        )
        return alike <= 1

    def _confirm(self, train: _Train) -> None:
        train.confirmed = True
        train.recent.extend(mark.t for mark in train.beats)
        for mark in train.beats:
            mark.heartbeat = True
        self._backfill(train)
        train.beats = [train.last]
        self._heart = train
        self._pending = None
        self._trains = []

    def _heart_explains(self, heart: _Train, train: _Train) -> bool:
        """Over the new train's span, the heart took at least as many beats (a train of every
        other beat, or twitches that fell in line, do not replace a heart that is beating)."""
        first, last = train.beats[0].t, train.last.t
        taken = sum(1 for t in heart.recent if first <= t <= last)
        pending = self._pending
        if pending is not None and first <= pending[0].t <= last:
            taken += 1
        return taken >= len(train.beats)

    def _backfill(self, train: _Train) -> None:
        """The heart was beating before its train was confirmed: follow it back through the
        spikes still waiting for their label (a beat one RR earlier; two RR earlier with an
        ectopic beat between; or an atrial ectopic beat that reset the rhythm), as far as it
        goes."""
        rr, tol = train.rr, self.rules.tolerance
        earlier = [m for m in self._window if m.t < train.beats[0].t and not m.heartbeat]
        t_ref = train.beats[0].t

        def like(mark: _Mark) -> bool:
            return train.looks_like(mark, self.rules, self.max_lag)

        def near(target: float, allowed: float) -> _Mark | None:
            found = [m for m in earlier if abs(m.t - target) <= allowed and like(m)]
            return min(found, key=lambda m: abs(m.t - target)) if found else None

        while True:
            beat = near(t_ref - rr, tol * rr)
            if beat is None:
                beat = near(t_ref - 2 * rr, tol * rr * 1.25)
                if beat is not None:  # a ventricular ectopic beat between?
                    between = [m for m in earlier if beat.t + 0.4 * rr <= m.t <= beat.t + 0.85 * rr]
                    if between:
                        between[0].heartbeat = True
            if beat is None:  # an atrial ectopic beat that reset the rhythm?
                short = [m for m in earlier if t_ref - 0.85 * rr <= m.t <= t_ref - 0.4 * rr]
                short = [m for m in short if like(m) and near(m.t - rr, tol * rr) is not None]
                beat = short[-1] if short else None
            if beat is None:
                return
            beat.heartbeat = True
            earlier = [m for m in earlier if m.t < beat.t]
            t_ref = beat.t

    def _spawn(self, mark: _Mark) -> None:
        """New candidate trains: this spike with each earlier like one 0.33-1.5 s before it."""
        # (earlier, mark) pairs that already are the last two beats of an extended train
        extended = {id(tr.beats[-2]) for tr in self._trains if tr.last is mark}
        for earlier in reversed(self._window):
            d = mark.t - earlier.t
            if d > self.max_rr:
                break
            if d < self.min_rr or id(earlier) in extended:
                continue
            ratio = self.rules.amplitude_ratio
            if not earlier.uv / ratio <= mark.uv <= earlier.uv * ratio:
                continue
            if not _alike_shapes(
                earlier.shape, mark.shape, self.rules.shape_similarity, self.max_lag
            ):
                continue
            train = _Train(beats=[earlier, mark], rr=d, steps=[1])
            train.rrs.append(d)
            train.amps.extend((earlier.uv, mark.uv))
            train.amp = statistics.median(train.amps)
            self._trains.append(train)
        if len(self._trains) > self.rules.max_trains:
            del self._trains[: len(self._trains) - self.rules.max_trains]

    def _ectopic_before(self, heart: _Train, mark: _Mark) -> None:
        """A beat two RR after the last: a premature spike in between, followed by this
        compensatory pause, was a ventricular ectopic beat."""
        last, rr = heart.last.t, heart.rr
        for earlier in reversed(self._window):
            if earlier.t <= last:
                return
            if last + 0.4 * rr <= earlier.t <= last + (1 - self.rules.tolerance) * rr:
                earlier.heartbeat = True
                return

    def _reanchor(self, heart: _Train, mark: _Mark) -> bool:
        """A spike one RR after a premature like spike (0.4-0.85 RR after the last beat): an
        ectopic beat that reset the rhythm, which goes on from it."""
        last, rr = heart.last.t, heart.rr
        tolerance = self.rules.tolerance * rr
        for earlier in reversed(self._window):
            if earlier.t <= last + 0.4 * rr:
                return False
            d = mark.t - earlier.t
            if d > rr + tolerance:
                return False
            if earlier.t > last + rr - tolerance:
                continue
            if (
                abs(d - rr) <= tolerance
                and heart.looks_like(mark, self.rules, self.max_lag)
                and heart.looks_like(earlier, self.rules, self.max_lag)
            ):
                earlier.heartbeat = True
                heart.beats[-1] = earlier
                self._extend(heart, mark, 1)
                return True
        return False
