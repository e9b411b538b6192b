"""The resting floor at the start of a recording, and a floor that is given (`--floor-uv`).

No detection before the floor is learned from the warm-up's quiet (or given); activity during the
warm-up is judged once the floor is known; a recording that starts inside an event is reported
once real quiet shows the floor, with the corrected floor, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsp.config import ConfigError, DetectorConfig, PipelineConfig
from dsp.pipeline import Pipeline
from firmware_host.cli import main
from tests.dropouts import run_pipeline
from tests.signals import with_bursts

FS = 500.0
TRUE_FLOOR_UV = 3.0


def test_nothing_is_reported_before_the_floor_is_learned_from_the_warm_up() -> None:
    x = with_bursts(FS, 40, [(1.0, 3.0, 40.0)], floor_uv=TRUE_FLOOR_UV)
    pipeline = Pipeline(PipelineConfig(fs=FS))
    first_report_after_s = None
    for second in range(40):
        out = pipeline.process(x[round(second * FS) : round((second + 1) * FS)])
        if out.records and first_report_after_s is None:
            first_report_after_s = second + 1
    warm_up_s = PipelineConfig(fs=FS).detector.floor_warmup_s
    # The first report comes once the warm-up's 5 s have passed the spike stage, which holds the
    # signal back under a second (0.38 s at 500 Hz): in the sixth one-second block.
    assert first_report_after_s == warm_up_s + 1
    # The movement during the warm-up is judged with the floor learned there, at its true time.
    run = run_pipeline(PipelineConfig(fs=FS), x)
    [movement] = run.ended()
    assert abs(movement.start_s - 1.0) < 0.1 and abs(movement.end_s - 3.0) < 0.1


@pytest.mark.parametrize("seed", range(5))
def test_the_floor_learned_at_the_start_is_the_true_resting_floor(seed: int) -> None:
    x = with_bursts(FS, 60, [(20.0, 40.0, 60.0)], floor_uv=TRUE_FLOOR_UV, seed=seed)
    run = run_pipeline(PipelineConfig(fs=FS), x)
    [cramp] = run.ended("cramp")
    assert cramp.floor_uv == pytest.approx(TRUE_FLOOR_UV, rel=0.1)


@pytest.mark.parametrize("cramp_s", [60.0, 1200.0])
def test_a_recording_that_starts_inside_a_cramp_reports_it_with_the_floor_of_the_quiet_after(
    cramp_s: float,
) -> None:
    x = with_bursts(FS, cramp_s + 100, [(0.0, cramp_s, 50.0), (cramp_s + 60, cramp_s + 64, 30.0)])
    run = run_pipeline(PipelineConfig(fs=FS), x)
    cramp, movement = run.ended()
    assert cramp.kind == "cramp" and cramp.start_s < 0.5 and abs(cramp.end_s - cramp_s) < 0.3
    assert set(cramp.quality.split(",")) == {"floor_revised", "recording_started"}
    assert cramp.floor_uv == pytest.approx(TRUE_FLOOR_UV, rel=0.25)
    assert [e.phase for e in run.events if e.kind == "cramp"] == ["started", "ended"]
    assert movement.kind == "movement" and abs(movement.start_s - (cramp_s + 60)) < 0.3
    assert movement.quality == "good"


def test_a_given_floor_allows_detection_from_the_first_sample_and_says_when_it_began_before() -> (
    None
):
    x = with_bursts(FS, 40, [(0.0, 15.0, 60.0)])
    config = PipelineConfig(fs=FS, detector=DetectorConfig(initial_floor_uv=TRUE_FLOOR_UV))
    [cramp] = run_pipeline(config, x).ended("cramp")
    assert cramp.start_s < 0.5 and cramp.quality == "recording_started"


def test_a_floor_held_fixed_is_used_all_through_and_a_learned_one_follows_the_signal() -> None:
    # The resting floor is 3 uV; bursts of 15 uV are movements above a 3 uV floor, but not
    # above a floor taken to be 10 uV (on threshold max(3 x 10, 10 + 8) = 30 uV).
    x = with_bursts(FS, 120, [(30.0, 33.0, 15.0), (70.0, 73.0, 15.0)], floor_uv=TRUE_FLOOR_UV)
    held = DetectorConfig(initial_floor_uv=10.0, learn_floor=False)
    started = DetectorConfig(initial_floor_uv=10.0, learn_floor=True)
    assert run_pipeline(PipelineConfig(fs=FS, detector=held), x).ended() == []
    learned = run_pipeline(PipelineConfig(fs=FS, detector=started), x).ended()
    assert len(learned) == 2 and all(e.floor_uv < 4.0 for e in learned)


def test_a_floor_held_fixed_needs_a_floor() -> None:
    with pytest.raises(ConfigError, match=r"--floor-uv"):
        PipelineConfig(fs=FS, detector=DetectorConfig(learn_floor=False))


# ---- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two minutes at a 3 uV floor with movements of 15 uV and a cramp of 60 uV."""
    x = with_bursts(
        1000.0,
        120,
        [(20.0, 23.0, 15.0), (40.0, 43.0, 15.0), (60.0, 80.0, 60.0)],
        floor_uv=TRUE_FLOOR_UV,
    )
    path = tmp_path_factory.mktemp("floor") / "rest.npy"
    np.save(path, x)
    return path


def replayed(recording: Path, out: Path, *options: str) -> list[tuple]:
    code = main(
        ["replay", str(recording), "--fs", "1000", "--no-progress", "--out", str(out), *options]
    )
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return [
        (e["kind"], round(e["start_s"]), e["floor_uv"])
        for e in lines
        if e.get("schema") == "crampwatch.event/1" and e["phase"] == "ended"
    ]


def test_floor_uv_on_replay_is_the_floor_used(recording: Path, tmp_path: Path) -> None:
    learned = replayed(recording, tmp_path / "learned.jsonl")
    low = replayed(recording, tmp_path / "2.jsonl", "--floor-uv", "2")
    mid = replayed(recording, tmp_path / "10.jsonl", "--floor-uv", "10")
    high = replayed(recording, tmp_path / "40.jsonl", "--floor-uv", "40")
    assert [k for k, _, _ in learned] == ["movement", "movement", "cramp"]
    assert [k for k, _, _ in low] == ["movement", "movement", "cramp"]
    assert {f for _, _, f in low} == {2.0}
    assert mid == [("cramp", 60, 10.0)]  # 15 uV is not above 3 x 10 uV
    assert high == []  # nor is 60 uV above 3 x 40 uV
    relearned = replayed(recording, tmp_path / "l.jsonl", "--floor-uv", "40", "--learn-floor")
    assert [(k, s) for k, s, _ in relearned] == [(k, s) for k, s, _ in learned]


def test_learn_floor_without_a_floor_is_refused(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "x.jsonl"
    args = ["replay", str(recording), "--fs", "1000", "--no-progress", "--out", str(out)]
    assert main([*args, "--learn-floor"]) == 2
    assert "--learn-floor goes with --floor-uv" in capsys.readouterr().err
    assert not out.exists()
