"""Recording a night to disk as it happens, and reading it back.

One directory per night (session)::

    night.json             metadata (format, device, start, rate, channels, scaling, segments)
    samples-000000.cwz     samples: compressed records (`sample_codec`), a new segment every
    samples-000001.cwz     `segment_s` seconds of signal (and after a pause)
    events.jsonl           events, quality changes and marker presses, as `crampwatch run --out`

Samples are stored in the units the pipeline takes them in (`scaling.units`, volts at the ADC input
for the live converters). With a known ADC step (`lsb_v`) they are stored as the ADC codes (value /
step) and read back as code x step, bit for bit what the driver delivered: as int16 differences with
zlib when every code fits 16 bits (both converters), else as float32; without a known step, as
float32 values. NaN (a missing sample) is kept. Nights recorded by earlier versions
(`crampwatch.night/1`: float32 frames in `samples-*.f32`) are still read.

Durability: samples reach the operating system at least every `write_through_s` (0.5 s) of signal,
each time as a record that decodes on its own, so a killed process loses at most that; event and
marker lines are written and fsync'ed at once; sample files are fsync'ed every `fsync_s` (5 s) of
signal, on rotation and on close. night.json is replaced atomically (temp file, fsync, rename).

The disk may fill up or fail: with a `RecordingBudget`, each write first makes sure it leaves the
budget's free-space floor (removing the oldest other nights if need be); when it would not, or when
the disk refuses a write, the recording pauses (an error in the log, `status()` says so) and is tried
again every `retry_s` of signal, resuming in a new segment. Stretches not recorded read back as
missing samples. No disk problem raises out of the recorder once it has started.

`open_night` reads a night cut short at any point: a record cut short is ignored, segments missing
from a stale night.json are found on disk, a torn last line of events.jsonl is skipped. Memory is
bounded: at most `write_through_s` of samples is held while recording, one read block while reading.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsp import __version__
from dsp.config import DEVICE_ID, ConfigError, PipelineConfig, ScalingConfig
from dsp.events import Event, QualityChange, iso_utc
from firmware_host.device import sample_codec
from firmware_host.device.night_budget import RecordingBudget
from firmware_host.event_output import EventWriter
from hardware.closing import ClosedOnExit
from hardware.recordings.recording import rechunk

if TYPE_CHECKING:
    from dsp.pipeline import PipelineOutput

log = logging.getLogger("crampwatch.recording")

NIGHT_FORMAT = "crampwatch.night/2"
NIGHT_FORMAT_V1 = "crampwatch.night/1"
METADATA_FILE = "night.json"
EVENTS_FILE = "events.jsonl"
SAMPLE_ENCODING = "crampwatch.records/1"  # sample_codec's records in a zlib stream
SAMPLE_DTYPE_V1 = np.dtype("<f4")
_SEGMENT_NAME = "samples-{:06d}.cwz"
_SEGMENT_RE = re.compile(r"samples-(\d{6})\.cwz")
_SEGMENT_RE_V1 = re.compile(r"samples-(\d{6})\.f32")
_READ_FRAMES = 1 << 16
_UNIT_VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6}
STATE_RECORDING, STATE_PAUSED, STATE_CLOSED = "recording", "paused", "closed"
_REMIND_S = 600.0  # a disk that keeps failing is said loudly at most this often (of signal)


class NightError(ValueError):
    """A night directory cannot be recorded or read; the message says what to do."""


def night_directory(root: Path, started: datetime, device: str) -> Path:
    """Where a night that starts at `started` goes: ROOT/YYYY-MM-DDTHH-MM-SSZ_DEVICE."""
    return Path(root) / f"{started.astimezone(UTC):%Y-%m-%dT%H-%M-%SZ}_{device}"


def stored_step(scaling: ScalingConfig, lsb_v: float | None) -> float | None:
    """One ADC step in input units (what a stored code is multiplied by), or None if unknown."""
    if scaling.units == "counts":
        return 1.0
    if lsb_v is None:
        return None
    return lsb_v / _UNIT_VOLTS[scaling.units]


class _LineSink:
    """A text stream for EventWriter: each line goes to the OS in one write (no buffering); a
    line the disk refuses is counted, never raised, and the next one starts on a fresh line."""

    def __init__(self, recorder: NightRecorder) -> None:
        self.recorder = recorder
        self.torn = False

    def write(self, text: str) -> int:
        self.recorder._write_line(self, text.encode("utf-8"))
        return len(text)


@dataclass
class _Segment:
    index: int
    first_sample: int
    fd: int | None
    writer: sample_codec.SegmentWriter
    frames: int = 0  # recorded frames, from first_sample on
    unsynced: int = 0


class NightRecorder(ClosedOnExit):
    """Record one night: `write` sample blocks, `marker`, `event`, `quality`; `close` at the end.

    `samples` given to `write` have shape (n, channels), in `scaling.units` (volts at the ADC input
    from the live converters), NaN where a sample is missing, consecutive from the session's first
    sample. `started` is the UTC time of that first sample.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fs: float,
        channels: tuple[str, ...],
        scaling: ScalingConfig,
        lsb_v: float | None,
        started: datetime,
        device: str,
        segment_s: float = 3600.0,
        write_through_s: float = 0.5,
        fsync_s: float = 5.0,
        budget: RecordingBudget | None = None,
        retry_s: float = 30.0,
    ) -> None:
        _check_settings(fs, channels, scaling, lsb_v, started, segment_s)
        if not DEVICE_ID.fullmatch(device):
            raise ValueError(f"device id {device!r} may use only letters, digits, '-' and '_'")
        self.directory = Path(directory)
        self.fs, self.channels, self.scaling = float(fs), tuple(channels), scaling
        self.lsb_v, self.device = lsb_v, device
        self.started = started.astimezone(UTC)
        self.segment_frames = max(1, round(segment_s * fs))
        self.budget = budget
        self._step = stored_step(scaling, lsb_v)
        self._write_frames = max(1, math.ceil(write_through_s * fs))
        self._fsync_frames = max(1, math.ceil(fsync_s * fs))
        self._retry_frames = max(1, math.ceil(retry_s * fs))
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self.n_samples = 0
        self.lost_frames = 0  # frames that could not be recorded (paused)
        self.lost_lines = 0  # event/marker lines that could not be written
        self.bytes_written = 0
        self._segments: list[dict[str, Any]] = []
        self._segment: _Segment | None = None
        self._events_fd: int | None = None
        self._sink = _LineSink(self)
        self._writer = EventWriter(self._sink, "jsonl")  # type: ignore[arg-type]
        self.problem: str | None = None
        self._retry_at = 0
        self._loud_at: int | None = None  # sample at which a pause was last logged as an error
        self._episode_loud = True
        self._closed = False
        if (self.directory / METADATA_FILE).exists():
            raise NightError(
                f"{self.directory} already holds a night; record each night into a new directory"
            )
        self._start()

    @classmethod
    def for_config(
        cls,
        directory: Path,
        config: PipelineConfig,
        *,
        started: datetime,
        lsb_v: float | None = None,
        **options: Any,
    ) -> NightRecorder:
        """A recorder for what a pipeline configuration describes (rate, channels, scaling, device)."""
        return cls(
            directory,
            fs=config.fs,
            channels=config.channels,
            scaling=config.scaling,
            lsb_v=lsb_v,
            started=started,
            device=config.device,
            **options,
        )

    # --- state -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self._closed:
            return STATE_CLOSED
        return STATE_RECORDING if self.problem is None else STATE_PAUSED

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def status(self) -> dict[str, Any]:
        """For the device's state message and the log."""
        document: dict[str, Any] = {
            "state": self.state,
            "night": self.directory.name,
            "recorded_s": round((self.n_samples - self.lost_frames) / self.fs, 1),
            "lost_s": round(self.lost_frames / self.fs, 1),
            "night_mb": round(self.bytes_written / 1e6, 2),
            "problem": self.problem,
        }
        if self.budget is not None:
            document.update(self.budget.status())
        return document

    # --- samples ---------------------------------------------------------------------------

    def write(self, samples: np.ndarray) -> None:
        """Append consecutive samples, shape (n, channels); NaN marks a missing sample."""
        self._check_open()
        codes = self._encoded(samples)
        if not len(codes):
            return
        self._pending.append(codes)
        self._pending_frames += len(codes)
        self.n_samples += len(codes)
        if self._pending_frames >= self._write_frames:
            self._write_through()

    def flush(self) -> None:
        """Write everything held to the OS and fsync it (e.g. before an expected power-off)."""
        self._check_open()
        self._write_through()
        if self._segment is not None:
            try:
                self._sync_segment()
            except OSError as error:
                self._pause(f"the disk refused a write ({error})")

    def _encoded(self, samples: np.ndarray) -> np.ndarray:
        array = np.asarray(samples, dtype=np.float64)
        if array.ndim == 1 and len(self.channels) == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] != len(self.channels):
            raise ValueError(
                f"samples must have shape (n, {len(self.channels)}) for channels "
                f"{list(self.channels)}, got {array.shape}"
            )
        if self._step is None:
            return array.copy()
        codes = array / self._step
        whole = np.rint(codes)
        return np.where(np.abs(codes - whole) <= 1e-6, whole, codes)

    def _write_through(self) -> None:
        if not self._pending:
            return
        block = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        first = self.n_samples - len(block)
        self._pending, self._pending_frames = [], 0
        while len(block):
            segment = self._segment or self._open_segment(first)
            if segment is None:
                self.lost_frames += len(block)
                return
            room = segment.first_sample + self.segment_frames - first
            part, block = block[:room], block[room:]
            if not self._write_record(segment, first, part):
                self.lost_frames += len(part) + len(block)
                return
            first += len(part)
            if segment.frames >= self.segment_frames:
                self._finish_segment()

    def _write_record(self, segment: _Segment, first: int, values: np.ndarray) -> bool:
        bound = sample_codec.SegmentWriter.bound(values)
        if not self._room(bound):
            self._pause(self._no_room_text())
            return False
        try:
            data = segment.writer.chunk(first, values)
            assert segment.fd is not None
            _write_all(segment.fd, data)
            self.bytes_written += len(data)
            segment.frames = first + len(values) - segment.first_sample
            segment.unsynced += len(values)
            if segment.unsynced >= self._fsync_frames:
                self._sync_segment()
        except OSError as error:
            self._pause(f"the disk refused a write ({error})")
            return False
        return True

    def _sync_segment(self) -> None:
        assert self._segment is not None and self._segment.fd is not None
        os.fsync(self._segment.fd)
        self._segment.unsynced = 0

    def _open_segment(self, first: int) -> _Segment | None:
        """A new segment starting at sample `first`; None while paused or when it fails."""
        if self.problem is not None:
            if self.n_samples < self._retry_at:
                return None
            self._retry_at = self.n_samples + self._retry_frames
        if self.budget is not None:
            try:
                self.budget.enforce(self.directory, self.bytes_written)
            except OSError as error:
                log.error("night recording: cannot apply the recording budget: %s", error)
        if not self._room(4096):
            self._pause(self._no_room_text())
            return None
        index = self._segments[-1]["index"] + 1 if self._segments else 0
        try:
            self._ensure_files()
            fd = os.open(
                self.directory / _SEGMENT_NAME.format(index),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                0o644,
            )
            segment = _Segment(index, first, fd, sample_codec.SegmentWriter())
            _write_all(fd, segment.writer.start())
            _fsync_directory(self.directory)
        except OSError as error:
            self._pause(f"cannot start a sample file ({error})")
            return None
        self.bytes_written += len(sample_codec.MAGIC)
        self._segment = segment
        self._segments.append({"index": index, "first_sample": first, "n_samples": None})
        if self.problem is not None:
            log.log(
                logging.WARNING if self._episode_loud else logging.INFO,
                "night recording resumed at %.0f s in %s (%.0f s of signal not recorded so far)",
                first / self.fs,
                _SEGMENT_NAME.format(index),
                self.lost_frames / self.fs,
            )
            self.problem = None
        self._save_metadata()
        return segment

    def _finish_segment(self) -> None:
        """Close the current segment (fsync'ed) and note its length."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        self._segments[-1]["n_samples"] = segment.frames
        if segment.fd is not None:
            try:
                os.fsync(segment.fd)
            except OSError as error:
                log.error("night recording: could not sync %s: %s", segment.index, error)
            os.close(segment.fd)
        self._save_metadata()

    def _pause(self, reason: str) -> None:
        first_time = self.problem is None
        self.problem = reason
        self._retry_at = self.n_samples + self._retry_frames
        if self._segment is not None:
            self._finish_segment()
        if not first_time:
            return
        remind = round(_REMIND_S * self.fs)
        self._episode_loud = self._loud_at is None or self.n_samples - self._loud_at >= remind
        if self._episode_loud:
            self._loud_at = self.n_samples
        log.log(
            logging.ERROR if self._episode_loud else logging.INFO,
            "night recording paused: %s; detection and MQTT go on, the recording is tried "
            "again every %.0f s of signal",
            reason,
            self._retry_frames / self.fs,
        )

    def _room(self, n_bytes: int) -> bool:
        if self.budget is None:
            return True
        try:
            return self.budget.room_for(n_bytes, self.directory, self.bytes_written)
        except OSError:
            return False  # the filesystem cannot even say how full it is

    def _no_room_text(self) -> str:
        assert self.budget is not None
        try:
            free = f"{self.budget.free_bytes() / 1e6:.1f} MB free"
        except OSError:
            free = "free space unknown"
        return f"no room within the recording budget ({free}; {self.budget.describe_limits()})"

    # --- markers, events, quality ----------------------------------------------------------

    def marker(self, at_s: float, wall: datetime | str, source: str) -> None:
        """A marker button press at `at_s` seconds from the first sample, at wall time `wall` (a
        datetime, or the ISO text DevicePanel reports); written at once."""
        self._check_open()
        stamp = wall if isinstance(wall, str) else iso_utc(wall)
        record = {"type": "marker", "source": source, "at_s": round(at_s, 3), "wall": stamp}
        self._writer.record(record)
        self._sync_events()

    def event(self, event: Event) -> None:
        """A detected event, `started` or `ended` (written at once)."""
        self._check_open()
        self._writer.event(event)
        self._sync_events()

    def quality(self, change: QualityChange) -> None:
        """A change of a channel's signal quality (fsync'ed with the samples)."""
        self._check_open()
        self._writer.quality(change)

    def record_output(self, output: PipelineOutput) -> None:
        """Every event and quality change of one `Pipeline.process` / `finish` result, in order."""
        for record in output.records:
            if isinstance(record, Event):
                self.event(record)
            elif isinstance(record, QualityChange):
                self.quality(record)

    def _write_line(self, sink: _LineSink, data: bytes) -> None:
        if sink.torn:
            data = b"\n" + data  # the last line was cut short: start this one afresh
        try:
            if not self._room(len(data)):
                raise OSError(f"no room within the recording budget for {len(data)} bytes")
            self._ensure_files()
            assert self._events_fd is not None
            _write_all(self._events_fd, data)
        except OSError as error:
            sink.torn = True
            self.lost_lines += 1
            if self.lost_lines == 1:
                log.error("night recording: an event line could not be written (%s)", error)
            return
        sink.torn = False
        self.bytes_written += len(data)

    def _sync_events(self) -> None:
        if self._events_fd is None:
            return
        try:
            os.fsync(self._events_fd)
        except OSError as error:
            log.error("night recording: could not sync %s: %s", EVENTS_FILE, error)

    # --- metadata and closing --------------------------------------------------------------

    def close(self) -> None:
        """Write out and fsync everything, and mark the night complete in night.json. A disk
        problem here is logged, never raised."""
        if self._closed:
            return
        self._write_through()
        self._finish_segment()
        summary = {"duration_s": round(self.duration_s, 3), "n_samples": self.n_samples}
        if self.lost_frames:
            summary["lost_samples"] = self.lost_frames
        self._writer.summary(summary)
        self._sync_events()
        if self._events_fd is not None:
            os.close(self._events_fd)
            self._events_fd = None
        self._closed = True
        self._save_metadata()

    def _check_open(self) -> None:
        if self._closed:
            raise NightError(f"the recorder of {self.directory} is closed; start a new night")

    def _start(self) -> None:
        """Create the directory and its files; a disk that fails now pauses the recording."""
        if self.budget is not None:
            try:
                self.budget.enforce(self.directory, 0)
            except OSError as error:
                log.error("night recording: cannot apply the recording budget: %s", error)
        try:
            if not self._room(4096):
                raise OSError(self._no_room_text())
            self._ensure_files()
        except OSError as error:
            self._pause(f"cannot start the night ({error})")
            return
        self._save_metadata()

    def _ensure_files(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._events_fd is None:
            self._events_fd = os.open(
                self.directory / EVENTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
            )

    def _metadata(self) -> dict[str, Any]:
        segments = []
        for item in self._segments:
            entry: dict[str, Any] = {
                "file": _SEGMENT_NAME.format(item["index"]),
                "first_sample": item["first_sample"],
            }
            if item["n_samples"] is not None:
                entry["n_samples"] = item["n_samples"]
            segments.append(entry)
        return {
            "format": NIGHT_FORMAT,
            "software": f"crampwatch {__version__}",
            "device": self.device,
            "started": self.started.isoformat(),
            "fs": self.fs,
            "channels": list(self.channels),
            "scaling": asdict(self.scaling),
            "lsb_v": self.lsb_v,
            "samples": {"encoding": SAMPLE_ENCODING, "step": self._step},
            "segment_samples": self.segment_frames,
            "segments": segments,
            "complete": self._closed,
            "n_samples": self.n_samples if self._closed else None,
            "lost_samples": self.lost_frames,
        }

    def _save_metadata(self) -> None:
        text = (json.dumps(self._metadata(), indent=1) + "\n").encode("utf-8")
        temp: str | None = None
        try:
            if not self._room(len(text)):
                raise OSError(self._no_room_text())
            handle, temp = tempfile.mkstemp(prefix=".night.", suffix=".tmp", dir=self.directory)
            try:
                _write_all(handle, text)
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temp, self.directory / METADATA_FILE)
            temp = None
            _fsync_directory(self.directory)
        except OSError as error:
            # open_night finds the segments on disk without it; say so unless already paused.
            if self.problem is None:
                log.error("night recording: could not update %s (%s)", METADATA_FILE, error)
            if temp is not None:
                Path(temp).unlink(missing_ok=True)


def _check_settings(
    fs: float,
    channels: tuple[str, ...],
    scaling: ScalingConfig,
    lsb_v: float | None,
    started: datetime,
    segment_s: float,
) -> None:
    if not (math.isfinite(fs) and fs > 0):
        raise ValueError(f"fs must be a positive sampling rate, got {fs!r}")
    if not channels or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be distinct names, at least one; got {channels!r}")
    scaling.validate()
    if lsb_v is not None and not (math.isfinite(lsb_v) and lsb_v > 0):
        raise ValueError(f"lsb_v must be a positive number of volts or None, got {lsb_v!r}")
    if started.tzinfo is None:
        raise ValueError("started must be a timezone-aware datetime (UTC)")
    if not segment_s > 0:
        raise ValueError(f"segment_s must be > 0, got {segment_s!r}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NightInfo:
    """What a recorded night holds."""

    directory: Path
    device: str
    started: datetime
    fs: float
    channels: tuple[str, ...]
    scaling: ScalingConfig
    lsb_v: float | None
    step: float | None  # input units per stored value (None: values are stored as they are)
    n_samples: int
    complete: bool  # False: the recorder did not close it (killed, power cut, still running)
    warnings: tuple[str, ...] = ()
    format: str = NIGHT_FORMAT

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs


@dataclass(frozen=True)
class _StoredSegment:
    path: Path
    first_sample: int
    frames: int  # format 1: complete frames on disk; format 2: up to the end of its last record


@dataclass
class Night(ClosedOnExit):
    """A night opened with `open_night`: `info`, `blocks()` of samples, and its `records()`."""

    info: NightInfo
    _segments: tuple[_StoredSegment, ...]
    _warnings: list[str] = field(default_factory=list)

    def blocks(self, block_size: int = 65536) -> Iterator[np.ndarray]:
        """float64 arrays (block_size, channels) in input units, NaN where missing; the last may be
        shorter. Each call starts again at the first sample."""
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        return rechunk(self._scaled(self._chunks()), block_size)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every line of events.jsonl, streamed: events, quality changes (`type` quality) and
        marker presses (`type` marker). A torn last line (the recorder was killed while writing
        it) or a damaged line is skipped and noted in `warnings`."""
        return _read_records(self.info.directory / EVENTS_FILE, self._warnings)

    def events(self) -> list[dict[str, Any]]:
        """The event lines (both phases), in the order they were written."""
        return [r for r in self.records() if "event_id" in r]

    def markers(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("type") == "marker"]

    @property
    def warnings(self) -> tuple[str, ...]:
        """What was repaired while reading (recovered segments, torn lines), for the user."""
        return tuple(dict.fromkeys((*self.info.warnings, *self._warnings)))

    def close(self) -> None:
        """Nothing is held open between reads."""

    def _scaled(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        step = self.info.step
        for chunk in chunks:
            if step is not None and step != 1.0:
                chunk = chunk * step
            yield chunk

    def _chunks(self) -> Iterator[np.ndarray]:
        """Stored values (codes or values), NaN for every sample not on disk, exactly
        `info.n_samples` frames."""
        n_ch, total = len(self.info.channels), self.info.n_samples
        read = _segment_chunks_v1 if self.info.format == NIGHT_FORMAT_V1 else _segment_chunks
        position = 0
        for segment in self._segments:
            for first, values in read(segment, n_ch, self._warnings):
                if first < position:
                    self._warnings.append(f"{segment.path.name} overlaps what came before; skipped")
                    break
                if first > position:
                    yield from _nan_frames(min(first, total) - position, n_ch)
                    position = min(first, total)
                values = values[: total - position]
                if len(values):
                    yield values
                    position += len(values)
        if position < total:
            yield from _nan_frames(total - position, n_ch)


def _segment_chunks(
    segment: _StoredSegment, n_ch: int, warnings: list[str]
) -> Iterator[tuple[int, np.ndarray]]:
    problems: list[str] = []
    try:
        with segment.path.open("rb") as handle:
            for record in sample_codec.read_records(handle, n_ch, problems):
                yield record.first_sample, record.values
    except OSError as error:
        problems.append(f"cannot be read ({error}); its samples read as missing")
    warnings += [f"{segment.path.name} {p}" for p in problems]


def _segment_chunks_v1(
    segment: _StoredSegment, n_ch: int, warnings: list[str]
) -> Iterator[tuple[int, np.ndarray]]:
    frame_bytes = SAMPLE_DTYPE_V1.itemsize * n_ch
    with segment.path.open("rb") as handle:
        position, left = segment.first_sample, segment.frames
        while left:
            count = min(left, _READ_FRAMES)
            raw = handle.read(count * frame_bytes)
            if len(raw) != count * frame_bytes:
                raise NightError(f"{segment.path} shrank while it was read; read it again")
            values = np.frombuffer(raw, dtype=SAMPLE_DTYPE_V1).reshape(count, n_ch)
            yield position, values.astype(np.float64)
            position += count
            left -= count


def open_night(directory: Path) -> Night:
    """Open a recorded night (complete or cut short; this version's format or the first one)."""
    directory = Path(directory)
    meta = _load_metadata(directory)
    info, segment_samples, listed = _parse_metadata(directory, meta)
    warnings: list[str] = []
    if info.format == NIGHT_FORMAT_V1:
        frame_bytes = SAMPLE_DTYPE_V1.itemsize * len(info.channels)
        segments = _find_segments_v1(directory, frame_bytes, segment_samples, listed, warnings)
    else:
        segments = _find_segments(directory, listed, len(info.channels), warnings)
    n_samples = max((s.first_sample + s.frames for s in segments), default=0)
    expected = meta.get("n_samples")
    if isinstance(expected, int) and not isinstance(expected, bool):
        if expected != n_samples and info.format == NIGHT_FORMAT_V1:
            warnings.append(
                f"night.json says {expected} samples but the segment files hold {n_samples}"
            )
        if info.format == NIGHT_FORMAT:
            n_samples = max(n_samples, expected)  # a paused end reads as missing
    info = replace(info, n_samples=n_samples, warnings=tuple(warnings))
    return Night(info, tuple(segments))


def _load_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not directory.is_dir():
        raise NightError(
            f"'{directory}' is not a directory; give the directory of a recorded night"
        )
    if not path.is_file():
        raise NightError(
            f"'{directory}' is not a night directory (it has no {METADATA_FILE}); give the "
            "directory the recorder wrote, the one that holds night.json and the samples-* files"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NightError(
            f"{path} is damaged ({error}); restore it from a backup, or rewrite it from the "
            "recorder's settings (device, started, fs, channels, scaling)"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") not in (NIGHT_FORMAT, NIGHT_FORMAT_V1):
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise NightError(
            f"{path} is not crampwatch night metadata (format {found!r}, expected "
            f"{NIGHT_FORMAT!r} or {NIGHT_FORMAT_V1!r}); check the directory"
        )
    return meta


def _parse_metadata(
    directory: Path, meta: dict[str, Any]
) -> tuple[NightInfo, int, list[dict[str, Any]]]:
    path = directory / METADATA_FILE
    try:
        channels = tuple(str(c) for c in meta["channels"])
        scaling_fields = dict(meta["scaling"])
        if scaling_fields.get("rails") is not None:
            scaling_fields["rails"] = tuple(scaling_fields["rails"])
        scaling = ScalingConfig(**scaling_fields)
        scaling.validate()
        samples = meta["samples"]
        step = None if samples["step"] is None else float(samples["step"])
        started = datetime.fromisoformat(meta["started"]).astimezone(UTC)
        fs = float(meta["fs"])
        segment_samples = int(meta["segment_samples"])
        listed = [dict(s) for s in meta["segments"]]
        lsb_v = None if meta["lsb_v"] is None else float(meta["lsb_v"])
        info = NightInfo(
            directory=directory,
            device=str(meta["device"]),
            started=started,
            fs=fs,
            channels=channels,
            scaling=scaling,
            lsb_v=lsb_v,
            step=step,
            n_samples=0,
            complete=bool(meta.get("complete")),
            format=str(meta["format"]),
        )
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise NightError(
            f"{path} is damaged or incomplete ({type(error).__name__}: {error}); restore it from a "
            "backup or rewrite the missing field"
        ) from None
    if not (channels and fs > 0 and math.isfinite(fs) and segment_samples > 0):
        raise NightError(f"{path} has an impossible rate, channel list or segment size; fix it")
    return info, segment_samples, listed


def _find_segments(
    directory: Path, listed: list[dict[str, Any]], n_ch: int, warnings: list[str]
) -> list[_StoredSegment]:
    """Format 2: the segment files on disk; where a segment's length is not in night.json (it was
    being written, or night.json is stale), its records are read to find its end."""
    on_disk = {
        int(m.group(1)): p for p in directory.iterdir() if (m := _SEGMENT_RE.fullmatch(p.name))
    }
    known: dict[int, dict[str, Any]] = {}
    for item in listed:
        match = _SEGMENT_RE.fullmatch(str(item.get("file", "")))
        if match is None or int(match.group(1)) not in on_disk:
            warnings.append(f"segment {item.get('file')} listed in night.json is missing; a gap")
            continue
        known[int(match.group(1))] = item
    unlisted = sorted(set(on_disk) - set(known))
    if unlisted:
        warnings.append(
            f"recovered {len(unlisted)} segment(s) not yet listed in night.json (the recorder "
            "stopped before it updated it)"
        )
    segments = []
    for index in sorted(on_disk):
        item = known.get(index, {})
        first, frames = item.get("first_sample"), item.get("n_samples")
        if not isinstance(first, int) or not isinstance(frames, int):
            first, frames = _scan_extent(on_disk[index], n_ch)
        segments.append(_StoredSegment(on_disk[index], first, frames))
    return segments


def _scan_extent(path: Path, n_ch: int) -> tuple[int, int]:
    """The first sample and length of a segment, from its records (its problems are reported
    when it is read)."""
    first = end = None
    try:
        with path.open("rb") as handle:
            for record in sample_codec.read_records(handle, n_ch, []):
                first = record.first_sample if first is None else first
                end = record.first_sample + len(record.values)
    except OSError:
        pass
    if first is None or end is None:
        return 0, 0
    return first, end - first


def _find_segments_v1(
    directory: Path,
    frame_bytes: int,
    segment_samples: int,
    listed: list[dict[str, Any]],
    warnings: list[str],
) -> list[_StoredSegment]:
    """Format 1: the segment files, from night.json and from the disk (which wins)."""
    on_disk = {
        int(m.group(1)): p for p in directory.iterdir() if (m := _SEGMENT_RE_V1.fullmatch(p.name))
    }
    names = [str(item.get("file", "")) for item in listed]
    for name in names:
        match = _SEGMENT_RE_V1.fullmatch(name)
        if match is None or int(match.group(1)) not in on_disk:
            warnings.append(f"segment {name} listed in night.json is missing; its time is a gap")
    unlisted = sorted(
        set(on_disk) - {int(m.group(1)) for n in names if (m := _SEGMENT_RE_V1.fullmatch(n))}
    )
    if unlisted:
        warnings.append(
            f"recovered {len(unlisted)} segment(s) not yet listed in night.json (the recorder "
            "stopped before it updated it)"
        )
    segments = []
    last = max(on_disk, default=-1)
    for index in sorted(on_disk):
        path = on_disk[index]
        size = path.stat().st_size
        frames = size // frame_bytes
        if size % frame_bytes:
            warnings.append(
                f"{path.name} ends in a partial frame ({size % frame_bytes} bytes), ignored"
            )
        if frames > segment_samples:
            warnings.append(f"{path.name} is longer than a segment; the extra samples are ignored")
            frames = segment_samples
        if index != last and frames < segment_samples:
            warnings.append(
                f"{path.name} is short by {segment_samples - frames} samples, read as a gap"
            )
        segments.append(_StoredSegment(path, index * segment_samples, frames))
    return segments


def _nan_frames(count: int, n_ch: int) -> Iterator[np.ndarray]:
    while count > 0:
        size = min(count, _READ_FRAMES)
        yield np.full((size, n_ch), np.nan)
        count -= size


def _read_records(path: Path, warnings: list[str]) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                torn = not line.endswith(b"\n")
                warnings.append(
                    f"{path.name} line {number} is {'torn (cut short)' if torn else 'damaged'}; "
                    "skipped"
                )
                continue
            if isinstance(record, dict):
                yield record


__all__ = [
    "EVENTS_FILE",
    "METADATA_FILE",
    "NIGHT_FORMAT",
    "NIGHT_FORMAT_V1",
    "Night",
    "NightError",
    "NightInfo",
    "NightRecorder",
    "night_directory",
    "open_night",
    "stored_step",
]
