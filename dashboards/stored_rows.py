"""Reading the store back: each function turns a stored row into what the pages use, or raises
(ValueError, TypeError, KeyError) when the row cannot be shown. Every read goes through
`UnreadableRows.read`, which skips and counts such rows, so that one bad row never fails a
page. Rows are checked on arrival (`dashboards.ingest`) and on upgrade (`store_repair`); these
checks are for whatever else a store may hold (a file edited by hand, a disk that flipped a bit).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dashboards.analysis import CrampRecord, SessionRecord
from dashboards.store import MEASURED_COUNTS, MEASURED_RATES, StoredIntake
from dashboards.timebase import parse_time
from dashboards.validation import (
    MAX_SESSION_S,
    Invalid,
    UnreadableRows,
    check_envelope_trace,
    number,
)
from messaging.sessions import NIGHT, check_session_id, check_session_kind

EVENT_NUMBERS = ("peak_uv", "mean_uv", "floor_uv", "area_uvs", "median_freq_hz", "end_s")


def aware_time(text: Any, name: str = "time") -> datetime:
    """A stored time (ISO 8601 with a zone) as an aware datetime."""
    if not isinstance(text, str):
        raise ValueError(f"{name} is not a time: {text!r}")
    moment = parse_time(text)
    if moment.utcoffset() is None:
        raise ValueError(f"{name} has no time zone: {text!r}")
    return moment


def _optional_number(value: Any, name: str, **bounds: float) -> float | None:
    return None if value is None else number(value, name, **bounds)


def cramp_record(row: Any) -> CrampRecord:
    """An ended event row (event_id, channel, kind, start, end, duration_s, peak_uv)."""
    start = aware_time(row["start"], "start")
    return CrampRecord(
        row["event_id"], row["channel"], row["kind"], start,
        aware_time(row["end"], "end") if row["end"] else start,
        number(row["duration_s"], "duration_s", low=0.0),
        number(row["peak_uv"] or 0.0, "peak_uv"),
    )  # fmt: skip


def session_record(row: Any) -> SessionRecord:
    """A session row (device, session_start, recorded_s, good_s; kind and session_id where the
    query has them: a recording made as a named session is never a night's)."""
    good_s = json.loads(row["good_s"])
    if not isinstance(good_s, dict):
        raise ValueError("good_s is not an object")
    good = {str(c): number(v, f"good_s[{c!r}]", low=0.0) for c, v in good_s.items()}
    recorded_s = number(row["recorded_s"], "recorded_s", low=0.0, high=MAX_SESSION_S)
    keys = row.keys() if hasattr(row, "keys") else ()
    kind = (row["kind"] if "kind" in keys else None) or NIGHT
    session_id = row["session_id"] if "session_id" in keys else None
    check_session_kind(kind)
    if kind != NIGHT:
        check_session_id(session_id)
    return SessionRecord(row["device"], aware_time(row["session_start"]), recorded_s, good,
                         kind, session_id if kind != NIGHT else None)  # fmt: skip


def session_measures(text: str | None) -> dict[str, float]:
    """A session's stored measures (`Store.set_state`); a figure that is not well formed is
    left out (not measured), never guessed."""
    if not text:
        return {}
    stored = json.loads(text)
    if not isinstance(stored, dict):
        raise ValueError("measures is not an object")
    found: dict[str, float] = {}
    for name in MEASURED_COUNTS:
        value = stored.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1e6:
            found[name] = value
    for name in MEASURED_RATES:
        value = stored.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1e4:
            found[name] = float(value)
    return found


def event_payload(text: str, unreadable: UnreadableRows) -> dict[str, Any]:
    """A stored event message with what the pages use checked; a trace that cannot be drawn is
    left out (and counted), the rest of the event shown."""
    payload = json.loads(text)
    if not isinstance(payload, dict):
        raise ValueError("stored event is not an object")
    for name in ("event_id", "kind", "channel", "start", "phase"):
        if not isinstance(payload.get(name), str):
            raise ValueError(f"stored event without {name!r}")
    aware_time(payload["start"], "start")
    if payload.get("end") is not None:
        aware_time(payload["end"], "end")
    number(payload.get("duration_s"), "duration_s", low=0.0)
    number(payload.get("start_s"), "start_s", low=-MAX_SESSION_S, high=MAX_SESSION_S)
    for name in EVENT_NUMBERS:
        _optional_number(payload.get(name), name)
    if payload.get("envelope") is not None:
        try:
            check_envelope_trace(payload["envelope"])
        except Invalid as error:
            unreadable.skip("event envelope", payload["event_id"], error)
            payload["envelope"] = None
    return payload


def event_row(row: Any) -> dict[str, Any]:
    """An event row for a night's lists (no payload): times and figures checked."""
    event = dict(row)
    aware_time(event["start"], "start")
    if event.get("end"):
        aware_time(event["end"], "end")
    else:
        event["end"] = None
    if event.get("kind") not in ("cramp", "movement"):
        raise ValueError(f"kind {event.get('kind')!r} is not cramp or movement")
    if not isinstance(event.get("channel"), str):
        raise ValueError("channel is not text")
    number(event["duration_s"], "duration_s", low=0.0)
    _optional_number(event.get("peak_uv"), "peak_uv")
    return event


def timed_row(row: Any, column: str = "at") -> dict[str, Any]:
    """A marker row (or any row whose `column` is a time), checked."""
    item = dict(row)
    aware_time(item[column], column)
    return item


def quality_row(row: Any) -> dict[str, Any]:
    """A signal quality change with its problems parsed (a list of names)."""
    item = timed_row(row)
    problems = json.loads(item["problems"])
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        raise ValueError("problems is not a list of names")
    item["problems"] = problems
    return item


def intake_figures(time: Any, factor: Any, amount: Any) -> tuple[float, str, float]:
    """An intake entry's time (POSIX seconds), factor and amount (canonical unit), checked."""
    moment = aware_time(time, "time")
    if not isinstance(factor, str):
        raise ValueError("factor is not text")
    return moment.timestamp(), factor, number(amount, "amount", low=0.0)


def intake_entry(entry: StoredIntake) -> StoredIntake:
    """An intake entry with a time, a factor, an amount and a unit a page can show."""
    intake_figures(entry.time, entry.factor, entry.amount)
    if not isinstance(entry.unit, str):
        raise ValueError("unit is not text")
    return entry
