"""Physiological test signals: ECG on a calf channel, fasciculations and quiet standing
(hardware/synthetic_physiology.py, rendered by hardware/synthetic_emg.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from hardware.synthetic_emg import SyntheticEMG, plan_night, scenario, with_events
from hardware.synthetic_physiology import (
    EcgParams,
    ecg_beat,
    ecg_r_uv_for_envelope,
    heartbeat_times,
    muap,
)

LEGS = ("left_calf", "right_calf")


def band(x: np.ndarray, fs: float) -> np.ndarray:
    """The pipeline's 20-450 Hz band (zero phase, so peaks stay where they are)."""
    sos = signal.butter(4, [20.0, min(450.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0)


def rms_envelope(y: np.ndarray, fs: float, window_s: float = 0.25) -> np.ndarray:
    n = round(window_s * fs)
    return np.sqrt(np.convolve(y * y, np.ones(n) / n, mode="same"))


def quiet_plan(events, *, fs: float = 1000.0, duration_s: float = 120.0, floor_uv: float = 4.5):
    """A scenario without mains, wander or artefacts, at a steady floor."""
    return scenario(
        3,
        fs=fs,
        duration_s=duration_s,
        channels=LEGS,
        events=events,
        floor_uv=floor_uv,
        floor_variation=0.0,
        mains_uv=0.0,
        wander_uv=0.0,
    )


ALL = quiet_plan(
    [
        ("ecg", 0.0, 90.0, "left_calf", {"hr_bpm": 72.0, "r_uv": 120.0}),
        ("fasciculations", 10.0, 70.0, "right_calf"),
        ("standing", 75.0, 115.0),
    ],
    fs=500.0,
)
_ALL_CACHE: dict[str, np.ndarray] = {}


def all_rendered() -> np.ndarray:
    if "x" not in _ALL_CACHE:
        _ALL_CACHE["x"] = SyntheticEMG(ALL, 4).render()
    return _ALL_CACHE["x"]


# ------------------------------------------------------------------------------------------------
# determinism and streaming


def test_same_seeds_same_samples_and_truth() -> None:
    again = quiet_plan(
        [
            ("ecg", 0.0, 90.0, "left_calf", {"hr_bpm": 72.0, "r_uv": 120.0}),
            ("fasciculations", 10.0, 70.0, "right_calf"),
            ("standing", 75.0, 115.0),
        ],
        fs=500.0,
    )
    assert again == ALL
    np.testing.assert_array_equal(SyntheticEMG(again, 4).render(), all_rendered())
    assert not np.array_equal(SyntheticEMG(ALL, 5).render(), all_rendered())
    np.testing.assert_array_equal(again.heartbeats(0), ALL.heartbeats("left_calf"))
    assert again.twitches() == ALL.twitches()


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 20000), min_size=1, max_size=6), st.integers(1, 30000))
def test_any_block_split_gives_the_same_samples(sizes: list[int], block_size: int) -> None:
    emg = SyntheticEMG(ALL, 4)
    n = emg.n_samples
    cuts = sorted({min(c, n) for c in np.cumsum(sizes)} | {0, n})
    parts = [emg.render_range(a, b) for a, b in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate(parts), all_rendered())
    blocks = np.concatenate(list(SyntheticEMG(ALL, 4).blocks(block_size)))
    np.testing.assert_array_equal(blocks, all_rendered())


def test_annotations_name_each_component() -> None:
    kinds = {(a.kind, a.channel) for a in ALL.annotations}
    assert kinds == {
        ("ecg", "left_calf"),
        ("fasciculation", "right_calf"),
        ("standing", "left_calf"),
        ("standing", "right_calf"),
    }


# ------------------------------------------------------------------------------------------------
# ECG


def test_each_true_beat_is_a_qrs_spike_in_the_emg_band() -> None:
    fs = 1000.0
    plan = quiet_plan([("ecg", 0.0, 60.0, "left_calf", {"hr_bpm": 65.0, "r_uv": 150.0})], fs=fs)
    y = band(SyntheticEMG(plan, 1).render()[:, 0], fs)
    beats = plan.heartbeats("left_calf")
    assert len(beats) == pytest.approx(65, abs=4)
    peaks, _ = signal.find_peaks(np.abs(y), height=8 * 4.5, distance=round(0.25 * fs))
    assert len(peaks) == len(beats)  # one spike per beat, none elsewhere
    assert np.max(np.abs(peaks / fs - beats)) < 0.02  # at the R peak
    # the spike is the QRS only: from 60 ms after the R peak the band is back at the rest floor
    after = [
        np.sqrt(np.mean(y[round((b + 0.06) * fs) : round((b + 0.3) * fs)] ** 2)) for b in beats
    ]
    assert np.median(after) < 1.3 * 4.5


