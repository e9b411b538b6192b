"""Tests for the synthetic surface-EMG generator (hardware/synthetic_emg.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from dsp.annotations import Annotation
from hardware.synthetic_emg import (
    NightPlan,
    SyntheticEMG,
    default_channel_names,
    plan_night,
    scenario,
)

EPS = 1e-6


# ------------------------------------------------------------------------------------------------
# helpers


def band(x: np.ndarray, fs: float, notch_hz: float | None = 50.0) -> np.ndarray:
    """The pipeline's default band-pass (and mains notches), zero-phase, along axis 0."""
    hi = min(450.0, 0.45 * fs)
    sos = signal.butter(4, [20.0, hi], btype="bandpass", fs=fs, output="sos")
    y = signal.sosfiltfilt(sos, x, axis=0)
    if notch_hz:
        for h in (1, 3, 5):
            if h * notch_hz < 0.45 * fs:
                b, a = signal.iirnotch(h * notch_hz, 30.0, fs)
                y = signal.filtfilt(b, a, y, axis=0)
    return y


def rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x), axis=0))


def idx(t: float, fs: float) -> int:
    return math.ceil(t * fs - 1e-9)


def envelope(y: np.ndarray, fs: float, win_s: float = 0.25) -> np.ndarray:
    """Moving RMS over win_s (centred), along axis 0."""
    n = round(win_s * fs)
    k = np.ones(n) / n
    p = np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, np.square(y))
    return np.sqrt(p)


SMALL = scenario(
    4,
    fs=500.0,
    duration_s=60.0,
    events=[
        ("cramp", 25.0, 40.0, "ch0"),
        ("movement", 5.0, 7.5),
        ("gap", 12.0, 12.3),
        ("electrode_off", 45.0, 52.0, "ch1", {"mode": "hum"}),
        ("clipping", 53.0, 56.0, "ch0"),
    ],
    motion_artifacts=[(8.0, 0.2, 150.0)],
)


_SMALL_CACHE: dict[str, np.ndarray] = {}


def _render_small() -> np.ndarray:
    """SMALL rendered once with noise seed 3 (the reference for the streaming tests)."""
    if "x" not in _SMALL_CACHE:
        _SMALL_CACHE["x"] = SyntheticEMG(SMALL, 3).render()
    return _SMALL_CACHE["x"]


# ------------------------------------------------------------------------------------------------
# determinism and streaming


def test_same_seed_same_output_and_different_seed_differs() -> None:
    a = SyntheticEMG(plan_night(5, duration_s=200.0, fs=500.0), 1).render()
    b = SyntheticEMG(plan_night(5, duration_s=200.0, fs=500.0), 1).render()
    assert np.array_equal(a, b, equal_nan=True)
    c = SyntheticEMG(plan_night(5, duration_s=200.0, fs=500.0), 2).render()  # other noise
    assert not np.allclose(a, c, equal_nan=True)
    assert plan_night(5, duration_s=3600.0) == plan_night(5, duration_s=3600.0)
    assert plan_night(5, duration_s=3600.0) != plan_night(6, duration_s=3600.0)


def test_output_shape_dtype_and_channel_names() -> None:
    x = SyntheticEMG(SMALL, 0).render()
    assert x.shape == (30000, 2)
    assert x.dtype == np.float64
    assert SMALL.channels == ("ch0", "ch1") == default_channel_names(2)
    p = plan_night(1, duration_s=120.0, channels=("medial", "lateral", "right"))
    assert SyntheticEMG(p, 0).render().shape == (120000, 3)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=12000), min_size=1, max_size=6))
def test_random_splits_concatenate_to_render(sizes: list[int]) -> None:
    gen = SyntheticEMG(SMALL, 3)
    whole = _render_small()
    n = SMALL.n_samples
    cuts = sorted({min(c, n) for c in np.cumsum(sizes)} | {0, n})
    parts = [gen.render_range(a, b) for a, b in itertools.pairwise(cuts)]
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=40000))
def test_blocks_of_any_size_concatenate_to_render(block_size: int) -> None:
    blocks = list(SyntheticEMG(SMALL, 3).blocks(block_size))
    assert all(b.shape[0] == block_size for b in blocks[:-1])
    assert 0 < blocks[-1].shape[0] <= block_size
    assert np.array_equal(np.concatenate(blocks), _render_small(), equal_nan=True)


