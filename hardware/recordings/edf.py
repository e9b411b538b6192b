"""EDF and BDF recordings (EDF+/BDF+ annotations too), read with pyedflib (EDFlib, in C).

EDFlib checks the header and reads each channel's samples in order, a block at a time. Before it
is asked to, crampwatch checks what EDFlib would otherwise trust or hold: that the file holds all
the data records its header announces (EDFlib's own check prints to standard output), and that
its annotations are few enough to keep in memory (EDFlib holds every one, about 0.5 kB each;
see limits.MAX_EDF_ANNOTATIONS).

EDF has no missing-sample value: stretches an EDF+ file annotates `gap` (every channel) or
`gap LABEL` (one signal), with a duration, are read as missing samples (NaN), as `crampwatch
export` writes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.recordings.channels import _default_channels, _select_channels, _unique_names
from hardware.recordings.errors import RecordingError, option
from hardware.recordings.formats import _SUPPORTED_TEXT
from hardware.recordings.limits import MAX_EDF_ANNOTATIONS, READ_BYTES, read_rows
from hardware.recordings.optional import import_optional
from hardware.recordings.rates import _choose_rate, _snap_rate
from hardware.recordings.recording import FileAnnotation, Recording, _new_recording, _Reader
from hardware.recordings.units import _declared_unit

ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")  # EDF+/BDF+ annotation signals
_TIME_UNITS = 10_000_000  # EDFlib's onsets and durations: units of 100 ns
# What EDFlib's error texts (the part in brackets) mean, for a reader of crampwatch's message.
_EDFLIB_FIELDS = {
    "Number of Datarecords": "its number of data records is not a positive whole number (a "
    "recorder that never closed the file leaves -1)",
    "Duration": "its data record duration is not a number",
    "Physical Maximum": "a signal's physical maximum is not a number (e.g. nan or inf), or "
    "equals its physical minimum",
    "Physical Minimum": "a signal's physical minimum is not a number (e.g. nan or inf)",
    "Digital Maximum": "a signal's digital maximum is not a whole number above its digital "
    "minimum, or is out of range",
    "Digital Minimum": "a signal's digital minimum is not a whole number, or is out of range",
    "Sample in Datarecord": "a signal's samples per data record is not a positive whole number, "
    "or a data record is larger than EDF allows (10 MB, 15 MB for BDF)",
    "number of signals": "its number of signals is not a whole number from 1 to 640",
    "Bytes Header": "its header size does not match its number of signals",
    "Filesize": "it holds fewer data records than its header says",
}


@dataclass(frozen=True)
class _Frame:
    """Where things lie in the file (read after EDFlib has accepted the header)."""

    header_bytes: int
    record_bytes: int
    n_records: int
    annotation_spans: tuple[tuple[int, int], ...]  # (offset in a record, bytes) per EDF+ signal


def _open_edf(
    path: Path, fs: float | None, channels: Sequence[str | int] | None, override: str | None
) -> Recording:
    pyedflib = import_optional("pyedflib", "EDF/BDF files")
    _check_version(path)
    with _edflib(pyedflib, path) as edf:
        kind = (
            "bdf" if edf.filetype in (pyedflib.FILETYPE_BDF, pyedflib.FILETYPE_BDFPLUS) else "edf"
        )
        frame = _read_frame(path, 3 if kind == "bdf" else 2)
        _check_size(path, frame)
        signals = [_signal(edf, i) for i in range(edf.signals_in_file)]
        record_s = edf.datarecord_duration
    if not signals or record_s <= 0:
        raise RecordingError(f"'{path}' holds no signal data (annotations only); nothing to replay")
    names = _unique_names([s.label for s in signals])
    picked = _select_channels(path, names, channels, _default_channels([s.unit for s in signals]))
    rate = _choose_rate(
        path, fs, [("its header", _edf_rate(path, signals, names, picked, record_s))]
    )
    for i in picked:
        signals[i].check(path)
    gaps = _gap_spans(pyedflib, path, frame, rate, [signals[i].label for i in picked])
    return _new_recording(
        _EdfReader(pyedflib, path, picked, signals[picked[0]].n_samples, gaps, frame),
        path,
        kind=kind,
        fs=rate,
        channels=tuple(names[i] for i in picked),
        declared=[signals[i].unit for i in picked],
        override=override,
        n_samples=signals[picked[0]].n_samples,
    )


def _check_version(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(256)
    if len(head) < 256:
        raise RecordingError(f"'{path}' is too short to be an EDF/BDF file; re-export it")
    if head[:8] != b"\xffBIOSEMI" and head[:8].strip() != b"0":
        raise RecordingError(
            f"'{path}' is not an EDF/BDF file (version field {head[:8]!r}); check the file, "
            f"{_SUPPORTED_TEXT}"
        )


@contextmanager
def _edflib(pyedflib: Any, path: Path, *, annotations: bool = False) -> Iterator[Any]:
    """pyedflib's reader; EDFlib's refusals become a RecordingError that says what is wrong.

    EDFlib opens a file name once at a time per process (a second reader of the same file, e.g. a
    parallel sweep, is refused), so it is given a name of its own: this open's /proc/self/fd
    entry. The file size is checked by `_check_size`, not by EDFlib, which prints to stdout.
    """
    fd = os.open(path, os.O_RDONLY)
    alias = f"/proc/self/fd/{fd}" if Path(f"/proc/self/fd/{fd}").exists() else str(path)
    try:
        try:
            reader = pyedflib.EdfReader(
                alias,
                annotations_mode=(
                    pyedflib.READ_ALL_ANNOTATIONS
                    if annotations
                    else pyedflib.DO_NOT_READ_ANNOTATIONS
                ),
                check_file_size=pyedflib.DO_NOT_CHECK_FILE_SIZE,
            )
        except OSError as error:
            if annotations:  # the header was accepted without annotations: they are wrong
                raise RecordingError(
                    f"'{path}' has damaged EDF+ annotations: an onset or duration that is not a "
                    "number (e.g. inf or 1e300), or a malformed annotation list; re-export the file"
                ) from None
            raise _edflib_error(path, str(error).removeprefix(f"{alias}: ")) from None
        with reader:
            yield reader
    finally:
        os.close(fd)


def _edflib_error(path: Path, text: str) -> RecordingError:
    if "discontinuous" in text:
        return RecordingError(
            f"'{path}' is a discontinuous EDF+D/BDF+D file (it has gaps); replay needs a "
            "continuous recording - export it as EDF+C or split it at the gaps"
        )
    field = text[text.rfind("(") + 1 : text.rfind(")")] if text.endswith(")") else ""
    reason = _EDFLIB_FIELDS.get(field, text)
    return RecordingError(
        f"'{path}' is not a valid EDF/BDF file: {reason}; re-export it (EDFbrowser's header "
        "editor can repair some headers)"
    )


def _read_frame(path: Path, width: int) -> _Frame:
    """Record layout from the header's signal fields (EDFlib has checked they are numbers)."""
    with path.open("rb") as handle:
        fixed = handle.read(256)
        n_signals = int(fixed[252:256])
        fields = handle.read(256 * n_signals)
    labels = [fields[16 * i : 16 * i + 16].decode("latin-1").strip() for i in range(n_signals)]
    at = 216 * n_signals
    samples = [int(fields[at + 8 * i : at + 8 * i + 8]) for i in range(n_signals)]
    offsets = np.concatenate(([0], np.cumsum(samples)))[:-1] * width
    spans = tuple(
        (int(offset), count * width)
        for label, offset, count in zip(labels, offsets, samples, strict=True)
        if label in ANNOTATION_LABELS
    )
    return _Frame(256 * (n_signals + 1), sum(samples) * width, int(fixed[236:244]), spans)


