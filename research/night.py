"""One recording through the pipeline, kept for research: its events, per-channel figures,
signal-lost stretches, markers and a bounded-memory envelope for plots (`Night`); or the same
read back from an events file that `crampwatch replay` wrote."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dsp.annotations import Annotation
from dsp.config import PipelineConfig
from dsp.evaluation import KindScore, score_kind, to_detections
from dsp.events import EVENT_FIELDS, EVENT_SCHEMA, PHASE_ENDED, STATE_SIGNAL_LOST
from dsp.overrides import apply_settings
from dsp.pipeline import PipelineOutput
from firmware_host.commands.evaluate import EventsFile, match_truth_channels
from firmware_host.commands.replay import open_for_command, pipeline_config, replay
from firmware_host.event_output import EventWriter
from hardware.recordings import Recording
from hardware.recordings.errors import PYTHON
from research.envelope_bins import EnvelopeBinner, EnvelopeSeries
from research.sidecar import Sidecar, load_sidecar, sidecar_path

Stretch = tuple[float, float]
_EPOCH_YEAR = 1970  # events of a recording without a known start are dated from 1970

# Event fields kept for event tables (batch's events.csv, `Night.events_frame()`): the event's own
# fields less what every row of a table would repeat or rarely has; the envelope trace and the
# pipeline block stay in the events file.
_NOT_IN_TABLES = ("schema", "device", "phase", "confidence", "mvc_percent", "envelope", "pipeline")
EVENT_TABLE_FIELDS = tuple(name for name in EVENT_FIELDS if name not in _NOT_IN_TABLES)


@dataclass
class Night:
    """A recording's detections and what surrounds them; times in seconds from its start."""

    name: str
    channels: tuple[str, ...]
    duration_s: float
    figures: dict[str, dict[str, Any]]  # per channel: cramps, movements, cramp_s, signal_lost_s
    events: list[dict[str, Any]]  # ended events as in the events file (without `pipeline`)
    signal_lost: dict[str, list[Stretch]] = field(default_factory=dict)
    problems: dict[str, list[tuple[float, float, tuple[str, ...]]]] = field(default_factory=dict)
    markers: list[float] = field(default_factory=list)
    envelope: EnvelopeSeries | None = None
    start: datetime | None = None
    path: Path | None = None
    format: str | None = None
    fs: float | None = None
    source_id: str | None = None
    settings_hash: str | None = None
    settings: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.duration_s / 3600.0

    def count(self, kind: str, channel: str | None = None) -> int:
        """Ended events of `kind` (on `channel`, or on any)."""
        return sum(1 for e in self.events if e["kind"] == kind and channel in (None, e["channel"]))

    def score(
        self,
        truth: Sequence[Annotation],
        kinds: Sequence[str] = ("cramp",),
        *,
        min_overlap_s: float = 0.0,
        channel_map: dict[str, str] | None = None,
    ) -> dict[str, KindScore]:
        """Scores against ground truth, as `crampwatch evaluate` gives them; truth channels
        that fit none of the recording's are an error (see `channel_map`)."""
        detections = to_detections(self.events)
        events = EventsFile(tuple(detections), self.duration_s, self.channels)
        matched = match_truth_channels(truth, events, channel_map)
        hours = self.hours if self.duration_s > 0 else None
        return {kind: score_kind(detections, matched, kind, min_overlap_s, hours) for kind in kinds}

    def events_frame(self) -> Any:
        """The events as a pandas DataFrame, one row per event (times in seconds from the start
        and as UTC timestamps; the envelope trace stays in `events`)."""
        pandas = _pandas()
        columns = list(EVENT_TABLE_FIELDS)
        frame = pandas.DataFrame(
            [{c: e.get(c) for c in columns} for e in self.events], columns=columns
        )
        for column in ("start", "end"):
            frame[column] = pandas.to_datetime(frame[column], utc=True)
        return frame

    def channels_frame(self) -> Any:
        """Per-channel figures as a pandas DataFrame (the columns of the batch's recordings
        table: hours, good-signal hours, cramps, cramp minutes, movements, signal-lost minutes)."""
        pandas = _pandas()
        rows = []
        for channel in self.channels:
            figures = self.figures.get(channel, {})
            lost_s = float(figures.get("signal_lost_s", 0.0))
            rows.append(
                {
                    "channel": channel,
                    "hours": self.hours,
                    "good_signal_hours": max(0.0, self.duration_s - lost_s) / 3600,
                    "cramps": figures.get("cramps", 0),
                    "cramp_minutes": float(figures.get("cramp_s", 0.0)) / 60,
                    "movements": figures.get("movements", 0),
                    "plm": figures.get("plm"),
                    "plm_per_hour": figures.get("plm_per_hour"),
                    "signal_lost_minutes": lost_s / 60,
                }
            )
        return pandas.DataFrame(rows).set_index("channel")

    def envelope_frame(self) -> Any:
        """The binned envelope as a pandas DataFrame: index seconds from the start, columns
        (channel, low/mean/high) in uV."""
        pandas = _pandas()
        if self.envelope is None:
            raise ValueError(
                "this night has no envelope (replayed with envelope=False, or read "
                "from an events file)"
            )
        env = self.envelope
        data = {
            (channel, stat): getattr(env, stat)[:, i]
            for i, channel in enumerate(self.channels)
            for stat in ("low", "mean", "high")
        }
        frame = pandas.DataFrame(data, index=pandas.Index(env.t_s, name="t_s"))
        frame.columns = pandas.MultiIndex.from_tuples(frame.columns, names=["channel", "stat"])
        return frame

    def plot(self, out: str | Path, *, tz: Any = None) -> Path:
        """Draw the night to `out` (.png, .svg or .pdf); see `crampwatch plot`."""
        from research.plots import plot_night

        return plot_night(self, Path(out), tz=tz)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as error:
        raise ImportError("DataFrames need pandas: pip install 'crampwatch[research]'") from error
    return pandas


