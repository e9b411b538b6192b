""".npy and .npz recordings, both streamed: .npy with plain file reads, .npz members through the
archive's decompressing streams (never read whole), so memory stays bounded by what one step
reads (limits.READ_BYTES) whatever the arrays' sizes."""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from hardware.recordings.channels import _describe_channels, _select_channels
from hardware.recordings.errors import RecordingError, option
from hardware.recordings.limits import MAX_COLUMNS, MAX_NPZ_MEMBERS, MAX_SCALAR_BYTES, read_rows
from hardware.recordings.rates import _choose_rate
from hardware.recordings.recording import Recording, _new_recording, _read_at, _Reader
from hardware.recordings.text import _as_number
from hardware.recordings.units import _declared_unit

# --------------------------------------------------------------------------------------------
# The .npy header (also the header of each .npz member)


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int  # bytes before the data

    @property
    def data_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def _read_npy_header(path: Path, handle: IO[bytes], member: str = "") -> _NpyHeader:
    where = f"the array {member!r} in '{path}'" if member else f"'{path}'"
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(handle)
        else:
            shape, fortran, dtype = fmt._read_array_header(handle, version)
    except Exception as error:  # an untrusted header: any failure to parse it means damage
        raise RecordingError(
            f"{where} is not a valid .npy array (its header is damaged or cut short: "
            f"{type(error).__name__}: {error}); re-copy the file, or save it again with "
            f"numpy.{'savez' if member else 'save'}"
        ) from None
    return _NpyHeader(tuple(int(n) for n in shape), bool(fortran), np.dtype(dtype), handle.tell())


def _check_npy_array(where: str, header: _NpyHeader) -> tuple[int, int]:
    """(samples, channels) of a usable array; `where` names it in errors."""
    dtype, shape = header.dtype, header.shape
    if dtype.hasobject or dtype.names is not None or dtype.kind not in "biuf":
        raise RecordingError(
            f"{where} holds {dtype} values, not plain numbers; save a numeric (n,) or "
            "(n, channels) array"
        )
    if len(shape) not in (1, 2):
        raise RecordingError(
            f"{where} holds an array of shape {shape}; expected (samples,) or (samples, channels)"
        )
    n, width = (shape[0], 1) if len(shape) == 1 else shape
    if width > 64 and n <= 64:
        raise RecordingError(
            f"{where} has shape {shape}, which looks like (channels, samples); crampwatch expects "
            "(samples, channels): save the transpose (numpy.save(path, array.T))"
        )
    if width > MAX_COLUMNS:
        raise RecordingError(
            f"{where} has {width:,} columns; crampwatch reads arrays of at most {MAX_COLUMNS:,} "
            "channels - save the channels you need"
        )
    if n == 0 or width == 0:
        raise RecordingError(f"{where} holds an empty array {shape}; it has no samples")
    return n, width


# --------------------------------------------------------------------------------------------
# NumPy .npy


