"""Night recording (firmware_host/night_recorder.py) and EDF+ export (`crampwatch export`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import edfio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.config import PipelineConfig, ScalingConfig
from dsp.events import QualityChange
from dsp.pipeline import Pipeline
from firmware_host.cli import main
from firmware_host.commands import export as export_command
from firmware_host.commands.export import export_edf, record_layout
from firmware_host.device.live_sources import FRONT_END
from firmware_host.device.night_recorder import (
    METADATA_FILE,
    NightError,
    NightRecorder,
    open_night,
)
from hardware.recordings import open_recording
from hardware.synthetic_emg import SyntheticEMG, scenario

MCP_LSB = 3.3 / 1024
MCP_SCALING = ScalingConfig(
    units="V", gain=FRONT_END.gain, offset_v=FRONT_END.offset_v, rails=(0.0, 3.3 - MCP_LSB)
)
ADS_LSB = 2.048 / 32768
ADS_SCALING = ScalingConfig(units="V", gain=1000.0, offset_v=0.0, rails=(-1.65, 1.65))
CHANNELS = ("left_calf", "right_calf")
STARTED = datetime(2026, 11, 20, 22, 30, 5, 250000, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def mcp3008_volts(microvolts: np.ndarray) -> np.ndarray:
    """What the MCP3008 source delivers for an electrode signal: code x lsb, NaN kept."""
    codes = np.floor(FRONT_END.volts(microvolts) / MCP_LSB)
    return np.clip(codes, 0, 1023) * MCP_LSB


def recorder(directory: Path, **options: object) -> NightRecorder:
    settings_ = {
        "fs": 1000.0,
        "channels": CHANNELS,
        "scaling": MCP_SCALING,
        "lsb_v": MCP_LSB,
        "started": STARTED,
        "device": "bedside",
        **options,
    }
    return NightRecorder(directory, **settings_)  # type: ignore[arg-type]


def record(directory: Path, volts: np.ndarray, block: int = 500, **options: object) -> None:
    with recorder(directory, **options) as night:
        for i in range(0, len(volts), block):
            night.write(volts[i : i + block])


def read_all(directory: Path) -> np.ndarray:
    night = open_night(directory)
    blocks = list(night.blocks(4096))
    return np.concatenate(blocks) if blocks else np.empty((0, len(night.info.channels)))


def random_codes(n: int, seed: int, missing: float = 0.02) -> np.ndarray:
    """MCP3008 volts (code x lsb) for two channels, a share `missing` of them NaN."""
    rng = np.random.default_rng(seed)
    volts = rng.integers(0, 1024, (n, 2)).astype(float) * MCP_LSB
    volts[rng.random((n, 2)) < missing] = np.nan
    return volts


# --- recorder round trip -------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(0, 3000),
    cuts=st.lists(st.integers(1, 700), min_size=1, max_size=12),
    segment_s=st.sampled_from([0.3, 0.7, 3600.0]),
    quantized=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_recorded_samples_read_back_as_written_over_any_block_split(
    n: int, cuts: list[int], segment_s: float, quantized: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    if quantized:
        volts = random_codes(n, seed)
    else:
        volts = rng.normal(1.65, 0.01, (n, 2))
        volts[rng.random((n, 2)) < 0.05] = np.nan
    with tempfile.TemporaryDirectory() as tmp:
        night_dir = Path(tmp) / "night"
        lsb = MCP_LSB if quantized else None
        with recorder(night_dir, lsb_v=lsb, segment_s=segment_s) as night:
            position, k = 0, 0
            while position < n:
                size = cuts[k % len(cuts)]
                night.write(volts[position : position + size])
                position, k = position + size, k + 1
        back = read_all(night_dir)
        expected = volts if quantized else volts.astype(np.float32).astype(np.float64)
        assert back.shape == volts.shape
        assert np.array_equal(back, expected, equal_nan=True)  # bit for bit, NaN kept
        info = open_night(night_dir).info
        assert info.complete and info.n_samples == n and not info.warnings


def test_rotation_makes_segments_that_read_back_seamlessly(tmp_path: Path) -> None:
    volts = random_codes(10_000, 1)
    record(tmp_path / "night", volts, block=777, segment_s=1.5)
    files = sorted(p.name for p in (tmp_path / "night").glob("samples-*"))
    assert files == [f"samples-{i:06d}.cwz" for i in range(7)]
    meta = json.loads((tmp_path / "night" / METADATA_FILE).read_text())
    assert [s["first_sample"] for s in meta["segments"]] == [i * 1500 for i in range(7)]
    assert meta["complete"] and meta["n_samples"] == 10_000
    for size in (1, 1499, 1500, 4096):  # block boundaries inside and across segments
        night = open_night(tmp_path / "night")
        assert np.array_equal(np.concatenate(list(night.blocks(size))), volts, equal_nan=True)


def test_markers_events_and_quality_are_stored_as_json_lines(tmp_path: Path) -> None:
    with recorder(tmp_path / "night") as night:
        night.write(random_codes(2000, 2))
        night.marker(1.25, STARTED, "button")
        night.quality(QualityChange("left_calf", 1.0, ("electrode_off",)))
    stored = open_night(tmp_path / "night")
    assert stored.markers() == [
        {"type": "marker", "source": "button", "at_s": 1.25, "wall": "2026-11-20T22:30:05.250Z"}
    ]
    kinds = [r.get("type") for r in stored.records()]
    assert kinds == ["marker", "quality", "summary"]


def test_a_night_directory_is_never_overwritten(tmp_path: Path) -> None:
    record(tmp_path / "night", random_codes(100, 3))
    with pytest.raises(NightError, match="already holds a night"):
        recorder(tmp_path / "night")


# --- cut short -------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    import numpy as np
    from dsp.config import ScalingConfig
    from firmware_host.device.night_recorder import NightRecorder

    lsb = 3.3 / 1024
    scaling = ScalingConfig(units="V", gain=1000.0, offset_v=1.65, rails=(0.0, 3.3 - lsb))
    night = NightRecorder(
        Path(sys.argv[1]), fs=1000.0, channels=("left_calf", "right_calf"), scaling=scaling,
        lsb_v=lsb, started=datetime.now(UTC), device="killed", segment_s=1.3,
    )
    written = 0
    while True:
        index = np.arange(written, written + 50)
        night.write(np.stack([index % 1024, (index * 7) % 1024], axis=1) * lsb)
        written += 50
        if written == 1500:
            night.marker(1.5, datetime.now(UTC), "button")
        print(written, flush=True)
        time.sleep(0.005)
    """
)