def test_bad_arguments_are_rejected() -> None:
    gen = SyntheticEMG(SMALL, 0)
    with pytest.raises(ValueError):
        gen.render_range(10, 5)
    with pytest.raises(ValueError):
        gen.render_range(0, SMALL.n_samples + 1)
    with pytest.raises(ValueError):
        next(gen.blocks(0))
    with pytest.raises(ValueError):
        scenario(0, fs=1000.0, duration_s=10.0, events=[("nap", 1.0, 2.0)])
    with pytest.raises(ValueError):
        scenario(0, fs=1000.0, duration_s=10.0, events=[("cramp", 5.0, 12.0)])
    with pytest.raises(ValueError):
        scenario(0, fs=1000.0, duration_s=10.0, events=[("movement", 1.0, 2.0, "left")])
    with pytest.raises(ValueError):
        plan_night(0, fs=50.0)
    with pytest.raises(ValueError):
        plan_night(0, duration_s=600.0, n_cramps=5)  # cannot fit
    assert gen.render_range(7, 7).shape == (0, 2)


# ------------------------------------------------------------------------------------------------
# ground truth


def _top_level_footprints(plan: NightPlan) -> list[tuple[float, float]]:
    """(start, end) of each top-level event (all its segments, on all channels)."""
    groups: dict[int, tuple[float, float]] = {}
    for s in plan.segments:
        a, b = groups.get(s.event, (math.inf, -math.inf))
        groups[s.event] = (min(a, s.start_s), max(b, s.end_s))
    return sorted(groups.values())


@pytest.mark.parametrize("seed", range(40))
def test_plan_night_ground_truth_is_consistent(seed: int) -> None:
    plan = plan_night(seed, clipping=seed % 2 == 0, gaps=seed % 3 == 0)
    anns = plan.annotations
    assert list(anns) == sorted(anns, key=lambda a: (a.start_s, a.end_s, a.kind, a.channel or ""))
    for a in anns:
        assert isinstance(a, Annotation)
        assert 60.0 <= a.start_s < a.end_s <= plan.duration_s
        assert a.channel is None or a.channel in plan.channels
    for ch in plan.channels:
        mine = [a for a in anns if a.channel in (ch, None)]
        for a, b in itertools.pairwise(mine):
            assert b.start_s >= a.end_s - EPS, (a, b)
    foot = _top_level_footprints(plan)
    for (_, e1), (s2, _) in itertools.pairwise(foot):
        assert s2 - e1 >= 30.0 - EPS
    assert all(art.start_s >= 60.0 for art in plan.artifacts)

    prodromes = {(p.channel, p.end_s): p for p in plan.segments_of("prodrome")}
    for c in plan.segments_of("cramp"):
        assert 10.0 - EPS <= c.end_s - c.start_s <= 600.0 + EPS
        p = prodromes[(c.channel, c.start_s)]
        assert 10.0 - EPS <= p.end_s - p.start_s <= 40.0 + EPS
        assert 0.5 - EPS <= c.param("rise_s") <= 2.0 + EPS
        assert 1.0 - EPS <= c.param("decay_s") <= 3.0 + EPS
        assert 25.0 <= c.level_uv <= 200.0
    for t in plan.segments_of("turnover"):
        assert 1.0 - EPS <= t.end_s - t.start_s <= 5.0 + EPS
        assert 10.0 <= t.level_uv <= 60.0
    for w in plan.segments_of("walking"):
        assert 60.0 - EPS <= w.end_s - w.start_s <= 300.0 + EPS
        assert 1.0 <= w.param("period_s") <= 1.2
    for s in plan.segments_of("flat") + plan.segments_of("railed") + plan.segments_of("hum"):
        assert 30.0 - EPS <= s.end_s - s.start_s <= 600.0 + EPS


