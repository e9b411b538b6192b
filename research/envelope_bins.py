"""A whole night's envelope in bounded memory, for plots: per-channel minimum, mean and maximum
over bins of whole hops, the bins doubling in width whenever there are too many of them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# (min, max, sum, number of measured hops), each of shape (bins, channels)
Stats = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class EnvelopeSeries:
    """Bins of the envelope (uV): bin i covers [t_s[i], t_s[i] + bin_s); NaN where every hop in
    the bin was missing. The last bin may be shorter."""

    t_s: np.ndarray  # (bins,) seconds from the start of the recording
    bin_s: float
    low: np.ndarray  # (bins, channels)
    mean: np.ndarray
    high: np.ndarray


class EnvelopeBinner:
    """Streaming: `add` envelope hops as the pipeline emits them, `series()` at any time.

    Holds at most `2 * max_bins` bins per channel whatever the length of the recording: when
    it has more, neighbouring bins are merged in pairs (min of mins, max of maxes, sums and
    counts added, so a mean stays the mean of its hops).
    """

    def __init__(self, n_channels: int, hop_s: float, max_bins: int = 2048) -> None:
        if max_bins < 16:
            raise ValueError(f"max_bins must be at least 16, got {max_bins}")
        self.n_channels, self.hop_s, self.max_bins = n_channels, hop_s, max_bins
        self.bin_hops = 1
        self.hops_seen = 0
        self._done: Stats = _empty(n_channels)
        self._open: Stats = _empty(n_channels)  # at most one bin, not yet full
        self._open_hops = 0

    def add(self, first_hop: int, envelope: np.ndarray) -> None:
        """Envelope hops `first_hop`, `first_hop + 1`, ... (NaN for missing), in order."""
        hops = np.asarray(envelope, dtype=np.float64).reshape(-1, self.n_channels)
        if len(hops) == 0:
            return
        if first_hop != self.hops_seen:
            raise ValueError(f"expected hop {self.hops_seen}, got hop {first_hop}")
        self.hops_seen += len(hops)
        if self._open_hops:
            take = min(self.bin_hops - self._open_hops, len(hops))
            self._fold_into_open(hops[:take])
            hops = hops[take:]
            if self._open_hops == self.bin_hops:
                self._done = _concat(self._done, self._open)
                self._open, self._open_hops = _empty(self.n_channels), 0
        whole = len(hops) // self.bin_hops * self.bin_hops
        if whole:
            self._done = _concat(
                self._done, _stats(hops[:whole].reshape(-1, self.bin_hops, self.n_channels))
            )
        if whole < len(hops):
            self._fold_into_open(hops[whole:])
        while len(self._done[0]) > 2 * self.max_bins:
            self._merge_pairs()

    def series(self) -> EnvelopeSeries:
        """The bins so far, the open (partial) one last."""
        low, high, total, count = _concat(self._done, self._open) if self._open_hops else self._done
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        bin_s = self.bin_hops * self.hop_s
        return EnvelopeSeries(np.arange(len(low)) * bin_s, bin_s, low, mean, high)

    def _fold_into_open(self, hops: np.ndarray) -> None:
        part = _stats(hops[None])
        self._open = _combine(self._open, part) if self._open_hops else part
        self._open_hops += len(hops)

    def _merge_pairs(self) -> None:
        done = self._done
        pairs = len(done[0]) // 2 * 2
        merged = _combine(
            tuple(a[0:pairs:2] for a in done),  # type: ignore[arg-type]
            tuple(a[1:pairs:2] for a in done),  # type: ignore[arg-type]
        )
        if pairs < len(done[0]):
            # An odd bin left over starts the open bin at the doubled width (it comes first).
            odd = tuple(a[pairs:] for a in done)
            self._open = _combine(odd, self._open) if self._open_hops else odd  # type: ignore[arg-type]
            self._open_hops += self.bin_hops
        self._done = merged
        self.bin_hops *= 2


def _empty(n_channels: int) -> Stats:
    return tuple(np.empty((0, n_channels)) for _ in range(4))  # type: ignore[return-value]


def _concat(a: Stats, b: Stats) -> Stats:
    return tuple(np.concatenate([x, y]) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _combine(a: Stats, b: Stats) -> Stats:
    """Two sets of bins of the same shape, bin by bin, as one."""
    return (np.fmin(a[0], b[0]), np.fmax(a[1], b[1]), a[2] + b[2], a[3] + b[3])


def _stats(bins: np.ndarray) -> Stats:
    """Statistics of bins shaped (bins, hops, channels); all-NaN bins give NaN min and max."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanmin(bins, axis=1)
        high = np.nanmax(bins, axis=1)
    measured = ~np.isnan(bins)
    return low, high, np.where(measured, bins, 0.0).sum(axis=1), measured.sum(axis=1).astype(float)
