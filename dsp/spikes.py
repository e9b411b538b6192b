"""Brief isolated spikes on a raw EMG channel, found and kept out of the RMS envelope.

The heart's QRS complex reaching a calf electrode and the twitch of a single motor unit (a
fasciculation) are spikes of some 15-130 ms standing well above the EMG around them. Neither is a
contraction of the muscle, yet in a 250 ms RMS window each lifts the envelope like one, and a train
of them (70 beats a minute, twitches every second or two) keeps a stretch "active" for minutes.
This stage finds such spikes on the band-passed signal and makes the raw-mode RMS envelope
without them: a spike's samples count at the power of the EMG around it (the level of its
flanks), so each window's RMS is that of the EMG between the spikes. Sustained activity (a cramp,
a movement, a walk) is never a spike and keeps its level; only a burst brief and isolated enough
to be a spike is replaced. What the spikes are (heartbeats in a rhythm, twitches) is for
:mod:`dsp.ecg` and :mod:`dsp.twitches`; the blanking does not depend on it.

The rule, on the mean power of short segments (10 ms; longer at low sampling rates, so that a
segment of noise in the band has some 8 degrees of freedom):

- **Peak:** the highest segment within +-`guard_s` (80 ms), at least `min_peak_uv` (1 uV RMS).
- **Alone:** at least `prominence` (8) times the level of the `flank_s` (150 ms) beyond the guard
  on *each* side. A flank's level is the median of the mean powers of its 5 blocks, so a
  neighbouring spike (a heartbeat next to a twitch) or the quiet edge of a burst, in up to 2
  blocks, leaves it as it is; a cramp or a movement lasts far longer than the guard and is never
  alone. Unmeasured segments are left out (a flank with none does not count).
- **Not a train:** on at least one side no block comes within `train_ratio` (4) of the peak: a
  motor unit firing at 6-25 Hz in a weak contraction has like potentials on both sides.
- **Brief:** its core (segments within 15 dB of its peak and over `prominence` x the level), and
  any stretch that strong near it, lasts at most `max_width_s` (0.135 s): a QRS complex through
  the band-pass lasts some 70-130 ms at that width, a motor-unit potential tens of ms; a jerk
  (a brief burst of many units, 140 ms and more) or a movement lasts longer.
- **Blank:** the run of segments over `extent_ratio` (2) x the level that holds the peak, and any
  such run within guard + flank of it that holds a segment as strong as a spike (a twitch just
  before a QRS, which is not alone), one segment more on each side.

The envelope is made from sums of squares over short base segments (the greatest common divisor
of the window and the hop: 10 ms at 1 kHz), so a window's sum is a sum of a few segment sums and
a blank only refills segments (at the spike's level, for their measured samples). Hop k still
covers the `window` samples before sample (k + 1) x hop and is the RMS of the measured samples
there, NaN when fewer than `min_measured` of them count (none before the stream starts), as in
:class:`dsp.envelope.HopWindowStatistic`.

Deciding needs the signal up to guard + flank after a peak and a blank reaches as far before it,
so the stage holds back 2 x (guard + flank) (0.47 s at 1 kHz, 0.38 s at 500 Hz, where a flank is
5 segments of 20 ms) plus the segment in progress: it
releases the band-passed signal, the streams carried along with it and the envelope hops that
much later, in pieces cut at multiples of `align` (the pipeline's ticks) where it can, so that no
block is copied. Segment sums are added in a fixed order, each window's sum is its own, medians,
minima and maxima are exact, and each peak is judged on its own row of segments, so the output is
bit-identical over any block split.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from dsp.config import SpikeConfig

_CORE_DROP = 30.0  # a spike's core: within 15 dB of its peak (and over prominence x the level)
SHAPE_HALF_S = 0.04
"""A spike's waveform is kept from this long before its centre to this long after."""


@dataclass(frozen=True, slots=True)
class Spike:
    """One brief isolated spike on one channel; sample indices count from the start of the stream."""

    channel: int
    at: int
    """Its centre: the centroid of its energy over the blanked samples."""
    start: int
    """First blanked sample."""
    end: int
    """One past the last blanked sample (the blank is `blanked`, within start..end)."""
    peak_uv: float
    """RMS of its peak segment (uV)."""
    prominence: float
    """Its peak segment's power over the level of the louder flank."""
    shape: np.ndarray = field(compare=False, repr=False, default_factory=lambda: np.empty(0))
    """The band-passed signal from SHAPE_HALF_S before its centre to as long after (zeros past
    either end of the stream)."""
    blanked: tuple[tuple[int, int], ...] = ()
    """The sample ranges taken out of the envelope."""


