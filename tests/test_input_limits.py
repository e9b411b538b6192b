"""Bounded inputs: whatever a file or the arguments declare, a replay's memory stays bounded and
what lies outside the limits is refused in one clear line (hardware/recordings/limits.py)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import edfio
import numpy as np
import pytest

from firmware_host.cli import main
from hardware.recordings import RecordingError, open_recording
from hardware.recordings.errors import SIGNAL_OPTIONS, option
from hardware.recordings.limits import (
    MAX_CHANNELS,
    MAX_COLUMNS,
    MAX_EDF_ANNOTATIONS,
    MAX_NPZ_MEMBERS,
    MAX_SAMPLES_PER_S,
)

REPO = Path(__file__).resolve().parents[1]
PEAK_LIMIT = 200 << 20  # bytes of resident memory a replay may reach, whatever its input
ADDRESS_CAP = 3 << 30  # a regression fails here instead of taking the machine (21 GB before)


# The child's own high-water mark: getrusage's ru_maxrss of a child started by vfork also counts
# the parent's resident set at the start (Linux keeps it across exec), /proc's VmHWM does not.
PEAK_CODE = """
def peak_bytes():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
"""


def peak_of(argv: list[str], cwd: Path) -> tuple[int, str, int]:
    """`crampwatch ARGV` in a fresh process under an address-space cap: (exit code, its stderr
    without the last line, peak resident memory in bytes)."""
    code = PEAK_CODE + textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_CAP}, {ADDRESS_CAP}))
        from firmware_host.cli import main
        code = main({argv!r})
        print(peak_bytes(), file=sys.stderr)
        sys.exit(code)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env
    )
    *lines, peak = result.stderr.strip().splitlines()
    return result.returncode, "\n".join(lines), int(peak)


def read_peak(path: Path, **kwargs: object) -> tuple[int, int]:
    """(samples read, peak resident bytes) of a fresh process that reads `path` through."""
    code = PEAK_CODE + textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_CAP}, {ADDRESS_CAP}))
        from hardware.recordings import open_recording
        with open_recording({str(path)!r}, **{kwargs!r}) as recording:
            rows = sum(len(block) for block in recording.blocks())
        print(rows, peak_bytes())
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    rows, peak = result.stdout.split()
    return int(rows), int(peak)


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *says: str) -> str:
    """The command exits 2 with one line on stderr, no traceback, that says all of `says`."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for text in says:
        assert text in err, err
    return err


def replay_argv(path: Path, out: Path, *extra: str) -> list[str]:
    return ["replay", str(path), "--no-progress", "--units", "uV", "--out", str(out), *extra]


@pytest.fixture
def small_npy(tmp_path: Path) -> Path:
    """40 KB: 5000 samples of one channel."""
    path = tmp_path / "small.npy"
    np.save(path, np.random.default_rng(0).normal(0, 50, 5000))
    return path


# --- sampling rates ---------------------------------------------------------------------------


