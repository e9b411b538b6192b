"""What the pages and the API show, read from the store and put through the analysis."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import numpy as np

from dashboards.analysis import (
    Insights,
    NightSummary,
    daily_totals_of,
    insights,
    night_of,
)
from dashboards.catalogue import Catalogue
from dashboards.night_summaries import NightSummaries, event_target, marker_target
from dashboards.store import Store
from dashboards.timebase import iso, night_window, parse_time, utc_seconds

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
    summaries: NightSummaries = field(init=False)

    def __post_init__(self) -> None:
        self.summaries = NightSummaries(self.store, self.tz, self.min_good_minutes)
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
        return self._night_at("MAX")

    def first_night(self) -> date | None:
        return self._night_at("MIN")

    def _night_at(self, end: str) -> date | None:
        """The night of the latest (MAX) or earliest (MIN) session, event or marker press; an
        afternoon recording (12:00-18:00) is shown with the night that follows it."""
        rows = self.store.query(
            f"SELECT {end}(m) AS moment FROM (SELECT {end}(session_start) AS m FROM session"
            f" UNION ALL SELECT {end}(start) FROM event UNION ALL SELECT {end}(at) FROM marker)"
        )
        text = rows[0]["moment"] if rows else None
        if text is None:
            return None
        moment = parse_time(text)
        night = night_of(moment, self.tz)
        return night if night is not None else moment.astimezone(self.tz).date()

    def neighbours(self, day: date) -> tuple[date | None, date | None]:
        """The nights with anything stored just before and just after `day`."""
        self.summaries.refresh()
        before = self.store.query(
            "SELECT MAX(night) AS n FROM night_summary WHERE night < ?", (day.isoformat(),)
        )[0]["n"]
        after = self.store.query(
            "SELECT MIN(night) AS n FROM night_summary WHERE night > ?", (day.isoformat(),)
        )[0]["n"]
        return (date.fromisoformat(before) if before else None,
                date.fromisoformat(after) if after else None)  # fmt: skip

    # -- one night -------------------------------------------------------------------------

    def night_detail(self, night: date) -> dict[str, Any]:
        """A night's events (with their envelope traces), signal problems and marker presses.

        The timeline spans 12:00 to 12:00, so that what happened in the afternoon before the
        night (a nap, a test) is shown too; nightly figures count 18:00 to 12:00 only."""
        start, end = self._timeline_window(night)
        events = self.store.query(
            "SELECT payload FROM event WHERE start >= ? AND start < ? ORDER BY start, phase",
            (start, end),
        )
        by_id: dict[str, dict[str, Any]] = {}
        for row in events:  # an ended message supersedes its started one
            payload = json.loads(row["payload"])
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
        night_start, end = night_window(night, self.tz)
        return iso(night_start - timedelta(hours=6)), iso(end)

    def _problems(self, start: str, end: str) -> list[dict[str, Any]]:
        quality = self.store.query(
            "SELECT device, channel, at, problems FROM quality WHERE at >= ? AND at < ?"
            " ORDER BY at",
            (start, end),
        )
        return _problem_stretches(quality, end)

    def _markers(self, start: str, end: str) -> list[Any]:
        return self.store.query(
            "SELECT device, at, source FROM marker WHERE at >= ? AND at < ? ORDER BY at",
            (start, end),
        )

    def night_page(self, night: date) -> dict[str, Any]:
        """Everything the night page shows: the summary, sessions, events per calf (without
        their traces), signal problems, marker presses, the patient's word, the neighbours."""
        start, end = self._timeline_window(night)
        rows = self.store.query(
            "SELECT event_id, phase, device, channel, kind, start, end, duration_s, peak_uv"
            " FROM event WHERE start >= ? AND start < ? ORDER BY start, phase",
            (start, end),
        )
        by_id: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["event_id"] not in by_id or row["phase"] == "ended":
                by_id[row["event_id"]] = dict(row)
        verdicts = {t: r["verdict"] for t, r in self.store.labels(start, end).items()}
        events = sorted(by_id.values(), key=lambda e: e["start"])
        for event in events:
            event["verdict"] = verdicts.get(event_target(event["event_id"]))
            event["in_night"] = night_of(parse_time(event["start"]), self.tz) == night
        cramps = [e for e in events if e["kind"] == "cramp"]
        markers = []
        for row in self._markers(start, end):
            marker = dict(row)
            target = marker_target(row["device"], row["at"])
            marker["target"] = target
            marker["verdict"] = verdicts.get(target)
            marker["cramp"] = _cramp_near(parse_time(row["at"]), cramps)
            markers.append(marker)
        sessions = self.store.query(
            "SELECT device, session_start, recorded_s, good_s, measures FROM session"
            " WHERE session_start >= ? AND session_start < ? ORDER BY session_start",
            (start, end),
        )
        previous, following = self.neighbours(night)
        return {
            "night": night,
            "summary": self.night(night),
            "events": events,
            "cramps": cramps,
            "movements": [e for e in events if e["kind"] == "movement"],
            "markers": markers,
            "problems": self._problems(start, end),
            "sessions": [dict(s) for s in sessions],
            "channels": sorted(
                {e["channel"] for e in events}
                | {c for s in sessions for c in json.loads(s["good_s"])}
            ),
            "window": _axis(night, self.tz, sessions, events),
            "previous": previous,
            "next": following,
        }

    # -- one event -------------------------------------------------------------------------

    def event(self, event_id: str) -> dict[str, Any] | None:
        rows = self.store.query(
            "SELECT payload FROM event WHERE event_id = ? ORDER BY phase = 'ended' DESC",
            (event_id,),
        )
        return json.loads(rows[0]["payload"]) if rows else None

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
            "SELECT event_id, channel, start, end, duration_s, peak_uv, phase FROM event"
            " WHERE kind = ? AND channel != ? AND start < ? AND start >= ? ORDER BY start",
            (event["kind"], event["channel"], iso(end + timedelta(seconds=1)),
             iso(start - timedelta(hours=1))),
        )  # fmt: skip
        overlapping: dict[str, dict[str, Any]] = {}
        for row in others:
            other_end = parse_time(row["end"]) if row["end"] else parse_time(row["start"])
            if other_end >= start and (
                row["event_id"] not in overlapping or row["phase"] == "ended"
            ):
                overlapping[row["event_id"]] = dict(row)
        label = self.store.labels(event["start"], iso(start + timedelta(milliseconds=1)))
        verdict = label.get(event_target(event_id))
        return {
            "event": event,
            "night": night_of(start, self.tz),
            "session_start": start - timedelta(seconds=float(event.get("start_s") or 0.0)),
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
        out = []
        for target, row in self.store.labels(start, end).items():
            item = {"target": target, "verdict": row["verdict"], "at": row["at"],
                    "answered": row["answered"]}  # fmt: skip
            if target.startswith("event:"):
                event = self.store.query(
                    "SELECT device, channel, kind, start, end FROM event WHERE event_id = ?"
                    " ORDER BY phase = 'ended' DESC LIMIT 1",
                    (target.removeprefix("event:"),),
                )
                if event:
                    item |= {"event_id": target.removeprefix("event:"), **dict(event[0])}
            else:
                device, at = target.removeprefix("marker:").split("@", 1)
                item |= {"device": device, "kind": "marker", "start": at, "end": at}
            moment = parse_time(item["start"])
            item["night"] = (night_of(moment, self.tz) or moment.date()).isoformat()
            out.append(item)
        return out

    def research_export(self, night: date) -> dict[str, Any]:
        """The night's answered detections and the patient's word as ground truth, in seconds
        from the start of the night's first recording (the files `crampwatch evaluate` reads).

        Truth: cramps the patient confirmed, and cramps they reported at a marker press that
        nothing detected (MISSED_BEFORE_S before to MISSED_AFTER_S after the press, as the
        extent is unknown). Detections: every cramp they answered for (yes or no), so that the
        scores are by their word: a "not a cramp" is a false detection, a missed one a miss."""
        page = self.night_page(night)
        starts = [parse_time(s["session_start"]) for s in page["sessions"]]
        origin = min(starts) if starts else night_window(night, self.tz)[0]

        def seconds(text: str) -> float:
            return round((parse_time(text) - origin).total_seconds(), 3)

        answered = [e for e in page["events"] if e["verdict"] and e["phase"] == "ended"]
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

    def _kind(self, factor: str) -> str:
        found = self.catalogue.find(factor)
        return found.kind if found is not None else "amount"

    def factors_logged(self) -> list[str]:
        return [r["factor"] for r in self.store.query("SELECT DISTINCT factor FROM intake")]

    def daily_totals(self) -> dict[date, dict[str, float]]:
        """Intake per local day and factor, in canonical units (kept until the data change)."""
        return self.cached("daily_totals", self._daily_totals)

    def _daily_totals(self) -> dict[date, dict[str, float]]:
        times, factors, amounts = self.store.columns("SELECT time, factor, amount FROM intake", 3)
        return daily_totals_of(utc_seconds(times), factors, np.array(amounts, dtype=float), self.tz)

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
        rows = self.store.query(
            "SELECT event_id, device, channel, start, end, duration_s, peak_uv FROM event"
            " WHERE kind = 'cramp' AND phase = 'ended' AND start >= ? AND start < ? ORDER BY start",
            (start, end),
        )
        verdicts = {t: r["verdict"] for t, r in self.store.labels(start, end).items()}
        cramps = []
        for row in rows:
            item = dict(row)
            item["verdict"] = verdicts.get(event_target(row["event_id"]))
            item["night"] = night_of(parse_time(row["start"]), self.tz)
            if item["night"] is not None:
                cramps.append(item)
        for marker in self._markers(start, end):
            if verdicts.get(marker_target(marker["device"], marker["at"])) == "missed_cramp":
                cramps.append({"event_id": None, "device": marker["device"], "channel": None,
                               "start": marker["at"], "end": None, "duration_s": None,
                               "peak_uv": None, "verdict": "missed_cramp",
                               "night": night_of(parse_time(marker["at"]), self.tz)})  # fmt: skip
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
                    "state": json.loads(row["state"]) if row["state"] else None,
                    "envelope": json.loads(row["envelope"]) if row["envelope"] else None,
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
                "recent_refusals": [dict(r) for r in refusals],
            },
        }


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