def test_plm_series_timing() -> None:
    durations, intervals, lengths = [], [], []
    for seed in range(30):
        plan = plan_night(seed, duration_s=4 * 3600, n_plm_series=1, n_cramps=0, n_walks=0)
        series: dict[tuple[float, int | None], list[float]] = {}
        for s in plan.segments_of("plm"):
            durations.append(s.end_s - s.start_s)
            assert 8.0 <= s.level_uv <= 40.0
            series.setdefault((s.param("series"), s.channel), []).append(s.start_s)
        for onsets in series.values():
            lengths.append(len(onsets))
            intervals.extend(np.diff(onsets))
    d, iv = np.array(durations), np.array(intervals)
    assert d.min() >= 0.5 - EPS and d.max() <= 10.0 + EPS
    assert 2.0 <= d.mean() <= 4.0  # mean about 3 s
    assert np.mean((d >= 1.0) & (d <= 5.0)) > 0.7  # most 1-5 s
    assert iv.min() >= 5.0 - EPS and iv.max() <= 90.0 + EPS
    assert 20.0 <= np.median(iv) <= 40.0
    assert min(lengths) >= 5 and max(lengths) <= 40


def test_cramp_durations_span_short_and_long() -> None:
    durs = np.array(
        [
            c.end_s - c.start_s
            for seed in range(60)
            for c in plan_night(seed, n_cramps=3).segments_of("cramp")
        ]
    )
    assert durs.min() >= 10.0 - EPS and durs.max() <= 600.0 + EPS
    assert np.mean(durs < 20.0) > 0.08
    assert np.mean(durs > 300.0) > 0.08


def test_explicit_counts_are_honoured_and_start_is_quiet() -> None:
    plan = plan_night(9, n_cramps=3, n_turnovers=10, n_plm_series=2, n_walks=1, electrode_off=False)
    assert len({c.event for c in plan.segments_of("cramp")}) == 3
    assert len({t.event for t in plan.segments_of("turnover")}) == 10
    assert len({s.event for s in plan.segments_of("plm")}) == 2
    assert len({w.event for w in plan.segments_of("walking")}) == 1
    assert not plan.segments_of("flat") + plan.segments_of("railed") + plan.segments_of("hum")
    # a short recording has room for nothing: everything random is dropped, the first 60 s quiet
    assert plan_night(3, duration_s=60.0, clipping=True, gaps=True).annotations == ()


def test_random_counts_are_realistic() -> None:
    n_cramps, n_turn = [], []
    for seed in range(40):
        plan = plan_night(seed)
        n_cramps.append(len({c.event for c in plan.segments_of("cramp")}))
        n_turn.append(len({t.event for t in plan.segments_of("turnover")}))
    assert max(n_cramps) <= 4 and 0.5 <= np.mean(n_cramps) <= 2.5
    assert 15 <= np.mean(n_turn) <= 50  # several per hour over 8 h


def test_scenario_places_events_exactly_with_prodromes() -> None:
    plan = scenario(
        2,
        fs=1000.0,
        duration_s=700.0,
        events=[("cramp", 120.0, 180.0), ("walking", 300, 480), ("movement", 600, 603, "ch0")],
    )
    kinds = [(a.kind, a.start_s, a.end_s, a.channel) for a in plan.annotations]
    assert ("cramp", 120.0, 180.0, "ch0") in kinds and ("cramp", 120.0, 180.0, "ch1") in kinds
    assert ("walking", 300.0, 480.0, "ch0") in kinds and ("walking", 300.0, 480.0, "ch1") in kinds
    assert ("movement", 600.0, 603.0, "ch0") in kinds
    assert not any(k[0] == "movement" and k[3] == "ch1" for k in kinds)
    pro = [a for a in plan.annotations if a.kind == "prodrome"]
    assert len(pro) == 2 and all(a.end_s == 120.0 and 80.0 <= a.start_s <= 110.0 for a in pro)
    # the prodrome is shortened to fit after 0 s (and after an earlier event), dropped under 1 s
    short = scenario(2, fs=1000.0, duration_s=700.0, events=[("cramp", 5.0, 30.0, "ch0")])
    assert [(a.start_s, a.end_s) for a in short.annotations if a.kind == "prodrome"] == [(0.0, 5.0)]
    after = scenario(
        2,
        fs=1000.0,
        duration_s=700.0,
        events=[("movement", 1.0, 3.0), ("cramp", 10.0, 30.0, "ch1")],
    )
    assert [(a.start_s, a.end_s) for a in after.annotations if a.kind == "prodrome"] == [
        (3.0, 10.0)
    ]
    none = scenario(2, fs=1000.0, duration_s=700.0, events=[("cramp", 0.5, 30.0)])
    assert not any(a.kind == "prodrome" for a in none.annotations)
    off = scenario(2, fs=1000.0, duration_s=700.0, events=[("cramp", 120.0, 180.0)], prodrome=False)
    assert not any(a.kind == "prodrome" for a in off.annotations)


