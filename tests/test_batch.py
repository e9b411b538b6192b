"""`crampwatch batch` on a real Dask cluster (local processes): tables, error rows, resume,
sweeps equal to replays, bulk scoring, plots, and the inputs and sidecars it reads."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import pytest

from firmware_host.cli import main
from research.inputs import InputError, find_recordings, fingerprint
from research.sidecar import SidecarError, load_sidecar, sidecar_path
from research.tables import (
    EVENT_COLUMNS,
    POOLED_COLUMNS,
    RECORDING_COLUMNS,
    SCORE_COLUMNS,
    read_csv_table,
)
from tests.research_data import read_jsonl, write_night

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A local Dask cluster (two single-threaded worker processes) shared by this module."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster.scheduler_address


def batch(scheduler: str | None, *args: str | Path) -> int:
    extra = ["--scheduler", scheduler] if scheduler else []
    return main(["batch", *map(str, args), "--no-progress", *extra])


def table(out: Path, name: str, columns: Iterable[tuple[str, str]]) -> list[dict]:
    return read_csv_table(out / f"{name}.csv", columns)


# ---- tables -------------------------------------------------------------------------------------


def test_batch_writes_each_recordings_events_file_and_tidy_tables(
    tmp_path: Path, scheduler: str
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_night(data, "a", 1)
    write_night(data / "deeper", "b", 2, cramp_at=80.0)
    assert batch(scheduler, data, "--out", out) == 0

    recordings = table(out, "recordings", RECORDING_COLUMNS)
    assert [(Path(r["recording"]).name, r["channel"]) for r in recordings] == [
        ("a.npy", "left"), ("a.npy", "right"), ("b.npy", "left"), ("b.npy", "right"),
    ]  # fmt: skip
    for row in recordings:
        assert row["status"] == "ok" and row["error"] is None
        assert row["hours"] == pytest.approx(240 / 3600, abs=1e-6) == row["good_signal_hours"]
        assert row["cramps"] == (1 if row["channel"] == "left" else 0)
        assert row["movements"] >= 1 and row["signal_lost_minutes"] == 0.0
        assert row["start"] == "2026-01-14T22:41:00+00:00" and row["fs"] == 1000.0
        assert row["format"] == "npy" and len(row["settings_hash"]) == 16

    events = table(out, "events", EVENT_COLUMNS)
    for path in sorted({r["events_file"] for r in recordings}):
        lines = read_jsonl(out / path)
        assert lines[-1]["type"] == "summary"  # the events file as replay writes it
        ended = [e for e in lines if e.get("phase") == "ended"]
        recording = next(r["recording"] for r in recordings if r["events_file"] == path)
        assert [e["event_id"] for e in events if e["recording"] == recording] == [
            e["event_id"] for e in ended
        ]
    cramps = [e for e in events if e["kind"] == "cramp"]
    assert [(e["channel"], round(e["start_s"])) for e in cramps] == [("left", 60), ("left", 80)]
    assert cramps[0]["start"].startswith("2026-01-14T22:42:00")  # the sidecar start + 60 s

    scores = table(out, "scores", SCORE_COLUMNS)
    assert [(s["kind"], s["tp"], s["fp"], s["fn"], s["f1"]) for s in scores] == [
        ("cramp", 1, 0, 0, 1.0), ("cramp", 1, 0, 0, 1.0),
    ]  # fmt: skip
    pooled = table(out, "pooled", POOLED_COLUMNS)
    assert len(pooled) == 1
    assert (pooled[0]["rank"], pooled[0]["settings"], pooled[0]["recordings"]) == (1, "defaults", 2)
    assert (pooled[0]["tp"], pooled[0]["cramps"], pooled[0]["scored_recordings"]) == (2, 2, 2)

    pyarrow = pytest.importorskip("pyarrow.parquet")
    for name, columns in (("recordings", RECORDING_COLUMNS), ("events", EVENT_COLUMNS)):
        parquet = pyarrow.read_table(out / f"{name}.parquet")
        assert parquet.column_names == [c for c, _ in columns]
        assert parquet.to_pylist() == table(out, name, columns)


def test_malformed_truncated_and_empty_files_are_error_rows_and_the_batch_goes_on(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    good = write_night(data, "good", 1)
    (data / "notes.csv").write_text("hello,world\nnot,numbers\n")
    raw = good.read_bytes()
    (data / "cut.npy").write_bytes(raw[: len(raw) // 2])
    (data / "empty.edf").write_bytes(b"")
    (data / "norate.csv").write_text("emg\n" + "\n".join(str(v % 7) for v in range(500)) + "\n")
    write_night(data, "odd", 3)
    (data / "odd.crampwatch.toml").write_text("fs = 1000\nsampling = 5\n")
    assert batch(scheduler, data, "--out", out) == 1
    rows = {Path(r["recording"]).name: r for r in table(out, "recordings", RECORDING_COLUMNS)}
    assert rows["good.npy"]["status"] == "ok"
    errors = {name: row["error"] for name, row in rows.items() if row["status"] == "error"}
    assert set(errors) == {"notes.csv", "cut.npy", "empty.edf", "odd.npy", "norate.csv"}
    assert "truncated" in errors["cut.npy"] and "empty" in errors["empty.edf"]
    assert "no sampling rate" in errors["norate.csv"]
    assert errors["norate.csv"].endswith("say it in a sidecar norate.csv.crampwatch.toml")
    assert "unknown key 'sampling'" in errors["odd.npy"] and "allowed: fs" in errors["odd.npy"]
    assert all(rows[name]["channel"] is None for name in errors)
    err = capsys.readouterr().err
    assert "1 done, 5 failed" in err and "cut.npy" in err
    assert not list(out.rglob("*.partial"))


# ---- resume -------------------------------------------------------------------------------------


def result_times(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("results/*/result.json")}


def test_a_rerun_skips_finished_recordings_and_redoes_changed_ones(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_night(data, "a", 1)
    b = write_night(data, "b", 2)
    assert batch(scheduler, data, "--out", out) == 0
    assert "(0 already done earlier, 2 run now)" in capsys.readouterr().err
    first = result_times(out)
    tables = (out / "recordings.csv").read_bytes(), (out / "events.csv").read_bytes()

    assert batch(scheduler, data, "--out", out) == 0
    assert "(2 already done earlier, 0 run now)" in capsys.readouterr().err
    assert result_times(out) == first
    assert ((out / "recordings.csv").read_bytes(), (out / "events.csv").read_bytes()) == tables

    time.sleep(0.01)
    np.save(b, np.load(b)[:200_000])  # b changes (shorter)
    assert batch(scheduler, data, "--out", out) == 0
    assert "(1 already done earlier, 1 run now)" in capsys.readouterr().err
    rows = table(out, "recordings", RECORDING_COLUMNS)
    assert [r["hours"] for r in rows if r["recording"] == str(b)] == [round(200 / 3600, 6)] * 2

    truth = data / "a.truth.csv"
    truth.write_text(truth.read_text() + "movement,10.0,11.0,left\n")  # a's truth changes
    assert batch(scheduler, data, "--out", out) == 0
    assert "(1 already done earlier, 1 run now)" in capsys.readouterr().err

    assert batch(scheduler, data, "--out", out, "--notch", "60") == 0  # new options: all again
    assert "(0 already done earlier, 2 run now)" in capsys.readouterr().err


def test_the_fingerprint_sees_rewrites_truncation_appends_and_moves(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(bytes(300_000))
    quick, full = fingerprint([path]), fingerprint([path], full=True)
    assert fingerprint([path]) == quick != full
    os.utime(path, ns=(1, 2))
    moved_in_time = fingerprint([path])
    assert moved_in_time != quick
    with path.open("r+b") as handle:  # a change in the middle, size and time kept
        handle.seek(150_000)
        handle.write(b"\x01")
    os.utime(path, ns=(1, 2))
    assert fingerprint([path]) == moved_in_time  # what the quick check cannot see
    assert fingerprint([path], full=True) != full  # and --full-hash can
    path.write_bytes(bytes(299_999))
    os.utime(path, ns=(1, 2))
    truncated = fingerprint([path])
    assert truncated != moved_in_time
    moved = tmp_path / "y.bin"
    path.rename(moved)
    assert fingerprint([moved]) != truncated  # same bytes and time, another path


# ---- sweeps -------------------------------------------------------------------------------------


def test_each_sweep_combination_equals_a_replay_with_those_settings(
    tmp_path: Path, scheduler: str
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    path = write_night(data, "night", 4, sidecar=False)
    common = ["--fs", "1000", "--units", "uV"]
    code = batch(
        scheduler, path, "--out", out, *common,
        "--set", "detector.cramp_min_s=10,60", "--set", "detector.on_factor=3,4",
        "--channel-map", "left=ch0,right=ch1",
    )  # fmt: skip
    assert code == 0
    recordings = table(out, "recordings", RECORDING_COLUMNS)
    settings = {
        "c1": ("detector.cramp_min_s=10.0", "detector.on_factor=3.0"),
        "c2": ("detector.cramp_min_s=10.0", "detector.on_factor=4.0"),
        "c3": ("detector.cramp_min_s=60.0", "detector.on_factor=3.0"),
        "c4": ("detector.cramp_min_s=60.0", "detector.on_factor=4.0"),
    }
    for combination, sets in settings.items():
        replayed = tmp_path / f"{combination}.jsonl"
        args = [str(path), *common, "--out", str(replayed), "--no-progress"]
        assert main(["replay", *args, *[a for s in sets for a in ("--set", s)]]) == 0
        events_file = {r["events_file"] for r in recordings if r["combination"] == combination}
        assert len(events_file) == 1
        assert (out / events_file.pop()).read_bytes() == replayed.read_bytes()

    pooled_columns = dict(POOLED_COLUMNS) | {
        "detector.cramp_min_s": "float",
        "detector.on_factor": "float",
    }
    pooled = table(out, "pooled", pooled_columns.items())
    header = (out / "pooled.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == [
        "rank",
        "combination",
        "settings",
        "detector.cramp_min_s",
        "detector.on_factor",
    ]
    assert [row["rank"] for row in pooled] == [1, 2, 3, 4]
    best = [row for row in pooled if row["f1"] == 1.0]
    assert {row["detector.cramp_min_s"] for row in best} == {10.0}
    assert {
        (row["f1"], row["recall"]) for row in pooled if row["detector.cramp_min_s"] == 60.0
    } == {(0.0, 0.0)}
    assert pooled[0]["settings"] == "detector.cramp_min_s=10.0; detector.on_factor=3.0"


def test_an_unknown_setting_is_refused_before_any_work_naming_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_night(data, "a", 1)
    with pytest.raises(SystemExit) as exit_info:
        batch(None, data, "--out", out, "--set", "detector.cramp_min=8,10")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert (
        "unknown setting 'detector.cramp_min'" in err and "did you mean detector.cramp_min_s" in err
    )
    assert "settable keys: filter.band_low_hz" in err
    assert batch(None, data, "--out", out, "--set", "detector.cramp_min_s=0") == 2
    assert "detector.cramp_min_s must be > 0" in capsys.readouterr().err
    assert not (out / "results").exists()


# ---- scoring ------------------------------------------------------------------------------------


def test_batch_scores_are_what_evaluate_gives_for_each_events_file(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    for seed in (5, 6):
        write_night(data, f"n{seed}", seed)
    truth = data / "n6.truth.csv"
    truth.write_text(truth.read_text() + "cramp,200.0,215.0,right\n")  # one the detector misses
    assert batch(scheduler, data, "--out", out, "--kind", "cramp", "--kind", "movement") == 0
    capsys.readouterr()
    recordings = table(out, "recordings", RECORDING_COLUMNS)
    for row in table(out, "scores", SCORE_COLUMNS):
        events_file = next(
            r["events_file"] for r in recordings if r["recording"] == row["recording"]
        )
        truth_file = row["truth"]
        assert (
            main(["evaluate", str(out / events_file), truth_file, "--kind", row["kind"], "--json"])
            == 0
        )
        expected = json.loads(capsys.readouterr().out)["scores"][row["kind"]]
        for name in ("n_truth", "n_detected", "tp", "fp", "fn", "precision", "recall", "f1"):
            assert row[name] == pytest.approx(expected[name]), name
        assert row["false_per_hour"] == pytest.approx(expected["false_per_hour"], abs=1e-6)
    pooled = {row["kind"]: row for row in table(out, "pooled", POOLED_COLUMNS)}
    assert (pooled["cramp"]["tp"], pooled["cramp"]["fn"]) == (2, 1)
    assert pooled["cramp"]["recall"] == pytest.approx(2 / 3)
    assert pooled["cramp"]["scored_hours"] == pytest.approx(480 / 3600, abs=1e-6)


def test_edf_plus_annotations_are_a_recordings_ground_truth(tmp_path: Path, scheduler: str) -> None:
    edfio = pytest.importorskip("edfio")
    source = write_night(tmp_path / "make", "x", 7, sidecar=False, truth=False)
    samples = np.load(source)
    signals = [
        edfio.EdfSignal(
            samples[:, i],
            sampling_frequency=1000,
            label=name,
            physical_range=(-5000, 5000),
            physical_dimension="uV",
        )
        for i, name in enumerate(("left", "right"))
    ]
    notes = [
        edfio.EdfAnnotation(60.0, 40.0, "cramp left"),
        edfio.EdfAnnotation(30.0, None, "lights off"),
    ]
    (tmp_path / "data").mkdir()
    edfio.Edf(signals, annotations=notes).write(tmp_path / "data" / "night.edf")
    out = tmp_path / "out"
    assert batch(scheduler, tmp_path / "data", "--out", out) == 0
    [score] = table(out, "scores", SCORE_COLUMNS)
    assert (score["truth"], score["tp"], score["fp"], score["fn"]) == ("EDF+ annotations", 1, 0, 0)
    assert batch(scheduler, tmp_path / "data", "--out", out, "--truth", "none") == 0
    assert table(out, "scores", SCORE_COLUMNS) == []


def test_truth_naming_no_channel_of_the_recording_fails_that_recording_with_both_lists(
    tmp_path: Path, scheduler: str
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_night(data, "a", 1)
    (data / "a.truth.csv").write_text("kind,start_s,end_s,channel\ncramp,60,100,L\n")
    assert batch(scheduler, data, "--out", out) == 1
    [row] = table(out, "recordings", RECORDING_COLUMNS)
    assert "['L']" in row["error"] and "['left', 'right']" in row["error"]
    assert batch(scheduler, data, "--out", out, "--channel-map", "L=left") == 0


# ---- plots, clusters ----------------------------------------------------------------------------


def test_plots_are_made_for_each_recording_also_when_asked_for_later(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_night(data, "a", 1)
    write_night(data, "b", 2)
    assert batch(scheduler, data, "--out", out) == 0
    assert batch(scheduler, data, "--out", out, "--plots", "--plot-format", "svg") == 0
    assert "(0 already done earlier, 2 run now)" in capsys.readouterr().err
    plots = {r["plot_file"] for r in table(out, "recordings", RECORDING_COLUMNS)}
    assert len(plots) == 2
    for plot in plots:
        text = (out / plot).read_text()
        assert text.startswith("<?xml") and "1 cramp" in text


def test_the_default_is_an_embedded_local_cluster_and_the_address_may_come_from_the_environment(
    tmp_path: Path,
    scheduler: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    write_night(data, "a", 1)
    assert (
        batch(None, data, "--out", tmp_path / "one", "--workers", "1", "--memory-limit", "1GiB")
        == 0
    )
    assert "ran on the local cluster with 1 worker(s)" in capsys.readouterr().err
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)
    assert batch(None, data, "--out", tmp_path / "two") == 0
    assert f"ran on the cluster {scheduler} with 2 worker(s)" in capsys.readouterr().err
    monkeypatch.setattr("research.cluster.CONNECT_TIMEOUT", "1s")
    assert batch(None, data, "--out", tmp_path / "three", "--scheduler", "tcp://127.0.0.1:9") == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_a_profiler_that_holds_the_detectors_frames_cannot_break_a_replay() -> None:
    # Every Dask worker samples its task's stack; a frame it holds must not pin the detector's
    # growing buffers (that failed a recording now and then with a BufferError).
    from dsp.config import PipelineConfig
    from dsp.pipeline import Pipeline
    from hardware.synthetic_emg import SyntheticEMG, scenario

    plan = scenario(1, fs=1000.0, duration_s=120.0, channels=("left",),
                    events=[("cramp", 30.0, 70.0, "left")])  # fmt: skip
    samples = SyntheticEMG(plan, seed=1).render()
    held: list[object] = []

    def hold_frames(frame: FrameType, event: str, _arg: object) -> None:
        if event == "return":
            held.append(frame)

    pipeline = Pipeline(PipelineConfig(fs=1000.0, channels=("left",)))
    events = []
    sys.setprofile(hold_frames)
    try:
        for at in range(0, len(samples), 5000):
            events += pipeline.process(samples[at : at + 5000]).events
        events += pipeline.finish().events
    finally:
        sys.setprofile(None)
    assert [(e.kind, e.phase) for e in events] == [("cramp", "started"), ("cramp", "ended")]
    assert held


# ---- inputs and sidecars ------------------------------------------------------------------------


def test_inputs_are_files_folders_searched_recursively_and_globs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("a.npy", "b.edf", "sub/c.csv", "sub/rec.hea", "sub/rec.dat", "sub/x.dat",
                 ".hidden.npy", "a.crampwatch.toml", "a.truth.csv", "notes.pdf", "out/r.csv"):  # fmt: skip
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_text("x")
    names = lambda paths: sorted(p.relative_to(data.resolve()).as_posix() for p in paths)  # noqa: E731
    found = find_recordings([data], exclude=data / "out")
    assert names(found) == ["a.npy", "b.edf", "sub/c.csv", "sub/rec.hea", "sub/x.dat"]
    assert names(find_recordings([str(data / "**" / "*.csv")], exclude=data / "out")) == [
        "sub/c.csv"
    ]
    assert names(find_recordings([data / "notes.pdf", data / "a.npy", data])) == [
        "a.npy", "b.edf", "notes.pdf", "out/r.csv", "sub/c.csv", "sub/rec.hea", "sub/x.dat",
    ]  # fmt: skip
    with pytest.raises(InputError, match="no such file or folder"):
        find_recordings([data / "nope"])
    with pytest.raises(InputError, match="matches no file"):
        find_recordings([str(data / "*.wav")])


def test_a_sidecar_for_one_file_wins_over_the_one_for_its_name(tmp_path: Path) -> None:
    recording = tmp_path / "night.npy"
    assert sidecar_path(recording) is None
    (tmp_path / "night.crampwatch.toml").write_text("fs = 500\n")
    assert sidecar_path(recording) == tmp_path / "night.crampwatch.toml"
    (tmp_path / "night.npy.crampwatch.json").write_text('{"fs": 250}')
    assert load_sidecar(sidecar_path(recording)).options == {"fs": 250.0}  # type: ignore[arg-type]
    assert sidecar_path(tmp_path / "night.csv") == tmp_path / "night.crampwatch.toml"
    (tmp_path / "night.npy.crampwatch.toml").write_text("fs = 100\n")
    with pytest.raises(SidecarError, match="has two sidecars"):
        sidecar_path(recording)


def test_a_sidecar_says_what_the_file_does_not_and_names_a_wrong_key(tmp_path: Path) -> None:
    path = tmp_path / "n.crampwatch.toml"
    path.write_text('fs = 500\nunits = "mV"\nchannels = ["EMG", 2]\nnotch = 60\ntruth = "t.csv"\n')
    sidecar = load_sidecar(path)
    assert sidecar.options == {"fs": 500.0, "units": "mV", "channels": ["EMG", "2"], "notch": "60"}
    assert sidecar.truth == tmp_path / "t.csv"
    json_path = tmp_path / "m.crampwatch.json"
    json_path.write_text(json.dumps({"fs": 250, "gain": 1000}))
    assert load_sidecar(json_path).options == {"fs": 250.0, "gain": 1000.0}
    for text, message in (
        ("fs = -1\n", "fs is -1; use a positive number"),
        ('units = "volts"\n', "units is 'volts'; use counts, uV, mV or V"),
        ("rate = 1000\n", "unknown key 'rate'; allowed: fs, units"),
        ("fs = \n", "is not valid TOML"),
        ('names = ["a", "a"]\n', "a list of distinct channel names"),
    ):
        path.write_text(text)
        with pytest.raises(SidecarError, match=re.escape(message)):
            load_sidecar(path)
