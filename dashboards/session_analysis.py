"""Cramps across named sessions (dialysis) against the factors nephrologists act on: pure
computation, with the same honesty as the night insights (`dashboards.analysis`): rank
correlation (Spearman) with its p value, Benjamini-Hochberg q across everything shown, the number
of sessions behind each figure, a plain sentence, and "not enough sessions yet" instead of a
number.

- Sessions used: complete ones (recorded with good signal for most of their length); sessions
  with too little signal are left out, sessions nothing recorded have no data (never "no cramps").
- Factors per session (`SESSION_FACTORS`): ultrafiltration rate and volume, weight gain since
  the last session, dialysate sodium, the lowest systolic pressure, and the latest lab values of
  the 35 days before. A session without a factor logged is left out of that factor only.
- Higher vs lower: split at the median of the sessions behind the figure, as for nights
  (`analysis.split_higher`).
- Time into the session: per hour of treatment (from the logged start, else the recording's), the
  cramps that began in it per session that lasted at least half of it; the rank correlation of
  the hour with the cramps is over the (session, hour) pairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from dashboards.analysis import (
    CAVEAT_NOT_CAUSE,
    STATUS_NO_VARIATION,
    STATUS_OK,
    STATUS_TOO_FEW,
    SessionSummary,
    _ToDict,
    bh_adjust,
    evidence_words,
    format_q,
    link_strength,
    split_higher,
    with_unit,
)

HOUR_FACTOR = "hour_of_session"
MIN_HOUR_SHARE = 0.5  # an hour counts for a session that lasted at least half of it
CAVEAT_TOGETHER = (
    "These factors go together: a large weight gain has to be removed faster (a higher "
    "ultrafiltration rate), which can lower blood pressure, so a link with one may come from "
    "another. Changes to dialysis are for you and your care team to decide."
)
CAVEAT_MANY_FACTORS = (
    "Many factors are compared, so some links appear by chance alone; the q values are adjusted "
    "for this (Benjamini-Hochberg)."
)
SESSION_CAVEATS = (CAVEAT_NOT_CAUSE, CAVEAT_TOGETHER, CAVEAT_MANY_FACTORS)


@dataclass(frozen=True)
class SessionFactor:
    key: str
    label: str
    unit: str


SESSION_FACTORS = (
    SessionFactor("uf_rate", "ultrafiltration rate", "mL/kg/h"),
    SessionFactor("uf_volume", "ultrafiltration volume", "mL"),
    SessionFactor("idwg", "weight gain since the last session", "kg"),
    SessionFactor("sodium", "dialysate sodium", "mmol/L"),
    SessionFactor("nadir_systolic", "lowest systolic pressure", "mmHg"),
    SessionFactor("calcium", "calcium (latest lab)", "mmol/L"),
    SessionFactor("phosphorus", "phosphorus (latest lab)", "mmol/L"),
    SessionFactor("potassium", "potassium (latest lab)", "mmol/L"),
    SessionFactor("magnesium", "magnesium (latest lab)", "mmol/L"),
)
FACTOR_LABELS = {f.key: f.label for f in SESSION_FACTORS} | {HOUR_FACTOR: "hour of the session"}


@dataclass(frozen=True, slots=True)
class SessionInsight(_ToDict):
    """One factor against cramps per session. `status` 'ok' carries numbers; 'too_few' and
    'no_variation' carry None. `high_*` are the sessions with the higher values."""

    factor: str
    label: str
    unit: str
    sessions: int
    needed: int
    status: str
    message: str
    rho: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    threshold: float | None = None
    split: str | None = None
    high_mean: float | None = None
    low_mean: float | None = None
    high_sessions: int | None = None
    low_sessions: int | None = None
    difference: float | None = None


@dataclass(frozen=True, slots=True)
class HourOfSession(_ToDict):
    hour: int  # 1: the first hour of treatment
    sessions: int  # that lasted into it
    cramps: int  # that began in it
    per_session: float


@dataclass(frozen=True, slots=True)
class SessionInsights(_ToDict):
    results: tuple[SessionInsight, ...]
    by_hour: tuple[HourOfSession, ...]
    caveats: tuple[str, ...]
    sessions_used: int
    incomplete_left_out: int
    without_recording: int

    @property
    def time_into(self) -> SessionInsight | None:
        return next((r for r in self.results if r.factor == HOUR_FACTOR), None)


def _base(factor: str, unit: str, n: int, needed: int) -> dict:
    return {"factor": factor, "label": FACTOR_LABELS.get(factor, factor.replace("_", " ")),
            "unit": unit, "sessions": n, "needed": needed}  # fmt: skip


def _untestable(
    factor: str, unit: str, x: np.ndarray, y: np.ndarray, needed: int, n: int | None = None
) -> SessionInsight | None:
    n = int(x.size) if n is None else n
    base = _base(factor, unit, n, needed)
    if n < needed:
        return SessionInsight(**base, status=STATUS_TOO_FEW,
                              message=f"not enough sessions yet ({n} of {needed} needed)")  # fmt: skip
    if np.ptp(x) == 0:
        return SessionInsight(
            **base, status=STATUS_NO_VARIATION,
            message=f"no variation: {base['label']} was {with_unit(x[0], unit)} in all {n} "
            "sessions",
        )  # fmt: skip
    if np.ptp(y) == 0:
        return SessionInsight(
            **base, status=STATUS_NO_VARIATION,
            message=f"no variation: {y[0]:.0f} cramps in each of the {n} sessions",
        )  # fmt: skip
    return None


def _tested(factor: str, unit: str, x: np.ndarray, y: np.ndarray, needed: int) -> SessionInsight:
    result = stats.spearmanr(x, y)
    rho, p = float(result.statistic), float(result.pvalue)
    high, threshold, split = split_higher(x, "amount", unit)
    high_mean, low_mean = float(y[high].mean()), float(y[~high].mean())
    return SessionInsight(
        **_base(factor, unit, int(x.size), needed), status=STATUS_OK, message="", rho=rho,
        p_value=p if math.isfinite(p) else 1.0, threshold=threshold, split=split,
        high_mean=high_mean, low_mean=low_mean, high_sessions=int(high.sum()),
        low_sessions=int((~high).sum()), difference=high_mean - low_mean,
    )  # fmt: skip


def factor_sentence(result: SessionInsight) -> str:
    """The plain sentence for an 'ok' factor result with its q value."""
    assert result.difference is not None and result.rho is not None and result.q_value is not None
    high, low = f"{result.high_mean:.1f}", f"{result.low_mean:.1f}"
    change = float(high) - float(low)  # as shown, so that the sentence adds up
    if abs(change) < 0.05:
        what = "about as many cramps"
    else:
        what = f"{abs(change):.1f} {'more' if change > 0 else 'fewer'} cramps"
    return (
        f"In sessions with a higher {result.label} ({result.split}), you had {what} per session "
        f"({high} vs {low}; {result.high_sessions} vs {result.low_sessions} sessions). "
        f"{link_strength(result.rho)} (rank correlation {result.rho:.2f}, "
        f"{format_q(result.q_value)}): {evidence_words(result.q_value)}."
    )


def hour_sentence(result: SessionInsight, by_hour: Sequence[HourOfSession]) -> str:
    assert result.rho is not None and result.q_value is not None
    rates = ", ".join(f"{h.per_session:.1f}" for h in by_hour)
    direction = "more" if result.rho > 0 else "fewer"
    return (
        f"Cramps per session by hour of treatment: {rates} in hours 1 to {len(by_hour)} "
        f"({result.sessions} sessions). Later in the session, {direction} cramps: "
        f"{link_strength(result.rho).lower()} (rank correlation {result.rho:.2f}, "
        f"{format_q(result.q_value)}): {evidence_words(result.q_value)}."
    )


def _hour_pairs(sessions: Sequence[SessionSummary]) -> tuple[np.ndarray, np.ndarray]:
    """(hour, cramps that began in it) for every hour each session lasted at least half of."""
    hours, counts = [], []
    for s in sessions:
        minutes = (s.end - s.origin).total_seconds() / 60.0
        last = max(0, math.floor(minutes / 60.0 + (1.0 - MIN_HOUR_SHARE)))
        onsets = np.array([m for m in s.cramp_minutes_in if 0.0 <= m < last * 60.0])
        per_hour = np.bincount((onsets // 60).astype(int), minlength=last)[:last]
        hours += range(1, last + 1)
        counts += per_hour.tolist()
    return np.array(hours, dtype=float), np.array(counts, dtype=float)


def _by_hour(hours: np.ndarray, counts: np.ndarray) -> tuple[HourOfSession, ...]:
    out = []
    for hour in sorted({int(h) for h in hours.tolist()}):
        mask = hours == hour
        n, total = int(mask.sum()), int(counts[mask].sum())
        out.append(HourOfSession(hour, n, total, total / n))
    return tuple(out)


def session_insights(
    summaries: Sequence[SessionSummary],
    factors: Mapping[str, Mapping[str, float]],
    *,
    min_sessions: int = 10,
) -> SessionInsights:
    """Each factor (values by session id) and the hour of the session against cramps per
    complete session, with BH q across all of them."""
    used = [s for s in summaries if s.complete]
    results: list[SessionInsight] = []
    for factor in SESSION_FACTORS:
        pairs = [(factors.get(s.session_id, {}).get(factor.key), s.cramps) for s in used]
        pairs = [(x, y) for x, y in pairs if x is not None and math.isfinite(x)]
        x = np.array([p[0] for p in pairs], dtype=float)
        y = np.array([p[1] for p in pairs], dtype=float)
        untestable = _untestable(factor.key, factor.unit, x, y, min_sessions)
        results.append(untestable or _tested(factor.key, factor.unit, x, y, min_sessions))
    hours, counts = _hour_pairs(used)
    by_hour = _by_hour(hours, counts)
    results.append(_hour_result(hours, counts, len(used), len(by_hour), min_sessions))
    results = _with_q(results, by_hour)
    with_recording = [s for s in summaries if s.has_recording]
    return SessionInsights(
        results=tuple(results), by_hour=by_hour, caveats=SESSION_CAVEATS,
        sessions_used=len(used), incomplete_left_out=len(with_recording) - len(used),
        without_recording=len(summaries) - len(with_recording),
    )  # fmt: skip


def _hour_result(
    hours: np.ndarray, counts: np.ndarray, n: int, n_hours: int, needed: int
) -> SessionInsight:
    """The hour of the session against the cramps that began in it."""
    if n >= needed and n_hours < 2:
        return SessionInsight(
            **_base(HOUR_FACTOR, "h", n, needed), status=STATUS_NO_VARIATION,
            message="no variation: no session lasted into a second hour",
        )  # fmt: skip
    untestable = _untestable(HOUR_FACTOR, "h", hours, counts, needed, n=n)
    return untestable or replace(_tested(HOUR_FACTOR, "h", hours, counts, needed), sessions=n)


def _with_q(
    results: list[SessionInsight], by_hour: Sequence[HourOfSession]
) -> list[SessionInsight]:
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    q = bh_adjust([results[i].p_value for i in tested])  # type: ignore[misc]
    out = list(results)
    for i, q_value in zip(tested, q.tolist(), strict=True):
        adjusted = replace(results[i], q_value=float(q_value))
        words = (
            hour_sentence(adjusted, by_hour)
            if adjusted.factor == HOUR_FACTOR
            else factor_sentence(adjusted)
        )
        out[i] = replace(adjusted, message=words)
    return out
