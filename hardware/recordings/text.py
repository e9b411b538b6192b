"""Text recordings (CSV, TSV, whitespace-separated): probing the layout and metadata, then
streaming the rows."""

from __future__ import annotations

import codecs
import io
import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hardware.recordings.channels import _select_channels, _unique_names
from hardware.recordings.errors import RecordingError, option
from hardware.recordings.formats import _SUPPORTED_TEXT
from hardware.recordings.limits import HEAD_CHARS, MAX_LINE_CHARS, read_rows
from hardware.recordings.rates import _choose_rate, _snap_rate
from hardware.recordings.recording import Recording, _new_recording, _Reader
from hardware.recordings.units import _canonical_unit, _declared_unit, _is_other_unit

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
    nul = head.find(b"\x00")
    if nul >= 0 and b"\n" not in head[:nul]:  # NULs after whole lines: damage, found by line
        raise RecordingError(
            f"'{path}' looks binary (it contains NUL bytes), not text; {_SUPPORTED_TEXT}"
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
    """The first `limit` lines, or fewer: at most about HEAD_CHARS characters."""
    lines: list[str] = []
    chars = 0
    with path.open(encoding=encoding, errors="replace", newline=None) as handle:
        while len(lines) < limit and chars < HEAD_CHARS:
            line = _read_line(path, handle, len(lines) + 1)
            if not line:
                break
            lines.append(line)
            chars += len(line)
    return lines


def _read_line(path: Path, handle: TextIO, line_no: int) -> str:
    """One line of at most MAX_LINE_CHARS characters ('' at the end of the file)."""
    line = handle.readline(MAX_LINE_CHARS + 1)
    _check_text(path, line, line_no)
    if len(line) > MAX_LINE_CHARS:
        raise RecordingError(
            f"line {line_no} of '{path}' is longer than {MAX_LINE_CHARS:,} characters; this is "
            "not a text recording with one sample per line (or it is damaged from there)"
        )
    return line


def _check_text(path: Path, text: str, first_line_no: int) -> None:
    """Refuse NUL characters: what a power cut while writing leaves at the end of a file."""
    at = text.find("\x00")
    if at >= 0:
        line_no = first_line_no + text.count("\n", 0, at)
        raise RecordingError(
            f"line {line_no:,} of '{path}' holds NUL bytes (what a power cut or crash while "
            f"writing leaves): the recording is damaged from there; keep the lines before it "
            f"(e.g. head -n {line_no - 1} FILE > FIXED) and replay that"
        )


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
            f"({lines[content[first]].strip()[:60]!r}) although "
            f"{option('header' if has_header else 'no_header')} says the data starts there; "
            f"check {option('header')}/{option('no_header')} and {option('delimiter')}, or leave "
            "them out to detect them"
        )
    raise RecordingError(
        f"no data rows in '{path}': found no rows of numbers separated by commas, tabs, semicolons "
        "or spaces in its first lines; check the file"
        + option("delimiter", "D", ", or say which character separates the values with {}")
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
            f"rows have {ncols}; fix the header" + option("no_header", clause=", or pass {}")
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
                f"values, so it gives no sampling rate; pass {option('fs', 'HZ')}"
            )
        _raise_irregular(path, layout, axis.irregular_line, axis.step)
    return _choose_rate(path, fs, found), axis if from_time else None


def _raise_irregular(path: Path, layout: _TextLayout, line_no: int, step: float) -> None:
    name = layout.names[layout.time_col] if layout.time_col is not None else "time"
    raise RecordingError(
        f"the time column {name!r} of '{path}' is irregular at line {line_no} (the usual step is "
        f"{step:g} s): samples are missing or the clock jumped; replay needs evenly spaced samples "
        f"- fix or split the file, or pass {option('fs', 'HZ')} to ignore the time column"
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
    data_lines = lines[layout.data_start :][: read_rows(8 * layout.ncols)]
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
    n_samples = _declared_count(layout)
    return _new_recording(
        _TextReader(path, layout, parser, picked, checked_axis, n_samples),
        path,
        kind="csv",
        fs=rate,
        channels=tuple(layout.names[i] for i in picked),
        declared=[layout.units[i] for i in picked],
        override=override,
        n_samples=n_samples,
        start_s=axis.start if axis is not None else 0.0,
    )


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
            for skipped in range(layout.data_start):
                _read_line(self.path, handle, skipped + 1)
            line_no = layout.data_start + 1
            for text in _text_chunks(self.path, handle, line_no):
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


def _text_chunks(path: Path, handle: TextIO, line_no: int) -> Iterator[str]:
    """Pieces of about _TEXT_CHUNK_CHARS characters that end at the end of a line (the first
    being line `line_no`); lines longer than MAX_LINE_CHARS and NUL characters are refused."""
    while text := handle.read(_TEXT_CHUNK_CHARS):
        if not text.endswith("\n"):
            text += _read_line(path, handle, line_no + text.count("\n"))
        _check_text(path, text, line_no)
        yield text
        line_no += text.count("\n")


def _text_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


def _nan_rows(n: int, width: int, hint: int) -> Iterator[np.ndarray]:
    for start in range(0, n, hint):
        yield np.full((min(hint, n - start), width), np.nan)