# ------------------------------------------------------------------------------------------------
# signal properties


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rest_floor_after_band_pass(seed: int) -> None:
    plan = scenario(seed, fs=1000.0, duration_s=60.0, events=[])
    x = SyntheticEMG(plan, seed).render()
    measured = rms(band(x[1000:-1000], plan.fs))
    for c, cp in enumerate(plan.channel_params):
        assert (
            cp.floor_uv * (1 - cp.floor_depth) >= 1.5 and cp.floor_uv * (1 + cp.floor_depth) <= 4.0
        )
        target = plan.floor_uv_at(np.arange(1.0, 59.0, 0.5))[:, c].mean()
        assert 1.3 <= measured[c] <= 4.2
        assert measured[c] == pytest.approx(target, rel=0.12)


def test_floor_drifts_slowly_by_at_most_20_percent() -> None:
    plan = plan_night(3, duration_s=8 * 3600)
    f = plan.floor_uv_at(np.arange(0.0, plan.duration_s, 10.0))
    for c, cp in enumerate(plan.channel_params):
        assert np.all(f[:, c] >= 1.5 - EPS) and np.all(f[:, c] <= 4.0 + EPS)
        assert f[:, c].max() / f[:, c].min() <= 1.2 / 0.8 + EPS
        assert np.max(np.abs(np.diff(f[:, c]))) < 0.05 * cp.floor_uv  # slow: minutes, not seconds


def test_cramp_prodrome_and_plateau_levels() -> None:
    plan = scenario(
        7,
        fs=1000.0,
        duration_s=200.0,
        events=[("cramp", 100.0, 160.0, "ch0", {"level_uv": 40.0, "prodrome_s": 30.0})],
        floor_variation=0.0,
    )
    x = band(SyntheticEMG(plan, 7).render(), plan.fs)
    fs = plan.fs
    floor = rms(x[idx(5, fs) : idx(65, fs)])
    cramp = next(s for s in plan.segments_of("cramp") if s.channel == 0)
    plateau = rms(
        x[idx(100 + cramp.param("rise_s") + 0.5, fs) : idx(160 - cramp.param("decay_s"), fs)]
    )
    assert plateau[0] > 6 * floor[0]
    assert plateau[1] < 1.3 * floor[1]  # the other leg stays at rest
    # end of the prodrome: sub-threshold, about 1.3-1.8 x the floor
    late_prodrome = rms(x[idx(95, fs) : idx(100, fs)])[0] / floor[0]
    early_prodrome = rms(x[idx(70, fs) : idx(75, fs)])[0] / floor[0]
    assert 1.15 <= late_prodrome <= 2.0
    assert early_prodrome < late_prodrome
    # the envelope never drops towards the floor during the plateau, and ends near the annotation
    env = envelope(x[:, :1], fs)[:, 0]
    plateau_env = env[
        idx(100 + cramp.param("rise_s") + 0.5, fs) : idx(160 - cramp.param("decay_s"), fs)
    ]
    assert plateau_env.min() > 3 * floor[0]
    assert env[idx(161, fs)] < 2 * floor[0]
    # the true envelope of the plan matches the measured one
    true = plan.envelope_uv(np.arange(110.0, 150.0, 0.01))[:, 0]
    assert rms(x[idx(110, fs) : idx(150, fs), 0]) == pytest.approx(
        np.sqrt(np.mean(true**2)), rel=0.1
    )


