"""Missing samples never make or hide an event (DESIGN.md, "Missing samples and time").

The same signal is run complete and with samples missing: scattered dropouts (1, 5, 10, 30 %),
bursts of 10 ms to 2 s (5 % of the time, whole frames and single channels) and both. With samples
missing there must be no cramp or movement that the complete signal lacks, no event of the complete
signal may come out split in parts without a long loss between them, and every cramp of the complete
signal must be found again (onset within 1 s) or be overlapped by a stretch reported as signal lost.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from dsp.config import PipelineConfig, ScalingConfig
from hardware.synthetic_emg import NightPlan, SyntheticEMG, plan_night
from tests.dropouts import (
    DROPOUT_PATTERNS,
    SHORT_GAP_S,
    Run,
    compare,
    dropout_mask,
    run_pipeline,
    short_night,
    with_missing,
)
from tests.shared_data import require_emg_data_dir
from tests.signals import emg_like, with_bursts

FS = 1000.0


def night_config(plan: NightPlan) -> PipelineConfig:
    return PipelineConfig(
        fs=plan.fs, channels=plan.channels, scaling=ScalingConfig(units="uV", rails=plan.rails_uv)
    )


def assert_same_events(config: PipelineConfig, x: np.ndarray, pattern: str, seed: int) -> Run:
    complete = run_pipeline(config, x)
    gapped = run_pipeline(config, with_missing(x, dropout_mask(pattern, *x.shape, config.fs, seed)))
    result = compare(complete, gapped)
    assert not result.invented, result.describe()
    assert not result.split, result.describe()
    assert not result.missed_cramps, result.describe()
    return complete


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pattern", DROPOUT_PATTERNS)
def test_missing_samples_on_a_synthetic_night_neither_make_nor_hide_events(
    pattern: str, seed: int
) -> None:
    plan = short_night(seed)
    x = SyntheticEMG(plan, seed=seed).render()
    complete = assert_same_events(night_config(plan), x, pattern, seed)
    assert complete.ended("cramp") and complete.ended("movement")


NIGHT_SEEDS = range(100, 108)  # the README's table (`python -m tests.test_missing_samples`)
TESTED_NIGHT_SEEDS = NIGHT_SEEDS[:5]  # the suite: the short nights above add many more seeds


def forty_minute_night(seed: int) -> NightPlan:
    return plan_night(
        seed, duration_s=2400.0, fs=FS, n_cramps=2, n_walks=1, n_plm_series=1, gaps=False
    )


def envelope_sensor(x: np.ndarray, fs: float) -> np.ndarray:
    """What an envelope-output sensor (MyoWare ENV) gives for raw EMG: rectified and smoothed."""
    band = signal.butter(2, [20, 0.4 * fs], btype="bandpass", fs=fs, output="sos")
    smooth = signal.butter(2, 3.0, fs=fs, output="sos")
    return signal.sosfilt(smooth, np.abs(signal.sosfilt(band, x, axis=0)), axis=0) * 1.25


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("pattern", DROPOUT_PATTERNS)
def test_missing_samples_from_an_envelope_sensor_neither_make_nor_hide_events(
    pattern: str, seed: int
) -> None:
    plan = short_night(seed, fs=500.0)
    x = envelope_sensor(SyntheticEMG(plan, seed=seed).render(), plan.fs)
    config = PipelineConfig(fs=plan.fs, channels=plan.channels, mode="envelope")
    assert assert_same_events(config, x, pattern, seed).ended("cramp")


@pytest.mark.slow
@pytest.mark.parametrize("seed", TESTED_NIGHT_SEEDS)
def test_missing_samples_on_whole_synthetic_nights_neither_make_nor_hide_events(
    seed: int,
) -> None:
    plan = forty_minute_night(seed)
    x = SyntheticEMG(plan, seed=seed).render()
    for pattern in DROPOUT_PATTERNS:
        assert_same_events(night_config(plan), x, pattern, seed)


def test_a_short_gap_inside_a_cramp_is_noted_on_it_and_does_not_end_it() -> None:
    x = with_bursts(FS, 90, [(20.0, 60.0, 60.0)])
    for at, length in ((25.0, 0.3), (35.0, 1.0), (45.0, SHORT_GAP_S - 0.3), (31.0, 0.01)):
        gapped = x.copy()
        gapped[round(at * FS) : round((at + length) * FS)] = np.nan
        run = run_pipeline(PipelineConfig(fs=FS), gapped)
        assert [(e.kind, e.phase) for e in run.events] == [("cramp", "started"), ("cramp", "ended")]
        cramp = run.ended()[0]
        assert abs(cramp.start_s - 20.0) < 0.3 and abs(cramp.end_s - 60.0) < 0.3
        assert cramp.quality == "gap"
        assert not run.lost("ch0")


def test_a_long_loss_inside_a_cramp_ends_it_as_signal_lost_where_the_loss_began() -> None:
    x = with_bursts(FS, 120, [(20.0, 100.0, 60.0)])
    x[round(50 * FS) : round(54 * FS)] = np.nan
    run = run_pipeline(PipelineConfig(fs=FS), x)
    first, second = run.ended("cramp")
    assert abs(first.start_s - 20.0) < 0.3 and abs(first.end_s - 50.0) < 0.3
    assert "signal_lost" in first.quality
    assert abs(second.start_s - 54.0) < 0.3 and abs(second.end_s - 100.0) < 0.3
    assert "signal_lost" in second.quality  # it began while the signal was lost: onset unknown
    [(lost_from, lost_to)] = run.lost("ch0")
    assert abs(lost_from - 50.0) < 0.3 and abs(lost_to - 54.0) < 0.3


def test_with_no_event_open_a_gap_long_enough_to_hide_a_movement_is_signal_lost() -> None:
    x = with_bursts(FS, 60, [])
    x[round(20 * FS) : round(20.3 * FS)] = np.nan  # shorter than a movement: only a gap
    x[round(40 * FS) : round(41.5 * FS)] = np.nan
    run = run_pipeline(PipelineConfig(fs=FS), x)
    assert run.events == []
    [(lost_from, lost_to)] = run.lost("ch0")
    assert abs(lost_from - 40.0) < 0.3 and abs(lost_to - 41.5) < 0.3


def test_an_onset_hidden_in_a_short_gap_is_found_and_the_event_says_so() -> None:
    x = with_bursts(FS, 80, [(30.0, 60.0, 60.0)])
    x[round(29.8 * FS) : round(30.2 * FS)] = np.nan
    run = run_pipeline(PipelineConfig(fs=FS), x)
    [cramp] = run.ended("cramp")
    assert abs(cramp.start_s - 30.0) < 0.5 and cramp.quality == "gap"


def test_a_walk_with_missing_samples_is_still_not_a_cramp() -> None:
    from tests.signals import walking

    x = walking(FS, 200, 30, 170, seed=3)
    for pattern in DROPOUT_PATTERNS:
        mask = dropout_mask(pattern, *x.shape, FS, seed=11)
        run = run_pipeline(PipelineConfig(fs=FS), with_missing(x, mask))
        assert not run.ended("cramp"), pattern


def test_a_missing_sample_is_never_reported_as_measured_envelope() -> None:
    """Hops whose window is all missing are NaN in the reported envelope, and the event's trace
    has null where nothing was measured."""
    from dsp.pipeline import Pipeline

    x = with_bursts(FS, 60, [(20.0, 50.0, 60.0)])
    x[round(30 * FS) : round(31.5 * FS)] = np.nan
    pipeline = Pipeline(PipelineConfig(fs=FS))
    outputs = [pipeline.process(x), pipeline.finish()]
    envelope = np.concatenate([o.envelope for o in outputs])[:, 0]
    hop_end_s = (np.arange(len(envelope)) + 1) * 0.02
    inside = (hop_end_s > 30.3) & (hop_end_s <= 31.5)
    assert np.isnan(envelope[inside]).all()
    assert np.isfinite(envelope[(hop_end_s > 1) & (hop_end_s < 29.9)]).all()
    [cramp] = [e for o in outputs for e in o.events if e.phase == "ended"]
    trace = cramp.to_dict()["envelope"]
    assert None in trace["uv"] and all(v is None or v > 0 for v in trace["uv"])


# ---- the real recordings --------------------------------------------------------------------


def real_signals() -> list[tuple[str, float, np.ndarray]]:
    """Real EMG pieces joined into nights in miniature: a sustained 20 s contraction between
    rests (2 kHz), a minute of treadmill walking between rests, voluntary bursts (1 kHz)."""
    folder = require_emg_data_dir()
    signals = []
    for subject in ("ID_1", "ID_2"):
        data = np.load(folder / f"elderly_isometric/{subject}.npz")
        rest = data["EMG_BF"][:, 0].astype(float)
        contraction = np.concatenate([data["EMG_VL"][:, 0], data["EMG_LG"][:, 0]]).astype(float)
        signals.append((subject, 2000.0, np.concatenate([rest, rest, contraction, rest])[:, None]))
    gait = np.genfromtxt(
        folder / "musclesynergies_gait/ID0012_TW_01_raw_emg.csv", delimiter=",", names=True
    )
    rest = emg_like(30000, FS, seed=1)[:, 0] * 3.0
    walk = np.stack([np.tile(gait[m], 5) for m in ("GM", "SO")], axis=1)
    signals.append(
        (
            "gait",
            FS,
            np.concatenate([np.stack([rest, rest], axis=1), walk, np.stack([rest] * 2, 1)]),
        )
    )
    counts = np.loadtxt(folder / "biosppy/emg_1.txt")  # ADC counts of unknown scale
    signals.append(("biosppy", FS, (counts - counts.mean())[:, None]))
    return signals


@pytest.mark.data
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("pattern", DROPOUT_PATTERNS)
def test_missing_samples_in_real_recordings_neither_make_nor_hide_events(
    pattern: str, seed: int
) -> None:
    for name, fs, x in real_signals():
        config = PipelineConfig(fs=fs, channels=tuple(f"c{i}" for i in range(x.shape[1])))
        complete = assert_same_events(config, x, pattern, seed)
        if name.startswith("ID_"):
            assert len(complete.ended("cramp")) == 1


def table() -> None:
    """The figures of the README: per dropout pattern over the forty-minute nights, events the
    complete night lacks, cramps cut in parts, missed cramps, and the borderline cases."""
    totals = {p: [0] * 7 for p in DROPOUT_PATTERNS}
    for seed in NIGHT_SEEDS:
        plan = forty_minute_night(seed)
        x = SyntheticEMG(plan, seed=seed).render()
        complete = run_pipeline(night_config(plan), x)
        for pattern in DROPOUT_PATTERNS:
            mask = dropout_mask(pattern, *x.shape, FS, seed)
            gapped = run_pipeline(night_config(plan), with_missing(x, mask))
            result = compare(complete, gapped)
            row = totals[pattern]
            row[0] += len(result.invented_of("cramp")) + sum(
                e.kind == "cramp" for e in result.split
            )
            row[1] += len(result.invented_of("movement")) + sum(
                e.kind == "movement" for e in result.split
            )
            row[2] += len(result.missed_cramps)
            row[3] += len(complete.ended("cramp"))
            row[4] += len(gapped.ended("cramp"))
            row[5] += len(result.borderline_movements)
            row[6] += result.borderline_cramps
    print(
        "| dropouts | extra cramps | extra movements | missed cramps | cramps complete "
        "| cramps with dropouts | borderline movements | borderline cramps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for pattern, row in totals.items():
        print(f"| {pattern} | " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    table()
