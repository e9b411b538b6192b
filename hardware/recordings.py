"""Streaming readers for recorded EMG files: CSV/text, .npy/.npz, EDF/BDF and WFDB.

`open_recording(path)` returns a `Recording` whose `blocks()` yields float64 arrays of shape
(n, n_channels) in the file's units, read block by block so that an 8-hour night replays in
bounded memory. Conventions:

- Arrays are (samples, channels). A 2-D .npy whose shape looks like (channels, samples) (at most 64
  rows and more than 64 columns) is refused with a hint to save the transpose.
- Text files: delimiter (comma, tab, semicolon, whitespace), header row, comment lines (`#`, `%`)
  and preamble lines are detected; metadata in them (sampling rate, resolution -> ADC counts,
  labels, units, UCI-style "Channel N: 'NAME', K values, engineering units: mV" lines) is used. A
  column named time/t/time_s/seconds/time_ms... is the time axis, not a channel: without a stated
  rate it gives the rate and must be evenly spaced (checked while streaming); with one (fs= or the
  header) it only has to agree with it when it is evenly spaced.
- Missing values (empty text fields, WFDB missing-sample codes) become NaN. Trailing text rows that
  hold no value in any selected channel (end-of-file padding, as in the UCI files) are dropped.
- Units: "uV", "mV", "V" or "counts"; None when the file does not say. When the selected channels
  declare different voltage units, every channel is converted to the unit of the first one. A
  channel with a non-electrical unit (e.g. a goniometer in "deg") is left out of the default
  selection; it can still be selected by name. `units=` overrides whatever the file says (no
  conversion: it states what the numbers are).
- .npy is read with plain file reads, not a memory map: mapped pages count towards the resident
  set size, so a memory-mapped 8-hour file would show its full size in RSS. .npz members are read
  whole (fine for short files); use .npy, EDF/BDF or WFDB for long recordings.
- EDF and BDF are read by this module (header + data records with plain file reads): edfio reads
  EDF lazily through a memory map (same RSS problem) and reads a whole BDF into memory. EDF+
  annotations are available through `Recording.annotations()`. WFDB needs the optional `wfdb`
  package (`pip install 'crampwatch[research]'`).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
import math
import re
import warnings
import zipfile
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple, TextIO

import numpy as np

__all__ = [
    "SUPPORTED_FORMATS",
    "FileAnnotation",
    "Recording",
    "RecordingError",
    "RecordingInfo",
    "normalize_units",
    "open_recording",
]

SUPPORTED_FORMATS = ("csv", "npy", "npz", "edf", "bdf", "wfdb")
_SUPPORTED_TEXT = (
    "supported: .csv .txt .tsv .tab .asc .dat (text), .npy, .npz, .edf, .bdf, "
    "WFDB (.hea + .dat, or the record name); or pass the format explicitly (fmt=)"
)
_TEXT_SUFFIXES = {".csv", ".txt", ".tsv", ".tab", ".asc", ".dat"}
_FORMAT_ALIASES = {
    "csv": "csv",
    "text": "csv",
    "txt": "csv",
    "tsv": "csv",
    "npy": "npy",
    "npz": "npz",
    "edf": "edf",
    "edf+": "edf",
    "bdf": "bdf",
    "bdf+": "bdf",
    "wfdb": "wfdb",
}
_HASH_HEAD = 1 << 20
_MAX_NAMES_SHOWN = 40
_RATE_TOLERANCE = 1e-3  # relative: two sampling rates closer than this agree
_RESEARCH_HINT = "pip install 'crampwatch[research]'"


class RecordingError(ValueError):
    """A recording cannot be read as asked; the message says what is wrong and what to do."""


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


# --------------------------------------------------------------------------------------------
# Units


_UNIT_ALIASES = {
    "uv": "uV",
    "µv": "uV",
    "μv": "uV",
    "microvolt": "uV",
    "microvolts": "uV",
    "mv": "mV",
    "millivolt": "mV",
    "millivolts": "mV",
    "v": "V",
    "volt": "V",
    "volts": "V",
    "counts": "counts",
    "count": "counts",
    "adc": "counts",
    "raw": "counts",
    "lsb": "counts",
    "adu": "counts",
    "digital": "counts",
}
_NO_UNIT = {"", "nu", "n/a", "na", "?", "none", "unknown", "-", "au", "a.u.", "arb"}
_VOLTS = {"uV": 1e-6, "mV": 1e-3, "V": 1.0}
_CANONICAL_UNITS = ("counts", "uV", "mV", "V")


def normalize_units(text: str | None) -> str | None:
    """Canonical unit ("uV", "mV", "V", "counts") for a unit string; None for None/empty.

    Raises RecordingError for a string that is not an EMG unit.
    """
    if text is None or not text.strip():
        return None
    unit = _canonical_unit(text)
    if unit is None:
        raise RecordingError(
            f"unknown units {text!r}: use one of {', '.join(_CANONICAL_UNITS)} "
            "(µV, microvolts, adc and raw are accepted too)"
        )
    return unit


def _canonical_unit(text: str) -> str | None:
    return _UNIT_ALIASES.get(text.strip().lower())


def _declared_unit(text: str | None) -> str | None:
    """A unit as a file declares it: canonical when electrical, None when unstated, else as is."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped.lower() in _NO_UNIT:
        return None
    return _canonical_unit(stripped) or stripped


def _is_other_unit(unit: str | None) -> bool:
    return unit is not None and unit not in _CANONICAL_UNITS


def _resolve_units(
    path: Path, names: Sequence[str], declared: Sequence[str | None], override: str | None
) -> tuple[str | None, np.ndarray | None]:
    """The unit of the output and a per-channel scale factor (None when no scaling is needed)."""
    if override is not None:
        return override, None
    known = [(n, u) for n, u in zip(names, declared, strict=True) if u is not None]
    if not known:
        return None, None
    electrical = [(n, u) for n, u in known if not _is_other_unit(u)]
    other = [(n, u) for n, u in known if _is_other_unit(u)]
    if other and electrical:
        shown = ", ".join(f"{n} ({u})" for n, u in known)
        raise RecordingError(
            f"the selected channels of '{path}' have incompatible units: {shown}; select "
            "channels of one kind (--channel NAME), or pass --units to treat them alike"
        )
    if other:
        return None, None
    target = electrical[0][1]
    kinds = {u == "counts" for _, u in electrical}
    if len(kinds) > 1:
        shown = ", ".join(f"{n} ({u})" for n, u in electrical)
        raise RecordingError(
            f"the selected channels of '{path}' mix ADC counts and volts: {shown}; select "
            "channels of one kind (--channel NAME), or pass --units to treat them alike"
        )
    if target == "counts" or all(u == target for _, u in electrical):
        return target, None
    scale = np.array(
        [1.0 if u is None else _VOLTS[u] / _VOLTS[target] for u in declared], dtype=np.float64
    )
    return target, scale


# --------------------------------------------------------------------------------------------
# Channel selection


