"""The device's MQTT payloads (DESIGN.md, "Contracts"); the topics are in `messaging.topics`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from dsp.events import STATE_SIGNAL_LOST, Event, QualityChange, iso_utc
from dsp.limb_movements import LimbMovementSummary, PlmFigures
from dsp.twitches import FasciculationSummary, SpikeFigures
from firmware_host.device.session_control import NIGHT_TAG, SessionTag
from messaging.topics import (
    ENVELOPE_SCHEMA,
    MARKER_SCHEMA,
    QUALITY_SCHEMA,
    STATE_SCHEMA,
)


def to_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def event_payload(event: Event, session: SessionTag = NIGHT_TAG) -> bytes:
    return to_json({**event.to_dict(), **session.fields()})


def quality_payload(
    change: QualityChange, device: str, session_start: datetime, session: SessionTag = NIGHT_TAG
) -> bytes:
    return to_json(
        {
            "schema": QUALITY_SCHEMA,
            "device": device,
            "channel": change.channel,
            "at": iso_utc(session_start + timedelta(seconds=change.at_s)),
            "at_s": round(change.at_s, 3),
            "good": change.good,
            "problems": list(change.problems),
            **session.fields(),
        }
    )


def marker_payload(
    device: str, wall: str, at_s: float, source: str, session: SessionTag = NIGHT_TAG
) -> bytes:
    """A marker button press (the wearer woke with a cramp; a hold starts or ends a session)."""
    return to_json(
        {"schema": MARKER_SCHEMA, "device": device, "at": wall, "at_s": at_s, "source": source,
         **session.fields()}
    )  # fmt: skip


NIGHT_TURNS_AT_HOUR = (
    12  # a night runs 18:00-12:00 local time (DESIGN.md): its count starts at noon
)


def night_of(moment: datetime, tz: tzinfo | None = None) -> date:
    """The night an instant belongs to, named by the date it starts: from 12:00 local time one
    day to 12:00 the next (the evening, the night, the morning after)."""
    local = moment.astimezone(tz)
    return (local - timedelta(hours=NIGHT_TURNS_AT_HOUR)).date()


class ChannelStates:
    """The retained state message: per channel the state and since when, its signal problems,
    how much of the session had good signal and the mean EMG level since the last state message;
    tonight's cramp count (cramps that started since 12:00 local time outside named sessions; it
    starts again from 0 when the daemon restarts); the periodic limb movements so far (WASM 2016
    rules, per hour of good signal; sleep not known); per channel the fasciculations so far (per
    hour of good signal); and, from `storage`, where the outbox keeps messages and how the
    recording disk stands.

    A recording is cut into sessions where a named session (dialysis, ...) starts or ends
    (`begin`): each has its own `session_start`, recorded and good seconds, so that a named
    session's signal is never counted for a night. A named session's state carries its kind and
    id and `cramps_session`, and leaves out the PLM figures (a sleep measure); a night session
    after another counts PLM from its own start. Every session counts its own fasciculations
    (cramp-fasciculation syndrome is of interest during dialysis too)."""

    def __init__(
        self,
        device: str,
        channels: tuple[str, ...],
        session_start: datetime,
        *,
        tz: tzinfo | None = None,
        storage: Callable[[], dict[str, Any]] | None = None,
        session: SessionTag = NIGHT_TAG,
    ) -> None:
        self.device = device
        self.recording_start = session_start
        self.session_start = session_start  # of the current session (`begin` moves it)
        self.origin_s = 0.0  # the current session's start, in seconds from the recording's
        self.sessions = 0  # sessions begun after the first (the recording is cut at each)
        self.session = session
        self.session_cramps = 0
        self._plm_base: LimbMovementSummary | None = None
        self._spike_base: FasciculationSummary | None = None
        self.tz = tz
        self.storage = storage
        self.channels = channels
        self.states = {c: ("idle", 0.0) for c in channels}
        self.problems: dict[str, tuple[str, ...]] = {c: () for c in channels}
        self.lost_s = dict.fromkeys(channels, 0.0)  # closed signal-lost stretches
        self.night = night_of(session_start, tz)
        self.cramps = 0
        self._level_sum = np.zeros(len(channels))
        self._level_count = np.zeros(len(channels))
        self.plm: LimbMovementSummary | None = None
        self.fasciculations: FasciculationSummary | None = None

    def set_limb_movements(self, summary: LimbMovementSummary | None) -> bool:
        """Take the latest PLM figures; True when a count changed (worth a state message)."""
        if summary is None:
            return False
        before = self.plm
        self.plm = summary
        return before is None or _plm_counts(before) != _plm_counts(summary)

    def set_fasciculations(self, summary: FasciculationSummary | None) -> None:
        """Take the latest fasciculation figures (they go out with the next state message;
        twitches come every second or two, so they do not call for one of their own)."""
        if summary is not None:
            self.fasciculations = summary

    def begin(self, at_s: float, session: SessionTag) -> None:
        """A new session from `at_s` seconds into the recording (take the previous one's last
        `payload(at_s)` first): good signal, cramps and PLM counted again from there."""
        self._roll_night(at_s)
        self.sessions += 1
        self.origin_s = at_s
        self.session_start = self.recording_start + timedelta(seconds=at_s)
        self.session = session
        self.session_cramps = 0
        self.lost_s = dict.fromkeys(self.channels, 0.0)
        self._plm_base = self.plm
        self._spike_base = self.fasciculations

    def reanchor(self, recording_start: datetime) -> None:
        """The wall clock stepped: the recording (and so this session) started at another time."""
        self.recording_start = recording_start
        self.session_start = recording_start + timedelta(seconds=self.origin_s)

    def change(self, channel: str, state: str, at_s: float) -> None:
        previous, since = self.states[channel]
        if state == "cramp" and previous != "cramp":
            if self.session.named:
                self.session_cramps += 1
            else:
                self._roll_night(at_s)
                self.cramps += 1
        if previous == STATE_SIGNAL_LOST and state != STATE_SIGNAL_LOST:
            self.lost_s[channel] += max(0.0, at_s - max(since, self.origin_s))
        self.states[channel] = (state, at_s)

    def quality(self, channel: str, problems: tuple[str, ...]) -> None:
        self.problems[channel] = tuple(problems)

    def add_envelope(self, envelope: np.ndarray) -> None:
        """Envelope hops (n, channels) in uV: their mean goes into the next state message."""
        if len(envelope):
            finite = np.isfinite(envelope)
            self._level_sum += np.where(finite, envelope, 0.0).sum(axis=0)
            self._level_count += finite.sum(axis=0)

    def payload(self, elapsed_s: float) -> bytes:
        """The state at `elapsed_s` seconds into the recording."""
        self._roll_night(elapsed_s)
        levels = self._take_levels()
        plm = self.plm if not self.session.named else None
        base = self._plm_base
        spikes, spike_base = self.fasciculations, self._spike_base
        recorded_s = max(0.0, elapsed_s - self.origin_s)
        document: dict[str, Any] = {
            "schema": STATE_SCHEMA,
            "device": self.device,
            "session_start": iso_utc(self.session_start),
            "recorded_s": round(recorded_s, 3),
            "night": self.night.isoformat(),
            "cramps_tonight": self.cramps,
            **self.session.fields(),
            "recording_start": iso_utc(self.recording_start),
            **({"cramps_session": self.session_cramps} if self.session.named else {}),
            **(
                _plm_fields(plm.combined, "plm_tonight", base.combined if base else None)
                if plm is not None else {}
            ),
            **(
                {"fasciculations": _session_fasciculations(spikes, spike_base)}
                if spikes is not None else {}
            ),
            "channels": {
                channel: {
                    "state": state,
                    "since": iso_utc(self.recording_start + timedelta(seconds=at_s)),
                    "since_s": round(at_s - self.origin_s, 3),
                    "good_s": round(max(0.0, recorded_s - self._lost(channel, elapsed_s)), 3),
                    "problems": list(self.problems[channel]),
                    "level_uv": levels[i],
                    **(
                        _plm_fields(plm.channels[channel], "plm",
                                    base.channels.get(channel) if base else None)
                        if plm is not None else {}
                    ),
                    **(
                        _spike_fields(spikes.channels[channel],
                                      spike_base.channels.get(channel) if spike_base else None)
                        if spikes is not None else {}
                    ),
                }
                for i, (channel, (state, at_s)) in enumerate(self.states.items())
            },
        }  # fmt: skip
        if self.storage is not None:
            document["storage"] = self.storage()
        return to_json(document)

    def _roll_night(self, at_s: float) -> None:
        night = night_of(self.recording_start + timedelta(seconds=at_s), self.tz)
        if night != self.night:
            self.night, self.cramps = night, 0

    def _take_levels(self) -> list[float | None]:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self._level_sum / self._level_count
        self._level_sum[:] = 0.0
        self._level_count[:] = 0.0
        return [round(float(m), 2) if np.isfinite(m) else None for m in means]

    def _lost(self, channel: str, elapsed_s: float) -> float:
        state, since = self.states[channel]
        open_s = elapsed_s - max(since, self.origin_s) if state == STATE_SIGNAL_LOST else 0.0
        return self.lost_s[channel] + max(0.0, open_s)


def _plm_counts(summary: LimbMovementSummary) -> tuple[int, ...]:
    figures = [summary.combined, *summary.channels.values()]
    return tuple(f.plm for f in figures) + tuple(f.plm_series for f in figures)


def _plm_fields(
    figures: PlmFigures, count_key: str, base: PlmFigures | None = None
) -> dict[str, Any]:
    """PLM count, series and index (per hour of good signal) for the state message; with
    `base` (the figures when the session began), those since then."""
    if base is not None:
        figures = PlmFigures(
            plm=max(0, figures.plm - base.plm),
            plm_series=max(0, figures.plm_series - base.plm_series),
            scored_s=max(0.0, figures.scored_s - base.scored_s),
        )
    index = figures.plm_per_hour
    return {
        count_key: figures.plm,
        "plm_series": figures.plm_series,
        "plm_per_hour": round(index, 2) if index is not None else None,
    }


def _session_fasciculations(spikes: FasciculationSummary, base: FasciculationSummary | None) -> int:
    """This session's fasciculations over all channels (each channel is its own muscle)."""
    return sum(
        _spike_fields(figures, base.channels.get(channel) if base else None)["fasciculations"]
        for channel, figures in spikes.channels.items()
    )


