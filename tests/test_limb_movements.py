"""Leg movements and PLM series by the WASM 2016 rules (dsp/limb_movements.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.config import PipelineConfig
from dsp.events import Event
from dsp.limb_movements import LimbMovementRules, LimbMovementScorer, LimbMovementSummary
from dsp.pipeline import Pipeline
from hardware.synthetic_emg import SyntheticEMG, plan_night

HOP_S = 0.02
FLOOR = 3.0
LEGS = ("left_calf", "right_calf")
# Envelope mode: the envelope window is one hop, so an envelope stretch [a, b) is an LM [a, b).
CONFIG = PipelineConfig(fs=1000.0, channels=LEGS, mode="envelope")


def hops(t_s: float) -> int:
    return round(t_s / HOP_S)


def envelope(
    duration_s: float,
    bursts: list[tuple[float, float, int]],
    *,
    level_uv: float = 20.0,
    floor_uv: float = FLOOR,
) -> np.ndarray:
    """Hop-rate envelope (hops, 2): rest at floor_uv, bursts (start_s, duration_s, channel)."""
    env = np.full((hops(duration_s), len(LEGS)), floor_uv)
    for start, dur, channel in bursts:
        env[hops(start) : hops(start + dur), channel] = floor_uv + level_uv
    return env


def score(
    env: np.ndarray,
    *,
    floor_uv: float = FLOOR,
    scored: np.ndarray | None = None,
    cramps: list[Event] = (),
    rules: LimbMovementRules | None = None,
) -> LimbMovementSummary:
    """Run the scorer over the envelope in 1 s ticks (the cramps reported at the start)."""
    scorer = LimbMovementScorer(CONFIG, rules)
    scorer.note_events(list(cramps))
    per_tick = round(1.0 / HOP_S)
    n_ticks = len(env) // per_tick
    ticks = env[: n_ticks * per_tick].reshape(n_ticks, per_tick, len(LEGS))
    ok = np.ones((n_ticks, len(LEGS)), dtype=bool) if scored is None else scored
    scorer.process(0, ticks, ok, np.full((n_ticks, len(LEGS)), floor_uv))
    scorer.finish()
    return scorer.summary()


def cramp(start_s: float, end_s: float, channel: str = "left_calf") -> Event:
    return Event(
        event_id=f"cramp-{start_s}",
        device="test",
        channel=channel,
        kind="cramp",
        phase="ended",
        start_s=start_s,
        end_s=end_s,
        duration_s=end_s - start_s,
        peak_uv=80.0,
        mean_uv=60.0,
        floor_uv=FLOOR,
        area_uvs=0.0,
        median_freq_hz=None,
        quality="good",
        envelope=None,
        pipeline={},
        session_start=datetime(2026, 1, 1, tzinfo=UTC),
    )


def series_at(onsets: list[float], dur: float = 2.0, channel: int = 0) -> list:
    return [(t, dur, channel) for t in onsets]


# ------------------------------------------------------------------------------------------------
# the rules, one by one


def test_four_movements_10_to_90_s_apart_are_a_series() -> None:
    summary = score(envelope(300, series_at([20, 30, 120, 210])))
    left = summary.channels["left_calf"]
    assert (left.leg_movements, left.candidates, left.plm, left.plm_series) == (4, 4, 4, 1)
    assert summary.combined.plm == 4
    (series,) = summary.series
    assert [m.start_s for m in series.movements] == pytest.approx([20, 30, 120, 210])
    assert series.movements[0].duration_s == pytest.approx(2.0)
    assert series.intervals_s == pytest.approx([10, 90, 90])


def test_three_movements_are_not_a_series() -> None:
    summary = score(envelope(200, series_at([20, 50, 80])))
    left = summary.channels["left_calf"]
    assert (left.candidates, left.plm, left.plm_series) == (3, 0, 0)
    assert summary.series == ()


def test_an_interval_of_95_s_ends_the_series() -> None:
    # 3 + 3 movements with 95 s between them: two runs of three, no series
    onsets = [20, 40, 60, 155, 175, 195]
    summary = score(envelope(300, series_at(onsets)))
    assert summary.combined.candidates == 6
    assert summary.combined.plm == 0


def test_an_interval_under_10_s_ends_the_series_and_may_start_the_next() -> None:
    # 20, 40, 60 | 68 (8 s after 60) starts a new run: 68, 88, 108, 128 is a series of four
    summary = score(envelope(200, series_at([20, 40, 60, 68, 88, 108, 128])))
    (series,) = summary.series
    assert [m.start_s for m in series.movements] == pytest.approx([68, 88, 108, 128])
    assert summary.combined.plm == 4


def test_a_movement_over_10_s_is_not_a_candidate_and_ends_the_series() -> None:
    bursts = [*series_at([20, 40, 60]), (80, 12.0, 0), *series_at([100, 120, 140])]
    summary = score(envelope(200, bursts))
    left = summary.channels["left_calf"]
    assert (left.leg_movements, left.candidates, left.plm) == (7, 6, 0)
    # exactly 10 s is still a candidate
    summary = score(envelope(200, [*series_at([20, 40, 60]), (80, 10.0, 0)]))
    assert summary.channels["left_calf"].plm == 4


def test_movements_under_half_a_second_are_not_movements() -> None:
    summary = score(envelope(120, series_at([20, 40, 60, 80], dur=0.4)))
    assert summary.combined.leg_movements == 0
    summary = score(envelope(120, series_at([20, 40, 60, 80], dur=0.5)))
    assert summary.combined.plm == 4


def test_onset_needs_8_uv_over_resting() -> None:
    assert score(envelope(120, series_at([20, 40, 60, 80]), level_uv=7.9)).combined.plm == 0
    assert score(envelope(120, series_at([20, 40, 60, 80]), level_uv=8.0)).combined.plm == 4


def test_an_lm_ends_only_after_half_a_second_within_2_uv_of_resting() -> None:
    # two bursts 0.4 s apart are one LM; 0.5 s apart, two
    one = score(envelope(60, [(20, 1.0, 0), (21.4, 1.0, 0)]))
    assert one.channels["left_calf"].leg_movements == 1
    two = score(envelope(60, [(20, 1.0, 0), (21.5, 1.0, 0)]))
    assert two.channels["left_calf"].leg_movements == 2
    # a dip to resting + 3 uV (not within 2 uV) does not end it either
    env = envelope(60, [(20, 3.0, 0)])
    env[hops(21) : hops(22), 0] = FLOOR + 3.0
    assert score(env).channels["left_calf"].leg_movements == 1


def test_a_spiky_stretch_fails_the_morphology_rule() -> None:
    # one hop in three at +20 uV for 5 s: never 0.5 s quiet, but no 0.5 s window with a median
    # at resting + 2 uV
    env = envelope(60, [])
    env[hops(20) : hops(25) : 3, 0] = FLOOR + 20.0
    assert score(env).channels["left_calf"].leg_movements == 0


def test_legs_that_overlap_or_are_under_half_a_second_apart_are_one_bilateral_movement() -> None:
    onsets = [20, 40, 60, 80]
    overlapping = [*series_at(onsets), *[(t + 1.0, 2.0, 1) for t in onsets]]
    summary = score(envelope(120, overlapping))
    assert summary.combined.leg_movements == 4
    assert summary.combined.plm == 4
    (series,) = summary.series
    assert all(m.channels == LEGS and m.components == 2 for m in series.movements)
    assert series.movements[0].start_s == pytest.approx(20.0)
    assert series.movements[0].end_s == pytest.approx(23.0)
    # 0.4 s after the other leg's end: combined; 0.6 s: two movements
    near = score(envelope(120, [(20, 2.0, 0), (22.4, 2.0, 1)]))
    assert near.combined.leg_movements == 1
    apart = score(envelope(120, [(20, 2.0, 0), (22.6, 2.0, 1)]))
    assert apart.combined.leg_movements == 2
    assert apart.channels["left_calf"].leg_movements == 1


def test_bilateral_movements_over_15_s_or_of_5_parts_are_not_candidates() -> None:
    # left 20-29, right 28.5-37.5: 17.5 s in all, each part under 10 s
    long_pair = [*series_at([0.0 + 60 * i for i in range(1, 4)]), (200, 9.0, 0), (208.5, 9.0, 1)]
    summary = score(envelope(300, long_pair))
    assert summary.combined.leg_movements == 4
    assert summary.combined.candidates == 3
    # five alternating parts within 12 s
    parts = [(100, 2.0, 0), (102.2, 2.0, 1), (104.4, 2.0, 0), (106.6, 2.0, 1), (108.8, 2.0, 0)]
    summary = score(envelope(150, parts))
    assert summary.combined.leg_movements == 1
    assert summary.combined.candidates == 0
    four = score(envelope(150, parts[:4]))
    assert (four.combined.leg_movements, four.combined.candidates) == (1, 1)


def test_movements_near_the_end_of_a_cramp_keep_the_series_but_are_not_counted() -> None:
    # a right-leg series 100..200; a left cramp 60-125 s; 130 is within 10.25 s of its end
    onsets = [100, 115, 130, 150, 170, 190]
    summary = score(envelope(260, series_at(onsets, channel=1)), cramps=[cramp(60.0, 125.0)])
    right = summary.channels["right_calf"]
    assert right.candidates == 6
    assert right.cramp_related == 3  # 100, 115 (during), 130 (starts 5 s after the end)
    assert right.plm == 3
    (series,) = summary.series
    assert series.cramp_related == (True, True, True, False, False, False)
    # 2 s before the cramp's onset counts as near it too; 136 s (11 s after the end) does not
    late = score(envelope(260, series_at([57, 136, 150, 170], channel=1)), cramps=[cramp(60, 125)])
    assert late.combined.cramp_related == 1
    assert late.combined.plm == 3


def test_a_cramp_reported_after_the_movement_still_marks_it() -> None:
    # The detector reports a cramp about 10 s after its onset: the scorer waits for that.
    scorer = LimbMovementScorer(CONFIG)
    env = envelope(200, series_at([20, 40, 60, 80], channel=1))
    ticks = env.reshape(200, 50, 2)
    ok, rest = np.ones((1, 2), dtype=bool), np.full((1, 2), FLOOR)
    for t in range(200):
        if t == 92:  # the cramp started at 81.5 s (1.5 s after the LM at 80 s began)
            scorer.note_events([cramp(81.5, 120.0)])
        scorer.process(t * 50, ticks[t : t + 1], ok, rest)
    scorer.finish()
    summary = scorer.summary()
    assert summary.combined.cramp_related == 1
    assert summary.combined.plm == 3


def test_lost_signal_ends_a_series_and_is_not_scored_time() -> None:
    onsets = [20, 40, 60, 80, 100, 120]
    scored = np.ones((200, 2), dtype=bool)
    scored[70:75, 0] = False  # the left electrode is off 70-75 s
    summary = score(envelope(200, series_at(onsets)), scored=scored)
    left = summary.channels["left_calf"]
    assert (left.candidates, left.plm, left.plm_series) == (6, 0, 0)
    assert left.scored_s == pytest.approx(195.0)
    assert summary.channels["right_calf"].scored_s == pytest.approx(200.0)
    # the right leg was scored all along: the combined legs were never without signal
    assert summary.combined.scored_s == pytest.approx(200.0)
    assert summary.combined.plm == 6
    # both legs lost: the combined series ends too
    scored[70:75, 1] = False
    assert score(envelope(200, series_at(onsets)), scored=scored).combined.plm == 0


def test_no_resting_level_yet_means_not_scored() -> None:
    scorer = LimbMovementScorer(CONFIG)
    env = envelope(120, series_at([20, 40, 60, 80])).reshape(120, 50, 2)
    rest = np.full((120, 2), FLOOR)
    rest[:30] = np.nan
    scorer.process(0, env, np.ones((120, 2), dtype=bool), rest)
    scorer.finish()
    summary = scorer.summary()
    assert summary.combined.leg_movements == 3
    assert summary.combined.scored_s == pytest.approx(90.0)


def test_index_is_plm_per_hour_of_scored_signal() -> None:
    onsets = [20.0 + 20 * i for i in range(10)]
    summary = score(envelope(360, series_at(onsets)))
    assert summary.combined.plm == 10
    assert summary.combined.plm_per_hour == pytest.approx(100.0)
    assert score(envelope(10, [])).combined.plm_per_hour == 0.0
    assert LimbMovementScorer(CONFIG).summary().combined.plm_per_hour is None


def test_adaptive_thresholds_follow_a_high_floor() -> None:
    # resting 20 uV with bursts to 32 uV (+12): WASM scores them, adaptive (onset 3 x 20) does not
    env = envelope(120, series_at([20, 40, 60, 80]), level_uv=12.0, floor_uv=20.0)
    assert score(env, floor_uv=20.0).combined.plm == 4
    adaptive = LimbMovementRules(method="adaptive")
    assert score(env, floor_uv=20.0, rules=adaptive).combined.plm == 0
    # at a low floor the two agree
    env = envelope(120, series_at([20, 40, 60, 80]), level_uv=9.0, floor_uv=2.0)
    assert score(env, floor_uv=2.0, rules=adaptive).combined.plm == 4


def test_counts_are_settled_about_15_s_after_a_movement() -> None:
    scorer = LimbMovementScorer(CONFIG)
    env = envelope(200, series_at([20, 40, 60, 80])).reshape(200, 50, 2)
    ok, rest = np.ones((1, 2), dtype=bool), np.full((1, 2), FLOOR)
    seen = []
    for t in range(200):
        scorer.process(t * 50, env[t : t + 1], ok, rest)
        seen.append(scorer.summary().combined.plm)
    assert seen[90] == 0  # the fourth LM (80-82 s) is not settled yet
    assert seen[100] == 4
    assert seen == sorted(seen)  # never goes back


@pytest.mark.parametrize(
    "change",
    [
        {"method": "fixed"},
        {"onset_margin_uv": 1.0},
        {"imi_min_s": 100.0},
        {"min_series": 1},
        {"bilateral_max_components": 1},
        {"max_candidate_s": 0.1},
    ],
)
def test_bad_rules_are_refused_with_the_reason(change: dict) -> None:
    with pytest.raises(ValueError, match="limb movement rules"):
        LimbMovementRules(**change)


# ------------------------------------------------------------------------------------------------
# through the pipeline


def _night(seed: int, hours: float = 1.0, fs: float = 500.0, **counts: int):
    plan = plan_night(
        seed,
        duration_s=hours * 3600,
        fs=fs,
        n_cramps=counts.get("n_cramps", 1),
        n_plm_series=counts.get("n_plm_series", 2),
        n_walks=counts.get("n_walks", 1),
        electrode_off=counts.get("electrode_off", True),
    )
    return plan, SyntheticEMG(plan, seed + 1)


def _run(plan, x: np.ndarray, sizes: list[int]) -> LimbMovementSummary:
    pipeline = Pipeline(PipelineConfig(fs=plan.fs, channels=plan.channels))
    pos, i = 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        pipeline.process(x[pos : pos + n])
        pos, i = pos + n, i + 1
    out = pipeline.finish()
    assert out.limb_movements is not None
    return out.limb_movements


_SPLIT: dict[str, object] = {}


def _split_reference() -> tuple[object, np.ndarray, LimbMovementSummary]:
    """A quarter-hour night with a PLM series and a cramp, rendered and scored in one call."""
    if not _SPLIT:
        plan = plan_night(
            7, duration_s=900, fs=250.0, n_cramps=1, n_plm_series=1, n_walks=0, n_turnovers=2
        )
        x = SyntheticEMG(plan, 8).render()
        _SPLIT.update(plan=plan, x=x, summary=_run(plan, x, [len(x)]))
    return _SPLIT["plan"], _SPLIT["x"], _SPLIT["summary"]  # type: ignore[return-value]


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(37, 30000), min_size=1, max_size=6))
def test_pipeline_plm_summary_is_identical_for_any_block_split(sizes: list[int]) -> None:
    plan, x, reference = _split_reference()
    assert reference.combined.plm > 0
    assert _run(plan, x, sizes) == reference


def _truth_plm(plan) -> list[tuple[float, float]]:
    """Ground-truth PLM movements, legs combined: (start, end) per movement of a series."""
    moves = {}
    for seg in plan.segments_of("plm"):
        key = (seg.param("series"), seg.param("index"))
        start, end = moves.get(key, (math.inf, -math.inf))
        moves[key] = (min(start, seg.start_s), max(end, seg.end_s))
    return sorted(moves.values())


def _match(found: list[tuple[float, float]], truth: list[tuple[float, float]]) -> int:
    """Movements found that overlap a true one (each true one matched once)."""
    used, hits = set(), 0
    for start, end in found:
        for i, (ts, te) in enumerate(truth):
            if i not in used and start < te and ts < end:
                used.add(i)
                hits += 1
                break
    return hits


@pytest.mark.slow
def test_synthetic_nights_plm_recall_and_precision() -> None:
    found_all = truth_all = hits_all = 0
    for seed in range(6):
        plan, emg = _night(100 + seed)
        summary = _run(plan, emg.render(), [65536])
        found = [(m.start_s, m.end_s) for s in summary.series for m in s.movements]
        truth = _truth_plm(plan)
        hits = _match(found, truth)
        found_all, truth_all, hits_all = (
            found_all + len(found),
            truth_all + len(truth),
            hits_all + hits,
        )
        # every true series of 4 or more is found as (at least part of) a series
        assert len(truth) == 0 or hits > 0
    recall, precision = hits_all / truth_all, hits_all / found_all
    assert truth_all > 100
    print(f"recall {recall:.3f} precision {precision:.3f} of {truth_all}")
    assert recall >= 0.85, f"recall {recall:.3f}"
    assert precision >= 0.97, f"precision {precision:.3f}"
