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
highest within +-`guard_s` (80 ms) and at least `prominence` (8) times the level of the `flank_s`
(150 ms) beyond the guard on *each* side, so the spike stands alone; a cramp or a movement lasts
far longer than the guard and is never isolated. A flank's level is the geometric mean of its
segment powers, so a neighbouring spike (a heartbeat next to a twitch) raises it only a little.
The blank covers the segments around the peak, within the guard, whose power is over
`extent_ratio` (2) x that level, and one segment more on each side. What the spikes are
(heartbeats in a rhythm, twitches) is for :mod:`dsp.ecg` and :mod:`dsp.twitches`; blanking does not
depend on it.

Deciding needs the signal up to guard + flank after a peak, and a blank reaches a guard before it,
so the stage holds back 2 x guard + flank (about 0.31 s) plus the segment in progress: it releases
the band-passed signal (and any streams carried along with it) that much later, with the blank
marks, in pieces: marks come only with the pieces around spikes (the envelope's window past the
last blanked sample), so the rest of the signal takes the envelope's plain path. Segment powers are
summed segment by segment and each candidate is judged on its own row of segments, so the output
is bit-identical over any block split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.config import SpikeConfig

_TINY_POWER = 1e-12  # uV^2: below anything measurable, so that a digital zero has a logarithm
_RUN_GAP_S = 5.0  # blanked stretches closer than this are marked in one piece


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


@dataclass(frozen=True)
class Piece:
    """Consecutive released samples: the band-passed signal, the carried streams, which samples
    are measured (None: all) and which belong to a spike (None: none)."""

    filtered: np.ndarray
    carried: tuple[np.ndarray, ...]
    measured: np.ndarray | None
    blanked: np.ndarray | None


@dataclass(frozen=True)
class Released:
    """What one call let go of, in order, and the spikes it found (in time order; they may lie up
    to a guard past the released samples)."""

    pieces: list[Piece]
    spikes: list[Spike]


class _Stream:
    """The held tail and the new block as one stream of absolute sample indices."""

    def __init__(
        self, start: int, held: tuple[np.ndarray | None, ...], new: tuple[np.ndarray | None, ...]
    ) -> None:
        self.start = start
        self.split = start + len(held[0]) if held[0] is not None else start
        self.held, self.new = held, new

    def take(self, a: int, b: int, which: int) -> np.ndarray | None:
        """Samples a..b-1 of stream `which` (a view unless the range spans held and new)."""
        held, new = self.held[which], self.new[which]
        if held is None and new is None:
            return None
        if b <= self.split:
            assert held is not None
            return held[a - self.start : b - self.start]
        if a >= self.split:
            assert new is not None
            return new[a - self.split : b - self.split]
        assert held is not None and new is not None
        return np.concatenate([held[a - self.start :], new[: b - self.split]])


