""".npy and .npz recordings: .npy streamed with plain file reads, .npz members read whole."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hardware.recordings.channels import _describe_channels, _select_channels
from hardware.recordings.errors import RecordingError
from hardware.recordings.rates import _choose_rate
from hardware.recordings.recording import Recording, _new_recording, _read_at, _Reader
from hardware.recordings.text import _as_number
from hardware.recordings.units import _declared_unit

# --------------------------------------------------------------------------------------------
# NumPy .npy


@dataclass(frozen=True)
class _NpyHeader:
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int


def _read_npy_header(path: Path, handle: BinaryIO) -> _NpyHeader:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(handle)
        else:
            shape, fortran, dtype = fmt._read_array_header(handle, version)
    except (ValueError, OSError, EOFError) as error:
        raise RecordingError(
            f"'{path}' is not a valid .npy file ({error}); save it with numpy.save"
        ) from error
    return _NpyHeader(tuple(shape), bool(fortran), np.dtype(dtype), handle.tell())


def _check_npy_array(path: Path, header: _NpyHeader) -> tuple[int, int]:
    """(samples, channels) of a usable array."""
    dtype, shape = header.dtype, header.shape
    if dtype.hasobject or dtype.names is not None or dtype.kind not in "biuf":
        raise RecordingError(
            f"'{path}' holds {dtype} values, not plain numbers; save a numeric (n,) or "
            "(n, channels) array"
        )
    if len(shape) not in (1, 2):
        raise RecordingError(
            f"'{path}' holds an array of shape {shape}; expected (samples,) or (samples, channels)"
        )
    n, width = (shape[0], 1) if len(shape) == 1 else shape
    if width > 64 and n <= 64:
        raise RecordingError(
            f"'{path}' has shape {shape}, which looks like (channels, samples); crampwatch expects "
            "(samples, channels): save the transpose (numpy.save(path, array.T))"
        )
    if n == 0 or width == 0:
        raise RecordingError(f"'{path}' holds an empty array {shape}; it has no samples")
    return n, width


def _open_npy(
    path: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    with path.open("rb") as handle:
        header = _read_npy_header(path, handle)
    n, width = _check_npy_array(path, header)
    needed = header.offset + n * width * header.dtype.itemsize
    size = path.stat().st_size
    if size < needed:
        raise RecordingError(
            f"'{path}' is truncated: its header says {header.shape} {header.dtype} "
            f"({needed} bytes with the header) but the file has {size} bytes; re-copy or "
            "re-save it"
        )
    if fs is None:
        raise RecordingError(
            f"no sampling rate in '{path}': .npy files do not store one; pass --fs HZ "
            "(fs= in Python)"
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
        with self.path.open("rb") as handle:
            for start in range(0, self.n, hint):
                rows = min(hint, self.n - start)
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


def _npz_headers(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the usable arrays in an .npz, read from member headers (no data)."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    header = _read_npy_header(path, handle)  # type: ignore[arg-type]
                if header.dtype.kind in "biuf" and not header.dtype.hasobject:
                    shapes[member[:-4]] = header.shape
                elif header.dtype.kind in "SU" and header.shape == ():
                    shapes[member[:-4]] = ()
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise RecordingError(
            f"'{path}' is not a readable .npz archive ({error}); it may be truncated - re-copy "
            "or re-save it with numpy.savez"
        ) from error
    return shapes


def _npz_scalar(path: Path, key: str) -> Any:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[key][()] if archive[key].shape == () else archive[key]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise RecordingError(f"cannot read {key!r} from '{path}' ({error}); re-save it") from error


def _npz_rates(path: Path, shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, float]]:
    """Sampling rates stored as scalar (or one-element) arrays named fs, sampling_rate, ..."""
    found = []
    for key in _NPZ_FS_KEYS:
        if shapes.get(key) in ((), (1,)):
            value = _as_number(str(np.ravel(_npz_scalar(path, key))[0]))
            if value is None or not value > 0:
                raise RecordingError(
                    f"the array {key!r} in '{path}' should hold the sampling rate in Hz but holds "
                    f"{_npz_scalar(path, key)!r}; fix it, or pass --fs HZ"
                )
            found.append((f"its array {key!r}", value))
    return found


def _npz_channels(
    shapes: dict[str, tuple[int, ...]],
) -> tuple[list[str], list[tuple[str, int | None]]]:
    """Channel names and where each lives: (array, column or None for 1-D)."""
    names: list[str] = []
    where: list[tuple[str, int | None]] = []
    for key, shape in shapes.items():
        if len(shape) == 1 and shape[0] > 1:
            names.append(key)
            where.append((key, None))
        elif len(shape) == 2 and shape[0] > 0:
            for col in range(shape[1]):
                names.append(f"{key}:{col}")
                where.append((key, col))
    return names, where


def _npz_expand(
    wanted: Sequence[str | int] | None, shapes: dict[str, tuple[int, ...]]
) -> Sequence[str | int] | None:
    """A 2-D array's name stands for all its columns."""
    if wanted is None:
        return None
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    out: list[str | int] = []
    lowered = {k.lower(): k for k in shapes}
    for item in wanted:
        key = lowered.get(item.strip().lower()) if isinstance(item, str) else None
        if key is not None and len(shapes[key]) == 2:
            out.extend(f"{key}:{col}" for col in range(shapes[key][1]))
        else:
            out.append(item)
    return out


