"""Streaming readers for recorded EMG files (the hardware.recordings package)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hardware.recordings import (
    FileAnnotation,
    Recording,
    RecordingError,
    normalize_units,
    open_recording,
)
from tests.shared_data import require_emg_data_dir

REPO = Path(__file__).resolve().parent.parent
BLOCK_SIZES = (1, 7, 1000, 65536)


def read_all(recording: Recording, block_size: int = 65536) -> np.ndarray:
    blocks = list(recording.blocks(block_size))
    assert all(b.dtype == np.float64 and b.ndim == 2 for b in blocks)
    assert all(len(b) == block_size for b in blocks[:-1])
    assert all(b.shape[1] == len(recording.info.channels) for b in blocks)
    if not blocks:
        return np.empty((0, len(recording.info.channels)))
    return np.concatenate(blocks)


def assert_block_sizes_agree(path: Path, **kwargs: object) -> np.ndarray:
    """Every block size gives the same samples; returns them."""
    with open_recording(path, **kwargs) as recording:
        reference = read_all(recording, 65536)
        for size in BLOCK_SIZES:
            np.testing.assert_array_equal(read_all(recording, size), reference)
    return reference


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding=encoding)
    return path


def signal(n: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.round(np.random.default_rng(seed).normal(0, 50, (n, channels)), 3)


def csv_lines(data: np.ndarray, delimiter: str = ",", time: np.ndarray | None = None) -> list[str]:
    rows = data if time is None else np.column_stack([time, data])
    return [delimiter.join(f"{v:.6f}" for v in row) for row in rows]


# ---------------------------------------------------------------------------------------------
# Text files


def test_csv_with_time_column(tmp_path: Path) -> None:
    data = signal(3000, 2)
    time = 1.0 + np.arange(3000) / 500.0
    path = write_lines(tmp_path / "x.csv", ["time,EMG1,EMG2", *csv_lines(data, ",", time)])
    got = assert_block_sizes_agree(path)
    np.testing.assert_allclose(got, data, atol=1e-6)
    with open_recording(path) as recording:
        info = recording.info
    assert info.format == "csv"
    assert info.fs == 500.0
    assert info.channels == ("EMG1", "EMG2")
    assert info.units is None
    assert info.n_samples is None
    assert info.start_s == pytest.approx(1.0)


@pytest.mark.parametrize("delimiter", [",", "\t", ";", " ", "   "])
def test_text_delimiters_detected(tmp_path: Path, delimiter: str) -> None:
    data = signal(50, 3)
    lines = [delimiter.join(["a", "b", "c"]), *csv_lines(data, delimiter)]
    path = write_lines(tmp_path / "x.txt", lines)
    with open_recording(path, fs=1000) as recording:
        assert recording.info.channels == ("a", "b", "c")
        np.testing.assert_allclose(read_all(recording), data, atol=1e-6)


def test_text_without_header_names_columns_and_needs_fs(tmp_path: Path) -> None:
    data = signal(20, 2)
    path = write_lines(tmp_path / "x.tsv", csv_lines(data, "\t"))
    with pytest.raises(RecordingError, match=r"no sampling rate.*pass fs=HZ"):
        open_recording(path)
    with open_recording(path, fs=250) as recording:
        assert recording.info.channels == ("ch0", "ch1")
        assert recording.info.fs == 250
        np.testing.assert_allclose(read_all(recording), data, atol=1e-6)


def test_explicit_delimiter_and_header_flags(tmp_path: Path) -> None:
    data = signal(30, 2)
    path = write_lines(tmp_path / "x.dat", ["left;right", *csv_lines(data, ";")])
    with open_recording(path, fs=100, delimiter="semicolon", has_header=True) as recording:
        assert recording.info.channels == ("left", "right")
        np.testing.assert_allclose(read_all(recording), data, atol=1e-6)
    with pytest.raises(RecordingError, match="line 1"):
        open_recording(path, fs=100, has_header=False)
    numeric = write_lines(tmp_path / "n.csv", csv_lines(data))
    with open_recording(numeric, fs=100, has_header=False) as recording:
        assert len(read_all(recording)) == 30
    with pytest.raises(RecordingError, match="header row"):
        open_recording(write_lines(tmp_path / "h.csv", ["a", *csv_lines(data)]), has_header=True)
    with pytest.raises(RecordingError, match="unsupported delimiter"):
        open_recording(path, fs=100, delimiter="|")


def test_biosppy_simple_text_format_header(tmp_path: Path) -> None:
    values = np.arange(2000, 2100, dtype=float)
    lines = [
        "# Simple Text Format",
        "# Sampling Rate (Hz):= 1000.00",
        "# Resolution:= 12",
        "# Labels:= EMG",
        *[f"{v:.1f}" for v in values],
    ]
    path = write_lines(tmp_path / "emg.txt", lines)
    with open_recording(path) as recording:
        info = recording.info
        assert (info.fs, info.channels, info.units) == (1000.0, ("EMG",), "counts")
        np.testing.assert_array_equal(read_all(recording)[:, 0], values)


def test_json_metadata_header(tmp_path: Path) -> None:
    meta = {"00:07:80": {"sampling rate": 1000, "resolution": [16], "column": ["nSeq", "A1"]}}
    lines = ["# OpenSignals Text File Format", "# " + json.dumps(meta), "# EndOfHeader"]
    lines += [f"{i % 16}\t{500 + i}" for i in range(100)]
    path = write_lines(tmp_path / "opensignals.txt", lines)
    with open_recording(path) as recording:
        assert recording.info.fs == 1000
        assert recording.info.channels == ("A1",)  # the nSeq counter is not a default channel
        assert recording.info.units == "counts"
        np.testing.assert_array_equal(read_all(recording)[:, 0], 500 + np.arange(100))


def test_comment_line_header_as_numpy_savetxt_writes_it(tmp_path: Path) -> None:
    data = signal(10, 2)
    path = tmp_path / "saved.txt"
    np.savetxt(path, data, header="left right", fmt="%.3f")
    with open_recording(path, fs=1000) as recording:
        assert recording.info.channels == ("left", "right")


def uci_like(n: int, trailing_angle_rows: int = 3) -> list[str]:
    """Like the UCI lower-limb files: a preamble describing each channel, tab-separated rows."""
    lines = ["File Name: walk.log"]
    for i, name in enumerate(["RF", "BF", "VM", "ST"], start=1):
        lines.append(f"Channel {i}: '{name}', {n} values, engineering units: mV, no filters.")
    angles = n + trailing_angle_rows
    lines.append(f"Channel 5: 'FX', {angles} values, engineering units: deg, no filters.")
    lines.append("")
    data = signal(n, 5)
    lines += ["\t".join(f"{v:g}" for v in row) for row in data]
    lines += ["\t\t\t\t38.6"] * trailing_angle_rows + ["\t\t\t\t"]
    return lines


def test_uci_like_preamble_missing_values_and_units(tmp_path: Path) -> None:
    lines = uci_like(40)
    lines[20] = "0.1\t\t0.3\t0.4\t12"  # a missing value in the middle
    path = write_lines(tmp_path / "walk.txt", lines)
    with open_recording(path, fs=1000) as recording:
        info = recording.info
        assert info.channels == ("RF", "BF", "VM", "ST")  # FX (deg) is not EMG
        assert info.units == "mV"
        assert info.n_samples is None  # the channels do not declare one common count
        got = read_all(recording, 7)
    assert got.shape == (40, 4)  # trailing rows without EMG values are dropped
    assert np.isnan(got[20 - 7, 1]) and np.isnan(got).sum() == 1
    with open_recording(path, fs=1000, channels=["fx"]) as recording:
        assert recording.info.units is None
        assert recording.info.channel_units == ("deg",)
        angle = read_all(recording)
    assert len(angle) == 43 and angle[-1, 0] == 38.6
    with pytest.raises(RecordingError, match=r"incompatible units.*RF \(mV\).*FX \(deg\)"):
        open_recording(path, fs=1000, channels=["RF", "FX"])
    with open_recording(path, fs=1000, channels=["RF", "FX"], units="mV") as recording:
        assert recording.info.units == "mV"


def test_text_count_in_header_detects_truncation(tmp_path: Path) -> None:
    lines = uci_like(40, trailing_angle_rows=0)
    path = write_lines(tmp_path / "whole.txt", lines)
    with open_recording(path, fs=1000) as recording:
        assert recording.info.n_samples == 40
        assert len(read_all(recording)) == 40
    path = write_lines(tmp_path / "cut.txt", lines[:-10])
    with (
        open_recording(path, fs=1000) as recording,
        pytest.raises(RecordingError, match=r"says it holds 40 values.*31 rows"),
    ):
        read_all(recording)


def test_units_in_column_names_are_converted_to_the_first(tmp_path: Path) -> None:
    lines = ["time (s),TA [uV],GM [mV]"] + [f"{i / 1000:.3f},{i},{i / 1000}" for i in range(10)]
    path = write_lines(tmp_path / "u.csv", lines)
    with open_recording(path) as recording:
        assert recording.info.channels == ("TA", "GM")
        assert recording.info.units == "uV"
        assert recording.info.channel_units == ("uV", "mV")
        got = read_all(recording)
    np.testing.assert_allclose(got[:, 1], got[:, 0])


def test_time_column_in_milliseconds(tmp_path: Path) -> None:
    lines = ["time_ms,emg"] + [f"{i * 0.5},{i}" for i in range(100)]
    with open_recording(write_lines(tmp_path / "ms.csv", lines)) as recording:
        assert recording.info.fs == 2000.0
        assert recording.info.channels == ("emg",)


def test_fs_argument_must_agree_with_the_file(tmp_path: Path) -> None:
    time = np.arange(100) / 1000.0
    path = write_lines(tmp_path / "t.csv", ["t,emg", *csv_lines(signal(100, 1), ",", time)])
    with open_recording(path, fs=1000) as recording:
        assert recording.info.fs == 1000
    with pytest.raises(RecordingError, match=r"fs=500 contradicts.*1000 Hz"):
        open_recording(path, fs=500)
    header = ["# sampling rate: 2000", "t,emg", *csv_lines(signal(100, 1), ",", time)]
    with pytest.raises(RecordingError, match=r"contradicts itself.*2000 Hz.*1000 Hz"):
        open_recording(write_lines(tmp_path / "h.csv", header))
    with pytest.raises(
        RecordingError, match=r"fs=-1: the sampling rate must be 1 Hz to 100,000 Hz"
    ):
        open_recording(path, fs=-1)


def test_irregular_time_column(tmp_path: Path) -> None:
    time = np.arange(5000) / 1000.0
    time[40:] += 0.05  # a 50 ms gap, inside the first rows read to find the rate
    path = write_lines(tmp_path / "gap.csv", ["time,emg", *csv_lines(signal(5000, 1), ",", time)])
    with pytest.raises(RecordingError, match=r"irregular at line 42"):
        open_recording(path)
    time = np.arange(5000) / 1000.0
    time[4000:] += 0.05  # a gap found only while streaming
    path = write_lines(tmp_path / "late.csv", ["time,emg", *csv_lines(signal(5000, 1), ",", time)])
    with open_recording(path) as recording, pytest.raises(RecordingError, match="line 4002"):
        read_all(recording, 100)
    with open_recording(path, fs=1000) as recording:  # with a rate, the time column is advisory
        assert len(read_all(recording)) == 5000
    jitter = np.arange(5000) / 250.0 + np.random.default_rng(1).uniform(0, 0.003, 5000)
    lines = ["% Sample Rate = 250 Hz", "Timestamp,EXG Channel 0"]
    path = write_lines(tmp_path / "jitter.txt", lines + csv_lines(signal(5000, 1), ",", jitter))
    with open_recording(path) as recording:
        assert recording.info.fs == 250.0
        assert recording.info.channels == ("EXG Channel 0",)
        assert len(read_all(recording)) == 5000
    one = write_lines(tmp_path / "one.csv", ["time,emg", "0.0,1.0"])
    with pytest.raises(RecordingError, match="fewer than two values"):
        open_recording(one)


@pytest.mark.parametrize("row", [10, 3000])
def test_garbage_and_ragged_rows_name_their_line(tmp_path: Path, row: int) -> None:
    lines = ["a,b", *csv_lines(signal(4000, 2))]
    garbage = list(lines)
    garbage[row] = "1.0,oops"
    path = write_lines(tmp_path / "g.csv", garbage)
    with (
        pytest.raises(RecordingError, match=rf"line {row + 1}\b.*'oops' is not a number"),
        open_recording(path, fs=1000) as recording,
    ):
        read_all(recording)
    ragged = list(lines)
    ragged[row] = "1.0,2.0,3.0"
    path = write_lines(tmp_path / "r.csv", ragged)
    with (
        pytest.raises(RecordingError, match=rf"line {row + 1} .* has 3 fields .* have 2"),
        open_recording(path, fs=1000) as recording,
    ):
        read_all(recording)


def test_empty_and_dataless_text_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RecordingError, match="empty"):
        open_recording(tmp_path / "empty.csv", fs=1)
    with pytest.raises(RecordingError, match="no data rows"):
        open_recording(write_lines(tmp_path / "h.csv", ["time,emg"]), fs=1)
    with pytest.raises(RecordingError, match="no data rows"):
        open_recording(write_lines(tmp_path / "c.csv", ["# only", "# comments"]), fs=1)
    with pytest.raises(RecordingError, match="binary"):
        (tmp_path / "b.csv").write_bytes(b"\x00\x01\x02garbage")
        open_recording(tmp_path / "b.csv", fs=1)


def test_text_variants_crlf_quotes_bom_latin1_trailing_delimiter(tmp_path: Path) -> None:
    data = signal(20, 2)
    body = csv_lines(data)
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(("a,b\r\n" + "\r\n".join(body) + "\r\n").encode())
    quoted = write_lines(tmp_path / "q.csv", ['"a","b"', *[f'"{x}","{y}"' for x, y in data]])
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + ("a,b\n" + "\n".join(body) + "\n").encode())
    trailing = write_lines(tmp_path / "t.csv", ["a,b,", *[line + "," for line in body]])
    for path in (crlf, quoted, bom, trailing):
        with open_recording(path, fs=10) as recording:
            assert recording.info.channels == ("a", "b"), path
            np.testing.assert_allclose(read_all(recording, 3), data, atol=1e-6)
    latin = write_lines(tmp_path / "l.csv", ["a (µV),b (µV)", *body], encoding="latin-1")
    with open_recording(latin, fs=10) as recording:
        assert recording.info.units == "uV"
        assert recording.info.channels == ("a", "b")


def test_channel_selection(tmp_path: Path) -> None:
    data = signal(10, 3)
    path = write_lines(
        tmp_path / "x.csv", ["time,TA,GM,SO", *csv_lines(data, ",", np.arange(10.0))]
    )
    cases = {("so", "TA"): [2, 0], (1,): [1], (-1,): [2], ("0",): [0], ("GM",): [1]}
    for wanted, columns in cases.items():
        with open_recording(path, channels=list(wanted)) as recording:
            np.testing.assert_allclose(read_all(recording), data[:, columns], atol=1e-6)
    with pytest.raises(RecordingError, match=r"no channel 'XX'.*TA, GM, SO"):
        open_recording(path, channels=["XX"])
    with pytest.raises(RecordingError, match="no channel 3"):
        open_recording(path, channels=[3])
    with pytest.raises(RecordingError, match="twice"):
        open_recording(path, channels=["TA", 0])
    with pytest.raises(RecordingError, match="no channels selected"):
        open_recording(path, channels=[])


# ---------------------------------------------------------------------------------------------
# NumPy


def test_npy_layouts_and_dtypes(tmp_path: Path) -> None:
    data = signal(5000, 3)
    variants = {
        "c.npy": data,
        "f.npy": np.asfortranarray(data),
        "i16.npy": np.round(data).astype(np.int16),
        "be.npy": data.astype(">f4"),
        "one.npy": data[:, 0],
    }
    for name, array in variants.items():
        np.save(tmp_path / name, array)
        got = assert_block_sizes_agree(tmp_path / name, fs=1000)
        expected = array.astype(np.float64).reshape(len(array), -1)
        np.testing.assert_array_equal(got, expected)
    with open_recording(tmp_path / "f.npy", fs=1000, channels=[2, "ch0"]) as recording:
        assert recording.info.channels == ("ch2", "ch0")
        assert recording.info.n_samples == 5000
        np.testing.assert_array_equal(read_all(recording, 333), data[:, [2, 0]])


def test_npy_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", signal(1000, 2))
    with pytest.raises(RecordingError, match=r"no sampling rate in .*x\.npy.*pass fs=HZ"):
        open_recording(tmp_path / "x.npy")
    raw = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-100])
    with pytest.raises(RecordingError, match="truncated"):
        open_recording(tmp_path / "cut.npy", fs=1000)
    np.save(tmp_path / "t.npy", signal(1000, 2).T)
    with pytest.raises(RecordingError, match=r"\(channels, samples\).*array\.T"):
        open_recording(tmp_path / "t.npy", fs=1000)
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(RecordingError, match="not plain numbers"):
        open_recording(tmp_path / "o.npy", fs=1000)
    np.save(tmp_path / "3d.npy", np.zeros((4, 4, 4)))
    with pytest.raises(RecordingError, match="shape"):
        open_recording(tmp_path / "3d.npy", fs=1000)
    np.save(tmp_path / "e.npy", np.zeros((0, 2)))
    with pytest.raises(RecordingError, match="no samples"):
        open_recording(tmp_path / "e.npy", fs=1000)
    (tmp_path / "bad.npy").write_bytes(b"not numpy at all")
    with pytest.raises(RecordingError, match=r"not a valid \.npy"):
        open_recording(tmp_path / "bad.npy", fs=1000)


def test_npz_channels_and_rate(tmp_path: Path) -> None:
    emg = signal(2001, 4).astype(np.float32)
    force = signal(2001, 4, seed=1).astype(np.float32)
    path = tmp_path / "s.npz"
    np.savez(path, fs=np.int64(2000), DNM=force, EMG_TA=emg, units=np.array("uV"))
    with open_recording(path, channels=["EMG_TA:2"]) as recording:
        info = recording.info
        assert (info.fs, info.channels, info.n_samples, info.units) == (
            2000.0,
            ("EMG_TA:2",),
            2001,
            "uV",
        )
        np.testing.assert_array_equal(read_all(recording, 100)[:, 0], emg[:, 2])
    assert_block_sizes_agree(path, channels=["EMG_TA:3", "DNM:0"])
    with open_recording(path, channels=["emg_ta"]) as recording:
        assert recording.info.channels == tuple(f"EMG_TA:{i}" for i in range(4))
    with pytest.raises(RecordingError, match=r"several arrays.*EMG_TA:2"):
        open_recording(path)
    with pytest.raises(RecordingError, match=r"fs=1000 contradicts.*2000 Hz"):
        open_recording(path, channels=["EMG_TA:0"], fs=1000)
    single = tmp_path / "one.npz"
    np.savez(single, sampling_rate=np.array(500.0), emg=emg[:, 0])
    with open_recording(single) as recording:
        assert (recording.info.fs, recording.info.channels) == (500.0, ("emg",))
        assert recording.info.units is None
    norate = tmp_path / "norate.npz"
    np.savez(norate, emg=emg[:, 0])
    with pytest.raises(RecordingError, match="no sampling rate"):
        open_recording(norate)
    uneven = tmp_path / "uneven.npz"
    np.savez(uneven, fs=1000, a=emg[:, 0], b=emg[:100, 0])
    with pytest.raises(RecordingError, match="different lengths"):
        open_recording(uneven, channels=["a", "b"])
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:500])
    with pytest.raises(RecordingError, match="truncated"):
        open_recording(tmp_path / "cut.npz")


# ---------------------------------------------------------------------------------------------
# EDF / BDF


def write_edf(path: Path, n: int = 5000, bdf: bool = False) -> tuple[np.ndarray, np.ndarray]:
    edfio = pytest.importorskip("edfio")
    left, right = signal(n, 2).T
    make = edfio.BdfSignal if bdf else edfio.EdfSignal
    signals = [
        make(left, 1000, label="EMG L", physical_dimension="uV"),
        make(right / 1000, 1000, label="EMG R", physical_dimension="mV"),
        make(np.linspace(30, 31, n // 100), 10, label="Temp", physical_dimension="degC"),
    ]
    notes = [edfio.EdfAnnotation(1.5, None, "marker"), edfio.EdfAnnotation(2.0, 0.5, "cramp")]
    recording = (edfio.Bdf if bdf else edfio.Edf)(signals, annotations=notes)
    recording.write(path)
    return left, right


@pytest.mark.parametrize("bdf", [False, True])
def test_edf_and_bdf(tmp_path: Path, bdf: bool) -> None:
    path = tmp_path / ("x.bdf" if bdf else "x.edf")
    left, right = write_edf(path, bdf=bdf)
    got = assert_block_sizes_agree(path)
    step = 2 * 50 * 6 / (2 ** (24 if bdf else 16))  # quantisation of the written range
    np.testing.assert_allclose(got[:, 0], left, atol=2 * step)
    np.testing.assert_allclose(got[:, 1], right, atol=2 * step)  # mV converted to uV
    with open_recording(path) as recording:
        info = recording.info
        assert info.format == ("bdf" if bdf else "edf")
        assert (info.fs, info.channels, info.units) == (1000.0, ("EMG L", "EMG R"), "uV")
        assert info.channel_units == ("uV", "mV")
        assert info.n_samples == 5000
        assert recording.annotations() == [
            FileAnnotation(1.5, None, "marker"),
            FileAnnotation(2.0, 0.5, "cramp"),
        ]
    with open_recording(path, channels=["temp"]) as recording:
        assert recording.info.fs == 10.0 and recording.info.units is None
        assert len(read_all(recording)) == 50


def test_edf_matches_edfio(tmp_path: Path) -> None:
    edfio = pytest.importorskip("edfio")
    path = tmp_path / "x.edf"
    write_edf(path)
    reference = edfio.read_edf(path)
    with open_recording(path, channels=["EMG R", "EMG L"], units="mV") as recording:
        got = read_all(recording, 999)
    np.testing.assert_allclose(got[:, 0], reference.signals[1].data, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[:, 1], reference.signals[0].data, rtol=0, atol=1e-9)


def test_edf_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.edf"
    write_edf(path)
    with pytest.raises(RecordingError, match=r"different sampling rates.*EMG L 1000 Hz.*Temp 10"):
        open_recording(path, channels=["EMG L", "Temp"])
    with pytest.raises(RecordingError, match=r"fs=2000 contradicts.*1000 Hz"):
        open_recording(path, fs=2000)
    raw = path.read_bytes()
    (tmp_path / "cut.edf").write_bytes(raw[: len(raw) - 3000])
    with pytest.raises(RecordingError, match="truncated"):
        open_recording(tmp_path / "cut.edf")
    (tmp_path / "junk.edf").write_bytes(b"hello" * 100)
    with pytest.raises(RecordingError, match="not an EDF"):
        open_recording(tmp_path / "junk.edf")
    (tmp_path / "short.edf").write_bytes(raw[:100])
    with pytest.raises(RecordingError, match="too short"):
        open_recording(tmp_path / "short.edf")
    discontinuous = bytearray(raw)
    discontinuous[192:197] = b"EDF+D"
    (tmp_path / "d.edf").write_bytes(bytes(discontinuous))
    with pytest.raises(RecordingError, match="discontinuous"):
        open_recording(tmp_path / "d.edf")
    with pytest.raises(RecordingError, match=r"no channel 'EMG X'.*EMG L, EMG R, Temp"):
        open_recording(path, channels=["EMG X"])


# ---------------------------------------------------------------------------------------------
# WFDB


def write_wfdb(folder: Path, n: int = 3000) -> np.ndarray:
    with warnings.catch_warnings():  # wfdb uses deprecated pandas calls
        warnings.simplefilter("ignore", DeprecationWarning)
        wfdb = pytest.importorskip("wfdb")
        return _write_wfdb(wfdb, folder, n)


def _write_wfdb(wfdb: Any, folder: Path, n: int) -> np.ndarray:
    data = signal(n, 2) / 100.0
    wfdb.wrsamp(
        "rec",
        fs=4000,
        units=["mV", "uV"],
        sig_name=["TA", "GM"],
        p_signal=data * np.array([1.0, 1000.0]),
        fmt=["16", "16"],
        adc_gain=[2000.0, 2.0],
        baseline=[0, 0],
        write_dir=str(folder),
    )
    return data


def test_wfdb_record_names(tmp_path: Path) -> None:
    data = write_wfdb(tmp_path)
    for name in ("rec.hea", "rec.dat", "rec"):
        got = assert_block_sizes_agree(tmp_path / name)
        np.testing.assert_allclose(got, data, atol=1e-3)  # mV everywhere (GM converted)
    with open_recording(tmp_path / "rec", channels=["gm"], fmt="wfdb") as recording:
        info = recording.info
        assert (info.format, info.fs, info.channels, info.units) == ("wfdb", 4000.0, ("GM",), "uV")
        assert info.n_samples == 3000
        assert info.path == tmp_path / "rec.hea"
        np.testing.assert_allclose(read_all(recording)[:, 0], data[:, 1] * 1000, atol=0.5)


def test_wfdb_errors(tmp_path: Path) -> None:
    write_wfdb(tmp_path)
    with pytest.raises(RecordingError, match=r"fs=1000 contradicts.*4000 Hz"):
        open_recording(tmp_path / "rec.hea", fs=1000)
    dat = tmp_path / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:5000])
    with pytest.raises(RecordingError, match=r"truncated.*3000 samples"):
        open_recording(tmp_path / "rec.hea")
    dat.unlink()
    with pytest.raises(RecordingError, match="missing"):
        open_recording(tmp_path / "rec.hea")
    with pytest.raises(RecordingError, match="no such WFDB record"):
        open_recording(tmp_path / "other.hea")


def test_missing_optional_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_wfdb(tmp_path)
    monkeypatch.setitem(sys.modules, "wfdb", None)
    with pytest.raises(RecordingError, match=r"pip install 'crampwatch\[research\]'"):
        open_recording(tmp_path / "rec.hea")


# ---------------------------------------------------------------------------------------------
# Common behaviour


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such file"):
        open_recording(tmp_path / "nope.csv")
    (tmp_path / "x.xyz").write_text("1\n2\n")
    with pytest.raises(RecordingError, match=r"unknown recording format.*\.csv.*\.npy.*\.edf"):
        open_recording(tmp_path / "x.xyz")
    with open_recording(tmp_path / "x.xyz", fmt="csv", fs=1) as recording:
        assert len(read_all(recording)) == 2
    with pytest.raises(RecordingError, match="unknown format 'mat'"):
        open_recording(tmp_path / "x.xyz", fmt="mat")
    with pytest.raises(RecordingError, match="directory"):
        open_recording(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros(10))
    with pytest.raises(RecordingError, match="text files only"):
        open_recording(tmp_path / "x.npy", fs=1, delimiter=",")


def test_units_argument(tmp_path: Path) -> None:
    for text, unit in [
        ("µV", "uV"),
        ("microvolts", "uV"),
        ("mv", "mV"),
        ("V", "V"),
        ("adc", "counts"),
    ]:
        assert normalize_units(text) == unit
    assert normalize_units(None) is None
    with pytest.raises(RecordingError, match="unknown units 'furlongs'"):
        normalize_units("furlongs")
    np.save(tmp_path / "x.npy", np.zeros(10))
    with open_recording(tmp_path / "x.npy", fs=1, units="raw") as recording:
        assert recording.info.units == "counts"
    with pytest.raises(RecordingError, match="unknown units"):
        open_recording(tmp_path / "x.npy", fs=1, units="volts please")


def test_recording_lifecycle(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(10.0))
    recording = open_recording(tmp_path / "x.npy", fs=1)
    first = read_all(recording, 3)
    np.testing.assert_array_equal(read_all(recording, 4), first)  # blocks() starts again
    assert recording.annotations() == []
    with pytest.raises(ValueError, match="at least 1"):
        recording.blocks(0)
    recording.close()
    with pytest.raises(RecordingError, match="closed"):
        recording.blocks()
    assert "npy" in repr(recording)


def test_source_id_is_content_identity(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(100.0))
    np.save(tmp_path / "b.npy", np.arange(100.0))
    np.save(tmp_path / "c.npy", np.arange(100.0) + 1)
    ids = [open_recording(tmp_path / f"{n}.npy", fs=1).info.source_id for n in "abc"]
    assert ids[0] == ids[1] != ids[2]
    assert len(ids[0]) == 16 and int(ids[0], 16) >= 0


def test_module_does_not_import_pandas(tmp_path: Path) -> None:
    write_lines(tmp_path / "x.csv", ["a", "1", "2"])
    code = textwrap.dedent(f"""
        import sys
        from hardware.recordings import open_recording
        with open_recording({str(tmp_path / "x.csv")!r}, fs=1) as r:
            list(r.blocks())
        assert "pandas" not in sys.modules and "wfdb" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------------------------------------