def _unique_names(names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        key = name.lower()
        seen[key] = seen.get(key, 0) + 1
        out.append(name if seen[key] == 1 else f"{name}#{seen[key]}")
    return tuple(out)


def _describe_channels(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    if len(names) > _MAX_NAMES_SHOWN:
        shown += f", ... ({len(names)} in all)"
    return shown


def _select_channels(
    path: Path,
    names: Sequence[str],
    wanted: Sequence[str | int] | None,
    default: Sequence[int],
) -> list[int]:
    """Indices of the wanted channels (names case-insensitive, or 0-based indices)."""
    if wanted is None:
        return list(default)
    if isinstance(wanted, (str, int)):
        wanted = [wanted]
    if len(wanted) == 0:
        raise RecordingError(
            f"no channels selected for '{path}': name at least one, or none for all"
        )
    picked: list[int] = []
    for item in wanted:
        index = _channel_index(path, names, item)
        if index in picked:
            raise RecordingError(
                f"channel {names[index]!r} of '{path}' is selected twice; select each channel once"
            )
        picked.append(index)
    return picked


def _channel_index(path: Path, names: Sequence[str], item: str | int) -> int:
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        if -len(names) <= item < len(names):
            return int(item) % len(names)
    elif isinstance(item, str):
        exact = [i for i, n in enumerate(names) if n == item]
        folded = [i for i, n in enumerate(names) if n.lower() == item.strip().lower()]
        matches = exact or folded
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RecordingError(
                f"channel name {item!r} is ambiguous in '{path}'; select it by 0-based index"
            )
        if item.strip().lstrip("-").isdigit():
            return _channel_index(path, names, int(item))
    raise RecordingError(
        f"no channel {item!r} in '{path}'; its channels are: {_describe_channels(names)} "
        "(select by name or 0-based index)"
    )


# --------------------------------------------------------------------------------------------
# Shared helpers


def _source_id(data_file: Path, extra: bytes = b"") -> str:
    digest = hashlib.sha256()
    digest.update(f"{data_file.stat().st_size}\n".encode())
    with data_file.open("rb") as handle:
        digest.update(handle.read(_HASH_HEAD))
    digest.update(extra)
    return digest.hexdigest()[:16]


def _snap_rate(fs: float) -> float:
    """Round a measured rate to the nearest integer when it is that within 0.01 %."""
    nearest = round(fs)
    if nearest > 0 and abs(fs - nearest) <= 1e-4 * fs:
        return float(nearest)
    return fs


def _rates_agree(a: float, b: float) -> bool:
    return abs(a - b) <= _RATE_TOLERANCE * max(a, b)


def _check_fs_argument(fs: float | None) -> float | None:
    if fs is None:
        return None
    value = float(fs)
    if not math.isfinite(value) or value <= 0:
        raise RecordingError(f"sampling rate must be a positive number of Hz, got {fs!r}")
    return value


def _choose_rate(path: Path, given: float | None, found: Sequence[tuple[str, float]]) -> float:
    """The sampling rate: the file's own (all sources must agree) or the given one."""
    for i, (where_a, rate_a) in enumerate(found):
        for where_b, rate_b in found[i + 1 :]:
            if not _rates_agree(rate_a, rate_b):
                raise RecordingError(
                    f"'{path}' contradicts itself: {where_a} says {rate_a:g} Hz but {where_b} "
                    f"says {rate_b:g} Hz; fix the file (or remove one of them)"
                )
    if given is not None:
        for where, rate in found:
            if not _rates_agree(given, rate):
                raise RecordingError(
                    f"--fs {given:g} contradicts '{path}': {where} says {rate:g} Hz; "
                    "leave --fs out to use the file's rate"
                )
        return given
    if found:
        return found[0][1]
    raise RecordingError(
        f"no sampling rate in '{path}': the file does not state one; pass --fs HZ (fs= in Python)"
    )


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """Hide third-party deprecation noise (wfdb calls deprecated pandas APIs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _import_optional(module: str, what: str) -> Any:
    try:
        with _quiet_deprecations():
            return __import__(module)
    except ImportError as error:
        raise RecordingError(
            f"reading {what} needs the '{module}' package, which is not installed: {_RESEARCH_HINT}"
        ) from error


# --------------------------------------------------------------------------------------------
# Recording


class _Reader:
    """A format backend: yields float64 chunks (n, n_selected) of roughly `hint` rows."""

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def annotations(self) -> list[FileAnnotation]:
        return []

    def close(self) -> None:
        """Release resources (backends here open files only while iterating)."""


class Recording:
    """An open recording: `info`, `blocks()` to stream its samples, and `close()`."""

    def __init__(self, info: RecordingInfo, reader: _Reader, scale: np.ndarray | None = None):
        self.info = info
        self._reader = reader
        self._scale = scale
        self._closed = False

    def blocks(self, block_size: int = 65536) -> Iterator[np.ndarray]:
        """Yield float64 arrays (block_size, n_channels); only the last may be shorter.

        Each call starts again at the first sample.
        """
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise TypeError(f"block_size must be an int, got {block_size!r}")
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1, got {block_size}")
        self._check_open()
        return self._blocks(int(block_size))

    def _blocks(self, block_size: int) -> Iterator[np.ndarray]:
        pending: deque[np.ndarray] = deque()
        have = 0
        for chunk in self._reader.chunks(max(block_size, 4096)):
            self._check_open()
            if len(chunk) == 0:
                continue
            if self._scale is not None:
                chunk = chunk * self._scale
            pending.append(chunk)
            have += len(chunk)
            while have >= block_size:
                yield _take_rows(pending, block_size)
                have -= block_size
        if have:
            yield _take_rows(pending, have)

    def annotations(self) -> list[FileAnnotation]:
        """Annotations stored in the file (EDF+), as (onset_s, duration_s, text); else []."""
        self._check_open()
        return self._reader.annotations()

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

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (
            f"<Recording {i.format} '{i.path}' {i.fs:g} Hz channels={list(i.channels)} "
            f"units={i.units} n_samples={i.n_samples}>"
        )


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


# --------------------------------------------------------------------------------------------
# Opening


def open_recording(
    path: str | Path,
    *,
    fs: float | None = None,
    channels: Sequence[str | int] | None = None,
    units: str | None = None,
    fmt: str | None = None,
    delimiter: str | None = None,
    has_header: bool | None = None,
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
    """
    fs_given = _check_fs_argument(fs)
    override = normalize_units(units)
    kind, file_path = _resolve_format(Path(path).expanduser(), fmt)
    if kind != "csv" and (delimiter is not None or has_header is not None):
        raise RecordingError(
            f"delimiter and has_header apply to text files only, and '{path}' is {kind}; "
            "leave them out"
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


def _with_extra_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


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


# --------------------------------------------------------------------------------------------
# Text (CSV, TSV, whitespace-separated)

_DELIMITERS: tuple[str | None, ...] = (",", "\t", ";", None)  # None: runs of whitespace
_DELIMITER_NAMES = {
    ",": ",",
    "comma": ",",
    "\t": "\t",
    "\\t": "\t",
    "tab": "\t",
    ";": ";",
    "semicolon": ";",
    " ": None,
    "space": None,
    "spaces": None,
    "whitespace": None,
}
_PREAMBLE_MAX_LINES = 1000
_PROBE_DATA_ROWS = 1000
_RUN = 5  # consecutive numeric rows that mark the start of the data
_MAX_LINE_CHARS = 1 << 20
_TEXT_CHUNK_CHARS = 1 << 18  # text parsed per step: about 12 000 rows of a 2-channel CSV
_COMMENT_PREFIXES = ("#", "%")
_TIME_NAME = re.compile(
    r"^\s*(?P<base>time|t|timestamp|seconds|secs?|ms|msec|milliseconds)"
    r"\s*(?:[\[(_ ]\s*(?P<unit>s|sec|secs|seconds|ms|msec|milliseconds)\s*[\])]?)?\s*$",
    re.IGNORECASE,
)
_COUNTER_NAMES = {"nseq", "index", "idx", "sample", "samples", "sample_index", "sample index"}
_NAME_UNIT = re.compile(r"^(?P<name>.*?)\s*[\[(]\s*(?P<unit>[^\])]+?)\s*[\])]\s*$")
_CHANNEL_LINE = re.compile(
    r"^\s*channel\s*\d+\s*:\s*['\"]?(?P<name>[^'\",]+?)['\"]?\s*(?:,(?P<rest>.*))?$", re.IGNORECASE
)
_KEY_VALUE = re.compile(r"^\s*(?P<key>[A-Za-z][\w .()/-]*?)\s*(?::=|=|:)\s*(?P<value>.+?)\s*$")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FS_KEYS = {
    "sampling rate",
    "sample rate",
    "sampling frequency",
    "sample frequency",
    "sampling freq",
    "samplingrate",
    "samplerate",
    "fs",
    "sfreq",
    "srate",
}
_UNIT_KEYS = {"units", "unit", "physical dimension", "physical unit"}
_LABEL_KEYS = {"labels", "label", "channel names", "channel labels", "names"}
_COLUMN_KEYS = {"columns", "column"}


@dataclass
class _TextMeta:
    """Facts found in comment lines and preamble lines."""

    fs: float | None = None
    units: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    resolution: bool = False
    channel_names: list[str] = field(default_factory=list)
    channel_counts: list[int | None] = field(default_factory=list)
    channel_units: list[str | None] = field(default_factory=list)


@dataclass(frozen=True)
class _TextLayout:
    """How a text file is laid out, found by probing its first lines."""

    encoding: str
    data_start: int  # 0-based index of the first data line
    delimiter: str | None
    ncols: int
    trailing: bool  # every row ends with a delimiter (an empty extra field)
    names: tuple[str, ...]
    units: tuple[str | None, ...]
    time_col: int | None
    time_scale: float
    meta: _TextMeta


def _detect_encoding(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(65536)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise RecordingError(
            f"'{path}' looks binary (it contains NUL bytes), not text; if it is another format, "
            f"pass it explicitly (fmt=); {_SUPPORTED_TEXT}"
        )
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:
            return "latin-1"
    return "utf-8"


def _read_head_lines(path: Path, encoding: str, limit: int) -> list[str]:
    lines = []
    with path.open(encoding=encoding, errors="replace", newline=None) as handle:
        for _ in range(limit):
            line = handle.readline(_MAX_LINE_CHARS)
            if not line:
                break
            if len(line) >= _MAX_LINE_CHARS and not line.endswith("\n"):
                raise RecordingError(
                    f"line {len(lines) + 1} of '{path}' is longer than {_MAX_LINE_CHARS} "
                    "characters; this is not a text recording with one sample per line"
                )
            lines.append(line)
    return lines


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith(_COMMENT_PREFIXES)


def _is_content(line: str) -> bool:
    return bool(line.strip()) and not _is_comment(line)


def _split(text: str, delimiter: str | None) -> list[str]:
    text = text.rstrip("\r\n")
    if delimiter is None:
        return text.split()
    return text.split(delimiter)


def _clean_field(text: str) -> str:
    return text.strip().strip('"').strip("'").strip()


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric_fields(line: str, delimiter: str | None) -> int | None:
    """Field count when every field is a number or empty and one is a number, else None."""
    fields = [_clean_field(f) for f in _split(line.split("#", 1)[0], delimiter)]
    values = [f for f in fields if f]
    if not values or any(_as_number(f) is None for f in values):
        return None
    return len(fields)


def _all_empty_fields(line: str, delimiter: str | None, ncols: int) -> bool:
    fields = _split(line, delimiter)
    return len(fields) == ncols and not any(_clean_field(f) for f in fields)


def _run_columns(lines: Sequence[str], delimiter: str | None) -> int | None:
    """Field count when these lines are consistent numeric rows, else None."""
    count = _numeric_fields(lines[0], delimiter)
    if count is None:
        return None
    for line in lines[1:]:
        other = _numeric_fields(line, delimiter)
        if other != count and not (
            delimiter is not None and _all_empty_fields(line, delimiter, count)
        ):
            return None
    return count


def _best_delimiter(
    lines: Sequence[str], candidates: Sequence[str | None]
) -> tuple[str | None, int] | None:
    best: tuple[str | None, int] | None = None
    for delimiter in candidates:
        count = _run_columns(lines, delimiter)
        if count is not None and (best is None or count > best[1]):
            best = (delimiter, count)
    return best


def _find_data_start(
    path: Path, lines: Sequence[str], candidates: Sequence[str | None], has_header: bool | None
) -> tuple[int, str | None, int]:
    """(index of the first data line, delimiter, fields per row)."""
    content = [i for i, line in enumerate(lines) if _is_content(line)]
    if not content:
        raise RecordingError(f"no data rows in '{path}': it holds only comments or blank lines")
    first = 1 if has_header else 0
    last = first + 1 if has_header is not None else len(content)
    for pos in range(first, min(last, len(content))):
        if content[pos] >= _PREAMBLE_MAX_LINES:
            break
        run = [lines[i] for i in content[pos : pos + _RUN]]
        found = _best_delimiter(run, candidates)
        if found is not None:
            return content[pos], found[0], found[1]
    if has_header is not None and len(content) > first:
        line_no = content[first] + 1
        raise RecordingError(
            f"line {line_no} of '{path}' is not a row of numbers "
            f"({lines[content[first]].strip()[:60]!r}) although has_header={has_header} says the "
            "data starts there; check has_header and delimiter, or leave them out to detect them"
        )
    raise RecordingError(
        f"no data rows in '{path}': found no rows of numbers separated by commas, tabs, semicolons "
        "or spaces in its first lines; check the file, or pass delimiter="
    )


def _parse_meta_line(text: str, meta: _TextMeta) -> None:
    text = text.lstrip("#% \t").rstrip()
    if text.startswith("{"):
        _parse_json_meta(text, meta)
        return
    channel = _CHANNEL_LINE.match(text)
    if channel:
        _parse_channel_line(channel, meta)
        return
    pair = _KEY_VALUE.match(text)
    if pair:
        _apply_meta(pair.group("key"), pair.group("value"), meta)


def _parse_channel_line(match: re.Match[str], meta: _TextMeta) -> None:
    rest = match.group("rest") or ""
    count = re.search(r"(\d+)\s+values", rest)
    unit = re.search(r"units?\s*:\s*([^,]+)", rest, re.IGNORECASE)
    meta.channel_names.append(match.group("name").strip())
    meta.channel_counts.append(int(count.group(1)) if count else None)
    meta.channel_units.append(_declared_unit(unit.group(1)) if unit else None)


def _meta_key(key: str) -> str:
    key = re.sub(r"\(.*?\)|\[.*?\]", " ", key.lower())
    return re.sub(r"[\s_]+", " ", key).strip()


def _apply_meta(raw_key: str, value: Any, meta: _TextMeta) -> None:
    key = _meta_key(raw_key)
    if key in _FS_KEYS:
        meta.fs = meta.fs or _parse_rate(raw_key, value)
    elif key in _UNIT_KEYS:
        meta.units = meta.units or _meta_list(value)
    elif key in _LABEL_KEYS:
        meta.labels = meta.labels or _meta_list(value)
    elif key in _COLUMN_KEYS:
        meta.columns = meta.columns or _meta_list(value)
    elif key == "resolution":
        meta.resolution = True


def _parse_rate(key: str, value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    match = _NUMBER.search(str(value))
    if match is None:
        return None
    rate = float(match.group())
    if "khz" in f"{key} {value}".lower():
        rate *= 1000.0
    return rate if rate > 0 else None


def _meta_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value]
    parts = [p.strip() for p in re.split(r"[,\t;]", str(value))]
    if len(parts) == 1:
        parts = str(value).split()
    return [p for p in parts if p]


def _parse_json_meta(text: str, meta: _TextMeta) -> None:
    try:
        tree = json.loads(text)
    except json.JSONDecodeError:
        return
    for key, value in _walk_json(tree):
        _apply_meta(key, value, meta)


def _walk_json(tree: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from _walk_json(value)
            else:
                yield str(key), value


def _header_fields(line: str, delimiter: str | None) -> list[str]:
    return [_clean_field(f) for f in _split(line, delimiter)]


def _looks_like_names(fields: Sequence[str], ncols: int) -> bool:
    if len(fields) != ncols or not any(fields):
        return False
    if any(_as_number(f) is not None for f in fields if f):
        return False
    return all(len(f) <= 64 for f in fields)


def _header_names(
    lines: Sequence[str], start: int, delimiter: str | None, ncols: int, has_header: bool | None
) -> list[str] | None:
    """Column names from the row before the data (or a comment line just before it)."""
    before = [i for i in range(start) if lines[i].strip()]
    content = [i for i in before if not _is_comment(lines[i])]
    if has_header is False:
        return None
    if has_header:
        return _header_fields(lines[content[0]], delimiter)
    if content:
        line = lines[content[-1]]
        fields = _header_fields(line, delimiter)
        single_ok = ncols > 1 or (content[-1] == start - 1 and ":" not in line and "=" not in line)
        if _looks_like_names(fields, ncols) and single_ok:
            return fields
    if ncols > 1 and before and _is_comment(lines[before[-1]]):
        fields = _header_fields(lines[before[-1]].lstrip().lstrip("#%"), delimiter)
        if _looks_like_names(fields, ncols) and not any(":" in f or "=" in f for f in fields):
            return fields
    return None


def _check_header_row(path: Path, lines: Sequence[str], delimiter: str | None, ncols: int) -> None:
    """With has_header=True the first content line must be a header of the right width."""
    first = next(i for i, line in enumerate(lines) if _is_content(line))
    fields = _header_fields(lines[first], delimiter)
    if len(fields) != ncols:
        raise RecordingError(
            f"the header row (line {first + 1}) of '{path}' has {len(fields)} fields but the data "
            f"rows have {ncols}; fix the header, or pass has_header=False"
        )


def _collect_meta(lines: Sequence[str], start: int) -> _TextMeta:
    meta = _TextMeta()
    for line in lines[:start]:
        if line.strip():
            _parse_meta_line(line, meta)
    return meta


def _name_with_unit(name: str) -> tuple[str, str | None]:
    match = _NAME_UNIT.match(name)
    if match and _canonical_unit(match.group("unit")):
        return match.group("name").strip() or name, _canonical_unit(match.group("unit"))
    return name, None


def _time_scale(name: str) -> float | None:
    match = _TIME_NAME.match(name)
    if match is None:
        return None
    unit = (match.group("unit") or match.group("base")).lower()
    return 1e-3 if unit.startswith("m") else 1.0


def _column_names(
    header: list[str] | None, meta: _TextMeta, ncols: int
) -> tuple[list[str], list[str | None]]:
    """Names and declared units of every column."""
    units: list[str | None] = [None] * ncols
    if header is not None:
        pairs = [_name_with_unit(n) for n in header]
        names = [n or f"ch{i}" for i, (n, _) in enumerate(pairs)]
        units = [u for _, u in pairs]
    elif len(meta.channel_names) == ncols:
        names = list(meta.channel_names)
    elif len(meta.columns) == ncols:
        names = list(meta.columns)
    elif len(meta.labels) == ncols:
        names = list(meta.labels)
    else:
        names = [f"ch{i}" for i in range(ncols)]
    if len(meta.channel_units) == ncols:
        units = [u or v for u, v in zip(units, meta.channel_units, strict=True)]
    return names, units


def _apply_meta_units(units: list[str | None], meta: _TextMeta, time_col: int | None) -> None:
    """Fill in units the header lines state (one for all, or one per column)."""
    signal_cols = [i for i in range(len(units)) if i != time_col]
    declared = [_declared_unit(u) for u in meta.units]
    if len(declared) == 1:
        pairs = [(col, declared[0]) for col in signal_cols]
    elif len(declared) == len(units):
        pairs = [(col, declared[col]) for col in signal_cols]
    elif len(declared) == len(signal_cols):
        pairs = list(zip(signal_cols, declared, strict=True))
    else:
        pairs = []
    for col, unit in pairs:
        units[col] = units[col] or unit
    if meta.resolution:
        for col in signal_cols:
            units[col] = units[col] or "counts"


def _layout_text(
    path: Path, delimiter: str | None, delimiter_given: bool, has_header: bool | None
) -> tuple[_TextLayout, list[str]]:
    """Probe the first lines; returns the layout and the probed lines."""
    encoding = _detect_encoding(path)
    lines = _read_head_lines(path, encoding, _PREAMBLE_MAX_LINES + _PROBE_DATA_ROWS)
    candidates = (delimiter,) if delimiter_given else _DELIMITERS
    start, found_delimiter, ncols = _find_data_start(path, lines, candidates, has_header)
    _check_no_data_before(path, lines, start, found_delimiter, ncols)
    header = _header_names(lines, start, found_delimiter, ncols, has_header)
    if has_header:
        _check_header_row(path, lines, found_delimiter, ncols)
    trailing = _has_trailing_delimiter(lines[start:], found_delimiter, ncols, header)
    if trailing:
        ncols -= 1
        header = header[:ncols] if header else None
    meta = _collect_meta(lines, start)
    names, units = _column_names(header, meta, ncols)
    time_col = next((i for i, n in enumerate(names) if _time_scale(n) is not None), None)
    if time_col is not None:
        units[time_col] = None
    _apply_meta_units(units, meta, time_col)
    layout = _TextLayout(
        encoding=encoding,
        data_start=start,
        delimiter=found_delimiter,
        ncols=ncols,
        trailing=trailing,
        names=_unique_names(names),
        units=tuple(units),
        time_col=time_col,
        time_scale=(_time_scale(names[time_col]) or 1.0) if time_col is not None else 1.0,
        meta=meta,
    )
    return layout, lines


def _check_no_data_before(
    path: Path, lines: Sequence[str], start: int, delimiter: str | None, ncols: int
) -> None:
    """Numeric rows before the detected start mean a bad row broke the data: name it."""
    seen_data = False
    for i in range(start):
        if not _is_content(lines[i]):
            continue
        if _numeric_fields(lines[i], delimiter) == ncols:
            seen_data = True
        elif seen_data:
            raise RecordingError(
                f"line {i + 1} of '{path}' is not a row of {ncols} numbers: "
                f"{lines[i].strip()[:80]!r}; fix or remove that line"
            )


def _has_trailing_delimiter(
    data_lines: Sequence[str], delimiter: str | None, ncols: int, header: list[str] | None
) -> bool:
    if delimiter is None or ncols < 2:
        return False
    if header is not None and header[-1]:
        return False
    rows = [line for line in data_lines[:_PROBE_DATA_ROWS] if _is_content(line)]
    return bool(rows) and all(not _clean_field(_split(r, delimiter)[-1]) for r in rows)


class _TextParser:
    """Turns chunks of text lines into float arrays, fast with numpy, exact errors in Python."""

    def __init__(self, path: Path, layout: _TextLayout):
        self.path = path
        self.layout = layout

    def parse(self, text: str, first_line_no: int) -> np.ndarray:
        """Rows of a chunk of text (whole lines) whose first line is line `first_line_no`."""
        layout = self.layout
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                array = np.loadtxt(
                    io.StringIO(text),
                    delimiter=layout.delimiter,
                    comments="#",
                    ndmin=2,
                    dtype=np.float64,
                    quotechar='"' if layout.delimiter is not None else None,
                    usecols=range(layout.ncols) if layout.trailing else None,
                )
        except ValueError:
            return self.parse_slowly(_text_lines(text), first_line_no)
        if array.shape[0] == 0:
            return np.empty((0, layout.ncols))
        if array.shape[1] != layout.ncols:
            return self.parse_slowly(_text_lines(text), first_line_no)
        return array

    def parse_slowly(self, lines: Sequence[str], first_line_no: int) -> np.ndarray:
        out = np.empty((len(lines), self.layout.ncols))
        n = 0
        for offset, raw in enumerate(lines):
            fields = self._fields(raw)
            if fields is None:
                continue
            line_no = first_line_no + offset
            self._check_width(fields, line_no, raw)
            for col, text in enumerate(fields[: self.layout.ncols]):
                out[n, col] = self._value(text, line_no, col)
            n += 1
        return out[:n]

    def _fields(self, raw: str) -> list[str] | None:
        text = raw.split("#", 1)[0] if "#" in raw else raw
        if not text.strip() or text.lstrip().startswith("%"):
            return None
        return _split(text, self.layout.delimiter)

    def _check_width(self, fields: list[str], line_no: int, raw: str) -> None:
        ncols = self.layout.ncols
        if len(fields) == ncols:
            return
        if self.layout.trailing and len(fields) == ncols + 1 and not _clean_field(fields[-1]):
            return
        raise RecordingError(
            f"line {line_no} of '{self.path}' has {len(fields)} fields but the data rows have "
            f"{ncols} ({raw.strip()[:80]!r}); fix or remove that line"
        )

    def _value(self, text: str, line_no: int, col: int) -> float:
        cleaned = _clean_field(text)
        if not cleaned:
            return math.nan
        value = _as_number(cleaned)
        if value is None:
            raise RecordingError(
                f"line {line_no} of '{self.path}', column {col + 1} ({self.layout.names[col]}): "
                f"{cleaned[:40]!r} is not a number; fix or remove that line"
            )
        return value

    def line_of_row(self, lines: Sequence[str], first_line_no: int, row: int) -> int:
        """Line number of the row-th data row in these lines."""
        seen = -1
        for offset, raw in enumerate(lines):
            if self._fields(raw) is not None:
                seen += 1
                if seen == row:
                    return first_line_no + offset
        return first_line_no + len(lines) - 1


@dataclass(frozen=True)
class _TimeAxis:
    """The time column as probed: step and tolerance in seconds, first irregular line if any."""

    col: int
    scale: float
    step: float
    tolerance: float
    start: float
    irregular_line: int | None


def _time_decimals(lines: Sequence[str], layout: _TextLayout) -> int:
    decimals = 0
    for line in lines:
        if not _is_content(line):
            continue
        fields = _split(line, layout.delimiter)
        if layout.time_col is not None and layout.time_col < len(fields):
            text = _clean_field(fields[layout.time_col]).lower()
            mantissa = text.split("e")[0]
            if "." in mantissa:
                decimals = max(decimals, len(mantissa.split(".")[1]))
    return decimals


def _time_axis(
    layout: _TextLayout, parser: _TextParser, data_lines: list[str], rows: np.ndarray
) -> _TimeAxis | None:
    """The time column of the probed rows: its step and whether it is evenly spaced."""
    if layout.time_col is None:
        return None
    times = rows[:, layout.time_col] * layout.time_scale
    finite = np.flatnonzero(np.isfinite(times))
    if len(finite) < 2:
        start = float(times[finite[0]]) if len(finite) else 0.0
        return _TimeAxis(layout.time_col, layout.time_scale, math.nan, math.inf, start, None)
    diffs = np.diff(times[finite]) / np.diff(finite)
    median = float(np.median(diffs))
    quantum = 10.0 ** -_time_decimals(data_lines, layout) * layout.time_scale
    tolerance = 0.05 * abs(median) + quantum
    bad = np.flatnonzero(~(np.abs(diffs - median) <= tolerance))
    irregular = None
    if median <= 0 or len(bad):
        row = int(finite[bad[0] + 1]) if len(bad) else int(finite[1])
        irregular = parser.line_of_row(data_lines, layout.data_start + 1, row)
    step = float(times[finite[-1]] - times[finite[0]]) / float(finite[-1] - finite[0])
    start = float(times[finite[0]])
    return _TimeAxis(layout.time_col, layout.time_scale, step, tolerance, start, irregular)


def _text_rate(
    path: Path, fs: float | None, layout: _TextLayout, axis: _TimeAxis | None
) -> tuple[float, _TimeAxis | None]:
    """The sampling rate, and the time axis to check while streaming (when it gave the rate).

    Without fs (given or in the header) the rate comes from the time column, which must then be
    evenly spaced. With fs, an evenly spaced time column must agree with it; an uneven one
    (jittery host timestamps, gaps) is ignored.
    """
    found = [("its header", layout.meta.fs)] if layout.meta.fs is not None else []
    regular = axis is not None and axis.irregular_line is None and math.isfinite(axis.step)
    if axis is not None and regular:
        found.append((f"its time column {layout.names[axis.col]!r}", _snap_rate(1.0 / axis.step)))
    from_time = axis is not None and fs is None and layout.meta.fs is None
    if from_time and axis is not None and not regular:
        if axis.irregular_line is None:
            raise RecordingError(
                f"the time column {layout.names[axis.col]!r} of '{path}' has fewer than two "
                "values, so it gives no sampling rate; pass --fs HZ"
            )
        _raise_irregular(path, layout, axis.irregular_line, axis.step)
    return _choose_rate(path, fs, found), axis if from_time else None


def _raise_irregular(path: Path, layout: _TextLayout, line_no: int, step: float) -> None:
    name = layout.names[layout.time_col] if layout.time_col is not None else "time"
    raise RecordingError(
        f"the time column {name!r} of '{path}' is irregular at line {line_no} (the usual step is "
        f"{step:g} s): samples are missing or the clock jumped; replay needs evenly spaced samples "
        "- fix or split the file, or pass --fs HZ to ignore the time column"
    )


def _open_text(
    path: Path,
    fs: float | None,
    channels: Sequence[str | int] | None,
    override: str | None,
    delimiter: str | None,
    has_header: bool | None,
) -> Recording:
    delimiter_given = delimiter is not None
    if delimiter_given:
        if delimiter not in _DELIMITER_NAMES:
            raise RecordingError(
                f"unsupported delimiter {delimiter!r}: use ',', '\\t', ';' or 'whitespace'"
            )
        delimiter = _DELIMITER_NAMES[delimiter]
    layout, lines = _layout_text(path, delimiter, delimiter_given, has_header)
    parser = _TextParser(path, layout)
    data_lines = lines[layout.data_start :]
    probe = parser.parse_slowly(data_lines, layout.data_start + 1)
    if len(probe) == 0:
        raise RecordingError(f"no data rows in '{path}' after its header; it holds no samples")
    axis = _time_axis(layout, parser, data_lines, probe)
    rate, checked_axis = _text_rate(path, fs, layout, axis)
    columns = [i for i in range(layout.ncols) if i != layout.time_col]
    if not columns:
        raise RecordingError(f"'{path}' has a time column but no signal columns; nothing to replay")
    names = [layout.names[i] for i in columns]
    default = _default_text_channels(layout, columns)
    picked = [columns[i] for i in _select_channels(path, names, channels, default)]
    declared = [layout.units[i] for i in picked]
    selected = tuple(layout.names[i] for i in picked)
    unit, scale = _resolve_units(path, selected, declared, override)
    info = RecordingInfo(
        path=path,
        format="csv",
        fs=rate,
        channels=selected,
        units=unit,
        n_samples=_declared_count(layout),
        source_id=_source_id(path),
        channel_units=tuple(declared),
        start_s=axis.start if axis is not None else 0.0,
    )
    reader = _TextReader(path, layout, parser, picked, checked_axis, info.n_samples)
    return Recording(info, reader, scale)


def _default_text_channels(layout: _TextLayout, columns: Sequence[int]) -> list[int]:
    """Positions (among non-time columns) of the channels used when none are named."""
    keep = [
        pos
        for pos, col in enumerate(columns)
        if not _is_other_unit(layout.units[col])
        and layout.names[col].strip().lower() not in _COUNTER_NAMES
    ]
    return keep or list(range(len(columns)))


def _declared_count(layout: _TextLayout) -> int | None:
    counts = set(layout.meta.channel_counts)
    if len(layout.meta.channel_counts) == layout.ncols and len(counts) == 1:
        (count,) = counts
        return count
    return None


class _TextReader(_Reader):
    def __init__(
        self,
        path: Path,
        layout: _TextLayout,
        parser: _TextParser,
        picked: list[int],
        axis: _TimeAxis | None,
        declared_n: int | None,
    ):
        self.path = path
        self.layout = layout
        self.parser = parser
        self.picked = picked
        self.axis = axis
        self.declared_n = declared_n

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        layout = self.layout
        empty_run = 0  # rows with no selected value, held back (dropped if they end the file)
        emitted = 0
        last_time = math.nan
        with self.path.open(encoding=layout.encoding, errors="replace", newline=None) as handle:
            for _ in range(layout.data_start):
                handle.readline()
            line_no = layout.data_start + 1
            for text in _text_chunks(handle, _TEXT_CHUNK_CHARS):
                rows = self.parser.parse(text, line_no)
                if self.axis is not None and len(rows):
                    self._check_time(rows, text, line_no, last_time)
                    last_time = float(rows[-1, self.axis.col] * self.axis.scale)
                line_no += text.count("\n") + (not text.endswith("\n"))
                values = rows[:, self.picked]
                filled = np.flatnonzero(~np.isnan(values).all(axis=1))
                if len(filled) == 0:
                    empty_run += len(values)
                    continue
                yield from _nan_rows(empty_run, len(self.picked), hint)
                last = int(filled[-1])
                emitted += empty_run + last + 1
                empty_run = len(values) - last - 1
                yield values[: last + 1]
        self._check_count(emitted)

    def _check_time(self, rows: np.ndarray, text: str, line_no: int, last_time: float) -> None:
        axis = self.axis
        assert axis is not None
        times = np.concatenate(([last_time], rows[:, axis.col] * axis.scale))
        diffs = np.diff(times)
        bad = np.flatnonzero(np.abs(diffs - axis.step) > axis.tolerance)
        if len(bad):
            at = self.parser.line_of_row(_text_lines(text), line_no, int(bad[0]))
            _raise_irregular(self.path, self.layout, at, axis.step)

    def _check_count(self, emitted: int) -> None:
        if self.declared_n is not None and emitted != self.declared_n:
            raise RecordingError(
                f"'{self.path}' says it holds {self.declared_n} values per channel but has "
                f"{emitted} rows; the file is truncated or damaged - re-copy or re-export it"
            )


def _text_chunks(handle: TextIO, chars: int) -> Iterator[str]:
    """Pieces of about `chars` characters that end at the end of a line."""
    while text := handle.read(chars):
        if not text.endswith("\n"):
            text += handle.readline()
        yield text


def _text_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


def _nan_rows(n: int, width: int, hint: int) -> Iterator[np.ndarray]:
    for start in range(0, n, hint):
        yield np.full((min(hint, n - start), width), np.nan)


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
    selected = tuple(names[i] for i in picked)
    info = RecordingInfo(
        path=path,
        format="npy",
        fs=fs,
        channels=selected,
        units=override,
        n_samples=n,
        source_id=_source_id(path),
        channel_units=(None,) * len(picked),
    )
    return Recording(info, _NpyReader(path, header, n, width, picked))


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
        itemsize = self.header.dtype.itemsize
        handle.seek(offset)
        raw = handle.read(count * itemsize)
        if len(raw) != count * itemsize:
            raise RecordingError(f"'{self.path}' ended early (was it truncated while reading?)")
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
    selected = tuple(names[i] for i in picked)
    declared = [file_unit] * len(picked)
    unit, scale = _resolve_units(path, selected, declared, override)
    info = RecordingInfo(
        path=path,
        format="npz",
        fs=rate,
        channels=selected,
        units=unit,
        n_samples=lengths.pop(),
        source_id=_source_id(path),
        channel_units=tuple(declared),
    )
    return Recording(info, _NpzReader(path, [where[i] for i in picked]), scale)


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


# --------------------------------------------------------------------------------------------
# EDF / BDF


@dataclass(frozen=True)
class _EdfSignal:
    label: str
    unit: str | None
    samples_per_record: int
    offset: int  # byte offset inside a data record
    gain: float
    digital_min: int
    physical_min: float


@dataclass(frozen=True)
class _EdfHeader:
    width: int  # bytes per sample: 2 (EDF) or 3 (BDF)
    header_bytes: int
    n_records: int
    record_duration: float
    record_bytes: int
    signals: tuple[_EdfSignal, ...]
    annotation_signals: tuple[_EdfSignal, ...]


_EDF_CHUNK_BYTES = 8 << 20  # at most this much of the file is read per step
_EDF_SIGNAL_FIELDS = (
    ("label", 16),
    ("transducer", 80),
    ("dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefilter", 80),
    ("samples", 8),
    ("reserved", 32),
)


def _edf_number(path: Path, raw: bytes, what: str) -> float:
    text = raw.decode("ascii", errors="replace").strip()
    try:
        return float(text)
    except ValueError:
        raise RecordingError(
            f"'{path}' is not a valid EDF/BDF file: its {what} field is {text!r}; re-export it"
        ) from None


def _read_edf_header(path: Path) -> tuple[_EdfHeader, str]:
    """The parsed header and the reserved field (e.g. 'EDF+C')."""
    with path.open("rb") as handle:
        fixed = handle.read(256)
        if len(fixed) < 256:
            raise RecordingError(f"'{path}' is too short to be an EDF/BDF file; re-export it")
        width = 3 if fixed[:8] == b"\xffBIOSEMI" else 2
        if width == 2 and fixed[:8].strip() != b"0":
            raise RecordingError(
                f"'{path}' is not an EDF/BDF file (version field {fixed[:8]!r}); "
                f"check the file, {_SUPPORTED_TEXT}"
            )
        n_signals = int(_edf_number(path, fixed[252:256], "number of signals"))
        raw = handle.read(256 * n_signals)
    if n_signals < 1 or len(raw) < 256 * n_signals:
        raise RecordingError(f"'{path}' has a damaged or truncated EDF/BDF header; re-export it")
    fields = _split_signal_fields(raw, n_signals)
    header_bytes = int(_edf_number(path, fixed[184:192], "header size"))
    if header_bytes != 256 * (n_signals + 1):
        raise RecordingError(
            f"'{path}' has an inconsistent EDF/BDF header (size {header_bytes} for "
            f"{n_signals} signals); re-export it"
        )
    signals = _edf_signals(path, fields, n_signals, width)
    record_bytes = sum(s.samples_per_record for s in signals) * width
    n_records = int(_edf_number(path, fixed[236:244], "number of data records"))
    duration = _edf_number(path, fixed[244:252], "data record duration")
    reserved = fixed[192:236].decode("ascii", errors="replace").strip()
    data = [s for s in signals if s.label not in ("EDF Annotations", "BDF Annotations")]
    notes = [s for s in signals if s.label in ("EDF Annotations", "BDF Annotations")]
    header = _EdfHeader(
        width, header_bytes, n_records, duration, record_bytes, tuple(data), tuple(notes)
    )
    return header, reserved


def _split_signal_fields(raw: bytes, n_signals: int) -> dict[str, list[bytes]]:
    fields: dict[str, list[bytes]] = {}
    pos = 0
    for name, size in _EDF_SIGNAL_FIELDS:
        fields[name] = [raw[pos + i * size : pos + (i + 1) * size] for i in range(n_signals)]
        pos += size * n_signals
    return fields


def _edf_signals(
    path: Path, fields: dict[str, list[bytes]], n_signals: int, width: int
) -> list[_EdfSignal]:
    signals = []
    offset = 0
    for i in range(n_signals):
        label = fields["label"][i].decode("latin-1").strip()
        samples = int(_edf_number(path, fields["samples"][i], f"samples per record of {label!r}"))
        pmin = _edf_number(path, fields["physical_min"][i], f"physical minimum of {label!r}")
        pmax = _edf_number(path, fields["physical_max"][i], f"physical maximum of {label!r}")
        dmin = int(_edf_number(path, fields["digital_min"][i], f"digital minimum of {label!r}"))
        dmax = int(_edf_number(path, fields["digital_max"][i], f"digital maximum of {label!r}"))
        if dmax == dmin and label not in ("EDF Annotations", "BDF Annotations"):
            raise RecordingError(
                f"signal {label!r} of '{path}' has digital minimum = maximum ({dmin}); "
                "its scaling is undefined - re-export the file"
            )
        gain = (pmax - pmin) / (dmax - dmin) if dmax != dmin else 1.0
        unit = _declared_unit(fields["dimension"][i].decode("latin-1"))
        signals.append(_EdfSignal(label, unit, samples, offset, gain, dmin, pmin))
        offset += samples * width
    return signals


def _check_edf_size(path: Path, header: _EdfHeader) -> int:
    """Number of data records; refuses a file shorter than its header says."""
    data_bytes = path.stat().st_size - header.header_bytes
    complete = data_bytes // header.record_bytes if header.record_bytes else 0
    if header.n_records < 0:  # -1: still being recorded when the header was written
        return complete
    if complete < header.n_records:
        raise RecordingError(
            f"'{path}' is truncated: its header says {header.n_records} data records of "
            f"{header.record_bytes} bytes but the file holds only {complete} complete records; "
            "re-copy it (or repair its record count, e.g. by re-saving it with edfio)"
        )
    return header.n_records


def _open_edf(
    path: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    header, reserved = _read_edf_header(path)
    kind = "bdf" if header.width == 3 else "edf"
    if reserved.upper().startswith(("EDF+D", "BDF+D")):
        raise RecordingError(
            f"'{path}' is a discontinuous {kind.upper()}+D file (it has gaps); replay needs a "
            "continuous recording - export it as EDF+C or split it at the gaps"
        )
    if not header.signals or header.record_duration <= 0:
        raise RecordingError(f"'{path}' holds no signal data (annotations only); nothing to replay")
    n_records = _check_edf_size(path, header)
    names = _unique_names([s.label for s in header.signals])
    default = [i for i, s in enumerate(header.signals) if not _is_other_unit(s.unit)]
    picked = _select_channels(path, names, channels, default or range(len(names)))
    rate = _edf_rate(path, header, names, picked)
    rate = _choose_rate(path, fs, [("its header", rate)])
    selected = tuple(names[i] for i in picked)
    declared = [header.signals[i].unit for i in picked]
    unit, scale = _resolve_units(path, selected, declared, override)
    info = RecordingInfo(
        path=path,
        format=kind,
        fs=rate,
        channels=selected,
        units=unit,
        n_samples=n_records * header.signals[picked[0]].samples_per_record,
        source_id=_source_id(path),
        channel_units=tuple(declared),
    )
    return Recording(info, _EdfReader(path, header, n_records, picked), scale)


def _edf_rate(path: Path, header: _EdfHeader, names: Sequence[str], picked: list[int]) -> float:
    rates = [
        _snap_rate(header.signals[i].samples_per_record / header.record_duration) for i in picked
    ]
    if len(set(rates)) > 1:
        shown = ", ".join(f"{names[i]} {r:g} Hz" for i, r in zip(picked, rates, strict=True))
        raise RecordingError(
            f"the selected channels of '{path}' have different sampling rates ({shown}); select "
            "channels that share one rate with --channel NAME"
        )
    if rates[0] <= 0:
        raise RecordingError(f"channel {names[picked[0]]!r} of '{path}' has no samples")
    return rates[0]


class _EdfReader(_Reader):
    def __init__(self, path: Path, header: _EdfHeader, n_records: int, picked: list[int]):
        self.path = path
        self.header = header
        self.n_records = n_records
        self.signals = [header.signals[i] for i in picked]

    def _records(self, handle: BinaryIO, first: int, count: int) -> np.ndarray:
        header = self.header
        handle.seek(header.header_bytes + first * header.record_bytes)
        raw = handle.read(count * header.record_bytes)
        if len(raw) != count * header.record_bytes:
            raise RecordingError(f"'{self.path}' ended early (was it truncated while reading?)")
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, header.record_bytes)

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        per_record = self.signals[0].samples_per_record
        step = max(1, min(hint // per_record, _EDF_CHUNK_BYTES // self.header.record_bytes))
        with self.path.open("rb") as handle:
            for first in range(0, self.n_records, step):
                records = self._records(handle, first, min(step, self.n_records - first))
                yield np.stack([self._decode(records, s) for s in self.signals], axis=1)

    def _decode(self, records: np.ndarray, signal: _EdfSignal) -> np.ndarray:
        width = self.header.width
        raw = records[:, signal.offset : signal.offset + signal.samples_per_record * width]
        raw = np.ascontiguousarray(raw).reshape(-1)
        if width == 2:
            digital = raw.view("<i2").astype(np.float64)
        else:
            triples = raw.reshape(-1, 3).astype(np.int32)
            ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
            ints[ints >= 1 << 23] -= 1 << 24
            digital = ints.astype(np.float64)
        return (digital - signal.digital_min) * signal.gain + signal.physical_min

    def annotations(self) -> list[FileAnnotation]:
        if not self.header.annotation_signals:
            return []
        notes: list[FileAnnotation] = []
        first_onset: float | None = None
        step = max(1, _EDF_CHUNK_BYTES // self.header.record_bytes)
        with self.path.open("rb") as handle:
            for first in range(0, self.n_records, step):
                records = self._records(handle, first, min(step, self.n_records - first))
                for record in records:
                    onset = self._record_annotations(record, notes)
                    if first_onset is None:
                        first_onset = onset
        offset = first_onset or 0.0
        shifted = [
            FileAnnotation(round(a.onset_s - offset, 12), a.duration_s, a.text) for a in notes
        ]
        return sorted(shifted, key=lambda a: a.onset_s)

    def _record_annotations(self, record: np.ndarray, notes: list[FileAnnotation]) -> float | None:
        """Append the record's annotations; returns its timekeeping onset."""
        keeping: float | None = None
        for k, signal in enumerate(self.header.annotation_signals):
            size = signal.samples_per_record * self.header.width
            raw = record[signal.offset : signal.offset + size].tobytes()
            tals = [t for t in raw.split(b"\x00") if t.strip(b"\x00")]
            for j, tal in enumerate(tals):
                parsed = _parse_tal(tal)
                if parsed is None:
                    continue
                onset, duration, texts = parsed
                if k == 0 and j == 0:
                    keeping = onset
                notes.extend(FileAnnotation(onset, duration, text) for text in texts)
        return keeping


def _parse_tal(tal: bytes) -> tuple[float, float | None, list[str]] | None:
    """One EDF+ time-stamped annotation list: onset, duration, texts."""
    parts = tal.split(b"\x14")
    stamp = parts[0].split(b"\x15")
    try:
        onset = float(stamp[0])
        duration = float(stamp[1]) if len(stamp) > 1 and stamp[1] else None
    except ValueError:
        return None
    texts = [p.decode("utf-8", errors="replace") for p in parts[1:] if p]
    return onset, duration, texts


# --------------------------------------------------------------------------------------------
# WFDB

_WFDB_BYTES_PER_SAMPLE = {
    "8": 1.0,
    "16": 2.0,
    "24": 3.0,
    "32": 4.0,
    "61": 2.0,
    "80": 1.0,
    "160": 2.0,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}


def _read_wfdb_header(record: Path) -> Any:
    wfdb = _import_optional("wfdb", "WFDB records")
    hea = _with_extra_suffix(record, ".hea")
    try:
        with _quiet_deprecations():
            header = wfdb.rdheader(str(record))
    except Exception as error:
        raise RecordingError(
            f"cannot read the WFDB header '{hea}' ({error}); check the file"
        ) from error
    if getattr(header, "seg_name", None) or not getattr(header, "n_sig", 0):
        raise RecordingError(
            f"'{hea}' is a multi-segment WFDB record or has no signals; only single-segment "
            "records are supported - convert it with wfdb (e.g. rdrecord + wrsamp)"
        )
    return header


def _wfdb_files(record: Path, header: Any) -> dict[str, list[int]]:
    """Data file name -> indices of the signals stored in it."""
    files: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name):
        files.setdefault(name, []).append(i)
    return files


def _check_wfdb_files(record: Path, header: Any, files: dict[str, list[int]]) -> None:
    spf = header.samps_per_frame or [1] * header.n_sig
    offsets = header.byte_offset or [0] * header.n_sig
    for name, signals in files.items():
        data_file = record.parent / name
        if not data_file.is_file():
            raise RecordingError(
                f"the WFDB header '{record}.hea' names the data file '{data_file}', which is "
                "missing; copy the .dat next to the .hea"
            )
        per_sample = _WFDB_BYTES_PER_SAMPLE.get(str(header.fmt[signals[0]]))
        if per_sample is None or not header.sig_len:
            continue
        frame = sum((spf[i] or 1) for i in signals)
        needed = int(header.sig_len * frame * per_sample) + int(offsets[signals[0]] or 0)
        size = data_file.stat().st_size
        if size < needed:
            raise RecordingError(
                f"'{data_file}' is truncated: the header says {header.sig_len} samples "
                f"({needed} bytes) but the file has {size} bytes; re-copy the record"
            )


def _open_wfdb(
    record: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    header = _read_wfdb_header(record)
    files = _wfdb_files(record, header)
    _check_wfdb_files(record, header, files)
    if not header.sig_len:
        raise RecordingError(
            f"'{record}.hea' does not give the record length; re-write it with wfdb"
        )
    names = _unique_names([str(n) for n in header.sig_name])
    units_all = [_declared_unit(u) for u in (header.units or [None] * header.n_sig)]
    default = [i for i, u in enumerate(units_all) if not _is_other_unit(u)]
    picked = _select_channels(record, names, channels, default or range(len(names)))
    spf = header.samps_per_frame or [1] * header.n_sig
    if any((spf[i] or 1) != 1 for i in picked):
        raise RecordingError(
            f"'{record}.hea' stores several samples per frame (multi-rate record); resample it "
            "to one rate first"
        )
    rate = _choose_rate(record, fs, [("its header", float(header.fs))])
    selected = tuple(names[i] for i in picked)
    declared = [units_all[i] for i in picked]
    unit, scale = _resolve_units(record, selected, declared, override)
    hea = _with_extra_suffix(record, ".hea")
    first_dat = record.parent / header.file_name[picked[0]]
    info = RecordingInfo(
        path=hea,
        format="wfdb",
        fs=rate,
        channels=selected,
        units=unit,
        n_samples=int(header.sig_len),
        source_id=_source_id(first_dat, hea.read_bytes()),
        channel_units=tuple(declared),
    )
    return Recording(info, _WfdbReader(record, int(header.sig_len), picked), scale)


class _WfdbReader(_Reader):
    def __init__(self, record: Path, n: int, picked: list[int]):
        self.record = record
        self.n = n
        self.picked = picked

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        wfdb = _import_optional("wfdb", "WFDB records")
        for start in range(0, self.n, hint):
            stop = min(self.n, start + hint)
            try:
                with _quiet_deprecations():
                    rec = wfdb.rdrecord(
                        str(self.record),
                        sampfrom=start,
                        sampto=stop,
                        channels=self.picked,
                        physical=True,
                        return_res=64,
                    )
            except Exception as error:
                raise RecordingError(
                    f"cannot read samples {start}-{stop} of WFDB record '{self.record}' "
                    f"({error}); the record may be damaged - re-copy it"
                ) from error
            yield np.asarray(rec.p_signal, dtype=np.float64).reshape(stop - start, -1)
