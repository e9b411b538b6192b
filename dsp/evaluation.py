"""Scoring detections against ground truth: overlap matching, precision/recall/F1, timing errors.

Pure computation, no I/O. Conventions:

- A *detection* is anything with `kind`, `channel`, `start_s`, `end_s` (a mapping such as an
  event JSON dict, or an object such as `dsp.events.Event`). When it has a `phase`, only
  `phase == "ended"` counts; `started` messages are skipped (the `ended` one has the full extent).
- A detection and a truth segment are *compatible* when they have the same kind and their
  channels agree: truth with channel None matches a detection on any channel; a detection on
  channel X matches truth on X or None (a detection with channel None, e.g. from a CSV with an
  empty cell, matches any channel).
- Overlap is `min(ends) - max(starts)` in seconds; a pair can match only when
  overlap > `min_overlap_s` (default 0.0: any positive overlap; touching segments do not match,
  and zero-length segments never match).
- Matching is one-to-one and greedy: all compatible pairs are taken in order of decreasing
  overlap (or IoU with `match_by="iou"`; the other measure breaks ties, then time order), and a
  pair is kept when neither side is matched yet. So one long detection over two truths is one TP
  and one FN; two detections over one truth are one TP and one FP. A truth segment with channel
  None is one segment and is matched at most once: to score a cramp on both calves as two,
  annotate it once per channel. The result does not depend on the order of the inputs.
- TP = matched pairs, FP = unmatched detections, FN = unmatched truth segments;
  precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN).
  A figure that cannot be computed is None, never a vacuous 1.0: precision is None without
  detections, recall and F1 are None without truth (there was nothing to find). What can still be
  said then (the number of false detections, false detections per hour) is reported as usual.
- Onset error = detected start - truth start, offset error = detected end - truth end, in
  seconds: positive means the detection was late. Median absolute errors are None without matches.
- False detections per hour = FP / recording hours; None when the hours are not given.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dsp.annotations import ANNOTATION_KINDS, Annotation
from dsp.events import KIND_CRAMP, KIND_MOVEMENT, PHASE_ENDED, PHASE_STARTED

# Kinds the detector reports, and so the kinds that can be scored.
SCORABLE_KINDS: tuple[str, ...] = (KIND_CRAMP, KIND_MOVEMENT)

MatchBy = Literal["overlap", "iou"]


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected segment, normalised from an event dict or object."""

    kind: str
    start_s: float
    end_s: float
    channel: str | None = None
    event_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCORABLE_KINDS:
            raise ValueError(
                f"unknown detection kind {self.kind!r}; expected one of {', '.join(SCORABLE_KINDS)}"
            )
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise ValueError(f"detection times must be finite, got {self.start_s}..{self.end_s}")
        if not self.end_s >= self.start_s:
            raise ValueError(f"detection ends ({self.end_s}) before it starts ({self.start_s})")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "channel": self.channel,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class MatchedPair:
    """A truth segment and the detection matched to it, with timing errors (detected - truth)."""

    truth: Annotation
    detection: Detection
    overlap_s: float
    iou: float

    @property
    def onset_error_s(self) -> float:
        return self.detection.start_s - self.truth.start_s

    @property
    def offset_error_s(self) -> float:
        return self.detection.end_s - self.truth.end_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "truth": self.truth.to_dict(),
            "detection": self.detection.to_dict(),
            "overlap_s": self.overlap_s,
            "iou": self.iou,
            "onset_error_s": self.onset_error_s,
            "offset_error_s": self.offset_error_s,
        }


