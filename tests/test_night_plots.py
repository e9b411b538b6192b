"""Night plots: the binned envelope (exact over any block split, bounded for any length) and
`crampwatch plot` of a recording or an events file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_host.cli import main
from hardware.synthetic_emg import SyntheticEMG, scenario
from research.api import options
from research.envelope_bins import EnvelopeBinner
from research.night import read_events_file, replay_file
from research.plots import night_figure
from tests.research_data import write_night

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3000),
    splits=st.lists(st.integers(1, 400), min_size=1, max_size=40),
    max_bins=st.sampled_from([16, 37, 100]),
    seed=st.integers(0, 1000),
)
def test_binned_envelope_is_exact_for_any_block_split(
    n: int, splits: list[int], max_bins: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    hops = rng.random((n, 2)) * 100
    hops[rng.random((n, 2)) < 0.1] = np.nan  # missing samples
    binner = EnvelopeBinner(2, 0.02, max_bins=max_bins)
    at = 0
    for size in splits * (n // sum(splits) + 1):
        if at >= n:
            break
        binner.add(at, hops[at : at + size])
        at += size
    series = binner.series()
    width = binner.bin_hops
    assert len(series.t_s) <= 2 * max_bins + 1 and len(series.t_s) == -(-n // width)
    for i in range(len(series.t_s)):
        chunk = hops[i * width : (i + 1) * width]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a bin of missing hops is NaN
            np.testing.assert_allclose(series.high[i], np.nanmax(chunk, axis=0))
            np.testing.assert_allclose(series.low[i], np.nanmin(chunk, axis=0))
            np.testing.assert_allclose(series.mean[i], np.nanmean(chunk, axis=0))
    np.testing.assert_allclose(series.t_s, np.arange(len(series.t_s)) * width * 0.02)


def test_a_night_of_any_length_keeps_a_bounded_number_of_bins() -> None:
    binner = EnvelopeBinner(1, 0.02, max_bins=512)
    block = np.ones((50 * 600, 1))  # ten minutes of hops at a time
    for k in range(6 * 24):  # a day
        binner.add(k * len(block), block)
    series = binner.series()
    assert len(series.t_s) <= 1024 and binner.hops_seen == 6 * 24 * len(block)
    assert series.t_s[-1] + series.bin_s >= 24 * 3600 - series.bin_s


def test_plot_of_a_recording_shows_clock_time_counts_and_signal_lost(tmp_path: Path) -> None:
    plan = scenario(9, fs=1000.0, duration_s=400.0, channels=("left", "right"), events=[
        ("cramp", 60.0, 120.0, "left"), ("movement", 200.0, 203.0), ("electrode_off", 280.0, 330.0, "right"),
    ])  # fmt: skip
    path = tmp_path / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=9).render())
    (tmp_path / "night.crampwatch.toml").write_text(
        'fs = 1000\nunits = "uV"\nnames = ["left", "right"]\nstart = "2026-03-02T23:10:00Z"\n'
    )
    out = tmp_path / "night.png"
    assert main(["plot", str(path), "--out", str(out), "--tz", "UTC", "--no-progress"]) == 0
    assert out.read_bytes().startswith(PNG)

    night, _ = replay_file(path, options())
    assert night.signal_lost["right"] and not night.signal_lost["left"]
    figure = night_figure(night, tz=None)
    title = figure._suptitle.get_text()
    assert title.startswith("night.npy: ") and "1 cramp (59 s)" in title
    left, right = figure.axes[:2]
    assert (
        "left: 1 cramp" in left.texts[0].get_text() and "signal lost" in right.texts[0].get_text()
    )
    assert any(p.get_hatch() == "///" for p in right.patches)  # the electrode-off stretch
    labels = [t.get_text() for t in right.get_xticklabels()]
    assert any(":" in label for label in labels)
    assert right.get_xlabel().startswith("clock time")


def test_plot_of_an_events_file_shows_the_envelope_around_each_event(tmp_path: Path) -> None:
    path = write_night(tmp_path, "n", 2, sidecar=False, truth=False)
    events = tmp_path / "events.jsonl"
    replay = ["replay", str(path), "--fs", "1000", "--no-progress", "--out", str(events)]
    assert main(replay) == 0
    for fmt in ("svg", "pdf"):
        out = tmp_path / f"n.{fmt}"
        assert main(["plot", str(events), "--out", str(out)]) == 0
        assert out.stat().st_size > 1000
    night = read_events_file(events)
    figure = night_figure(night)
    assert "envelope around events only" in figure._suptitle.get_text()
    assert figure.axes[-1].get_xlabel() == "time from the start of the recording (s)"


def test_plot_refuses_an_unknown_format_and_an_unfinished_events_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_night(tmp_path, "n", 2)
    assert main(["plot", str(path), "--out", str(tmp_path / "n.jpg")]) == 2
    assert "unknown plot format .jpg" in capsys.readouterr().err
    events = tmp_path / "cut.jsonl"
    events.write_text('{"type": "quality", "channel": "ch0", "at_s": 1.0, "problems": []}\n')
    assert main(["plot", str(events), "--out", str(tmp_path / "x.png")]) == 2
    assert "has no summary line" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*partial"))
