"""Per-night summaries kept in the store, so that no page recomputes a year of nights.

Every write that can change a night (an event, a session's state, a marker press, the patient's
word) notes its time in the store's `changed` table. Before nights are read, the nights those
times fall in are recomputed (with `analysis.summarize_nights`, the one definition of the
figures) and stored as JSON; a change of time zone, or a migration, recomputes all of them.
Per night the summary adds what the analysis alone does not know: the figures per channel
(calf), the patient's word (rejected cramps leave every figure; missed cramps they reported at a
marker press count as cramps) and what a device measured (PLMS and their index, fasciculations).
Whatever happened inside a named session (dialysis, ...: `dashboards.named_sessions`) is that
session's and counts for no night: its events, marker presses and the patient's word on them,
and its recordings' signal and measures.

Whatever the store holds, the summaries can be computed: only device times within the plausible
window (`validation.plausible_window`) are read, and rows that cannot be read are skipped and
counted (`dashboards.stored_rows`), as every other read of the store does.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, TypeVar

import numpy as np

from dashboards.analysis import (
    NIGHT_KIND,
    CrampRecord,
    NightSummary,
    SessionRecord,
    SessionSpan,
    in_spans,
    night_of,
    night_share,
    session_night,
    summarize_nights,
)
from dashboards.formatting import duration, hours_minutes, short_day
from dashboards.named_sessions import cramp_markers, load_spans
from dashboards.store import EVERYTHING, MEASURED_COUNTS, MEASURED_RATES, Store
from dashboards.stored_rows import (
    aware_time,
    cramp_record,
    session_measures,
    session_record,
    timed_row,
)
from dashboards.timebase import iso, night_window, zone_key
from dashboards.validation import UnreadableRows, plausible_window

T = TypeVar("T")
TZ_KEY = "summary_tz"
TIME_PATTERN = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*"  # a stored time's shape (GLOB)


def session_key(row: Any) -> str:
    """How an unreadable session row is named in the log."""
    return f"{row['device']} {row['session_start']}"


def event_target(event_id: str) -> str:
    """The label target of an event."""
    return f"event:{event_id}"


def marker_target(device: str, at: str) -> str:
    """The label target of a marker press."""
    return f"marker:{device}@{at}"


@dataclass
class NightData:
    """What the summaries of some nights are computed from."""

    events: list[CrampRecord]
    sessions: list[tuple[SessionRecord, dict[str, float]]]
    markers: list[tuple[str, datetime]]  # (target, time)
    verdicts: dict[str, str]  # target -> verdict
    spans: list[SessionSpan] = field(default_factory=list)  # named sessions: no night's


class NightSummaries:
    """The stored summaries of one store, read and refreshed in one time zone."""

    def __init__(
        self, store: Store, tz: tzinfo, min_good_minutes: float = 240.0,
        unreadable: UnreadableRows | None = None,
    ) -> None:  # fmt: skip
        self.store, self.tz, self.min_good_minutes = store, tz, min_good_minutes
        self.unreadable = unreadable if unreadable is not None else UnreadableRows()
        self._lock = threading.Lock()
        self._zone_checked = False  # the stored summaries' zone is this one (checked once)
        self._parsed: list[NightSummary] = []
        self._raw: dict[str, dict] = {}
        self._parsed_version: tuple[int, int] | None = None
        self._refreshes = 0

    # -- reading ---------------------------------------------------------------------------

    def nights(self, first: date | None, last: date | None) -> list[NightSummary]:
        """Nights `first`..`last` (each defaulting to the stored span); nights with nothing
        stored are nights without data, never nights without cramps."""
        stored = [n for n in self._stored() if (first is None or n.night >= first)
                  and (last is None or n.night <= last)]  # fmt: skip
        if not stored and (first is None or last is None):
            return []
        first = first or stored[0].night
        last = last or stored[-1].night
        by_night = {n.night: n for n in stored}
        return [
            self._completed(by_night.get(day) or _no_data(day))
            for day in (first + timedelta(days=i) for i in range((last - first).days + 1))
        ]

    def stored_nights(self) -> list[date]:
        """The nights with a stored (and readable) summary, in order: the nights with anything
        recorded."""
        return [n.night for n in self._stored()]

    def _stored(self) -> list[NightSummary]:
        """Every stored summary, parsed once per change of the data."""
        self.refresh()
        # parsed again only when summaries were written here, or by another connection
        version = (self._refreshes, self.store.version()[1])
        with self._lock:
            if self._parsed_version == version:
                return self._parsed
        texts = self.store.night_summaries(None, None)
        raw = list(self.unreadable.read("night summary", texts, json.loads, lambda t: t[:40]))
        pairs = list(self.unreadable.read(
            "night summary", raw, lambda item: (item, NightSummary.from_dict(item, self.tz)),
            lambda item: str(item)[:40],
        ))  # fmt: skip
        raw = [item for item, _ in pairs]
        parsed = [summary for _, summary in pairs]
        with self._lock:
            self._parsed, self._parsed_version = parsed, version
            self._raw = {item["night"]: item for item in raw}
        return parsed

    def dicts(self, first: date, last: date) -> list[dict]:
        """`nights(first, last)` as JSON-ready dicts (the API's answer), without building them
        again from the summaries."""
        nights = self.nights(first, last)
        with self._lock:
            raw = self._raw
        out = []
        for night in nights:
            stored = raw.get(night.night.isoformat())
            if stored is None or stored.get("complete") != night.complete:
                out.append(night.to_dict())
            else:
                out.append(stored)
        return out

    def _completed(self, night: NightSummary) -> NightSummary:
        complete = night.has_data and night.good_minutes >= self.min_good_minutes
        return night if complete == night.complete else replace(night, complete=complete)

    # -- keeping them up to date -----------------------------------------------------------

    def refresh(self) -> None:
        """Recompute the nights whose data changed since the last refresh."""
        with self._lock:
            done, changed = self.store.changes()
            other_zone = not self._zone_checked and self.store.meta(TZ_KEY) != zone_key(self.tz)
            self._zone_checked = True
            if not changed and not other_zone:
                return
            everything = EVERYTHING in changed or other_zone
            if everything:
                span = self._stored_span()
                self.store.set_meta(TZ_KEY, zone_key(self.tz))
            else:
                span = _span(self._nights_of(changed))
            summaries = self.compute(*span) if span else {}
            self._refreshes += 1
            if span and not everything:  # nights that no longer have anything
                gone = [
                    _text(span[0] + timedelta(days=i)) for i in range((span[1] - span[0]).days + 1)
                ]
                self.store.drop_night_summaries([n for n in gone if n not in summaries])
            self.store.put_night_summaries(summaries, done, replace_all=everything)

    def _nights_of(self, times: Iterable[str]) -> set[date]:
        """The nights of device times; a time outside the plausible window, or that cannot be
        read, is no night's."""
        low, high = plausible_window()
        nights = set()
        plausible = (t for t in times if low <= t <= high)
        for moment in self.unreadable.read("changed time", plausible, aware_time, str):
            night = night_of(moment, self.tz)
            # a session started in the afternoon may belong to that evening's night
            nights.add(night if night is not None else moment.astimezone(self.tz).date())
        return nights

    def _stored_span(self) -> tuple[date, date] | None:
        """The nights from the earliest to the latest plausible session, event or marker
        press."""
        return _span(self._nights_of(self._stored_times()))

    def stored_bounds(self) -> tuple[datetime, datetime] | None:
        """The earliest and the latest plausible (and readable) session start, event start or
        marker press."""
        moments = sorted(self.unreadable.read("stored time", self._stored_times(), aware_time, str))
        return (moments[0], moments[-1]) if moments else None

    def _stored_times(self) -> list[str]:
        stored_times = (("session", "session_start"), ("event", "start"), ("marker", "at"))
        return [
            value
            for table, column in stored_times
            for value in self.store.query(
                f"SELECT MIN({column}), MAX({column}) FROM {table}"
                f" WHERE {column} >= ? AND {column} <= ? AND {column} GLOB ?",
                (*plausible_window(), TIME_PATTERN),
            )[0]
            if value is not None
        ]

    def measures(self, row: Any) -> dict[str, float]:
        """A session row's measures; unreadable ones are skipped and counted (the session's
        other figures still count)."""
        found = self.unreadable.read(
            "session measures", [row], lambda r: session_measures(r["measures"]), session_key
        )
        return next(iter(found), {})

    def compute(self, first: date, last: date) -> dict[str, str]:
        """Summaries (JSON by ISO night) of the nights `first`..`last` that have anything."""
        data = self.load(first, last)
        return {
            _text(n.night): json.dumps(n.to_dict())
            for n in summaries_of(data, self.tz, first, last)
            if n.has_data or n.cramps or n.movements or n.markers or n.rejected
        }

    def load(self, first: date, last: date) -> NightData:
        """Everything recorded from the afternoon before `first` to the noon after `last`
        (within the plausible window; rows that cannot be read are skipped and counted)."""
        start, end = plausible_span(
            iso(night_window(first, self.tz)[0] - timedelta(hours=6)),
            iso(night_window(last, self.tz)[1]),
        )
        read = self.unreadable.read
        events = list(read(
            "event",
            self.store.query(
                "SELECT event_id, channel, kind, start, end, duration_s, peak_uv FROM event"
                " WHERE phase = 'ended' AND start >= ? AND start < ? ORDER BY start",
                (start, end),
            ),
            cramp_record,
            lambda r: r["event_id"],
        ))  # fmt: skip
        sessions = list(read(
            "session",
            self.store.query(
                "SELECT device, session_start, recorded_s, good_s, measures, kind, session_id"
                " FROM session WHERE session_start >= ? AND session_start < ?",
                (start, end),
            ),
            lambda r: (session_record(r), self.measures(r)),
            session_key,
        ))  # fmt: skip
        markers = [
            (marker_target(r["device"], r["at"]), aware_time(r["at"]))
            for r in cramp_markers(list(read(
                "marker",
                self.store.query(
                    "SELECT device, at, source FROM marker WHERE at >= ? AND at < ? ORDER BY at",
                    (start, end),
                ),
                timed_row,
                lambda r: f"{r['device']} {r['at']}",
            )))
        ]  # fmt: skip
        verdicts = {t: row["verdict"] for t, row in self.store.labels(start, end).items()}
        spans = load_spans(self.store, self.unreadable, start, end)
        return NightData(events, sessions, markers, verdicts, spans)


def summaries_of(
    data: NightData, tz: tzinfo, first: date, last: date, min_good_minutes: float = 240.0
) -> list[NightSummary]:
    """Nights `first`..`last` with the patient's word, per channel figures and measures."""
    spans = data.spans
    events, markers = data.events, data.markers
    if spans:  # what happened in a named session is no night's
        events = _outside(events, [e.start for e in events], spans)
        markers = _outside(markers, [at for _, at in markers], spans)
    rejected = [e for e in events if data.verdicts.get(event_target(e.event_id)) == "not_cramp"]
    rejected_ids = {e.event_id for e in rejected}
    kept = [e for e in events if e.event_id not in rejected_ids]
    sessions = [s for s, _ in data.sessions]
    base = summarize_nights(kept, sessions, tz, min_good_minutes=min_good_minutes,
                            first=first, last=last, spans=spans)  # fmt: skip
    channels = sorted({e.channel for e in kept} | {c for s in sessions for c in s.good_s
                                                     if s.kind == NIGHT_KIND})  # fmt: skip
    per_channel = {
        channel: summarize_nights(
            [e for e in kept if e.channel == channel], [], tz, first=first, last=last
        )
        for channel in channels
    }
    good = _good_minutes_by_channel(sessions, tz, spans)
    missed = [at for target, at in markers if data.verdicts.get(target) == "missed_cramp"]
    counts = {
        "rejected": _per_night((e.start for e in rejected if e.kind == "cramp"), tz),
        "confirmed": _per_night(
            (e.start for e in kept if data.verdicts.get(event_target(e.event_id)) == "cramp"), tz
        ),
        "reported": _per_night(missed, tz),
        "markers": _per_night((at for _, at in markers), tz),
    }
    first_reported = _first_per_night(missed, tz)
    measures = _measures_by_night(data.sessions, tz)
    out = []
    for i, night in enumerate(base):
        day = night.night
        by_channel = {
            channel: {
                "cramps": per_channel[channel][i].cramps,
                "cramp_minutes": per_channel[channel][i].cramp_minutes,
                "movements": per_channel[channel][i].movements,
                "good_minutes": good.get(day, {}).get(channel),
            }
            for channel in channels
            if per_channel[channel][i].cramps
            or per_channel[channel][i].movements
            or channel in good.get(day, {})
        }
        reported = counts["reported"][day]
        first_cramp = min(
            (t for t in (night.first_cramp, first_reported.get(day)) if t is not None),
            default=None,
        )
        out.append(
            replace(
                night,
                cramps=night.cramps + reported,
                first_cramp=first_cramp.astimezone(tz) if first_cramp else None,
                by_channel=by_channel,
                rejected=counts["rejected"][day],
                confirmed=counts["confirmed"][day],
                reported=reported,
                markers=counts["markers"][day],
                **measures.get(day, {}),
            )
        )
    return out


def _outside(items: list[T], moments: list[datetime], spans: Sequence[SessionSpan]) -> list[T]:
    """The items whose moment lies in no named session."""
    inside = in_spans(np.fromiter((m.timestamp() for m in moments), dtype=float), spans)
    return [item for item, out in zip(items, ~inside, strict=True) if out]


def _per_night(moments: Iterable[datetime], tz: tzinfo) -> Counter[date]:
    return Counter(n for n in (night_of(m, tz) for m in moments) if n is not None)


def _first_per_night(moments: Sequence[datetime], tz: tzinfo) -> dict[date, datetime]:
    first: dict[date, datetime] = {}
    for moment in sorted(moments):
        night = night_of(moment, tz)
        if night is not None:
            first.setdefault(night, moment)
    return first


def _good_minutes_by_channel(
    sessions: Sequence[SessionRecord], tz: tzinfo, spans: Sequence[SessionSpan] = ()
) -> dict[date, dict[str, float]]:
    good: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for session in sessions:
        night = session_night(session, tz)
        if night is None:
            continue
        share = night_share(session, spans) if spans else 1.0
        for channel, seconds in session.good_s.items():
            minutes = min(seconds, session.recorded_s) / 60.0
            good[night][channel] += minutes if share == 1.0 else minutes * share
    return good


def _measures_by_night(
    sessions: Sequence[tuple[SessionRecord, dict[str, float]]], tz: tzinfo
) -> dict[date, dict[str, float]]:
    """Per night, each count summed over the sessions that measured it (a device counts again
    from 0 in each session), and each rate as the device gave it, weighted by the sessions'
    hours of good signal when a night has several."""
    totals: dict[date, dict[str, float]] = defaultdict(dict)
    rates: dict[tuple[date, str], list[tuple[float, float]]] = defaultdict(list)  # (rate, hours)
    for session, measures in sessions:
        night = session_night(session, tz)
        if night is None:
            continue
        for name in MEASURED_COUNTS:
            if name in measures:
                totals[night][name] = totals[night].get(name, 0) + int(measures[name])
        hours = max(session.good_s.values(), default=session.recorded_s) / 3600.0
        for name in MEASURED_RATES:
            if name in measures:
                rates[night, name].append((measures[name], hours))
    for (night, name), given in rates.items():
        hours = sum(h for _, h in given)
        one = len(given) == 1 or hours <= 0.0
        totals[night][name] = (
            given[-1][0] if one else round(sum(r * h for r, h in given) / hours, 2)
        )
    return totals


def plausible_span(start: str, end: str) -> tuple[str, str]:
    """[start, end) of device times narrowed to the plausible window."""
    low, high = plausible_window()
    return max(start, low), min(end, high)


def _no_data(night: date) -> NightSummary:
    return NightSummary(night, 0, 0.0, None, None, 0, 0.0, 0.0, 0, False, False)


def _span(nights: Iterable[date]) -> tuple[date, date] | None:
    ordered = sorted(nights)
    return (ordered[0], ordered[-1]) if ordered else None


def _text(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def summary_sentence(night: NightSummary | None, today: date) -> str:
    """The morning summary in one sentence."""
    if night is None:
        return "No night has been recorded yet: wear the sensor tonight and look again tomorrow."
    when = (
        "Last night"
        if night.night == today - timedelta(days=1)
        else f"The night of {short_day(night.night)}"
    )
    if not night.has_data and not night.cramps:
        return f"{when} has no recording: the sensor was not worn or did not report."
    signal = f"{hours_minutes(night.good_minutes)} of good signal"
    if not night.complete and night.has_data:
        signal += " (too little to count in the statistics)"
    if night.cramps == 0:
        return f"{when}: no cramps, {signal}."
    length = duration(night.cramp_minutes * 60) if night.cramp_minutes else ""
    at = f"{night.first_cramp:%H:%M}" if night.first_cramp else ""
    if night.cramps == 1:
        what = "1 cramp" + (f" of {length}" if length else "") + (f" at {at}" if at else "")
    else:
        what = f"{night.cramps} cramps" + (f", {length} in all" if length else "")
        what += f", the first at {at}" if at else ""
    return f"{when}: {what}; {signal}."


__all__ = [
    "NightData",
    "NightSummaries",
    "event_target",
    "marker_target",
    "summaries_of",
    "summary_sentence",
]