@dataclass(frozen=True, slots=True)
class KindScore:
    """Scores for one kind: counts, ratios, timing errors, and the misses and false detections."""

    kind: str
    n_truth: int
    n_detected: int
    tp: int
    fp: int
    fn: int
    precision: float | None
    recall: float | None
    f1: float | None
    onset_errors_s: tuple[float, ...]
    offset_errors_s: tuple[float, ...]
    median_abs_onset_error_s: float | None
    median_abs_offset_error_s: float | None
    false_per_hour: float | None
    matches: tuple[MatchedPair, ...]
    missed: tuple[Annotation, ...]
    false_detections: tuple[Detection, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_truth": self.n_truth,
            "n_detected": self.n_detected,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "onset_errors_s": list(self.onset_errors_s),
            "offset_errors_s": list(self.offset_errors_s),
            "median_abs_onset_error_s": self.median_abs_onset_error_s,
            "median_abs_offset_error_s": self.median_abs_offset_error_s,
            "false_per_hour": self.false_per_hour,
            "matches": [m.to_dict() for m in self.matches],
            "missed": [a.to_dict() for a in self.missed],
            "false_detections": [d.to_dict() for d in self.false_detections],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], recording_hours: float | None) -> KindScore:
        """The score `to_dict` wrote (the ratios are computed again from the segments)."""
        pairs = [
            MatchedPair(
                truth=Annotation(**m["truth"]),
                detection=Detection(**m["detection"]),
                overlap_s=float(m["overlap_s"]),
                iou=float(m["iou"]),
            )
            for m in data["matches"]
        ]
        return _kind_score(
            data["kind"],
            pairs,
            [Annotation(**a) for a in data["missed"]],
            [Detection(**d) for d in data["false_detections"]],
            recording_hours,
        )

    def undefined_notes(self) -> list[str]:
        """Plain sentences for the figures that cannot be computed, and why."""
        notes = []
        if self.n_truth == 0:
            notes.append(
                f"no true {self.kind}s in the truth: recall and F1 cannot be computed; "
                f"{self.fp} {self.kind} detection(s), all false"
                + (
                    f" ({self.false_per_hour:.2f} per hour)"
                    if self.false_per_hour is not None
                    else ""
                )
            )
        if self.n_detected == 0:
            notes.append(f"no {self.kind} detections: precision cannot be computed")
        return notes


