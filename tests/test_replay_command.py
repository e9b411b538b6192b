"""`crampwatch replay` end to end: outputs, stable ids, and refusals that leave no partial file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from firmware_host.cli import main
from hardware.synthetic_emg import SyntheticEMG, scenario
from tests.signals import with_bursts

FS = 1000.0


@pytest.fixture(scope="module")
def night_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = scenario(
        3,
        fs=FS,
        duration_s=240.0,
        channels=("left", "right"),
        events=[("cramp", 60.0, 100.0, "left"), ("movement", 150.0, 153.0)],
    )
    path = tmp_path_factory.mktemp("rec") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=3).render())
    return path


def replay_cli(*args: str) -> int:
    """`crampwatch replay ARGS --no-progress`; returns the exit code."""
    return main(["replay", *args, "--no-progress"])


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_replay_writes_events_quality_and_a_summary(
    night_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "events.jsonl"
    assert replay_cli(str(night_npy), "--fs", "1000", "--out", str(out)) == 0
    lines = read_lines(out)
    events = [line for line in lines if line.get("schema") == "crampwatch.event/1"]
    cramps = [e for e in events if e["kind"] == "cramp"]
    assert [(e["channel"], e["phase"]) for e in cramps] == [("ch0", "started"), ("ch0", "ended")]
    assert abs(cramps[1]["start_s"] - 60) < 1.5 and abs(cramps[1]["end_s"] - 100) < 2.5
    assert sum(e["kind"] == "movement" for e in events) == 2
    assert lines[-1]["type"] == "summary" and lines[-1]["channels"]["ch0"]["cramps"] == 1
    assert "1 cramp(s)" in capsys.readouterr().err


def test_replaying_the_same_file_again_gives_the_same_event_ids(
    night_npy: Path, tmp_path: Path
) -> None:
    ids = []
    for name in ("a.jsonl", "b.jsonl"):
        replay_cli(str(night_npy), "--fs", "1000", "--out", str(tmp_path / name))
        ids.append([e["event_id"] for e in read_lines(tmp_path / name) if "event_id" in e])
    assert ids[0] == ids[1] and len(set(ids[0])) == len(ids[0]) - 1  # started+ended share one id


def test_channel_selection_by_index(night_npy: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.jsonl"
    assert replay_cli(str(night_npy), "--fs", "1000", "--channel", "1", "--out", str(out)) == 0
    events = [e for e in read_lines(out) if "event_id" in e]
    assert {e["channel"] for e in events} == {"ch1"} and not any(
        e["kind"] == "cramp" for e in events
    )


def test_nan_runs_in_a_text_file_are_gaps_not_crashes(tmp_path: Path) -> None:
    x = with_bursts(FS, 60, [(30.0, 33.0, 40.0)])[:, 0]
    x[10000:10300] = np.nan
    path = tmp_path / "gappy.csv"
    lines = ["time,emg_uv"] + [
        f"{i / FS:.3f}," + ("" if np.isnan(v) else f"{v:.4f}") for i, v in enumerate(x)
    ]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "events.jsonl"
    assert replay_cli(str(path), "--units", "uV", "--out", str(out)) == 0
    records = read_lines(out)
    assert any(r.get("type") == "quality" and "gap" in r["problems"] for r in records)
    assert sum(r.get("kind") == "movement" for r in records) == 1


def test_envelope_mode_and_csv_output(tmp_path: Path) -> None:
    t = np.arange(int(80 * FS)) / FS
    env = 3.0 + 0.2 * np.random.default_rng(0).standard_normal(len(t))
    env[(t >= 30) & (t < 50)] += 50.0
    path = tmp_path / "env.npy"
    np.save(path, env)
    out = tmp_path / "events.csv"
    assert (
        replay_cli(
            str(path),
            "--fs",
            "1000",
            "--mode",
            "envelope",
            "--units",
            "uV",
            "--format",
            "csv",
            "--out",
            str(out),
        )
        == 0
    )
    rows = out.read_text().splitlines()
    assert rows[0].startswith("event_id,device,channel,kind,phase")
    assert sum(",cramp,ended," in row for row in rows) == 1


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda d: (d / "x.xyz").write_text("1\n2\n"), ["x.xyz"], "format"),
        (lambda d: np.save(d / "x.npy", np.zeros(5000)), ["x.npy"], "--fs"),
        (lambda d: np.save(d / "x.npy", np.zeros(5000)), ["x.npy", "--fs", "30"], "too low"),
        (lambda d: (d / "x.csv").write_text(""), ["x.csv", "--fs", "1000"], "empty"),
        (
            lambda d: np.save(d / "x.npy", np.zeros((5000, 2))),
            ["x.npy", "--fs", "1000", "--channel", "7"],
            "channel",
        ),
        (lambda d: None, ["missing.edf"], "missing.edf"),
    ],
    ids=["unknown-format", "no-rate", "rate-too-low", "empty", "no-such-channel", "missing-file"],
)
def test_bad_input_is_refused_clearly_without_output(
    setup, args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    setup(tmp_path)
    out = tmp_path / "out.jsonl"
    argv = ["replay", str(tmp_path / args[0]), *args[1:], "--no-progress", "--out", str(out)]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "error" in err and message.lower() in err.lower()
    assert not out.exists()
    assert not list(tmp_path.glob(".out.jsonl.*"))


def test_a_file_that_breaks_half_way_leaves_no_partial_output(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = [f"{v:.3f}" for v in with_bursts(FS, 30, [(10.0, 22.0, 50.0)])[:, 0]]
    rows[25000] = "garbage"
    path = tmp_path / "broken.csv"
    path.write_text("emg\n" + "\n".join(rows) + "\n")
    out = tmp_path / "events.jsonl"
    assert (
        replay_cli(
            str(path), "--fs", "1000", "--units", "uV", "--block-size", "4096", "--out", str(out)
        )
        != 0
    )
    assert "25002" in capsys.readouterr().err
    assert not out.exists()


def test_truncated_npy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "cut.npy"
    np.save(path, np.zeros((100000, 2)))
    path.write_bytes(path.read_bytes()[:-5000])
    assert replay_cli(str(path), "--fs", "1000", "--out", str(tmp_path / "o.jsonl")) != 0
    assert "truncated" in capsys.readouterr().err.lower()


def test_demo_output_scores_against_its_ground_truth(tmp_path: Path) -> None:
    events, truth = tmp_path / "night.jsonl", tmp_path / "truth.csv"
    assert (
        main(
            [
                "demo",
                "--terminal",
                "--hours",
                "0.5",
                "--seed",
                "2",
                "--out",
                str(events),
                "--truth-out",
                str(truth),
            ]
        )
        == 0
    )
    assert main(["evaluate", str(events), str(truth), "--json"]) == 0


def test_the_output_is_the_same_whatever_the_block_size(night_npy: Path, tmp_path: Path) -> None:
    outputs = []
    for block in ("997", "65536"):
        out = tmp_path / f"b{block}.jsonl"
        assert (
            replay_cli(str(night_npy), "--fs", "1000", "--block-size", block, "--out", str(out))
            == 0
        )
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]


def test_start_time_with_a_zone_is_written_as_utc(night_npy: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoned.jsonl"
    assert (
        replay_cli(
            str(night_npy),
            "--fs",
            "1000",
            "--start",
            "2026-11-21T22:30:00+01:00",
            "--out",
            str(out),
        )
        == 0
    )
    first = next(e for e in read_lines(out) if "event_id" in e)
    assert first["start"].startswith("2026-11-21T21:3") and first["start"].endswith("Z")


def test_rails_given_for_a_recording_in_microvolts_enable_the_clipping_check(
    tmp_path: Path,
) -> None:
    x = np.clip(with_bursts(FS, 40, [(15.0, 30.0, 300.0)]), -400.0, 400.0)
    path = tmp_path / "clipped.npy"
    np.save(path, x)
    out = tmp_path / "events.jsonl"
    assert (
        replay_cli(
            str(path), "--fs", "1000", "--units", "uV", "--rails", "-400", "400", "--out", str(out)
        )
        == 0
    )
    assert any("clipping" in r.get("problems", []) for r in read_lines(out))
