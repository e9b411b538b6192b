"""`crampwatch samples`: every format replay reads, with ground truth, ready for the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_host.cli import main
from firmware_host.commands import samples

REPLAYS = {
    "night.csv": [],
    "night.npy": ["--fs", "500", "--units", "uV"],
    "night.npz": [],
    "night.edf": [],
    "night.hea": [],
}


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples") / "samples"
    assert main(["samples", str(folder), "--fs", "500"]) == 0
    return folder


def test_samples_are_written_whole_with_their_truth(sample_dir: Path) -> None:
    names = sorted(p.name for p in sample_dir.iterdir())
    assert names == sorted([*REPLAYS, "night.dat", "truth.csv", "dailysummary.csv"])
    truth = (sample_dir / "truth.csv").read_text().splitlines()
    assert "cramp,150.0,240.0,left_calf" in truth


@pytest.mark.parametrize("name", list(REPLAYS))
def test_every_sample_format_replays_to_the_one_cramp_of_the_truth(
    sample_dir: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(sample_dir / name), *REPLAYS[name], "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    cramps = [e for e in lines if e.get("kind") == "cramp" and e.get("phase") == "ended"]
    assert len(cramps) == 1
    assert abs(cramps[0]["start_s"] - 150.0) < 2.0 and abs(cramps[0]["end_s"] - 240.0) < 3.0
    assert cramps[0]["channel"] in ("left_calf", "calves:0", "ch0")


@pytest.mark.parametrize("truth", ["truth.csv", "night.edf"])
def test_the_samples_score_against_their_truth(
    sample_dir: Path, tmp_path: Path, truth: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    assert main(["replay", str(sample_dir / "night.edf"), "--out", str(events)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(events), str(sample_dir / truth), "--json"]) == 0
    cramps = json.loads(capsys.readouterr().out)["scores"]["cramp"]
    assert (cramps["n_truth"], cramps["tp"], cramps["fp"], cramps["f1"]) == (1, 1, 0, 1.0)


def test_the_sample_diary_imports(sample_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "dashboard.db"
    assert main(["intake", "import", str(sample_dir / "dailysummary.csv"), "--db", str(db)]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--minutes", "5"], "--minutes must be 10-120"),
        (["--fs", "999"], "--fs must be one of 500, 1000, 2000"),
    ],
)
def test_bad_sample_options_are_refused_before_writing(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "out"
    assert main(["samples", str(folder), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not folder.exists()


def test_samples_never_overwrite_a_folder_with_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["samples", str(tmp_path)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_a_failing_writer_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path, *args: object) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(samples, "_write_wfdb", broken)
    assert main(["samples", str(tmp_path / "s"), "--fs", "500"]) == 2
    left = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert not [name for name in left if name.endswith(".part") or name.startswith("night.hea")]