def _check_size(path: Path, frame: _Frame) -> None:
    complete = (path.stat().st_size - frame.header_bytes) // frame.record_bytes
    if complete < frame.n_records:
        raise RecordingError(
            f"'{path}' is truncated: its header says {frame.n_records} data records of "
            f"{frame.record_bytes} bytes but the file holds only {complete} complete records; "
            "re-copy it (or repair its record count, e.g. by re-saving it with EDFbrowser)"
        )


@dataclass(frozen=True)
class _Signal:
    label: str
    unit: str | None
    samples_per_record: int
    n_samples: int
    physical: tuple[float, float]
    digital: tuple[int, int]

    def check(self, path: Path) -> None:
        """A selected signal must have a scaling (EDFlib checks the numbers, not this)."""
        if not self.digital[1] > self.digital[0] or self.physical[0] == self.physical[1]:
            raise RecordingError(
                f"signal {self.label!r} of '{path}' has digital minimum {self.digital[0]} and "
                f"maximum {self.digital[1]}, physical {self.physical[0]:g} to "
                f"{self.physical[1]:g}: its scaling is undefined - re-export the file"
            )


def _signal(edf: Any, i: int) -> _Signal:
    return _Signal(
        label=edf.getLabel(i).strip(),
        unit=_declared_unit(edf.getPhysicalDimension(i)),
        samples_per_record=int(edf.samples_in_datarecord(i)),
        n_samples=int(edf.samples_in_file(i)),
        physical=(float(edf.physical_min(i)), float(edf.physical_max(i))),
        digital=(int(edf.digital_min(i)), int(edf.digital_max(i))),
    )


