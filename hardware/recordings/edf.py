"""EDF and BDF recordings (EDF+/BDF+ annotations too), read with plain file reads.

EDF has no missing-sample value: stretches an EDF+ file annotates `gap` (every channel) or
`gap LABEL` (one signal), with a duration, are read as missing samples (NaN), as `crampwatch
export` writes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.recordings.channels import _default_channels, _select_channels, _unique_names
from hardware.recordings.errors import RecordingError
from hardware.recordings.formats import _SUPPORTED_TEXT
from hardware.recordings.rates import _choose_rate, _snap_rate
from hardware.recordings.recording import (
    FileAnnotation,
    Recording,
    _new_recording,
    _read_at,
    _Reader,
)
from hardware.recordings.units import _declared_unit


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
_GAP_TEXT = re.compile(rb"\x14gap[\x14 ]")  # a TAL whose text is `gap` or `gap LABEL`
_ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")  # EDF+/BDF+ annotation signals
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
    data = [s for s in signals if s.label not in _ANNOTATION_LABELS]
    notes = [s for s in signals if s.label in _ANNOTATION_LABELS]
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
        if dmax == dmin and label not in _ANNOTATION_LABELS:
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
    default = _default_channels([s.unit for s in header.signals])
    picked = _select_channels(path, names, channels, default)
    rate = _edf_rate(path, header, names, picked)
    rate = _choose_rate(path, fs, [("its header", rate)])
    return _new_recording(
        _EdfReader(path, header, n_records, picked),
        path,
        kind=kind,
        fs=rate,
        channels=tuple(names[i] for i in picked),
        declared=[header.signals[i].unit for i in picked],
        override=override,
        n_samples=n_records * header.signals[picked[0]].samples_per_record,
    )


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
        self._gaps: np.ndarray | None = None  # (start, stop, column or -1 for all), samples

    def _record_blocks(self, step: int) -> Iterator[np.ndarray]:
        """The data records, `step` at a time: uint8 arrays (records, record_bytes)."""
        header = self.header
        with self.path.open("rb") as handle:
            for first in range(0, self.n_records, step):
                count = min(step, self.n_records - first)
                offset = header.header_bytes + first * header.record_bytes
                raw = _read_at(self.path, handle, offset, count * header.record_bytes)
                yield np.frombuffer(raw, dtype=np.uint8).reshape(count, header.record_bytes)

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        per_record = self.signals[0].samples_per_record
        step = max(1, min(hint // per_record, _EDF_CHUNK_BYTES // self.header.record_bytes))
        gaps = self._gap_spans()
        first = 0
        for records in self._record_blocks(step):
            chunk = np.stack([self._decode(records, s) for s in self.signals], axis=1)
            _blank_gaps(chunk, first, gaps)
            first += len(chunk)
            yield chunk

    def _gap_spans(self) -> np.ndarray:
        """Stretches annotated `gap` (every channel) or `gap LABEL` (one): missing samples that the
        writer held at the last value (as `crampwatch export` does); they are read as NaN.
        Rows (start, stop, column or -1), in samples."""
        if self._gaps is None:
            spans = self._find_gaps() if self.header.annotation_signals else []
            self._gaps = np.array(spans, dtype=np.int64).reshape(-1, 3)
        return self._gaps

    def _find_gaps(self) -> list[tuple[int, int, int]]:
        """Parses only the records whose annotations mention a gap (a byte search per chunk)."""
        fs = self.signals[0].samples_per_record / self.header.record_duration
        labels = [s.label for s in self.signals]
        size = self.header.width
        spans: list[tuple[int, int, int]] = []
        first_onset: float | None = None
        step = max(1, _EDF_CHUNK_BYTES // self.header.record_bytes)
        for records in self._record_blocks(step):
            if first_onset is None:
                first_onset = self._record_annotations(records[0], []) or 0.0
            rows: set[int] = set()
            for signal in self.header.annotation_signals:
                width = signal.samples_per_record * size
                notes = records[:, signal.offset : signal.offset + width].tobytes()
                rows.update(m.start() // width for m in _GAP_TEXT.finditer(notes))
            for row in sorted(rows):
                found: list[FileAnnotation] = []
                self._record_annotations(records[row], found)
                for note in found:
                    shifted = FileAnnotation(note.onset_s - first_onset, note.duration_s, note.text)
                    span = _gap_span(shifted, fs, labels)
                    if span is not None:
                        spans.append(span)
        return spans

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
        for records in self._record_blocks(step):
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


def _gap_span(note: FileAnnotation, fs: float, labels: list[str]) -> tuple[int, int, int] | None:
    """(start, stop, column or -1) of a `gap` / `gap LABEL` annotation with a duration."""
    words = note.text.split()
    if not words or words[0] != "gap" or len(words) > 2 or not note.duration_s:
        return None
    column = -1
    if len(words) == 2:
        if words[1] not in labels:
            return None
        column = labels.index(words[1])
    start = max(0, round(note.onset_s * fs))
    stop = round((note.onset_s + note.duration_s) * fs)
    return (start, stop, column) if stop > start else None


def _blank_gaps(chunk: np.ndarray, first: int, gaps: np.ndarray) -> None:
    """Set the samples of `chunk` (which starts at sample `first`) inside `gaps` to NaN."""
    if not len(gaps):
        return
    hit = gaps[(gaps[:, 0] < first + len(chunk)) & (gaps[:, 1] > first)]
    for start, stop, column in hit.tolist():
        rows = slice(max(start - first, 0), min(stop - first, len(chunk)))
        if column < 0:
            chunk[rows] = np.nan
        else:
            chunk[rows, column] = np.nan


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