def _open_npy(
    path: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    with path.open("rb") as handle:
        header = _read_npy_header(path, handle)
    n, width = _check_npy_array(f"'{path}'", header)
    needed = header.offset + header.data_bytes
    size = path.stat().st_size
    if size < needed:
        raise RecordingError(
            f"'{path}' is truncated: its header says {header.shape} {header.dtype} "
            f"({needed} bytes with the header) but the file has {size} bytes; re-copy or "
            "re-save it"
        )
    if fs is None:
        raise RecordingError(
            f"no sampling rate in '{path}': .npy files do not store one; pass {option('fs', 'HZ')}"
        )
    names = tuple(f"ch{i}" for i in range(width))
    picked = _select_channels(path, names, channels, range(width))
    return _new_recording(
        _NpyReader(path, header, n, width, picked),
        path,
        kind="npy",
        fs=fs,
        channels=tuple(names[i] for i in picked),
        declared=(None,) * len(picked),
        override=override,
        n_samples=n,
    )


class _NpyReader(_Reader):
    def __init__(self, path: Path, header: _NpyHeader, n: int, width: int, picked: list[int]):
        self.path = path
        self.header = header
        self.n = n
        self.width = width
        self.picked = picked

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        itemsize = self.header.dtype.itemsize
        row_bytes = (len(self.picked) if self.header.fortran else self.width) * itemsize
        step = min(hint, read_rows(row_bytes))
        with self.path.open("rb") as handle:
            for start in range(0, self.n, step):
                rows = min(step, self.n - start)
                if self.header.fortran:
                    yield self._read_columns(handle, start, rows)
                else:
                    yield self._read_rows(handle, start, rows)

    def _read_exact(self, handle: BinaryIO, offset: int, count: int) -> np.ndarray:
        raw = _read_at(self.path, handle, offset, count * self.header.dtype.itemsize)
        return np.frombuffer(raw, dtype=self.header.dtype)

    def _read_rows(self, handle: BinaryIO, start: int, rows: int) -> np.ndarray:
        offset = self.header.offset + start * self.width * self.header.dtype.itemsize
        values = self._read_exact(handle, offset, rows * self.width).reshape(rows, self.width)
        if self.picked == list(range(self.width)):
            return values.astype(np.float64, order="C")
        return values[:, self.picked].astype(np.float64, order="C")

    def _read_columns(self, handle: BinaryIO, start: int, rows: int) -> np.ndarray:
        out = np.empty((rows, len(self.picked)))
        itemsize = self.header.dtype.itemsize
        for j, col in enumerate(self.picked):
            offset = self.header.offset + (col * self.n + start) * itemsize
            out[:, j] = self._read_exact(handle, offset, rows)
        return out


# --------------------------------------------------------------------------------------------
# NumPy .npz

_NPZ_FS_KEYS = ("fs", "sampling_rate", "sfreq", "sampling_frequency", "srate")
_END_OF_DIRECTORY = b"PK\x05\x06"
_END_RECORD_SIZE = 22


@dataclass(frozen=True)
class _Member:
    """A numeric or text array stored in an .npz archive."""

    name: str  # the member's file name in the archive (KEY.npy)
    header: _NpyHeader


def _unreadable(path: Path, error: object) -> RecordingError:
    return RecordingError(
        f"'{path}' is not a readable .npz archive ({error}); it may be truncated - re-copy "
        "or re-save it with numpy.savez"
    )


def _check_npz_directory(path: Path) -> None:
    """Refuse an archive listing more members than MAX_NPZ_MEMBERS before zipfile reads its whole
    directory into memory (one object per member)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        tail_start = max(0, size - (_END_RECORD_SIZE + 0xFFFF))
        handle.seek(tail_start)
        tail = handle.read()
    at = tail.rfind(_END_OF_DIRECTORY)
    if at < 0 or len(tail) - at < _END_RECORD_SIZE:
        raise _unreadable(path, "no zip directory at its end")
    entries, directory_bytes = struct.unpack_from("<xxxxxxxxxxHI", tail, at)
    if entries > MAX_NPZ_MEMBERS or directory_bytes > MAX_NPZ_MEMBERS * 1024:
        raise RecordingError(
            f"'{path}' lists {entries:,} arrays ({directory_bytes:,} bytes of directory); "
            f"crampwatch reads .npz files of at most {MAX_NPZ_MEMBERS:,} arrays - save the "
            "channels you need in a smaller file"
        )


def _npz_members(path: Path) -> dict[str, _Member]:
    """The usable arrays of an .npz by key, from their headers (no data is read)."""
    _check_npz_directory(path)
    members: dict[str, _Member] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with archive.open(info) as handle:
                    header = _read_npy_header(path, handle, key)
                if header.offset + header.data_bytes > info.file_size:
                    raise RecordingError(
                        f"the array {key!r} in '{path}' is truncated: its header says "
                        f"{header.shape} {header.dtype} but it holds {info.file_size} bytes; "
                        "re-copy or re-save the file"
                    )
                numeric = header.dtype.kind in "biuf" and not header.dtype.hasobject
                text = header.dtype.kind in "SU" and header.shape == ()
                if numeric or text:
                    members[key] = _Member(info.filename, header)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as error:
        raise _unreadable(path, error) from error
    return members


def _npz_scalar(path: Path, key: str, member: _Member) -> Any:
    """A scalar (or one-element) member's value, read from its stream (no whole-member load)."""
    header = member.header
    if header.data_bytes > MAX_SCALAR_BYTES:
        raise RecordingError(
            f"the array {key!r} in '{path}' should hold one value but holds {header.data_bytes:,} "
            "bytes; fix the file"
        )
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member.name) as handle:
            handle.seek(header.offset)
            raw = _read_stream(path, handle, header.data_bytes)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise _unreadable(path, error) from error
    return np.frombuffer(raw, dtype=header.dtype).reshape(header.shape)[()]


def _read_stream(path: Path, handle: IO[bytes], size: int) -> bytes:
    """Exactly `size` bytes from a member's stream; refuses one that ends sooner."""
    parts, have = [], 0
    while have < size:
        part = handle.read(size - have)
        if not part:
            raise RecordingError(f"'{path}' ended early (was it truncated while reading?)")
        parts.append(part)
        have += len(part)
    return b"".join(parts)


def _npz_rates(path: Path, members: dict[str, _Member]) -> list[tuple[str, float]]:
    """Sampling rates stored as scalar (or one-element) arrays named fs, sampling_rate, ..."""
    found = []
    for key in _NPZ_FS_KEYS:
        member = members.get(key)
        if member is not None and member.header.shape in ((), (1,)):
            stored = np.ravel(_npz_scalar(path, key, member))[0]
            value = _as_number(str(stored))
            if value is None or not value > 0:
                raise RecordingError(
                    f"the array {key!r} in '{path}' should hold the sampling rate in Hz but holds "
                    f"{stored!r}; fix it" + option("fs", "HZ", ", or pass {}")
                )
            found.append((f"its array {key!r}", value))
    return found