def test_walking_is_rhythmic_in_antiphase_and_never_fully_relaxes() -> None:
    plan = scenario(
        5, fs=1000.0, duration_s=240.0, events=[("walking", 60.0, 200.0)], floor_variation=0.0
    )
    fs = plan.fs
    x = band(SyntheticEMG(plan, 5).render(), fs)
    floor = rms(x[idx(5, fs) : idx(55, fs)])
    env = envelope(x, fs)[idx(70, fs) : idx(190, fs) : 20]  # 50 Hz envelope
    period = next(s for s in plan.segments_of("walking")).param("period_s")
    e0 = env[:, 0] - env[:, 0].mean()
    ac = np.correlate(e0, e0, "full")[e0.size - 1 :]
    lags = np.arange(ac.size) / 50.0
    search = (lags > 0.6) & (lags < 2.0)
    lag = lags[search][np.argmax(ac[search])]
    assert 1.0 - 0.05 <= lag <= 1.2 + 0.05
    assert lag == pytest.approx(period, abs=0.08)
    for c in range(2):
        lo, hi = np.percentile(env[:, c], [5, 95])
        assert lo < 0.5 * hi  # drops low between bursts
        assert lo > 1.5 * floor[c]  # but not to the floor
        assert 30.0 <= hi <= 220.0  # bursts of 40-150 uV, smoothed by the 250 ms window
    assert np.corrcoef(env[:, 0], env[:, 1])[0, 1] < -0.3  # legs alternate


@pytest.mark.parametrize("fs", [1000.0, 2000.0])
def test_activity_spectrum(fs: float) -> None:
    plan = scenario(
        3, fs=fs, duration_s=60.0, events=[("cramp", 5.0, 58.0, None, {"level_uv": 80})]
    )
    x = SyntheticEMG(plan, 3).render()[idx(10, fs) : idx(55, fs)]
    for c in range(2):
        f, p = signal.welch(x[:, c] - x[:, c].mean(), fs, nperseg=4096)
        inband = p[(f >= 20) & (f <= 450)].sum() / p.sum()
        assert inband > 0.9
        cum = np.cumsum(p)
        median = f[np.searchsorted(cum, cum[-1] / 2)]
        assert 50.0 <= median <= 150.0
        # spectral peak of the sEMG (smoothed, mains lines left out): about 60-120 Hz
        f, p = signal.welch(x[:, c] - x[:, c].mean(), fs, nperseg=round(fs / 2))
        sel = (f >= 20) & (f <= 450) & (np.abs(f - 50.0) > 3) & (np.abs(f - 150.0) > 3)
        smooth = np.convolve(p[sel], np.ones(9) / 9, mode="same")
        assert 50.0 <= f[sel][np.argmax(smooth)] <= 130.0


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_peak(mains_hz: float) -> None:
    plan = scenario(1, fs=1000.0, duration_s=30.0, events=[], mains_hz=mains_hz, mains_uv=3.0)
    x = SyntheticEMG(plan, 1).render()
    f, p = signal.welch(x[:, 0], plan.fs, nperseg=4000)
    at = p[np.argmin(np.abs(f - mains_hz))]
    around = np.median(p[(np.abs(f - mains_hz) > 3) & (np.abs(f - mains_hz) < 20)])
    assert at > 20 * around
    assert p[np.argmin(np.abs(f - 3 * mains_hz))] > 3 * np.median(
        p[(np.abs(f - 3 * mains_hz) > 3) & (np.abs(f - 3 * mains_hz) < 20)]
    )


def test_wander_and_dc_offset() -> None:
    plan = scenario(1, fs=500.0, duration_s=120.0, events=[], dc_offset_uv=250.0, wander_uv=40.0)
    x = SyntheticEMG(plan, 1).render()
    assert np.mean(x) == pytest.approx(250.0, abs=20.0)
    slow = signal.sosfiltfilt(signal.butter(2, 1.0, fs=500.0, output="sos"), x - 250.0, axis=0)
    assert rms(slow).min() > 3.0 and np.abs(slow).max() <= 40.0 + 5.0
    y = band(x, 500.0)
    assert rms(y).max() < 4.5  # the band-pass removes wander and offset


