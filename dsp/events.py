"""What the detector reports: cramp/movement events, channel state changes, quality changes."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EVENT_SCHEMA = "crampwatch.event/1"
# The payload's keys, in order (DESIGN.md, schema crampwatch.event/1).
EVENT_FIELDS = (
    "schema",
    "event_id",
    "device",
    "channel",
    "kind",
    "phase",
    "start",
    "end",
    "start_s",
    "end_s",
    "duration_s",
    "peak_uv",
    "mean_uv",
    "floor_uv",
    "area_uvs",
    "median_freq_hz",
    "quality",
    "confidence",
    "mvc_percent",
    "envelope",
    "pipeline",
)

KIND_CRAMP = "cramp"
KIND_MOVEMENT = "movement"
PHASE_STARTED = "started"
PHASE_ENDED = "ended"

CONFIDENCE_HIGH = "high"
CONFIDENCE_LOW = "low"

STATE_IDLE = "idle"
STATE_MOVEMENT = "movement"
STATE_CRAMP = "cramp"
STATE_SIGNAL_LOST = "signal_lost"


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with millisecond precision and a `Z` suffix."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def stable_event_id(*parts: object) -> str:
    """An id that depends only on what identifies the event, so a replay gives the same id."""
    text = "|".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class EnvelopeTrace:
    """A downsampled envelope series around an event, for plotting: value i is at t0_s + i * dt_s
    (NaN, written as null: the envelope was not measured there)."""

    t0_s: float
    dt_s: float
    uv: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        uv = [round(v, 3) if math.isfinite(v) else None for v in self.uv]  # None: not measured
        return {"t0_s": self.t0_s, "dt_s": self.dt_s, "uv": uv}


@dataclass(frozen=True, slots=True)
class Event:
    """One cramp or movement on one channel; a cramp is reported `started` and then `ended`.

    `mvc_percent` is the mean envelope in % of the channel's maximal voluntary contraction (None
    without a calibration that has one). `confidence` says how sure a cramp is from what EMG can
    tell: None when it cannot be judged (no MVC), "low" for a sustained contraction weaker than a
    few per cent of MVC (quiet standing holds the calf there; a cramp rarely is), else "high".
    """

    event_id: str
    device: str
    channel: str
    kind: str
    phase: str
    start_s: float
    end_s: float | None
    duration_s: float
    peak_uv: float
    mean_uv: float
    floor_uv: float
    area_uvs: float
    median_freq_hz: float | None
    quality: str
    envelope: EnvelopeTrace | None
    pipeline: dict[str, Any]
    session_start: datetime
    mvc_percent: float | None = None
    confidence: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return self.session_start + timedelta(seconds=self.start_s)

    @property
    def end(self) -> datetime | None:
        if self.end_s is None:
            return None
        return self.session_start + timedelta(seconds=self.end_s)

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN event payload (schema crampwatch.event/1), JSON-ready."""
        end = self.end
        return {
            "schema": EVENT_SCHEMA,
            "event_id": self.event_id,
            "device": self.device,
            "channel": self.channel,
            "kind": self.kind,
            "phase": self.phase,
            "start": iso_utc(self.start),
            "end": iso_utc(end) if end is not None else None,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3) if self.end_s is not None else None,
            "duration_s": round(self.duration_s, 3),
            "peak_uv": round(self.peak_uv, 3),
            "mean_uv": round(self.mean_uv, 3),
            "floor_uv": round(self.floor_uv, 3),
            "area_uvs": round(self.area_uvs, 3),
            "median_freq_hz": (
                round(self.median_freq_hz, 2) if self.median_freq_hz is not None else None
            ),
            "quality": self.quality,
            "confidence": self.confidence,
            "mvc_percent": round(self.mvc_percent, 2) if self.mvc_percent is not None else None,
            "envelope": self.envelope.to_dict() if self.envelope is not None else None,
            "pipeline": self.pipeline,
            **self.extra,
        }


@dataclass(frozen=True, slots=True)
class StateChange:
    """A channel moved to a new state (idle, movement, cramp, signal_lost) at `at_s`."""

    channel: str
    state: str
    at_s: float


QUALITY_NOTES = frozenset({"ecg"})
"""Things about a channel's signal that the pipeline handles: reported, but the signal is good."""


@dataclass(frozen=True, slots=True)
class QualityChange:
    """A channel's signal quality changed at `at_s`; `problems` is empty when the signal is good
    (or holds only notes, such as ``ecg``: the heart's spikes are kept out of the envelope)."""

    channel: str
    at_s: float
    problems: tuple[str, ...]

    @property
    def good(self) -> bool:
        return QUALITY_NOTES.issuperset(self.problems)
