"""Every stage, and the whole pipeline, gives the same output over any block split."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsp.config import PipelineConfig, ScalingConfig
from dsp.envelope import HopWindowStatistic
from dsp.filters import StreamingSOSFilter, band_pass_notch_sos, envelope_lowpass_sos
from dsp.pipeline import Pipeline
from hardware.synthetic_emg import SyntheticEMG, scenario
from tests.dropouts import burst_dropouts, scattered_dropouts, with_missing
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


def with_dropouts(x: np.ndarray, seed: int, fs: float = FS) -> np.ndarray:
    """Scattered dropouts, short runs and a gap longer than the filter's bridge, per channel."""
    rng = np.random.default_rng(seed)
    n, channels = x.shape
    mask = scattered_dropouts(n, channels, rng.choice([0.0, 0.01, 0.3]), rng)
    mask |= burst_dropouts(n, channels, fs, 0.05, rng, shortest_s=0.004, longest_s=0.5)
    long_start = int(rng.integers(0, n - round(1.5 * fs)))
    mask[long_start : long_start + round(1.2 * fs), int(rng.integers(0, channels))] = True
    return with_missing(x, mask)


def streaming_filter(mode: str, channels: int) -> StreamingSOSFilter:
    config = PipelineConfig(fs=FS, channels=tuple(f"c{i}" for i in range(channels)), mode=mode)
    sos = band_pass_notch_sos(config) if mode == "raw" else envelope_lowpass_sos(config)
    return StreamingSOSFilter(sos, channels, settle=25, bridge_max=round(FS))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=splits(4000),
    channels=st.integers(1, 3),
    mode=st.sampled_from(["raw", "envelope"]),
    seed=st.integers(0, 1000),
)
def test_filter_output_is_identical_for_any_block_split(
    cuts: list[int], channels: int, mode: str, seed: int
) -> None:
    x = with_dropouts(signal_with_everything(channels)[:4000], seed)
    x[:7, -1] = np.nan  # a channel that starts with missing samples
    whole, whole_measured = streaming_filter(mode, channels).process(x)
    streamed = streaming_filter(mode, channels)
    parts = run_split(streamed.process, x, cuts)
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole)
    measured = [np.ones(p[0].shape, bool) if p[1] is None else p[1] for p in parts]
    assert whole_measured is not None
    assert np.array_equal(np.concatenate(measured), whole_measured)
    assert np.isfinite(whole).all()
    assert not whole_measured[~np.isfinite(x)].any()  # a missing sample is never measured
    assert (whole[~whole_measured] == 0).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), length=st.integers(1, 700))
def test_after_a_gap_the_filter_output_is_measured_again_once_its_transient_is_over(
    seed: int, length: int
) -> None:
    """The transient after a gap is left out for as long as the gap lasted (at most the settle
    time), and a gap longer than the bridge restarts the filter as at the start."""
    x = signal_with_everything(1, seed=seed)[:3000]
    x[1000 : 1000 + length] = np.nan
    _, measured = streaming_filter("raw", 1).process(x)
    assert measured is not None
    resume = 1000 + length
    assert not measured[:25].any()  # the start is a restart
    assert measured[25:1000].all()
    assert not measured[1000:resume].any()
    settle = min(length, 25)
    assert not measured[resume : resume + settle].any()
    assert measured[resume + settle :].all()


