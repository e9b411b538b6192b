"""Brief isolated spikes on a raw EMG channel: found, and kept out of the envelope.

The heart's QRS complex reaching a calf electrode and the twitch of a single motor unit (a
fasciculation) are spikes of some 15-150 ms standing well above the EMG around them. Neither is a
contraction of the muscle, yet in a 250 ms RMS window each lifts the envelope like one, and a train
of them (70 beats a minute, twitches every second or two) keeps a stretch "active" for minutes.
This stage finds such spikes on the band-passed signal and marks their samples, and the envelope
is the RMS of the other samples of each window: the EMG between the spikes. Blanking takes samples
out, never energy out of the samples that stay, so sustained activity (a cramp, a movement, a walk)
keeps its level; only a burst brief and isolated enough to be a spike is taken out.

The rule, on the mean power of short segments (10 ms): a segment is a spike's peak when it is the
highest within +-`guard_s` (80 ms) and at least `prominence` (8) times the median power of the
`flank_s` (150 ms) beyond the guard on *each* side, so the spike stands alone (the median, so that
a neighbouring spike, a heartbeat next to a twitch, does not hide it); a cramp or a movement lasts
far longer than the guard and is never isolated. The blank covers the segments around the
peak, within the guard, whose power is over `extent_ratio` (2) x the flanks' power, and one
segment more on each side. What the spikes are (heartbeats in a rhythm, twitches) is for
:mod:`dsp.ecg` and :mod:`dsp.twitches`; blanking does not depend on it.

Deciding needs the signal up to guard + flank after a peak, and a blank reaches a guard before it,
so the stage holds back 2 x guard + flank (about 0.31 s) plus the segment in progress: it releases
the band-passed signal (and any streams carried along with it) that much later, with the blank
marks. Segment powers are summed segment by segment and the flanks of each candidate judged row by
row, so the output is bit-identical over any block split.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import minimum_filter1d

from dsp.config import SpikeConfig


@dataclass(frozen=True, slots=True)
class Spike:
    """One brief isolated spike on one channel; sample indices count from the start of the stream."""

    channel: int
    at: int
    """The middle of its peak segment."""
    start: int
    """First blanked sample."""
    end: int
    """One past the last blanked sample."""
    peak_uv: float
    """RMS of its peak segment (uV)."""


@dataclass
class Released:
    """Samples the stage lets go of, in order from sample `start`, and the spikes it found."""

    start: int
    filtered: np.ndarray
    carried: tuple[np.ndarray, ...]
    measured: np.ndarray | None
    """Which released samples are measured (None: all)."""
    blanked: np.ndarray | None
    """Which released samples belong to a spike (None: none)."""
    spikes: list[Spike] = field(default_factory=list)
    """Spikes decided in this call, in time order (they may lie a guard past the released part)."""


class SpikeBlanker:
    """Feed band-passed blocks (n, channels) to :meth:`process`, then :meth:`flush` at the end.

    `carried` streams (same shape) are delayed with the signal, so they stay aligned with it.
    """

    def __init__(
        self, fs: float, n_channels: int, config: SpikeConfig, *, n_carried: int = 0
    ) -> None:
        self.seg = max(1, round(config.segment_s * fs))
        seg_s = self.seg / fs
        self.guard = max(1, round(config.guard_s / seg_s))
        self.flank = max(1, round(config.flank_s / seg_s))
        self.prominence = config.prominence
        self.extent_ratio = config.extent_ratio
        self.min_power = config.min_peak_uv**2
        self.n_channels = n_channels
        self.n_carried = n_carried
        self.max_delay_samples = (2 * self.guard + self.flank + 1) * self.seg
        reach = self.guard + self.flank
        # Mean power per segment from segment `_first` on; before the stream: not measured (NaN).
        self._power = np.full((n_channels, reach), np.nan)
        self._first = -reach
        self._segments = 0  # complete segments measured
        self._decided = 0  # every peak before this segment is decided
        self._released = 0  # samples let go of (a whole number of segments until the end)
        self._blank = np.zeros((n_channels, 0), dtype=bool)  # segments from the released one on
        self._held = np.empty((0, n_channels))
        self._held_carried = tuple(np.empty((0, n_channels)) for _ in range(n_carried))
        self._held_measured: np.ndarray | None = None
        self._consumed = 0
        self.finished = False

    @property
    def released(self) -> int:
        """Samples released so far."""
        return self._released

    def process(
        self, filtered: np.ndarray, *carried: np.ndarray, measured: np.ndarray | None = None
    ) -> Released:
        """Take a block; return what can be released (at least a segment's worth is held back)."""
        if self.finished:
            raise RuntimeError("the spike stage has been flushed")
        if len(carried) != self.n_carried:
            raise ValueError(f"expected {self.n_carried} carried streams, got {len(carried)}")
        n = len(filtered)
        self._hold(filtered, carried, measured)
        self._consumed += n
        complete = self._consumed // self.seg
        if complete > self._segments:
            self._measure(complete)
        spikes = self._decide(self._segments - self.guard - self.flank)
        return self._release(max(0, self._decided - self.guard) * self.seg, spikes)

    def flush(self) -> Released:
        """End of the stream: decide the rest (the missing flank past the end is left out)."""
        if self.finished:
            raise RuntimeError("the spike stage has been flushed")
        self.finished = True
        if self._consumed > self._segments * self.seg:
            self._measure(self._segments + 1, partial=True)
        reach = self.guard + self.flank
        self._power = np.concatenate(
            [self._power, np.full((self.n_channels, reach), np.nan)], axis=1
        )
        self._blank = np.concatenate(
            [self._blank, np.zeros((self.n_channels, reach), dtype=bool)], axis=1
        )
        spikes = self._decide(self._segments)
        return self._release(self._consumed, spikes)

    # ---- internals ------------------------------------------------------------------------------

    def _hold(
        self, filtered: np.ndarray, carried: tuple[np.ndarray, ...], measured: np.ndarray | None
    ) -> None:
        n = len(filtered)
        if measured is not None or self._held_measured is not None:
            before = self._held_measured
            if before is None:
                before = np.ones((len(self._held), self.n_channels), dtype=bool)
            now = measured if measured is not None else np.ones((n, self.n_channels), dtype=bool)
            self._held_measured = np.concatenate([before, now])
        self._held = np.concatenate([self._held, filtered]) if len(self._held) else filtered
        self._held_carried = tuple(
            np.concatenate([held, new]) if len(held) else new
            for held, new in zip(self._held_carried, carried, strict=True)
        )

    def _measure(self, complete: int, partial: bool = False) -> None:
        """Mean power of segments `_segments`..`complete` - 1 (of measured samples; a segment
        with less than half of them measured is NaN)."""
        a = self._segments * self.seg - self._released
        b = min(complete * self.seg, self._consumed) - self._released
        k = complete - self._segments
        width = self.seg
        squares = np.empty((self.n_channels, b - a))
        np.square(self._held[a:b].T, out=squares)
        if partial:
            width = b - a
        squares = squares.reshape(self.n_channels, k, width)
        if self._held_measured is None:
            power = squares.sum(axis=-1) / width
        else:
            ok = np.ascontiguousarray(self._held_measured[a:b].T).reshape(self.n_channels, k, width)
            squares[~ok] = 0.0
            count = ok.sum(axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                power = np.where(2 * count >= width, squares.sum(axis=-1) / count, np.nan)
        self._power = np.concatenate([self._power, power], axis=1)
        self._blank = np.concatenate(
            [self._blank, np.zeros((self.n_channels, k), dtype=bool)], axis=1
        )
        self._segments = complete

    def _decide(self, upto: int) -> list[Spike]:
        """Decide every peak in segments `_decided`..`upto` - 1; mark their blanks."""
        if upto <= self._decided:
            return []
        g, f = self.guard, self.flank
        power = self._power
        cols = np.arange(self._decided - self._first, upto - self._first)
        chans, at = self._candidates(power, cols)
        spikes: list[Spike] = []
        if len(at):
            spikes = self._judge(power, chans, at)
        self._decided = upto
        drop = self._decided - g - f - self._first
        self._power = power[:, drop:]
        self._first += drop
        return spikes

    def _candidates(self, power: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A quick pre-selection that every true peak passes: each flank's minimum is at most
        its median, and a peak is at least as high as its neighbours."""
        g, f = self.guard, self.flank
        finite = np.isfinite(power)
        # lowest of segments i .. i + f - 1 (not measured: no bound)
        lowest = minimum_filter1d(
            np.where(finite, power, np.inf), f, axis=1, origin=-(f // 2), mode="nearest"
        )
        level = np.maximum(lowest[:, cols - g - f], lowest[:, cols + g + 1])
        centre = power[:, cols]
        lows = np.where(finite, power, -np.inf)
        keep = (
            (centre >= self.min_power)
            & (centre >= self.prominence * level)
            & (centre >= lows[:, cols - 1])
            & (centre >= lows[:, cols + 1])
        )
        chans, idx = np.nonzero(keep)
        return chans, cols[idx]

    def _judge(self, power: np.ndarray, chans: np.ndarray, at: np.ndarray) -> list[Spike]:
        """The exact rule on each candidate (row by row, the same whatever the block split)."""
        g, f = self.guard, self.flank
        rows = power[chans[:, None], at[:, None] + np.arange(-g - f, g + f + 1)]
        finite = np.isfinite(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a flank past either end of the stream
            before = np.nanmedian(rows[:, :f], axis=1)
            after = np.nanmedian(rows[:, f + 2 * g + 1 :], axis=1)
        level = np.fmax(before, after)
        lows = np.where(finite, rows, -np.inf)
        centre = rows[:, f + g]
        spike = (
            (centre > lows[:, f : f + g].max(axis=1))
            & (centre >= lows[:, f + g + 1 : f + 2 * g + 1].max(axis=1))
            & (centre >= self.prominence * level)
            & (centre >= self.min_power)
        )
        if not spike.any():
            return []
        chans, at, rows, level = chans[spike], at[spike], rows[spike], level[spike]
        over = rows[:, f : f + 2 * g + 1] > self.extent_ratio * level[:, None]
        left = over[:, g - 1 :: -1] if g > 0 else over[:, :0]
        right = over[:, g + 1 :]
        left_n = np.where(left.all(axis=1), g, np.argmin(left, axis=1))
        right_n = np.where(right.all(axis=1), g, np.argmin(right, axis=1))
        lo = at - np.minimum(left_n + 1, g)
        hi = at + np.minimum(right_n + 1, g)
        base = self._released // self.seg  # the first segment not yet released
        seg, first = self.seg, self._first
        spikes = []
        for c, p, a, b, peak in zip(
            chans.tolist(),
            at.tolist(),
            lo.tolist(),
            hi.tolist(),
            np.sqrt(rows[:, f + g]).tolist(),
            strict=True,
        ):
            self._blank[c, max(a + first, base) - base : b + first + 1 - base] = True
            start = (p + first) * seg
            spikes.append(
                Spike(c, start + seg // 2, (a + first) * seg, (b + first + 1) * seg, peak)
            )
        spikes.sort(key=lambda s: (s.at, s.channel))
        return spikes

    def _release(self, upto: int, spikes: list[Spike]) -> Released:
        upto = min(upto, self._consumed)
        count = upto - self._released
        start = self._released
        filtered = self._held[:count]
        carried = tuple(held[:count] for held in self._held_carried)
        measured = None if self._held_measured is None else self._held_measured[:count]
        segments = -(-upto // self.seg) - start // self.seg
        flags = self._blank[:, :segments]
        blanked = None
        if count and flags.any():
            blanked = np.repeat(flags.T, self.seg, axis=0)[:count]
        self._blank = self._blank[:, upto // self.seg - start // self.seg :]
        self._held = self._held[count:]
        self._held_carried = tuple(held[count:] for held in self._held_carried)
        if self._held_measured is not None:
            self._held_measured = self._held_measured[count:]
            if self._held_measured.all():
                self._held_measured = None
        self._released = upto
        return Released(start, filtered, carried, measured, blanked, spikes)