def _npz_channels(
    path: Path, members: dict[str, _Member]
) -> tuple[list[str], list[tuple[str, int | None]]]:
    """Channel names and where each lives: (array, column or None for 1-D)."""
    columns = sum(m.header.shape[1] for m in members.values() if len(m.header.shape) == 2)
    if columns > MAX_COLUMNS:
        raise RecordingError(
            f"'{path}' holds {columns:,} columns in its arrays; crampwatch reads files of at most "
            f"{MAX_COLUMNS:,} channels - save the channels you need in a smaller file"
        )
    names: list[str] = []
    where: list[tuple[str, int | None]] = []
    for key, member in members.items():
        shape = member.header.shape
        if len(shape) == 1 and shape[0] > 1:
            names.append(key)
            where.append((key, None))
        elif len(shape) == 2 and shape[0] > 0:
            for col in range(shape[1]):
                names.append(f"{key}:{col}")
                where.append((key, col))
    return names, where


def _npz_expand(
    wanted: Sequence[str | int] | None, members: dict[str, _Member]
) -> Sequence[str | int] | None:
    """A 2-D array's name stands for all its columns."""
    if wanted is None:
        return None
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    out: list[str | int] = []
    lowered = {k.lower(): k for k in members}
    for item in wanted:
        key = lowered.get(item.strip().lower()) if isinstance(item, str) else None
        shape = members[key].header.shape if key is not None else ()
        if key is not None and len(shape) == 2:
            out.extend(f"{key}:{col}" for col in range(shape[1]))
        else:
            out.append(item)
    return out


def _npz_default(path: Path, members: dict[str, _Member], names: list[str]) -> list[int]:
    arrays = [
        k for k, m in members.items() if len(m.header.shape) in (1, 2) and m.header.shape[0] > 1
    ]
    if len(arrays) == 1:
        return [i for i, n in enumerate(names) if n == arrays[0] or n.startswith(arrays[0] + ":")]
    raise RecordingError(
        f"'{path}' holds several arrays ({', '.join(arrays) or 'none usable'}); choose channels"
        + option("channel", "NAME", " with {}")
        + f": {_describe_channels(names)} (ARRAY for a 1-D array, ARRAY:COL for a column of a "
        "2-D one, ARRAY for all its columns)"
    )


def _open_npz(
    path: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    members = _npz_members(path)
    names, where = _npz_channels(path, members)
    if not names:
        raise RecordingError(f"'{path}' holds no numeric arrays with samples; nothing to replay")
    default = _npz_default(path, members, names) if channels is None else []
    picked = _select_channels(path, names, _npz_expand(channels, members), default)
    for key in {where[i][0] for i in picked}:
        _check_npy_array(f"the array {key!r} in '{path}'", members[key].header)
    lengths = {members[where[i][0]].header.shape[0] for i in picked}
    if len(lengths) > 1:
        raise RecordingError(
            f"the selected arrays of '{path}' have different lengths {sorted(lengths)}; select "
            "channels from arrays of one length"
        )
    rate = _choose_rate(path, fs, _npz_rates(path, members)[:1])
    units = members.get("units")
    file_unit = _declared_unit(str(_npz_scalar(path, "units", units))) if units else None
    sources = [(members[where[i][0]], where[i][1]) for i in picked]
    n = lengths.pop()
    return _new_recording(
        _NpzReader(path, sources, n),
        path,
        kind="npz",
        fs=rate,
        channels=tuple(names[i] for i in picked),
        declared=[file_unit] * len(picked),
        override=override,
        n_samples=n,
    )


class _ColumnStream:
    """One channel of an .npz member, read in order from the member's own stream."""

    def __init__(self, path: Path, handle: IO[bytes], member: _Member, column: int | None):
        self.path, self.handle, self.header = path, handle, member.header
        self.column = column
        shape = self.header.shape
        self.width = 1 if len(shape) == 1 else shape[1]
        itemsize = self.header.dtype.itemsize
        # Fortran order (or one column): the channel's values lie together; else whole rows.
        self.contiguous = self.width == 1 or self.header.fortran
        start = self.header.offset
        if self.contiguous and column:
            start += column * shape[0] * itemsize
        handle.seek(start)  # forward only: a compressed stream decompresses what it skips
        self.row_bytes = itemsize * (1 if self.contiguous else self.width)

    def read(self, rows: int) -> np.ndarray:
        raw = _read_stream(self.path, self.handle, rows * self.row_bytes)
        values = np.frombuffer(raw, dtype=self.header.dtype)
        if self.contiguous:
            return values
        return values.reshape(rows, self.width)[:, self.column or 0]


class _NpzReader(_Reader):
    def __init__(self, path: Path, sources: list[tuple[_Member, int | None]], n: int):
        self.path = path
        self.sources = sources
        self.n = n

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        try:
            with zipfile.ZipFile(self.path) as archive:
                streams = [
                    _ColumnStream(self.path, archive.open(member.name), member, column)
                    for member, column in self.sources
                ]
                step = min(hint, read_rows(sum(s.row_bytes for s in streams)))
                try:
                    for start in range(0, self.n, step):
                        rows = min(step, self.n - start)
                        block = np.empty((rows, len(streams)))
                        for j, stream in enumerate(streams):
                            block[:, j] = stream.read(rows)
                        yield block
                finally:
                    for stream in streams:
                        stream.handle.close()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
            raise _unreadable(self.path, error) from error
