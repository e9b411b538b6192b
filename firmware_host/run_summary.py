"""Totals over a run (replay or live): events per channel and kind, time without usable signal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dsp.events import PHASE_ENDED, STATE_SIGNAL_LOST, Event, StateChange


@dataclass
class RunSummary:
    """Fed with every event and state change of a run; `as_dict` at the end."""

    channels: tuple[str, ...]
    duration_s: float = 0.0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    cramp_seconds: dict[str, float] = field(default_factory=dict)
    signal_lost_s: dict[str, float] = field(default_factory=dict)
    _lost_since: dict[str, float] = field(default_factory=dict)

    def add_events(self, events: list[Event]) -> None:
        for event in events:
            if event.phase != PHASE_ENDED:
                continue
            self.counts[(event.channel, event.kind)] += 1
            if event.kind == "cramp":
                self.cramp_seconds[event.channel] = (
                    self.cramp_seconds.get(event.channel, 0.0) + event.duration_s
                )

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
        return {
            "duration_s": round(duration_s, 3),
            "channels": {
                channel: {
                    "cramps": self.counts[(channel, "cramp")],
                    "movements": self.counts[(channel, "movement")],
                    "cramp_s": round(self.cramp_seconds.get(channel, 0.0), 1),
                    "signal_lost_s": round(self.signal_lost_s.get(channel, 0.0), 1),
                }
                for channel in self.channels
            },
        }

    def format_text(self) -> str:
        duration_s = self.duration_s
        data = self.as_dict()
        lines = [f"recording: {duration_s / 3600:.2f} h ({duration_s:.1f} s)"]
        for channel, figures in data["channels"].items():
            lines.append(
                f"  {channel}: {figures['cramps']} cramp(s) ({figures['cramp_s']:.0f} s), "
                f"{figures['movements']} movement(s), signal lost {figures['signal_lost_s']:.0f} s"
            )
        return "\n".join(lines)
