"""Missing samples for tests: scattered dropouts and bursts, and the comparison of what a signal
with missing samples gives against what the complete signal gives.

The promise being tested (DESIGN.md, "Missing samples and time"): missing samples never make or hide
an event. With samples missing, every cramp or movement must have a counterpart of the same kind in
the complete signal, and every cramp of the complete signal must be found again (onset within 1 s)
or be overlapped by a stretch reported as signal lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dsp.config import PipelineConfig
from dsp.events import STATE_CRAMP, STATE_MOVEMENT, STATE_SIGNAL_LOST, Event, StateChange
from dsp.pipeline import Pipeline
from hardware.synthetic_emg import NightPlan, scenario

ONSET_TOLERANCE_S = 1.0
BORDERLINE_S = 0.2
"""A movement shorter than the movement minimum plus this is borderline: see `compare`."""
BORDERLINE_LEVEL = 0.8
"""A burst whose complete envelope reached this share of the on threshold is borderline."""
SHORT_GAP_S = 2.0
"""A loss of signal this long or shorter inside an event must not split it."""


def scattered_dropouts(
    n: int, channels: int, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Single samples missing at random, independently per channel (bus errors): a boolean mask."""
    return rng.random((n, channels)) < fraction


def burst_dropouts(
    n: int,
    channels: int,
    fs: float,
    fraction: float,
    rng: np.random.Generator,
    *,
    shortest_s: float = 0.01,
    longest_s: float = 2.0,
    whole_frames: bool = True,
) -> np.ndarray:
    """Runs of missing samples, log-uniform from `shortest_s` to `longest_s`, at random places,
    until about `fraction` of the samples are missing. Whole frames (every channel at once: the
    host was late) or one channel at a time (a dropped block of one input)."""
    mask = np.zeros((n, channels), dtype=bool)
    target = fraction * n * channels
    missing = 0
    while missing < target:
        length = round(np.exp(rng.uniform(np.log(shortest_s), np.log(longest_s))) * fs)
        start = int(rng.integers(0, max(1, n - length)))
        columns = slice(None) if whole_frames else int(rng.integers(0, channels))
        before = int(mask[start : start + length, columns].sum())
        mask[start : start + length, columns] = True
        missing += int(mask[start : start + length, columns].sum()) - before
    return mask


