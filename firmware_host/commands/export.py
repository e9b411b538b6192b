"""`crampwatch export NIGHT --edf OUT.edf`: a recorded night as an EDF+ file.

The file is EDF+C (continuous): one signal per channel in microvolts at the electrodes
(``(volts - offset) / gain x 1e6``) and an "EDF Annotations" signal with the recording start and end,
marker presses (``marker button``), detected events (``cramp left_calf`` and ``movement right_calf``
with their durations; a cramp still open when the night stopped is ``cramp left_calf unfinished``),
quality changes (``quality left_calf electrode_off``) and gaps.

Choices (EDF's header fields are 8 ASCII characters, its samples 16-bit integers):

- Scaling: with a known ADC step the digital values are the ADC codes themselves (shifted only when
  they would not fit 16 bits) and the physical minimum and maximum are codes whose microvolt values
  are written exactly in 8 characters (an MCP3008 behind the modelled front end: codes 0..1024 =
  -1650..1650 uV), so a reader gets back each recorded value to float rounding. Without a known
  step, the rails (or the night's own range) span the full 16 bits.
- Data records last the shortest whole number of seconds that holds a whole number of samples:
  1 s at 1000 Hz, 5 s (4472 samples) at an ADS1115's estimated 894.4 Hz. A rate no such record
  (up to 60 s) fits is written at the nearest rate one does and the difference reported.
- Missing samples (NaN) hold the channel's last value, so any EDF reader sees a continuous signal,
  and are annotated ``gap CHANNEL`` (``gap`` when every channel misses the same samples), split at
  data-record boundaries so each note sits in the record it belongs to; crampwatch's own EDF reader
  turns those stretches back into missing samples. The last record is filled up the same way.
- The file is written in two streaming passes over the night (bounded memory for any length) to a
  temporary file that replaces OUT only when complete: a failed export leaves no partial file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dsp.config import ScalingConfig
from firmware_host.device.night_recorder import Night, NightError, NightInfo, open_night
from firmware_host.event_output import atomic_text_output

PROG = "crampwatch export"
DIGITAL_MIN, DIGITAL_MAX = -32768, 32767
MAX_RECORD_S = 60
CHUNK_SAMPLES = 1 << 16
_SEARCH_CODES = 4096  # how far beyond the data a nicely written physical limit is looked for
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class ExportError(ValueError):
    """The night cannot be exported as asked; the message says what to do."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a recorded night (EDF+)",
        description="Export a night recorded by the device as an EDF+ file: one signal per channel "
        "in microvolts, with markers, detected events and gaps as annotations.",
    )
    parser.add_argument("night", type=Path, metavar="NIGHT", help="the night's directory")
    parser.add_argument(
        "--edf", type=Path, required=True, metavar="OUT.edf", help="the EDF+ file to write"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        summary = export_edf(args.night, args.edf)
    except (NightError, ExportError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{PROG}: error: {_os_error_text(error, args.edf)}", file=sys.stderr)
        return 2
    for warning in summary.warnings:
        print(f"{PROG}: note: {warning}", file=sys.stderr)
    print(summary.format_text(), file=sys.stderr)
    return 0


def _os_error_text(error: OSError, out: Path) -> str:
    name = Path(error.filename) if error.filename else None
    reason = error.strerror or str(error)
    if name is None or name.parent == out.parent or name == out.parent:
        return f"cannot write {out} ({reason}); choose a writable place with --edf"
    return f"cannot read {name} ({reason}); check the night directory and its permissions"


# --- the export -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    """What `export_edf` wrote."""

    path: Path
    channels: tuple[str, ...]
    fs: float
    record_s: int
    n_records: int
    duration_s: float
    annotations: int
    gaps: int
    exact: bool  # recorded values come back exactly (to float rounding)
    warnings: tuple[str, ...] = ()

    def format_text(self) -> str:
        scaling = "exact ADC codes" if self.exact else "16-bit over the signal range"
        return (
            f"wrote {self.path}: EDF+C, {len(self.channels)} channel(s) at {self.fs:g} Hz, "
            f"{self.n_records} records of {self.record_s} s ({self.duration_s:.1f} s), "
            f"{self.annotations} annotations ({self.gaps} gap), {scaling}"
        )


def export_edf(night_dir: Path, out: Path) -> ExportSummary:
    """Write the night in `night_dir` as EDF+C to `out` (all or nothing)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out} is a directory; give the path of the .edf file to write")
    night = open_night(Path(night_dir))
    info = night.info
    if info.n_samples == 0:
        raise ExportError(
            f"{night_dir} holds no samples (the recorder stopped before the first second was "
            "written); there is nothing to export"
        )
    layout = record_layout(info.fs, info.n_samples)
    labels = edf_labels(info.channels)
    notes = _notes_by_record(night, layout, labels)
    survey = _survey(night, layout, labels, notes)
    scales = [
        digital_scale(info.scaling, info.step, lo, hi)
        for lo, hi in zip(survey.low, survey.high, strict=True)
    ]
    header = edf_header(info, labels, scales, layout, survey.annotation_bytes // 2)
    with atomic_binary_output(out) as stream:
        stream.write(header)
        _write_records(stream, night, layout, labels, scales, notes, survey.annotation_bytes)
    warnings = list(night.warnings)
    if layout.rate_error:
        warnings.append(
            f"{info.fs:g} Hz fits no whole-second data record up to {MAX_RECORD_S} s; written at "
            f"{layout.fs:.6g} Hz ({layout.rate_error:+.2e} relative)"
        )
    return ExportSummary(
        path=out,
        channels=labels,
        fs=layout.fs,
        record_s=layout.record_s,
        n_records=layout.n_records,
        duration_s=info.duration_s,
        annotations=sum(len(v) for v in notes.values()) + survey.gaps,
        gaps=survey.gaps,
        exact=all(s.exact for s in scales),
        warnings=tuple(warnings),
    )


@contextmanager
def atomic_binary_output(path: Path) -> Iterator[BinaryIO]:
    """A binary stream that becomes `path` only when the block finishes cleanly (the binary side of
    event_output.atomic_text_output, whose temp-file, fsync and rename it reuses)."""
    with atomic_text_output(path) as stream:
        yield stream.buffer  # type: ignore[misc]


# --- layout: data records ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecordLayout:
    record_s: int
    samples_per_record: int
    n_records: int
    fs: float  # the rate the file states: samples_per_record / record_s
    rate_error: float  # relative difference from the night's rate (0 when it fits exactly)


def record_layout(fs: float, n_samples: int) -> RecordLayout:
    """The shortest whole-second data record holding a whole number of samples (else the record
    up to MAX_RECORD_S whose rate comes nearest)."""
    best: tuple[float, int, int] | None = None
    for seconds in range(1, MAX_RECORD_S + 1):
        count = round(fs * seconds)
        error = (count / seconds - fs) / fs
        if count >= 1 and abs(error) <= 1e-9:
            return _layout(seconds, count, n_samples, 0.0)
        if count >= 1 and (best is None or abs(error) < abs(best[0])):
            best = (error, seconds, count)
    if best is None:
        raise ExportError(f"a sampling rate of {fs:g} Hz is too low for EDF data records")
    return _layout(best[1], best[2], n_samples, best[0])


def _layout(seconds: int, count: int, n_samples: int, error: float) -> RecordLayout:
    return RecordLayout(seconds, count, math.ceil(n_samples / count), count / seconds, error)


# --- scaling: digital <-> physical --------------------------------------------------------


@dataclass(frozen=True)
class DigitalScale:
    """How one channel's values (input units) become 16-bit EDF samples."""

    physical_min: str
    physical_max: str
    digital_min: int
    digital_max: int
    factor: float  # uV = value * factor - offset
    offset: float
    step: float | None  # exact mode: digital = value / step + shift
    shift: int
    exact: bool

    def encode(self, values: np.ndarray) -> np.ndarray:
        """int16 samples for values in input units (no NaN)."""
        if self.step is not None:
            digital = np.rint(values / self.step) + self.shift
        else:
            pmin, pmax = float(self.physical_min), float(self.physical_max)
            per_digit = (pmax - pmin) / (self.digital_max - self.digital_min)
            uv = values * self.factor - self.offset
            digital = np.rint((uv - pmin) / per_digit) + self.digital_min
        np.clip(digital, self.digital_min, self.digital_max, out=digital)
        return digital.astype("<i2")


def digital_scale(
    scaling: ScalingConfig, step: float | None, low: float, high: float
) -> DigitalScale:
    """The channel's EDF scaling; `low`/`high` is its recorded range (NaN when it has no value)."""
    factor, offset = scaling.factor_and_offset()
    low, high = _value_range(scaling, low, high, factor, offset)
    if step is not None:
        exact = _code_scale(factor, offset, step, low, high)
        if exact is not None:
            return exact
    return _spread_scale(factor, offset, low, high)


def _value_range(
    scaling: ScalingConfig, low: float, high: float, factor: float, offset: float
) -> tuple[float, float]:
    """The rails and the recorded values together (input units); +-1 uV when nothing is known."""
    ends = [v for v in (low, high) if math.isfinite(v)]
    if scaling.input_rails is not None:
        ends.extend(scaling.input_rails)
    if not ends:
        ends = [(offset - 1.0) / factor, (offset + 1.0) / factor]
    lo, hi = min(ends), max(ends)
    if hi - lo < 1e-9 * max(1.0, abs(hi)):
        lo, hi = lo - 1.0 / factor, hi + 1.0 / factor
    return lo, hi


def _code_scale(
    factor: float, offset: float, step: float, low: float, high: float
) -> DigitalScale | None:
    """ADC codes as digital values, limits whose microvolts are exact in 8 characters."""
    code_lo, code_hi = math.floor(low / step + 1e-6), math.ceil(high / step - 1e-6)
    if code_hi - code_lo > DIGITAL_MAX - DIGITAL_MIN:
        return None
    fits = code_lo >= DIGITAL_MIN and code_hi <= DIGITAL_MAX
    shift = 0 if fits else -((code_lo + code_hi) // 2)
    uv_per_code = step * factor

    def physical(digital: int) -> float:
        return (digital - shift) * uv_per_code - offset

    dmin = _exact_limit(physical, code_lo + shift, -1)
    dmax = _exact_limit(physical, code_hi + shift, +1)
    if dmin is None or dmax is None:
        return None
    return DigitalScale(
        physical_min=_exact_text(physical(dmin)) or "",
        physical_max=_exact_text(physical(dmax)) or "",
        digital_min=dmin,
        digital_max=dmax,
        factor=factor,
        offset=offset,
        step=step,
        shift=shift,
        exact=True,
    )


def _exact_limit(physical: Callable[[int], float], start: int, direction: int) -> int | None:
    """The first digital value from `start` outwards whose physical value is exact in 8 chars."""
    end = start + direction * _SEARCH_CODES
    stop = max(DIGITAL_MIN - 1, end) if direction < 0 else min(DIGITAL_MAX + 1, end)
    for digital in range(start, stop, direction):
        if _exact_text(physical(digital)) is not None:
            return digital
    return None


def _exact_text(value: float) -> str | None:
    """`value` in at most 8 characters when that is exact (to float rounding), else None."""
    for decimals in range(8):
        text = _clean(f"{value:.{decimals}f}")
        if len(text) <= 8 and abs(float(text) - value) <= 1e-12 * max(1.0, abs(value)):
            return text
    return None


def _spread_scale(factor: float, offset: float, low: float, high: float) -> DigitalScale:
    """The range (in uV, written outwards to 8 characters) over the full 16 bits."""
    pmin = _outward_text(low * factor - offset, math.floor)
    pmax = _outward_text(high * factor - offset, math.ceil)
    return DigitalScale(pmin, pmax, DIGITAL_MIN, DIGITAL_MAX, factor, offset, None, 0, False)


def _outward_text(value: float, rounding: Any) -> str:
    for decimals in range(7, -1, -1):
        scale = 10**decimals
        text = _clean(f"{rounding(value * scale) / scale:.{decimals}f}")
        if len(text) <= 8:
            return text
    raise ExportError(
        f"the signal range reaches {value:g} uV, beyond what EDF's 8-character limits can hold; "
        "check the night's scaling (gain, offset) in night.json"
    )


def _clean(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# --- annotations -----------------------------------------------------------------------------


def edf_labels(channels: tuple[str, ...]) -> tuple[str, ...]:
    """EDF signal labels: printable ASCII, no spaces, at most 16 characters, unique."""
    labels: list[str] = []
    for name in channels:
        text = _printable(name)[:16] or "ch"
        candidate, k = text, 1
        while candidate in labels or candidate == "EDF Annotations":
            suffix = f"_{k}"
            candidate, k = text[: 16 - len(suffix)] + suffix, k + 1
        labels.append(candidate)
    return tuple(labels)


def _printable(text: str) -> str:
    """Printable ASCII without spaces (EDF header fields and subfields)."""
    return "".join(c if 32 < ord(c) < 127 else "_" for c in text)


def _stamp(microseconds: int, signed: bool = True) -> str:
    """Seconds in EDF+ TAL notation (+12.5), from whole microseconds."""
    sign = "-" if microseconds < 0 else "+"
    seconds, fraction = divmod(abs(microseconds), 1_000_000)
    text = f"{seconds}.{fraction:06d}".rstrip("0").rstrip(".")
    return (sign if signed else "") + text


def _tal(onset_us: int, text: str, duration_us: int | None = None) -> bytes:
    timing = _stamp(onset_us)
    if duration_us is not None:
        timing += "\x15" + _stamp(max(0, duration_us), signed=False)
    return f"{timing}\x14{text}\x14\x00".encode()


def _timekeeping(record: int, layout: RecordLayout, sub_us: int) -> bytes:
    return f"{_stamp(sub_us + record * layout.record_s * 1_000_000)}\x14\x14\x00".encode()


def _notes_by_record(
    night: Night, layout: RecordLayout, labels: tuple[str, ...]
) -> dict[int, list[bytes]]:
    """Every annotation but the gaps, as TAL bytes, keyed by the data record its onset falls in."""
    info = night.info
    label_of = dict(zip(info.channels, labels, strict=True))
    sub_us = info.started.microsecond
    record_us = layout.record_s * 1_000_000
    notes: dict[int, list[bytes]] = defaultdict(list)
    end_s = info.duration_s

    def add(at_s: float, text: str, duration_s: float | None = None) -> None:
        onset_us = round(at_s * 1e6)
        record = min(max(onset_us // record_us, 0), layout.n_records - 1)
        duration = None if duration_s is None else round(duration_s * 1e6)
        notes[record].append(_tal(sub_us + onset_us, text, duration))

    add(0.0, "recording start")
    open_cramps: dict[str, dict[str, Any]] = {}
    for record in night.records():
        _note_for(record, label_of, open_cramps, add)
    for event in open_cramps.values():
        start = float(event["start_s"])
        add(start, f"cramp {_label(event, label_of)} unfinished", max(0.0, end_s - start))
    add(end_s, "recording end" if info.complete else "recording end (interrupted)")
    return dict(notes)


def _note_for(
    record: dict[str, Any],
    label_of: dict[str, str],
    open_cramps: dict[str, dict[str, Any]],
    add: Any,
) -> None:
    try:
        if "event_id" in record:
            if record.get("phase") == "started":
                open_cramps[record["event_id"]] = record
                return
            open_cramps.pop(record["event_id"], None)
            text = f"{record['kind']} {_label(record, label_of)}"
            add(float(record["start_s"]), text, float(record["duration_s"]))
        elif record.get("type") == "marker":
            add(float(record["at_s"]), f"marker {record.get('source', 'button')}")
        elif record.get("type") == "quality":
            problems = ",".join(record.get("problems") or ()) or "good"
            add(float(record["at_s"]), f"quality {_label(record, label_of)} {problems}")
    except (KeyError, TypeError, ValueError):
        return  # a line the recorder did not write: nothing to annotate


def _label(record: dict[str, Any], label_of: dict[str, str]) -> str:
    channel = str(record.get("channel"))
    return label_of.get(channel, edf_labels((channel,))[0])


def _gap_tals(
    missing: np.ndarray,
    first_record: int,
    layout: RecordLayout,
    labels: tuple[str, ...],
    sub_us: int,
) -> list[list[bytes]]:
    """`gap` notes per record for missing samples (records, samples_per_record, channels)."""
    k, spr, _ = missing.shape
    if not missing.any():
        return [[] for _ in range(k)]
    runs: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for channel in range(missing.shape[2]):
        flags = np.zeros((k, spr + 2), dtype=np.int8)
        flags[:, 1:-1] = missing[:, :, channel]
        edges = np.diff(flags, axis=1)
        rows, starts = np.nonzero(edges == 1)
        _, stops = np.nonzero(edges == -1)
        for row, start, stop in zip(rows.tolist(), starts.tolist(), stops.tolist(), strict=True):
            runs[(row, start, stop)].append(channel)
    per_record: list[list[bytes]] = [[] for _ in range(k)]
    for (row, start, stop), channels in sorted(runs.items()):
        first = (first_record + row) * spr
        onset_us = round((first + start) / layout.fs * 1e6)
        duration_us = round((first + stop) / layout.fs * 1e6) - onset_us
        names = [""] if len(channels) == len(labels) else [f" {labels[c]}" for c in channels]
        per_record[row].extend(_tal(sub_us + onset_us, f"gap{n}", duration_us) for n in names)
    return per_record


# --- the two passes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Survey:
    low: np.ndarray
    high: np.ndarray
    annotation_bytes: int  # per data record, even
    gaps: int


def _record_chunks(night: Night, layout: RecordLayout) -> Iterator[tuple[int, np.ndarray]]:
    """(first record, values of shape (records, samples_per_record, channels)), NaN padded."""
    spr = layout.samples_per_record
    per_chunk = max(1, CHUNK_SAMPLES // spr) * spr
    record = 0
    for block in night.blocks(per_chunk):
        if len(block) % spr:
            pad = np.full((spr - len(block) % spr, block.shape[1]), np.nan)
            block = np.concatenate([block, pad])
        values = block.reshape(-1, spr, block.shape[1])
        yield record, values
        record += len(values)


def _survey(
    night: Night, layout: RecordLayout, labels: tuple[str, ...], notes: dict[int, list[bytes]]
) -> _Survey:
    """First pass: each channel's range, and the annotation space the fullest record needs."""
    n_ch = len(labels)
    low, high = np.full(n_ch, np.inf), np.full(n_ch, -np.inf)
    sub_us = night.info.started.microsecond
    widest, gaps = 0, 0
    for first, values in _record_chunks(night, layout):
        by_channel = np.ascontiguousarray(values.reshape(-1, n_ch).T)  # fast reductions
        low = np.fmin(low, np.fmin.reduce(by_channel, axis=1))  # fmin/fmax skip NaN
        high = np.fmax(high, np.fmax.reduce(by_channel, axis=1))
        gap_notes = _gap_tals(np.isnan(values), first, layout, labels, sub_us)
        for row, extra in enumerate(gap_notes):
            record = first + row
            size = len(_timekeeping(record, layout, sub_us))
            size += sum(map(len, notes.get(record, ()))) + sum(map(len, extra))
            widest = max(widest, size)
            gaps += len(extra)
    low[~np.isfinite(low)] = np.nan
    high[~np.isfinite(high)] = np.nan
    return _Survey(low, high, widest + widest % 2, gaps)


def _write_records(
    stream: BinaryIO,
    night: Night,
    layout: RecordLayout,
    labels: tuple[str, ...],
    scales: list[DigitalScale],
    notes: dict[int, list[bytes]],
    annotation_bytes: int,
) -> None:
    """Second pass: the data records, a chunk of records per write."""
    sub_us = night.info.started.microsecond
    held = np.array([s.offset / s.factor for s in scales])  # 0 uV until a first value is seen
    for first, values in _record_chunks(night, layout):
        missing = np.isnan(values)
        flat = values.reshape(-1, values.shape[2])
        flat, held = _hold_missing(flat, held)
        digital = [s.encode(flat[:, c]) for c, s in enumerate(scales)]
        k, spr = values.shape[:2]
        parts = [d.reshape(k, spr).view(np.uint8) for d in digital]
        gap_notes = _gap_tals(missing, first, layout, labels, sub_us)
        parts.append(_annotation_block(first, gap_notes, notes, layout, sub_us, annotation_bytes))
        stream.write(np.concatenate(parts, axis=1).tobytes())


def _hold_missing(values: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN replaced by the channel's last value (`held` before the first one); the new `held`."""
    missing = np.isnan(values)
    if not missing.any():
        return values, values[-1].copy()
    index = np.where(missing, -1, np.arange(len(values))[:, None])
    np.maximum.accumulate(index, axis=0, out=index)
    taken = np.take_along_axis(values, np.maximum(index, 0), axis=0)
    filled = np.where(index >= 0, taken, held[None, :])
    return filled, filled[-1].copy()


def _annotation_block(
    first: int,
    gap_notes: list[list[bytes]],
    notes: dict[int, list[bytes]],
    layout: RecordLayout,
    sub_us: int,
    size: int,
) -> np.ndarray:
    rows = np.zeros((len(gap_notes), size), dtype=np.uint8)
    for row, extra in enumerate(gap_notes):
        record = first + row
        if record >= layout.n_records:
            break
        data = b"".join([_timekeeping(record, layout, sub_us), *notes.get(record, ()), *extra])
        rows[row, : len(data)] = np.frombuffer(data, dtype=np.uint8)
    return rows


# --- header ------------------------------------------------------------------------------------


def edf_header(
    info: NightInfo,
    labels: tuple[str, ...],
    scales: list[DigitalScale],
    layout: RecordLayout,
    annotation_samples: int,
) -> bytes:
    """The EDF+ header: 256 bytes, then 256 per signal (the channels and the annotations)."""
    start = info.started
    n_signals = len(labels) + 1
    fixed = [
        _field("0", 8),
        _field("X X X X", 80),
        _field(_recording_field(start, info.device), 80),
        _field(_startdate(start), 8),
        _field(f"{start:%H.%M.%S}", 8),
        _field(str(256 * (n_signals + 1)), 8),
        _field("EDF+C", 44),
        _field(str(layout.n_records), 8),
        _field(str(layout.record_s), 8),
        _field(str(n_signals), 4),
    ]
    spr = str(layout.samples_per_record)
    rows = [
        (
            label,
            "surface EMG electrodes",
            "uV",
            s.physical_min,
            s.physical_max,
            str(s.digital_min),
            str(s.digital_max),
            "",
            spr,
        )
        for label, s in zip(labels, scales, strict=True)
    ]
    rows.append(
        (
            "EDF Annotations",
            "",
            "",
            "-1",
            "1",
            str(DIGITAL_MIN),
            str(DIGITAL_MAX),
            "",
            str(annotation_samples),
        )
    )
    widths = (16, 80, 8, 8, 8, 8, 8, 80, 8)
    columns = [b"".join(_field(row[i], w) for row in rows) for i, w in enumerate(widths)]
    reserved = b"".join(_field("", 32) for _ in rows)
    header = b"".join(fixed) + b"".join(columns) + reserved
    assert len(header) == 256 * (n_signals + 1)
    return header


def _recording_field(start: datetime, device: str) -> str:
    date = f"{start.day:02d}-{_MONTHS[start.month - 1]}-{start.year}"
    equipment = _printable(f"crampwatch_{device}")  # a subfield: no spaces
    return f"Startdate {date} X X {equipment}"[:80]


def _startdate(start: datetime) -> str:
    """dd.mm.yy; EDF+ reads yy 85-99 as 19yy, 00-84 as 20yy, and 'yy' after 2084."""
    year = f"{start.year % 100:02d}" if 1985 <= start.year <= 2084 else "yy"
    return f"{start.day:02d}.{start.month:02d}.{year}"


def _field(text: str, width: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > width:
        raise ExportError(f"EDF header field {text!r} is longer than {width} characters")
    return raw.ljust(width, b" ")


__all__ = [
    "ExportError",
    "ExportSummary",
    "add_parser",
    "atomic_binary_output",
    "digital_scale",
    "edf_header",
    "edf_labels",
    "export_edf",
    "record_layout",
    "run",
]