def _edf_rate(
    path: Path, signals: list[_Signal], names: Sequence[str], picked: list[int], record_s: float
) -> float:
    rates = [_snap_rate(signals[i].samples_per_record / record_s) for i in picked]
    if len(set(rates)) > 1:
        shown = ", ".join(f"{names[i]} {r:g} Hz" for i, r in zip(picked, rates, strict=True))
        raise RecordingError(
            f"the selected channels of '{path}' have different sampling rates ({shown}); select "
            "channels that share one rate" + option("channel", "NAME", " with {}")
        )
    if rates[0] <= 0:
        raise RecordingError(f"channel {names[picked[0]]!r} of '{path}' has no samples")
    return rates[0]


# --- annotations -------------------------------------------------------------------------------


def _count_annotations(path: Path, frame: _Frame) -> int:
    """At least as many annotations as EDFlib would find: a pass over the annotation bytes.

    A TAL is `onset [\\x15 duration] \\x14 text \\x14 [text \\x14 ...] \\x00`: each \\x14 after the
    first ends one annotation, the first TAL of a record keeps time and holds none.
    """
    if not frame.annotation_spans:
        return 0
    count = 0
    step = max(1, READ_BYTES // frame.record_bytes)
    with path.open("rb") as handle:
        handle.seek(frame.header_bytes)
        for first in range(0, frame.n_records, step):
            rows = min(step, frame.n_records - first)
            raw = np.frombuffer(handle.read(rows * frame.record_bytes), dtype=np.uint8)
            records = raw.reshape(rows, frame.record_bytes)
            for offset, size in frame.annotation_spans:
                notes = records[:, offset : offset + size]
                ends = np.count_nonzero((notes[:, :-1] == 20) & (notes[:, 1:] == 0))
                count += int(np.count_nonzero(notes == 20)) - ends
            count -= rows  # the time-keeping TALs
            if count > MAX_EDF_ANNOTATIONS:
                break
    return count


def _read_annotations(pyedflib: Any, path: Path, frame: _Frame) -> list[FileAnnotation]:
    """Every annotation, by onset (seconds from the first sample)."""
    count = _count_annotations(path, frame)
    if count > MAX_EDF_ANNOTATIONS:
        raise RecordingError(
            f"'{path}' holds more than {MAX_EDF_ANNOTATIONS:,} annotations; crampwatch reads EDF+ "
            "files with at most that many (EDFlib keeps them all in memory) - remove some, or "
            "split the file"
        )
    if count <= 0:
        return []
    with _edflib(pyedflib, path, annotations=True) as edf:
        raw = edf.read_annotation()
    notes = [
        FileAnnotation(
            round(onset / _TIME_UNITS, 7),
            _duration(duration),
            text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text),
        )
        for onset, duration, text in raw
    ]
    return sorted(notes, key=lambda note: note.onset_s)


def _duration(text: bytes | str) -> float | None:
    text = text.decode("ascii", errors="replace") if isinstance(text, bytes) else text
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _gap_spans(
    pyedflib: Any, path: Path, frame: _Frame, fs: float, labels: list[str]
) -> np.ndarray:
    """Stretches annotated `gap` (every channel) or `gap LABEL` (one): missing samples that the
    writer held at the last value (as `crampwatch export` does); they are read as NaN.
    Rows (start, stop, column or -1), in samples."""
    spans = [
        span
        for note in _read_annotations(pyedflib, path, frame)
        if (span := _gap_span(note, fs, labels)) is not None
    ]
    return np.array(spans, dtype=np.int64).reshape(-1, 3)


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
    limit = 2**62 / fs  # seconds past any recording: keeps absurd onsets out of int64
    onset = min(max(note.onset_s, 0.0), limit)
    end = min(max(note.onset_s + note.duration_s, 0.0), limit)
    start, stop = round(onset * fs), round(end * fs)
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


# --- samples -------------------------------------------------------------------------------------


class _EdfReader(_Reader):
    def __init__(
        self,
        pyedflib: Any,
        path: Path,
        picked: list[int],
        n_samples: int,
        gaps: np.ndarray,
        frame: _Frame,
    ):
        self.pyedflib = pyedflib
        self.path = path
        self.picked = picked
        self.n = n_samples
        self.gaps = gaps
        self.frame = frame

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        read_physical = self.pyedflib._extensions._pyedflib.read_physical_samples
        step = min(hint, read_rows(8 * len(self.picked)))
        with _edflib(self.pyedflib, self.path) as edf:
            for first in range(0, self.n, step):
                rows = min(step, self.n - first)
                chunk = np.empty((rows, len(self.picked)))
                for j, signal in enumerate(self.picked):
                    values = np.empty(rows)
                    if read_physical(edf.handle, signal, rows, values) != rows:
                        raise RecordingError(
                            f"'{self.path}' ended early (was it truncated while reading?)"
                        )
                    chunk[:, j] = values
                _blank_gaps(chunk, first, self.gaps)
                yield chunk

    def annotations(self) -> list[FileAnnotation]:
        return _read_annotations(self.pyedflib, self.path, self.frame)