@dataclass(frozen=True, slots=True)
class CrossKindOverlap:
    """How many detections of `detected_kind` overlap truth of `truth_kind` (cramps in walking)."""

    detected_kind: str
    truth_kind: str
    n_truth: int
    count: int
    detections: tuple[Detection, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "detected_kind": self.detected_kind,
            "truth_kind": self.truth_kind,
            "n_truth": self.n_truth,
            "count": self.count,
            "detections": [d.to_dict() for d in self.detections],
        }

    def sentence(self) -> str:
        """E.g. `cramp detections overlapping walking truth (3 segments): 0`."""
        plural = "segment" if self.n_truth == 1 else "segments"
        return (
            f"{self.detected_kind} detections overlapping {self.truth_kind} truth "
            f"({self.n_truth} {plural}): {self.count}"
        )


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Scores for several kinds, plus cross-kind overlaps, with the settings used."""

    scores: tuple[KindScore, ...]
    cross: tuple[CrossKindOverlap, ...]
    min_overlap_s: float
    match_by: str
    recording_hours: float | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> KindScore:
        for score in self.scores:
            if score.kind == kind:
                return score
        raise KeyError(kind)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_overlap_s": self.min_overlap_s,
            "match_by": self.match_by,
            "recording_hours": self.recording_hours,
            **dict(self.extra),
            "scores": {s.kind: s.to_dict() for s in self.scores},
            "cross": [c.to_dict() for c in self.cross],
        }

    def format_text(self, max_listed: int = 20) -> str:
        """A readable table, then the cross-kind counts and the missed / false segments."""
        header = (
            f"{'kind':<9} {'truth':>5} {'det':>5} {'TP':>4} {'FP':>4} {'FN':>4} "
            f"{'prec':>6} {'recall':>6} {'F1':>6} {'|onset|':>8} {'|offset|':>8} {'FP/h':>7}"
        )
        lines = [header, "-" * len(header)]
        for s in self.scores:
            lines.append(
                f"{s.kind:<9} {s.n_truth:>5} {s.n_detected:>5} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
                f"{_fmt_ratio(s.precision):>6} {_fmt_ratio(s.recall):>6} {_fmt_ratio(s.f1):>6} "
                f"{_fmt_s(s.median_abs_onset_error_s):>8} {_fmt_s(s.median_abs_offset_error_s):>8} "
                f"{_fmt_num(s.false_per_hour):>7}"
            )
        hours = f"{self.recording_hours:.2f} h" if self.recording_hours is not None else "unknown"
        lines.append("")
        lines.append(f"recording: {hours}; |onset|, |offset|: median absolute error")
        lines.append(
            f"matching: one-to-one, greedy by largest {self.match_by}, "
            f"needs overlap > {self.min_overlap_s:g} s, same kind, compatible channel"
        )
        for s in self.scores:
            lines.extend(s.undefined_notes())
        for c in self.cross:
            lines.append(c.sentence())
        for s in self.scores:
            if s.missed:
                lines.append("")
                lines.append(f"missed {s.kind} (in truth, not detected): {len(s.missed)}")
                lines.extend(_listing(s.missed, max_listed))
            if s.false_detections:
                lines.append("")
                lines.append(f"false {s.kind} detections (not in truth): {len(s.false_detections)}")
                lines.extend(_listing(s.false_detections, max_listed))
        return "\n".join(lines) + "\n"


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def _fmt_num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _listing(segments: Sequence[Annotation | Detection], max_listed: int) -> list[str]:
    out = []
    for seg in segments[:max_listed]:
        channel = seg.channel if seg.channel is not None else "any"
        line = (
            f"  {seg.start_s:10.2f} - {seg.end_s:10.2f} s  ({seg.end_s - seg.start_s:.1f} s)  "
            f"channel {channel}"
        )
        if isinstance(seg, Detection) and seg.event_id:
            line += f"  event {seg.event_id}"
        out.append(line)
    if len(segments) > max_listed:
        out.append(f"  ... and {len(segments) - max_listed} more (use the JSON output for all)")
    return out


# --- inputs -------------------------------------------------------------------------------


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def _has(item: Any, key: str) -> bool:
    if isinstance(item, Mapping):
        return key in item
    return hasattr(item, key)


def to_detection(item: Any) -> Detection | None:
    """Normalise one event (mapping or object) to a Detection; None if it is not an `ended` event.

    Raises ValueError (naming the field) when a needed field is missing or invalid.
    """
    if isinstance(item, Detection):
        return item
    if _has(item, "phase"):
        phase = _get(item, "phase")
        if phase == PHASE_STARTED:
            return None
        if phase != PHASE_ENDED:
            raise ValueError(
                f"unknown phase {phase!r}; expected {PHASE_STARTED!r} or {PHASE_ENDED!r}"
            )
    for key in ("kind", "start_s", "end_s"):
        if not _has(item, key) or _get(item, key) is None:
            raise ValueError(f"event has no {key!r}")
    kind = _get(item, "kind")
    if kind not in SCORABLE_KINDS:
        raise ValueError(
            f"unknown event kind {kind!r}; expected one of {', '.join(SCORABLE_KINDS)}"
        )
    start_s = _as_seconds(_get(item, "start_s"), "start_s")
    end_s = _as_seconds(_get(item, "end_s"), "end_s")
    if end_s < start_s:
        raise ValueError(f"event ends (end_s={end_s}) before it starts (start_s={start_s})")
    channel = _get(item, "channel")
    if channel is not None and not isinstance(channel, str):
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise ValueError(f"event channel must be a string, got {channel!r}")
        channel = str(channel)
    event_id = _get(item, "event_id")
    return Detection(
        kind=kind,
        start_s=start_s,
        end_s=end_s,
        channel=channel if channel != "" else None,
        event_id=str(event_id) if event_id is not None else None,
    )


def _as_seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return seconds


def to_detections(items: Iterable[Any]) -> list[Detection]:
    """Normalise events to Detections, keeping only `ended` ones (or those without a phase)."""
    out = []
    for item in items:
        detection = to_detection(item)
        if detection is not None:
            out.append(detection)
    return out


# --- matching -----------------------------------------------------------------------------


def channels_compatible(truth_channel: str | None, detected_channel: str | None) -> bool:
    """None on either side matches any channel; otherwise the channels must be equal."""
    return truth_channel is None or detected_channel is None or truth_channel == detected_channel


def overlap_s(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Length of the intersection of two intervals (0.0 when disjoint or touching)."""
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def _iou(ov: float, a: Annotation, d: Detection) -> float:
    union = (a.end_s - a.start_s) + (d.end_s - d.start_s) - ov
    return ov / union if union > 0 else 0.0