def test_a_recorder_killed_with_sigkill_leaves_a_readable_night(tmp_path: Path) -> None:
    night_dir = tmp_path / "night"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(night_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    seen = 0
    try:
        while seen < 4200:  # 4.2 s of signal: three segment rotations
            line = child.stdout.readline()
            assert line, "the recorder child ended early"
            seen = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    night = open_night(night_dir)
    assert not night.info.complete
    n = night.info.n_samples
    assert seen - 1000 <= n  # at most the last second lost
    index = np.arange(n)
    expected = np.stack([index % 1024, (index * 7) % 1024], axis=1) * MCP_LSB
    assert np.array_equal(read_all(night_dir), expected)
    assert [m["source"] for m in night.markers()] == ["button"]


def test_a_torn_record_and_a_stale_segment_list_are_recovered(tmp_path: Path) -> None:
    night_dir = tmp_path / "night"
    volts = random_codes(5000, 4)
    with recorder(night_dir, segment_s=2.0) as night:
        night.write(volts[:100])
        stale = (night_dir / METADATA_FILE).read_bytes()  # lists no segment, not complete
        night.write(volts[100:])
    (night_dir / METADATA_FILE).write_bytes(stale)
    with (night_dir / "samples-000002.cwz").open("ab") as handle:
        handle.write(b"\x01\x02\x03")  # a record cut short by the kill
    with (night_dir / "events.jsonl").open("a") as handle:
        handle.write('{"type": "marker", "sou')
    night = open_night(night_dir)
    assert night.info.n_samples == 5000 and not night.info.complete
    assert np.array_equal(read_all(night_dir), volts, equal_nan=True)
    assert list(night.records())[-1]["type"] == "summary"
    text = " ".join(night.warnings)
    assert "recovered 3 segment" in text and "cut short" in text and "torn" in text


def test_a_damaged_segment_in_the_middle_reads_as_a_gap(tmp_path: Path) -> None:
    night_dir = tmp_path / "night"
    volts = random_codes(3000, 5)
    record(night_dir, volts, segment_s=1.0)
    path = night_dir / "samples-000001.cwz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    night = open_night(night_dir)
    back = np.concatenate(list(night.blocks(4096)))
    assert back.shape == volts.shape
    kept = np.flatnonzero(~np.isnan(back[1000:2000, 0]))
    assert (
        len(kept) < 1000
        and np.isnan(back[1000 + (kept.max() + 1 if len(kept) else 0) : 2000]).all()
    )
    assert np.array_equal(back[:1000], volts[:1000], equal_nan=True)
    assert np.array_equal(back[2000:], volts[2000:], equal_nan=True)
    assert any("samples-000001.cwz" in w for w in night.warnings)


def write_v1_night(directory: Path, volts: np.ndarray, segment_samples: int) -> None:
    """A night as the first recorder format wrote it: float32 code frames in .f32 segments."""
    directory.mkdir()
    codes = np.where(np.isnan(volts), np.nan, np.rint(volts / MCP_LSB)).astype("<f4")
    segments = []
    for index, first in enumerate(range(0, len(codes), segment_samples)):
        name = f"samples-{index:06d}.f32"
        (directory / name).write_bytes(codes[first : first + segment_samples].tobytes())
        segments.append({"file": name, "first_sample": first})
    meta = {
        "format": "crampwatch.night/1", "software": "crampwatch 0.1.0", "device": "bedside",
        "started": STARTED.isoformat(), "fs": 1000.0, "channels": list(CHANNELS),
        "scaling": {"units": "V", "gain": FRONT_END.gain, "offset_v": FRONT_END.offset_v,
                    "rails": [0.0, 3.3 - MCP_LSB]},
        "lsb_v": MCP_LSB, "samples": {"dtype": "float32-le", "step": 1.0 * MCP_LSB, "frame_bytes": 8},
        "segment_samples": segment_samples, "segments": segments[:1], "complete": False,
        "n_samples": None,
    }  # fmt: skip
    (directory / METADATA_FILE).write_text(json.dumps(meta))
    (directory / "events.jsonl").write_text('{"type": "marker", "source": "button", "at_s": 1.0}\n')


def test_nights_recorded_in_the_first_format_still_read_and_export(tmp_path: Path) -> None:
    volts = random_codes(5000, 12)
    write_v1_night(tmp_path / "old", volts, segment_samples=2000)
    with (tmp_path / "old" / "samples-000002.f32").open("ab") as handle:
        handle.write(b"\x01\x02\x03")  # a frame cut short by a kill
    night = open_night(tmp_path / "old")
    assert night.info.format == "crampwatch.night/1" and night.info.n_samples == 5000
    assert np.array_equal(read_all(tmp_path / "old"), volts, equal_nan=True)
    text = " ".join(night.warnings)
    assert "recovered 2 segment" in text and "partial frame" in text
    assert main(["export", str(tmp_path / "old"), "--edf", str(tmp_path / "old.edf")]) == 0
    edf = edfio.read_edf(tmp_path / "old.edf")
    present = ~np.isnan(volts[:, 0])
    expected = FRONT_END.microvolts(volts[:, 0])
    assert np.allclose(edf.signals[0].data[:5000][present], expected[present], atol=1e-9)


# --- EDF+ export ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 4-minute two-calf night through the modelled front end and MCP3008, recorded in
    uneven blocks, with marker presses, a dropped stretch and a one-channel gap."""
    plan = scenario(
        11,
        fs=1000.0,
        duration_s=240.0,
        channels=CHANNELS,
        events=[
            ("cramp", 60.0, 95.0, "left_calf"),
            ("movement", 150.0, 153.0),
            ("gap", 200.0, 201.5),
            ("gap", 120.0, 120.3, "right_calf"),
        ],
    )
    volts = mcp3008_volts(SyntheticEMG(plan, seed=11).render())
    directory = tmp_path_factory.mktemp("export") / "night"
    config = live_config(1000.0)
    pipeline = Pipeline(config, session_start=STARTED)
    rng = np.random.default_rng(0)
    with NightRecorder.for_config(directory, config, started=STARTED, lsb_v=MCP_LSB) as night:
        position, pressed = 0, False
        while position < len(volts):
            block = volts[position : position + int(rng.integers(1, 3000))]
            night.write(block)
            night.record_output(pipeline.process(block))
            position += len(block)
            if position > 70_000 and not pressed:
                night.marker(70.0, STARTED, "button")
                pressed = True
        night.record_output(pipeline.finish())
    return directory, volts


def live_config(fs: float, scaling: ScalingConfig = MCP_SCALING) -> PipelineConfig:
    return PipelineConfig(fs=fs, channels=CHANNELS, device="sim", scaling=scaling)


def test_the_export_opens_in_edfio_with_rate_units_values_and_annotations(
    synthetic_night: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    directory, volts = synthetic_night
    out = tmp_path / "night.edf"
    assert main(["export", str(directory), "--edf", str(out)]) == 0
    edf = edfio.read_edf(out)
    assert edf.duration == 240.0 and edf.num_data_records == 240
    assert (edf.startdate, edf.starttime) == (STARTED.date(), STARTED.time())
    microvolts = FRONT_END.microvolts(volts)
    for c, signal_ in enumerate(edf.signals):
        assert signal_.label == CHANNELS[c]
        assert signal_.sampling_frequency == 1000.0
        assert signal_.physical_dimension == "uV"
        assert (signal_.physical_min, signal_.physical_max) == (-1650.0, 1650.0)
        assert (signal_.digital_min, signal_.digital_max) == (0, 1024)
        present = ~np.isnan(microvolts[:, c])
        assert np.allclose(signal_.data[present], microvolts[present, c], rtol=0, atol=1e-9)
    notes = {(a.text, round(a.onset, 3), a.duration) for a in edf.annotations}
    assert ("recording start", 0.0, None) in notes
    assert ("marker button", 70.0, None) in notes
    assert ("gap", 200.0, 1.5) in notes  # one note for a run, whatever records it spans
    assert ("gap right_calf", 120.0, 0.3) in notes
    texts = [a.text for a in edf.annotations]
    assert "cramp left_calf" in texts and "recording end" in texts
    assert any(t.startswith("movement ") for t in texts)
    cramp = next(a for a in edf.annotations if a.text == "cramp left_calf")
    assert abs(cramp.onset - 60.0) < 3.0 and abs(cramp.onset + cramp.duration - 95.0) < 3.0


def test_the_exported_header_follows_the_edf_plus_layout(
    synthetic_night: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "night.edf"
    export_edf(synthetic_night[0], out)
    raw = out.read_bytes()
    fixed = raw[:256].decode("ascii")
    assert fixed[:8] == "0       "
    assert fixed[8:88].rstrip() == "X X X X"
    assert fixed[88:168].rstrip() == "Startdate 20-NOV-2026 X X crampwatch_sim"
    assert (fixed[168:176], fixed[176:184]) == ("20.11.26", "22.30.05")
    assert int(fixed[184:192]) == 256 * 4 and fixed[192:236].rstrip() == "EDF+C"
    assert (int(fixed[236:244]), fixed[244:252].rstrip(), int(fixed[252:256])) == (240, "1", 3)
    first_tal = raw[1024 + 2 * 2 * 1000 :].split(b"\x00")[0]
    assert first_tal.endswith(b"\x14\x14")  # time keeping: the first sample is 0.25 s past
    assert float(first_tal[:-2]) == 0.25  # the second


def test_replaying_the_export_gives_the_live_pipelines_events(
    synthetic_night: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    directory, volts = synthetic_night
    live = Pipeline(live_config(1000.0), session_start=STARTED)
    expected = [*live.process(volts).events, *live.finish().events]
    assert any(e.kind == "cramp" for e in expected)
    export_edf(directory, tmp_path / "night.edf")
    out = tmp_path / "replay.jsonl"
    argv = ["replay", str(tmp_path / "night.edf"), "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    replayed = [json.loads(line) for line in out.read_text().splitlines()]
    replayed = [e for e in replayed if "event_id" in e]
    assert [(e["kind"], e["channel"], e["phase"]) for e in replayed] == [
        (e.kind, e.channel, e.phase) for e in expected
    ]
    for got, want in zip(replayed, expected, strict=True):
        assert abs(got["start_s"] - want.start_s) <= 0.02
        if want.end_s is not None:
            assert abs(got["end_s"] - want.end_s) <= 0.02
    recorded = open_night(directory).events()
    assert [(e["kind"], e["channel"], e["phase"]) for e in recorded] == [
        (e.kind, e.channel, e.phase) for e in expected
    ]


def test_gaps_come_back_as_missing_samples_in_crampwatchs_reader(
    synthetic_night: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    directory, volts = synthetic_night
    export_edf(directory, tmp_path / "night.edf")
    with open_recording(tmp_path / "night.edf") as recording:
        back = np.concatenate(list(recording.blocks(65536)))
    microvolts = FRONT_END.microvolts(volts)
    assert np.array_equal(np.isnan(back), np.isnan(microvolts))
    assert np.allclose(back, microvolts, rtol=0, atol=1e-9, equal_nan=True)


def test_an_ads1115_rate_gets_five_second_records_and_exact_codes(tmp_path: Path) -> None:
    fs, n = 894.4, 4472 * 3 + 1000  # the last record is filled up and annotated as a gap
    rng = np.random.default_rng(6)
    volts = rng.integers(-26400, 26400, (n, 2)) * ADS_LSB
    record(tmp_path / "night", volts, fs=fs, scaling=ADS_SCALING, lsb_v=ADS_LSB, segment_s=7.0)
    summary = export_edf(tmp_path / "night", tmp_path / "ads.edf")
    assert (summary.record_s, summary.n_records, summary.exact) == (5, 4, True)
    edf = edfio.read_edf(tmp_path / "ads.edf")
    signal_ = edf.signals[0]
    assert signal_.sampling_frequency == fs and edf.data_record_duration == 5
    assert (signal_.digital_min, signal_.digital_max) == (-26400, 26400)
    assert (signal_.physical_min, signal_.physical_max) == (-1650.0, 1650.0)
    assert np.allclose(signal_.data[:n], volts[:, 0] * 1e3, rtol=0, atol=1e-9)
    assert ("gap", round(n / fs, 4)) in {(a.text, round(a.onset, 4)) for a in edf.annotations}
    with open_recording(tmp_path / "ads.edf") as recording:
        assert recording.info.fs == fs
        back = np.concatenate(list(recording.blocks(10_000)))
    assert np.isnan(back[n:]).all() and not np.isnan(back[:n]).any()


def test_without_a_known_step_the_range_spreads_over_16_bits(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    volts = 1.65 + rng.normal(0.0, 0.02, (3000, 2))
    scaling = ScalingConfig(units="V", gain=1000.0, offset_v=1.65)
    record(tmp_path / "night", volts, scaling=scaling, lsb_v=None)
    summary = export_edf(tmp_path / "night", tmp_path / "float.edf")
    assert not summary.exact
    signal_ = edfio.read_edf(tmp_path / "float.edf").signals[1]
    assert (signal_.digital_min, signal_.digital_max) == (-32768, 32767)
    step = (signal_.physical_max - signal_.physical_min) / 65535
    stored = volts.astype(np.float32).astype(np.float64)
    assert np.abs(signal_.data - (stored[:, 1] - 1.65) * 1e6 / 1000).max() <= step / 2 + 1e-9


@pytest.mark.parametrize(
    ("fs", "seconds", "samples"),
    [(1000.0, 1, 1000), (894.4, 5, 4472), (860.0, 1, 860), (1000 / 3, 3, 1000), (250.5, 2, 501)],
)
def test_record_duration_holds_a_whole_number_of_samples(
    fs: float, seconds: int, samples: int
) -> None:
    layout = record_layout(fs, 10_000)
    assert (layout.record_s, layout.samples_per_record, layout.rate_error) == (seconds, samples, 0)


def test_an_interrupted_night_exports_with_its_open_cramp(tmp_path: Path) -> None:
    night_dir = tmp_path / "night"
    record(night_dir, random_codes(3000, 8))
    meta = json.loads((night_dir / METADATA_FILE).read_text())
    meta["complete"] = False
    (night_dir / METADATA_FILE).write_text(json.dumps(meta))
    started = {"event_id": "e1", "kind": "cramp", "phase": "started", "channel": "left_calf"}
    with (night_dir / "events.jsonl").open("a") as handle:
        handle.write(json.dumps({**started, "start_s": 1.0, "duration_s": 10.0}) + "\n")
    export_edf(night_dir, tmp_path / "cut.edf")
    notes = {
        (a.text, a.onset, a.duration) for a in edfio.read_edf(tmp_path / "cut.edf").annotations
    }
    assert ("cramp left_calf unfinished", 1.0, 2.0) in notes
    assert ("recording end (interrupted)", 3.0, None) in notes


# --- refusals -------------------------------------------------------------------------------


def export_fails(capsys: pytest.CaptureFixture[str], night: Path, out: Path, says: str) -> None:
    assert main(["export", str(night), "--edf", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("crampwatch export: error: ") and says in error
    assert not out.exists()
    if out.parent.is_dir():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_bad_input_is_refused_with_a_clear_error_and_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "night.edf"
    export_fails(capsys, tmp_path / "missing", out, "is not a directory")
    (tmp_path / "plain").mkdir()
    export_fails(capsys, tmp_path / "plain", out, "not a night directory")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / METADATA_FILE).write_text('{"format": "crampwatch.ni')
    export_fails(capsys, tmp_path / "corrupt", out, "night.json is damaged")
    (tmp_path / "corrupt" / METADATA_FILE).write_text('{"format": "crampwatch.night/1"}')
    export_fails(capsys, tmp_path / "corrupt", out, "damaged or incomplete")
    recorder(tmp_path / "empty").close()
    export_fails(capsys, tmp_path / "empty", out, "holds no samples")


def test_an_unwritable_output_is_refused_and_nothing_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record(tmp_path / "night", random_codes(2000, 9))
    (tmp_path / "file").write_text("not a directory")
    export_fails(capsys, tmp_path / "night", tmp_path / "file" / "x.edf", "is not a folder")
    (tmp_path / "dir.edf").mkdir()
    assert main(["export", str(tmp_path / "night"), "--edf", str(tmp_path / "dir.edf")]) == 2
    assert "--edf" in (error := capsys.readouterr().err) and "is a folder" in error
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing").rmdir()
    export_fails(capsys, tmp_path / "night", tmp_path / "missing" / "x.edf", "does not exist")
    assert not (tmp_path / "missing").exists()  # no folder is made


def test_a_failure_while_writing_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(tmp_path / "night", random_codes(2000, 10))

    def broken(writer, *args: object) -> None:
        writer.blockWriteDigitalSamples(np.zeros(2000, dtype=np.int32))  # half the night
        raise OSError(28, "No space left on device", str(tmp_path / "x.edf"))

    monkeypatch.setattr(export_command, "_write_records", broken)
    assert main(["export", str(tmp_path / "night"), "--edf", str(tmp_path / "x.edf")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["night"]


# --- memory -------------------------------------------------------------------------------


def test_export_memory_does_not_grow_with_the_night(tmp_path: Path) -> None:
    """One hour at 1 kHz, two channels: 58 MB as float64; the export needs about 7 MB."""
    night_dir = tmp_path / "night"
    with recorder(night_dir) as night:
        for k in range(60):
            night.write(random_codes(60_000, k, missing=1e-5))
    tracemalloc.start()
    export_edf(night_dir, tmp_path / "hour.edf")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16e6
    assert edfio.read_edf(tmp_path / "hour.edf", lazy_load_data=True).duration == 3600


# --- pyedflib and its limits ------------------------------------------------------------------


def test_export_without_pyedflib_says_which_extra_installs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record(tmp_path / "night", random_codes(2000, 11))
    monkeypatch.setitem(sys.modules, "pyedflib", None)
    export_fails(capsys, tmp_path / "night", tmp_path / "x.edf", "crampwatch[research]")


def test_many_gaps_get_as_many_annotation_signals_as_they_need(tmp_path: Path) -> None:
    volts = random_codes(3000, 12, missing=0.03)  # about 170 runs in 3 one-second records
    record(tmp_path / "night", volts)
    summary = export_edf(tmp_path / "night", tmp_path / "gappy.edf")
    assert summary.gaps > 100 and summary.n_records == 3
    edf = edfio.read_edf(tmp_path / "gappy.edf")  # the cross-check reads every annotation
    assert sum(a.text.startswith("gap") for a in edf.annotations) == summary.gaps
    with open_recording(tmp_path / "gappy.edf") as recording:
        back = np.concatenate(list(recording.blocks()))
    microvolts = FRONT_END.microvolts(volts)
    assert np.array_equal(np.isnan(back), np.isnan(microvolts))
    assert np.allclose(back, microvolts, rtol=0, atol=1e-9, equal_nan=True)


def test_a_night_needing_more_annotations_than_edf_plus_holds_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    volts = random_codes(1000, 13, missing=0.5)  # one record: room for 64 annotations
    record(tmp_path / "night", volts)
    export_fails(capsys, tmp_path / "night", tmp_path / "x.edf", "holds at most 64")


def test_quality_changes_are_one_short_annotation_per_problem(tmp_path: Path) -> None:
    night_dir = tmp_path / "night"
    record(night_dir, random_codes(3000, 14, missing=0.0))
    change = {"type": "quality", "channel": "right_calf", "at_s": 1.5,
              "problems": ["electrode_off", "clipping", "mains", "gap"]}  # fmt: skip
    with (night_dir / "events.jsonl").open("a") as handle:
        handle.write(json.dumps(change) + "\n")
        handle.write(json.dumps({**change, "at_s": 2.0, "problems": []}) + "\n")
    export_edf(night_dir, tmp_path / "q.edf")
    texts = {(a.onset, a.text) for a in edfio.read_edf(tmp_path / "q.edf").annotations}
    for problem in ("electrode_off", "clipping", "mains", "gap"):
        assert (1.5, f"quality right_calf {problem}") in texts
    assert (2.0, "quality right_calf good") in texts


EIGHT_HOURS = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from tests import test_night_recording as t
    rng = np.random.default_rng(0)
    with t.recorder(Path(sys.argv[1])) as night:
        for _ in range(48):  # 8 h at 1 kHz, two channels, 10 minutes at a time
            volts = rng.integers(300, 700, (600_000, 2)) * t.MCP_LSB
            volts[rng.random((600_000, 2)) < 1e-5] = np.nan
            night.write(volts)
""")
PEAK = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    {body}
    with open("/proc/self/status") as status:  # this process's own high-water mark
        print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM")))
""")


def peak_bytes(body: str) -> int:
    code = PEAK.format(body=body)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1])


@pytest.mark.slow  # about 20 s: writes, exports and reads back an 8-hour night
def test_an_eight_hour_night_exports_and_reads_back_in_bounded_memory(tmp_path: Path) -> None:
    night_dir, out = tmp_path / "night", tmp_path / "night.edf"
    subprocess.run([sys.executable, "-c", EIGHT_HOURS, str(night_dir)], cwd=REPO, check=True)
    argv = ["export", str(night_dir), "--edf", str(out)]
    export = f"from firmware_host.cli import main\nassert main({argv!r}) == 0"
    assert peak_bytes(export) < 200 << 20
    read = (
        "from hardware.recordings import open_recording\n"
        f"with open_recording({str(out)!r}) as r: assert sum(map(len, r.blocks())) == 28_800_000"
    )
    assert peak_bytes(read) < 200 << 20
    assert edfio.read_edf(out, lazy_load_data=True).duration == 8 * 3600
