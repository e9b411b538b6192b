"""Totals over a run (replay or live): events per channel and kind, time without usable signal,
periodic limb movements, fasciculations and ECG on the channels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dsp.events import PHASE_ENDED, STATE_SIGNAL_LOST, Event, StateChange
from dsp.limb_movements import LimbMovementSummary, PlmFigures
from dsp.twitches import FasciculationSummary, SpikeFigures


@dataclass
class RunSummary:
    """Fed with every event and state change of a run; `as_dict` at the end."""

    channels: tuple[str, ...]
    duration_s: float = 0.0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    cramp_seconds: dict[str, float] = field(default_factory=dict)
    signal_lost_s: dict[str, float] = field(default_factory=dict)
    _lost_since: dict[str, float] = field(default_factory=dict)
    limb_movements: LimbMovementSummary | None = None
    fasciculations: FasciculationSummary | None = None

    def add_events(self, events: list[Event]) -> None:
        for event in events:
            if event.phase != PHASE_ENDED:
                continue
            self.counts[(event.channel, event.kind)] += 1
            if event.kind == "cramp":
                self.cramp_seconds[event.channel] = (
                    self.cramp_seconds.get(event.channel, 0.0) + event.duration_s
                )

    def add_limb_movements(self, summary: LimbMovementSummary | None) -> None:
        """The latest PLM figures (each pipeline output carries them all so far)."""
        if summary is not None:
            self.limb_movements = summary

    def add_fasciculations(self, summary: FasciculationSummary | None) -> None:
        """The latest fasciculation and heartbeat figures (each output carries them all so far)."""
        if summary is not None:
            self.fasciculations = summary

    def add_state_changes(self, changes: list[StateChange]) -> None:
        for change in changes:
            if change.state == STATE_SIGNAL_LOST:
                self._lost_since.setdefault(change.channel, change.at_s)
            elif change.channel in self._lost_since:
                since = self._lost_since.pop(change.channel)
                self.signal_lost_s[change.channel] = (
                    self.signal_lost_s.get(change.channel, 0.0) + change.at_s - since
                )

    def as_dict(self) -> dict[str, Any]:
        duration_s = self.duration_s
        for channel, since in list(self._lost_since.items()):
            self.signal_lost_s[channel] = self.signal_lost_s.get(channel, 0.0) + duration_s - since
            self._lost_since[channel] = duration_s
        plm = self.limb_movements
        spikes = self.fasciculations
        out: dict[str, Any] = {
            "duration_s": round(duration_s, 3),
            "channels": {
                channel: {
                    "cramps": self.counts[(channel, "cramp")],
                    "movements": self.counts[(channel, "movement")],
                    "cramp_s": round(self.cramp_seconds.get(channel, 0.0), 1),
                    "signal_lost_s": round(self.signal_lost_s.get(channel, 0.0), 1),
                    **(_plm_fields(plm.channels[channel]) if plm is not None else {}),
                    **(_spike_fields(spikes.channels[channel]) if spikes is not None else {}),
                }
                for channel in self.channels
            },
        }
        if plm is not None:
            out["plm"] = plm.to_dict()
        return out

    def format_text(self) -> str:
        duration_s = self.duration_s
        data = self.as_dict()
        lines = [f"recording: {duration_s / 3600:.2f} h ({duration_s:.1f} s)"]
        for channel, figures in data["channels"].items():
            plm = f", {figures['plm']} PLM ({_per_hour(figures)})" if "plm" in figures else ""
            lines.append(
                f"  {channel}: {figures['cramps']} cramp(s) ({figures['cramp_s']:.0f} s), "
                f"{figures['movements']} movement(s), signal lost {figures['signal_lost_s']:.0f} s"
                f"{plm}{_spike_text(figures)}"
            )
        if "plm" in data:
            combined = data["plm"]["combined"]
            lines.append(
                f"  legs together: {combined['plm']} PLM in {combined['plm_series']} series "
                f"({_per_hour(combined)}; periodic limb movements during the recording, WASM 2016 "
                "rules, sleep not known)"
            )
        return "\n".join(lines)


def _plm_fields(figures: PlmFigures) -> dict[str, Any]:
    return {"plm": figures.plm, "plm_per_hour": figures.to_dict()["plm_per_hour"]}


def _per_hour(figures: dict[str, Any], key: str = "plm_per_hour") -> str:
    index = figures[key]
    return "no good signal" if index is None else f"{index:.1f} per hour of good signal"


def _spike_fields(figures: SpikeFigures) -> dict[str, Any]:
    data = figures.to_dict()
    keys = ("fasciculations", "fasciculations_per_hour", "heartbeats", "ecg_s")
    return {key: data[key] for key in keys}


def _spike_text(figures: dict[str, Any]) -> str:
    if "fasciculations" not in figures:
        return ""
    text = (
        f", {figures['fasciculations']} fasciculation(s) "
        f"({_per_hour(figures, 'fasciculations_per_hour')})"
    )
    if figures["ecg_s"] > 0:
        text += f", ECG on the channel for {figures['ecg_s']:.0f} s (kept out of the envelope)"
    return text