class _Collector:
    """Sees every pipeline output of a replay and keeps what a Night needs."""

    def __init__(self, config: PipelineConfig, envelope: bool, max_bins: int) -> None:
        self.channels = config.channels
        hop_s = config.envelope.hop_samples(config.fs) / config.fs
        self.binner = EnvelopeBinner(config.n_channels, hop_s, max_bins) if envelope else None
        self.events: list[dict[str, Any]] = []
        self.lost: dict[str, list[Stretch]] = {c: [] for c in config.channels}
        self.problems: dict[str, list[tuple[float, float, tuple[str, ...]]]] = {
            c: [] for c in config.channels
        }
        self._lost_since: dict[str, float] = {}
        self._problem_since: dict[str, tuple[float, tuple[str, ...]]] = {}

    def __call__(self, output: PipelineOutput) -> None:
        if self.binner is not None:
            self.binner.add(output.first_hop, output.envelope)
        for event in output.events:
            if event.phase == PHASE_ENDED:
                payload = event.to_dict()
                payload.pop("pipeline", None)
                self.events.append(payload)
        for change in output.state_changes:
            if change.state == STATE_SIGNAL_LOST:
                self._lost_since.setdefault(change.channel, change.at_s)
            elif change.channel in self._lost_since:
                self.lost[change.channel].append(
                    (self._lost_since.pop(change.channel), change.at_s)
                )
        for quality in output.quality_changes:
            self._problem(quality.channel, quality.at_s, quality.problems)

    def _problem(self, channel: str, at_s: float, problems: tuple[str, ...]) -> None:
        if channel in self._problem_since:
            since, before = self._problem_since.pop(channel)
            self.problems[channel].append((since, at_s, before))
        if problems:
            self._problem_since[channel] = (at_s, problems)

    def close(self, duration_s: float) -> None:
        for channel, since in self._lost_since.items():
            self.lost[channel].append((since, duration_s))
        for channel, (since, problems) in self._problem_since.items():
            self.problems[channel].append((since, duration_s, problems))
        self._lost_since.clear()
        self._problem_since.clear()


def analyse(
    recording: Recording,
    config: PipelineConfig,
    *,
    writer: EventWriter | None = None,
    start: datetime | None = None,
    envelope: bool = True,
    max_bins: int = 2048,
    progress: bool = False,
) -> Night:
    """Replay `recording` with `config` (the `crampwatch replay` code path, writing to `writer`
    when given) and keep its Night; `envelope` keeps a binned envelope for plots."""
    collector = _Collector(config, envelope, max_bins)
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        summary = replay(
            recording,
            config,
            writer or EventWriter(devnull, "jsonl"),
            start=start,
            progress=progress,
            observe=collector,
        )
    collector.close(summary.duration_s)
    info = recording.info
    markers = [
        note.onset_s
        for note in recording.annotations()
        if note.text.strip().lower().startswith("marker")
    ]
    return Night(
        name=info.path.name,
        channels=config.channels,
        duration_s=summary.duration_s,
        figures=summary.as_dict()["channels"],
        events=collector.events,
        signal_lost=collector.lost,
        problems=collector.problems,
        markers=markers,
        envelope=collector.binner.series() if collector.binner is not None else None,
        start=start,
        path=info.path,
        format=info.format,
        fs=config.fs,
        source_id=info.source_id,
        settings_hash=config.settings_hash(),
        settings=config.settings(),
    )