@pytest.mark.parametrize("hr", [40.0, 70.0, 180.0])
def test_heart_rate_and_its_variability_are_physiological(hr: float) -> None:
    params = EcgParams(hr_bpm=hr, r_uv=50.0)
    times, rr = heartbeat_times(params, 0.0, 1800.0, seed=3)
    np.testing.assert_allclose(np.diff(times), rr[:-1])
    bpm = 60.0 / rr
    assert bpm.min() >= 40.0 - 1e-9 and bpm.max() <= 180.0 + 1e-9
    assert np.mean(bpm) == pytest.approx(hr, rel=0.06)
    if hr == 70.0:
        sdnn = np.std(rr) / np.mean(rr)
        assert 0.02 < sdnn < 0.12  # resting SDNN of a few per cent
        rmssd = np.sqrt(np.mean(np.diff(rr) ** 2)) / np.mean(rr)
        assert 0.005 < rmssd < 0.08


def test_respiratory_sinus_arrhythmia_shows_at_the_breathing_rate() -> None:
    params = EcgParams(hr_bpm=60.0, r_uv=50.0, resp_hz=0.25, rsa_depth=0.05, jitter=0.005)
    times, rr = heartbeat_times(params, 0.0, 600.0, seed=1)
    grid = np.arange(times[0], times[-1], 0.25)
    tachogram = np.interp(grid, times, rr)
    freqs, power = signal.welch(tachogram - tachogram.mean(), fs=4.0, nperseg=512)
    band_power = power[(freqs > 0.15) & (freqs < 0.4)]
    assert freqs[(freqs > 0.15) & (freqs < 0.4)][np.argmax(band_power)] == pytest.approx(
        0.25, abs=0.02
    )


def test_ecg_amplitude_for_an_envelope_lift_of_3_5_times_a_4_5_uv_floor() -> None:
    fs = 1000.0
    r_uv = ecg_r_uv_for_envelope(3.5 * 4.5, 4.5, fs)
    assert 50.0 < r_uv < 400.0
    plan = quiet_plan([("ecg", 0.0, 60.0, "left_calf", {"hr_bpm": 80.0, "r_uv": r_uv})], fs=fs)
    # the pipeline's band-pass is causal (one pass), like the helper's calibration
    sos = signal.butter(4, [20.0, 450.0], btype="bandpass", fs=fs, output="sos")
    env = rms_envelope(signal.sosfilt(sos, SyntheticEMG(plan, 2).render()[:, 0]), fs)
    beats = plan.heartbeats("left_calf")
    peaks = [env[round(b * fs) - 200 : round(b * fs) + 200].max() for b in beats[2:-2]]
    assert np.median(peaks) == pytest.approx(3.5 * 4.5, rel=0.1)
    stronger = ecg_r_uv_for_envelope(10 * 4.5, 4.5, fs)
    assert stronger > 2.5 * r_uv


def test_an_ecg_beat_is_a_pqrst_complex() -> None:
    params = EcgParams(hr_bpm=60.0, r_uv=100.0)
    t = np.arange(-0.4, 0.8, 0.001)
    beat = ecg_beat(t, 1.0, params)
    assert t[np.argmax(beat)] == pytest.approx(0.0, abs=0.002)  # R
    assert beat.max() == pytest.approx(100.0, rel=0.05)
    t_wave = t[(t > 0.15)][np.argmax(beat[t > 0.15])]
    assert t_wave == pytest.approx(0.28, abs=0.01)  # T, QT scales with sqrt(RR)
    assert t[(t > 0.15)][np.argmax(ecg_beat(t, 0.5, params)[t > 0.15])] < 0.22


def test_a_whole_night_with_ecg_and_cramps_underneath() -> None:
    night = plan_night(4, duration_s=3600.0, fs=250.0, n_cramps=2, electrode_off=False)
    night = with_events(night, 1, [("ecg", 0.0, night.duration_s, "left_calf", {"hr_bpm": 58.0})])
    assert sum(s.style == "cramp" for s in night.segments) >= 2
    beats = night.heartbeats("left_calf")
    assert len(beats) == pytest.approx(3480, rel=0.08)
    assert night.heartbeats("right_calf").size == 0
    emg = SyntheticEMG(night, 1)
    first, last = emg.render_range(0, 25000), emg.render_range(emg.n_samples - 25000, emg.n_samples)
    assert np.isfinite(first).all() and np.isfinite(last).all()


