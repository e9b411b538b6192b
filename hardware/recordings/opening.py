"""Opening a recording: checking the arguments, resolving the format, calling its reader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hardware.recordings.edf import _open_edf
from hardware.recordings.errors import PYTHON, RecordingError, option
from hardware.recordings.formats import (
    _FORMAT_ALIASES,
    _SUPPORTED_TEXT,
    _TEXT_SUFFIXES,
    SUPPORTED_FORMATS,
)
from hardware.recordings.numpy_files import _open_npy, _open_npz
from hardware.recordings.rates import _check_fs_argument
from hardware.recordings.recording import Recording
from hardware.recordings.text import _open_text
from hardware.recordings.units import normalize_units
from hardware.recordings.wfdb_records import _open_wfdb, _with_extra_suffix


def open_recording(
    path: str | Path,
    *,
    fs: float | None = None,
    channels: Sequence[str | int] | None = None,
    units: str | None = None,
    fmt: str | None = None,
    delimiter: str | None = None,
    has_header: bool | None = None,
    option_names: Mapping[str, str] = PYTHON,
) -> Recording:
    """Open a recorded EMG file for streaming.

    fs: sampling rate in Hz, for files that do not state one (refused if it contradicts the file).
    channels: names (case-insensitive) or 0-based indices, in the wanted output order. Default:
      every channel except non-electrical ones (e.g. "deg") and sample counters (nSeq, index);
      the time column is never a channel. In .npz files channels are ARRAY (1-D) or ARRAY:COL
      (ARRAY alone selects all its columns); without a choice the file must hold one array.
    units: what the values are ("uV", "mV", "V", "counts"), overriding the file.
    fmt: "csv", "npy", "npz", "edf", "bdf" or "wfdb" instead of guessing from the extension.
    delimiter, has_header: text files only; detected when not given.
    option_names: how error messages name these options (errors.PYTHON: as here; a command passes
      its command-line names, e.g. errors.COMMAND_LINE).

    Memory stays bounded whatever the file declares (see hardware.recordings.limits); what lies
    outside the limits is refused with a RecordingError.
    """
    try:
        recording = _open(path, fs, channels, units, fmt, delimiter, has_header)
    except RecordingError as error:
        error.option_names = option_names
        raise
    recording.option_names = option_names
    return recording


def _open(
    path: str | Path,
    fs: float | None,
    channels: Sequence[str | int] | None,
    units: str | None,
    fmt: str | None,
    delimiter: str | None,
    has_header: bool | None,
) -> Recording:
    fs_given = _check_fs_argument(fs)
    override = normalize_units(units)
    kind, file_path = _resolve_format(Path(path).expanduser(), fmt)
    if kind != "csv" and (delimiter is not None or has_header is not None):
        raise RecordingError(
            f"{option('delimiter')} and {option('header')}/{option('no_header')} apply to text "
            f"files only, and '{path}' is {kind}; leave them out"
        )
    openers = {
        "csv": lambda: _open_text(file_path, fs_given, channels, override, delimiter, has_header),
        "npy": lambda: _open_npy(file_path, fs_given, channels, override),
        "npz": lambda: _open_npz(file_path, fs_given, channels, override),
        "edf": lambda: _open_edf(file_path, fs_given, channels, override),
        "bdf": lambda: _open_edf(file_path, fs_given, channels, override),
        "wfdb": lambda: _open_wfdb(file_path, fs_given, channels, override),
    }
    return openers[kind]()


def _resolve_format(path: Path, fmt: str | None) -> tuple[str, Path]:
    """(format, path): for WFDB the path is the record name without extension."""
    if fmt is not None:
        kind = _FORMAT_ALIASES.get(fmt.strip().lower())
        if kind is None:
            raise RecordingError(
                f"unknown format {fmt!r}: use one of {', '.join(SUPPORTED_FORMATS)}"
            )
        if kind == "wfdb":
            return kind, _wfdb_record(path)
        _require_file(path)
        return kind, path
    suffix = path.suffix.lower()
    if suffix == ".hea" or (suffix == ".dat" and path.with_suffix(".hea").is_file()):
        return "wfdb", _wfdb_record(path)
    if not path.exists() and _with_extra_suffix(path, ".hea").is_file():
        return "wfdb", path
    _require_file(path)
    if suffix in _TEXT_SUFFIXES:
        return "csv", path
    if suffix in (".npy", ".npz", ".edf", ".bdf"):
        return suffix[1:], path
    raise RecordingError(
        f"unknown recording format for '{path}' ({suffix or 'no extension'}); {_SUPPORTED_TEXT}"
    )


def _wfdb_record(path: Path) -> Path:
    record = path.with_suffix("") if path.suffix.lower() in (".hea", ".dat") else path
    header = _with_extra_suffix(record, ".hea")
    if not header.is_file():
        raise RecordingError(
            f"no such WFDB record: '{header}' does not exist; check the path (a WFDB record is "
            "a .hea header plus its .dat file)"
        )
    return record


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise RecordingError(f"'{path}' is a directory; give the path of a recording file")
    if not path.is_file():
        raise RecordingError(f"no such file: '{path}'; check the path")
    if path.stat().st_size == 0:
        raise RecordingError(f"'{path}' is empty (0 bytes); it holds no recording")
