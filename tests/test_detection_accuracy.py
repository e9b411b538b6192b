"""Detection accuracy on synthetic nights with ground truth, at the supported sampling rates.

Each night is an hour with three cramps (10 s to 10 min, one or both calves), a walk, a periodic limb
movement series, turning over, electrode-off stretches, clipping and gaps. Figures are pooled over ten
seeds per sampling rate. `python -m tests.test_detection_accuracy` prints the README's table.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import pytest

from dsp.annotations import Annotation
from dsp.config import PipelineConfig, ScalingConfig
from dsp.evaluation import evaluate
from dsp.events import STATE_SIGNAL_LOST, Event, StateChange
from dsp.pipeline import Pipeline
from hardware.synthetic_emg import NightPlan, SyntheticEMG, plan_night, scenario

SEEDS = range(10)
NIGHT_S = 3600.0


@dataclass
class NightResult:
    plan: NightPlan
    events: list[Event]
    states: list[StateChange]


def run_night(plan: NightPlan, seed: int) -> NightResult:
    config = PipelineConfig(
        fs=plan.fs,
        channels=plan.channels,
        scaling=ScalingConfig(units="uV", rails=plan.rails_uv),
    )
    pipeline = Pipeline(config, source_id=f"synthetic-{seed}")
    events: list[Event] = []
    states: list[StateChange] = []
    for block in SyntheticEMG(plan, seed=seed).blocks(50_000):
        out = pipeline.process(block)
        events += out.events
        states += out.state_changes
    out = pipeline.finish()
    return NightResult(plan, events + out.events, states + out.state_changes)


def ended(result: NightResult) -> list[dict]:
    return [e.to_dict() for e in result.events if e.phase == "ended"]


def lost_intervals(
    states: list[StateChange], channel: str, end_s: float
) -> list[tuple[float, float]]:
    intervals, since = [], None
    for change in states:
        if change.channel != channel:
            continue
        if change.state == STATE_SIGNAL_LOST and since is None:
            since = change.at_s
        elif change.state != STATE_SIGNAL_LOST and since is not None:
            intervals.append((since, change.at_s))
            since = None
    if since is not None:
        intervals.append((since, end_s))
    return intervals


def covered_fraction(truth: Annotation, intervals: list[tuple[float, float]]) -> float:
    overlap = sum(max(0.0, min(b, truth.end_s) - max(a, truth.start_s)) for a, b in intervals)
    return overlap / truth.duration_s


@dataclass
class Pooled:
    """Cramp detection figures pooled over the seeds at one sampling rate."""

    fs: float
    truth: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    onset_errors: list[float] = field(default_factory=list)
    offset_errors: list[float] = field(default_factory=list)
    lost_coverage: list[float] = field(default_factory=list)
    cross: list[str] = field(default_factory=list)  # walks or movements reported as cramps

    @property
    def f1(self) -> float:
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    @property
    def false_per_hour(self) -> float:
        return self.fp / (len(SEEDS) * NIGHT_S / 3600)

    def row(self) -> str:
        """The line of the README's accuracy table."""
        return (
            f"| {self.fs:.0f} | {self.truth} | {self.tp} | {self.fp} | {self.fn} | {self.f1:.3f} "
            f"| {statistics.median(self.onset_errors):.2f} s "
            f"| {statistics.median(self.offset_errors):.2f} s | {self.false_per_hour:.2f} |"
        )


def pooled(fs: float) -> Pooled:
    result = Pooled(fs)
    for seed in SEEDS:
        plan = plan_night(
            seed,
            duration_s=NIGHT_S,
            fs=fs,
            n_cramps=3,
            n_walks=1,
            n_plm_series=1,
            clipping=True,
            gaps=True,
        )
        night = run_night(plan, seed)
        report = evaluate(
            ended(night), plan.annotations, kinds=("cramp",), recording_hours=NIGHT_S / 3600
        )
        score = report["cramp"]
        result.truth += score.tp + score.fn
        result.tp, result.fp, result.fn = (
            result.tp + score.tp,
            result.fp + score.fp,
            result.fn + score.fn,
        )
        result.onset_errors += [abs(e) for e in score.onset_errors_s]
        result.offset_errors += [abs(e) for e in score.offset_errors_s]
        for cross in report.cross:
            if cross.truth_kind in ("movement", "walking") and cross.count:
                result.cross.append(f"seed {seed}: {cross.sentence()}")
        for truth in plan.annotations:
            if truth.kind == "electrode_off":
                channels = [truth.channel] if truth.channel else list(plan.channels)
                for channel in channels:
                    intervals = lost_intervals(night.states, channel, NIGHT_S)
                    result.lost_coverage.append(covered_fraction(truth, intervals))
    return result


RATES = (500.0, 860.0, 1000.0, 2000.0)


@pytest.mark.slow
@pytest.mark.parametrize("fs", RATES)
def test_cramps_are_found_with_high_f1_and_few_false_cramps(fs: float) -> None:
    result = pooled(fs)
    assert not result.cross, result.cross
    assert result.tp >= 25
    assert result.f1 >= 0.95, (result.tp, result.fp, result.fn)
    assert statistics.median(result.onset_errors) <= 1.0
    assert result.false_per_hour <= 0.1
    assert result.lost_coverage and min(result.lost_coverage) >= 0.9


@pytest.mark.slow
def test_long_cramps_walks_movement_series_and_turning_over_on_one_night() -> None:
    plan = scenario(
        11,
        fs=1000.0,
        duration_s=1500.0,
        channels=("left_calf", "right_calf"),
        events=[
            ("cramp", 100.0, 700.0, "left_calf"),  # ten minutes
            ("walking", 760.0, 1000.0),  # four minutes of walking
            *[("movement", t, t + 2.5, "right_calf") for t in range(1040, 1300, 30)],  # PLMS
            ("movement", 1340.0, 1344.0),  # turning over
            ("cramp", 1400.0, 1430.0),  # both calves
        ],
    )
    result = run_night(plan, 11)
    cramps = [e for e in ended(result) if e["kind"] == "cramp"]
    found = sorted((e["channel"], e["start_s"]) for e in cramps)
    expected = [("left_calf", 100.0), ("left_calf", 1400.0), ("right_calf", 1400.0)]
    assert [c for c, _ in found] == [c for c, _ in expected]
    assert all(abs(got - want) < 1.5 for (_, got), (_, want) in zip(found, expected, strict=True))
    long_one = cramps[0] if cramps[0]["start_s"] < 200 else cramps[1]
    assert abs(long_one["duration_s"] - 600) < 3
    started = [e for e in result.events if e.phase == "started"]
    assert len(started) == 3
    moves = [e for e in ended(result) if e["kind"] == "movement"]
    assert sum(1040 <= e["start_s"] < 1300 for e in moves) >= 8
    assert any(760 <= e["start_s"] < 800 and e["duration_s"] > 200 for e in moves)


if __name__ == "__main__":
    print("| fs (Hz) | cramps (truth) | found | false | missed | F1 | median onset error "
          "| median offset error | false cramps / h |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for rate in RATES:
        print(pooled(rate).row(), flush=True)
