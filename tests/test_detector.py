"""Detector semantics on hand-made signals: cramps, movements, walking, floor, quality."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from dsp.config import ConfigError, DetectorConfig, PipelineConfig, ScalingConfig
from dsp.events import EVENT_FIELDS, EVENT_SCHEMA
from dsp.pipeline import Pipeline
from tests.signals import emg_like, walking, with_bursts

FS = 500.0


def run(x: np.ndarray, config: PipelineConfig | None = None, block: int = 4096, **kw):
    config = config or PipelineConfig(fs=FS, channels=tuple(f"c{i}" for i in range(x.shape[1])))
    pipeline = Pipeline(config, source_id="test", **kw)
    events, states, quality = [], [], []
    for i in range(0, len(x), block):
        out = pipeline.process(x[i : i + block])
        events += out.events
        states += out.state_changes
        quality += out.quality_changes
    out = pipeline.finish()
    return events + out.events, states + out.state_changes, quality + out.quality_changes


def ended(events, kind=None):
    return [e for e in events if e.phase == "ended" and (kind is None or e.kind == kind)]


def test_a_sustained_contraction_is_one_cramp_started_then_ended() -> None:
    x = with_bursts(FS, 90, [(30.0, 60.0, 60.0)])
    events, states, _ = run(x)
    assert [(e.kind, e.phase) for e in events] == [("cramp", "started"), ("cramp", "ended")]
    started, end = events
    assert started.event_id == end.event_id
    assert started.end_s is None and started.duration_s >= 10.0
    assert abs(end.start_s - 30.0) < 0.3 and abs(end.end_s - 60.0) < 0.3
    assert end.peak_uv > 50 and 2.0 < end.floor_uv < 4.0
    assert 50 < end.median_freq_hz < 150
    assert [s.state for s in states] == ["movement", "cramp", "idle"]


def test_the_started_message_goes_out_at_the_cramp_duration() -> None:
    x = with_bursts(FS, 60, [(20.0, 50.0, 60.0)])
    pipeline = Pipeline(PipelineConfig(fs=FS), source_id="t")
    seen_at = None
    for i in range(0, len(x), 250):
        if any(e.phase == "started" for e in pipeline.process(x[i : i + 250]).events):
            seen_at = (i + 250) / FS
            break
    assert seen_at is not None and 30.0 <= seen_at <= 31.6


def test_a_ten_minute_cramp_is_one_event_and_the_floor_does_not_follow_it() -> None:
    rng = np.random.default_rng(5)
    n_s = 780
    amplitude = np.full(round(n_s * FS), 3.0)
    t = np.arange(len(amplitude)) / FS
    cramp = (t >= 60) & (t < 660)
    wobble = 1 + 0.3 * np.sin(2 * np.pi * 0.1 * t + rng.uniform(0, 6))
    amplitude[cramp] = 50 * wobble[cramp]
    amplitude[(t >= 700) & (t < 704)] = 40.0
    x = emg_like(len(amplitude), FS, 5) * amplitude[:, None]
    events, _, _ = run(x, block=20000)
    cramps = ended(events, "cramp")
    assert len(cramps) == 1
    assert abs(cramps[0].duration_s - 600) < 1.0
    moves = ended(events, "movement")
    assert len(moves) == 1 and abs(moves[0].start_s - 700) < 0.3
    assert moves[0].floor_uv == pytest.approx(cramps[0].floor_uv, rel=0.2)


def test_a_few_seconds_of_activity_is_a_movement_not_a_cramp() -> None:
    events, _, _ = run(with_bursts(FS, 40, [(20.0, 23.0, 40.0)]))
    assert [(e.kind, e.phase) for e in events] == [("movement", "ended")]
    assert abs(events[0].duration_s - 3.0) < 0.4


def test_a_blip_shorter_than_the_movement_minimum_is_ignored() -> None:
    events, _, _ = run(with_bursts(FS, 40, [(20.0, 20.1, 40.0)]))
    assert events == []


def test_bursts_less_than_two_seconds_apart_merge_into_one_event() -> None:
    events, _, _ = run(with_bursts(FS, 50, [(20.0, 23.0, 40.0), (24.2, 26.0, 40.0)]))
    assert len(ended(events)) == 1
    assert abs(ended(events)[0].duration_s - 6.0) < 0.5


def test_minutes_of_walking_are_never_a_cramp() -> None:
    x = walking(FS, 300, 60, 240, seed=2)
    events, _, _ = run(x)
    assert not [e for e in events if e.kind == "cramp"]
    assert ended(events, "movement")


def test_walking_straight_into_a_cramp_reports_both() -> None:
    x = walking(FS, 200, 30, 90, seed=4)
    t = np.arange(len(x)) / FS
    x[(t >= 90) & (t < 130), 0] = emg_like(int(40 * FS), FS, 9)[:, 0] * 60
    events, _, _ = run(x)
    cramps = ended(events, "cramp")
    assert len(cramps) == 1 and abs(cramps[0].start_s - 90) < 1.5
    assert any(e.kind == "movement" and e.start_s < 40 for e in ended(events))


def test_electrode_off_is_reported_as_signal_lost_without_events() -> None:
    x = with_bursts(FS, 120, [])
    t = np.arange(len(x)) / FS
    x[(t >= 40) & (t < 80), 0] = 0.0  # flat: electrode off
    events, states, quality = run(x)
    assert events == []
    lost = [s for s in states if s.state == "signal_lost"]
    assert len(lost) == 1 and 39 <= lost[0].at_s <= 41
    assert any("electrode_off" in q.problems for q in quality)
    assert states[-1].state == "idle" and 80 <= states[-1].at_s <= 83


def test_a_cramp_cut_by_signal_loss_ends_and_says_so() -> None:
    x = with_bursts(FS, 90, [(20.0, 60.0, 60.0)])
    t = np.arange(len(x)) / FS
    x[t >= 45, 0] = 0.0
    events, _, _ = run(x)
    cramp = ended(events, "cramp")[0]
    assert "signal_lost" in cramp.quality and abs(cramp.end_s - 45) < 1.1


def test_mains_dominated_signal_stops_detection() -> None:
    x = with_bursts(FS, 60, [], mains_uv=400.0)
    _, states, quality = run(x)
    assert any("mains" in q.problems for q in quality)
    assert any(s.state == "signal_lost" for s in states)


def test_missing_samples_are_gaps_not_crashes() -> None:
    x = with_bursts(FS, 60, [(30.0, 33.0, 40.0)])
    x[10000:10005, 0] = np.nan
    x[20000:20400, 0] = np.inf
    events, _, quality = run(x)
    assert any("gap" in q.problems for q in quality)
    assert len(ended(events, "movement")) == 1


def test_clipping_is_reported_but_a_clipped_cramp_is_still_a_cramp() -> None:
    x = with_bursts(FS, 60, [(20.0, 45.0, 2500.0)], floor_uv=3.0)
    counts = np.clip(np.round(x / 3.0 + 2048), 0, 4095)  # 3 uV per count, 12-bit
    config = PipelineConfig(
        fs=FS, scaling=ScalingConfig(units="counts", adc_bits=12, adc_vref_v=4096 * 3e-6)
    )
    events, _, quality = run(counts, config)
    assert any("clipping" in q.problems for q in quality)
    cramps = ended(events, "cramp")
    assert len(cramps) == 1 and "clipping" in cramps[0].quality


def test_envelope_mode_detects_a_sustained_rise_of_an_envelope_sensor() -> None:
    t = np.arange(round(90 * FS)) / FS
    env = 3 + 0.3 * np.random.default_rng(1).standard_normal(len(t))
    env[(t >= 30) & (t < 55)] += 60
    config = PipelineConfig(fs=FS, mode="envelope")
    events, _, _ = run(env[:, None], config)
    cramps = ended(events, "cramp")
    assert len(cramps) == 1 and abs(cramps[0].start_s - 30) < 0.5
    assert cramps[0].median_freq_hz is None


def test_a_configured_floor_allows_detection_from_the_first_second() -> None:
    x = with_bursts(FS, 30, [(0.0, 15.0, 60.0)])
    config = PipelineConfig(fs=FS, detector=DetectorConfig(initial_floor_uv=3.0))
    events, _, _ = run(x, config)
    assert len(ended(events, "cramp")) == 1


def test_event_payload_follows_the_schema_and_ids_are_stable() -> None:
    x = with_bursts(FS, 60, [(20.0, 40.0, 60.0)])
    start = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    first, _, _ = run(x, session_start=start)
    again, _, _ = run(x, session_start=start)
    payload = first[-1].to_dict()
    assert tuple(payload) == EVENT_FIELDS
    assert payload["schema"] == EVENT_SCHEMA
    assert payload["start"].startswith("2026-11-20T22:00:2") and payload["end"].endswith("Z")
    assert payload["pipeline"]["settings"]["detector"]["cramp_min_s"] == 10.0
    trace = payload["envelope"]
    assert trace["t0_s"] < payload["start_s"] < payload["end_s"]
    assert trace["t0_s"] + trace["dt_s"] * len(trace["uv"]) > payload["end_s"]
    assert [e.event_id for e in first] == [e.event_id for e in again]
    other = PipelineConfig(fs=FS, detector=DetectorConfig(cramp_min_s=12.0))
    changed, _, _ = run(x, other, session_start=start)
    assert changed[-1].event_id != first[-1].event_id


@pytest.mark.parametrize("fs", [500.0, 860.0, 1000.0, 2000.0])
def test_detection_works_at_the_supported_sampling_rates(fs: float) -> None:
    x = with_bursts(fs, 60, [(20.0, 40.0, 60.0)])
    events, _, _ = run(x, PipelineConfig(fs=fs), block=3000)
    cramps = ended(events, "cramp")
    assert len(cramps) == 1 and abs(cramps[0].start_s - 20) < 0.3


def test_a_rate_too_low_for_the_raw_band_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"too low.*envelope"):
        PipelineConfig(fs=40.0)
    PipelineConfig(fs=40.0, mode="envelope")


def test_blocks_with_the_wrong_channel_count_are_refused() -> None:
    pipeline = Pipeline(PipelineConfig(fs=FS, channels=("a", "b")))
    with pytest.raises(ValueError, match=r"shape \(samples, 2\)"):
        pipeline.process(np.zeros((10, 3)))


# ---- edge cases ------------------------------------------------------------------------------


def test_a_short_dropout_inside_a_cramp_neither_splits_nor_demotes_it() -> None:
    for at in (22.0, 25.0, 31.0):
        x = with_bursts(FS, 50, [(20.0, 34.0, 40.0)])
        x[round(at * FS) : round((at + 0.3) * FS), 0] = np.nan
        events, _, quality = run(x)
        assert [(e.kind, e.phase) for e in events] == [("cramp", "started"), ("cramp", "ended")]
        assert abs(events[-1].start_s - 20.0) < 0.3
        assert any("gap" in q.problems for q in quality)


def test_missing_samples_do_not_look_like_clipping_or_hum() -> None:
    x = with_bursts(FS, 40, [])
    counts = np.round(x / 3.0 + 2048)  # 3 uV per count around mid-scale
    counts[round(15 * FS) : round(15.03 * FS), 0] = np.nan
    counts[round(25 * FS) : round(25.1 * FS), 0] = np.nan
    config = PipelineConfig(
        fs=FS, scaling=ScalingConfig(units="counts", adc_bits=12, adc_vref_v=4096 * 3e-3, gain=1000)
    )
    _, states, quality = run(counts, config)
    assert all(set(q.problems) <= {"gap"} for q in quality)
    assert not [s for s in states if s.state == "signal_lost"]
    offset = with_bursts(FS, 40, []) + 1.65e6
    offset[round(15 * FS) : round(15.03 * FS), 0] = np.nan
    _, states, quality = run(offset)
    assert all(set(q.problems) <= {"gap"} for q in quality)


def test_a_cramp_that_begins_a_few_seconds_into_the_recording_is_found() -> None:
    events, _, _ = run(with_bursts(FS, 80, [(3.0, 63.0, 40.0)]))
    cramps = ended(events, "cramp")
    assert len(cramps) == 1 and abs(cramps[0].start_s - 3.0) < 0.3


def test_an_event_that_ended_before_the_recording_did_keeps_its_end() -> None:
    events, _, _ = run(with_bursts(FS, 23, [(20.0, 22.0, 40.0)]))
    assert len(events) == 1 and abs(events[0].end_s - 22.0) < 0.1
    assert events[0].quality == "good"
    events, _, _ = run(with_bursts(FS, 41, [(20.0, 40.5, 40.0)]))
    assert ended(events)[0].quality == "recording_ended"


def test_a_burst_just_under_the_cramp_duration_is_a_movement_and_times_never_run_back() -> None:
    for length in (9.6, 9.98, 10.02):
        events, states, _ = run(with_bursts(FS, 50, [(20.0, 20.0 + length, 40.0)]))
        final = ended(events)[0]
        started = [e for e in events if e.phase == "started"]
        if final.kind == "cramp":
            assert final.duration_s >= 10.0 and started[0].duration_s <= final.duration_s
        times = [s.at_s for s in states]
        assert times == sorted(times)


def test_a_short_tail_at_the_end_is_not_read_as_electrode_off() -> None:
    t = np.arange(round(35.02 * FS)) / FS
    env = 3 + 0.3 * np.random.default_rng(1).standard_normal(len(t))
    env[t >= 20] += 60
    events, states, quality = run(env[:, None], PipelineConfig(fs=FS, mode="envelope"))
    assert ended(events)[0].quality == "recording_ended"
    assert not [s for s in states if s.state == "signal_lost"] and not quality


def test_median_frequency_does_not_depend_on_where_the_recording_stops() -> None:
    values = []
    for stop in (41.0, 41.12, 41.5):
        x = with_bursts(FS, stop, [(20.0, 45.0, 40.0)])
        values.append(ended(run(x)[0])[0].median_freq_hz)
    assert max(values) - min(values) <= 4.0


def test_event_ids_differ_between_sessions_and_ignore_int_or_float_rates() -> None:
    x = with_bursts(FS, 40, [(20.0, 25.0, 40.0)])
    night1 = run(x, session_start=datetime(2026, 11, 20, 22, 0, tzinfo=UTC))[0]
    night2 = run(x, session_start=datetime(2026, 11, 21, 22, 0, tzinfo=UTC))[0]
    assert night1[0].event_id != night2[0].event_id
    assert PipelineConfig(fs=500).settings_hash() == PipelineConfig(fs=500.0).settings_hash()


def test_times_are_written_in_utc_whatever_the_session_zone() -> None:
    from datetime import timedelta, timezone

    plus_one = timezone(timedelta(hours=1))
    x = with_bursts(FS, 40, [(20.0, 25.0, 40.0)])
    events, _, _ = run(x, session_start=datetime(2026, 11, 21, 22, 30, tzinfo=plus_one))
    assert events[0].to_dict()["start"].startswith("2026-11-21T21:30:20")


def test_hours_of_raised_baseline_end_as_too_long_and_the_floor_relearns() -> None:
    fs = 250.0
    rng_x = with_bursts(fs, 2 * 3600, [(600.0, 7200.0, 20.0)], floor_uv=3.0)
    rng_x[round(5000 * fs) : round(5004 * fs)] *= 4  # a movement on the new baseline
    config = PipelineConfig(fs=fs, detector=DetectorConfig(max_event_s=1800.0))
    events, _, _ = run(rng_x, config, block=50_000)
    long_ones = [e for e in ended(events) if "too_long" in e.quality]
    assert len(long_ones) == 1 and abs(long_ones[0].duration_s - 1800) < 2
    assert any(4990 < e.start_s < 5010 for e in ended(events, "movement"))


def test_the_envelope_trace_is_on_the_same_clock_as_start_and_end() -> None:
    events, _, _ = run(with_bursts(FS, 60, [(20.0, 40.0, 60.0)]))
    payload = ended(events)[0].to_dict()
    trace = payload["envelope"]
    times = trace["t0_s"] + trace["dt_s"] * np.arange(len(trace["uv"]))
    above = times[np.asarray(trace["uv"]) > 3 * payload["floor_uv"] + 8]
    assert abs(above[0] - payload["start_s"]) <= 2 * trace["dt_s"]
    assert abs(above[-1] - payload["end_s"]) <= 0.3


@pytest.mark.parametrize(
    "changes",
    [
        {"fs": float("inf")},
        {"fs": 1000.0, "device": "my/dev#+"},
        {"fs": 1000.0, "scaling": ScalingConfig(offset_v=float("nan"))},
    ],
)
def test_impossible_settings_are_refused_with_a_message(changes: dict) -> None:
    with pytest.raises(ConfigError):
        PipelineConfig(**changes)


def test_numpy_sampling_rates_are_accepted() -> None:
    assert PipelineConfig(fs=np.int64(1000)).fs == 1000.0
