"""WFDB records (.hea header + .dat signal files), read through the optional `wfdb` package."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardware.recordings.channels import _default_channels, _select_channels, _unique_names
from hardware.recordings.errors import RecordingError
from hardware.recordings.limits import MAX_COLUMNS, read_rows
from hardware.recordings.optional import import_optional, quiet_deprecations
from hardware.recordings.rates import _choose_rate
from hardware.recordings.recording import Recording, _new_recording, _Reader
from hardware.recordings.units import _declared_unit

_MAX_HEADER_BYTES = 1 << 20  # a .hea is a few lines; wfdb reads it whole
_NUMBER_PART = re.compile(r"[/(]")
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


def _with_extra_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _read_wfdb_header(record: Path) -> Any:
    wfdb = import_optional("wfdb", "WFDB records")
    hea = _with_extra_suffix(record, ".hea")
    if hea.stat().st_size > _MAX_HEADER_BYTES:
        raise RecordingError(
            f"'{hea}' is {hea.stat().st_size:,} bytes, not a WFDB header (a few lines); check "
            "the file"
        )
    lines = _check_header_text(hea)
    try:
        with quiet_deprecations():
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
    if header.n_sig > MAX_COLUMNS:
        raise RecordingError(
            f"'{hea}' declares {header.n_sig:,} signals; crampwatch reads records of at most "
            f"{MAX_COLUMNS:,} - check the header"
        )
    _check_wfdb_parsed(hea, header, lines)
    return header


def _check_header_text(hea: Path) -> list[list[str]]:
    """wfdb reads a rate or gain it cannot parse ('-1000', 'nan', '1e300') as its default (250 Hz,
    200 per unit) or as a part of it ('1'): check the header's own numbers first. Returns the
    header's lines as fields (comments left out)."""
    lines = [
        line.split()
        for line in hea.read_text(encoding="latin-1").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    fs = _header_number(lines[0], 2) if lines else None
    if fs is not None and not (math.isfinite(fs[1]) and fs[1] > 0):
        raise RecordingError(
            f"'{hea}' gives the sampling rate as {fs[0]!r}, which is not a positive number of Hz; "
            "fix the header's first line"
        )
    for i, fields in enumerate(lines[1:]):
        gain = _header_number(fields, 2)
        if gain is not None and not math.isfinite(gain[1]):
            raise RecordingError(
                f"'{hea}' gives the gain of signal {i} ({' '.join(fields[8:]) or '?'!r}) as "
                f"{gain[0]!r}, which is not a number of ADC units per physical unit; fix that "
                "line of the header"
            )
    return lines


def _check_wfdb_parsed(hea: Path, header: Any, lines: list[list[str]]) -> None:
    """What wfdb made of the numbers must be what the header says (it reads '1e300' as 1)."""
    fs = _header_number(lines[0], 2)
    if fs is not None and fs[1] != header.fs:
        raise RecordingError(
            f"'{hea}' gives the sampling rate as {fs[0]!r}, which wfdb reads as {header.fs:g} Hz; "
            "write it as a plain number in the header's first line"
        )
    for i, fields in enumerate(lines[1 : 1 + header.n_sig]):
        gain = _header_number(fields, 2)
        if gain is not None and gain[1] not in (0.0, header.adc_gain[i]):  # 0: wfdb's default
            raise RecordingError(
                f"'{hea}' gives the gain of signal {i} as {gain[0]!r}, which wfdb reads as "
                f"{header.adc_gain[i]:g}; write it as a plain number in that line of the header"
            )


def _header_number(fields: list[str], index: int) -> tuple[str, float] | None:
    """(text, value) of the number that starts header field `index` (None when it is absent)."""
    if len(fields) <= index:
        return None
    text = _NUMBER_PART.split(fields[index])[0]
    try:
        return text, float(text)
    except ValueError:
        return text, math.nan


def _wfdb_files(record: Path, header: Any) -> dict[str, list[int]]:
    """Data file name -> indices of the signals stored in it."""
    files: dict[str, list[int]] = {}
    for i, name in enumerate(header.file_name):
        files.setdefault(name, []).append(i)
    return files


def _samples_per_frame(header: Any) -> list[int | None]:
    return header.samps_per_frame or [1] * header.n_sig


def _check_wfdb_files(record: Path, header: Any, files: dict[str, list[int]]) -> None:
    spf = _samples_per_frame(header)
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
    picked = _select_channels(record, names, channels, _default_channels(units_all))
    spf = _samples_per_frame(header)
    if any((spf[i] or 1) != 1 for i in picked):
        raise RecordingError(
            f"'{record}.hea' stores several samples per frame (multi-rate record); resample it "
            "to one rate first"
        )
    rate = _choose_rate(record, fs, [("its header", float(header.fs))])
    hea = _with_extra_suffix(record, ".hea")
    return _new_recording(
        _WfdbReader(record, int(header.sig_len), picked, header.n_sig),
        record,
        kind="wfdb",
        fs=rate,
        channels=tuple(names[i] for i in picked),
        declared=[units_all[i] for i in picked],
        override=override,
        n_samples=int(header.sig_len),
        source=record.parent / header.file_name[picked[0]],
        source_extra=hea.read_bytes(),
        info_path=hea,
    )


class _WfdbReader(_Reader):
    def __init__(self, record: Path, n: int, picked: list[int], n_signals: int):
        self.record = record
        self.n = n
        self.picked = picked
        self.n_signals = n_signals

    def chunks(self, hint: int) -> Iterator[np.ndarray]:
        wfdb = import_optional("wfdb", "WFDB records")
        step = min(hint, read_rows(24 * self.n_signals))  # wfdb's digital and physical copies
        for start in range(0, self.n, step):
            stop = min(self.n, start + step)
            try:
                with quiet_deprecations():
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
