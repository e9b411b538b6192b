"""Leg movements (LM) and periodic limb movements (PLM), scored by the WASM 2016 rules.

Ferri et al., "World Association of Sleep Medicine (WASM) 2016 standards for recording and scoring leg
movements in polysomnograms", Sleep Medicine 2016. What is implemented, on the pipeline's RMS envelope
(one value per hop) and its resting noise floor:

- **LM per channel.** Onset at the first hop at or above resting + 8 uV; the LM ends where a stretch
  of at least 0.5 s below resting + 2 uV begins (``method="wasm"``). ``method="adaptive"`` raises both
  thresholds with the floor on noisy channels: max(resting + 8 uV, 3 x resting) and
  max(resting + 2 uV, 1.5 x resting), the cramp detector's rule. An LM shorter than 0.5 s, or without
  a 0.5 s window whose median is at least resting + 2 uV (the standard's morphology rule for
  computerized detection), is not an LM. Envelope times are corrected for the RMS window the same
  way the cramp detector's are (onset at the end of the last quiet window, end at the start of the
  first quiet one).
- **Candidate LM (CLM).** A monolateral LM of 0.5-10 s. LMs of different channels that overlap or are
  less than 0.5 s apart (end to onset) are one bilateral LM, a CLM when it has at most 4 component
  LMs, each of them 0.5-10 s, and lasts at most 15 s. Longer LMs are LMs but not CLMs.
- **PLM series.** At least 4 consecutive CLMs with 10-90 s from each onset to the next. A CLM after
  a shorter or longer interval ends the series (and may start the next); an LM that is not a CLM
  ends it too. Every CLM of a series is a PLM.
- **Cramps.** A CLM with some part within 2 s before a cramp's onset to 10.25 s after its end (on
  any channel) is *cramp-related*: like the standard's respiratory-related CLMs it keeps its place
  in the series (periodicity is judged on all CLMs), but it is not counted as a PLM. The cramp itself
  is an LM longer than 10 s, so it ends any series on its leg.

What the standard needs and a calf sensor does not have: sleep staging (PLMS is PLM during sleep, the
PLMS index is per hour of sleep; PLM during wake is PLMW) and respiratory events. So these counts are
**PLM during the recording**, and the index is **per hour of good signal**, not the PLMS index. Stretches
without usable signal (bad quality, floor not yet learned) are not scored and end any series, since an
interval across them cannot be measured; on the combined legs a stretch counts as scored while at
least one channel is.

Streaming: ticks are scored in order, and every decision depends only on the envelope, the quality and
floor per tick and the cramps reported so far, so any block split gives the same result. Quiet ticks
take a vectorized fast path; only ticks with activity are walked hop by hop.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from dsp.config import PipelineConfig
from dsp.detector import Timebase
from dsp.events import KIND_CRAMP, Event

METHODS = ("wasm", "adaptive")


@dataclass(frozen=True)
class LimbMovementRules:
    """The scoring rules (defaults: WASM 2016); every number in seconds or uV."""

    method: Literal["wasm", "adaptive"] = "wasm"
    onset_margin_uv: float = 8.0
    offset_margin_uv: float = 2.0
    onset_factor: float = 3.0
    """adaptive only: onset at max(resting + onset_margin_uv, onset_factor x resting)."""
    offset_factor: float = 1.5
    """adaptive only: below max(resting + offset_margin_uv, offset_factor x resting)."""
    offset_hold_s: float = 0.5
    min_duration_s: float = 0.5
    morphology_window_s: float = 0.5
    max_candidate_s: float = 10.0
    bilateral_gap_s: float = 0.5
    bilateral_max_components: int = 4
    bilateral_max_s: float = 15.0
    imi_min_s: float = 10.0
    imi_max_s: float = 90.0
    min_series: int = 4
    cramp_before_s: float = 2.0
    cramp_after_s: float = 10.25

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(f"method is {self.method!r}; use one of {METHODS}")
        if not self.onset_margin_uv >= self.offset_margin_uv >= 0:
            problems.append("onset_margin_uv >= offset_margin_uv >= 0 is needed")
        if not self.onset_factor >= self.offset_factor >= 1:
            problems.append("onset_factor >= offset_factor >= 1 is needed")
        for name in ("offset_hold_s", "min_duration_s", "morphology_window_s", "bilateral_gap_s"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0")
        if not self.max_candidate_s >= self.min_duration_s:
            problems.append("max_candidate_s must be at least min_duration_s")
        if not self.bilateral_max_s >= self.max_candidate_s:
            problems.append("bilateral_max_s must be at least max_candidate_s")
        if self.bilateral_max_components < 2:
            problems.append("bilateral_max_components must be >= 2")
        if not 0 < self.imi_min_s <= self.imi_max_s:
            problems.append("0 < imi_min_s <= imi_max_s is needed")
        if self.min_series < 2:
            problems.append("min_series must be >= 2")
        if not (self.cramp_before_s >= 0 and self.cramp_after_s >= 0):
            problems.append("cramp_before_s and cramp_after_s must be >= 0")
        if problems:
            raise ValueError("limb movement rules: " + "; ".join(problems))

    def thresholds(self, resting_uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(onset, offset) thresholds for resting levels (NaN where there is none)."""
        on = resting_uv + self.onset_margin_uv
        off = resting_uv + self.offset_margin_uv
        if self.method == "adaptive":
            on = np.maximum(on, self.onset_factor * resting_uv)
            off = np.maximum(off, self.offset_factor * resting_uv)
        return on, off


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class LegMovement:
    """One LM: monolateral (one channel) or bilateral (several channels combined)."""

    start_s: float
    end_s: float
    channels: tuple[str, ...]
    components: int = 1
    candidate: bool = True
    """A CLM: 0.5-10 s (bilateral: each part 0.5-10 s, at most 4 parts, at most 15 s)."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class PlmSeries:
    """A run of at least 4 CLMs with 10-90 s between onsets; its CLMs are PLMs."""

    movements: tuple[LegMovement, ...]
    cramp_related: tuple[bool, ...]
    """Per movement: near or during a cramp (kept in the series, not counted as a PLM)."""
    closed: bool = True
    """False while the series may still grow."""

    @property
    def start_s(self) -> float:
        return self.movements[0].start_s

    @property
    def end_s(self) -> float:
        return self.movements[-1].end_s

    @property
    def plm(self) -> int:
        return sum(not related for related in self.cramp_related)

    @property
    def intervals_s(self) -> list[float]:
        onsets = [m.start_s for m in self.movements]
        return [b - a for a, b in itertools.pairwise(onsets)]

    def to_dict(self) -> dict[str, Any]:
        imis = self.intervals_s
        return {
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "movements": len(self.movements),
            "plm": self.plm,
            "median_interval_s": round(float(np.median(imis)), 2) if imis else None,
            "channels": sorted({c for m in self.movements for c in m.channels}),
            "closed": self.closed,
        }


@dataclass(frozen=True, slots=True)
class PlmFigures:
    """Counts for one channel or for the legs combined."""

    leg_movements: int = 0
    candidates: int = 0
    plm: int = 0
    """CLMs in PLM series, cramp-related ones left out."""
    cramp_related: int = 0
    plm_series: int = 0
    scored_s: float = 0.0
    """Time with usable signal (the index's hours)."""

    @property
    def plm_per_hour(self) -> float | None:
        """PLM per hour of scored signal (None before any)."""
        return self.plm / (self.scored_s / 3600.0) if self.scored_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["scored_s"] = round(self.scored_s, 1)
        index = self.plm_per_hour
        out["plm_per_hour"] = round(index, 2) if index is not None else None
        return out


@dataclass(frozen=True)
class LimbMovementSummary:
    """PLM during the recording, per channel and for the legs combined, with the combined series."""

    channels: dict[str, PlmFigures]
    combined: PlmFigures
    series: tuple[PlmSeries, ...]
    rules: LimbMovementRules

    def to_dict(self) -> dict[str, Any]:
        return {
            "scoring": f"WASM 2016 ({self.rules.method}); no sleep staging: PLM during the "
            "recording, per hour of good signal",
            "channels": {name: figures.to_dict() for name, figures in self.channels.items()},
            "combined": self.combined.to_dict(),
            "series": [s.to_dict() for s in self.series],
        }


# --------------------------------------------------------------------------------------------------
# Series grammar (per channel, and for the legs combined)


@dataclass
class _Break:
    """Scoring stopped at `start_s` (no signal): an interval across it cannot be measured."""

    start_s: float

    @property
    def end_s(self) -> float:
        return self.start_s


class _SeriesGrammar:
    """Final LMs (in onset order) -> CLMs -> PLM series. Each LM waits `settle_s` after its end
    before it is judged, so that a cramp that starts just after it has been reported."""

    def __init__(self, rules: LimbMovementRules, settle_s: float, cramps: _Cramps) -> None:
        self.rules, self.settle_s, self.cramps = rules, settle_s, cramps
        self._waiting: deque[LegMovement | _Break] = deque()
        self._run: list[LegMovement] = []
        self._run_related: list[bool] = []
        self.closed: list[PlmSeries] = []
        self.leg_movements = self.candidates = self.plm = self.related = 0
        self.judged: list[LegMovement] | None = None  # every LM, when asked to keep them

    def push(self, item: LegMovement | _Break) -> None:
        self._waiting.append(item)

    def advance(self, now_s: float) -> None:
        """Judge every waiting LM that ended at least `settle_s` before `now_s`."""
        waiting = self._waiting
        while waiting and waiting[0].end_s + self.settle_s <= now_s:
            item = waiting.popleft()
            if isinstance(item, _Break):
                self._close_run()
            else:
                self._judge(item)

    def finish(self) -> None:
        self.advance(math.inf)
        self._close_run()

    def series(self) -> list[PlmSeries]:
        out = list(self.closed)
        if len(self._run) >= self.rules.min_series:
            out.append(PlmSeries(tuple(self._run), tuple(self._run_related), closed=False))
        return out

    def figures(self, scored_s: float) -> PlmFigures:
        n_series = len(self.closed) + (len(self._run) >= self.rules.min_series)
        return PlmFigures(
            self.leg_movements, self.candidates, self.plm, self.related, n_series, scored_s
        )

    def _judge(self, lm: LegMovement) -> None:
        rules = self.rules
        self.leg_movements += 1
        if self.judged is not None:
            self.judged.append(lm)
        if not lm.candidate:
            self._close_run()
            return
        self.candidates += 1
        if self._run and not (
            rules.imi_min_s <= lm.start_s - self._run[-1].start_s <= rules.imi_max_s
        ):
            self._close_run()
        run = self._run
        run.append(lm)
        self._run_related.append(self.cramps.related(lm))
        if len(run) == rules.min_series:
            self._count(self._run_related)
        elif len(run) > rules.min_series:
            self._count(self._run_related[-1:])

    def _count(self, related: list[bool]) -> None:
        n_related = sum(related)
        self.related += n_related
        self.plm += len(related) - n_related

    def _close_run(self) -> None:
        if len(self._run) >= self.rules.min_series:
            self.closed.append(PlmSeries(tuple(self._run), tuple(self._run_related)))
        self._run, self._run_related = [], []


class _Cramps:
    """Cramp intervals as the detector reported them (an open cramp has no end yet)."""

    def __init__(self, before_s: float, after_s: float) -> None:
        self.before_s, self.after_s = before_s, after_s
        self._spans: dict[str, tuple[float, float]] = {}

    def note(self, event: Event) -> None:
        end = event.end_s if event.end_s is not None else math.inf
        self._spans[event.event_id] = (event.start_s, end)

    def related(self, lm: LegMovement) -> bool:
        return any(
            lm.start_s < end + self.after_s and lm.end_s > start - self.before_s
            for start, end in self._spans.values()
        )


# --------------------------------------------------------------------------------------------------
# LM detection on one channel


class _ChannelLM:
    """Hysteresis on one channel's envelope hops: the WASM onset / 0.5 s offset rule."""

    def __init__(self, name: str, rules: LimbMovementRules, tb: Timebase) -> None:
        self.name, self.rules, self.tb = name, rules, tb
        hop_s = tb.hop / tb.fs
        self.hold_hops = max(1, math.ceil(rules.offset_hold_s / hop_s - 1e-9))
        self.morph_hops = max(1, round(rules.morphology_window_s / hop_s))
        self.morph_need = self.morph_hops // 2 + 1  # median >= threshold (exact for odd windows)
        self.onset_hop = -1  # -1: no LM open
        self._below = 0
        self._morph_ok = False
        self._morph_recent: deque[bool] = deque(maxlen=self.morph_hops)
        self._morph_count = 0
        self.scored = False

    @property
    def open(self) -> bool:
        return self.onset_hop >= 0

    def frontier_s(self, next_hop: int) -> float:
        """The earliest onset any LM of this channel not yet closed can have."""
        return self.tb.window_end_s((self.onset_hop if self.open else next_hop) - 1)

    def walk(self, first_hop: int, values: np.ndarray, on: float, off: float) -> list[LegMovement]:
        """Follow one tick's hops; return the LMs that ended in it."""
        if self.onset_hop >= 0 and self._morph_ok and values.min() >= off:
            self._below = 0  # an LM goes on through the whole tick (a cramp, a walk)
            return []
        return self._walk(first_hop, values.tolist(), on, off)

    def _walk(
        self, first_hop: int, values: list[float], on: float, off: float
    ) -> list[LegMovement]:
        done: list[LegMovement] = []
        for i, v in enumerate(values):
            k = first_hop + i
            if self.onset_hop < 0:
                if v < on:
                    continue
                self.onset_hop = k
                self._below = 0
                self._morph_ok = False
                self._morph_recent.clear()
                self._morph_count = 0
            if v < off:
                self._below += 1
                if self._below >= self.hold_hops:
                    lm = self._close(self.tb.window_start_s(k - self._below + 1))
                    if lm is not None:
                        done.append(lm)
                    continue
            else:
                self._below = 0
            if not self._morph_ok:
                recent = self._morph_recent
                if len(recent) == self.morph_hops:
                    self._morph_count -= recent[0]
                above = v >= off
                recent.append(above)
                self._morph_count += above
                self._morph_ok = self._morph_count >= self.morph_need
        return done

    def interrupt(self) -> None:
        """Scoring stops (signal lost, recording over): an open LM is dropped, since its end (and
        so whether it is a CLM) cannot be known; the series it was in ends there."""
        self.onset_hop = -1

    def _close(self, end_s: float) -> LegMovement | None:
        start_s = self.tb.window_end_s(self.onset_hop - 1)
        self.onset_hop = -1
        rules = self.rules
        if end_s - start_s < rules.min_duration_s or not self._morph_ok:
            return None
        candidate = end_s - start_s <= rules.max_candidate_s
        return LegMovement(start_s, end_s, (self.name,), 1, candidate)


# --------------------------------------------------------------------------------------------------
# Bilateral combination


class _Combiner:
    """Groups LMs of different channels that overlap or are less than the gap apart."""

    def __init__(self, rules: LimbMovementRules, grammar: _SeriesGrammar) -> None:
        self.rules, self.grammar = rules, grammar
        self._pending: list[list[LegMovement] | _Break] = []  # in time order

    def add(self, lm: LegMovement) -> None:
        gap = self.rules.bilateral_gap_s
        joined: list[LegMovement] = [lm]
        keep: list[list[LegMovement] | _Break] = []
        for item in self._pending:
            if not isinstance(item, _Break) and any(
                m.channels != lm.channels
                and lm.start_s < m.end_s + gap
                and m.start_s < lm.end_s + gap
                for m in item
            ):
                joined.extend(item)
            else:
                keep.append(item)
        keep.append(joined)
        keep.sort(key=_item_start)
        self._pending = keep

    def add_break(self, at_s: float) -> None:
        self._pending.append(_Break(at_s))
        self._pending.sort(key=_item_start)

    def release(self, frontier_s: float) -> None:
        """Pass on every group no LM still to come can join."""
        gap = self.rules.bilateral_gap_s
        pending = self._pending
        n = 0
        for item in pending:
            end = item.start_s if isinstance(item, _Break) else max(m.end_s for m in item) + gap
            if end > frontier_s:
                break
            self.grammar.push(item if isinstance(item, _Break) else self._combine(item))
            n += 1
        del pending[:n]

    def _combine(self, parts: list[LegMovement]) -> LegMovement:
        if len(parts) == 1:
            return parts[0]
        rules = self.rules
        start = min(m.start_s for m in parts)
        end = max(m.end_s for m in parts)
        candidate = (
            all(m.candidate for m in parts)
            and len(parts) <= rules.bilateral_max_components
            and end - start <= rules.bilateral_max_s
        )
        channels = tuple(sorted({c for m in parts for c in m.channels}))
        return LegMovement(start, end, channels, len(parts), candidate)


def _item_start(item: list[LegMovement] | _Break) -> float:
    return item.start_s if isinstance(item, _Break) else min(m.start_s for m in item)


# --------------------------------------------------------------------------------------------------
# The scorer


@dataclass
class _Time:
    scored_hops: list[int] = field(default_factory=list)
    combined_hops: int = 0


class LimbMovementScorer:
    """Scores LMs and PLM series from the pipeline's envelope ticks; pure computation.

    Feed every tick in order with :meth:`process` (the cramps the detector reported in those ticks
    with :meth:`note_events`), call :meth:`finish` at the end, read :meth:`summary` at any time.
    """

    def __init__(self, config: PipelineConfig, rules: LimbMovementRules | None = None) -> None:
        self.rules = rules or LimbMovementRules()
        fs = config.fs
        hop = config.envelope.hop_samples(fs)
        window = config.envelope.window_samples(fs) if config.mode == "raw" else hop
        self.tb = Timebase(fs, hop, window)
        self.hop_s = hop / fs
        tick_s = config.envelope.hops_per_tick(fs) * self.hop_s
        det = config.detector
        # A cramp is reported once it has been tonic for cramp_min_s (or when it fades out after
        # off_hold_s): wait that long past each LM, plus the margin before a cramp, plus two ticks.
        settle_s = self.rules.cramp_before_s + det.cramp_min_s + det.off_hold_s + 2 * tick_s
        self.channels = config.channels
        self._cramps = _Cramps(self.rules.cramp_before_s, self.rules.cramp_after_s)
        self._legs = [_ChannelLM(name, self.rules, self.tb) for name in config.channels]
        self._grammars = [_SeriesGrammar(self.rules, settle_s, self._cramps) for _ in self._legs]
        self._combined = _SeriesGrammar(self.rules, settle_s, self._cramps)
        self._combiner = _Combiner(self.rules, self._combined)
        self._time = _Time(scored_hops=[0] * len(self._legs))
        self._any_scored = False
        self.next_hop = 0
        self.finished = False

    def keep_movements(self) -> None:
        """Keep every LM of the legs combined for :meth:`movements` (for research and
        comparisons; a night holds a few hundred). Call before the first tick."""
        self._combined.judged = []

    def movements(self) -> list[LegMovement]:
        """Every settled LM of the legs combined, in time order (after :meth:`keep_movements`)."""
        if self._combined.judged is None:
            raise RuntimeError("call keep_movements() before scoring to list the movements")
        return list(self._combined.judged)

    def note_events(self, events: list[Event]) -> None:
        """Take the detector's events (cramps are what matters here)."""
        for event in events:
            if event.kind == KIND_CRAMP:
                self._cramps.note(event)

    def process(
        self, first_hop: int, env: np.ndarray, scored: np.ndarray, resting_uv: np.ndarray
    ) -> None:
        """Score whole ticks: `env` (ticks, hops, channels) of envelope hops from `first_hop` on,
        `scored` (ticks, channels) where the signal is usable, `resting_uv` (ticks, channels) the
        resting level (the noise floor) per tick (NaN: not known yet)."""
        n_ticks, t_hops, _n_ch = env.shape
        if n_ticks == 0:
            return
        scored = np.asarray(scored, dtype=bool) & np.isfinite(resting_uv)
        on, off = self.rules.thresholds(np.where(scored, resting_uv, np.inf))
        busy = env.max(axis=1) >= on  # (ticks, channels): ticks with something over the onset
        for c, leg in enumerate(self._legs):
            column = scored[:, c]
            self._time.scored_hops[c] += int(column.sum()) * t_hops
            if not leg.open and not leg.scored and not column.any():
                continue
            if not leg.open and column.all() and leg.scored and not busy[:, c].any():
                continue  # quiet: nothing to follow
            self._walk_channel(c, first_hop, env[:, :, c], column, on[:, c], off[:, c], busy[:, c])
        any_scored = scored.any(axis=1)
        self._time.combined_hops += int(any_scored.sum()) * t_hops
        self._note_combined_breaks(first_hop, t_hops, any_scored)
        self.next_hop = first_hop + n_ticks * t_hops
        self._release(self.tb.window_end_s(self.next_hop - 1))

    def finish(self) -> None:
        """End of the recording: close open LMs (as interrupted) and every series."""
        if self.finished:
            return
        self.finished = True
        for leg in self._legs:
            leg.interrupt()
        self._combiner.release(math.inf)
        for grammar in (*self._grammars, self._combined):
            grammar.finish()

    def summary(self) -> LimbMovementSummary:
        """The figures so far (each LM is counted once it is settled, about 15 s after its end)."""
        channels = {
            leg.name: grammar.figures(hops * self.hop_s)
            for leg, grammar, hops in zip(
                self._legs, self._grammars, self._time.scored_hops, strict=True
            )
        }
        combined = self._combined.figures(self._time.combined_hops * self.hop_s)
        return LimbMovementSummary(channels, combined, tuple(self._combined.series()), self.rules)

    # ---- internals ------------------------------------------------------------------------------

    def _walk_channel(
        self,
        c: int,
        first_hop: int,
        env: np.ndarray,
        scored: np.ndarray,
        on: np.ndarray,
        off: np.ndarray,
        busy: np.ndarray,
    ) -> None:
        leg, grammar = self._legs[c], self._grammars[c]
        t_hops = env.shape[1]
        for t in range(env.shape[0]):
            tick_hop = first_hop + t * t_hops
            if not scored[t]:
                if leg.scored:
                    leg.interrupt()
                    grammar.push(_Break(self.tb.window_end_s(tick_hop - 1)))
                    leg.scored = False
                continue
            leg.scored = True
            if leg.open or busy[t]:
                for lm in leg.walk(tick_hop, env[t], float(on[t]), float(off[t])):
                    self._emit(c, lm)

    def _emit(self, c: int, lm: LegMovement) -> None:
        self._grammars[c].push(lm)
        self._combiner.add(lm)

    def _note_combined_breaks(self, first_hop: int, t_hops: int, any_scored: np.ndarray) -> None:
        if self._any_scored and any_scored.all():
            return
        for t, now in enumerate(any_scored.tolist()):
            if self._any_scored and not now:
                self._combiner.add_break(self.tb.window_end_s(first_hop + t * t_hops - 1))
            self._any_scored = now

    def _release(self, now_s: float) -> None:
        frontier = min(leg.frontier_s(self.next_hop) for leg in self._legs)
        self._combiner.release(frontier)
        for grammar in (*self._grammars, self._combined):
            grammar.advance(now_s)