def parse_start(text: str | None) -> datetime | None:
    """A recording's start from ISO 8601 text (UTC unless it has an offset)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"start {text!r} is not an ISO 8601 time such as 2026-11-21T22:30:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def replay_file(
    path: Path,
    args: argparse.Namespace,
    *,
    settings: dict[str, Any] | None = None,
    writer: EventWriter | None = None,
    envelope: bool = True,
    progress: bool = False,
    option_names: Mapping[str, str] = PYTHON,
) -> tuple[Night, Sidecar | None]:
    """Open the recording at `path` as `crampwatch replay` would with the options `args` (a
    sidecar beside it overriding them), apply `settings` ({key: value}) and replay it. Errors
    name the options as `option_names` spell them (Python's argument names by default)."""
    found = sidecar_path(path)
    sidecar = load_sidecar(found) if found else None
    if sidecar is not None:
        args = sidecar.apply(args)
    start = parse_start(getattr(args, "start", None))
    notes = []
    with open_for_command(args, path, option_names) as recording:
        info = recording.info
        units = info.units
        if units is None:
            units = "uV"
            notes.append(f"{info.path.name} does not state its units; assumed microvolts")
        names = sidecar.channel_names(info.channels) if sidecar is not None else info.channels
        config = apply_settings(pipeline_config(args, info.fs, names, units), settings or {})
        night = analyse(
            recording, config, writer=writer, start=start, envelope=envelope, progress=progress
        )
    night.notes = notes
    return night, sidecar


class EventsFileError(ValueError):
    """An events file cannot be read back; the message says where."""


def read_events_file(path: Path) -> Night:
    """A Night from the JSON lines `crampwatch replay` wrote: events (with their envelope
    traces), quality problems, markers and the closing summary; no whole-night envelope."""
    events: list[dict[str, Any]] = []
    markers: list[float] = []
    quality: list[dict[str, Any]] = []
    summary: dict[str, Any] | None = None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EventsFileError(f"cannot read the events file {path}: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise EventsFileError(
                f"{path}:{number}: not a JSON line ({error.msg}); give the JSON lines events "
                "file that `crampwatch replay` writes (not its CSV)"
            ) from None
        kind = record.get("type")
        if record.get("schema") == EVENT_SCHEMA and record.get("phase") == PHASE_ENDED:
            record.pop("pipeline", None)
            events.append(record)
        elif kind == "marker" and isinstance(record.get("at_s"), int | float):
            markers.append(float(record["at_s"]))
        elif kind == "quality":
            quality.append(record)
        elif kind == "summary":
            summary = record
    if summary is None:
        raise EventsFileError(
            f"{path} has no summary line; it is not a whole events file from `crampwatch "
            "replay` (was the replay interrupted?)"
        )
    channels = tuple(summary.get("channels", {}))
    duration_s = float(summary.get("duration_s") or 0.0)
    problems: dict[str, list[tuple[float, float, tuple[str, ...]]]] = {c: [] for c in channels}
    open_since: dict[str, tuple[float, tuple[str, ...]]] = {}
    for change in quality:
        channel, at_s = change.get("channel"), float(change.get("at_s", 0.0))
        if channel in open_since:
            since, before = open_since.pop(channel)
            problems.setdefault(channel, []).append((since, at_s, before))
        if change.get("problems"):
            open_since[channel] = (at_s, tuple(change["problems"]))
    for channel, (since, before) in open_since.items():
        problems.setdefault(channel, []).append((since, duration_s, before))
    file_name = summary.get("file")
    return Night(
        name=Path(file_name).name if file_name else Path(path).name,
        channels=channels,
        duration_s=duration_s,
        figures=summary.get("channels", {}),
        events=events,
        problems=problems,
        markers=markers,
        start=_start_from_events(events),
        path=Path(file_name) if file_name else None,
        fs=summary.get("fs"),
        source_id=summary.get("source_id"),
    )


def _start_from_events(events: list[dict[str, Any]]) -> datetime | None:
    """The recording's start from an event's wall time, unless it was never given (1970)."""
    for event in events:
        try:
            moment = datetime.fromisoformat(str(event["start"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        start = moment - timedelta(seconds=float(event["start_s"]))
        return None if start.astimezone(UTC).year <= _EPOCH_YEAR else start
    return None