# Bounded memory


def traced_peak(path: Path, **kwargs: object) -> tuple[int, int]:
    """(rows read, peak bytes allocated by Python while reading)."""
    rows = 0
    tracemalloc.start()
    try:
        with open_recording(path, **kwargs) as recording:
            for block in recording.blocks(65536):
                rows += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rows, peak


def test_large_npy_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.npy"
    n = 6_250_000  # 2 channels float64: 100 MB
    np.save(path, np.zeros((n, 2)))
    rows, peak = traced_peak(path, fs=1000)
    assert rows == n
    assert peak < 10_000_000, peak


def write_big_csv(path: Path, n: int = 1_000_000) -> Path:
    """A ~20 MB CSV: time column plus two channels."""
    with path.open("w") as handle:
        handle.write("time,left,right\n")
        handle.write("\n".join(map("{:.3f},-123.25,45.5".format, np.arange(n) / 1000)) + "\n")
    return path


@pytest.mark.slow  # the numpy text parser runs ~15x slower under tracemalloc (about 6 s here)
def test_large_csv_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = write_big_csv(tmp_path / "big.csv")
    size = path.stat().st_size
    assert size > 20_000_000
    rows, peak = traced_peak(path)
    assert rows == 1_000_000
    assert peak < size / 3, (peak, size)


