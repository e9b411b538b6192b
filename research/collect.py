"""The batch's tables from its task results: recordings (one row per recording, combination and
channel), events (one row per event), scores (per recording and kind, where there is truth) and
pooled (per settings combination and kind: counts and pooled scores, ranked by F1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsp.evaluation import KindScore, pool_scores
from research.tables import (
    EVENT_COLUMNS,
    POOLED_COLUMNS,
    RECORDING_COLUMNS,
    SCORE_COLUMNS,
    Table,
    with_columns,
)


def _r(value: float | None) -> float | None:
    """Derived figures to 6 decimals (a table of 0.39999999999999997 helps no one)."""
    return None if value is None else round(value, 6)


def recordings_table(results: Sequence[dict[str, Any]]) -> Table:
    rows: list[dict[str, Any]] = []
    for result in results:
        base = {
            "recording": result["recording"],
            "combination": result["combination"],
            "status": result["status"],
            "error": result.get("error"),
            "task": result["key"],
        }
        if result["status"] != "ok":
            rows.append(base)
            continue
        duration_s = float(result["duration_s"])
        for channel in result["channels"]:
            figures = result["figures"].get(channel, {})
            lost_s = float(figures.get("signal_lost_s", 0.0))
            rows.append(
                {
                    **base,
                    "channel": channel,
                    "format": result.get("format"),
                    "fs": result.get("fs"),
                    "start": result.get("start"),
                    "hours": _r(duration_s / 3600),
                    "good_signal_hours": _r(max(0.0, duration_s - lost_s) / 3600),
                    "cramps": figures.get("cramps"),
                    "cramp_minutes": _r(float(figures.get("cramp_s", 0.0)) / 60),
                    "movements": figures.get("movements"),
                    "plm": figures.get("plm"),
                    "plm_per_hour": figures.get("plm_per_hour"),
                    "signal_lost_minutes": _r(lost_s / 60),
                    "settings_hash": result.get("settings_hash"),
                    "source_id": result.get("source_id"),
                    "events_file": result.get("events_file"),
                    "plot_file": result.get("plot_file"),
                }
            )
    return Table("recordings", RECORDING_COLUMNS, rows)


def events_table(results: Sequence[dict[str, Any]]) -> Table:
    rows = [
        {
            **event,
            "recording": result["recording"],
            "combination": result["combination"],
            "settings_hash": result.get("settings_hash"),
        }
        for result in results
        if result["status"] == "ok"
        for event in result["events"]
    ]
    return Table("events", EVENT_COLUMNS, rows)


def _scores_of(result: dict[str, Any]) -> dict[str, KindScore]:
    hours = float(result["duration_s"]) / 3600 if result.get("duration_s") else None
    return {
        kind: KindScore.from_dict(data, hours)
        for kind, data in (result.get("scores") or {}).items()
    }


def _figures(score: KindScore) -> dict[str, Any]:
    return {
        "n_truth": score.n_truth,
        "n_detected": score.n_detected,
        "tp": score.tp,
        "fp": score.fp,
        "fn": score.fn,
        "precision": _r(score.precision),
        "recall": _r(score.recall),
        "f1": _r(score.f1),
        "median_abs_onset_error_s": _r(score.median_abs_onset_error_s),
        "median_abs_offset_error_s": _r(score.median_abs_offset_error_s),
        "false_per_hour": _r(score.false_per_hour),
    }


def scores_table(results: Sequence[dict[str, Any]]) -> Table:
    rows = [
        {
            "recording": result["recording"],
            "combination": result["combination"],
            "kind": kind,
            "truth": result.get("truth"),
            "hours": _r(float(result["duration_s"]) / 3600),
            **_figures(score),
        }
        for result in results
        if result["status"] == "ok"
        for kind, score in _scores_of(result).items()
    ]
    return Table("scores", SCORE_COLUMNS, rows)


def settings_text(settings: dict[str, Any]) -> str:
    """`detector.cramp_min_s=8; detector.on_factor=3`, or `defaults`."""
    return "; ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


def pooled_table(
    results: Sequence[dict[str, Any]],
    grid: Sequence[dict[str, Any]],
    kinds: Sequence[str],
) -> Table:
    """One row per settings combination and scored kind, ranked by F1 (best first) where there
    is truth; every swept setting gets a column of its own."""
    rows: list[dict[str, Any]] = []
    for number, settings in enumerate(grid, start=1):
        combination = f"c{number}"
        mine = [r for r in results if r["combination"] == combination]
        ok = [r for r in mine if r["status"] == "ok"]
        counts = _pooled_counts(ok)
        for kind in kinds:
            scored = [(r, s[kind]) for r in ok if kind in (s := _scores_of(r))]
            scored_hours = sum(float(r["duration_s"]) for r, _ in scored) / 3600
            row: dict[str, Any] = {
                "combination": combination,
                "settings": settings_text(settings),
                **settings,
                "kind": kind,
                "recordings": len(mine),
                "failed": len(mine) - len(ok),
                **counts,
                "scored_recordings": len(scored),
                "scored_hours": _r(scored_hours) if scored else None,
            }
            if scored:
                pooled = pool_scores([s for _, s in scored], scored_hours or None)
                row.update(_figures(pooled))
            rows.append(row)
    _rank(rows, kinds)
    swept = [(key, _column_type([s.get(key) for s in grid])) for key in grid[0]] if grid else []
    return Table("pooled", with_columns(POOLED_COLUMNS, "settings", swept), rows)


def _pooled_counts(ok: Sequence[dict[str, Any]]) -> dict[str, Any]:
    hours = lost_h = cramp_min = 0.0
    cramps = movements = 0
    for result in ok:
        duration_s = float(result["duration_s"])
        for figures in result["figures"].values():
            hours += duration_s / 3600
            lost_h += float(figures.get("signal_lost_s", 0.0)) / 3600
            cramps += int(figures.get("cramps", 0))
            movements += int(figures.get("movements", 0))
            cramp_min += float(figures.get("cramp_s", 0.0)) / 60
    return {
        "hours": _r(hours),
        "good_signal_hours": _r(hours - lost_h),
        "cramps": cramps,
        "cramp_minutes": _r(cramp_min),
        "movements": movements,
    }


def _rank(rows: list[dict[str, Any]], kinds: Sequence[str]) -> None:
    """Sort by kind, then F1 (then recall, precision) best first; rank where F1 is known."""

    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        unknown = row.get("f1") is None
        return (
            kinds.index(row["kind"]),
            unknown,
            -(row.get("f1") or 0.0),
            -(row.get("recall") or 0.0),
            -(row.get("precision") or 0.0),
            int(row["combination"][1:]),
        )

    rows.sort(key=order)
    for kind in kinds:
        ranked = [r for r in rows if r["kind"] == kind and r.get("f1") is not None]
        for place, row in enumerate(ranked, start=1):
            row["rank"] = place


def _column_type(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    return "str"
