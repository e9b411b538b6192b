"""`crampwatch export NIGHT --edf OUT.edf`: a recorded night as an EDF+ file, written with pyedflib.

The file is EDF+C (continuous): one signal per channel in microvolts at the electrodes
(``(volts - offset) / gain x 1e6``) and annotations for the recording start and end, marker
presses (``marker button``), detected events (``cramp left_calf`` and ``movement right_calf`` with
their durations; a cramp still open when the night stopped is ``cramp left_calf unfinished``),
quality changes (``quality left_calf electrode_off``, one annotation per problem, ``good`` when
none) and gaps.

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
  and each run of them is annotated ``gap CHANNEL`` (``gap`` when every channel misses the same
  samples); crampwatch's EDF reader turns those stretches back into missing samples. The last
  record is filled up the same way.
- EDFlib (pyedflib's C library) stores annotation times to 0.1 ms (so gaps land on whole samples
  up to 5 kHz), annotation texts of up to 40 characters, and one annotation per annotation signal
  and data record: the file gets as many annotation signals (up to 64) as its annotations need.
  A night with more annotations than crampwatch reads back (hardware.recordings.limits) is
  refused rather than written half.
- The file is written in two streaming passes over the night (bounded memory for any length) to a
  temporary file that replaces OUT only when complete: a failed export leaves no partial file.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsp.config import ScalingConfig
from firmware_host.device.night_recorder import Night, NightError, NightInfo, open_night
from firmware_host.event_output import OutputPathError, atomic_path, check_output_path
from hardware.recordings.limits import MAX_EDF_ANNOTATIONS

PROG = "crampwatch export"
DIGITAL_MIN, DIGITAL_MAX = -32768, 32767
MAX_RECORD_S = 60
CHUNK_SAMPLES = 1 << 16
MAX_ANNOTATION_SIGNALS = 64  # EDFlib's limit
ANNOTATION_CHARS = 40  # EDFlib writes at most this much of an annotation's text
ANNOTATION_RESOLUTION_S = 1e-4  # EDFlib's unit for annotation onsets and durations
_EDFLIB_ANNOTATION_BYTES = 114  # per annotation signal and data record
_SEARCH_CODES = 4096  # how far beyond the data a nicely written physical limit is looked for
_EXTRA_HINT = (
    "pip install 'crampwatch[pi]' on a 64-bit Raspberry Pi OS, 'crampwatch[research]' elsewhere"
)


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
    except (NightError, ExportError, OutputPathError) as error:
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
    pyedflib = _pyedflib()
    night = open_night(Path(night_dir))
    info = night.info
    if info.n_samples == 0:
        raise ExportError(
            f"{night_dir} holds no samples (the recorder stopped before the first second was "
            "written); there is nothing to export"
        )
    out = check_output_path(Path(out), "--edf")
    layout = record_layout(info.fs, info.n_samples)
    _check_annotation_resolution(layout.fs)
    labels = edf_labels(info.channels)
    notes = _notes(night, layout, labels)
    survey = _survey(night, layout, labels)
    n_annotations = _check_annotation_count(len(notes) + survey.gaps, layout)
    scales = [
        digital_scale(info.scaling, info.step, lo, hi)
        for lo, hi in zip(survey.low, survey.high, strict=True)
    ]
    with atomic_path(out, "--edf") as temp:
        writer = _open_writer(pyedflib, temp, info, labels, scales, layout, n_annotations)
        try:
            for onset_s, duration_s, text in notes:
                _annotate(writer, onset_s, duration_s, text)
            _write_records(writer, night, layout, labels, scales)
        finally:
            writer.close()
        _check_written(temp, labels, layout, n_annotations)
    warnings_ = list(night.warnings)
    if layout.rate_error:
        warnings_.append(
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
        annotations=len(notes) + survey.gaps,
        gaps=survey.gaps,
        exact=all(s.exact for s in scales),
        warnings=tuple(warnings_),
    )


def _pyedflib() -> Any:
    try:
        import pyedflib
    except ImportError as error:
        raise ExportError(
            f"exporting EDF+ needs the 'pyedflib' package, which is not installed: {_EXTRA_HINT}"
        ) from error
    return pyedflib


def _check_annotation_resolution(fs: float) -> None:
    if fs * 2 * ANNOTATION_RESOLUTION_S >= 1.0:
        raise ExportError(
            f"the night is sampled at {fs:g} Hz; EDF+ annotations as EDFlib writes them resolve "
            f"{ANNOTATION_RESOLUTION_S * 1e3:g} ms, so gaps would not land on whole samples above "
            f"{0.5 / ANNOTATION_RESOLUTION_S:g} Hz - export it in another format"
        )


def _check_annotation_count(count: int, layout: RecordLayout) -> int:
    capacity = MAX_ANNOTATION_SIGNALS * layout.n_records
    if count > min(MAX_EDF_ANNOTATIONS, capacity):
        raise ExportError(
            f"the night needs {count:,} annotations (events, markers, quality changes and gaps); "
            f"an EDF+ file of {layout.n_records} data records holds at most {capacity:,} and "
            f"crampwatch reads back at most {MAX_EDF_ANNOTATIONS:,} - so many gaps mean the "
            "signal was mostly lost; nothing was written"
        )
    return count


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


# --- annotations -----------------------------------------------------------------------------


Note = tuple[float, float | None, str]  # onset (s from the first sample), duration, text


def _notes(night: Night, layout: RecordLayout, labels: tuple[str, ...]) -> list[Note]:
    """Every annotation but the gaps, by onset."""
    info = night.info
    label_of = dict(zip(info.channels, labels, strict=True))
    notes: list[Note] = []
    end_s = info.duration_s

    def add(at_s: float, text: str, duration_s: float | None = None) -> None:
        notes.append((min(max(at_s, 0.0), end_s), duration_s, text))

    add(0.0, "recording start")
    open_cramps: dict[str, dict[str, Any]] = {}
    for record in night.records():
        _note_for(record, label_of, open_cramps, add)
    for event in open_cramps.values():
        start = float(event["start_s"])
        add(start, f"cramp {_label(event, label_of)} unfinished", max(0.0, end_s - start))
    add(end_s, "recording end" if info.complete else "recording end (interrupted)")
    return sorted(notes, key=lambda note: note[0])


def _note_for(
    record: dict[str, Any],
    label_of: dict[str, str],
    open_cramps: dict[str, dict[str, Any]],
    add: Callable[..., None],
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
            for problem in record.get("problems") or ("good",):
                add(float(record["at_s"]), f"quality {_label(record, label_of)} {problem}")
    except (KeyError, TypeError, ValueError):
        return  # a line the recorder did not write: nothing to annotate


def _label(record: dict[str, Any], label_of: dict[str, str]) -> str:
    channel = str(record.get("channel"))
    return label_of.get(channel, edf_labels((channel,))[0])


def _annotate(writer: Any, onset_s: float, duration_s: float | None, text: str) -> None:
    """One annotation, its text in printable ASCII cut to what EDFlib keeps."""
    clean = "".join(c if 32 <= ord(c) < 127 else "_" for c in text)[:ANNOTATION_CHARS]
    duration = -1 if duration_s is None else max(0.0, duration_s)
    if writer.writeAnnotation(max(0.0, onset_s), duration, clean) < 0:
        raise ExportError(f"EDFlib refused the annotation {clean!r} at {onset_s:g} s")


class _GapRuns:
    """Runs of missing samples per channel, found block by block (a run may span blocks); a run
    every channel shares is one `gap`, others are `gap CHANNEL`."""

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.open_since = np.full(len(labels), -1, dtype=np.int64)  # -1: no open run
        self.position = 0

    def feed(self, missing: np.ndarray) -> list[tuple[int, int, str]]:
        """(first, stop, text) of the runs that end in this block (missing: samples x channels)."""
        ended: list[tuple[int, int, int]] = []
        for channel in range(missing.shape[1]):
            flags = np.concatenate(([self.open_since[channel] >= 0], missing[:, channel], [False]))
            edges = np.diff(flags.astype(np.int8))
            starts = np.flatnonzero(edges == 1) + self.position
            stops = np.flatnonzero(edges == -1) + self.position
            if self.open_since[channel] >= 0:
                starts = np.concatenate(([self.open_since[channel]], starts))
            if len(stops) < len(starts):  # the last run goes on into the next block
                self.open_since[channel] = starts[-1]
                starts = starts[:-1]
            else:
                self.open_since[channel] = -1
            ended.extend((int(a), int(b), channel) for a, b in zip(starts, stops, strict=True))
        self.position += len(missing)
        return self._texts(ended)

    def finish(self) -> list[tuple[int, int, str]]:
        """The runs still open at the end of the night."""
        ended = [(int(s), self.position, c) for c, s in enumerate(self.open_since) if s >= 0]
        self.open_since[:] = -1
        return self._texts(ended)

    def _texts(self, ended: list[tuple[int, int, int]]) -> list[tuple[int, int, str]]:
        by_span: dict[tuple[int, int], list[int]] = {}
        for first, stop, channel in ended:
            by_span.setdefault((first, stop), []).append(channel)
        runs = []
        for (first, stop), channels in sorted(by_span.items()):
            if len(channels) == len(self.labels):
                runs.append((first, stop, "gap"))
            else:
                runs.extend((first, stop, f"gap {self.labels[c]}") for c in channels)
        return runs


# --- the two passes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Survey:
    low: np.ndarray
    high: np.ndarray
    gaps: int


def _record_chunks(night: Night, layout: RecordLayout) -> Iterator[np.ndarray]:
    """Values of shape (records, samples_per_record, channels), the last record NaN padded."""
    spr = layout.samples_per_record
    per_chunk = max(1, CHUNK_SAMPLES // spr) * spr
    for block in night.blocks(per_chunk):
        if len(block) % spr:
            pad = np.full((spr - len(block) % spr, block.shape[1]), np.nan)
            block = np.concatenate([block, pad])
        yield block.reshape(-1, spr, block.shape[1])


def _survey(night: Night, layout: RecordLayout, labels: tuple[str, ...]) -> _Survey:
    """First pass: each channel's range, and how many gap annotations the night needs."""
    n_ch = len(labels)
    low, high = np.full(n_ch, np.inf), np.full(n_ch, -np.inf)
    runs, gaps = _GapRuns(labels), 0
    for values in _record_chunks(night, layout):
        by_channel = np.ascontiguousarray(values.reshape(-1, n_ch).T)  # fast reductions
        low = np.fmin(low, np.fmin.reduce(by_channel, axis=1))  # fmin/fmax skip NaN
        high = np.fmax(high, np.fmax.reduce(by_channel, axis=1))
        gaps += len(runs.feed(np.isnan(values.reshape(-1, n_ch))))
    gaps += len(runs.finish())
    low[~np.isfinite(low)] = np.nan
    high[~np.isfinite(high)] = np.nan
    return _Survey(low, high, gaps)


