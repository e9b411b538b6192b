"""The whole streaming chain, from input samples to events: one object, one configuration.

raw mode:      scale -> band-pass + notch -> RMS envelope without spikes -> quality -> detector
envelope mode: scale -> low-pass -> hop means                            -> quality -> detector

In raw mode the envelope leaves out brief isolated spikes (heartbeats, fasciculations:
dsp/spikes.py); that stage holds the signal back about 0.3 s. Its spikes are sorted into heartbeats
and fasciculations tick by tick (dsp/twitches.py), which also gives the quality note ``ecg``.

Detection, quality and the noise floor work on ticks (whole hops, about a second); the pipeline keeps
the samples of the tick in progress, so any block split gives exactly the same output.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from dsp import __version__
from dsp.config import PipelineConfig
from dsp.detector import ChannelDetector, EventContext, Timebase
from dsp.envelope import HopWindowStatistic
from dsp.events import Event, QualityChange, StateChange
from dsp.filters import StreamingSOSFilter, band_pass_notch_sos, envelope_lowpass_sos
from dsp.limb_movements import LimbMovementRules, LimbMovementScorer, LimbMovementSummary
from dsp.quality import MIN_JUDGED_FRACTION, QualityAssessor, TickQuality
from dsp.scaling import Scaler
from dsp.spikes import Released, SpikeBlankedEnvelope
from dsp.twitches import ECG_NOTE, FasciculationSummary, SpikeTrains


@dataclass
class PipelineOutput:
    """What one call produced: envelope hops (uV) from hop `first_hop` on, and what happened.

    Envelope hops whose window holds too few measured samples are NaN (not measured).
    """

    first_hop: int
    envelope: np.ndarray
    events: list[Event] = field(default_factory=list)
    state_changes: list[StateChange] = field(default_factory=list)
    quality_changes: list[QualityChange] = field(default_factory=list)
    records: list[Event | StateChange | QualityChange] = field(default_factory=list)
    """Everything above in the order it happened (the same order whatever the block split)."""
    limb_movements: LimbMovementSummary | None = None
    """Leg movements and PLM series scored so far (dsp.limb_movements)."""
    fasciculations: FasciculationSummary | None = None
    """Fasciculations and heartbeats per channel so far (dsp.twitches)."""


class Pipeline:
    """Feed blocks of shape (n, channels) in input units to `process`; call `finish` at the end."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        source_id: str = "live",
        session_start: datetime | None = None,
        limb_movement_rules: LimbMovementRules | None = None,
    ) -> None:
        self.config = config
        fs, n_ch = config.fs, config.n_channels
        self.hop = config.envelope.hop_samples(fs)
        self.window = config.envelope.window_samples(fs)
        self.hops_per_tick = config.envelope.hops_per_tick(fs)
        self.tick_samples = self.hops_per_tick * self.hop
        self.scaler = Scaler(config.scaling)
        quality = config.quality
        gaps = {
            "settle": round(quality.gap_settle_s * fs),
            "bridge_max": round(quality.gap_bridge_s * fs),
        }
        if config.mode == "raw":
            self.filter = StreamingSOSFilter(band_pass_notch_sos(config), n_ch, **gaps)
        else:
            self.window = self.hop
            self.filter = StreamingSOSFilter(envelope_lowpass_sos(config), n_ch, **gaps)
        min_measured = math.ceil(quality.min_measured_fraction * self.window)
        # with spike rejection on (raw mode), the spike stage makes the envelope instead
        self.envelope = HopWindowStatistic(
            self.window, self.hop, n_ch, rms=config.mode == "raw", min_measured=min_measured
        )
        self.spikes = (
            SpikeBlankedEnvelope(
                fs,
                n_ch,
                config.spikes,
                window=self.window,
                hop=self.hop,
                band_hz=config.filter.effective_band(fs),
                n_carried=1,
                align=self.tick_samples,
                min_measured=min_measured,
            )
            if config.mode == "raw" and config.spikes.enabled
            else None
        )
        self.quality = QualityAssessor(config, self.scaler.rails_uv, self.tick_samples)
        self.timebase = Timebase(fs, self.hop, self.window)
        start = session_start or datetime(1970, 1, 1, tzinfo=UTC)
        self.context = EventContext(
            device=config.device,
            source_id=source_id,
            session_start=start,
            pipeline={
                "software": f"crampwatch {__version__}",
                "settings_hash": config.settings_hash(),
                "settings": config.settings(),
            },
            settings_hash=config.settings_hash(),
        )
        self.detectors = [
            ChannelDetector(config, name, self.context, self.timebase, self.hops_per_tick)
            for name in config.channels
        ]
        self._pending_scaled = np.empty((0, n_ch))
        self._pending_filtered = np.empty((0, n_ch))
        self._pending_env = np.empty((0, n_ch))
        self._pending_measured: np.ndarray | None = None
        self._ticks_done = 0
        self._problems: list[tuple[str, ...]] = [() for _ in config.channels]
        self.limb_movements = LimbMovementScorer(config, limb_movement_rules)
        self.spike_trains = SpikeTrains(config.channels, fs, config.spikes.count_prominence)
        self.samples_in = 0
        self.finished = False

    @property
    def duration_s(self) -> float:
        return self.samples_in / self.config.fs

    def process(self, block: np.ndarray) -> PipelineOutput:
        """Run one block of input samples (NaN marks a missing sample) through the chain."""
        block = self._checked(block)
        self.samples_in += len(block)
        scaled = self.scaler.process(block)
        filtered, measured = self.filter.process(scaled)
        if self.spikes is None:
            env = self.envelope.process(filtered, measured)
            if self.config.mode == "envelope":
                np.maximum(env, 0.0, out=env)  # NaN stays NaN
            first_hop = self.envelope.hops_emitted - len(env)
            output = self._advance(scaled, filtered, measured, env, first_hop)
        else:
            released = self.spikes.process(filtered, scaled, measured=measured)
            output = self._advance_released(released)
        output.limb_movements = self.limb_movements.summary()
        output.fasciculations = self.spike_trains.summary()
        return output

    def _advance_released(self, released: Released) -> PipelineOutput:
        """Run what the spike stage let go of, piece by piece, as one output."""
        self.spike_trains.add(released.spikes)
        outputs = [
            self._advance(
                piece.carried[0], piece.filtered, piece.measured, piece.envelope, piece.first_hop
            )
            for piece in released.pieces
        ]
        if not outputs:
            return PipelineOutput(self._hops_emitted(), np.empty((0, self.config.n_channels)))
        return _joined(outputs)

    def _hops_emitted(self) -> int:
        return self.envelope.hops_emitted if self.spikes is None else self.spikes.hops_emitted

    def _advance(
        self,
        scaled: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        env: np.ndarray,
        first_hop: int,
    ) -> PipelineOutput:
        """The chain after the envelope, for samples (and their envelope hops) in order."""
        output = PipelineOutput(first_hop=first_hop, envelope=env)
        if len(self._pending_scaled) and len(scaled) < 4 * self.tick_samples:
            # a short piece (the spike stage's first): join it to the tick in progress, so that
            # its whole ticks run in one go
            scaled, filtered, measured, hops = self._take_pending(scaled, filtered, measured, env)
        else:
            scaled, filtered, measured, hops = self._complete_pending_tick(
                scaled, filtered, measured, env, output
            )
        n_ticks = len(scaled) // self.tick_samples
        if n_ticks:
            used, used_hops = n_ticks * self.tick_samples, n_ticks * self.hops_per_tick
            self._run_ticks(
                scaled[:used],
                filtered[:used],
                None if measured is None else measured[:used],
                hops[:used_hops],
                output,
            )
            scaled, filtered, hops = scaled[used:], filtered[used:], hops[used_hops:]
            measured = None if measured is None else measured[used:]
        if len(scaled):
            self._pending_measured = _join_measured(
                self._pending_measured, len(self._pending_scaled), measured, len(scaled)
            )
            self._pending_scaled = np.concatenate([self._pending_scaled, scaled])
            self._pending_filtered = np.concatenate([self._pending_filtered, filtered])
            self._pending_env = np.concatenate([self._pending_env, hops])
        return output

    def finish(self) -> PipelineOutput:
        """End of input: judge the last partial tick and close open events."""
        output = PipelineOutput(
            first_hop=self._hops_emitted(), envelope=np.empty((0, self.config.n_channels))
        )
        if self.finished:
            return output
        if self.spikes is not None:  # what the spike stage still holds
            output = self._advance_released(self.spikes.flush())
        self.finished = True
        if len(self._pending_env):
            used = len(self._pending_env) * self.hop
            self._run_ticks(
                self._pending_scaled[:used],
                self._pending_filtered[:used],
                None if self._pending_measured is None else self._pending_measured[:used],
                self._pending_env,
                output,
                partial=True,
            )
        next_hop = self._hops_emitted()
        for detector in self.detectors:
            detector.finish(next_hop)
        self._collect(output)
        self.limb_movements.note_events(output.events)
        self.limb_movements.finish()
        output.limb_movements = self.limb_movements.summary()
        self.spike_trains.finish()
        output.fasciculations = self.spike_trains.summary()
        return output

    # ---- internals ------------------------------------------------------------------------------

    def _checked(self, block: np.ndarray) -> np.ndarray:
        if self.finished:
            raise RuntimeError("the pipeline has finished; make a new one for a new recording")
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 1 and self.config.n_channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.config.n_channels:
            raise ValueError(
                f"expected a block of shape (samples, {self.config.n_channels}) for channels "
                f"{list(self.config.channels)}, got shape {block.shape}"
            )
        return block

    def _take_pending(
        self,
        scaled: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        env: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """The samples of the tick in progress followed by these; nothing is pending after."""
        pending = len(self._pending_scaled)
        joined = (
            np.concatenate([self._pending_scaled, scaled]),
            np.concatenate([self._pending_filtered, filtered]),
            _join_measured(self._pending_measured, pending, measured, len(scaled)),
            np.concatenate([self._pending_env, env]),
        )
        self._pending_scaled = self._pending_scaled[:0]
        self._pending_filtered = self._pending_filtered[:0]
        self._pending_env = self._pending_env[:0]
        self._pending_measured = None
        return joined

    def _complete_pending_tick(
        self,
        scaled: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        env: np.ndarray,
        output: PipelineOutput,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Finish the tick left over from earlier blocks; return what is left of this block."""
        pending = len(self._pending_scaled)
        if pending == 0:
            return scaled, filtered, measured, env
        need = self.tick_samples - pending
        if len(scaled) < need:
            return scaled, filtered, measured, env
        need_hops = self.hops_per_tick - len(self._pending_env)
        head = None if measured is None else measured[:need]
        self._run_ticks(
            np.concatenate([self._pending_scaled, scaled[:need]]),
            np.concatenate([self._pending_filtered, filtered[:need]]),
            _join_measured(self._pending_measured, pending, head, need),
            np.concatenate([self._pending_env, env[:need_hops]]),
            output,
        )
        self._pending_scaled = self._pending_scaled[:0]
        self._pending_filtered = self._pending_filtered[:0]
        self._pending_env = self._pending_env[:0]
        self._pending_measured = None
        rest = None if measured is None else measured[need:]
        return scaled[need:], filtered[need:], rest, env[need_hops:]

    def _run_ticks(
        self,
        scaled: np.ndarray,
        filtered: np.ndarray,
        measured: np.ndarray | None,
        env: np.ndarray,
        output: PipelineOutput,
        *,
        partial: bool = False,
    ) -> None:
        """Quality and detection over whole ticks, or over the last, partial tick at the end."""
        n_ch = self.config.n_channels
        t_len, t_hops = (
            (len(scaled), len(env)) if partial else (self.tick_samples, self.hops_per_tick)
        )
        n_ticks = len(scaled) // t_len
        scaled = scaled.reshape(n_ticks, t_len, n_ch)
        filtered = filtered.reshape(n_ticks, t_len, n_ch)
        if measured is not None:
            measured = measured.reshape(n_ticks, t_len, n_ch)
        env = env.reshape(n_ticks, t_hops, n_ch)
        if not partial:
            quality = self.quality.assess(scaled, filtered, measured, env)
        elif t_hops >= self.hops_per_tick / 2:
            quality = QualityAssessor(self.config, self.scaler.rails_uv, t_len).assess(
                scaled, filtered, measured, env
            )
        else:  # too short a tail to judge flatness or hum
            quality = TickQuality.good((1, n_ch))
        first_sample = self._ticks_done * self.tick_samples
        ecg = self.spike_trains.process(first_sample, t_len, ~quality.blocking)
        any_problem = quality.electrode_off | quality.clipping | quality.mains | quality.gap | ecg
        spectra = self.config.mode == "raw"
        unjudged = quality.gap_fraction > 1.0 - MIN_JUDGED_FRACTION
        if unjudged.any():
            # Too little of the tick was measured to tell hum or a loose electrode from muscle:
            # the detector does not use its hops (the envelope reported stays as measured).
            env = np.where(unjudged[:, None, :], np.nan, env)
        tick_max, tick_median, missing_hops = _tick_statistics(env)
        blocked = quality.blocking.tolist()
        # Python lists: indexing them per tick and channel is far cheaper than numpy scalars.
        problem_seen, ecg_seen = any_problem.tolist(), ecg.tolist()
        resting_uv = [[math.nan] * n_ch for _ in range(n_ticks)]
        events_before = len(output.events)
        for t in range(n_ticks):
            first_hop = (self._ticks_done + t) * self.hops_per_tick
            at_s = first_hop * self.hop / self.config.fs
            for c, detector in enumerate(self.detectors):
                problems = quality.problems(t, c) if problem_seen[t][c] else ()
                if ecg_seen[t][c]:
                    problems = (*problems, ECG_NOTE)
                self._note_quality(c, problems, at_s, output)
                if detector.floor.ready:
                    resting_uv[t][c] = detector.floor.value
                detector.process_tick(
                    first_hop,
                    env[t, :, c],
                    filtered[t, :, c] if spectra else None,
                    blocked[t][c],
                    problems,
                    tick_max[t][c],
                    tick_median[t][c],
                    missing_hops=missing_hops[t][c],
                )
            self._collect(output)
        first_hop = self._ticks_done * self.hops_per_tick
        self.limb_movements.note_events(output.events[events_before:])
        # Leg movements are scored only where every hop of the tick was measured.
        scored = ~quality.blocking & ~np.isnan(env).any(axis=1)
        self.limb_movements.process(first_hop, env, scored, np.array(resting_uv))
        self._ticks_done += n_ticks

    def _note_quality(
        self, channel: int, problems: tuple[str, ...], at_s: float, output: PipelineOutput
    ) -> None:
        if problems != self._problems[channel]:
            self._problems[channel] = problems
            change = QualityChange(self.config.channels[channel], at_s, problems)
            output.quality_changes.append(change)
            output.records.append(change)

    def _collect(self, output: PipelineOutput) -> None:
        """Move what the detectors produced into the output, tick by tick, channel by channel."""
        for detector in self.detectors:
            if not detector.records:
                continue
            for record in detector.records:
                output.records.append(record)
                if isinstance(record, Event):
                    output.events.append(record)
                else:
                    output.state_changes.append(record)
            detector.records.clear()


def _tick_statistics(env: np.ndarray) -> tuple[list, list, list]:
    """Per tick and channel: the highest and the median measured hop, and how many hops are not
    measured (NaN); a tick with no measured hop has NaN for both."""
    missing = np.isnan(env)
    if not missing.any():
        # np.median's own partition, on a copy with the hops last (contiguous): the same values,
        # in half the time of np.median over the middle axis.
        hops = env.shape[1]
        lower, upper = (hops - 1) // 2, hops // 2
        ordered = np.partition(np.ascontiguousarray(env.transpose(0, 2, 1)), (lower, upper))
        median = 0.5 * (ordered[..., lower] + ordered[..., upper])
        counts = np.zeros((env.shape[0], env.shape[2]), dtype=int)
        return ordered.max(axis=-1).tolist(), median.tolist(), counts.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ticks with no measured hop
        median = np.nanmedian(env, axis=1)
    return np.fmax.reduce(env, axis=1).tolist(), median.tolist(), missing.sum(axis=1).tolist()


def _join_measured(
    first: np.ndarray | None, n_first: int, second: np.ndarray | None, n_second: int
) -> np.ndarray | None:
    """Concatenate two measured-sample masks, where None means all measured."""
    if first is None and second is None:
        return None
    n_ch = (first if first is not None else second).shape[1]  # type: ignore[union-attr]
    return np.concatenate(
        [
            np.ones((n_first, n_ch), dtype=bool) if first is None else first,
            np.ones((n_second, n_ch), dtype=bool) if second is None else second,
        ]
    )


def _joined(outputs: list[PipelineOutput]) -> PipelineOutput:
    """Consecutive outputs as one."""
    if len(outputs) == 1:
        return outputs[0]
    joined = PipelineOutput(
        first_hop=outputs[0].first_hop, envelope=np.concatenate([o.envelope for o in outputs])
    )
    for o in outputs:
        joined.events += o.events
        joined.state_changes += o.state_changes
        joined.quality_changes += o.quality_changes
        joined.records += o.records
    return joined