def _npz_default(path: Path, shapes: dict[str, tuple[int, ...]], names: list[str]) -> list[int]:
    arrays = [k for k, s in shapes.items() if len(s) in (1, 2) and s[0] > 1]
    if len(arrays) == 1:
        return [i for i, n in enumerate(names) if n == arrays[0] or n.startswith(arrays[0] + ":")]
    raise RecordingError(
        f"'{path}' holds several arrays ({', '.join(arrays) or 'none usable'}); choose channels "
        f"with --channel: {_describe_channels(names)} (ARRAY for a 1-D array, ARRAY:COL for a "
        "column of a 2-D one, ARRAY for all its columns)"
    )


def _open_npz(
    path: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    shapes = _npz_headers(path)
    names, where = _npz_channels(shapes)
    if not names:
        raise RecordingError(f"'{path}' holds no numeric arrays with samples; nothing to replay")
    default = _npz_default(path, shapes, names) if channels is None else []
    picked = _select_channels(path, names, _npz_expand(channels, shapes), default)
    lengths = {shapes[where[i][0]][0] for i in picked}
    if len(lengths) > 1:
        raise RecordingError(
            f"the selected arrays of '{path}' have different lengths {sorted(lengths)}; select "
            "channels from arrays of one length"
        )
    rate = _choose_rate(path, fs, _npz_rates(path, shapes)[:1])
    file_unit = _declared_unit(str(_npz_scalar(path, "units"))) if "units" in shapes else None
    return _new_recording(
        _NpzReader(path, [where[i] for i in picked]),
        path,
        kind="npz",
        fs=rate,
        channels=tuple(names[i] for i in picked),
        declared=[file_unit] * len(picked),
        override=override,
        n_samples=lengths.pop(),
    )


class _NpzReader(_Reader):
    def __init__(self, path: Path, where: list[tuple[str, int | None]]):
        self.path = path
        self.where = where

    def _load(self) -> list[np.ndarray]:
        keys = {key for key, _ in self.where}
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                arrays = {key: np.asarray(archive[key]) for key in keys}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
            raise RecordingError(
                f"cannot read '{self.path}' ({error}); it may be truncated - re-copy or re-save it"
            ) from error
        return [arrays[key] if col is None else arrays[key][:, col] for key, col in self.where]

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        columns = self._load()
        n = len(columns[0])
        for start in range(0, n, hint):
            block = [c[start : start + hint] for c in columns]
            yield np.stack(block, axis=1).astype(np.float64)
