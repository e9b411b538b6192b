"""Recording a night to disk as it happens, and reading it back.

One directory per night (session)::

    night.json             metadata (format, device, start, rate, channels, scaling, segments)
    samples-000000.f32     raw samples: little-endian float32 frames (one value per channel)
    samples-000001.f32     ... a new segment every `segment_s` seconds of signal
    events.jsonl           events, quality changes and marker presses, as `crampwatch run --out`

Samples are stored in the units the pipeline takes them in (`scaling.units`, volts at the ADC input
for the live converters). With a known ADC step (`lsb_v`) they are stored as ADC codes (value / step,
exact in float32 for codes up to 24 bits) and read back as code x step, bit for bit what the driver
delivered; without one, as float32 values. NaN (a missing sample) is kept.

Durability: samples reach the operating system at least every `write_through_s` (0.5 s) of signal,
so a killed process loses at most that; event and marker lines are written and fsync'ed at once;
sample files are fsync'ed every `fsync_s` (5 s) of signal, on rotation and on close, so a power cut
loses little more. night.json is replaced atomically (temp file, fsync, rename). `open_night` reads a
night cut short at any point: a partial trailing frame is ignored, segments missing from a stale
night.json are found on disk, a short segment is padded with NaN so time stays right, a torn last
line of events.jsonl is skipped. Memory is bounded: at most `write_through_s` of samples is held.
"""

from __future__ import annotations

import json
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
from firmware_host.event_output import EventWriter
from hardware.closing import ClosedOnExit
from hardware.recordings.recording import rechunk

if TYPE_CHECKING:
    from dsp.pipeline import PipelineOutput

