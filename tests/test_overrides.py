"""Settings by name (`--set SECTION.KEY=VALUE`): checked against PipelineConfig, typed, applied,
and the same in replay as in a batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dsp.config import ConfigError, PipelineConfig
from dsp.overrides import (
    apply_settings,
    parse_assignment,
    settable_keys,
    settings_grid,
    single_settings,
)
from firmware_host.cli import main
from hardware.synthetic_emg import SyntheticEMG, scenario


def test_every_detector_filter_envelope_and_quality_field_is_settable() -> None:
    keys = settable_keys()
    assert "detector.cramp_min_s" in keys and "filter.notch_hz" in keys
    assert "envelope.window_s" in keys and "quality.min_measured_fraction" in keys
    assert not [k for k in keys if k.startswith(("scaling.", "calibration"))]


def test_values_take_the_fields_type() -> None:
    assert parse_assignment("detector.cramp_min_s=8,10.5") == ("detector.cramp_min_s", (8.0, 10.5))
    assert parse_assignment("filter.order=2,6") == ("filter.order", (2, 6))
    assert parse_assignment("detector.initial_floor_uv=none,3") == (
        "detector.initial_floor_uv",
        (None, 3.0),
    )
    for text, message in (
        ("filter.order=2.5", "expected a whole number"),
        ("detector.cramp_min_s=ten", "expected a number"),
        ("detector.cramp_min_s=none", "'none' is not allowed"),
        ("detector.cramp_min_s=inf", "finite"),
        ("detector.cramp_min_s", "is not KEY=VALUE"),
        ("detector.cramp_min_s=8,8", "names a value twice"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_assignment(text)


def test_an_unknown_key_suggests_the_near_ones_and_lists_them_all() -> None:
    with pytest.raises(ConfigError) as error:
        parse_assignment("detector.cramp_min=8")
    text = str(error.value)
    assert "did you mean detector.cramp_min_s" in text
    assert "settable keys: " + ", ".join(settable_keys()) in text


def test_settings_make_a_new_validated_config() -> None:
    base = PipelineConfig(fs=1000.0)
    changed = apply_settings(base, {"detector.cramp_min_s": 8.0, "filter.order": 2})
    assert (changed.detector.cramp_min_s, changed.filter.order) == (8.0, 2)
    assert base.detector.cramp_min_s == 10.0 and changed.settings_hash() != base.settings_hash()
    with pytest.raises(ConfigError, match="cramp_min_s must be > 0"):
        apply_settings(base, {"detector.cramp_min_s": 0.0})


def test_several_values_make_a_grid_in_order_and_a_key_given_twice_is_refused() -> None:
    grid = settings_grid([("a.x", (1, 2)), ("b.y", (3, 4, 5))])
    assert grid == [
        {"a.x": 1, "b.y": 3}, {"a.x": 1, "b.y": 4}, {"a.x": 1, "b.y": 5},
        {"a.x": 2, "b.y": 3}, {"a.x": 2, "b.y": 4}, {"a.x": 2, "b.y": 5},
    ]  # fmt: skip
    assert settings_grid(None) == [{}]
    with pytest.raises(ConfigError, match="given more than once"):
        settings_grid([("a.x", (1,)), ("a.x", (2,))])
    with pytest.raises(ConfigError, match="`crampwatch batch` runs a sweep"):
        single_settings([("a.x", (1, 2))])


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = scenario(3, fs=1000.0, duration_s=150.0, channels=("left",),
                    events=[("cramp", 40.0, 70.0, "left")])  # fmt: skip
    path = tmp_path_factory.mktemp("rec") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=3).render())
    return path


def kinds(path: Path) -> list[str]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [e["kind"] for e in lines if e.get("phase") == "ended"]


def test_replay_set_changes_the_detection_and_reports_the_setting(
    night: Path, tmp_path: Path
) -> None:
    common = [str(night), "--fs", "1000", "--no-progress", "--out"]
    assert main(["replay", *common, str(tmp_path / "a.jsonl")]) == 0
    assert "cramp" in kinds(tmp_path / "a.jsonl")
    assert (
        main(["replay", *common, str(tmp_path / "b.jsonl"), "--set", "detector.cramp_min_s=60"])
        == 0
    )
    assert "cramp" not in kinds(tmp_path / "b.jsonl")  # a 30 s cramp is not 60 s long
    first = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])
    assert first["pipeline"]["settings"]["detector"]["cramp_min_s"] == 60.0


def test_replay_refuses_a_sweep_and_a_wrong_key(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    args = ["replay", str(night), "--fs", "1000", "--no-progress", "--out", str(out)]
    assert main([*args, "--set", "detector.cramp_min_s=8,10"]) == 2
    assert "`crampwatch batch` runs a sweep" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--set", "detector.cramp=8"])
    assert "unknown setting 'detector.cramp'" in capsys.readouterr().err
    assert not out.exists()
