"""What the pages and the API show, read from the store and put through the analysis."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dashboards.analysis import (
    CrampRecord,
    Insights,
    IntakeRecord,
    NightSummary,
    SessionRecord,
    daily_totals,
    insights,
    night_of,
    summarize_nights,
)
from dashboards.catalogue import Catalogue
from dashboards.store import Store
from dashboards.validation import (
    Invalid,
    UnreadableRows,
    check_envelope_trace,
    number,
    plausible_window,
)

NIGHT_START = time(18, 0)
NIGHT_HOURS = 18  # 18:00 to 12:00


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def night_window(night: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """A night's start and end as aware UTC times (18:00 local to 12:00 the next day)."""
    start = datetime.combine(night, NIGHT_START, tzinfo=tz)
    end = datetime.combine(night + timedelta(days=1), time(12, 0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass
class Queries:
    store: Store
    catalogue: Catalogue
    tz: tzinfo
    min_good_minutes: float = 240.0
    min_nights: int = 10
    unreadable: UnreadableRows = field(default_factory=UnreadableRows)

    # -- nights ----------------------------------------------------------------------------

    def ended_events(self, start: str | None = None, end: str | None = None) -> list[CrampRecord]:
        """Ended events starting in [start, end); rows that cannot be read are skipped, counted."""
        rows = self.store.query(
            "SELECT event_id, channel, kind, start, end, duration_s, peak_uv FROM event"
            " WHERE phase = 'ended' AND start >= ? AND start <= ?"
            " AND (? IS NULL OR start >= ?) AND (? IS NULL OR start < ?) ORDER BY start",
            (*plausible_window(), start, start, end, end),
        )
        return list(self.unreadable.read("event", rows, _cramp_record, lambda r: r["event_id"]))

    def sessions(self) -> list[SessionRecord]:
        rows = self.store.query(
            "SELECT device, session_start, recorded_s, good_s FROM session"
            " WHERE session_start >= ? AND session_start <= ?",
            plausible_window(),
        )
        key = lambda r: f"{r['device']} {r['session_start']}"  # noqa: E731
        return list(self.unreadable.read("session", rows, _session_record, key))

    def nights(self, first: date | None = None, last: date | None = None) -> list[NightSummary]:
        """Nights from `first` to `last`; a missing end is the data's, never past the other end."""
        if first is not None and last is None:
            last = max(first, self.last_night() or first)
        if last is not None and first is None:
            first = min(last, self.first_night() or last)
        start = iso(night_window(first, self.tz)[0]) if first else None
        end = iso(night_window(last, self.tz)[1]) if last else None
        return summarize_nights(
            self.ended_events(start, end),
            self.sessions(),
            self.tz,
            min_good_minutes=self.min_good_minutes,
            first=first,
            last=last,
        )

    def last_night(self) -> date | None:
        return self._night_at("MAX")

    def first_night(self) -> date | None:
        return self._night_at("MIN")

    def _night_at(self, end: str) -> date | None:
        """The night of the latest (MAX) or earliest (MIN) session or event."""
        window = plausible_window()
        rows = self.store.query(
            f"SELECT {end}(m) AS moment FROM (SELECT {end}(session_start) AS m FROM session"
            " WHERE session_start >= ? AND session_start <= ?"
            f" UNION ALL SELECT {end}(start) FROM event WHERE start >= ? AND start <= ?)",
            (*window, *window),
        )
        text = rows[0]["moment"] if rows else None
        if text is None:
            return None
        try:
            moment = parse_time(text)
        except ValueError as error:
            self.unreadable.skip("event or session", text, error)
            return None
        night = night_of(moment, self.tz)
        return night if night is not None else moment.astimezone(self.tz).date()

    # -- one night -------------------------------------------------------------------------

    def night_detail(self, night: date) -> dict[str, Any]:
        """A night's events (with their envelope traces), signal problems and marker presses.

        The timeline spans 12:00 to 12:00, so that what happened in the afternoon before the
        night (a nap, a test) is shown too; nightly figures count 18:00 to 12:00 only."""
        night_start, end = night_window(night, self.tz)
        start = iso(night_start - timedelta(hours=6))
        end = iso(end)
        events = self.store.query(
            "SELECT payload FROM event WHERE start >= ? AND start < ? ORDER BY start, phase",
            (start, end),
        )
        by_id: dict[str, dict[str, Any]] = {}
        payloads = self.unreadable.read(
            "event",
            events,
            lambda r: self._event_payload(r["payload"]),
            lambda r: r["payload"][:80],
        )
        for payload in payloads:  # an ended message supersedes its started one
            if payload["event_id"] not in by_id or payload["phase"] == "ended":
                by_id[payload["event_id"]] = payload
        quality = self.store.query(
            "SELECT device, channel, at, problems FROM quality WHERE at >= ? AND at < ?"
            " ORDER BY at",
            (start, end),
        )
        markers = self.store.query(
            "SELECT device, at, source FROM marker WHERE at >= ? AND at < ? ORDER BY at",
            (start, end),
        )
        return {
            "night": night.isoformat(),
            "from": start,
            "to": end,
            "events": sorted(by_id.values(), key=lambda e: e["start"]),
            "problems": _problem_stretches(quality, end),
            "markers": [dict(m) for m in markers],
        }

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT payload FROM event WHERE event_id = ? ORDER BY phase = 'ended' DESC",
            (event_id,),
        )
        found = self.unreadable.read(
            "event", rows[:1], lambda r: self._event_payload(r["payload"]), lambda r: event_id
        )
        return next(iter(found), None)

    def _event_payload(self, text: str) -> dict[str, Any]:
        """A stored event message (a ValueError when it lacks what the pages use); a trace that
        cannot be drawn is left out and counted."""
        payload = json.loads(text)
        for name in ("event_id", "kind", "channel", "start", "phase"):
            if not isinstance(payload.get(name), str):
                raise ValueError(f"stored event without {name!r}")
        for name in ("start_s", "duration_s"):
            number(payload.get(name), name)
        if payload.get("envelope") is not None:
            try:
                check_envelope_trace(payload["envelope"])
            except Invalid as error:
                self.unreadable.skip("event envelope", payload["event_id"], error)
                payload["envelope"] = None
        return payload

    # -- intake and insights ---------------------------------------------------------------

    def intake_records(self) -> list[IntakeRecord]:
        rows = self.store.query("SELECT entry_id, time, factor, amount FROM intake")
        kinds = {f: self._kind(f) for f in {r["factor"] for r in rows}}
        record = lambda r: IntakeRecord(  # noqa: E731
            parse_time(r["time"]), r["factor"], r["amount"], kinds[r["factor"]]
        )
        return list(self.unreadable.read("intake", rows, record, lambda r: r["entry_id"]))

    def _kind(self, factor: str) -> str:
        found = self.catalogue.find(factor)
        return found.kind if found is not None else "amount"

    def factors_logged(self) -> list[str]:
        return [r["factor"] for r in self.store.query("SELECT DISTINCT factor FROM intake")]

    def daily_totals(self) -> dict[date, dict[str, float]]:
        """Intake per local day and factor, in canonical units."""
        return daily_totals(self.intake_records(), self.tz)

    def insights(
        self, include_incomplete: bool = False
    ) -> tuple[Insights, list[NightSummary], dict[date, dict[str, float]]]:
        """The insights, and the nights and daily totals behind them."""
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

    # -- device status ---------------------------------------------------------------------

    def _device_json(self, row: Any, column: str) -> dict[str, Any] | None:
        if not row[column]:
            return None
        found = self.unreadable.read(
            f"device {column}", [row[column]], json.loads, lambda _: row["device"]
        )
        return next(iter(found), None)

    def status(self) -> dict[str, Any]:
        devices = []
        for row in self.store.query("SELECT * FROM device ORDER BY device"):
            latest_quality = self.store.query(
                "SELECT channel, at, problems FROM quality WHERE device = ? AND at = "
                "(SELECT MAX(at) FROM quality q WHERE q.device = quality.device AND"
                " q.channel = quality.channel) ORDER BY channel",
                (row["device"],),
            )
            devices.append(
                {
                    "device": row["device"],
                    "status": row["status"] or "unknown",
                    "status_at": row["status_at"],
                    "last_seen": row["last_seen"],
                    "state": self._device_json(row, "state"),
                    "envelope": self._device_json(row, "envelope"),
                    "quality": [
                        {"channel": q["channel"], "at": q["at"],
                         "problems": json.loads(q["problems"])}
                        for q in latest_quality
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
                "recent_refusals": [dict(r) for r in refusals],
            },
        }


def _cramp_record(row: Any) -> CrampRecord:
    return CrampRecord(
        row["event_id"], row["channel"], row["kind"], parse_time(row["start"]),
        parse_time(row["end"] or row["start"]), number(row["duration_s"], "duration_s"),
        number(row["peak_uv"] or 0.0, "peak_uv"),
    )  # fmt: skip


def _session_record(row: Any) -> SessionRecord:
    good_s = json.loads(row["good_s"])
    if not isinstance(good_s, dict):
        raise ValueError("good_s is not an object")
    return SessionRecord(row["device"], parse_time(row["session_start"]), row["recorded_s"], good_s)


def totals_by_night(totals: dict[date, dict[str, float]], factor: str) -> dict[str, float]:
    """One factor's daily totals keyed by the night that starts that evening (lag 0)."""
    return {day.isoformat(): per[factor] for day, per in totals.items() if factor in per}


def _problem_stretches(rows: list[Any], night_end: str) -> list[dict[str, Any]]:
    """Quality changes -> stretches with problems per channel (open ones end at the night's end
    or the next change)."""
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    stretches = []
    for row in rows:
        key = (row["device"], row["channel"])
        problems = json.loads(row["problems"])
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