def host_late_dropouts(n: int, channels: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Whole frames missing the way a busy host loses them: runs of 1-300 ms lost between runs of
    1-500 ms kept (both log-uniform), about 40 % of the frames in all."""
    mask = np.zeros((n, channels), dtype=bool)
    at = 0
    while at < n:
        at += round(np.exp(rng.uniform(np.log(0.001), np.log(0.5))) * fs)
        length = max(1, round(np.exp(rng.uniform(np.log(0.001), np.log(0.3))) * fs))
        mask[at : at + length] = True
        at += length
    return mask


def with_missing(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of `x` with the masked samples missing (NaN)."""
    out = np.array(x, dtype=np.float64, copy=True)
    out[mask] = np.nan
    return out


DROPOUT_PATTERNS = (
    "scattered_1",
    "scattered_5",
    "scattered_10",
    "scattered_30",
    "bursts",
    "both",
    "host_late",
)


def dropout_mask(pattern: str, n: int, channels: int, fs: float, seed: int) -> np.ndarray:
    """One of DROPOUT_PATTERNS: scattered dropouts of 1, 5, 10 or 30 % of the samples, bursts of
    10 ms to 2 s covering 5 % of the time (whole frames and single channels), both together
    (5 % scattered and the bursts), or a busy host's runs of lost frames (about 40 %)."""
    rng = np.random.default_rng(seed)
    if pattern == "host_late":
        return host_late_dropouts(n, channels, fs, rng)
    if pattern.startswith("scattered_"):
        return scattered_dropouts(n, channels, int(pattern.split("_")[1]) / 100, rng)
    bursts = burst_dropouts(n, channels, fs, 0.04, rng) | burst_dropouts(
        n, channels, fs, 0.01, rng, whole_frames=False
    )
    if pattern == "bursts":
        return bursts
    if pattern == "both":
        return bursts | scattered_dropouts(n, channels, 0.05, rng)
    raise ValueError(f"unknown dropout pattern {pattern!r}; use one of {DROPOUT_PATTERNS}")


@dataclass
class Run:
    """What the pipeline reported for one signal."""

    events: list[Event]
    states: list[StateChange]
    duration_s: float
    config: PipelineConfig
    envelope: np.ndarray  # hops x channels, NaN where not measured

    def peak_uv(self, channel: str, start_s: float, end_s: float) -> float:
        """The highest measured envelope hop ending between start_s and end_s."""
        hop_s = self.config.envelope.hop_samples(self.config.fs) / self.config.fs
        first, last = int(start_s / hop_s), int(np.ceil(end_s / hop_s))
        values = self.envelope[first:last, self.config.channels.index(channel)]
        return float(np.nanmax(values)) if np.isfinite(values).any() else 0.0

    def on_threshold_uv(self, floor_uv: float) -> float:
        det = self.config.detector
        return max(det.on_factor * floor_uv, floor_uv + det.on_margin_uv)

    def ended(self, kind: str | None = None) -> list[Event]:
        return [e for e in self.events if e.phase == "ended" and kind in (None, e.kind)]

    def lost(self, channel: str) -> list[tuple[float, float]]:
        """The stretches reported as signal lost on a channel."""
        return self._in_states(channel, (STATE_SIGNAL_LOST,))

    def active(self, channel: str) -> list[tuple[float, float]]:
        """The stretches in which the channel was active (also those too short to report)."""
        return self._in_states(channel, (STATE_MOVEMENT, STATE_CRAMP))

    def _in_states(self, channel: str, states: tuple[str, ...]) -> list[tuple[float, float]]:
        intervals, since = [], None
        for change in self.states:
            if change.channel != channel:
                continue
            if change.state in states and since is None:
                since = change.at_s
            elif change.state not in states and since is not None:
                intervals.append((since, change.at_s))
                since = None
        if since is not None:
            intervals.append((since, self.duration_s))
        return intervals


def run_pipeline(config: PipelineConfig, x: np.ndarray, block: int = 50_000) -> Run:
    """The pipeline over `x` in blocks; events and state changes."""
    pipeline = Pipeline(config, source_id="dropouts")
    events: list[Event] = []
    states: list[StateChange] = []
    envelope = []
    for i in range(0, len(x), block):
        out = pipeline.process(x[i : i + block])
        events += out.events
        states += out.state_changes
        envelope.append(out.envelope)
    out = pipeline.finish()
    return Run(
        events + out.events,
        states + out.state_changes,
        len(x) / config.fs,
        config,
        np.concatenate(envelope),
    )


def _overlaps(a0: float, a1: float, spans: Iterable[tuple[float, float]]) -> bool:
    return any(min(a1, b1) > max(a0, b0) for b0, b1 in spans)


@dataclass
class Comparison:
    """Events of the signal with missing samples against those of the complete signal."""

    invented: list[Event] = field(default_factory=list)
    split: list[Event] = field(default_factory=list)
    missed_cramps: list[Event] = field(default_factory=list)
    borderline_movements: list[Event] = field(default_factory=list)
    found_cramps: int = 0
    cramps_under_signal_lost: int = 0
    borderline_cramps: int = 0

    def invented_of(self, kind: str) -> list[Event]:
        return [e for e in self.invented if e.kind == kind]

    def describe(self) -> str:
        lines = [f"{e.kind} {e.channel} {e.start_s:.2f}-{e.end_s:.2f} s" for e in self.invented]
        lines += [f"split {e.kind} {e.channel} {e.start_s:.2f}-{e.end_s:.2f} s" for e in self.split]
        lines += [
            f"missed cramp {e.channel} {e.start_s:.2f}-{e.end_s:.2f}" for e in self.missed_cramps
        ]
        return "; ".join(lines) or "as complete"


def compare(
    complete: Run, gapped: Run, movement_min_s: float = 0.5, cramp_min_s: float = 10.0
) -> Comparison:
    """Invented events and missed cramps of `gapped` against `complete`.

    An event of the gapped signal is invented unless an event of the same kind on the same channel
    overlaps it in the complete signal, and one event of the complete signal may not come out as
    several (split) unless more than SHORT_GAP_S of signal lost lies between the parts. One exception: the part of a cramp seen after the signal
    came back (or before it was lost) may be too short to be called a cramp again; a movement that
    touches a signal-lost stretch and overlaps a cramp of the complete signal is that part, not an
    invented movement. And a burst just at the movement minimum (0.5 s) or just at the on threshold
    may come out just above it from fewer samples and just below it from all (the RMS of fewer
    samples is a noisier estimate): a movement shorter than the minimum plus BORDERLINE_S over
    activity that the complete signal found too short to report, or over a burst whose complete
    envelope reached BORDERLINE_LEVEL of the on threshold, is that burst, not an invented
    movement; such movements are listed apart (`borderline_movements`). A cramp of the complete signal is missed unless the
    gapped signal has a cramp on its channel with an onset within ONSET_TOLERANCE_S, or signal lost
    overlaps it, or it is borderline: it lasted less than the cramp minimum plus SHORT_GAP_S (a short
    gap at its end takes up to that much from what is known of it) and the gapped signal has a
    movement over it. Borderline cramps are counted apart.
    """
    result = Comparison()
    for event in gapped.ended():
        assert event.end_s is not None
        same = [
            (e.start_s, e.end_s)
            for e in complete.ended(event.kind)
            if e.channel == event.channel and e.end_s is not None
        ]
        if _overlaps(event.start_s, event.end_s, same):
            continue
        if event.kind == "movement":
            short = event.duration_s < movement_min_s + BORDERLINE_S and _overlaps(
                event.start_s, event.end_s, complete.active(event.channel)
            )
            peak = complete.peak_uv(event.channel, event.start_s, event.end_s)
            near = peak >= BORDERLINE_LEVEL * complete.on_threshold_uv(event.floor_uv)
            if short or near:
                result.borderline_movements.append(event)
                continue
            cramps = [
                (e.start_s, e.end_s)
                for e in complete.ended("cramp")
                if e.channel == event.channel and e.end_s is not None
            ]
            lost = gapped.lost(event.channel)
            near_lost = _overlaps(event.start_s - 0.5, event.end_s + 0.5, lost)
            if near_lost and _overlaps(event.start_s, event.end_s, cramps):
                continue
        result.invented.append(event)
    for cramp in complete.ended("cramp"):
        assert cramp.end_s is not None
        onsets = [e.start_s for e in gapped.ended("cramp") if e.channel == cramp.channel]
        if any(abs(onset - cramp.start_s) <= ONSET_TOLERANCE_S for onset in onsets):
            result.found_cramps += 1
        elif _overlaps(cramp.start_s, cramp.end_s, gapped.lost(cramp.channel)):
            result.cramps_under_signal_lost += 1
        elif cramp.duration_s < cramp_min_s + SHORT_GAP_S and _overlaps(
            cramp.start_s,
            cramp.end_s,
            [(e.start_s, e.end_s) for e in gapped.ended("movement") if e.channel == cramp.channel],
        ):
            result.borderline_cramps += 1
        else:
            result.missed_cramps.append(cramp)
    result.split = _splits(complete, gapped)
    return result


def _splits(complete: Run, gapped: Run) -> list[Event]:
    """Gapped events that are a second part of one complete event with no signal lost between."""
    split = []
    for whole in complete.ended():
        assert whole.end_s is not None
        parts = sorted(
            (e for e in gapped.ended(whole.kind) if e.channel == whole.channel),
            key=lambda e: e.start_s,
        )
        parts = [e for e in parts if _overlaps(e.start_s, e.end_s, [(whole.start_s, whole.end_s)])]
        lost = [(a, b) for a, b in gapped.lost(whole.channel) if b - a > SHORT_GAP_S]
        for before, after in itertools.pairwise(parts):
            assert before.end_s is not None
            if not _overlaps(before.end_s - 0.5, after.start_s + 0.5, lost):
                split.append(after)
    return split


def short_night(seed: int, *, fs: float = 1000.0, duration_s: float = 300.0) -> NightPlan:
    """A few minutes of night with a bit of everything, drawn from `seed`: a cramp (15-90 s, one
    or both calves), a walk, a short periodic limb movement series and turning over, in random
    order with quiet between; the first minute is quiet rest."""
    rng = np.random.default_rng(seed)
    channels = ("left_calf", "right_calf")
    cramp_s = float(rng.uniform(15.0, 90.0))
    blocks: list[tuple[float, list[tuple]]] = [
        (cramp_s, [("cramp", 0.0, cramp_s, *_one_or_both(rng, channels))]),
        (float(rng.uniform(20.0, 40.0)), [("walking", 0.0, None)]),
        (4.0, [("movement", 0.0, 4.0, *_one_or_both(rng, channels))]),
    ]
    plm, t = [], 0.0
    leg = _one_or_both(rng, channels)
    for _ in range(4):
        length = float(rng.uniform(0.5, 5.0))
        plm.append(("movement", t, t + length, *leg))
        t += length + float(rng.uniform(5.0, 20.0))
    blocks.append((t, plm))
    events, cursor = [], 60.0
    for index in rng.permutation(len(blocks)):
        length, parts = blocks[int(index)]
        start = cursor + float(rng.uniform(8.0, 15.0))
        for part in parts:
            end = start + length if part[2] is None else start + part[2]
            events.append((part[0], round(start + part[1], 3), round(end, 3), *part[3:]))
        cursor = start + length
    duration_s = max(duration_s, cursor + 20.0)
    return scenario(seed, fs=fs, duration_s=duration_s, events=events, channels=channels)


def _one_or_both(rng: np.random.Generator, channels: tuple[str, ...]) -> tuple[str | None, ...]:
    return () if rng.random() < 0.3 else (channels[int(rng.integers(0, len(channels)))],)
