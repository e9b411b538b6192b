"""The real recordings in ../shared/data/emg replay in their native formats, and the detector
behaves on them: voluntary and rhythmic activity is not a cramp, a sustained contraction is."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dsp.config import PipelineConfig
from dsp.pipeline import Pipeline
from firmware_host.cli import main
from tests.shared_data import require_emg_data_dir
from tests.signals import emg_like

pytestmark = pytest.mark.data

# (path under the data folder, extra replay arguments)
RECORDINGS = [
    ("biosppy/emg.txt", []),
    ("biosppy/emg_1.txt", []),
    ("uci_lower_limb/5Nsen.txt", ["--fs", "1000"]),
    ("uci_lower_limb/5Npie.txt", ["--fs", "1000"]),
    ("uci_lower_limb/5Nmar.txt", ["--fs", "1000"]),
    ("uci_lower_limb/3Asen.txt", ["--fs", "1000"]),
    ("physionet_emgdb/emg_healthy.hea", []),
    ("physionet_emgdb/emg_myopathy.hea", []),
    ("physionet_emgdb/emg_neuropathy.hea", []),
    ("musclesynergies_gait/ID0012_TW_01_raw_emg.csv", ["--units", "uV"]),
    (
        "elderly_isometric/ID_1.npz",
        ["--channel", "EMG_TA:0", "--channel", "EMG_TA:2", "--units", "uV"],
    ),
    ("elderly_isometric/ID_2.npz", ["--channel", "EMG_LG:1", "--units", "uV"]),
]


def replay_lines(path: Path, extra: list[str], out: Path) -> list[dict]:
    code = main(["replay", str(path), "--no-progress", "--out", str(out), *extra])
    assert code == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize(("name", "extra"), RECORDINGS, ids=[r[0] for r in RECORDINGS])
def test_every_shared_recording_replays_in_its_native_format(
    name: str, extra: list[str], tmp_path: Path
) -> None:
    folder = require_emg_data_dir()
    lines = replay_lines(folder / name, extra, tmp_path / "events.jsonl")
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["duration_s"] > 5
    events = [line for line in lines if line.get("schema") == "crampwatch.event/1"]
    # None of these recordings holds a cramp: voluntary bursts, gait, needle EMG, 10 s tests.
    assert not [e for e in events if e["kind"] == "cramp"], name


def test_csv_output_has_one_row_per_event(tmp_path: Path) -> None:
    folder = require_emg_data_dir()
    out = tmp_path / "events.csv"
    assert (
        main(
            [
                "replay",
                str(folder / "biosppy/emg_1.txt"),
                "--no-progress",
                "--format",
                "csv",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert rows and all(row["kind"] == "movement" for row in rows)
    assert all(float(row["end_s"]) > float(row["start_s"]) for row in rows)


def run_pipeline(x: np.ndarray, fs: float) -> list:
    pipeline = Pipeline(PipelineConfig(fs=fs), source_id="real")
    events = []
    for i in range(0, len(x), 10000):
        events += pipeline.process(x[i : i + 10000, None]).events
    return events + pipeline.finish().events


@pytest.mark.parametrize("muscle", ["GM", "GL", "SO", "TA"])
def test_a_minute_of_real_walking_is_not_a_cramp(muscle: str) -> None:
    folder = require_emg_data_dir()
    gait = np.genfromtxt(
        folder / "musclesynergies_gait/ID0012_TW_01_raw_emg.csv", delimiter=",", names=True
    )
    walking = np.tile(gait[muscle], 10)  # 76 s of the same treadmill steps
    rest = emg_like(30000, 1000.0, seed=1)[:, 0] * 3.0
    events = run_pipeline(np.concatenate([rest, walking, rest]), 1000.0)
    assert not [e for e in events if e.kind == "cramp"]
    moves = [e for e in events if e.phase == "ended" and e.kind == "movement"]
    assert len(moves) == 1 and moves[0].duration_s > 60


@pytest.mark.parametrize("subject", ["ID_1", "ID_2"])
def test_a_real_sustained_contraction_of_twenty_seconds_is_flagged(subject: str) -> None:
    """Same electrode, same person: rest (during the knee-flexion test), then two back-to-back
    10 s isometric contractions that keep it active, then rest again."""
    folder = require_emg_data_dir()
    data = np.load(folder / f"elderly_isometric/{subject}.npz")
    rest = data["EMG_BF"][:, 0].astype(float)
    contraction = np.concatenate([data["EMG_VL"][:, 0], data["EMG_LG"][:, 0]]).astype(float)
    x = np.concatenate([rest, rest, contraction, rest])
    events = run_pipeline(x, 2000.0)
    cramps = [e for e in events if e.kind == "cramp" and e.phase == "ended"]
    assert len(cramps) == 1
    assert cramps[0].start_s >= 20.0 and cramps[0].end_s <= 40.5
    assert cramps[0].duration_s >= 10.0