def _open_writer(
    pyedflib: Any,
    path: Path,
    info: NightInfo,
    labels: tuple[str, ...],
    scales: list[DigitalScale],
    layout: RecordLayout,
    n_annotations: int,
) -> Any:
    """An EDF+ writer with the header set (pyedflib keeps it until the first record)."""
    writer = pyedflib.EdfWriter(str(path), len(labels), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyedflib warns whenever the duration is given
            writer.setDatarecordDuration(layout.record_s)
            writer.setSignalHeaders(
                [
                    {
                        "label": label,
                        "dimension": "uV",
                        "sample_frequency": layout.fs,
                        "physical_min": float(scale.physical_min),
                        "physical_max": float(scale.physical_max),
                        "digital_min": scale.digital_min,
                        "digital_max": scale.digital_max,
                        "transducer": "surface EMG electrodes",
                        "prefilter": "",
                    }
                    for label, scale in zip(labels, scales, strict=True)
                ]
            )
            writer.setEquipment(_printable(f"crampwatch_{info.device}"))
            writer.setStartdatetime(info.started.replace(tzinfo=None))
            signals = max(1, math.ceil(n_annotations / layout.n_records))
            writer.set_number_of_annotation_signals(min(signals, MAX_ANNOTATION_SIGNALS))
        # pyedflib up to 0.1.42 gives EDFlib the start's fraction of a second in the wrong unit
        # (x100 instead of x10 per microsecond; fixed upstream after 0.1.42): set it again, in
        # EDFlib's 100 ns, after the last header change.
        set_subsecond = pyedflib._extensions._pyedflib.set_starttime_subsecond
        if set_subsecond(writer.handle, info.started.microsecond * 10) < 0:
            raise ExportError("EDFlib refused the start time's fraction of a second")
    except BaseException:
        writer.close()
        raise
    return writer


def _write_records(
    writer: Any,
    night: Night,
    layout: RecordLayout,
    labels: tuple[str, ...],
    scales: list[DigitalScale],
) -> None:
    """Second pass: the data records (ADC codes or scaled values as digital samples) and the gap
    annotations, a chunk of records at a time."""
    held = np.array([s.offset / s.factor for s in scales])  # 0 uV until a first value is seen
    runs = _GapRuns(labels)
    for values in _record_chunks(night, layout):
        k, spr, n_ch = values.shape
        flat = values.reshape(-1, n_ch)
        for first, stop, text in runs.feed(np.isnan(flat)):
            _annotate_gap(writer, layout, first, stop, text)
        flat, held = _hold_missing(flat, held)
        digital = [s.encode(flat[:, c]).reshape(k, spr) for c, s in enumerate(scales)]
        records = np.concatenate(digital, axis=1).astype(np.int32)
        for record in records:
            if writer.blockWriteDigitalSamples(record) < 0:
                raise OSError(f"EDFlib could not write data record to {writer.path}")
    for first, stop, text in runs.finish():
        _annotate_gap(writer, layout, first, stop, text)


def _annotate_gap(writer: Any, layout: RecordLayout, first: int, stop: int, text: str) -> None:
    _annotate(writer, first / layout.fs, (stop - first) / layout.fs, text)


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


def _check_written(
    path: Path, labels: tuple[str, ...], layout: RecordLayout, n_annotations: int
) -> None:
    """EDFlib reports no error when it cannot finish the file (e.g. a full disk while it writes
    the annotations at close): check that the file holds every record."""
    signals = min(max(1, math.ceil(n_annotations / layout.n_records)), MAX_ANNOTATION_SIGNALS)
    header = 256 * (len(labels) + signals + 1)
    record = 2 * layout.samples_per_record * len(labels) + _EDFLIB_ANNOTATION_BYTES * signals
    expected = header + layout.n_records * record
    size = path.stat().st_size
    if size < expected:
        raise OSError(
            28, f"the EDF+ file was cut short ({size:,} of {expected:,} bytes)", str(path)
        )


__all__ = [
    "ExportError",
    "ExportSummary",
    "add_parser",
    "digital_scale",
    "edf_labels",
    "export_edf",
    "record_layout",
    "run",
]