def test_bad_physiology_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="outside 40-180"):
        quiet_plan([("ecg", 0.0, 10.0, "left_calf", {"hr_bpm": 220.0})])
    with pytest.raises(ValueError, match="unknown ecg settings"):
        quiet_plan([("ecg", 0.0, 10.0, "left_calf", {"bpm": 60.0})])
    with pytest.raises(ValueError, match="dip below the floor"):
        quiet_plan([("standing", 0.0, 10.0, None, {"ratio": 1.2, "depth": 0.5})])
    with pytest.raises(ValueError, match="adds ecg"):
        with_events(ALL, 0, [("cramp", 0.0, 10.0)])
    with pytest.raises(ValueError, match="envelope_peak_uv"):
        ecg_r_uv_for_envelope(3.0, 4.5, 1000.0)


# ------------------------------------------------------------------------------------------------
# fasciculations


def test_twitches_are_brief_irregular_and_match_what_is_rendered() -> None:
    twitches = ALL.twitches("right_calf")
    assert twitches == ALL.twitches()
    times = np.array([tw.time_s for tw in twitches])
    gaps = np.diff(times)
    assert gaps.min() >= 0.5 - 1e-9 and gaps.max() <= 2.0 + 1e-9
    assert np.std(gaps) > 0.2  # irregular, not a rhythm
    assert len(twitches) == pytest.approx(60 / np.mean(gaps), abs=2)
    assert all(0.015 <= tw.duration_s <= 0.040 for tw in twitches)
    assert {tw.phases for tw in twitches} <= {2, 3}
    assert len({tw.unit for tw in twitches}) >= 2
    fs = ALL.fs
    y = band(all_rendered()[:, 1], fs)
    for tw in twitches:
        i0, i1 = round(tw.start_s * fs), round(tw.end_s * fs) + 1
        # the band-pass takes some of a MUAP's low frequencies: at least 60 % of its peak is left
        assert np.abs(y[i0:i1]).max() == pytest.approx(abs(tw.peak_uv), rel=0.4)
    # between twitches the channel is at its floor
    quiet = np.ones(len(y), dtype=bool)
    for tw in twitches:
        quiet[round((tw.start_s - 0.05) * fs) : round((tw.end_s + 0.05) * fs)] = False
    quiet[: round(10 * fs)] = quiet[round(70 * fs) :] = False
    assert np.sqrt(np.mean(y[quiet] ** 2)) == pytest.approx(4.5, rel=0.15)


@pytest.mark.parametrize("phases", [2, 3])
def test_muap_shapes_are_bi_and_triphasic_with_unit_peak(phases: int) -> None:
    t = np.arange(-0.03, 0.03, 1e-5)
    shape = muap(t, 0.03, phases)
    assert np.abs(shape).max() == pytest.approx(1.0, abs=1e-3)
    assert shape[np.abs(t) > 0.015].max() == 0.0
    lobes = np.abs(shape) > 0.1
    sign_changes = np.count_nonzero(np.diff(np.sign(shape[lobes])))
    assert sign_changes == phases - 1


# ------------------------------------------------------------------------------------------------
# quiet standing


def test_standing_is_tonic_at_2_to_4_times_the_floor_and_sways_slowly() -> None:
    plan = quiet_plan([("standing", 10.0, 190.0)], duration_s=200.0, fs=500.0)
    fs = plan.fs
    y = band(SyntheticEMG(plan, 6).render(), fs)
    for c, seg in enumerate(plan.segments_of("standing")):
        ratio = seg.param("ratio")
        assert 2.0 <= ratio <= 4.0
        inside = y[round(20 * fs) : round(180 * fs), c]
        level = np.sqrt(np.mean(inside**2)) / 4.5
        assert level == pytest.approx(ratio, rel=0.15)
        env = rms_envelope(inside, fs, window_s=0.5)[:: round(fs / 10)]  # 10 Hz
        assert np.percentile(env, 5) > 1.4 * 4.5  # never back at rest
        freqs, power = signal.welch(env - env.mean(), fs=10.0, nperseg=512)
        assert power[freqs < 1.0].sum() > 0.8 * power.sum()  # sway, not strides
    # the ground truth's envelope is the same stretch
    truth_env = plan.envelope_uv(np.arange(20.0, 180.0, 0.1))
    assert np.all(truth_env >= 1.0 * 4.5) and np.all(truth_env <= 6.0 * 4.5)
    # weight shifting: the legs' sway is not identical
    assert not np.allclose(
        truth_env[:, 0] / truth_env[:, 0].mean(), truth_env[:, 1] / truth_env[:, 1].mean()
    )
