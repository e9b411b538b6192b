"""An open recording (`Recording`), what it holds (`RecordingInfo`, `FileAnnotation`), and the
interface of the format backends that feed it."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from hardware.closing import ClosedOnExit
from hardware.recordings.errors import PYTHON, RecordingError
from hardware.recordings.limits import block_rows, check_rate_and_channels
from hardware.recordings.units import _resolve_units

_HASH_HEAD = 1 << 20


class FileAnnotation(NamedTuple):
    """A time-stamped note stored in the file (EDF+ annotation)."""

    onset_s: float  # seconds from the first sample
    duration_s: float | None  # None when the file gives no duration
    text: str


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording holds, known before reading its samples."""

    path: Path
    format: str  # "csv", "npy", "npz", "edf", "bdf", "wfdb"
    fs: float  # samples per second
    channels: tuple[str, ...]  # names of the selected channels, in output order
    units: str | None  # "counts", "uV", "mV", "V", or None when the file does not say
    n_samples: int | None  # when known without reading everything
    source_id: str  # sha256 over file size + first 1 MiB (+ WFDB header text), hex[:16]
    channel_units: tuple[str | None, ...] = ()  # per selected channel, as the file declares it
    start_s: float = 0.0  # time of the first sample in the file's own time base (time column)


def _source_id(data_file: Path, extra: bytes = b"") -> str:
    digest = hashlib.sha256()
    digest.update(f"{data_file.stat().st_size}\n".encode())
    with data_file.open("rb") as handle:
        digest.update(handle.read(_HASH_HEAD))
    digest.update(extra)
    return digest.hexdigest()[:16]


def _read_at(path: Path, handle: BinaryIO, offset: int, size: int) -> bytes:
    """Exactly `size` bytes of an open file from `offset`; refuses a file that ends sooner."""
    handle.seek(offset)
    raw = handle.read(size)
    if len(raw) != size:
        raise RecordingError(f"'{path}' ended early (was it truncated while reading?)")
    return raw


class _Reader(ABC):
    """A format backend: yields float64 chunks (n, n_selected) of roughly `hint` rows (fewer
    when that many would take more than limits.READ_BYTES)."""

    @abstractmethod
    def chunks(self, hint: int) -> Iterator[np.ndarray]: ...

    def annotations(self) -> list[FileAnnotation]:
        return []

    def close(self) -> None:  # noqa: B027 - most backends hold nothing open between reads
        """Release resources (backends here open files only while iterating)."""


class Recording(ClosedOnExit):
    """An open recording: `info`, `blocks()` to stream its samples, and `close()`."""

    def __init__(
        self,
        info: RecordingInfo,
        reader: _Reader,
        scale: np.ndarray | None = None,
        option_names: Mapping[str, str] = PYTHON,
    ):
        self.info = info
        self._reader = reader
        self._scale = scale
        self._closed = False
        self.option_names = option_names  # how errors name the options (errors.PYTHON, ...)

    @property
    def block_size(self) -> int:
        """The default rows per block: 65536, fewer when that would exceed limits.BLOCK_BYTES."""
        return block_rows(len(self.info.channels))

    def blocks(self, block_size: int | None = None) -> Iterator[np.ndarray]:
        """Yield float64 arrays (block_size, n_channels); only the last may be shorter.

        Each call starts again at the first sample.
        """
        if block_size is None:
            block_size = self.block_size
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise TypeError(f"block_size must be an int, got {block_size!r}")
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        self._check_open()
        return self._blocks(int(block_size))

    def _blocks(self, block_size: int) -> Iterator[np.ndarray]:
        hint = max(block_size, block_rows(len(self.info.channels), 4096))
        return rechunk(self._scaled_chunks(hint), block_size)

    def _scaled_chunks(self, hint: int) -> Iterator[np.ndarray]:
        try:
            for chunk in self._reader.chunks(hint):
                self._check_open()
                yield chunk * self._scale if self._scale is not None else chunk
        except RecordingError as error:
            error.option_names = self.option_names
            raise

    def annotations(self) -> list[FileAnnotation]:
        """Annotations stored in the file (EDF+), as (onset_s, duration_s, text); else []."""
        self._check_open()
        try:
            return self._reader.annotations()
        except RecordingError as error:
            error.option_names = self.option_names
            raise

    def close(self) -> None:
        """Close the recording; further reads raise RecordingError."""
        if not self._closed:
            self._closed = True
            self._reader.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RecordingError(
                f"recording '{self.info.path}' is closed; open it again with open_recording()"
            )

    def __repr__(self) -> str:
        i = self.info
        return (
            f"<Recording {i.format} '{i.path}' {i.fs:g} Hz channels={list(i.channels)} "
            f"units={i.units} n_samples={i.n_samples}>"
        )


def rechunk(chunks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Arrays of any lengths -> contiguous float64 blocks of `size` rows (the last may be short)."""
    pending: deque[np.ndarray] = deque()
    have = 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        pending.append(chunk)
        have += len(chunk)
        while have >= size:
            yield _take_rows(pending, size)
            have -= size
    if have:
        yield _take_rows(pending, have)


def _take_rows(pending: deque[np.ndarray], n: int) -> np.ndarray:
    """Remove and return the first n rows held in `pending` as one contiguous array."""
    parts = []
    need = n
    while need:
        head = pending[0]
        if len(head) <= need:
            parts.append(pending.popleft())
            need -= len(head)
        else:
            parts.append(head[:need])
            pending[0] = head[need:]
            need = 0
    out = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return np.ascontiguousarray(out, dtype=np.float64)


def _new_recording(
    reader: _Reader,
    path: Path,
    *,
    kind: str,
    fs: float,
    channels: tuple[str, ...],
    declared: Sequence[str | None],
    override: str | None,
    n_samples: int | None,
    source: Path | None = None,
    source_extra: bytes = b"",
    info_path: Path | None = None,
    start_s: float = 0.0,
) -> Recording:
    """The Recording of the selected channels, in one unit (see `_resolve_units`).

    `path` names the file in errors and, unless `info_path` is given, in the info; the source id
    hashes `source` (default: `path`) plus `source_extra`.
    """
    unit, scale = _resolve_units(path, channels, declared, override)
    check_rate_and_channels(path, fs, len(channels))
    info = RecordingInfo(
        path=info_path or path,
        format=kind,
        fs=fs,
        channels=channels,
        units=unit,
        n_samples=n_samples,
        source_id=_source_id(source or path, source_extra),
        channel_units=tuple(declared),
        start_s=start_s,
    )
    return Recording(info, reader, scale)