def _truth_key(a: Annotation) -> tuple[Any, ...]:
    return (a.start_s, a.end_s, a.channel is not None, a.channel or "", a.kind)


def _det_key(d: Detection) -> tuple[Any, ...]:
    return (d.start_s, d.end_s, d.channel is not None, d.channel or "", d.kind, d.event_id or "")


def _check_min_overlap(min_overlap_s: float) -> None:
    if not (math.isfinite(min_overlap_s) and min_overlap_s >= 0):
        raise ValueError(f"min_overlap_s must be a finite number >= 0, got {min_overlap_s}")


def match(
    detections: Sequence[Detection],
    truth: Sequence[Annotation],
    min_overlap_s: float = 0.0,
    match_by: MatchBy = "overlap",
) -> tuple[list[MatchedPair], list[Annotation], list[Detection]]:
    """One-to-one greedy matching of compatible pairs; returns (matches, missed, false).

    Kinds are compared as given: pass detections and truth of one kind to score that kind.
    Outputs are sorted by time, so they do not depend on the input order.
    """
    _check_min_overlap(min_overlap_s)
    if match_by not in ("overlap", "iou"):
        raise ValueError(f"match_by must be 'overlap' or 'iou', got {match_by!r}")
    truth_sorted = sorted(truth, key=_truth_key)
    dets_sorted = sorted(detections, key=_det_key)
    candidates: list[tuple[float, float, int, int]] = []
    for ti, a in enumerate(truth_sorted):
        for di, d in enumerate(dets_sorted):
            if d.kind != a.kind or not channels_compatible(a.channel, d.channel):
                continue
            ov = overlap_s(a.start_s, a.end_s, d.start_s, d.end_s)
            if ov <= 0.0 or ov <= min_overlap_s:
                continue
            iou = _iou(ov, a, d)
            primary, secondary = (ov, iou) if match_by == "overlap" else (iou, ov)
            candidates.append((primary, secondary, ti, di))
    # Largest first; ties go to the earliest truth, then the earliest detection (by content order).
    candidates.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    used_t: set[int] = set()
    used_d: set[int] = set()
    pairs: list[MatchedPair] = []
    for _primary, _secondary, ti, di in candidates:
        if ti in used_t or di in used_d:
            continue
        used_t.add(ti)
        used_d.add(di)
        a, d = truth_sorted[ti], dets_sorted[di]
        ov = overlap_s(a.start_s, a.end_s, d.start_s, d.end_s)
        pairs.append(MatchedPair(truth=a, detection=d, overlap_s=ov, iou=_iou(ov, a, d)))
    pairs.sort(key=lambda p: (_truth_key(p.truth), _det_key(p.detection)))
    missed = [a for i, a in enumerate(truth_sorted) if i not in used_t]
    false = [d for i, d in enumerate(dets_sorted) if i not in used_d]
    return pairs, missed, false


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _check_hours(recording_hours: float | None) -> None:
    if recording_hours is not None and not (math.isfinite(recording_hours) and recording_hours > 0):
        raise ValueError(f"recording_hours must be a positive number, got {recording_hours}")


def _kind_score(
    kind: str,
    pairs: Sequence[MatchedPair],
    missed: Sequence[Annotation],
    false: Sequence[Detection],
    recording_hours: float | None,
) -> KindScore:
    """The figures of one kind from its matched pairs, misses and false detections."""
    tp, fp, fn = len(pairs), len(false), len(missed)
    onset = tuple(p.onset_error_s for p in pairs)
    offset = tuple(p.offset_error_s for p in pairs)
    return KindScore(
        kind=kind,
        n_truth=tp + fn,
        n_detected=tp + fp,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=None if tp + fn == 0 else 2 * tp / (2 * tp + fp + fn),
        onset_errors_s=onset,
        offset_errors_s=offset,
        median_abs_onset_error_s=statistics.median(abs(e) for e in onset) if onset else None,
        median_abs_offset_error_s=statistics.median(abs(e) for e in offset) if offset else None,
        false_per_hour=fp / recording_hours if recording_hours is not None else None,
        matches=tuple(pairs),
        missed=tuple(missed),
        false_detections=tuple(false),
    )