def _spike_fields(figures: SpikeFigures, base: SpikeFigures | None = None) -> dict[str, Any]:
    """Fasciculations and their rate (per hour of good signal) for the state message; with `base`
    (the figures when the session began), those since then."""
    if base is not None:
        figures = SpikeFigures(
            fasciculations=max(0, figures.fasciculations - base.fasciculations),
            good_s=max(0.0, figures.good_s - base.good_s),
        )
    index = figures.fasciculations_per_hour
    return {
        "fasciculations": figures.fasciculations,
        "fasciculations_per_hour": round(index, 2) if index is not None else None,
    }


class EnvelopeSummary:
    """About once a second: mean and peak of the recent envelope per channel (live views)."""

    def __init__(
        self,
        device: str,
        channels: tuple[str, ...],
        hop_s: float,
        session_start: datetime,
        interval_s: float = 1.0,
        session: Callable[[], SessionTag] = lambda: NIGHT_TAG,
    ) -> None:
        self.device, self.channels, self.hop_s = device, channels, hop_s
        self.session_start = session_start
        self.session = session
        self.hops_per_summary = max(1, round(interval_s / hop_s))
        self._pending: list[np.ndarray] = []
        self._pending_hops = 0
        self._next_hop = 0

    def add(self, first_hop: int, envelope: np.ndarray) -> list[bytes]:
        """Take envelope hops; return the summaries that are complete."""
        if len(envelope) == 0:
            return []
        if not self._pending:
            self._next_hop = first_hop
        self._pending.append(envelope)
        self._pending_hops += len(envelope)
        if self._pending_hops < self.hops_per_summary:
            return []
        hops = np.concatenate(self._pending)
        n = self.hops_per_summary
        whole = len(hops) // n * n
        rest = hops[whole:]
        payloads = [self._payload(self._next_hop + i, hops[i : i + n]) for i in range(0, whole, n)]
        self._next_hop += whole
        self._pending = [rest] if len(rest) else []
        self._pending_hops = len(rest)
        return payloads

    def _payload(self, first_hop: int, hops: np.ndarray) -> bytes:
        end_s = (first_hop + len(hops)) * self.hop_s
        channels: dict[str, Any] = {}
        for i, name in enumerate(self.channels):
            column = hops[:, i]
            good = column[np.isfinite(column)]
            channels[name] = {
                "mean_uv": round(float(good.mean()), 2) if len(good) else None,
                "max_uv": round(float(good.max()), 2) if len(good) else None,
            }
        return to_json(
            {
                "schema": ENVELOPE_SCHEMA,
                "device": self.device,
                "at": iso_utc(self.session_start + timedelta(seconds=end_s)),
                "at_s": round(end_s, 3),
                "interval_s": round(len(hops) * self.hop_s, 3),
                "channels": channels,
                **self.session().fields(),
            }
        )
