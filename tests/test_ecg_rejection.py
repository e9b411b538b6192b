"""ECG on a calf channel (issue 11): heartbeats alone never make a cramp, a movement or a leg
movement; a cramp under ECG is still found at its onset; the channel carries the quality note
``ecg``; the same over any block split. Signals from the heart's physiology
(hardware.synthetic_physiology, tests/ecg_signals.py) over synthetic nights and real recordings.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsp.config import PipelineConfig, ScalingConfig, SpikeConfig
from dsp.pipeline import Pipeline
from hardware.synthetic_emg import SyntheticEMG, plan_night, scenario, with_events
from hardware.synthetic_physiology import EcgParams, ecg_r_uv_for_envelope
from tests.ecg_signals import (
    Outcome,
    render,
    run_pipeline,
    sinus_beats,
    stepped_beats,
    with_ectopics,
)
from tests.shared_data import require_emg_data_dir

QUIET_S = 60.0


def config_for(plan, **spikes: object) -> PipelineConfig:
    return PipelineConfig(
        fs=plan.fs,
        channels=plan.channels,
        scaling=ScalingConfig(units="uV", rails=plan.rails_uv),
        spikes=SpikeConfig(**spikes),
    )


def ecg_case(case: int, duration_s: float = 660.0):
    """A calf at rest with ECG from minute one on: rate, lead, strength, floor and rate of
    sampling drawn per case (ECG lifting the plain envelope to 2.5-30x the floor)."""
    rng = np.random.default_rng(1000 + case)
    fs = float(rng.choice([500.0, 860.0, 1000.0, 2000.0]))
    floor = float(rng.uniform(1.5, 5.0))
    lift = (2.5, 3.5, 5.0, 8.0, 15.0, 30.0)[case % 6]
    settings_ = {
        "hr_bpm": float(rng.uniform(40.0, 180.0)),
        "r_uv": ecg_r_uv_for_envelope(lift * floor, floor, fs),
    }
    plan = scenario(
        case,
        fs=fs,
        duration_s=duration_s,
        channels=("calf",),
        floor_uv=floor,
        events=[("ecg", QUIET_S, duration_s, "calf", settings_)],
    )
    return plan, lift


def assert_nothing_but_the_note(outcome: Outcome, plan, channel: str = "calf") -> None:
    assert not outcome.ended(channel=channel), [
        (e.kind, round(e.start_s, 1)) for e in outcome.ended()
    ]
    assert outcome.limb_movements.channels[channel].leg_movements == 0
    figures = outcome.fasciculations.channels[channel]
    beats = len(plan.heartbeats(channel))
    assert figures.heartbeats >= 0.99 * beats - 2
    assert figures.fasciculations <= 0.01 * beats + 2
    notes = outcome.notes(channel)
    assert notes and notes[0][1] == ("ecg",)
    assert QUIET_S < notes[0][0] < QUIET_S + 15.0  # within a few beats of the ECG's start


@pytest.mark.parametrize("case", range(12))
def test_ecg_alone_never_makes_a_cramp_or_a_movement(case: int) -> None:
    plan, _ = ecg_case(case)
    x = SyntheticEMG(plan, seed=case).render()
    assert_nothing_but_the_note(run_pipeline(config_for(plan), x), plan)


def issue_case(seed: int, lift: float) -> tuple:
    """Issue 11's calf: a 4.5 uV floor, then 20 minutes of ECG at 70-90 bpm whose QRS lift the
    envelope to `lift` x the floor (3.5: just over the on threshold)."""
    fs = 1000.0
    rng = np.random.default_rng(seed)
    ecg = {"hr_bpm": float(rng.uniform(70, 90)), "r_uv": ecg_r_uv_for_envelope(lift * 4.5, 4.5, fs)}
    plan = scenario(
        seed,
        fs=fs,
        duration_s=1260.0,
        channels=("calf",),
        floor_uv=4.5,
        floor_variation=0.0,
        events=[("ecg", QUIET_S, 1260.0, "calf", ecg)],
    )
    return plan, SyntheticEMG(plan, seed=seed).render()


@pytest.mark.slow
@pytest.mark.parametrize("lift", [3.5, 5.0, 8.0])
@pytest.mark.parametrize("seed", range(2))
def test_the_issue_s_ecg_was_a_cramp_or_movements_and_is_nothing_now(
    seed: int, lift: float
) -> None:
    plan, x = issue_case(seed, lift)
    before = run_pipeline(config_for(plan, enabled=False), x)
    assert before.ended(channel="calf")  # with spike rejection off: what issue 11 reported
    assert_nothing_but_the_note(run_pipeline(config_for(plan), x), plan)


def test_ecg_from_the_first_sample_does_not_raise_the_floor() -> None:
    """The beats are left out of the envelope from the start, so the floor learned in the
    first seconds is the muscle's, not the heart's."""
    floor, fs = 3.0, 1000.0
    plan = scenario(
        5,
        fs=fs,
        duration_s=300.0,
        channels=("calf",),
        floor_uv=floor,
        floor_variation=0.0,
        events=[("ecg", 0.0, 300.0, "calf", {"r_uv": ecg_r_uv_for_envelope(8 * floor, floor, fs)})],
    )
    outcome = run_pipeline(config_for(plan), SyntheticEMG(plan, seed=5).render())
    assert not outcome.ended()
    assert outcome.floors_uv[0] == pytest.approx(floor, rel=0.15)


@pytest.mark.parametrize("seed", range(4))
def test_heart_rate_steps_and_ectopic_beats_make_no_event(seed: int) -> None:
    """An arousal (+25-45 % within 3 beats, back over 40 s) and ectopic beats (6 a minute,
    ventricular with a compensatory pause or atrial resetting the node)."""
    fs, floor = 1000.0, 3.0
    plan = scenario(seed, fs=fs, duration_s=600.0, channels=("calf",), floor_uv=floor, events=[])
    params = EcgParams(
        hr_bpm=(55.0, 70.0, 90.0, 120.0)[seed],
        r_uv=ecg_r_uv_for_envelope((3.5, 8.0, 5.0, 15.0)[seed] * floor, floor, fs),
        rsa_depth=0.04,
    )
    x = SyntheticEMG(plan, seed=seed).render()
    for beats in (
        stepped_beats(params, QUIET_S, 600.0, step_at_s=200.0, rise=0.25 + 0.05 * seed, seed=seed),
        with_ectopics(sinus_beats(params, QUIET_S, 600.0, seed), per_minute=6.0, seed=seed),
    ):
        with_ecg = x.copy()
        with_ecg[:, 0] += render(beats, fs, len(x))
        outcome = run_pipeline(config_for(plan), with_ecg)
        assert not outcome.ended()
        assert outcome.limb_movements.channels["calf"].leg_movements == 0
        figures = outcome.fasciculations.channels["calf"]
        assert figures.heartbeats >= 0.97 * len(beats)
        assert figures.fasciculations <= 0.02 * len(beats)


def cramp_case(seed: int) -> tuple:
    rng = np.random.default_rng(2000 + seed)
    fs = float(rng.choice([500.0, 1000.0]))
    floor = float(rng.uniform(2.0, 4.5))
    level = float(rng.choice([12.0, 25.0, 60.0, 150.0]))
    length = float(rng.uniform(15.0, 120.0))
    ecg = {
        "hr_bpm": float(rng.uniform(50.0, 120.0)),
        "r_uv": ecg_r_uv_for_envelope(float(rng.choice([3.5, 8.0, 20.0])) * floor, floor, fs),
    }
    cramp = ("cramp", 200.0, 200.0 + length, "calf", {"level_uv": level})
    common = {"fs": fs, "duration_s": 400.0, "channels": ("calf",), "floor_uv": floor}
    bare = scenario(seed, events=[cramp], **common)
    return bare, with_events(bare, seed, [("ecg", 0.0, 400.0, "calf", ecg)])


@pytest.mark.parametrize("seed", range(10))
def test_a_cramp_under_ecg_is_found_at_its_onset(seed: int) -> None:
    bare, with_ecg = cramp_case(seed)
    without = run_pipeline(config_for(bare), SyntheticEMG(bare, seed=seed).render())
    under = run_pipeline(config_for(with_ecg), SyntheticEMG(with_ecg, seed=seed).render())
    [reference] = without.ended("cramp")
    [cramp] = under.ended("cramp")
    assert abs(cramp.start_s - reference.start_s) < 1.0
    assert abs(cramp.end_s - reference.end_s) < 2.0
    assert "ecg" in cramp.quality.split(",")
    assert len(under.ended("movement")) <= len(without.ended("movement"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_ecg_under_a_whole_night_changes_no_cramp(seed: int) -> None:
    """An hour with cramps, a walk, leg movements, electrode-off stretches and clipping, with
    ECG on the left calf all night: the same cramps, the same movements within one."""
    night = plan_night(100 + seed, duration_s=3600.0, fs=1000.0)
    r_uv = ecg_r_uv_for_envelope(5.0 * 3.0, 3.0, night.fs)
    ecg = with_events(night, seed, [("ecg", 0.0, 3600.0, "left_calf", {"r_uv": r_uv})])
    without = run_pipeline(config_for(night), SyntheticEMG(night, seed=seed).render())
    under = run_pipeline(config_for(ecg), SyntheticEMG(ecg, seed=seed).render())
    for channel in night.channels:
        reference = without.ended("cramp", channel)
        found = under.ended("cramp", channel)
        assert len(found) == len(reference)
        for a, b in zip(found, reference, strict=True):
            assert abs(a.start_s - b.start_s) < 1.0
        moves = len(under.ended("movement", channel)) - len(without.ended("movement", channel))
        assert abs(moves) <= 1
    assert any(problems == ("ecg",) for _, problems in under.notes("left_calf"))
    assert not [p for _, p in under.notes("right_calf") if "ecg" in p]


# ---- the real recordings --------------------------------------------------------------------


def real_rest_and_bursts() -> list[tuple[str, float, np.ndarray, float | None]]:
    """Real EMG: BioSPPy rest and voluntary bursts (1 kHz, counts of unknown scale), treadmill
    walking of the calf (1 kHz, uV), sustained isometric contractions between rests (2 kHz, uV).
    The last item is the resting floor to scale the ECG by (None: the floor the recording's own
    rest gives; the walk has no rest, so a calf's typical 4.5 uV)."""
    folder = require_emg_data_dir()
    out: list[tuple[str, float, np.ndarray, float | None]] = []
    for name in ("emg.txt", "emg_1.txt"):
        counts = np.loadtxt(folder / "biosppy" / name)
        out.append((f"biosppy/{name}", 1000.0, (counts - counts.mean())[:, None], None))
    gait = np.genfromtxt(
        folder / "musclesynergies_gait/ID0012_TW_01_raw_emg.csv", delimiter=",", names=True
    )
    out.append(("gait (GM)", 1000.0, np.tile(gait["GM"], 3)[:, None], 4.5))
    data = np.load(folder / "elderly_isometric/ID_1.npz")
    rest, contraction = data["EMG_BF"][:, 0], data["EMG_VL"][:, 0]
    joined = np.concatenate([rest, rest, contraction, rest]).astype(float)
    out.append(("isometric", 2000.0, joined[:, None], None))
    return out


@pytest.mark.data
@pytest.mark.parametrize("lift", [3.5, 8.0])
def test_ecg_under_real_recordings_adds_no_event(lift: float) -> None:
    for name, fs, x, rest_floor in real_rest_and_bursts():
        config = PipelineConfig(fs=fs, channels=("c0",), scaling=ScalingConfig(units="uV"))
        without = run_pipeline(config, x)
        floor = rest_floor or without.floors_uv[0]
        params = EcgParams(hr_bpm=72.0, r_uv=ecg_r_uv_for_envelope(lift * floor, floor, fs))
        beats = sinus_beats(params, 0.0, len(x) / fs, seed=3)
        under = run_pipeline(config, x + render(beats, fs, len(x))[:, None])
        assert len(under.ended("cramp")) == len(without.ended("cramp")), name
        for a, b in zip(under.ended("cramp"), without.ended("cramp"), strict=True):
            assert abs(a.start_s - b.start_s) < 1.0, name
        assert len(under.ended("movement")) <= len(without.ended("movement")) + 1, name
        if name == "biosppy/emg.txt":  # 100 s of rest: ECG and nothing else
            assert not under.ended() and under.fasciculations.channels["c0"].fasciculations <= 2
            assert any(p == ("ecg",) for _, p in under.notes("c0"))


# ---- streaming ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy_ecg_night() -> tuple[PipelineConfig, np.ndarray]:
    """Two calves at 500 Hz: ECG on the left all through (with a cramp under it), twitches on
    the right, a walk, a gap."""
    fs = 500.0
    plan = scenario(
        9,
        fs=fs,
        duration_s=150.0,
        channels=("left", "right"),
        floor_uv=3.0,
        events=[
            ("cramp", 60.0, 85.0, "left", {"level_uv": 30.0}),
            ("walking", 100.0, 125.0, "right"),
            ("gap", 130.0, 131.0),
        ],
    )
    r_uv = ecg_r_uv_for_envelope(8 * 3.0, 3.0, fs)
    plan = with_events(
        plan,
        9,
        [("ecg", 0.0, 150.0, "left", {"r_uv": r_uv}), ("fasciculations", 10.0, 95.0, "right")],
    )
    return config_for(plan), SyntheticEMG(plan, seed=9).render()


def pipeline_run(config: PipelineConfig, x: np.ndarray, cuts: list[int]) -> tuple:
    pipeline = Pipeline(config, source_id="split")
    outputs = [pipeline.process(part) for part in np.split(x, cuts)] + [pipeline.finish()]
    return (
        np.concatenate([o.envelope for o in outputs]),
        [e.to_dict() for o in outputs for e in o.events],
        [q for o in outputs for q in o.quality_changes],
        [s for o in outputs for s in o.state_changes],
        outputs[-1].fasciculations,
        outputs[-1].limb_movements.to_dict(),
    )


@st.composite
def splits(draw: st.DrawFn, n: int) -> list[int]:
    cuts = draw(st.lists(st.integers(0, n), max_size=40))
    if draw(st.booleans()):
        start = draw(st.integers(0, n - 40))
        cuts += list(range(start, start + 25))
    return sorted(set(cuts))


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_ecg_and_twitches_give_identical_output_for_any_split(
    data: st.DataObject, busy_ecg_night: tuple[PipelineConfig, np.ndarray]
) -> None:
    config, x = busy_ecg_night
    reference = pipeline_run(config, x, [])
    streamed = pipeline_run(config, x, data.draw(splits(len(x))))
    assert np.array_equal(streamed[0], reference[0], equal_nan=True)
    assert streamed[1:] == reference[1:]
    events = reference[1]
    assert [e["kind"] for e in events if e["channel"] == "left" and e["phase"] == "ended"] == [
        "cramp"
    ]
    assert any(q.problems == ("ecg",) for q in reference[2] if q.channel == "left")
    assert reference[4].channels["right"].fasciculations > 30


def test_spike_rejection_can_be_switched_off_and_is_in_the_settings() -> None:
    plan = scenario(1, fs=500.0, duration_s=10.0, channels=("calf",), events=[])
    on, off = config_for(plan), config_for(plan, enabled=False)
    assert on.settings()["spikes"]["enabled"] and not off.settings()["spikes"]["enabled"]
    assert on.settings_hash() != off.settings_hash()
    assert Pipeline(off).spikes is None and Pipeline(on).spikes is not None
    assert replace(on, mode="envelope").settings()["spikes"] is None