def score_kind(
    detections: Iterable[Any],
    truth: Sequence[Annotation],
    kind: str = KIND_CRAMP,
    min_overlap_s: float = 0.0,
    recording_hours: float | None = None,
    match_by: MatchBy = "overlap",
) -> KindScore:
    """Score detections of `kind` against truth of `kind`; other kinds in the inputs are ignored."""
    if kind not in SCORABLE_KINDS:
        raise ValueError(f"cannot score kind {kind!r}; expected one of {', '.join(SCORABLE_KINDS)}")
    _check_hours(recording_hours)
    dets = [d for d in to_detections(detections) if d.kind == kind]
    gold = [a for a in truth if a.kind == kind]
    pairs, missed, false = match(dets, gold, min_overlap_s=min_overlap_s, match_by=match_by)
    return _kind_score(kind, pairs, missed, false, recording_hours)


def pool_scores(scores: Sequence[KindScore], recording_hours: float | None) -> KindScore:
    """One score over several recordings of one kind: the matched pairs, misses and false
    detections of all of them together (so ratios come from the summed counts and the median
    timing errors from every matched pair); `recording_hours` is their total length."""
    kinds = {s.kind for s in scores}
    if len(kinds) != 1:
        raise ValueError(f"pool scores of one kind at a time, got {sorted(kinds) or 'none'}")
    _check_hours(recording_hours)
    return _kind_score(
        kinds.pop(),
        [pair for s in scores for pair in s.matches],
        [a for s in scores for a in s.missed],
        [d for s in scores for d in s.false_detections],
        recording_hours,
    )


def cross_kind_overlap(
    detections: Iterable[Any],
    truth: Sequence[Annotation],
    detected_kind: str = KIND_CRAMP,
    truth_kind: str = "walking",
    min_overlap_s: float = 0.0,
) -> CrossKindOverlap:
    """Count detections of `detected_kind` overlapping (> min_overlap_s, compatible channel) any
    truth of `truth_kind`; each detection counts once, e.g. "cramps reported during walking: 0"."""
    if truth_kind not in ANNOTATION_KINDS:
        raise ValueError(
            f"unknown truth kind {truth_kind!r}; expected one of {', '.join(ANNOTATION_KINDS)}"
        )
    _check_min_overlap(min_overlap_s)
    dets = sorted((d for d in to_detections(detections) if d.kind == detected_kind), key=_det_key)
    gold = [a for a in truth if a.kind == truth_kind]
    hits = tuple(
        d
        for d in dets
        if any(
            channels_compatible(a.channel, d.channel)
            and overlap_s(a.start_s, a.end_s, d.start_s, d.end_s) > max(min_overlap_s, 0.0)
            for a in gold
        )
    )
    return CrossKindOverlap(
        detected_kind=detected_kind,
        truth_kind=truth_kind,
        n_truth=len(gold),
        count=len(hits),
        detections=hits,
    )


def evaluate(
    detections: Iterable[Any],
    truth: Sequence[Annotation],
    kinds: Sequence[str] = (KIND_CRAMP,),
    min_overlap_s: float = 0.0,
    recording_hours: float | None = None,
    match_by: MatchBy = "overlap",
    extra: Mapping[str, Any] | None = None,
) -> EvaluationReport:
    """Score each of `kinds`, and count detections of each scored kind that overlap truth of every
    other kind present in `truth` (e.g. cramps during walking or movements)."""
    if not kinds:
        raise ValueError("no kinds to score")
    for kind in kinds:
        if kind not in SCORABLE_KINDS:
            raise ValueError(
                f"cannot score kind {kind!r}; expected one of {', '.join(SCORABLE_KINDS)}"
            )
    kinds = list(dict.fromkeys(kinds))
    dets = to_detections(detections)
    scores = tuple(
        score_kind(dets, truth, kind, min_overlap_s, recording_hours, match_by) for kind in kinds
    )
    present = {a.kind for a in truth}
    cross = tuple(
        cross_kind_overlap(dets, truth, kind, other, min_overlap_s)
        for kind in kinds
        for other in ANNOTATION_KINDS
        if other != kind and other in present
    )
    return EvaluationReport(
        scores=scores,
        cross=cross,
        min_overlap_s=min_overlap_s,
        match_by=match_by,
        recording_hours=recording_hours,
        extra=dict(extra or {}),
    )