@pytest.mark.parametrize("fs", ["1e9", "1e8", "1e300", "inf", "nan", "0.5", "-1000"])
def test_sampling_rates_outside_1_hz_to_100_khz_are_refused_naming_the_option(
    fs: str, small_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    refused(capsys, replay_argv(small_npy, out, "--fs", fs), "--fs", "1 Hz to 100,000 Hz")
    assert not out.exists()


def test_the_rate_that_took_6_gb_is_refused_within_the_memory_bound(
    small_npy: Path, tmp_path: Path
) -> None:
    code, err, peak = peak_of(replay_argv(small_npy, tmp_path / "e.jsonl", "--fs", "1e8"), REPO)
    assert code == 2 and "--fs 1e+08" in err
    assert peak < PEAK_LIMIT, peak


def write_edf_record_duration(path: Path, duration: bytes) -> Path:
    edfio.Edf([edfio.EdfSignal(np.zeros(1000), 1000, label="EMG")]).write(path)
    raw = bytearray(path.read_bytes())
    raw[244:252] = duration.ljust(8)
    path.write_bytes(bytes(raw))
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: write_edf_record_duration(d / "x.edf", b"0.000001"), "1e+09 Hz (its header)"),
        (lambda d: write_text(d / "x.csv", "# fs = 1e9\nemg\n" + "1\n" * 50), "1e+09 Hz"),
        (
            lambda d: write_text(
                d / "x.csv", "time,emg\n" + "".join(f"{i}e-9,1\n" for i in range(50))
            ),
            "its time column 'time'",
        ),
        (lambda d: np.savez(d / "x.npz", fs=1e9, emg=np.zeros(100)) or d / "x.npz", "1e+09 Hz"),
        (lambda d: np.savez(d / "x.npz", fs=1e300, emg=np.zeros(100)) or d / "x.npz", "1e+300"),
    ],
    ids=["edf-record-1us", "csv-header", "csv-time-column-1ns", "npz-1e9", "npz-1e300"],
)
def test_rates_a_file_declares_outside_the_range_are_refused(
    make, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl"), says, "1 Hz to 100,000 Hz")
    code, err, peak = peak_of(replay_argv(path, tmp_path / "e.jsonl"), REPO)
    assert code == 2 and peak < PEAK_LIMIT, (err, peak)


# --- channels and samples per second -----------------------------------------------------------


@pytest.mark.parametrize(
    ("channels", "fs", "says"),
    [(MAX_CHANNELS + 1, "1000", "at most 64 at a time"), (11, "50000", "at most 500,000")],
)
def test_more_channels_or_samples_per_second_than_the_pipeline_takes_are_refused(
    channels: int, fs: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.npy"
    np.save(path, np.zeros((200, channels), dtype=np.float32))
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl", "--fs", fs), says, "--channel NAME")


@pytest.mark.parametrize(
    ("channels", "fs"),
    [(10, 50_000), (5, 100_000), (MAX_CHANNELS, MAX_SAMPLES_PER_S // MAX_CHANNELS)],
    ids=["10ch-50kHz", "5ch-100kHz", "64ch-7.8kHz"],
)
def test_the_most_samples_per_second_replay_within_the_memory_bound(
    channels: int, fs: int, tmp_path: Path
) -> None:
    path = tmp_path / "fast.npy"
    rng = np.random.default_rng(1)
    np.save(path, rng.normal(0, 50, (3 * fs, channels)).astype(np.float32))
    code, err, peak = peak_of(replay_argv(path, tmp_path / "e.jsonl", "--fs", str(fs)), REPO)
    assert code == 0, err
    assert peak < PEAK_LIMIT, peak


@pytest.mark.parametrize("rows", ["0", "-5", str(10**9)])
def test_block_size_is_bounded(
    rows: str, small_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = replay_argv(small_npy, tmp_path / "e.jsonl", "--fs", "1000", "--block-size", rows)
    refused(capsys, argv, f"--block-size {rows}", "1 to 1,048,576")


# --- text files -----------------------------------------------------------------------------


def test_a_power_cut_tail_of_nul_bytes_is_refused_at_its_line_in_bounded_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "night.csv"
    with path.open("w") as handle:
        handle.write("time,emg\n" + "".join(f"{i / 1000:.3f},{i % 7}\n" for i in range(5000)))
    os.truncate(path, path.stat().st_size + (1 << 30))  # 1 GB of NUL bytes, no newline
    code, err, peak = peak_of(replay_argv(path, tmp_path / "e.jsonl"), REPO)
    assert code == 2 and "Traceback" not in err
    assert "line 5,002" in err and "NUL bytes" in err and "head -n 5001" in err
    assert peak < PEAK_LIMIT, peak
    assert not (tmp_path / "e.jsonl").exists()


def test_an_endless_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_text(tmp_path / "x.csv", "emg\n1\n2\n" + "3" * (1 << 20))
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl", "--fs", "1000"), "line 4", "longer")


def test_a_csv_of_10000_columns_asks_for_a_choice_and_reads_one_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.csv"
    row = ",".join("1.5" for _ in range(10_000))
    write_text(path, "".join(f"{row}\n" for _ in range(300)))
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl", "--fs", "1000"), "10000 channels")
    argv = replay_argv(path, tmp_path / "e.jsonl", "--fs", "1000", "--channel", "9999")
    code, err, peak = peak_of(argv, REPO)
    assert code == 0, err
    assert peak < PEAK_LIMIT, peak


# --- NumPy files ---------------------------------------------------------------------------------


def test_npz_members_stream_instead_of_being_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "long.npz"
    np.savez_compressed(path, fs=np.array(1000.0), emg=np.zeros(25_000_000))  # 200 MB inside
    assert path.stat().st_size < 1_000_000
    rows, peak = read_peak(path)
    assert rows == 25_000_000
    assert peak < 80 << 20, peak  # the whole member alone would be 200 MB


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_members_in_either_order_read_like_numpy_loads_them(
    compressed: bool, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    c_order = rng.normal(0, 50, (70_000, 3)).astype(np.float32)
    fortran = np.asfortranarray(rng.normal(0, 50, (70_000, 2)))
    path = tmp_path / "two.npz"
    (np.savez_compressed if compressed else np.savez)(path, fs=2000, a=c_order, b=fortran)
    wanted = ["b:1", "a:2", "a:0", "b:0"]
    with open_recording(path, channels=wanted) as recording:
        got = np.concatenate(list(recording.blocks(7777)))
    expected = np.column_stack([fortran[:, 1], c_order[:, 2], c_order[:, 0], fortran[:, 0]])
    np.testing.assert_array_equal(got, expected)


def test_arrays_wider_than_the_column_limit_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "wide.npy", np.zeros((70, MAX_COLUMNS + 1), dtype=np.float32))
    with pytest.raises(RecordingError, match=r"4,097 columns; crampwatch reads arrays of at most"):
        open_recording(tmp_path / "wide.npy", fs=1000)
    np.savez(tmp_path / "wide.npz", fs=1000, a=np.zeros((70, MAX_COLUMNS + 1), dtype=np.int8))
    with pytest.raises(RecordingError, match=r"4,097 columns in its arrays"):
        open_recording(tmp_path / "wide.npz")


def test_an_npz_listing_more_arrays_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(MAX_NPZ_MEMBERS + 1):
            archive.writestr(f"a{i}.npy", b"")
    with pytest.raises(RecordingError, match=r"lists 1,025 arrays.*at most 1,024"):
        open_recording(path, fs=1000)


def test_an_npz_scalar_that_is_not_small_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "units.npz"
    np.savez(path, fs=1000, emg=np.zeros(100), units=np.array("u" * 5000))
    with pytest.raises(RecordingError, match=r"'units'.*should hold one value"):
        open_recording(path)


@pytest.mark.parametrize("cut", [5, 9, 30, 100, 127])
def test_a_cut_npy_header_is_refused_clearly(cut: int, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((100, 2)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:cut])
    with pytest.raises(RecordingError, match=r"not a valid \.npy array.*damaged or cut short"):
        open_recording(tmp_path / "cut.npy", fs=1000)
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as archive:
        archive.writestr("emg.npy", (tmp_path / "x.npy").read_bytes()[:cut])
    with pytest.raises(RecordingError, match=r"array 'emg' in .*not a valid \.npy array"):
        open_recording(tmp_path / "cut.npz", fs=1000)


def test_a_damaged_npy_header_text_is_refused_clearly(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((100, 2)))
    raw = bytearray((tmp_path / "x.npy").read_bytes())
    raw[12:15] = b"{{{"
    (tmp_path / "bad.npy").write_bytes(bytes(raw))
    with pytest.raises(RecordingError, match=r"not a valid \.npy array"):
        open_recording(tmp_path / "bad.npy", fs=1000)


# --- EDF -------------------------------------------------------------------------------------------


def edf_with_gap(path: Path, onset: float = 1.5, duration: float = 0.125) -> Path:
    signal = edfio.EdfSignal(np.random.default_rng(0).normal(0, 50, 5000), 1000, label="EMG")
    notes = [edfio.EdfAnnotation(onset, duration, "gap")]
    edfio.Edf([signal], annotations=notes).write(path)
    return path


def patched(path: Path, old: bytes, new: bytes) -> Path:
    """The file with `old` replaced by `new` of the same length (the record layout stays)."""
    assert len(old) == len(new)
    raw = path.read_bytes()
    assert raw.count(old) == 1, old
    out = path.with_name("patched" + path.suffix)
    out.write_bytes(raw.replace(old, new))
    return out


def header_field(path: Path, field: str, value: bytes) -> Path:
    """The one-signal EDF with a signal header field (8 characters) set to `value`."""
    offsets = {"physical_min": 104, "physical_max": 112, "digital_min": 120, "digital_max": 128}
    raw = bytearray(path.read_bytes())
    n_signals = int(raw[252:256])
    at = 256 + n_signals * offsets[field]  # the first signal's field
    raw[at : at + 8] = value.ljust(8)
    out = path.with_name(f"{field}.edf")
    out.write_bytes(bytes(raw))
    return out


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("physical_min", b"nan", "physical minimum is not a number"),
        ("physical_min", b"-inf", "physical minimum is not a number"),
        ("physical_max", b"inf", "physical maximum is not a number"),
        ("digital_min", b"nan", "digital minimum is not a whole number"),
    ],
)
def test_edf_header_fields_that_are_not_numbers_are_refused(
    field: str, value: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = header_field(edf_with_gap(tmp_path / "x.edf"), field, value)
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl"), "not a valid EDF/BDF file", says)


@pytest.mark.parametrize(
    ("offset", "value", "says"),
    [
        (236, b"nan", "number of data records"),
        (236, b"-1", "number of data records"),
        (244, b"inf", "data record duration is not a number"),
    ],
)
def test_edf_record_fields_that_are_not_numbers_are_refused(
    offset: int, value: bytes, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = edf_with_gap(tmp_path / "x.edf")
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 8] = value.ljust(8)
    path.write_bytes(bytes(raw))
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl"), says)


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"+1.5\x150.125\x14gap", b"+inf\x150.125\x14gap"), (b"\x150.125\x14", b"\x151e300\x14")],
    ids=["onset-inf", "duration-1e300"],
)
def test_damaged_gap_annotations_are_refused(
    old: bytes, new: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = patched(edf_with_gap(tmp_path / "x.edf"), old, new)
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl"), "damaged EDF+ annotations")


def test_an_absurdly_long_gap_blanks_to_the_end_and_no_further(tmp_path: Path) -> None:
    path = patched(edf_with_gap(tmp_path / "x.edf"), b"\x150.125\x14", b"\x1599999\x14")
    with open_recording(path) as recording:
        values = np.concatenate(list(recording.blocks()))
    assert (
        len(values) == 5000 and np.isnan(values[1500:]).all() and not np.isnan(values[:1500]).any()
    )


def test_an_annotation_bomb_is_refused_before_edflib_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each byte 0x14 after an onset is one annotation to EDFlib (about 0.5 kB in memory)."""
    pyedflib = pytest.importorskip("pyedflib")
    path = tmp_path / "bomb.edf"
    writer = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([{"label": "EMG", "dimension": "uV", "sample_frequency": 100,
                              "physical_min": -100.0, "physical_max": 100.0,
                              "digital_min": -32768, "digital_max": 32767,
                              "transducer": "", "prefilter": ""}])  # fmt: skip
    writer.set_number_of_annotation_signals(64)
    for _ in range(2000):
        writer.writeDigitalSamples(np.zeros(100, dtype=np.int32))
    writer.close()
    raw = bytearray(path.read_bytes())
    record_bytes, header = 200 + 64 * 114, 256 * 66
    for record in range(2000):
        for signal in range(64):  # each annotation signal: one TAL of ~110 empty annotations
            start = header + record * record_bytes + 200 + signal * 114
            keeping = bytes(raw[start : start + 114]).index(b"\x00") + 1 if signal == 0 else 0
            raw[start + keeping : start + 114] = b"+0" + b"\x14" * (111 - keeping) + b"\x00"
    path.write_bytes(bytes(raw))
    says = f"more than {MAX_EDF_ANNOTATIONS:,} annotations"
    refused(capsys, replay_argv(path, tmp_path / "e.jsonl"), says)
    code, err, peak = peak_of(replay_argv(path, tmp_path / "e.jsonl"), REPO)
    assert code == 2 and peak < PEAK_LIMIT, (err, peak)


def test_an_edf_file_too_short_for_its_records_is_refused_without_edflib_printing(
    tmp_path: Path,
) -> None:
    path = edf_with_gap(tmp_path / "x.edf")
    path.write_bytes(path.read_bytes()[:-3000])
    code, err, _ = peak_of(["replay", str(path), "--no-progress"], REPO)
    assert code == 2 and "truncated" in err


# --- WFDB --------------------------------------------------------------------------------------


def wfdb_record(folder: Path, record_line: str, signal_gain: str = "200.0(0)/mV") -> Path:
    """A one-signal WFDB record whose header's record line and gain field are as given."""
    data = (np.arange(3000) % 50).astype("<i2")
    data.tofile(folder / "rec.dat")
    (folder / "rec.hea").write_text(
        f"{record_line}\nrec.dat 16 {signal_gain} 16 0 0 0 0 TA\n", encoding="ascii"
    )
    return folder / "rec.hea"


@pytest.mark.parametrize(
    ("record_line", "gain", "says"),
    [
        ("rec 1 -1000 3000", "200.0(0)/mV", "sampling rate as '-1000'"),
        ("rec 1 1e300 3000", "200.0(0)/mV", "'1e300', which wfdb reads as 1 Hz"),
        ("rec 1 inf 3000", "200.0(0)/mV", "sampling rate as 'inf'"),
        ("rec 1 4000 3000", "nan(0)/mV", "gain of signal 0 ('TA') as 'nan'"),
        ("rec 1 4000 3000", "-inf/mV", "gain of signal 0 ('TA') as '-inf'"),
    ],
)
def test_wfdb_rates_and_gains_wfdb_would_replace_by_defaults_are_refused(
    record_line: str, gain: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("wfdb")
    hea = wfdb_record(tmp_path, record_line, gain)
    refused(capsys, replay_argv(hea, tmp_path / "e.jsonl"), says)


def test_a_wfdb_header_without_rate_and_length_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("wfdb")
    with pytest.raises(RecordingError, match=r"does not give the record length"):
        open_recording(wfdb_record(tmp_path, "rec 1"))


# --- output files ---------------------------------------------------------------------------------


def test_out_naming_a_folder_or_a_missing_folder_is_refused_and_creates_nothing(
    small_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, replay_argv(small_npy, tmp_path, "--fs", "1000"), "--out", "is a folder")
    missing = tmp_path / "nonexistent" / "dir" / "x.jsonl"
    argv = replay_argv(small_npy, missing, "--fs", "1000")
    refused(capsys, argv, "--out", "does not exist", "create it first")
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--terminal", "--hours", "0.01", "--out"],
        [
            "run",
            "--sim",
            "mcp3008",
            "--speed",
            "0",
            "--hours",
            "0.01",
            "--no-mqtt",
            "--no-record",
            "--out",
        ],
        ["calibrate", "--sim", "mcp3008", "--speed", "0", "--rest-s", "2", "--out"],
    ],
    ids=["demo", "run", "calibrate"],
)
def test_every_command_refuses_an_output_in_a_missing_folder_before_it_starts(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing" / "out.jsonl"
    refused(capsys, [*argv, str(missing)], "--out", "does not exist")
    assert not missing.parent.exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_output_files_get_the_usual_permissions(
    umask: int, mode: int, small_npy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "events.jsonl"
    previous = os.umask(umask)
    try:
        assert main(replay_argv(small_npy, out, "--fs", "1000")) == 0
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == mode


def test_without_start_the_output_says_event_times_are_relative(
    small_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events.jsonl"
    assert main(replay_argv(small_npy, out, "--fs", "1000")) == 0
    err = capsys.readouterr().err
    assert err.count("count from the first sample of the file") == 2  # at the start and the end
    assert "--start 2026-11-21T22:30:00Z" in err
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["type"] == "summary" and summary["start"] is None
    argv = replay_argv(small_npy, out, "--fs", "1000", "--start", "2026-11-21T22:30:00+01:00")
    assert main(argv) == 0
    assert "count from the first sample" not in capsys.readouterr().err
    assert json.loads(out.read_text().splitlines()[-1])["start"] == "2026-11-21T21:30:00.000Z"


# --- option names in errors --------------------------------------------------------------------


def test_command_line_errors_name_command_line_options_and_python_errors_python_arguments(
    small_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = write_text(tmp_path / "x.emg", "1;2\n3;4\n")
    err = refused(capsys, replay_argv(odd, tmp_path / "e.jsonl"), "--file-format FORMAT")
    assert "fmt=" not in err
    with pytest.raises(RecordingError, match=r"name the format with fmt=FORMAT") as caught:
        open_recording(odd)
    assert "--" not in str(caught.value)
    err = refused(capsys, replay_argv(small_npy, tmp_path / "e.jsonl"), "pass --fs HZ")
    assert "fs=" not in err
    with pytest.raises(RecordingError, match=r"pass fs=HZ"):
        open_recording(small_npy)


def test_file_format_delimiter_and_header_options_read_an_unusual_text_file(
    tmp_path: Path,
) -> None:
    rows = np.random.default_rng(2).normal(0, 50, (3000, 2))
    path = write_text(tmp_path / "x.emg", "".join(f"{a:.3f};{b:.3f}\n" for a, b in rows))
    out = tmp_path / "e.jsonl"
    options = ["--file-format", "csv", "--delimiter", "semicolon", "--no-header", "--fs", "1000"]
    assert main(replay_argv(path, out, *options)) == 0
    assert json.loads(out.read_text().splitlines()[-1])["duration_s"] == 3.0


def test_run_play_errors_name_the_signal_options(
    small_npy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--play", str(small_npy), "--no-mqtt", "--no-record"]) == 2
    err = capsys.readouterr().err
    assert "--signal-fs HZ" in err and "fs=" not in err.replace("--signal-fs", "")


# --- config files ---------------------------------------------------------------------------------


def test_config_check_refuses_a_file_too_big_to_be_a_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_text(tmp_path / "crampwatch.toml", "# " + "x" * (1 << 20) + "\n")
    refused(capsys, ["config", "check", str(path)], "is not a configuration file")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[source]\nrate = " + "9" * 5000 + "\n", "a number too long to read"),
        ("[device]\nchannels = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("[source]\nrate = 1e400\n", "must be a number above 0"),
    ],
    ids=["5000-digits", "5000-deep", "1e400"],
)
def test_config_check_refuses_unreadable_values_in_one_line(
    text: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_text(tmp_path / "crampwatch.toml", text)
    refused(capsys, ["config", "check", str(path)], says)


# --- calibration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rest", "0", "1e9"], "--rest spans 1e+09 s; give at most 600 s"),
        (["--rest", "0", "30", "--mvc", "40", "400"], "--mvc spans 360 s; give at most 120 s"),
        (["--rest", "0", "inf"], "--rest takes START END"),
    ],
)
def test_calibration_stretches_are_bounded(
    args: list[str], says: str, small_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["calibrate", str(small_npy), "--fs", "1000", *args, "--out", str(tmp_path / "c.json")]
    refused(capsys, argv, says)


def test_guided_calibration_times_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = str(tmp_path / "c.json")
    refused(capsys, ["calibrate", "--sim", "mcp3008", "--rest-s", "1e9", "--out", out], "600")
    argv = ["calibrate", "--sim", "mcp3008", "--mvc", "--mvc-s", "0", "--out", out]
    refused(capsys, argv, "--mvc-s 0: give more than 0")


def test_an_error_keeps_its_option_names_across_processes() -> None:
    error = RecordingError(f"no rate; pass {option('fs', 'HZ')}", SIGNAL_OPTIONS)
    assert str(pickle.loads(pickle.dumps(error))) == "no rate; pass --signal-fs HZ"