class SpikeBlanker:
    """Feed band-passed blocks (n, channels) to :meth:`process`, then :meth:`flush` at the end.

    `carried` streams (same shape) are delayed with the signal, so they stay aligned with it;
    `mark_reach` is how long (samples) a blank mark matters after a spike (the envelope window);
    released pieces are cut at multiples of `align` samples where they can be (the pipeline's ticks).
    """

    def __init__(
        self,
        fs: float,
        n_channels: int,
        config: SpikeConfig,
        *,
        n_carried: int = 0,
        mark_reach: int = 0,
        align: int = 1,
    ) -> None:
        self.seg = max(1, round(config.segment_s * fs))
        seg_s = self.seg / fs
        self.guard = max(1, round(config.guard_s / seg_s))
        self.flank = max(1, round(config.flank_s / seg_s))
        self.log_prominence = float(np.log(config.prominence))
        self.extent_ratio = config.extent_ratio
        self.min_power = config.min_peak_uv**2
        self.n_channels = n_channels
        self.n_carried = n_carried
        self.mark_reach = mark_reach
        self.align = max(1, align)
        self.run_gap = round(_RUN_GAP_S * fs)
        self.max_delay_samples = (2 * self.guard + self.flank + 1) * self.seg
        reach = self.guard + self.flank
        # Mean power per segment (and its logarithm) from segment `_first` on; before the
        # stream: not measured (NaN).
        self._power = np.full((n_channels, reach), np.nan)
        self._log = np.full((n_channels, reach), np.nan)
        self._first = -reach
        self._segments = 0  # complete segments measured
        self._decided = 0  # every peak before this segment is decided
        self._released = 0  # samples let go of (a whole number of segments until the end)
        self._blank = np.zeros((n_channels, 0), dtype=bool)  # segments from the released one on
        self._marked_until = 0  # blank marks go with the samples before this one
        empty = np.empty((0, n_channels))
        self._held: tuple[np.ndarray | None, ...] = (empty, *(empty,) * n_carried, None)
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
        stream = self._stream(filtered, carried, measured)
        self._consumed += len(filtered)
        complete = self._consumed // self.seg
        if complete > self._segments:
            self._measure(stream, complete)
        spikes = self._decide(self._segments - self.guard - self.flank)
        return self._release(stream, max(0, self._decided - self.guard) * self.seg, spikes)

    def flush(self) -> Released:
        """End of the stream: decide the rest (the missing flank past the end is left out)."""
        if self.finished:
            raise RuntimeError("the spike stage has been flushed")
        self.finished = True
        stream = _Stream(self._released, self._held, (None,) * len(self._held))
        if self._consumed > self._segments * self.seg:
            self._measure(stream, self._segments + 1, partial=True)
        reach = self.guard + self.flank
        past_end = np.full((self.n_channels, reach), np.nan)
        self._power = np.concatenate([self._power, past_end], axis=1)
        self._log = np.concatenate([self._log, past_end], axis=1)
        self._blank = np.concatenate(
            [self._blank, np.zeros((self.n_channels, reach), dtype=bool)], axis=1
        )
        spikes = self._decide(self._segments)
        return self._release(stream, self._consumed, spikes)

    # ---- internals ------------------------------------------------------------------------------

    def _stream(
        self, filtered: np.ndarray, carried: tuple[np.ndarray, ...], measured: np.ndarray | None
    ) -> _Stream:
        held = self._held
        if measured is not None and held[-1] is None:
            held = (*held[:-1], np.ones((len(held[0]), self.n_channels), dtype=bool))
        elif measured is None and held[-1] is not None:
            measured = np.ones((len(filtered), self.n_channels), dtype=bool)
        return _Stream(self._released, held, (filtered, *carried, measured))

    def _measure(self, stream: _Stream, complete: int, partial: bool = False) -> None:
        """Mean power of segments `_segments`..`complete` - 1 (of measured samples; a segment
        with less than half of them measured is NaN)."""
        a = self._segments * self.seg
        b = min(complete * self.seg, self._consumed)
        width = b - a if partial else self.seg
        # the segment that spans the held tail and the new block (if any) on its own, so that
        # the rest is read in place
        cut = a if stream.split <= a else min(b, a + -(-(stream.split - a) // width) * width)
        parts = [(a, cut), (cut, b)] if a < cut < b else [(a, b)]
        power = np.concatenate([self._powers(stream, lo, hi, width) for lo, hi in parts], axis=1)
        self._power = np.concatenate([self._power, power], axis=1)
        self._log = np.concatenate([self._log, np.log(np.maximum(power, _TINY_POWER))], axis=1)
        self._blank = np.concatenate(
            [self._blank, np.zeros((self.n_channels, power.shape[1]), dtype=bool)], axis=1
        )
        self._segments = complete

    def _powers(self, stream: _Stream, a: int, b: int, width: int) -> np.ndarray:
        k = (b - a) // width
        x = stream.take(a, b, 0)
        assert x is not None
        squares = np.empty((self.n_channels, b - a))
        np.square(x.T, out=squares)
        squares = squares.reshape(self.n_channels, k, width)
        ok = stream.take(a, b, len(self._held) - 1)
        if ok is None:
            return _add_columns(squares) / width
        ok = np.ascontiguousarray(ok.T).reshape(self.n_channels, k, width)
        squares[~ok] = 0.0
        count = ok.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(2 * count >= width, _add_columns(squares) / count, np.nan)

    def _decide(self, upto: int) -> list[Spike]:
        """Decide every peak in segments `_decided`..`upto` - 1; mark their blanks."""
        if upto <= self._decided:
            return []
        chans, at = self._candidates(self._decided - self._first, upto - self._first)
        spikes = self._judge(chans, at) if len(at) else []
        self._decided = upto
        drop = self._decided - self.guard - self.flank - self._first
        self._power = self._power[:, drop:]
        self._log = self._log[:, drop:]
        self._first += drop
        return spikes

    def _candidates(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """A quick pre-selection among columns c0..c1-1 (running sums, so not exact; with a
        margin every true peak passes): the flanks' levels, and a peak at least as high as its
        neighbours."""
        g, f = self.guard, self.flank
        power, logs = self._power, self._log
        finite = np.isfinite(logs)
        sums = np.zeros((self.n_channels, logs.shape[1] + 1))
        np.cumsum(np.where(finite, logs, 0.0), axis=1, out=sums[:, 1:])
        counts = np.zeros((self.n_channels, logs.shape[1] + 1))
        np.cumsum(finite, axis=1, out=counts[:, 1:])

        def mean(a: int, b: int) -> np.ndarray:  # of columns c + a .. c + b - 1, for each c
            return (sums[:, c0 + b : c1 + b] - sums[:, c0 + a : c1 + a]) / (
                counts[:, c0 + b : c1 + b] - counts[:, c0 + a : c1 + a]
            )

        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.fmax(mean(-g - f, -g), mean(g + 1, g + f + 1))
        centre = power[:, c0:c1]
        lows = np.where(finite, power, -np.inf)
        keep = (
            (centre >= self.min_power)
            & (logs[:, c0:c1] >= self.log_prominence + level - 1e-6)
            & (centre >= lows[:, c0 - 1 : c1 - 1])
            & (centre >= lows[:, c0 + 1 : c1 + 1])
        )
        chans, idx = np.nonzero(keep)
        return chans, idx + c0

    def _judge(self, chans: np.ndarray, at: np.ndarray) -> list[Spike]:
        """The exact rule on each candidate (row by row, the same whatever the block split)."""
        g, f = self.guard, self.flank
        span = at[:, None] + np.arange(-g - f, g + f + 1)
        rows = self._power[chans[:, None], span]
        logs = self._log[chans[:, None], span]
        finite = np.isfinite(logs)
        zeroed = np.where(finite, logs, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            before = zeroed[:, :f].sum(axis=1) / finite[:, :f].sum(axis=1)
            after = zeroed[:, f + 2 * g + 1 :].sum(axis=1) / finite[:, f + 2 * g + 1 :].sum(axis=1)
        level = np.fmax(before, after)
        lows = np.where(finite, rows, -np.inf)
        centre = rows[:, f + g]
        spike = (
            (centre > lows[:, f : f + g].max(axis=1))
            & (centre >= lows[:, f + g + 1 : f + 2 * g + 1].max(axis=1))
            & (logs[:, f + g] >= self.log_prominence + level)
            & (centre >= self.min_power)
        )
        if not spike.any():
            return []
        chans, at, rows = chans[spike], at[spike], rows[spike]
        threshold = self.extent_ratio * np.exp(level[spike])
        over = rows[:, f : f + 2 * g + 1] > threshold[:, None]
        left = over[:, g - 1 :: -1]
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

    def _release(self, stream: _Stream, upto: int, spikes: list[Spike]) -> Released:
        """Let go of samples up to `upto`, in pieces cut at multiples of `align`: the held tail
        with the new block up to the next cut, then views of the new block; marks only with the
        pieces where a blank is or still matters."""
        upto = min(upto, self._consumed)
        start = self._released
        first_seg = start // self.seg
        flags = self._blank[:, : -(-upto // self.seg) - first_seg]
        marked = self._marked_ranges(flags, first_seg)
        cuts = {start, upto}
        if start < stream.split < upto:
            cuts.add(min(upto, self._aligned_up(stream.split)))
        for a, b in marked:
            cuts.update(c for c in (a, b) if start < c < upto)
        edges = sorted(cuts)
        pieces = []
        for a, b in zip(edges, edges[1:], strict=False):
            blanked = None
            if any(ma <= a < mb for ma, mb in marked):
                segs = flags[:, a // self.seg - first_seg : -(-b // self.seg) - first_seg]
                offset = a - (a // self.seg) * self.seg
                blanked = np.repeat(segs.T, self.seg, axis=0)[offset : offset + b - a]
            taken = [stream.take(a, b, i) for i in range(len(self._held))]
            pieces.append(
                Piece(taken[0], tuple(taken[1 : 1 + self.n_carried]), taken[-1], blanked)
            )
        self._blank = self._blank[:, upto // self.seg - first_seg :]
        rest = [stream.take(upto, self._consumed, i) for i in range(len(self._held))]
        self._held = tuple(None if r is None else r.copy() for r in rest)
        if self._held[-1] is not None and self._held[-1].all():
            self._held = (*self._held[:-1], None)
        self._released = upto
        return Released(pieces, spikes)

    def _marked_ranges(self, flags: np.ndarray, first_seg: int) -> list[tuple[int, int]]:
        """Sample ranges that go with marks: each run of blanks (runs closer than a few
        seconds are one) to `mark_reach` past its end, widened to multiples of `align`."""
        marked = []
        if self._marked_until > self._released:
            marked.append((self._released, self._marked_until))
        blanked = np.flatnonzero(flags.any(axis=0))
        if len(blanked):
            edges = (blanked + first_seg) * self.seg
            breaks = np.flatnonzero(np.diff(edges) > self.run_gap)
            starts = np.concatenate([edges[:1], edges[breaks + 1]])
            ends = np.concatenate([edges[breaks], edges[-1:]]) + self.seg + self.mark_reach
            marked += [
                (self._aligned_down(int(a)), self._aligned_up(int(b)))
                for a, b in zip(starts, ends, strict=True)
            ]
            self._marked_until = max(self._marked_until, marked[-1][1])
        return marked

    def _aligned_up(self, sample: int) -> int:
        return -(-sample // self.align) * self.align

    def _aligned_down(self, sample: int) -> int:
        return sample // self.align * self.align


def _add_columns(values: np.ndarray) -> np.ndarray:
    """Sum over the last (short) axis, column by column: in a fixed order (exact over any block
    split) and much quicker than a reduction over many short rows."""
    total = values[..., 0].copy()
    for j in range(1, values.shape[-1]):
        total += values[..., j]
    return total
