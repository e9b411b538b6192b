"""Tests for dsp.evaluation: overlap matching, metrics, conventions, cross-kind counts."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.annotations import Annotation
from dsp.evaluation import (
    Detection,
    KindScore,
    cross_kind_overlap,
    evaluate,
    match,
    pool_scores,
    score_kind,
    to_detection,
    to_detections,
)
from dsp.events import Event


def det(
    start: float, end: float, channel: str | None = "L", kind: str = "cramp", **extra: object
) -> dict[str, object]:
    """An event dict as in the replay output (phase ended)."""
    return {
        "kind": kind,
        "channel": channel,
        "start_s": start,
        "end_s": end,
        "phase": "ended",
        **extra,
    }


def truth(start: float, end: float, channel: str | None = "L", kind: str = "cramp") -> Annotation:
    return Annotation(kind=kind, start_s=start, end_s=end, channel=channel)


# --- matching edge cases ------------------------------------------------------------------


def test_exact_match_is_perfect() -> None:
    s = score_kind([det(100, 160)], [truth(100, 160)])
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)
    assert s.precision == s.recall == s.f1 == 1.0
    assert s.onset_errors_s == (0.0,)
    assert s.offset_errors_s == (0.0,)
    assert s.median_abs_onset_error_s == 0.0
    assert s.matches[0].iou == 1.0


def test_partial_overlap_matches_with_signed_errors() -> None:
    # Detected late (onset +5 s) and ends early (offset -10 s).
    s = score_kind([det(105, 150)], [truth(100, 160)])
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)
    assert s.onset_errors_s == (5.0,)
    assert s.offset_errors_s == (-10.0,)
    assert s.median_abs_onset_error_s == 5.0
    assert s.median_abs_offset_error_s == 10.0
    assert s.matches[0].overlap_s == 45.0
    assert s.matches[0].iou == pytest.approx(45 / 60)


def test_early_detection_has_negative_onset_error() -> None:
    s = score_kind([det(90, 170)], [truth(100, 160)])
    assert s.onset_errors_s == (-10.0,)
    assert s.offset_errors_s == (10.0,)


def test_one_long_detection_over_two_truths_is_one_tp_one_fn() -> None:
    truths = [truth(100, 130), truth(140, 200)]
    s = score_kind([det(95, 210)], truths)
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)
    # The larger overlap (140-200) wins; the other truth is missed.
    assert s.matches[0].truth == truths[1]
    assert s.missed == (truths[0],)
    assert s.precision == 1.0
    assert s.recall == 0.5


def test_split_detection_is_one_tp_one_fp() -> None:
    s = score_kind([det(100, 120), det(125, 180)], [truth(100, 180)])
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)
    assert s.matches[0].detection.start_s == 125
    assert [d.start_s for d in s.false_detections] == [100]
    assert s.recall == 1.0
    assert s.precision == 0.5
    assert s.f1 == pytest.approx(2 / 3)


def test_greedy_prefers_largest_overlap_over_input_order() -> None:
    # Detection A overlaps T1 by 5 and T2 by 30; detection B overlaps T1 by 20.
    truths = [truth(0, 25), truth(40, 80)]
    dets = [det(20, 70), det(0, 20)]
    s = score_kind(dets, truths)
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)


def test_iou_matching_option() -> None:
    # Long detection overlaps the long truth by 30 s (IoU 30/120) and the short one by 10 s
    # (IoU 10/100): by overlap it takes the long truth; by IoU the long one, too; a short
    # detection exactly on the short truth has IoU 1.
    truths = [truth(0, 10), truth(10, 100)]
    dets = [det(0, 10), det(5, 100)]
    by_overlap = score_kind(dets, truths, match_by="overlap")
    by_iou = score_kind(dets, truths, match_by="iou")
    assert by_overlap.tp == by_iou.tp == 2
    with pytest.raises(ValueError, match="match_by"):
        match([], [], match_by="area")  # type: ignore[arg-type]


def test_touching_segments_do_not_match() -> None:
    s = score_kind([det(160, 200)], [truth(100, 160)])
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)


def test_min_overlap_is_strict() -> None:
    assert score_kind([det(150, 200)], [truth(100, 160)], min_overlap_s=10.0).tp == 0
    assert score_kind([det(149, 200)], [truth(100, 160)], min_overlap_s=10.0).tp == 1
    with pytest.raises(ValueError, match="min_overlap_s"):
        score_kind([], [], min_overlap_s=-1.0)


def test_channel_mismatch_does_not_match() -> None:
    s = score_kind([det(100, 160, channel="R")], [truth(100, 160, channel="L")])
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)


def test_none_channel_truth_matches_any_channel_once() -> None:
    s = score_kind([det(100, 160, channel="R")], [truth(100, 160, channel=None)])
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)
    # One truth segment without a channel is matched at most once.
    both = score_kind(
        [det(100, 160, channel="L"), det(101, 160, channel="R")], [truth(100, 160, channel=None)]
    )
    assert (both.tp, both.fp, both.fn) == (1, 1, 0)
    assert both.matches[0].detection.channel == "L"


def test_kinds_are_scored_separately() -> None:
    dets = [det(100, 160), det(200, 203, kind="movement")]
    truths = [truth(100, 160), truth(200, 204, kind="movement"), truth(300, 400, kind="walking")]
    cramp = score_kind(dets, truths, "cramp")
    movement = score_kind(dets, truths, "movement")
    assert (cramp.tp, cramp.fp, cramp.fn) == (1, 0, 0)
    assert (movement.tp, movement.fp, movement.fn) == (1, 0, 0)
    # A movement detection is not matched to cramp truth.
    s = score_kind([det(100, 160, kind="movement")], [truth(100, 160)], "cramp")
    assert (s.tp, s.fp, s.fn) == (0, 0, 1)


def test_figures_that_cannot_be_computed_are_none_never_a_perfect_score() -> None:
    none = score_kind([], [], recording_hours=1.0)
    assert (none.tp, none.fp, none.fn) == (0, 0, 0)
    assert none.precision is none.recall is none.f1 is None
    assert none.false_per_hour == 0.0
    assert none.median_abs_onset_error_s is None
    assert none.median_abs_offset_error_s is None

    missed_all = score_kind([], [truth(0, 20)])
    assert (missed_all.precision, missed_all.recall, missed_all.f1) == (None, 0.0, 0.0)

    all_false = score_kind([det(0, 20)], [], recording_hours=2.0)
    assert (all_false.precision, all_false.recall, all_false.f1) == (0.0, None, None)
    assert all_false.false_per_hour == 0.5


def test_the_report_says_what_cannot_be_computed_without_true_cramps() -> None:
    text = evaluate([det(0, 20)], [], recording_hours=2.0).format_text()
    row = next(line for line in text.splitlines() if line.startswith("cramp"))
    assert row.split()[6:9] == ["0.000", "n/a", "n/a"]
    assert "1.000" not in text
    assert "no true cramps in the truth: recall and F1 cannot be computed" in text
    assert "1 cramp detection(s), all false (0.50 per hour)" in text
    empty = evaluate([], [], recording_hours=1.0).format_text()
    assert "no cramp detections: precision cannot be computed" in empty


def test_pooled_scores_add_the_counts_and_take_medians_over_every_pair() -> None:
    first = score_kind([det(100, 160), det(300, 310)], [truth(101, 161)], recording_hours=1.0)
    second = score_kind([det(50, 80)], [truth(48, 80), truth(500, 520)], recording_hours=3.0)
    pooled = pool_scores([first, second], recording_hours=4.0)
    assert (pooled.tp, pooled.fp, pooled.fn) == (2, 1, 1)
    assert (pooled.n_truth, pooled.n_detected) == (3, 3)
    assert pooled.precision == pooled.recall == pytest.approx(2 / 3)
    assert pooled.f1 == pytest.approx(2 / 3)
    assert sorted(pooled.onset_errors_s) == [-1.0, 2.0]
    assert pooled.median_abs_onset_error_s == 1.5
    assert pooled.false_per_hour == 0.25
    everything = score_kind(
        [det(100, 160), det(300, 310), det(1050, 1080)],
        [truth(101, 161), truth(1048, 1080), truth(1500, 1520)],
        recording_hours=4.0,
    )
    assert (everything.tp, everything.fp, everything.fn) == (pooled.tp, pooled.fp, pooled.fn)


def test_a_score_survives_its_dictionary() -> None:
    score = score_kind(
        [det(100, 160), det(300, 310)], [truth(101, 161), truth(700, 720)], recording_hours=2.0
    )
    again = KindScore.from_dict(json.loads(json.dumps(score.to_dict())), recording_hours=2.0)
    assert again == score
    with pytest.raises(ValueError, match="one kind at a time"):
        pool_scores([score, score_kind([], [], kind="movement")], recording_hours=1.0)


def test_false_per_hour() -> None:
    dets = [det(10 * i, 10 * i + 5) for i in range(6)]
    s = score_kind(dets, [truth(0, 5)], recording_hours=8.0)
    assert s.fp == 5
    assert s.false_per_hour == pytest.approx(5 / 8)
    assert score_kind(dets, []).false_per_hour is None
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="recording_hours"):
            score_kind(dets, [], recording_hours=bad)


def test_median_abs_errors() -> None:
    truths = [truth(0, 20), truth(100, 120), truth(200, 220)]
    dets = [det(1, 19), det(97, 125), det(210, 221)]
    s = score_kind(dets, truths)
    assert s.onset_errors_s == (1.0, -3.0, 10.0)
    assert s.offset_errors_s == (-1.0, 5.0, 1.0)
    assert s.median_abs_onset_error_s == 3.0
    assert s.median_abs_offset_error_s == 1.0


# --- inputs -------------------------------------------------------------------------------


def test_started_events_are_skipped_and_phaseless_count() -> None:
    items = [
        {"kind": "cramp", "channel": "L", "start_s": 100, "end_s": None, "phase": "started"},
        det(100, 160),
        {"kind": "cramp", "channel": "L", "start_s": 300, "end_s": 360},
    ]
    dets = to_detections(items)
    assert [(d.start_s, d.end_s) for d in dets] == [(100.0, 160.0), (300.0, 360.0)]


def test_event_objects_are_accepted() -> None:
    common = dict(
        event_id="abc",
        device="dev",
        channel="L",
        kind="cramp",
        start_s=100.0,
        duration_s=60.0,
        peak_uv=50.0,
        mean_uv=30.0,
        floor_uv=5.0,
        area_uvs=1800.0,
        median_freq_hz=None,
        quality="good",
        envelope=None,
        pipeline={},
        session_start=datetime(2024, 1, 1, tzinfo=UTC),
    )
    started = Event(phase="started", end_s=None, **common)  # type: ignore[arg-type]
    ended = Event(phase="ended", end_s=160.0, **common)  # type: ignore[arg-type]
    dets = to_detections([started, ended])
    assert dets == [Detection("cramp", 100.0, 160.0, "L", "abc")]
    # The JSON payload works the same way.
    assert to_detections([json.loads(json.dumps(ended.to_dict()))]) == dets


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"kind": "cramp", "channel": "L", "start_s": 1}, "end_s"),
        ({"kind": "sneeze", "channel": "L", "start_s": 1, "end_s": 2}, "unknown event kind"),
        ({"kind": "cramp", "channel": "L", "start_s": 5, "end_s": 2}, "before it starts"),
        ({"kind": "cramp", "channel": "L", "start_s": "x", "end_s": 2}, "start_s"),
        ({"kind": "cramp", "channel": "L", "start_s": 1, "end_s": 2, "phase": "?"}, "phase"),
    ],
)
def test_bad_detections_raise(item: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_detection(item)


def test_unknown_kind_to_score_raises() -> None:
    with pytest.raises(ValueError, match="cannot score"):
        score_kind([], [], "walking")
    with pytest.raises(ValueError, match="cannot score"):
        evaluate([], [], kinds=("cramp", "sneeze"))
    with pytest.raises(ValueError, match="unknown truth kind"):
        cross_kind_overlap([], [], "cramp", "sneeze")


# --- cross-kind overlap and the report ----------------------------------------------------


def test_cross_kind_overlap_counts_cramps_during_walking() -> None:
    truths = [
        truth(0, 600, channel=None, kind="walking"),
        truth(1000, 1060, channel="L", kind="walking"),
        truth(2000, 2100),
    ]
    dets = [det(10, 40), det(500, 520), det(1010, 1050, channel="R"), det(2000, 2100)]
    c = cross_kind_overlap(dets, truths, "cramp", "walking")
    assert c.count == 2
    assert c.n_truth == 2
    assert [d.start_s for d in c.detections] == [10, 500]
    assert c.sentence() == "cramp detections overlapping walking truth (2 segments): 2"


def test_evaluate_report() -> None:
    truths = [
        truth(100, 160),
        truth(400, 460),
        truth(600, 603, kind="movement"),
        truth(1000, 1200, channel=None, kind="walking"),
    ]
    dets = [
        det(102, 158, event_id="e1"),
        det(900, 930, event_id="e2"),
        det(600, 602, kind="movement"),
        det(1100, 1104, kind="movement"),
        {"kind": "cramp", "channel": "L", "start_s": 900, "end_s": None, "phase": "started"},
    ]
    report = evaluate(dets, truths, kinds=("cramp", "movement"), recording_hours=2.0)
    cramp, movement = report["cramp"], report["movement"]
    assert (cramp.tp, cramp.fp, cramp.fn) == (1, 1, 1)
    assert (movement.tp, movement.fp, movement.fn) == (1, 1, 0)
    assert cramp.false_per_hour == 0.5
    with pytest.raises(KeyError):
        report["walking"]
    cross = {(c.detected_kind, c.truth_kind): c.count for c in report.cross}
    assert cross == {
        ("cramp", "movement"): 0,
        ("cramp", "walking"): 0,
        ("movement", "cramp"): 0,
        ("movement", "walking"): 1,
    }

    data = report.to_dict()
    json.dumps(data)  # JSON-ready
    assert data["scores"]["cramp"]["tp"] == 1
    assert data["scores"]["cramp"]["missed"] == [truth(400, 460).to_dict()]
    assert data["scores"]["cramp"]["false_detections"][0]["event_id"] == "e2"
    assert data["recording_hours"] == 2.0

    text = report.format_text()
    assert "precision" in text or "prec" in text
    assert "cramp detections overlapping walking truth (1 segment): 0" in text
    assert "missed cramp" in text
    assert "event e2" in text
    assert text.splitlines()[2].split()[:7] == ["cramp", "2", "2", "1", "1", "1", "0.500"]


def test_format_text_caps_long_lists() -> None:
    dets = [det(10 * i, 10 * i + 1, kind="movement") for i in range(30)]
    text = evaluate(dets, [], kinds=("movement",)).format_text(max_listed=5)
    assert "and 25 more" in text
    assert "n/a" in text  # no hours, no matches


# --- properties ---------------------------------------------------------------------------

channels = st.sampled_from(["L", "R", None])


@st.composite
def segments(draw: st.DrawFn, kinds: tuple[str, ...]) -> tuple[str, float, float, str | None]:
    start = draw(st.integers(0, 200)) / 2
    length = draw(st.integers(0, 60)) / 2
    return (draw(st.sampled_from(kinds)), start, start + length, draw(channels))


truth_lists = st.lists(segments(("cramp", "movement", "walking")), max_size=8)
det_lists = st.lists(segments(("cramp", "movement")), max_size=8)


@settings(max_examples=150, deadline=None)
@given(truth_lists, det_lists, st.sampled_from([0.0, 1.0]), st.sampled_from(["overlap", "iou"]))
def test_counts_add_up_and_order_does_not_matter(
    raw_truth: list[tuple[str, float, float, str | None]],
    raw_dets: list[tuple[str, float, float, str | None]],
    min_overlap: float,
    match_by: str,
) -> None:
    truths = [Annotation(k, s, e, c) for k, s, e, c in raw_truth]
    dets = [det(s, e, channel=c, kind=k) for k, s, e, c in raw_dets]
    report = evaluate(
        dets,
        truths,
        kinds=("cramp", "movement"),
        min_overlap_s=min_overlap,
        match_by=match_by,  # type: ignore[arg-type]
    )
    for score in report.scores:
        n_truth = sum(1 for a in truths if a.kind == score.kind)
        n_dets = sum(1 for d in dets if d["kind"] == score.kind)
        assert score.tp + score.fn == n_truth == score.n_truth
        assert score.tp + score.fp == n_dets == score.n_detected
        assert (score.precision is None) == (n_dets == 0)
        assert (score.recall is None) == (score.f1 is None) == (n_truth == 0)
        for ratio in (score.precision, score.recall, score.f1):
            assert ratio is None or 0.0 <= ratio <= 1.0
        for pair in score.matches:
            assert pair.overlap_s > min_overlap
            assert pair.truth.kind == pair.detection.kind == score.kind
            assert None in (pair.truth.channel, pair.detection.channel) or (
                pair.truth.channel == pair.detection.channel
            )

    shuffled_truth, shuffled_dets = truths[:], dets[:]
    rng = random.Random(len(truths) * 31 + len(dets))
    rng.shuffle(shuffled_truth)
    rng.shuffle(shuffled_dets)
    again = evaluate(
        shuffled_dets,
        shuffled_truth,
        kinds=("cramp", "movement"),
        min_overlap_s=min_overlap,
        match_by=match_by,  # type: ignore[arg-type]
    )
    assert again.to_dict() == report.to_dict()


@settings(max_examples=50, deadline=None)
@given(truth_lists)
def test_truth_as_detections_is_perfect(raw: list[tuple[str, float, float, str | None]]) -> None:
    # Detections identical to the truth (cramp/movement, positive length, with a channel) score 1.0.
    truths = [
        Annotation(k, s, e, c or "L") for k, s, e, c in raw if k in ("cramp", "movement") and e > s
    ]
    dets = [det(a.start_s, a.end_s, channel=a.channel, kind=a.kind) for a in truths]
    for score in evaluate(dets, truths, kinds=("cramp", "movement")).scores:
        assert score.f1 == (1.0 if score.n_truth else None)
        assert all(e == 0.0 for e in score.onset_errors_s + score.offset_errors_s)
