"""What the session pages, the API and the report show about named sessions (dialysis, ...): read
from the store (`dashboards.named_sessions`) and put through the analysis
(`analysis.summarize_sessions`, `dialysis.session_figures`, `session_analysis.session_insights`).

Every session is computed together (kept until the data change): the weight gain needs the
session before, and the analysis needs them all. As everywhere, rows that cannot be read are
skipped and counted (`UnreadableRows`), and the patient's word counts as it does for nights:
a detection they rejected leaves the figures, a missed cramp they reported at a press counts.
A long press of the button starts or ends a session: it is not a press to ask about.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from dashboards.analysis import SessionSummary, span_index, summarize_sessions
from dashboards.dialysis import (
    ANALYTES,
    LabResult,
    SessionFigures,
    latest_labs,
    session_figures,
)
from dashboards.named_sessions import HOLD_MARGIN, NamedSession, cramp_markers, load_named
from dashboards.night_summaries import event_target, marker_target
from dashboards.session_analysis import SessionInsights, session_insights
from dashboards.store import Store
from dashboards.stored_rows import aware_time, cramp_record, session_record, timed_row
from dashboards.timebase import iso
from dashboards.validation import UnreadableRows

REPORT_SESSIONS_LISTED = 40  # longer reports list months instead of sessions


@dataclass
class SessionData:
    """Every named session with its figures, the factors for the analysis, and the labs."""

    named: list[NamedSession] = field(default_factory=list)
    summaries: list[SessionSummary] = field(default_factory=list)
    figures: list[SessionFigures] = field(default_factory=list)
    factors: dict[str, dict[str, float]] = field(default_factory=dict)
    labs: list[LabResult] = field(default_factory=list)
    previous: list[int | None] = field(default_factory=list)

    def index(self, session_id: str) -> int | None:
        for i, named in enumerate(self.named):
            if named.session_id == session_id:
                return i
        return None


@dataclass
class SessionQueries:
    store: Store
    tz: tzinfo
    unreadable: UnreadableRows
    cached: Callable[[Any, Callable[[], Any]], Any]
    min_sessions: int = 10
    _parsed: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- all sessions ----------------------------------------------------------------------

    def data(self) -> SessionData:
        return self.cached("sessions", self._data)

    def _data(self) -> SessionData:
        with self._lock:  # one computation at a time: they share the details already read
            return self._compute()

    def _compute(self) -> SessionData:
        named = load_named(self.store, self.unreadable, parsed=self._parsed)
        ids = {n.session_id for n in named}  # details are read again only when they change
        self._parsed = {key: d for key, d in self._parsed.items() if key[0] in ids}
        labs = self.labs()
        summaries = self._summaries(named)
        previous: list[int | None] = []
        last_of_kind: dict[str, int] = {}
        for i, session in enumerate(named):
            previous.append(last_of_kind.get(session.kind))
            last_of_kind[session.kind] = i
        figures = [
            session_figures(
                session.details,
                named[before].details if before is not None else None,
                summary.recorded_minutes / 60.0 if summary.has_recording else None,
            )
            for session, summary, before in zip(named, summaries, previous, strict=True)
        ]
        factors = {
            session.session_id: _factor_values(session, figure, labs)
            for session, figure in zip(named, figures, strict=True)
        }
        return SessionData(named, summaries, figures, factors, labs, previous)

    def _summaries(self, named: list[NamedSession]) -> list[SessionSummary]:
        """Each session's figures with the patient's word (as for nights)."""
        spans = [n.span for n in named]
        if not spans:
            return []
        lo, hi = iso(min(s.start for s in spans)), iso(max(s.end for s in spans))
        read = self.unreadable.read
        events = list(read("event", self.store.query(
            # for each session (CROSS JOIN keeps that order), its events by the start index
            "SELECT DISTINCT e.event_id, e.channel, e.kind, e.start, e.end, e.duration_s,"
            " e.peak_uv FROM named_session n CROSS JOIN event e INDEXED BY event_start"
            " ON e.start >= n.span_start AND e.start < n.span_end WHERE e.phase = 'ended'"
            " ORDER BY e.start",
        ), cramp_record, lambda r: r["event_id"]))  # fmt: skip
        last = iso(max(s.end for s in spans) + HOLD_MARGIN)  # the hold that ended the last one
        markers = cramp_markers(list(read("marker", self.store.query(
            "SELECT device, at, source FROM marker WHERE at >= ? AND at < ? ORDER BY at",
            (lo, last),
        ), timed_row, lambda r: f"{r['device']} {r['at']}")))  # fmt: skip
        verdicts = {t: row["verdict"] for t, row in self.store.labels(lo, hi).items()}
        nights = list(read("session", self.store.query(
            "SELECT device, session_start, recorded_s, good_s, kind, session_id FROM session"
            " WHERE kind = 'night' AND session_start >= ? AND session_start < ?",
            (iso(min(s.start for s in spans) - timedelta(days=2)), hi),
        ), session_record, lambda r: f"{r['device']} {r['session_start']}"))  # fmt: skip
        recordings = [r["record"] for n in named for r in n.recordings] + nights
        said = {e.event_id: verdicts.get(event_target(e.event_id)) for e in events}
        kept = [e for e in events if said[e.event_id] != "not_cramp"]
        base = summarize_sessions(kept, recordings, spans)
        counts = {
            name: np.bincount(
                span_index(np.array([t.timestamp() for t in times], dtype=float), spans) + 1,
                minlength=len(spans) + 1,
            )[1:]
            for name, times in (
                ("rejected", [e.start for e in events
                              if said[e.event_id] == "not_cramp" and e.kind == "cramp"]),
                ("confirmed", [e.start for e in kept if said[e.event_id] == "cramp"]),
                ("markers", [aware_time(m["at"]) for m in markers]),
            )
        }  # fmt: skip
        missed = [aware_time(m["at"]) for m in markers
                  if verdicts.get(marker_target(m["device"], m["at"])) == "missed_cramp"]  # fmt: skip
        missed_in = span_index(np.array([t.timestamp() for t in missed], dtype=float), spans)
        out = []
        for i, summary in enumerate(base):
            reported = sorted(t for t, j in zip(missed, missed_in.tolist(), strict=True) if j == i)
            first = min((t for t in (summary.first_cramp, *reported[:1]) if t), default=None)
            origin = summary.origin
            minutes_in = sorted(
                (*summary.cramp_minutes_in, *((t - origin).total_seconds() / 60 for t in reported))
            )
            out.append(replace(
                summary, cramps=summary.cramps + len(reported), reported=len(reported),
                rejected=int(counts["rejected"][i]), confirmed=int(counts["confirmed"][i]),
                markers=int(counts["markers"][i]), first_cramp=first,
                first_cramp_min=(first - origin).total_seconds() / 60 if first else None,
                cramp_minutes_in=tuple(minutes_in),
            ))  # fmt: skip
        return out

    def labs(self) -> list[LabResult]:
        rows = self.store.labs()
        return list(self.unreadable.read("lab result", rows, _lab, lambda r: r["entry_id"]))

    # -- what the pages show ---------------------------------------------------------------

    def rows(self, first: date | None = None, last: date | None = None) -> list[dict[str, Any]]:
        """The sessions that started on days `first`..`last` (local), newest first."""
        data = self.data()
        out = []
        for i, session in enumerate(data.named):
            day = session.span.origin.astimezone(self.tz).date()
            if (first is None or day >= first) and (last is None or day <= last):
                out.append(self.row(data, i))
        return out[::-1]

    def row(self, data: SessionData, i: int) -> dict[str, Any]:
        session, summary, figures = data.named[i], data.summaries[i], data.figures[i]
        return {
            "session_id": session.session_id, "kind": session.kind, "day":
            session.span.origin.astimezone(self.tz).date(), "session": session,
            "summary": summary, "figures": figures, "details": session.details,
        }  # fmt: skip

    def insights(self) -> SessionInsights:
        def compute() -> SessionInsights:
            data = self.data()
            return session_insights(data.summaries, data.factors, min_sessions=self.min_sessions)

        return self.cached("session_insights", compute)

    def open_sessions(self) -> list[NamedSession]:
        """Sessions started on the dashboard that nothing has ended yet."""
        return [s for s in self.data().named if s.open]

    def latest_labs(self, before: datetime | None = None) -> dict[str, LabResult]:
        labs = self.data().labs
        if before is None:
            return {lab.analyte: lab for lab in labs}
        return latest_labs(labs, before)

    def report(self, first: date, last: date) -> dict[str, Any]:
        """The report's dialysis section: the period's sessions, totals and the analysis."""
        rows = self.rows(first, last)[::-1]
        if not rows:
            return {"rows": [], "sessions": 0}
        summaries = [r["summary"] for r in rows]
        recorded = [s for s in summaries if s.has_recording]
        rates = [r["figures"].uf_rate for r in rows if r["figures"].uf_rate is not None]
        return {
            "rows": rows,
            "months": session_months(rows) if len(rows) > REPORT_SESSIONS_LISTED else None,
            "sessions": len(rows),
            "recorded": len(recorded),
            "complete": sum(s.complete for s in summaries),
            "with_cramps": sum(s.cramps > 0 for s in recorded),
            "cramps": sum(s.cramps for s in recorded),
            "per_session": (sum(s.cramps for s in recorded) / len(recorded)) if recorded else None,
            "ended_early": sum(r["details"].ended_early for r in rows),
            "uf_rates": len(rates),
            "uf_over_13": sum(rate > 13.0 for rate in rates),
            "nadir_low": sum(r["figures"].nadir_low for r in rows),
            "labs": self.latest_labs(),
            "insights": self.insights(),
        }


def session_months(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sessions by calendar month (rows oldest first): for a report too long to list each."""
    out: list[dict[str, Any]] = []
    for row in rows:
        month = row["day"].replace(day=1)
        if not out or out[-1]["month"] != month:
            out.append({"month": month, "sessions": 0, "recorded": 0, "cramps": 0,
                        "with_cramps": 0, "rates": [], "over_13": 0, "nadir_low": 0,
                        "ended_early": 0})  # fmt: skip
        m, summary, figures = out[-1], row["summary"], row["figures"]
        m["sessions"] += 1
        m["recorded"] += summary.has_recording
        m["cramps"] += summary.cramps if summary.has_recording else 0
        m["with_cramps"] += summary.has_recording and summary.cramps > 0
        if figures.uf_rate is not None:
            m["rates"].append(figures.uf_rate)
            m["over_13"] += figures.uf_rate > 13.0
        m["nadir_low"] += figures.nadir_low
        m["ended_early"] += row["details"].ended_early
    for m in out:
        rates = m.pop("rates")
        m["mean_rate"] = sum(rates) / len(rates) if rates else None
    return out


def _lab(row: Any) -> LabResult:
    analyte = row["analyte"]
    if analyte not in ANALYTES:
        raise ValueError(f"unknown analyte {analyte!r}")
    quantity = ANALYTES[analyte].quantity
    value = float(row["value"])
    if not quantity.low <= value <= quantity.high:
        raise ValueError(f"{analyte} {value} is outside {quantity.low}-{quantity.high}")
    return LabResult(row["entry_id"], aware_time(row["time"]), analyte, value, row["note"] or "",
                     row["source"])  # fmt: skip


def _factor_values(
    session: NamedSession, figures: SessionFigures, labs: Sequence[LabResult]
) -> dict[str, float]:
    """A session's values of the analysis' factors (those known)."""
    details = session.details
    values = {
        "uf_rate": figures.uf_rate,
        "uf_volume": details.uf_volume_ml,
        "idwg": figures.idwg_kg,
        "sodium": details.dialysate_sodium_mmol_l,
        "nadir_systolic": figures.nadir.systolic if figures.nadir else None,
    }
    for analyte, lab in latest_labs(labs, session.span.origin).items():
        values[analyte] = lab.value
    return {k: float(v) for k, v in values.items() if v is not None}
