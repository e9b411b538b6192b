"""What the pages and the API show, read from the store and put through the analysis.

Every read answers whatever the store holds: device times are read within the plausible window
(`validation.plausible_window`), and a row that cannot be shown is skipped and counted
(`UnreadableRows`, with the checks in `dashboards.stored_rows`); the count is on the device page.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from dashboards.analysis import (
    NIGHT_KIND,
    Insights,
    NightSummary,
    daily_totals_of,
    in_spans,
    insights,
    night_of,
    span_times,
)
from dashboards.catalogue import Catalogue
from dashboards.dialysis import latest_labs
from dashboards.ingest import validate_envelope, validate_state
from dashboards.named_sessions import (
    HOLD_MARGIN,
    NamedSession,
    cramp_markers,
    load_spans,
    long_presses,
)
from dashboards.night_summaries import (
    NightSummaries,
    event_target,
    marker_target,
    plausible_span,
    session_key,
)
from dashboards.session_queries import SessionQueries
from dashboards.store import Store, StoredIntake
from dashboards.stored_rows import (
    aware_time,
    event_payload,
    event_row,
    intake_entry,
    intake_figures,
    quality_row,
    session_record,
    timed_row,
)
from dashboards.timebase import iso, night_window, parse_time, utc_seconds
from dashboards.validation import MAX_MAGNITUDE, Invalid, UnreadableRows, strict_json

__all__ = ["LabelError", "Queries", "iso", "night_window", "parse_time"]

# A marker press this close to a detected cramp (before its onset, after its end) belongs to it.
MARKER_BEFORE_S = 60.0
MARKER_AFTER_S = 180.0
# Missed cramps reported at a marker press are exported for research as this stretch around it.
MISSED_BEFORE_S = 60.0
MISSED_AFTER_S = 60.0
VERDICTS_FOR = {"cramp": ("cramp", "not_cramp"), "movement": (), "marker": ("missed_cramp",)}


class LabelError(ValueError):
    """A verdict that cannot be given: no such event or press, or not a verdict for it."""


@dataclass
class Queries:
    store: Store
    catalogue: Catalogue
    tz: tzinfo
    min_good_minutes: float = 240.0
    min_nights: int = 10
    unreadable: UnreadableRows = field(default_factory=UnreadableRows)
    summaries: NightSummaries = field(init=False)
    sessions: SessionQueries = field(init=False)
    min_sessions: int = 10

    def __post_init__(self) -> None:
        self.summaries = NightSummaries(self.store, self.tz, self.min_good_minutes, self.unreadable)
        self.sessions = SessionQueries(self.store, self.tz, self.unreadable, self.cached,
                                       self.min_sessions)  # fmt: skip
        self._cache: dict[Any, Any] = {}
        self._cache_version: tuple[int, int] | None = None
        self._cache_lock = threading.Lock()

    # -- nights ----------------------------------------------------------------------------

    def nights(self, first: date | None = None, last: date | None = None) -> list[NightSummary]:
        """Nights from `first` to `last`; a missing end is the data's, never past the other end."""
        if first is not None and last is None:
            last = max(first, self.last_night() or first)
        if last is not None and first is None:
            first = min(last, self.first_night() or last)
        return self.summaries.nights(first, last)

    def night(self, day: date) -> NightSummary:
        return self.summaries.nights(day, day)[0]

    def last_night(self) -> date | None:
        return self.cached(("night_at", "last"), lambda: self._night_at(last=True))

    def first_night(self) -> date | None:
        return self.cached(("night_at", "first"), lambda: self._night_at(last=False))

    def _night_at(self, *, last: bool) -> date | None:
        """The latest (or earliest) night with anything stored: the nights with a summary
        (plausible, readable sessions, events and marker presses), and an afternoon recording
        (12:00-18:00, in no night's figures) with the night that follows it."""
        nights = self.summaries.stored_nights()
        found = [nights[-1] if last else nights[0]] if nights else []
        bounds = self.summaries.stored_bounds()
        if bounds is not None:
            moment = bounds[1] if last else bounds[0]
            if night_of(moment, self.tz) is None and not self._in_named(moment):
                found.append(moment.astimezone(self.tz).date())
        if not found:
            return None
        return max(found) if last else min(found)

    def _in_named(self, moment: datetime) -> bool:
        """Whether a moment lies in a named session (dialysis, ...): it is no night's."""
        at = iso(moment)
        spans = load_spans(self.store, self.unreadable, at,
                           iso(moment + timedelta(milliseconds=1)))  # fmt: skip
        return bool(in_spans(np.array([moment.timestamp()]), spans)[0])

    def neighbours(self, day: date) -> tuple[date | None, date | None]:
        """The nights with anything stored just before and just after `day`."""
        nights = self.summaries.stored_nights()
        at = bisect_left(nights, day)
        following = at + 1 if at < len(nights) and nights[at] == day else at
        return (nights[at - 1] if at > 0 else None,
                nights[following] if following < len(nights) else None)  # fmt: skip

    # -- one night -------------------------------------------------------------------------

    def night_detail(self, night: date) -> dict[str, Any]:
        """A night's events (with their envelope traces), signal problems and marker presses.

        The timeline spans 12:00 to 12:00, so that what happened in the afternoon before the
        night (a nap, a test) is shown too; nightly figures count 18:00 to 12:00 only."""
        start, end = self._timeline_window(night)
        rows = self.store.query(
            "SELECT event_id, payload FROM event WHERE start >= ? AND start < ?"
            " ORDER BY start, phase",
            (start, end),
        )
        by_id: dict[str, dict[str, Any]] = {}
        for payload in self._event_payloads(rows):  # an ended message supersedes its started one
            if payload["event_id"] not in by_id or payload["phase"] == "ended":
                by_id[payload["event_id"]] = payload
        return {
            "night": night.isoformat(),
            "from": start,
            "to": end,
            "events": sorted(by_id.values(), key=lambda e: e["start"]),
            "problems": self._problems(start, end),
            "markers": [dict(m) for m in self._markers(start, end)],
        }

    def _timeline_window(self, night: date) -> tuple[str, str]:
        """12:00 before the night to 12:00 after it, within the plausible window."""
        night_start, end = night_window(night, self.tz)
        return plausible_span(iso(night_start - timedelta(hours=6)), iso(end))

    def _event_payloads(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Stored event messages that can be shown (the others skipped and counted)."""
        return list(self.unreadable.read(
            "event", rows, lambda r: event_payload(r["payload"], self.unreadable),
            lambda r: r["event_id"],
        ))  # fmt: skip

    def _problems(self, start: str, end: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT device, channel, at, problems FROM quality WHERE at >= ? AND at < ?"
            " ORDER BY at",
            (start, end),
        )
        key = lambda r: f"{r['device']} {r['channel']} {r['at']}"  # noqa: E731
        return _problem_stretches(
            list(self.unreadable.read("quality", rows, quality_row, key)), end
        )

    def _markers(self, start: str, end: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT device, at, source FROM marker WHERE at >= ? AND at < ? ORDER BY at",
            (start, end),
        )
        key = lambda r: f"{r['device']} {r['at']}"  # noqa: E731
        return list(self.unreadable.read("marker", rows, timed_row, key))

    def night_page(self, night: date) -> dict[str, Any]:
        """Everything the night page shows: the summary, sessions, events per calf (without
        their traces), signal problems, marker presses, the patient's word, the neighbours.
        What happened in a named session (dialysis, ...) is on its own page: only a link here."""
        start, end = self._timeline_window(night)
        spans = load_spans(self.store, self.unreadable, start, end)
        events, verdicts = self._listed_events(start, end, spans)
        for event in events:
            event["in_night"] = night_of(parse_time(event["start"]), self.tz) == night
        cramps = [e for e in events if e["kind"] == "cramp"]
        markers = self._cramp_markers(start, end, spans, verdicts, cramps)
        sessions = [s for s in self._sessions(start, end) if s["kind"] == NIGHT_KIND]
        previous, following = self.neighbours(night)
        return {
            "night": night,
            "summary": self.night(night),
            "events": events,
            "cramps": cramps,
            "movements": [e for e in events if e["kind"] == "movement"],
            "markers": markers,
            "problems": self._problems(start, end),
            "sessions": sessions,
            "named_sessions": spans,
            "channels": sorted(
                {e["channel"] for e in events} | {c for s in sessions for c in s["good_s"]}
            ),
            "window": _axis(night, self.tz, sessions, events),
            "previous": previous,
            "next": following,
        }

    def _listed_events(
        self, start: str, end: str, spans: list[Any], *, inside: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Events (without traces) starting in [start, end) outside the named sessions `spans`
        (with `inside`: in them), each with the patient's word; and every verdict there."""
        rows = self.store.query(
            "SELECT event_id, phase, device, channel, kind, start, end, duration_s, peak_uv"
            " FROM event WHERE start >= ? AND start < ? ORDER BY start, phase",
            (start, end),
        )
        by_id: dict[str, dict[str, Any]] = {}
        for event in self.unreadable.read("event", rows, event_row, lambda r: r["event_id"]):
            if event["event_id"] not in by_id or event["phase"] == "ended":
                by_id[event["event_id"]] = event
        verdicts = {t: r["verdict"] for t, r in self.store.labels(start, end).items()}
        events = sorted(by_id.values(), key=lambda e: e["start"])
        if spans:
            held = in_spans(np.array([parse_time(e["start"]).timestamp() for e in events]), spans)
            events = [e for e, k in zip(events, held.tolist(), strict=True) if k == inside]
        for event in events:
            event["verdict"] = verdicts.get(event_target(event["event_id"]))
        return events, verdicts

    def _cramp_markers(
        self, start: str, end: str, spans: list[Any], verdicts: dict[str, str],
        cramps: list[dict[str, Any]], *, inside: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Marker presses that may report a cramp, outside (or inside) the named sessions."""
        markers = []
        for marker in cramp_markers(self._markers(start, end)):
            moment = parse_time(marker["at"])
            if spans and bool(in_spans(np.array([moment.timestamp()]), spans)[0]) != inside:
                continue
            target = marker_target(marker["device"], marker["at"])
            marker["target"] = target
            marker["verdict"] = verdicts.get(target)
            marker["cramp"] = _cramp_near(moment, cramps)
            markers.append(marker)
        return markers

    def _sessions(self, start: str, end: str) -> list[dict[str, Any]]:
        """Sessions started in [start, end): their good signal per channel and their measures
        parsed (rows that cannot be read skipped and counted)."""
        rows = self.store.query(
            "SELECT device, session_start, recorded_s, good_s, measures, kind, session_id"
            " FROM session WHERE session_start >= ? AND session_start < ? ORDER BY session_start",
            (start, end),
        )

        def read(row: Any) -> dict[str, Any]:
            record = session_record(row)
            return {"device": record.device, "session_start": row["session_start"],
                    "recorded_s": record.recorded_s, "good_s": dict(record.good_s),
                    "measures": self.summaries.measures(row), "kind": record.kind,
                    "session_id": record.session_id}  # fmt: skip

        return list(self.unreadable.read("session", rows, read, session_key))

    # -- one named session (dialysis, ...) ---------------------------------------------------

    def session_page(self, session_id: str) -> dict[str, Any] | None:
        """Everything a session's page shows: its summary, details and figures, the labs of
        the month before, its events per calf, presses and signal problems, the timeline's
        span, the sessions before and after; None when there is no such session."""
        data = self.sessions.data()
        i = data.index(session_id)
        if i is None:
            return None
        named, summary, figures = data.named[i], data.summaries[i], data.figures[i]
        span = named.span
        start, end = iso(span.start), iso(span.end)
        events, verdicts = self._listed_events(start, end, [])
        for event in events:
            event["in_night"] = True  # listed as counted (for this session)
        cramps = [e for e in events if e["kind"] == "cramp"]
        pressed = self._markers(start, iso(span.end + HOLD_MARGIN))  # with the ending hold
        markers = [m for m in self._cramp_markers(start, iso(span.end + HOLD_MARGIN), [],
                                                  verdicts, cramps) if m["at"] < end]  # fmt: skip
        recordings = named.recordings
        channels = sorted({e["channel"] for e in events}
                          | {c for r in recordings for c in r["good_s"]})  # fmt: skip
        margin = timedelta(minutes=15)
        previous = data.named[i - 1].session_id if i > 0 else None
        following = data.named[i + 1].session_id if i + 1 < len(data.named) else None
        return {
            "session": named, "summary": summary, "figures": figures,
            "details": named.details, "notes": figures.notes(),
            "labs": latest_labs(data.labs, span.origin),
            "before": data.named[data.previous[i]] if data.previous[i] is not None else None,
            "events": events, "cramps": cramps,
            "movements": [e for e in events if e["kind"] == "movement"],
            "markers": markers, "long_presses": long_presses(pressed),
            "problems": self._problems(start, end), "recordings": recordings,
            "channels": channels, "in_progress": self._recording_now(named),
            "window": {"from": iso(span.start - margin), "to": iso(span.end + margin)},
            "previous": previous, "next": following,
        }  # fmt: skip

    def _recording_now(self, named: NamedSession) -> bool:
        """Whether a device's latest state says it is recording this session now."""
        if named.open:
            return True
        for row in self.store.query(
            "SELECT device, status, state FROM device WHERE device = ?", (named.device,)
        ):
            state = self._device_json(row, "state")
            if state and row["status"] != "offline" and state.get("session_id") == named.session_id:
                return True
        return False

    # -- one event -------------------------------------------------------------------------

    def event(self, event_id: str) -> dict[str, Any] | None:
        """The event's ended message (else its started one), if it can be shown."""
        rows = self.store.query(
            "SELECT event_id, payload FROM event WHERE event_id = ? ORDER BY phase = 'ended' DESC",
            (event_id,),
        )
        found = self._event_payloads(rows[:1])
        return found[0] if found else None

    def event_page(self, event_id: str) -> dict[str, Any] | None:
        """An event with its night, the patient's word, and the same cramp on other channels."""
        event = self.event(event_id)
        if event is None:
            return None
        for optional in ("end", "end_s", "peak_uv", "mean_uv", "floor_uv", "area_uvs",
                         "median_freq_hz", "quality", "envelope"):  # fmt: skip
            event.setdefault(optional, None)
        start = parse_time(event["start"])
        end = parse_time(event["end"]) if event.get("end") else start
        others = self.store.query(
            "SELECT event_id, kind, channel, start, end, duration_s, peak_uv, phase FROM event"
            " WHERE kind = ? AND channel != ? AND start < ? AND start >= ? ORDER BY start",
            (event["kind"], event["channel"], iso(end + timedelta(seconds=1)),
             iso(start - timedelta(hours=1))),
        )  # fmt: skip
        overlapping: dict[str, dict[str, Any]] = {}
        for row in self.unreadable.read("event", others, event_row, lambda r: r["event_id"]):
            other_end = parse_time(row["end"] or row["start"])
            if other_end >= start and (
                row["event_id"] not in overlapping or row["phase"] == "ended"
            ):
                overlapping[row["event_id"]] = row
        label = self.store.labels(event["start"], iso(start + timedelta(milliseconds=1)))
        verdict = label.get(event_target(event_id))
        return {
            "event": event,
            "night": night_of(start, self.tz),
            "session_start": start - timedelta(seconds=float(event["start_s"])),
            "verdict": verdict["verdict"] if verdict else None,
            "others": list(overlapping.values()),
        }

    # -- the patient's word ----------------------------------------------------------------

    def set_label(self, target: str, verdict: str | None) -> dict[str, Any]:
        """Record (or, with None, take back) the patient's verdict on an event or a press."""
        kind, at = self._target(target)
        if verdict is not None and verdict not in VERDICTS_FOR[kind]:
            allowed = " or ".join(VERDICTS_FOR[kind]) or "nothing (only cramps are asked about)"
            raise LabelError(f"a {kind} can be labelled {allowed}, not {verdict!r}")
        self.store.set_label(target, verdict, at)
        return {"target": target, "verdict": verdict, "at": at}

    def _target(self, target: str) -> tuple[str, str]:
        """(kind, time) of a label target, or a LabelError."""
        if target.startswith("event:"):
            event = self.event(target.removeprefix("event:"))
            if event is None:
                raise LabelError(f"there is no event {target.removeprefix('event:')!r}")
            return event["kind"], event["start"]
        if target.startswith("marker:") and "@" in target:
            device, at = target.removeprefix("marker:").split("@", 1)
            if self.store.query("SELECT 1 FROM marker WHERE device = ? AND at = ?", (device, at)):
                return "marker", at
            raise LabelError(f"there is no marker press of {device!r} at {at!r}")
        raise LabelError(
            f"{target!r} is not 'event:<event id>' or 'marker:<device>@<time>' of a stored one"
        )

    def labels(self, night: date | None = None) -> list[dict[str, Any]]:
        """Every verdict (of one night), with what it is about, oldest first."""
        start, end = self._timeline_window(night) if night else (None, None)
        labels = self.store.labels(start, end).items()
        return list(self.unreadable.read("label", labels, self._label, lambda item: item[0]))

    def _label(self, item: tuple[str, Any]) -> dict[str, Any]:
        """A verdict with what it is about and its night."""
        target, row = item
        out = {"target": target, "verdict": row["verdict"], "at": row["at"],
               "answered": row["answered"], "start": row["at"]}  # fmt: skip
        if target.startswith("event:"):
            event = self.store.query(
                "SELECT device, channel, kind, start, end FROM event WHERE event_id = ?"
                " ORDER BY phase = 'ended' DESC LIMIT 1",
                (target.removeprefix("event:"),),
            )
            if event:
                out |= {"event_id": target.removeprefix("event:"), **dict(event[0])}
        else:
            device, at = target.removeprefix("marker:").split("@", 1)
            out |= {"device": device, "kind": "marker", "start": at, "end": at}
        moment = aware_time(out["start"], "start")
        out["night"] = (night_of(moment, self.tz) or moment.date()).isoformat()
        return out

    def research_export(self, night: date) -> dict[str, Any]:
        """The night's answered detections and the patient's word as ground truth, in seconds
        from the start of the night's first recording (the files `crampwatch evaluate` reads).

        Truth: cramps the patient confirmed, and cramps they reported at a marker press that
        nothing detected (MISSED_BEFORE_S before to MISSED_AFTER_S after the press, as the
        extent is unknown). Detections: every cramp they answered for (yes or no), so that the
        scores are by their word: a "not a cramp" is a false detection, a missed one a miss."""
        page = self.night_page(night)
        starts = [parse_time(s["session_start"]) for s in page["sessions"]]  # read checked
        origin = min(starts) if starts else night_window(night, self.tz)[0]

        def seconds(text: str) -> float:
            return round((parse_time(text) - origin).total_seconds(), 3)

        answered = [
            {**e, "end": e["end"] or e["start"]}  # an end always, even where the store lacks it
            for e in page["events"] if e["verdict"] and e["phase"] == "ended"
        ]  # fmt: skip
        detections = [
            {"type": "event", "event_id": e["event_id"], "kind": e["kind"], "phase": "ended",
             "channel": e["channel"], "start_s": seconds(e["start"]), "end_s": seconds(e["end"]),
             "start": e["start"], "end": e["end"], "verdict": e["verdict"]}
            for e in answered
        ]  # fmt: skip
        truth = [
            {"kind": "cramp", "start_s": seconds(e["start"]), "end_s": seconds(e["end"]),
             "channel": e["channel"], "why": "confirmed"}
            for e in answered if e["verdict"] == "cramp"
        ]  # fmt: skip
        for marker in page["markers"]:
            if marker["verdict"] == "missed_cramp":
                at = seconds(marker["at"])
                truth.append({"kind": "cramp", "start_s": round(at - MISSED_BEFORE_S, 3),
                              "end_s": round(at + MISSED_AFTER_S, 3), "channel": "",
                              "why": "missed, reported at a marker press"})  # fmt: skip
        truth.sort(key=lambda t: t["start_s"])
        unanswered = sum(1 for e in page["cramps"] if not e["verdict"])
        return {"night": night.isoformat(), "origin": iso(origin), "detections": detections,
                "truth": truth, "unanswered_cramps": unanswered}  # fmt: skip

    # -- intake and insights ---------------------------------------------------------------

    def intake_entries(
        self, start: str | None = None, end: str | None = None, *, limit: int = -1,
        offset: int = 0,
    ) -> list[StoredIntake]:  # fmt: skip
        """`Store.intakes` without the entries a page cannot show (skipped and counted)."""
        entries = self.store.intakes(start, end, limit=limit, offset=offset)
        return list(self.unreadable.read("intake", entries, intake_entry, lambda e: e.entry_id))

    def _kind(self, factor: str) -> str:
        found = self.catalogue.find(factor)
        return found.kind if found is not None else "amount"

    def factors_logged(self) -> list[str]:
        return [r["factor"] for r in self.store.query("SELECT DISTINCT factor FROM intake")]

    def daily_totals(self) -> dict[date, dict[str, float]]:
        """Intake per local day and factor, in canonical units (kept until the data change)."""
        return self.cached("daily_totals", self._daily_totals)

    def _daily_totals(self) -> dict[date, dict[str, float]]:
        return daily_totals_of(*self._intake_columns(), self.tz)

    def _intake_columns(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """Every intake entry's time (POSIX seconds), factor and amount: all at once when they
        are as intake stores them, else entry by entry, skipping (and counting) the unreadable."""
        ids, times, factors, amounts = self.store.columns(
            "SELECT entry_id, time, factor, amount FROM intake", 4
        )
        if _stored_as_intake_does(times, factors, amounts):
            try:
                seconds, values = utc_seconds(times), np.array(amounts, dtype=float)
            except ValueError:
                pass
            else:
                if np.isfinite(seconds).all() and ((values >= 0) & (values <= MAX_MAGNITUDE)).all():
                    return seconds, list(factors), values
        rows = zip(ids, times, factors, amounts, strict=True)
        kept = list(self.unreadable.read(
            "intake", rows, lambda r: intake_figures(*r[1:]), lambda r: r[0]
        ))  # fmt: skip
        return (np.array([k[0] for k in kept], dtype=float), [k[1] for k in kept],
                np.array([k[2] for k in kept], dtype=float))  # fmt: skip

    def cached(self, key: Any, compute: Any) -> Any:
        """`compute()`, kept until the store's data change."""
        version = self.store.version()
        with self._cache_lock:
            if self._cache_version != version:
                self._cache.clear()
                self._cache_version = version
            if key in self._cache:
                return self._cache[key]
        value = compute()
        with self._cache_lock:
            if self._cache_version == version:
                self._cache[key] = value
        return value

    def insights(
        self, include_incomplete: bool = False
    ) -> tuple[Insights, list[NightSummary], dict[date, dict[str, float]]]:
        """The insights, and the nights and daily totals behind them (kept until the data
        change)."""
        return self.cached(("insights", include_incomplete),
                            lambda: self._insights(include_incomplete))  # fmt: skip

    def _insights(
        self, include_incomplete: bool
    ) -> tuple[Insights, list[NightSummary], dict[date, dict[str, float]]]:
        totals = self.daily_totals()
        nights = self.nights()
        factors = {f for per in totals.values() for f in per}
        kinds = {f: self._kind(f) for f in factors}
        units = {f: self.catalogue.get(f).unit for f in factors}
        result = insights(
            nights, totals, kinds, min_nights=self.min_nights,
            include_incomplete=include_incomplete, units=units,
        )  # fmt: skip
        return result, nights, totals

    # -- the report ------------------------------------------------------------------------

    def cramps_between(self, first: date, last: date) -> list[dict[str, Any]]:
        """Cramps of nights `first`..`last` (detected, with the patient's word; and missed ones
        they reported), oldest first; detected cramps they rejected are marked so."""
        start, end = iso(night_window(first, self.tz)[0]), iso(night_window(last, self.tz)[1])
        start, end = plausible_span(start, end)
        rows = self.store.query(
            "SELECT event_id, device, kind, channel, start, end, duration_s, peak_uv FROM event"
            " WHERE kind = 'cramp' AND phase = 'ended' AND start >= ? AND start < ? ORDER BY start",
            (start, end),
        )
        verdicts = {t: r["verdict"] for t, r in self.store.labels(start, end).items()}
        spans = load_spans(self.store, self.unreadable, start, end)
        starts, ends = span_times(spans)

        def in_night(at: str) -> date | None:  # a named session's cramps are no night's
            moment = parse_time(at)
            t = moment.timestamp()
            if bool(((starts <= t) & (t < ends)).any()):
                return None
            return night_of(moment, self.tz)

        cramps = []
        for item in self.unreadable.read("event", rows, event_row, lambda r: r["event_id"]):
            item["verdict"] = verdicts.get(event_target(item["event_id"]))
            item["night"] = in_night(item["start"])
            if item["night"] is not None:
                cramps.append(item)
        for marker in cramp_markers(self._markers(start, end)):
            if verdicts.get(marker_target(marker["device"], marker["at"])) == "missed_cramp":
                cramps.append({"event_id": None, "device": marker["device"], "channel": None,
                               "start": marker["at"], "end": None, "duration_s": None,
                               "peak_uv": None, "verdict": "missed_cramp",
                               "night": in_night(marker["at"])})  # fmt: skip
        return sorted((c for c in cramps if c["night"] is not None), key=lambda c: c["start"])

    def intake_summary(self, first: date, last: date) -> list[dict[str, Any]]:
        """Per factor over the days `first`..`last`: days logged, total and mean per logged day."""
        totals = self.daily_totals()
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        logged_days = [d for d in days if d in totals]
        out = []
        for factor in sorted({f for d in logged_days for f in totals[d]}):
            values = [totals[d][factor] for d in logged_days if factor in totals[d]]
            found = self.catalogue.find(factor)
            out.append({
                "factor": factor,
                "label": found.label if found else factor,
                "unit": found.unit if found else "",
                "days": len(values),
                "mean": sum(values) / len(values),
                "kind": found.kind if found else "amount",
            })  # fmt: skip
        return out

    # -- device status ---------------------------------------------------------------------

    def _device_json(self, row: Any, column: str) -> dict[str, Any] | None:
        """The device's latest state or envelope message, if it passes the checks it passed
        on arrival (else skipped and counted)."""
        if not row[column]:
            return None
        check = DEVICE_MESSAGES[column]

        def read(text: str) -> dict[str, Any]:
            payload = strict_json(text)
            if not isinstance(payload, dict):
                raise Invalid("not a JSON object")
            return check(payload, row["device"], datetime.now(UTC))

        found = self.unreadable.read(
            f"device {column}", [row[column]], read, lambda _: row["device"]
        )
        return next(iter(found), None)

    def status(self) -> dict[str, Any]:
        devices = []
        for row in self.store.query("SELECT * FROM device ORDER BY device"):
            latest_quality = self.store.query(
                "SELECT device, channel, at, problems FROM quality WHERE device = ? AND at = "
                "(SELECT MAX(at) FROM quality q WHERE q.device = quality.device AND"
                " q.channel = quality.channel) ORDER BY channel",
                (row["device"],),
            )
            key = lambda q: f"{q['device']} {q['channel']} {q['at']}"  # noqa: E731
            devices.append(
                {
                    "device": row["device"],
                    "status": row["status"] or "unknown",
                    "status_at": _readable_time(row["status_at"]),
                    "last_seen": _readable_time(row["last_seen"]),
                    "state": self._device_json(row, "state"),
                    "envelope": self._device_json(row, "envelope"),
                    "quality": [
                        {"channel": q["channel"], "at": q["at"], "problems": q["problems"]}
                        for q in self.unreadable.read("quality", latest_quality, quality_row, key)
                    ],
                }
            )  # fmt: skip
        refusals = self.store.query(
            "SELECT at, topic, reason FROM refusal ORDER BY id DESC LIMIT 20"
        )
        return {
            "devices": devices,
            "ingest": {
                "stored": self.store.counter("stored"),
                "refused": self.store.counter("refused"),
                "unreadable_rows": self.unreadable.total(),
                "recent_refusals": [{**dict(r), "at": _readable_time(r["at"])} for r in refusals],
            },
        }


DEVICE_MESSAGES = {"state": validate_state, "envelope": validate_envelope}


def _stored_as_intake_does(times: Any, factors: Any, amounts: Any) -> bool:
    """Whether intake columns are all of the types intake writes (UTC text ending in Z, text,
    numbers): the case for every store that intake alone has written."""
    return (
        all(type(t) is str and t.endswith("Z") for t in times)
        and all(type(f) is str for f in factors)
        and all(type(a) in (int, float) for a in amounts)
    )


def _readable_time(text: Any) -> str | None:
    """A stored time the pages can write, else None."""
    try:
        aware_time(text)
    except (ValueError, TypeError):
        return None
    return text


def _cramp_near(moment: datetime, cramps: list[dict[str, Any]]) -> str | None:
    """The detected cramp a marker press at `moment` belongs to, if any."""
    for cramp in cramps:
        if cramp.get("verdict") == "not_cramp":
            continue
        start = parse_time(cramp["start"])
        end = parse_time(cramp["end"]) if cramp["end"] else moment
        if (start - timedelta(seconds=MARKER_BEFORE_S) <= moment
                <= end + timedelta(seconds=MARKER_AFTER_S)):  # fmt: skip
            return cramp["event_id"]
    return None


def _axis(night: date, tz: tzinfo, sessions: list[Any], events: list[dict[str, Any]]) -> dict:
    """The timeline's span: the recording (or the events) with a margin, within 12:00-12:00;
    20:00-08:00 when there is nothing."""
    night_start, night_end = night_window(night, tz)
    lo_limit = night_start - timedelta(hours=6)
    spans = [
        (parse_time(s["session_start"]),
         parse_time(s["session_start"]) + timedelta(seconds=s["recorded_s"]))
        for s in sessions
    ] + [
        (parse_time(e["start"]), parse_time(e["end"]) if e["end"] else parse_time(e["start"]))
        for e in events
    ]  # fmt: skip
    if not spans:
        lo, hi = night_start + timedelta(hours=2), night_end - timedelta(hours=4)
    else:
        lo = max(lo_limit, min(s for s, _ in spans) - timedelta(minutes=15))
        hi = min(night_end, max(e for _, e in spans) + timedelta(minutes=15))
    return {"from": iso(lo), "to": iso(hi)}


def _problem_stretches(rows: list[Any], night_end: str) -> list[dict[str, Any]]:
    """Quality changes -> stretches with problems per channel (open ones end at the night's end
    or the next change)."""
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    stretches = []
    for row in rows:
        key = (row["device"], row["channel"])
        problems = row["problems"]  # parsed (stored_rows.quality_row)
        if key in open_:
            stretch = open_.pop(key)
            stretch["to"] = row["at"]
            stretches.append(stretch)
        if problems:
            open_[key] = {"device": key[0], "channel": key[1], "from": row["at"],
                          "problems": problems}  # fmt: skip
    for stretch in open_.values():
        stretch["to"] = night_end
        stretches.append(stretch)
    return sorted(stretches, key=lambda s: s["from"])
