"""Fasciculations counted per channel: the spikes of good-signal time that are not heartbeats.

A fasciculation is the twitch of one motor unit: a single potential of tens of ms, at random
times, far too brief to be a movement. dsp/spikes.py keeps every brief isolated spike out of the
envelope (so twitches never add up to a "movement"); here the spikes of each channel go through
its heart-rhythm tracker (dsp/ecg.py), and those that are not heartbeats are counted as
fasciculations, per hour of good signal. In people with cramps they are worth counting on their
own (cramp-fasciculation syndrome). Spikes in ticks without usable signal are left out.

The same pass says, tick by tick, whether the channel carries ECG (a heart rhythm among its
spikes): the pipeline reports that as the quality note ``ecg``.

Counts are final about 15 s after a spike (`RhythmRules.settle_s`): until then it may still turn
out to be a heartbeat. Everything depends only on the spikes and the tick quality, in order, so any
block split gives the same figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dsp.ecg import HeartRhythm, RhythmRules
from dsp.spikes import Spike

ECG_NOTE = "ecg"
"""The quality note of a channel that carries ECG (its QRS complexes are kept out of the envelope)."""


@dataclass(frozen=True, slots=True)
class SpikeFigures:
    """One channel's spikes so far."""

    fasciculations: int = 0
    heartbeats: int = 0
    good_s: float = 0.0
    """Time with usable signal (the hours of the index)."""
    ecg_s: float = 0.0
    """Time with a heart rhythm on the channel."""

    @property
    def fasciculations_per_hour(self) -> float | None:
        """Fasciculations per hour of good signal (None before any)."""
        return self.fasciculations / (self.good_s / 3600.0) if self.good_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        out["good_s"] = round(self.good_s, 1)
        out["ecg_s"] = round(self.ecg_s, 1)
        index = self.fasciculations_per_hour
        out["fasciculations_per_hour"] = round(index, 2) if index is not None else None
        return out


@dataclass(frozen=True)
class FasciculationSummary:
    """Fasciculations and heartbeats per channel."""

    channels: dict[str, SpikeFigures]

    def to_dict(self) -> dict[str, Any]:
        return {name: figures.to_dict() for name, figures in self.channels.items()}


@dataclass
class _Channel:
    rhythm: HeartRhythm
    fasciculations: int = 0
    heartbeats: int = 0
    good_samples: int = 0
    ecg_samples: int = 0
    spikes: list[Spike] = field(default_factory=list)


class SpikeTrains:
    """Feed the spikes as they are found (:meth:`add`) and the ticks as they are judged
    (:meth:`process`); :meth:`summary` at any time."""

    def __init__(
        self,
        channels: tuple[str, ...],
        fs: float,
        count_prominence: float,
        rules: RhythmRules | None = None,
    ) -> None:
        self.names = channels
        self.fs = fs
        self.count_prominence = count_prominence
        self.rules = rules or RhythmRules()
        max_lag = round(self.rules.shape_lag_s * fs)
        self._channels = [_Channel(HeartRhythm(self.rules, max_lag)) for _ in channels]

    def add(self, spikes: list[Spike]) -> None:
        """Spikes in time order (they wait for the tick they fall in)."""
        for spike in spikes:
            self._channels[spike.channel].spikes.append(spike)

    def process(self, first_sample: int, tick_samples: int, usable: np.ndarray) -> np.ndarray:
        """Ticks of `tick_samples` from `first_sample` on, `usable` (ticks, channels): where the
        signal is good. Returns (ticks, channels): where the channel carries ECG."""
        n_ticks, n_ch = usable.shape
        ecg = np.zeros((n_ticks, n_ch), dtype=bool)
        ends = first_sample + tick_samples * np.arange(1, n_ticks + 1)
        for c, channel in enumerate(self._channels):
            good = usable[:, c]
            channel.good_samples += int(good.sum()) * tick_samples
            last_end = int(ends[-1]) if n_ticks else first_sample
            waiting = len(channel.spikes)
            if waiting == 0 and channel.rhythm.idle:
                continue
            at = np.array([s.at for s in channel.spikes], dtype=np.int64)
            cut = int(np.searchsorted(at, last_end))
            mine, channel.spikes = channel.spikes[:cut], channel.spikes[cut:]
            tick_of = np.searchsorted(ends, at[:cut], side="right")
            ecg[:, c] = self._walk(channel, mine, tick_of, good, ends)
            channel.ecg_samples += int(ecg[:, c].sum()) * tick_samples
        return ecg

    def finish(self) -> None:
        """End of the recording: every label is final."""
        for channel in self._channels:
            self._count(channel, channel.rhythm.settle(math.inf))

    def summary(self) -> FasciculationSummary:
        return FasciculationSummary(
            {
                name: SpikeFigures(
                    fasciculations=ch.fasciculations,
                    heartbeats=ch.heartbeats,
                    good_s=ch.good_samples / self.fs,
                    ecg_s=ch.ecg_samples / self.fs,
                )
                for name, ch in zip(self.names, self._channels, strict=True)
            }
        )

    # ---- internals ------------------------------------------------------------------------------

    def _walk(
        self,
        channel: _Channel,
        spikes: list[Spike],
        tick_of: np.ndarray,
        good: np.ndarray,
        ends: np.ndarray,
    ) -> np.ndarray:
        rhythm = channel.rhythm
        present = np.zeros(len(ends), dtype=bool)
        i = 0
        for t, end in enumerate(ends.tolist()):
            while i < len(spikes) and tick_of[i] == t:
                spike = spikes[i]
                if good[t]:
                    counts = spike.prominence >= self.count_prominence
                    rhythm.add(spike.at / self.fs, spike.peak_uv, spike.shape, counts)
                i += 1
            now_s = end / self.fs
            self._count(channel, rhythm.settle(now_s))
            present[t] = good[t] and rhythm.present(now_s)
        return present

    @staticmethod
    def _count(channel: _Channel, settled: tuple[int, int]) -> None:
        channel.heartbeats += settled[0]
        channel.fasciculations += settled[1]