NIGHT_FORMAT = "crampwatch.night/1"
METADATA_FILE = "night.json"
EVENTS_FILE = "events.jsonl"
SAMPLE_DTYPE = np.dtype("<f4")
_SEGMENT_NAME = "samples-{:06d}.f32"
_SEGMENT_RE = re.compile(r"samples-(\d{6})\.f32")
_READ_FRAMES = 1 << 16
_UNIT_VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6}


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
    """A text stream for EventWriter: each line goes to the OS in one write (no buffering)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> int:
        _write_all(self.fd, text.encode("utf-8"))
        return len(text)


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
    ) -> None:
        _check_settings(fs, channels, scaling, lsb_v, started, segment_s)
        if not DEVICE_ID.fullmatch(device):
            raise ValueError(f"device id {device!r} may use only letters, digits, '-' and '_'")
        self.directory = Path(directory)
        self.fs, self.channels, self.scaling = float(fs), tuple(channels), scaling
        self.lsb_v, self.device = lsb_v, device
        self.started = started.astimezone(UTC)
        self.segment_frames = max(1, round(segment_s * fs))
        self._step = stored_step(scaling, lsb_v)
        self._write_frames = max(1, math.ceil(write_through_s * fs))
        self._fsync_frames = max(1, math.ceil(fsync_s * fs))
        self._pending: list[bytes] = []
        self._pending_frames = 0
        self._unsynced_frames = 0
        self.n_samples = 0
        self._segment_index = 0
        self._closed = False
        self._prepare_directory()
        self._events_fd = os.open(
            self.directory / EVENTS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        self._writer = EventWriter(_LineSink(self._events_fd), "jsonl")  # type: ignore[arg-type]
        self._segment_fd = self._open_segment(0)
        self._save_metadata()

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

    # --- samples ---------------------------------------------------------------------------

    def write(self, samples: np.ndarray) -> None:
        """Append consecutive samples, shape (n, channels); NaN marks a missing sample."""
        self._check_open()
        frames = self._encoded(samples)
        while len(frames):
            room = self.segment_frames - self._frames_in_segment
            if room == 0:
                self._rotate()
                continue
            part, frames = frames[:room], frames[room:]
            self._pending.append(part.tobytes())
            self._pending_frames += len(part)
            self.n_samples += len(part)
            if self._pending_frames >= self._write_frames:
                self._write_through()
            if self._unsynced_frames >= self._fsync_frames:
                os.fsync(self._segment_fd)
                self._unsynced_frames = 0

    def flush(self) -> None:
        """Write everything held to the OS and fsync it (e.g. before an expected power-off)."""
        self._check_open()
        self._write_through()
        os.fsync(self._segment_fd)
        self._unsynced_frames = 0

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def _frames_in_segment(self) -> int:
        return self.n_samples - self._segment_index * self.segment_frames

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
            return array.astype(SAMPLE_DTYPE)
        codes = array / self._step
        whole = np.rint(codes)
        snapped = np.where(np.abs(codes - whole) <= 1e-6, whole, codes)
        return snapped.astype(SAMPLE_DTYPE)

    def _write_through(self) -> None:
        if self._pending:
            _write_all(self._segment_fd, b"".join(self._pending))
            self._unsynced_frames += self._pending_frames
            self._pending, self._pending_frames = [], 0

    def _rotate(self) -> None:
        self._write_through()
        os.fsync(self._segment_fd)
        os.close(self._segment_fd)
        self._segment_index += 1
        self._segment_fd = self._open_segment(self._segment_index)
        self._unsynced_frames = 0
        self._save_metadata()

    def _open_segment(self, index: int) -> int:
        fd = os.open(
            self.directory / _SEGMENT_NAME.format(index),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            0o644,
        )
        _fsync_directory(self.directory)
        return fd

    # --- markers, events, quality ----------------------------------------------------------

    def marker(self, at_s: float, wall: datetime | str, source: str) -> None:
        """A marker button press at `at_s` seconds from the first sample, at wall time `wall` (a
        datetime, or the ISO text DevicePanel reports); written at once."""
        self._check_open()
        stamp = wall if isinstance(wall, str) else iso_utc(wall)
        record = {"type": "marker", "source": source, "at_s": round(at_s, 3), "wall": stamp}
        self._writer.record(record)
        os.fsync(self._events_fd)

    def event(self, event: Event) -> None:
        """A detected event, `started` or `ended` (written at once)."""
        self._check_open()
        self._writer.event(event)
        os.fsync(self._events_fd)

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

    # --- metadata and closing --------------------------------------------------------------

    def close(self) -> None:
        """Write out and fsync everything, and mark the night complete in night.json."""
        if self._closed:
            return
        self._write_through()
        os.fsync(self._segment_fd)
        os.close(self._segment_fd)
        self._writer.summary({"duration_s": round(self.duration_s, 3), "n_samples": self.n_samples})
        os.fsync(self._events_fd)
        os.close(self._events_fd)
        self._closed = True
        self._save_metadata()

    def _check_open(self) -> None:
        if self._closed:
            raise NightError(f"the recorder of {self.directory} is closed; start a new night")

    def _prepare_directory(self) -> None:
        if (self.directory / METADATA_FILE).exists():
            raise NightError(
                f"{self.directory} already holds a night; record each night into a new directory"
            )
        self.directory.mkdir(parents=True, exist_ok=True)

    def _metadata(self) -> dict[str, Any]:
        segments = []
        for index in range(self._segment_index + 1):
            item: dict[str, Any] = {
                "file": _SEGMENT_NAME.format(index),
                "first_sample": index * self.segment_frames,
            }
            if index < self._segment_index or self._closed:
                end = min(self.n_samples, (index + 1) * self.segment_frames)
                item["n_samples"] = end - item["first_sample"]
            segments.append(item)
        return {
            "format": NIGHT_FORMAT,
            "software": f"crampwatch {__version__}",
            "device": self.device,
            "started": self.started.isoformat(),
            "fs": self.fs,
            "channels": list(self.channels),
            "scaling": asdict(self.scaling),
            "lsb_v": self.lsb_v,
            "samples": {
                "dtype": "float32-le",
                "step": self._step,
                "frame_bytes": self._frame_bytes,
            },
            "segment_samples": self.segment_frames,
            "segments": segments,
            "complete": self._closed,
            "n_samples": self.n_samples if self._closed else None,
        }

    @property
    def _frame_bytes(self) -> int:
        return SAMPLE_DTYPE.itemsize * len(self.channels)

    def _save_metadata(self) -> None:
        text = json.dumps(self._metadata(), indent=1) + "\n"
        handle, temp = tempfile.mkstemp(prefix=".night.", suffix=".tmp", dir=self.directory)
        try:
            _write_all(handle, text.encode("utf-8"))
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temp, self.directory / METADATA_FILE)
        _fsync_directory(self.directory)


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

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs


@dataclass(frozen=True)
class _Segment:
    path: Path
    first_sample: int
    frames: int  # complete frames on disk (a partial trailing frame is ignored)


@dataclass
class Night(ClosedOnExit):
    """A night opened with `open_night`: `info`, `blocks()` of samples, and its `records()`."""

    info: NightInfo
    _segments: tuple[_Segment, ...]
    _frame_bytes: int
    _warnings: list[str] = field(default_factory=list)

    def blocks(self, block_size: int = 65536) -> Iterator[np.ndarray]:
        """float64 arrays (block_size, channels) in input units, NaN where missing; the last may be
        shorter. Each call starts again at the first sample."""
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        return rechunk(self._chunks(), block_size)

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

    def _chunks(self) -> Iterator[np.ndarray]:
        n_ch = len(self.info.channels)
        position = 0
        for segment in self._segments:
            if segment.first_sample > position:
                yield from _nan_frames(segment.first_sample - position, n_ch)
            yield from self._segment_chunks(segment, n_ch)
            position = segment.first_sample + segment.frames

    def _segment_chunks(self, segment: _Segment, n_ch: int) -> Iterator[np.ndarray]:
        step = self.info.step
        with segment.path.open("rb") as handle:
            left = segment.frames
            while left:
                count = min(left, _READ_FRAMES)
                raw = handle.read(count * self._frame_bytes)
                if len(raw) != count * self._frame_bytes:
                    raise NightError(f"{segment.path} shrank while it was read; read it again")
                values = np.frombuffer(raw, dtype=SAMPLE_DTYPE).reshape(count, n_ch)
                out = values.astype(np.float64)
                if step is not None and step != 1.0:
                    out *= step
                yield out
                left -= count


def open_night(directory: Path) -> Night:
    """Open a recorded night (complete or cut short) for reading."""
    directory = Path(directory)
    meta = _load_metadata(directory)
    info, frame_bytes, segment_samples, listed = _parse_metadata(directory, meta)
    warnings: list[str] = []
    segments = _find_segments(directory, frame_bytes, segment_samples, listed, warnings)
    n_samples = max((s.first_sample + s.frames for s in segments), default=0)
    expected = meta.get("n_samples")
    if isinstance(expected, int) and expected != n_samples:
        warnings.append(
            f"night.json says {expected} samples but the segment files hold {n_samples}"
        )
    info = replace(info, n_samples=n_samples, warnings=tuple(warnings))
    return Night(info, tuple(segments), frame_bytes)


def _load_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not directory.is_dir():
        raise NightError(
            f"'{directory}' is not a directory; give the directory of a recorded night"
        )
    if not path.is_file():
        raise NightError(
            f"'{directory}' is not a night directory (it has no {METADATA_FILE}); give the "
            "directory the recorder wrote, the one that holds night.json and samples-*.f32"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NightError(
            f"{path} is damaged ({error}); restore it from a backup, or rewrite it from the "
            "recorder's settings (device, started, fs, channels, scaling)"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != NIGHT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise NightError(
            f"{path} is not crampwatch night metadata (format {found!r}, expected "
            f"{NIGHT_FORMAT!r}); check the directory"
        )
    return meta


def _parse_metadata(directory: Path, meta: dict[str, Any]) -> tuple[NightInfo, int, int, list[str]]:
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
        listed = [str(s["file"]) for s in meta["segments"]]
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
        )
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise NightError(
            f"{path} is damaged or incomplete ({type(error).__name__}: {error}); restore it from a "
            "backup or rewrite the missing field"
        ) from None
    if not (channels and fs > 0 and math.isfinite(fs) and segment_samples > 0):
        raise NightError(f"{path} has an impossible rate, channel list or segment size; fix it")
    frame_bytes = SAMPLE_DTYPE.itemsize * len(channels)
    return info, frame_bytes, segment_samples, listed


def _find_segments(
    directory: Path,
    frame_bytes: int,
    segment_samples: int,
    listed: list[str],
    warnings: list[str],
) -> list[_Segment]:
    """The segment files, from night.json and from the disk (which wins where they differ)."""
    on_disk = {
        int(m.group(1)): p for p in directory.iterdir() if (m := _SEGMENT_RE.fullmatch(p.name))
    }
    for name in listed:
        match = _SEGMENT_RE.fullmatch(name)
        if match is None or int(match.group(1)) not in on_disk:
            warnings.append(f"segment {name} listed in night.json is missing; its time is a gap")
    unlisted = sorted(
        set(on_disk) - {int(m.group(1)) for n in listed if (m := _SEGMENT_RE.fullmatch(n))}
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
        segments.append(_Segment(path, index * segment_samples, frames))
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
    "Night",
    "NightError",
    "NightInfo",
    "NightRecorder",
    "night_directory",
    "open_night",
    "stored_step",
]