@dataclass(frozen=True)
class Piece:
    """Consecutive released samples (the band-passed signal, the carried streams and which
    samples are measured, None: all) and the envelope hops that end in them, from hop
    `first_hop` on."""

    filtered: np.ndarray
    carried: tuple[np.ndarray, ...]
    measured: np.ndarray | None
    first_hop: int
    envelope: np.ndarray


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
        first = held[0]
        self.split = start + (len(first) if first is not None else 0)
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


class SpikeBlankedEnvelope:
    """Feed band-passed blocks (n, channels) to :meth:`process`, then :meth:`flush` at the end.

    `window` and `hop` are the envelope's (samples), `band_hz` the signal's band (for the
    segment length); `carried` streams (same shape as the
    signal) come out delayed with it; `measured` marks the samples that count (None: all);
    a hop with fewer than `min_measured` counted samples is NaN.
    """

    def __init__(
        self,
        fs: float,
        n_channels: int,
        config: SpikeConfig,
        *,
        window: int,
        hop: int,
        band_hz: tuple[float, float],
        n_carried: int = 0,
        align: int = 1,
        min_measured: int = 1,
    ) -> None:
        if window < 1 or hop < 1:
            raise ValueError("window and hop must be at least one sample")
        self.window, self.hop = window, hop
        self.base = math.gcd(window, hop)  # samples per base segment
        self.window_base, self.hop_base = window // self.base, hop // self.base
        self.per_seg = max(1, round(config.segment_samples(fs, band_hz) / self.base))
        self.seg = self.per_seg * self.base  # samples per spike segment
        seg_s = self.seg / fs
        self.guard = max(1, round(config.guard_s / seg_s))
        # a flank is 5 blocks of whole segments (its level: the median of the blocks' means)
        self.flank_block = max(1, math.floor(config.flank_s / seg_s / 5 + 1e-9))
        self.flank = 5 * self.flank_block
        self.prominence = config.prominence
        # (at least 3 segments: at low rates a segment is long and the band smears a spike)
        # A spike's core is timed on base segments when they are long enough to hold a power
        # (4 ms or more), else on spike segments; at least 3 of them (at low rates a segment is
        # long and the band smears a spike).
        self.width_step = self.per_seg if self.base / fs < 0.004 else 1
        step_s = self.width_step * self.base / fs
        self.max_width = max(3, math.floor(config.max_width_s / step_s + 1e-9))
        self.train_ratio = config.train_ratio
        self.extent_ratio = config.extent_ratio
        self.min_power = config.min_peak_uv**2
        self.n_channels = n_channels
        self.n_carried = n_carried
        self.align = max(1, align)
        self.min_measured = max(1, min_measured)
        self.max_delay_samples = (2 * (self.guard + self.flank) + 1) * self.seg
        self.shape_half = max(1, round(SHAPE_HALF_S * fs))
        # Base segments (sums of squares of the counted samples, and how many were counted)
        # from base segment `_base_first` on; before the stream: nothing measured.
        self._sums = np.zeros((n_channels, self.window_base))
        self._counts = np.zeros((n_channels, self.window_base), dtype=np.int64)
        self._base_first = -self.window_base
        self._base_done = 0
        # Spike segments: mean power from segment `_first` on (NaN: unknown).
        reach = self.guard + self.flank
        self._power = np.full((n_channels, reach), np.nan)
        self._first = -reach
        self._segments = 0  # complete spike segments
        self._decided = 0  # every peak before this spike segment is decided
        self._released = 0
        self._hops = 0  # envelope hops emitted
        empty = np.empty((0, n_channels))
        self._held: tuple[np.ndarray | None, ...] = (empty, *(empty,) * n_carried, None)
        self._consumed = 0
        self.finished = False

    @property
    def hops_emitted(self) -> int:
        return self._hops

    def process(
        self, filtered: np.ndarray, *carried: np.ndarray, measured: np.ndarray | None = None
    ) -> Released:
        """Take a block; return what can be released (about 0.3 s is held back)."""
        if self.finished:
            raise RuntimeError("the spike stage has been flushed")
        if len(carried) != self.n_carried:
            raise ValueError(f"expected {self.n_carried} carried streams, got {len(carried)}")
        stream = self._stream(filtered, carried, measured)
        self._consumed += len(filtered)
        complete = self._consumed // self.base
        if complete > self._base_done:
            self._measure(stream, complete)
        spikes = self._decide(self._segments - self.guard - self.flank, stream)
        reach = self.guard + self.flank
        return self._release(stream, max(0, self._decided - reach) * self.seg, spikes)

    def flush(self) -> Released:
        """End of the stream: decide the rest (the flank past the end is left out) and release
        everything."""
        if self.finished:
            raise RuntimeError("the spike stage has been flushed")
        self.finished = True
        stream = _Stream(self._released, self._held, (None,) * len(self._held))
        past_end = np.full((self.n_channels, self.guard + self.flank), np.nan)
        self._power = np.concatenate([self._power, past_end], axis=1)
        spikes = self._decide(self._segments, stream)
        return self._release(stream, self._consumed, spikes)

    # ---- measuring ------------------------------------------------------------------------------

    def _stream(
        self, filtered: np.ndarray, carried: tuple[np.ndarray, ...], measured: np.ndarray | None
    ) -> _Stream:
        held = self._held
        if measured is not None and held[-1] is None:
            held = (*held[:-1], np.ones((len(held[0]), self.n_channels), dtype=bool))
        elif measured is None and held[-1] is not None:
            measured = np.ones((len(filtered), self.n_channels), dtype=bool)
        return _Stream(self._released, held, (filtered, *carried, measured))

    def _measure(self, stream: _Stream, complete: int) -> None:
        """Base segments `_base_done`..`complete` - 1, then the spike segments they complete (the
        mean power of their measured samples; NaN with less than a quarter measured)."""
        a, b = self._base_done * self.base, complete * self.base
        # the base segment that spans the held tail and the new block on its own, so that the
        # rest is read in place
        cut = a if stream.split <= a else min(b, -(-stream.split // self.base) * self.base)
        parts = [(a, cut), (cut, b)] if a < cut < b else [(a, b)]
        measured = [self._base_sums(stream, lo, hi) for lo, hi in parts]
        self._sums = np.concatenate([self._sums, *(s for s, _ in measured)], axis=1)
        self._counts = np.concatenate([self._counts, *(c for _, c in measured)], axis=1)
        self._base_done = complete
        spikes_complete = complete // self.per_seg
        if spikes_complete > self._segments:
            lo = self._segments * self.per_seg - self._base_first
            hi = spikes_complete * self.per_seg - self._base_first
            k = spikes_complete - self._segments
            sums, counts = self._sums[:, lo:hi], self._counts[:, lo:hi]
            if self.per_seg > 1:
                sums = _add_columns(sums.reshape(self.n_channels, k, self.per_seg))
                counts = _add_columns(counts.reshape(self.n_channels, k, self.per_seg))
            if counts.min() == self.seg:
                power = sums / self.seg
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    power = np.where(4 * counts >= self.seg, sums / counts, np.nan)
            self._power = np.concatenate([self._power, power], axis=1)
            self._segments = spikes_complete

    def _base_sums(self, stream: _Stream, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Sums of squares of the counted samples per base segment in a..b-1, and the counts."""
        k = (b - a) // self.base
        x = stream.take(a, b, 0)
        assert x is not None
        squares = np.empty((self.n_channels, b - a))
        np.square(x.T, out=squares)
        squares = squares.reshape(self.n_channels, k, self.base)
        ok = stream.take(a, b, len(self._held) - 1)
        if ok is None:
            return _add_columns(squares), np.full((self.n_channels, k), self.base, dtype=np.int64)
        ok = np.ascontiguousarray(ok.T).reshape(self.n_channels, k, self.base)
        squares[~ok] = 0.0
        return _add_columns(squares), ok.sum(axis=-1)

    # ---- spikes ---------------------------------------------------------------------------------

    def _decide(self, upto: int, stream: _Stream) -> list[Spike]:
        """Decide every peak in spike segments `_decided`..`upto` - 1 and blank them."""
        if upto <= self._decided:
            return []
        chans, at, level = self._peaks(self._decided - self._first, upto - self._first)
        spikes = self._spikes(chans, at, level, stream) if len(at) else []
        self._decided = upto
        drop = self._decided - self.guard - self.flank - self._first
        self._power = self._power[:, drop:]
        self._first += drop
        return spikes

    def _peaks(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The peaks among columns c0..c1-1: the highest segment within the guard, over the
        minimum power, `prominence` x the level of the louder flank and `train_ratio` x the
        highest block of the clearer flank. A flank's level is the median of the mean powers of
        its 5 blocks, so a neighbouring spike or the quiet edge of a burst (in up to 2 blocks)
        leaves it as it is. Segments that were not measured (before the start, after the end,
        in a gap) are left out: a flank is judged on the blocks it has, and a flank with none
        does not count. Sums in a fixed order, minima, maxima and medians: exact over any block
        split."""
        g, f, b = self.guard, self.flank, self.flank_block
        power = self._power
        finite = np.isfinite(power)
        complete = bool(finite.all())
        width = power.shape[1] - b + 1
        zeroed = power if complete else np.where(finite, power, 0.0)
        sums = zeroed[:, :width].copy()  # block j: mean of the segments j .. j + b - 1 it has
        for j in range(1, b):
            sums += zeroed[:, j : j + width]
        if complete:
            blocks = sums / b
        else:
            counts = finite[:, :width].astype(np.int64)
            for j in range(1, b):
                counts += finite[:, j : j + width]
            with np.errstate(invalid="ignore", divide="ignore"):
                blocks = sums / counts  # NaN: a block with nothing measured
            complete = bool(counts.all())

        def flank(first: int) -> tuple[np.ndarray, np.ndarray]:  # from column c + first
            parts = [blocks[:, c0 + first + k * b : c1 + first + k * b] for k in range(5)]
            if complete:
                return _median5(*parts), np.maximum.reduce(parts)
            return _median_of_measured(np.stack(parts)), np.fmax.reduce(parts)

        (median_before, max_before), (median_after, max_after) = flank(-g - f), flank(g + 1)
        louder = np.fmax(median_before, median_after)
        clear = np.fmin(max_before, max_after)
        centre = power[:, c0:c1]
        with np.errstate(invalid="ignore"):
            keep = (
                (centre >= self.prominence * louder)
                & (centre >= self.train_ratio * clear)
                & (centre >= self.min_power)
            )
        chans, idx = np.nonzero(keep)
        if not len(idx):
            return chans, idx, louder[chans, idx]
        # the highest within the guard (the first of equals)
        at = idx + c0
        lows = np.where(finite, power, -np.inf)
        around = lows[chans[:, None], at[:, None] + np.arange(-g, g + 1)]
        peak = (around[:, g] > around[:, :g].max(axis=1)) & (
            around[:, g] >= around[:, g + 1 :].max(axis=1)
        )
        return chans[peak], at[peak], louder[chans[peak], idx[peak]]

    def _spikes(
        self, chans: np.ndarray, at: np.ndarray, level: np.ndarray, stream: _Stream
    ) -> list[Spike]:
        """Blank each peak's segments: the run of segments over `extent_ratio` x its level that
        holds the peak, and any such run (within guard + flank) that holds a segment as strong
        as a spike (a twitch just before a QRS, say), one segment more on each side; then its
        centre (over its own run), waveform and figures."""
        reach = self.guard + self.flank
        rows = self._power[chans[:, None], at[:, None] + np.arange(-reach, reach + 1)]
        with np.errstate(invalid="ignore"):
            over = rows > (self.extent_ratio * level)[:, None]
            strong = over & (rows >= (self.prominence * level)[:, None])
        over[:, reach] = strong[:, reach] = True
        brief = self._brief(chans, at, level)
        if not brief.any():
            return []
        chans, at, level, rows = chans[brief], at[brief], level[brief], rows[brief]
        over, strong = over[brief], strong[brief]
        run = np.cumsum(~over, axis=1)  # consecutive segments over the level share a number
        holds = np.zeros((len(at), run.shape[1] + 1), dtype=bool)
        r, c = np.nonzero(strong)
        holds[r, run[r, c]] = True
        marked = holds[np.arange(len(at))[:, None], run] & over
        marked[:, 1:] |= marked[:, :-1].copy()
        marked[:, :-1] |= marked[:, 1:].copy()
        first = at + self._first - reach  # absolute spike segment of column 0
        self._blank_base(chans, first, marked, level)
        own = (run == run[:, [reach]]) & over
        lo = first + np.argmax(own, axis=1) - 1
        hi = first + own.shape[1] - np.argmax(own[:, ::-1], axis=1)
        centres, shapes = self._centres_and_shapes(stream, chans, lo, hi)
        seg = self.seg
        peaks = np.sqrt(rows[:, reach]).tolist()
        with np.errstate(divide="ignore"):
            prominences = (rows[:, reach] / level).tolist()
        edges = np.diff(marked.astype(np.int8), axis=1, prepend=0, append=0)
        rows, starts = np.nonzero(edges == 1)  # row by row, in order
        _, ends = np.nonzero(edges == -1)
        starts = ((first[rows] + starts) * seg).tolist()
        ends = ((first[rows] + ends) * seg).tolist()
        runs: list[list[tuple[int, int]]] = [[] for _ in range(len(at))]
        for row, a, b in zip(rows.tolist(), starts, ends, strict=True):
            if b > 0:
                runs[row].append((max(a, 0), b))
        spikes = [
            Spike(c, centre, spans[0][0], spans[-1][1], peak, prominence, shape, tuple(spans))
            for c, centre, peak, prominence, shape, spans in zip(
                chans.tolist(), centres.tolist(), peaks, prominences, shapes, runs, strict=True
            )
        ]
        spikes.sort(key=lambda s: (s.at, s.channel))
        return spikes

    def _brief(self, chans: np.ndarray, at: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Peaks whose core (within 15 dB of the peak and over `prominence` x the level), and
        every other stretch as strong within guard + flank, lasts at most `max_width_s`: a QRS
        complex or a motor-unit potential, not a jerk or a movement."""
        per, step = self.per_seg, self.width_step
        if step == per:  # on spike segments
            reach = self.guard + self.flank
            powers = self._power[chans[:, None], at[:, None] + np.arange(-reach, reach + 1)]
            peak = powers[:, reach]
        else:  # on base segments
            reach = (self.guard + self.flank) * per
            cols = (at + self._first) * per - self._base_first
            span = cols[:, None] + np.arange(-reach, reach + per)
            inside = (span >= 0) & (span < self._sums.shape[1])
            span = np.clip(span, 0, self._sums.shape[1] - 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                powers = self._sums[chans[:, None], span] / self._counts[chans[:, None], span]
            powers[~inside] = np.nan
            peak = np.fmax.reduce(powers[:, reach : reach + per], axis=1)
        with np.errstate(invalid="ignore"):
            core = powers >= np.maximum(self.prominence * level, peak / _CORE_DROP)[:, None]
        run = np.cumsum(~core, axis=1)
        lengths = np.zeros((len(core), run.shape[1] + 1), dtype=np.int64)
        r, c = np.nonzero(core)
        np.add.at(lengths, (r, run[r, c]), 1)
        return lengths.max(axis=1) <= self.max_width

    def _blank_base(
        self, chans: np.ndarray, first: np.ndarray, marked: np.ndarray, level: np.ndarray
    ) -> None:
        """Fill the base segments of the marked spike segments (column j of row i: spike
        segment first[i] + j) with their spike's level, the power around it (the lower level
        where two spikes meet)."""
        rows, cols = np.nonzero(marked)
        segments = first[rows] + cols
        base = segments[:, None] * self.per_seg + np.arange(self.per_seg) - self._base_first
        channel = np.broadcast_to(chans[rows][:, None], base.shape)
        inside = (base >= 0) & (base < self._sums.shape[1]) & (segments >= 0)[:, None]
        channel, base = channel[inside], base[inside]
        power = np.broadcast_to(level[rows][:, None], inside.shape)[inside]
        fill = np.full(self._sums.shape, np.inf)
        np.minimum.at(fill, (channel, base), power)
        filled = np.isfinite(fill)
        self._sums[filled] = fill[filled] * self._counts[filled]

    def _centres_and_shapes(
        self, stream: _Stream, chans: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each spike's centre (the centroid of its energy over its blanked samples) and its
        waveform around the centre (zeros outside what is held)."""
        half, seg = self.shape_half, self.seg
        first, last = self._released, self._consumed
        start = np.clip(lo * seg, first, last)
        stop = np.clip((hi + 1) * seg, first, last)
        r0 = max(first, int(start.min()) - half)
        r1 = min(last, int(stop.max()) + half + 1)
        region = stream.take(r0, r1, 0)
        assert region is not None
        span = int((stop - start).max())
        offsets = np.arange(span)
        index = start[:, None] + offsets
        inside = index < stop[:, None]
        values = region[np.where(inside, index, start[:, None]) - r0, chans[:, None]]
        energy = np.where(inside, values * values, 0.0)
        centres = start + np.rint((energy * offsets).sum(axis=1) / energy.sum(axis=1))
        centres = centres.astype(np.int64)
        around = centres[:, None] + np.arange(-half, half + 1)
        held = (around >= r0) & (around < r1)
        shapes = np.where(held, region[np.clip(around, r0, r1 - 1) - r0, chans[:, None]], 0.0)
        return centres, list(shapes)

    # ---- releasing ------------------------------------------------------------------------------

    def _release(self, stream: _Stream, upto: int, spikes: list[Spike]) -> Released:
        """Let go of samples up to `upto` and the hops that end there, in pieces: the held tail
        with the new block up to the next multiple of `align`, then a view of the new block."""
        upto = min(upto, self._consumed)
        start = self._released
        first_hop = self._hops
        envelope = self._hops_until(upto)
        cuts = [start, upto]
        aligned = -(-stream.split // self.align) * self.align
        if start < stream.split < upto and aligned < upto:
            cuts.insert(1, aligned)
        pieces = []
        for a, b in itertools.pairwise(cuts):
            if a >= b:
                continue
            h0, h1 = a // self.hop - first_hop, b // self.hop - first_hop
            taken = [stream.take(a, b, i) for i in range(len(self._held))]
            assert taken[0] is not None
            pieces.append(
                Piece(
                    taken[0],
                    tuple(t for t in taken[1:-1] if t is not None),
                    taken[-1],
                    first_hop + h0,
                    envelope[h0:h1],
                )
            )
        rest = [stream.take(upto, self._consumed, i) for i in range(len(self._held))]
        self._held = tuple(None if r is None else r.copy() for r in rest)
        last = self._held[-1]
        if last is not None and last.all():
            self._held = (*self._held[:-1], None)
        self._released = upto
        return Released(pieces, spikes)

    def _hops_until(self, upto: int) -> np.ndarray:
        """The envelope hops that end at or before sample `upto` and were not emitted yet."""
        count = upto // self.hop - self._hops
        if count <= 0:
            return np.empty((0, self.n_channels))
        first_end = (self._hops + 1) * self.hop // self.base  # base segment just past window 0
        c0 = first_end - self.window_base - self._base_first
        c1 = c0 + (count - 1) * self.hop_base + self.window_base
        sums = self._window_sums(self._sums[:, c0:c1], count)
        counts = self._counts[:, c0:c1]
        if counts.min() == self.base:
            values = sums / self.window
        else:
            counted = self._window_sums(counts, count)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(counted >= self.min_measured, sums / counted, np.nan)
        np.sqrt(values, out=values)
        self._hops += count
        keep = (self._hops + 1) * self.hop // self.base - self.window_base - self._base_first
        self._sums = self._sums[:, keep:]
        self._counts = self._counts[:, keep:]
        self._base_first += keep
        return np.ascontiguousarray(values.T)

    def _window_sums(self, segments: np.ndarray, count: int) -> np.ndarray:
        """Sums of `window_base` consecutive segments every `hop_base` ones, segment by segment
        in a fixed order."""
        step, stop = self.hop_base, (count - 1) * self.hop_base + 1
        total = segments[:, 0:stop:step].copy()
        for j in range(1, self.window_base):
            total += segments[:, j : j + stop : step]
        return total


def _add_columns(values: np.ndarray) -> np.ndarray:
    """Sum over the last (short) axis, column by column: in a fixed order (exact over any block
    split) and much quicker than a reduction over many short rows."""
    total = values[..., 0].copy()
    for j in range(1, values.shape[-1]):
        total += values[..., j]
    return total


def _median5(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray
) -> np.ndarray:
    """Element-wise median of five arrays (a comparison network: exact, no arithmetic)."""
    low = np.maximum(np.minimum(a, b), np.minimum(c, d))
    high = np.minimum(np.maximum(a, b), np.maximum(c, d))
    return np.maximum(np.minimum(low, high), np.minimum(np.maximum(low, high), e))


def _median_of_measured(parts: np.ndarray) -> np.ndarray:
    """Element-wise median over the first axis, of the values that are not NaN (the upper one
    of the middle two for an even number; NaN when there is none)."""
    ordered = np.sort(parts, axis=0)  # NaN last
    count = np.isfinite(parts).sum(axis=0)
    pick = np.take_along_axis(ordered, (count // 2)[None], axis=0)[0]
    return np.where(count > 0, pick, np.nan)
