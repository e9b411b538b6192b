"""Every stage, and the whole pipeline, gives the same output over any block split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsp.config import PipelineConfig, ScalingConfig
from dsp.envelope import HopWindowStatistic, MissingSampleTracker
from dsp.filters import StreamingSOSFilter, band_pass_notch_sos, envelope_lowpass_sos
from dsp.pipeline import Pipeline
from hardware.synthetic_emg import SyntheticEMG, scenario
from tests.signals import with_bursts

FS = 500.0


def split_points(draw: st.DrawFn, n: int) -> list[int]:
    """Random cut positions, with runs of 1-sample blocks now and then."""
    cuts = draw(st.lists(st.integers(0, n), max_size=40))
    if draw(st.booleans()):
        start = draw(st.integers(0, max(0, n - 30)))
        cuts += list(range(start, min(n, start + 25)))
    return sorted(set(cuts))


@st.composite
def splits(draw: st.DrawFn, n: int) -> list[int]:
    return split_points(draw, n)


def run_split(process, data: np.ndarray, cuts: list[int]) -> list:
    return [process(part) for part in np.split(data, cuts)]


def signal_with_everything(channels: int, seed: int = 3) -> np.ndarray:
    x = with_bursts(
        FS,
        40.0,
        [(12.0, 26.0, 60.0), (30.0, 32.0, 30.0)],
        channels=channels,
        seed=seed,
        dc_uv=300.0,
        mains_uv=4.0,
    )
    x[5000:5040, 0] = np.nan  # a gap
    return x


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=splits(4000), channels=st.integers(1, 3), mode=st.sampled_from(["raw", "envelope"]))
def test_filter_output_is_identical_for_any_block_split(
    cuts: list[int], channels: int, mode: str
) -> None:
    x = signal_with_everything(channels)[:4000]
    x[:7, -1] = np.nan  # a channel that starts with missing samples
    config = PipelineConfig(fs=FS, channels=tuple(f"c{i}" for i in range(channels)), mode=mode)
    sos = band_pass_notch_sos(config) if mode == "raw" else envelope_lowpass_sos(config)
    whole = StreamingSOSFilter(sos, channels).process(x)
    streamed = StreamingSOSFilter(sos, channels)
    parts = run_split(streamed.process, x, cuts)
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.isfinite(whole).all()


@settings(max_examples=60, deadline=None)
@given(
    cuts=splits(3000),
    window=st.integers(1, 130),
    hop=st.integers(1, 40),
    seed=st.integers(0, 1000),
    fraction=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_missing_sample_marks_are_identical_for_any_block_split(
    cuts: list[int], window: int, hop: int, seed: int, fraction: float
) -> None:
    window = max(window, hop)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3000, 2))
    x[rng.random((3000, 2)) < 0.01] = np.nan  # scattered dropouts
    for start in rng.integers(0, 2900, 4):  # and a few runs
        x[start : start + rng.integers(1, 100), rng.integers(0, 2)] = np.nan

    def marks(tracker: MissingSampleTracker, part: np.ndarray) -> np.ndarray:
        before = tracker.hops_seen
        held = tracker.process(part)
        count = tracker.hops_seen - before
        return np.zeros((count, 2), dtype=bool) if held is None else held

    whole = marks(MissingSampleTracker(window, hop, 2, fraction), x)
    tracker = MissingSampleTracker(window, hop, 2, fraction)
    assert np.array_equal(np.concatenate(run_split(lambda p: marks(tracker, p), x, cuts)), whole)
    ends = (np.arange(len(whole)) + 1) * hop
    expected = [
        [np.isnan(x[max(0, e - window) : e, c]).sum() > fraction * window for c in range(2)]
        for e in ends
    ]
    assert np.array_equal(whole, np.array(expected, dtype=bool).reshape(-1, 2))


@settings(max_examples=60, deadline=None)
@given(cuts=splits(3000), window=st.integers(1, 130), hop=st.integers(1, 40), rms=st.booleans())
def test_envelope_is_identical_for_any_block_split(
    cuts: list[int], window: int, hop: int, rms: bool
) -> None:
    x = np.random.default_rng(window * 100 + hop).standard_normal((3000, 2))
    whole = HopWindowStatistic(window, hop, 2, rms=rms).process(x)
    streamed = HopWindowStatistic(window, hop, 2, rms=rms)
    assert np.array_equal(np.concatenate(run_split(streamed.process, x, cuts)), whole)
    assert len(whole) == 3000 // hop


def pipeline_run(config: PipelineConfig, x: np.ndarray, cuts: list[int]):
    pipeline = Pipeline(config, source_id="test")
    outputs = [*run_split(pipeline.process, x, cuts), pipeline.finish()]
    envelope = np.concatenate([o.envelope for o in outputs])
    events = [e.to_dict() for o in outputs for e in o.events]
    states = [s for o in outputs for s in o.state_changes]
    quality = [q for o in outputs for q in o.quality_changes]
    return envelope, events, states, quality


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), channels=st.integers(1, 2), mode=st.sampled_from(["raw", "envelope"]))
def test_pipeline_gives_identical_envelope_and_events_for_any_split(
    data: st.DataObject, channels: int, mode: str
) -> None:
    x = signal_with_everything(channels)
    if mode == "envelope":
        x = np.abs(x - 300.0)
    config = PipelineConfig(
        fs=FS,
        channels=tuple(f"c{i}" for i in range(channels)),
        mode=mode,
        scaling=ScalingConfig(units="uV"),
    )
    reference = pipeline_run(config, x, [])
    cuts = data.draw(splits(len(x)))
    streamed = pipeline_run(config, x, cuts)
    assert np.array_equal(streamed[0], reference[0], equal_nan=True)
    assert streamed[1] == reference[1]
    assert streamed[2] == reference[2]
    assert streamed[3] == reference[3]
    assert any(e["kind"] == "cramp" for e in reference[1])


def test_one_sample_blocks_give_the_same_events_as_one_call() -> None:
    x = signal_with_everything(2)[:16000]
    config = PipelineConfig(fs=FS, channels=("a", "b"))
    reference = pipeline_run(config, x, [])
    one_by_one = pipeline_run(config, x, list(range(1, len(x))))
    assert np.array_equal(one_by_one[0], reference[0], equal_nan=True)
    assert one_by_one[1] == reference[1]


@pytest.fixture(scope="module")
def busy_night() -> tuple[PipelineConfig, np.ndarray]:
    plan = scenario(
        5,
        fs=FS,
        duration_s=240.0,
        channels=("left", "right"),
        events=[
            ("cramp", 70.0, 95.0, "left"),
            ("walking", 120.0, 170.0),
            ("electrode_off", 180.0, 200.0, "right"),
            ("gap", 205.0, 206.5),
            ("movement", 215.0, 218.0),
        ],
    )
    config = PipelineConfig(
        fs=FS, channels=plan.channels, scaling=ScalingConfig(units="uV", rails=plan.rails_uv)
    )
    return config, SyntheticEMG(plan, seed=5).render()


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_synthetic_night_gives_identical_output_for_any_split(
    data: st.DataObject, busy_night: tuple[PipelineConfig, np.ndarray]
) -> None:
    config, x = busy_night
    reference = pipeline_run(config, x, [])
    cuts = data.draw(splits(len(x)))
    streamed = pipeline_run(config, x, cuts)
    assert np.array_equal(streamed[0], reference[0], equal_nan=True)
    assert streamed[1:] == reference[1:]
    kinds = {(e["kind"], e["channel"]) for e in reference[1]}
    assert ("cramp", "left") in kinds and ("movement", "right") in kinds
    assert any(s.state == "signal_lost" for s in reference[2])