def test_electrode_off_modes() -> None:
    rails = (-3000.0, 3000.0)
    plan = scenario(
        2,
        fs=1000.0,
        duration_s=200.0,
        rails_uv=rails,
        events=[
            ("electrode_off", 20.0, 60.0, "ch0", {"mode": "flat"}),
            ("electrode_off", 100.0, 140.0, "ch1", {"mode": "railed", "value_uv": rails[0]}),
            ("electrode_off", 150.0, 190.0, "ch0", {"mode": "hum", "hum_uv": 800.0}),
        ],
    )
    fs = plan.fs
    x = SyntheticEMG(plan, 2).render()
    flat = x[idx(20, fs) : idx(60, fs), 0]
    assert np.ptp(flat) == 0.0
    assert x[idx(20, fs) - 1, 0] != flat[0] and x[idx(60, fs), 0] != flat[0]
    assert np.all(x[idx(100, fs) : idx(140, fs), 1] == rails[0])
    hum = x[idx(150, fs) : idx(190, fs), 0]
    f, p = signal.welch(hum, fs, nperseg=2000)
    assert f[np.argmax(p)] == pytest.approx(50.0, abs=1.0)
    assert rms(band(hum[:, None], fs, notch_hz=None))[0] > 300.0
    # the other channel is unaffected
    assert np.ptp(x[idx(20, fs) : idx(60, fs), 1]) > 10.0


def test_clipping_only_where_annotated_and_nan_only_in_gaps() -> None:
    plan = plan_night(
        4, duration_s=3600.0, fs=250.0, clipping=True, gaps=True, n_cramps=1, n_walks=1
    )
    assert plan.rails_uv is not None
    lo, hi = plan.rails_uv
    x = SyntheticEMG(plan, 4).render()
    fs = plan.fs
    allowed = np.zeros(x.shape, dtype=bool)
    gaps = np.zeros(x.shape, dtype=bool)
    clipped_somewhere = False
    for s in plan.segments:
        sl = slice(idx(s.start_s, fs), idx(s.end_s, fs))
        cols = [s.channel] if s.channel is not None else list(range(x.shape[1]))
        for c in cols:
            if s.style in ("clipping", "railed"):
                allowed[sl, c] = True
            if s.style == "gap":
                gaps[sl, c] = True
            if s.style == "clipping":
                seg = x[sl, c]
                at_rail = (seg == lo) | (seg == hi)
                assert 0.02 < at_rail.mean() < 0.98
                clipped_somewhere = True
    assert clipped_somewhere
    assert plan.segments_of("gap")
    assert np.array_equal(np.isnan(x), gaps)
    finite = np.nan_to_num(x, nan=0.0)
    assert np.all(finite >= lo) and np.all(finite <= hi)
    at_rail = (finite == lo) | (finite == hi)
    assert not np.any(at_rail & ~allowed)


def test_motion_artifact_is_short_and_low_frequency() -> None:
    plan = scenario(
        1, fs=1000.0, duration_s=20.0, events=[], motion_artifacts=[(10.0, 0.2, 300.0, "ch0")]
    )
    with_art = SyntheticEMG(plan, 1).render()
    plain = SyntheticEMG(scenario(1, fs=1000.0, duration_s=20.0, events=[]), 1).render()
    d = with_art - plain
    nz = np.flatnonzero(np.abs(d[:, 0]) > 1e-9)
    assert nz[0] >= 10000 and nz[-1] < 10200
    assert np.abs(d[:, 0]).max() == pytest.approx(300.0, rel=0.05)
    assert np.all(d[:, 1] == 0.0)


@pytest.mark.parametrize("fs", [250.0, 500.0, 860.0, 1000.0, 2000.0, 4000.0])
def test_works_at_many_sampling_rates(fs: float) -> None:
    plan = scenario(
        8,
        fs=fs,
        duration_s=90.0,
        events=[("cramp", 60.0, 85.0, "ch1", {"level_uv": 50.0, "prodrome_s": 15.0})],
        floor_variation=0.0,
    )
    gen = SyntheticEMG(plan, 8)
    x = gen.render()
    assert x.shape == (plan.n_samples, 2) and plan.n_samples == round(90 * fs)
    assert np.all(np.isfinite(x))
    y = band(x, fs)
    floor = rms(y[idx(2, fs) : idx(40, fs)])
    assert np.all((floor > 1.3) & (floor < 4.2))
    for c, cp in enumerate(plan.channel_params):
        assert floor[c] == pytest.approx(cp.floor_uv, rel=0.15)
    plateau = rms(y[idx(63, fs) : idx(81, fs)])
    assert plateau[1] > 6 * floor[1]
    assert np.array_equal(np.concatenate(list(gen.blocks(4097))), x)
