"""`import crampwatch`: the README's example runs, and the API gives what the command line gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import crampwatch
from firmware_host.cli import main
from research.tables import POOLED_COLUMNS
from tests.research_data import write_night

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    text = README.read_text()
    section = text[text.index("### Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "precision 1.00, recall 1.00, F1 1.00" in out
    assert (tmp_path / "night.png").read_bytes().startswith(b"\x89PNG")
    pooled = (tmp_path / "results" / "pooled.csv").read_text().splitlines()
    assert pooled[0].split(",")[: len(POOLED_COLUMNS) - 1][:3] == [
        "rank",
        "combination",
        "settings",
    ]
    assert pooled[1].startswith("1,c1,detector.cramp_min_s=10.0,10.0,cramp,1,0,")


def test_replay_gives_the_events_and_file_the_command_line_gives(tmp_path: Path) -> None:
    path = write_night(tmp_path, "n", 3, sidecar=False)
    cli_out, api_out = tmp_path / "cli.jsonl", tmp_path / "api.jsonl"
    common = ["--fs", "1000", "--notch", "60", "--set", "detector.cramp_min_s=8"]
    assert main(["replay", str(path), *common, "--no-progress", "--out", str(cli_out)]) == 0
    night = crampwatch.replay(
        path, out=api_out, fs=1000, notch=60, settings={"detector.cramp_min_s": 8}
    )
    assert api_out.read_bytes() == cli_out.read_bytes()
    ended = [json.loads(line) for line in cli_out.read_text().splitlines()]
    ended = [e for e in ended if e.get("phase") == "ended"]
    assert [e["event_id"] for e in night.events] == [e["event_id"] for e in ended]
    assert night.settings and night.settings["detector"]["cramp_min_s"] == 8.0
    with crampwatch.open_recording(path, fs=1000) as recording:
        again = crampwatch.replay(recording, notch=60, settings={"detector.cramp_min_s": 8})
    assert [e["event_id"] for e in again.events] == [e["event_id"] for e in ended]


def test_frames_hold_the_events_and_the_per_channel_figures(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    night = crampwatch.replay(write_night(tmp_path, "n", 4))  # the sidecar names the channels
    events = night.events_frame()
    assert list(events["channel"]) == [e["channel"] for e in night.events]
    assert str(events["start"].dtype).startswith("datetime64") and events["start"].dt.tz is not None
    assert events.loc[events["kind"] == "cramp", "channel"].tolist() == ["left"]
    channels = night.channels_frame()
    assert list(channels.index) == ["left", "right"]
    assert channels.loc["left", "cramps"] == 1 and channels.loc["right", "cramps"] == 0
    assert channels.loc["left", "hours"] == pytest.approx(240 / 3600)
    envelope = night.envelope_frame()
    assert envelope.columns.names == ["channel", "stat"] and envelope.index[-1] < 240
    truth = crampwatch.load_truth(tmp_path / "n.truth.csv")
    assert crampwatch.score(night, truth)["cramp"].f1 == 1.0
    back = crampwatch.read_events(write_events(tmp_path, night))
    assert [e["event_id"] for e in back.events] == [e["event_id"] for e in night.events]


def write_events(folder: Path, night: crampwatch.Night) -> Path:
    out = folder / "again.jsonl"
    crampwatch.replay(folder / "n.npy", out=out, envelope=False)
    return out


def test_options_are_the_command_lines_and_a_wrong_one_lists_them() -> None:
    args = crampwatch.options(fs=500, channels=["EMG", 1], notch=None)
    assert (args.fs, args.channels, args.notch, args.gain) == (500, ["EMG", "1"], "none", 1.0)
    with pytest.raises(
        TypeError, match=r"unknown option\(s\) \['sampling_rate'\]; the options are"
    ):
        crampwatch.options(sampling_rate=500)
    with pytest.raises(ValueError, match="one value per setting"):
        crampwatch.replay("x.npy", settings={"detector.cramp_min_s": [8, 10]})