def resident_growth(path: Path, total: float, **kwargs: object) -> int:
    """Growth of the peak resident set (bytes) of a fresh process while it reads `path`."""
    code = textwrap.dedent(f"""
        import resource
        from hardware.recordings import open_recording
        with open_recording({str(path)!r}, **{kwargs!r}) as recording:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            total = sum(float(block.sum()) for block in recording.blocks())
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert total == {total!r}, total
        print((after - before) * 1024)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True, text=True
    )
    return int(result.stdout)


def test_large_files_keep_resident_memory_small(tmp_path: Path) -> None:
    """Plain reads, not a memory map: mapped pages would count in the resident set."""
    npy = tmp_path / "big.npy"
    np.save(npy, np.ones((6_250_000, 2)))  # 100 MB
    assert resident_growth(npy, 12_500_000.0, fs=1000) < 40_000_000
    csv = write_big_csv(tmp_path / "big.csv")  # 20 MB
    assert resident_growth(csv, 1_000_000 * (45.5 - 123.25)) < 20_000_000


# ---------------------------------------------------------------------------------------------
# The shared real recordings (../shared/data/emg)


@pytest.fixture
def emg_data() -> Path:
    return require_emg_data_dir()


REAL_TEXT = [
    # file, open_recording arguments, fs, channels, units, samples, per-channel std
    ("biosppy/emg.txt", {}, 1000, ("EMG",), "counts", 100_000, [2.006]),
    ("biosppy/emg_1.txt", {}, 1000, ("EMG",), "counts", 63_880, [23.47]),
    (
        "uci_lower_limb/5Nsen.txt",
        {"fs": 1000},
        1000,
        ("RF", "BF", "VM", "ST"),
        "mV",
        13_480,
        [0.0224, 0.0207, 0.0273, 0.0063],
    ),
    (
        "uci_lower_limb/5Npie.txt",
        {"fs": 1000},
        1000,
        ("RF", "BF", "VM", "ST"),
        "mV",
        15_260,
        [0.0062, 0.0602, 0.0067, 0.0548],
    ),
    (
        "uci_lower_limb/5Nmar.txt",
        {"fs": 1000},
        1000,
        ("RF", "BF", "VM", "ST"),
        "mV",
        6_563,
        [0.0049, 0.0272, 0.0085, 0.0487],
    ),
    (
        "uci_lower_limb/3Asen.txt",
        {"fs": 1000},
        1000,
        ("Recto Femoral", "Biceps Femoral", "Vasto Medial", "EMG Semitendinoso"),
        "mV",
        38_971,
        [0.0082, 0.0031, 0.0065, 0.0033],
    ),
    (
        "physionet_emgdb/emg_healthy.hea",
        {},
        4000,
        ("EMG",),
        "mV",
        50_860,
        [0.0816],
    ),
    ("physionet_emgdb/emg_myopathy.dat", {}, 4000, ("EMG",), "mV", 110_337, [0.0970]),
    ("physionet_emgdb/emg_neuropathy", {}, 4000, ("EMG",), "mV", 147_858, [0.3884]),
    (
        "elderly_isometric/ID_1.npz",
        {"channels": ["EMG_TA:2"]},
        2000,
        ("EMG_TA:2",),
        None,
        20_001,
        [106.9],
    ),
    (
        "elderly_isometric/ID_2.npz",
        {"channels": ["EMG_TA:2"]},
        2000,
        ("EMG_TA:2",),
        None,
        20_001,
        [145.4],
    ),
]


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "kwargs", "fs", "channels", "units", "samples", "std"),
    REAL_TEXT,
    ids=[row[0] for row in REAL_TEXT],
)
def test_real_recordings(
    emg_data: Path,
    name: str,
    kwargs: dict,
    fs: float,
    channels: tuple[str, ...],
    units: str | None,
    samples: int,
    std: list[float],
) -> None:
    with open_recording(emg_data / name, **kwargs) as recording:
        info = recording.info
        assert (info.fs, info.channels, info.units) == (fs, channels, units)
        assert info.n_samples in (None, samples)
        data = read_all(recording)
    assert data.shape == (samples, len(channels))
    assert not np.isnan(data).any()
    np.testing.assert_allclose(data.std(axis=0), std, rtol=0.01)


@pytest.mark.data
def test_real_gait_csv(emg_data: Path) -> None:
    path = emg_data / "musclesynergies_gait" / "ID0012_TW_01_raw_emg.csv"
    muscles = ("ME", "MA", "FL", "RF", "VM", "VL", "ST", "BF", "TA", "PL", "GM", "GL", "SO")
    with open_recording(path) as recording:
        info = recording.info
        assert (info.fs, info.channels, info.units) == (1000.0, muscles, None)
        assert info.start_s == pytest.approx(0.014)
        data = read_all(recording, 1000)
    assert data.shape == (7618, 13)
    std = dict(zip(muscles, data.std(axis=0), strict=True))
    assert std["TA"] == pytest.approx(69.07, abs=0.01)
    assert std["GM"] == pytest.approx(75.9, abs=0.05)
    assert data[:, muscles.index("TA")].min() == pytest.approx(-763.4, abs=0.05)


@pytest.mark.data
def test_real_uci_goniometer_and_missing_rate(emg_data: Path) -> None:
    path = emg_data / "uci_lower_limb" / "5Nmar.txt"
    with pytest.raises(RecordingError, match="no sampling rate"):
        open_recording(path)  # the file does not state its rate (the dataset readme does)
    with open_recording(path, fs=1000, channels=["FX"]) as recording:
        assert recording.info.channel_units == ("deg",)
        angle = read_all(recording)[:, 0]
    assert len(angle) == 6563 + 17  # the angle goes on for 17 rows after the EMG stops
    assert angle.min() == pytest.approx(-1.0) and angle.max() == pytest.approx(60.7)


@pytest.mark.data
def test_real_elderly_npz_lists_channels(emg_data: Path) -> None:
    with pytest.raises(RecordingError, match=r"EMG_TA:2"):
        open_recording(emg_data / "elderly_isometric" / "ID_1.npz")


@pytest.mark.data
def test_real_source_ids_are_distinct(emg_data: Path) -> None:
    names = ["biosppy/emg.txt", "biosppy/emg_1.txt", "physionet_emgdb/emg_healthy"]
    ids = {open_recording(emg_data / n).info.source_id for n in names}
    assert len(ids) == len(names)


def test_shared_data_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import shared_data

    monkeypatch.setenv(shared_data.ENV_VAR, os.devnull + "-missing")
    assert shared_data.emg_data_dir() is None
    assert shared_data.ENV_VAR in shared_data.missing_reason()


def test_one_edf_file_is_read_by_two_readers_at_once(tmp_path: Path) -> None:
    """EDFlib refuses a second open of one file name; crampwatch gives each reader its own."""
    path = tmp_path / "x.edf"
    write_edf(path)
    with open_recording(path) as first, open_recording(path) as second:
        pairs = zip(first.blocks(1000), second.blocks(1000), strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(a, b)
            assert first.annotations() == second.annotations()
