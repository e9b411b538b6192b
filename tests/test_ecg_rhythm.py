"""The heart-rhythm tracker (dsp/ecg.py) on spike times, amplitudes and waveforms: which spikes
are heartbeats, through heart-rate changes, missed and ectopic beats, among twitches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp.ecg import HeartRhythm, RhythmRules

QRS = np.sin(np.linspace(0, 2 * np.pi, 41)) * np.exp(-(np.linspace(-2, 2, 41) ** 2))


def labelled(spikes: list[tuple[float, float, np.ndarray | None]]) -> tuple[list[bool], int]:
    """Each spike's label (heartbeat or not) and how many others were counted."""
    rhythm = HeartRhythm(max_lag=2)
    marks = []
    for t, uv, shape in spikes:
        rhythm.add(t, uv, shape)
        marks.append(rhythm._window[-1])
    _, others = rhythm.settle(math.inf)
    return [m.heartbeat for m in marks], others


def sinus(
    start_s: float, end_s: float, bpm: float, *, seed: int = 0, hrv: float = 0.02
) -> list[float]:
    rng = np.random.default_rng(seed)
    times, t = [], start_s
    while t < end_s:
        times.append(t)
        t += 60.0 / bpm * (1 + hrv * rng.standard_normal())
    return times


def beats(times: list[float], uv: float = 40.0, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    return [(t, uv * (1 + 0.05 * rng.standard_normal()), QRS) for t in times]


def twitches(start_s: float, end_s: float, seed: int, units: int = 3) -> list:
    """Motor units of their own size and shape firing at random, 0.5-2 s apart."""
    rng = np.random.default_rng(seed)
    shapes = [rng.standard_normal(41) for _ in range(units)]
    sizes = rng.uniform(20, 80, units)
    out, t = [], start_s + rng.uniform(0, 2)
    while t < end_s:
        unit = int(rng.integers(units))
        out.append((t, sizes[unit] * (1 + 0.1 * rng.standard_normal()), shapes[unit]))
        t += math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    return out


@pytest.mark.parametrize("bpm", [40.0, 60.0, 90.0, 140.0, 180.0])
def test_a_steady_rhythm_is_all_heartbeats(bpm: float) -> None:
    labels, others = labelled(beats(sinus(0.0, 120.0, bpm)))
    assert all(labels) and others == 0


def test_the_rhythm_is_known_after_a_few_beats_and_for_a_while_after_the_last() -> None:
    rhythm = HeartRhythm(max_lag=2)
    times = sinus(0.0, 30.0, 60.0, hrv=0.01)
    for i, (t, uv, shape) in enumerate(beats(times)):
        rhythm.add(t, uv, shape)
        if i == 2:
            assert not rhythm.present(t)
    assert rhythm.present(times[-1]) and rhythm.rate_bpm() == pytest.approx(60.0, rel=0.05)
    rhythm.settle(times[-1] + 9.0)
    assert rhythm.present(times[-1] + 9.0)
    rhythm.settle(times[-1] + 11.0)
    assert not rhythm.present(times[-1] + 11.0) and rhythm.rate_bpm() is None


@pytest.mark.parametrize("rise", [0.1, 0.3, 0.6])
def test_a_heart_rate_that_steps_up_and_down_stays_a_heart(rise: float) -> None:
    """An arousal: the rate rises by `rise` within 3 beats and falls back over half a minute.
    Jumps beyond the tolerance start a new train; its beats become heartbeats when it is known."""
    times, t, rr0, n = [], 0.0, 1.0, 0
    while t < 180.0:
        times.append(t)
        if t > 60.0:
            n += 1
            fade = max(0.0, 1.0 - (t - 60.0) / 30.0) if n > 3 else 1.0
            t += rr0 / (1 + rise * min(1.0, n / 3) * fade)
        else:
            t += rr0
    labels, others = labelled(beats(times))
    assert sum(labels) >= len(times) - 2 and others <= 2


def test_a_ventricular_ectopic_beat_with_its_compensatory_pause_is_a_heartbeat() -> None:
    times = sinus(0.0, 120.0, 60.0, hrv=0.01)
    spikes = beats(times)
    wide = np.repeat(QRS[::2], 2)[:41] * -1  # a QRS of its own (wide, another axis)
    for i in (30, 60, 90):  # premature at 60 % of the RR; the sinus beat it hides is lost
        t_early = times[i - 1] + 0.6 * (times[i] - times[i - 1])
        spikes[i] = (t_early, 70.0, wide)
    labels, others = labelled(spikes)
    assert all(labels) and others == 0


def test_an_atrial_ectopic_beat_that_resets_the_rhythm_is_a_heartbeat() -> None:
    rr, t, times = 0.8, 0.0, []
    while t < 100.0:
        times.append(t)
        step = rr
        if len(times) in (40, 80):  # early by 25 %, and the node starts again from it
            step = 0.75 * rr
        t += step
    labels, others = labelled(beats(times))
    assert all(labels) and others == 0


def test_missed_beats_are_bridged() -> None:
    times = sinus(0.0, 100.0, 75.0, hrv=0.01)
    kept = [t for i, t in enumerate(times) if i < 20 or i % 7]  # every 7th hidden in a movement
    labels, others = labelled(beats(kept))
    assert all(labels) and others == 0


def test_twitches_are_never_a_heart() -> None:
    for seed in range(20):
        labels, others = labelled(twitches(0.0, 600.0, seed))
        assert not any(labels) and others == len(labels)


def test_one_motor_unit_twitching_at_random_is_not_a_heart() -> None:
    """The same shape every time: eight of its twitches may fall in line like a slow heart now
    and then, but a heart leaves no like spike between its beats, and the unit leaves many."""
    for seed in range(10):
        labels, _ = labelled(twitches(0.0, 600.0, 100 + seed, units=1))
        assert not any(labels)


def test_heartbeats_among_twitches_are_told_apart() -> None:
    heart = beats(sinus(0.0, 300.0, 70.0, seed=3))
    spikes = sorted(heart + twitches(0.0, 300.0, seed=4), key=lambda s: s[0])
    labels, others = labelled(spikes)
    is_beat = [s[2] is QRS for s in spikes]
    found = sum(lab and b for lab, b in zip(labels, is_beat, strict=True))
    wrong = sum(lab and not b for lab, b in zip(labels, is_beat, strict=True))
    assert found >= 0.97 * sum(is_beat) and wrong <= 2
    assert others == sum(1 for lab in labels if not lab)


def test_spikes_that_do_not_count_are_labelled_but_not_counted() -> None:
    rhythm = HeartRhythm()
    for t in (1.0, 2.7, 5.9):
        rhythm.add(t, 30.0, counts=False)
    assert rhythm.settle(math.inf) == (0, 0)


def test_labels_become_final_after_the_settling_time() -> None:
    rhythm = HeartRhythm(max_lag=2)
    for t, uv, shape in beats(sinus(0.0, 40.0, 60.0)):
        rhythm.add(t, uv, shape)
    early = rhythm.settle(20.0)
    assert early[0] > 0 and early[1] == 0
    late = rhythm.settle(math.inf)
    assert early[0] + late[0] == len(sinus(0.0, 40.0, 60.0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min_bpm": 200.0}, "min_bpm < max_bpm"),
        ({"tolerance": 0.6}, "tolerance"),
        ({"confirm_beats": 2}, "confirm_beats"),
        ({"settle_s": 5.0}, "settle_s"),
    ],
)
def test_rules_that_cannot_work_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RhythmRules(**change)