def test_a_gap_crossed_by_the_filter_leaves_no_step_in_its_output() -> None:
    """Baseline wander across a two-second gap: holding the last value would make a step that
    rings through the band-pass at many times the resting EMG; the measured output after the gap
    stays at the resting level."""
    fs = 1000.0
    t = np.arange(round(20 * fs)) / fs
    rest = with_bursts(fs, 20, [], floor_uv=3.0, seed=4)[:, 0] + 200 * np.sin(2 * np.pi * 0.05 * t)
    x = rest.copy()
    x[round(8 * fs) : round(10 * fs)] = np.nan  # the baseline moves about 60 uV meanwhile
    config = PipelineConfig(fs=fs)
    for gap_is_bridged in (False, True):
        bridge = round(3 * fs) if gap_is_bridged else round(fs)
        filt = StreamingSOSFilter(band_pass_notch_sos(config), 1, settle=50, bridge_max=bridge)
        out, measured = filt.process(x[:, None])
        reference, _ = StreamingSOSFilter(band_pass_notch_sos(config), 1).process(rest[:, None])
        after = slice(round(10 * fs), round(10.5 * fs))
        assert measured is not None and measured[after].mean() > 0.85
        rms = np.sqrt(np.mean(out[after][measured[after]] ** 2))
        assert rms < 1.3 * np.sqrt(np.mean(reference[after] ** 2))


@settings(max_examples=60, deadline=None)
@given(
    cuts=splits(3000),
    window=st.integers(1, 130),
    hop=st.integers(1, 40),
    seed=st.integers(0, 1000),
    rms=st.booleans(),
    min_fraction=st.sampled_from([0.1, 0.25, 1.0]),
)
def test_the_envelope_of_the_measured_samples_is_identical_for_any_block_split(
    cuts: list[int], window: int, hop: int, seed: int, rms: bool, min_fraction: float
) -> None:
    window = max(window, hop)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3000, 2))
    measured = ~scattered_dropouts(3000, 2, 0.1, rng)
    for start in rng.integers(0, 2900, 4):  # and a few runs
        measured[start : start + rng.integers(1, 100), rng.integers(0, 2)] = False
    if seed % 3 == 0:
        measured[1500:] = True  # long stretches with everything measured
    x[~measured] = 0.0
    min_measured = max(1, round(min_fraction * window))

    def statistic() -> HopWindowStatistic:
        return HopWindowStatistic(window, hop, 2, rms=rms, min_measured=min_measured)

    whole = statistic().process(x, measured)
    streamed = statistic()
    parts = [streamed.process(x[a:b], measured[a:b]) for a, b in spans(cuts, len(x))]
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)
    for k in range(len(whole)):
        end = (k + 1) * hop
        for c in range(2):
            values = x[max(0, end - window) : end, c][measured[max(0, end - window) : end, c]]
            if len(values) < min_measured:
                assert np.isnan(whole[k, c])
            else:
                expected = np.sqrt(np.mean(values**2)) if rms else np.mean(values)
                assert whole[k, c] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def spans(cuts: list[int], n: int) -> list[tuple[int, int]]:
    bounds = [0, *cuts, n]
    return list(itertools.pairwise(bounds))


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
@given(
    data=st.data(),
    channels=st.integers(1, 2),
    mode=st.sampled_from(["raw", "envelope"]),
    dropout_seed=st.one_of(st.none(), st.integers(0, 1000)),
)
def test_pipeline_gives_identical_envelope_and_events_for_any_split(
    data: st.DataObject, channels: int, mode: str, dropout_seed: int | None
) -> None:
    x = signal_with_everything(channels)
    if mode == "envelope":
        x = np.abs(x - 300.0)
    if dropout_seed is not None:  # scattered dropouts, runs, and a long gap
        x = with_dropouts(x, dropout_seed)
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


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_recording_that_starts_inside_a_cramp_gives_identical_output_for_any_split(
    data: st.DataObject,
) -> None:
    """The start is judged again once the floor is known: the same over any split."""
    x = with_bursts(FS, 150, [(0.0, 40.0, 50.0), (100.0, 103.0, 30.0)], channels=2, seed=7)
    x[:, 1] = with_bursts(FS, 150, [(20.0, 50.0, 50.0)], seed=8)[:, 0]
    config = PipelineConfig(fs=FS, channels=("a", "b"))
    reference = pipeline_run(config, x, [])
    streamed = pipeline_run(config, x, data.draw(splits(len(x))))
    assert np.array_equal(streamed[0], reference[0], equal_nan=True)
    assert streamed[1:] == reference[1:]
    assert any("floor_revised" in e["quality"] for e in reference[1])
