"""Named sessions (dialysis, or another daytime session) as the dashboard keeps them: where a
session's time comes from, and reading sessions back from the store.

A named session's time (`SessionSpan`) joins what is known of it: the recordings a device made
as this session (state messages with its `session_id`), when it was started and ended from the
dashboard, and the treatment's start and end logged with its details. It runs from the earliest
of these starts to the latest of these ends; a session nothing has ended yet (started from the
dashboard, with no device recording it and no end logged) counts as lasting `MAX_SESSION_HOURS`
until it is ended. Minutes into the session count from the logged treatment start, else from the
span's start. The span is kept in the store with the session (`Store.refresh_span`), so that
pages and night summaries find the sessions of any period by an indexed range query.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dashboards.analysis import SessionSpan
from dashboards.dialysis import MAX_SESSION_HOURS, SessionDetails
from dashboards.stored_rows import aware_time, session_record
from dashboards.timebase import iso, parse_time
from dashboards.validation import UnreadableRows
from messaging.sessions import check_session_kind

if TYPE_CHECKING:
    from dashboards.store import Store

OPEN_SESSION = timedelta(hours=MAX_SESSION_HOURS)
HOLD_MARGIN = timedelta(seconds=10)  # a long press that ends a session lies at its very end
HOLD_PRESS_S = 5.0  # a press this long before a hold of the same button is the hold's own press
SOURCE_HOLD = "hold"


def cramp_markers(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The marker presses that may report a cramp: without the long presses that start and end
    sessions, and the presses that began them (rows with device, at and source, by time)."""
    holds: dict[str, list[datetime]] = {}
    for row in rows:
        if row.get("source") == SOURCE_HOLD:
            holds.setdefault(row["device"], []).append(aware_time(row["at"]))
    kept = []
    for row in rows:
        if row.get("source") == SOURCE_HOLD:
            continue
        at = aware_time(row["at"])
        if any(0 <= (h - at).total_seconds() <= HOLD_PRESS_S for h in holds.get(row["device"], ())):
            continue
        kept.append(row)
    return kept


def long_presses(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("source") == SOURCE_HOLD]


def logged_times(details_text: str | None) -> tuple[datetime | None, datetime | None]:
    """The treatment's start and end from stored details JSON (None where absent or unreadable:
    the span is then made of the other times)."""
    try:
        data = json.loads(details_text or "{}")
        start = parse_time(data["start"]) if data.get("start") else None
        end = parse_time(data["end"]) if data.get("end") else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, None
    return start, end


def span_bounds(
    started: datetime | None,
    ended: datetime | None,
    logged: tuple[datetime | None, datetime | None],
    recordings: Iterable[tuple[datetime, datetime]],
) -> tuple[datetime, datetime] | None:
    """A named session's start and end from all that is known of it (None: nothing yet)."""
    recorded = list(recordings)
    starts = [t for t in (started, logged[0], *(a for a, _ in recorded)) if t is not None]
    if not starts:
        return None
    start = min(starts)
    ends = [t for t in (ended, logged[1], *(b for _, b in recorded)) if t is not None]
    end = max(ends) if ends else start + OPEN_SESSION
    return start, max(start, end)


@dataclass
class NamedSession:
    """A named session as stored: its row, its details, its span and its recordings."""

    session_id: str
    kind: str
    device: str | None
    started: datetime | None
    ended: datetime | None
    source: str
    details: SessionDetails
    span: SessionSpan
    recordings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Nothing has ended it: no end logged or given, and no recording (or one still going:
        the caller knows the device's state)."""
        return self.ended is None and self.details.end is None and not self.recordings

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id, "kind": self.kind, "device": self.device,
            "started": iso(self.started) if self.started else None,
            "ended": iso(self.ended) if self.ended else None, "source": self.source,
            "start": iso(self.span.start), "end": iso(self.span.end),
            "origin": iso(self.span.origin), "details": self.details.to_dict(),
        }  # fmt: skip


def _span(row: Any) -> SessionSpan:
    """A stored named session's span (its minutes count from the logged start inside it)."""
    check_session_kind(row["kind"], named=True)
    start = aware_time(row["span_start"], "span_start")
    end = aware_time(row["span_end"], "span_end")
    logged_start, _ = logged_times(row["details"])
    origin = logged_start if logged_start is not None and start <= logged_start <= end else start
    return SessionSpan(row["session_id"], row["kind"], start, end, origin)


def load_spans(
    store: Store, unreadable: UnreadableRows, start: str | None = None, end: str | None = None
) -> list[SessionSpan]:
    """The spans of the named sessions that overlap [start, end): what keeps their events out
    of the nights (rows that cannot be read are skipped and counted)."""
    rows = store.named_session_rows(start, end)
    return list(unreadable.read("named session", rows, _span, lambda r: r["session_id"]))


def _named(
    row: Any, recordings: list[dict[str, Any]], unreadable: UnreadableRows,
    parsed: dict[tuple[str, str], SessionDetails],
) -> NamedSession:  # fmt: skip
    span = _span(row)
    key = (row["session_id"], row["details"] or "")
    details = parsed.get(key)
    if details is None:
        found = unreadable.read("session details", [key[1]], SessionDetails.from_stored,
                                lambda _: row["session_id"])  # fmt: skip
        details = next(iter(found), SessionDetails())  # unreadable: shown without its details
        parsed[key] = details
    return NamedSession(
        session_id=row["session_id"], kind=row["kind"], device=row["device"],
        started=aware_time(row["started"]) if row["started"] else None,
        ended=aware_time(row["ended"]) if row["ended"] else None, source=row["source"],
        details=details, span=span, recordings=recordings,
    )  # fmt: skip


def load_named(
    store: Store, unreadable: UnreadableRows, start: str | None = None, end: str | None = None,
    *, session_id: str | None = None,
    parsed: dict[tuple[str, str], SessionDetails] | None = None,
) -> list[NamedSession]:  # fmt: skip
    """The named sessions whose span overlaps [start, end) (or the one `session_id`), oldest
    first, with their recordings; rows that cannot be read are skipped and counted, details
    that cannot be read too (the session is shown without them). `parsed`: details already
    read, by session id and stored text (filled in)."""
    rows = store.named_session_rows(start, end, session_id=session_id)
    segments: dict[str, list[dict[str, Any]]] = {}
    for row in unreadable.read(
        "session", store.recordings_of([r["session_id"] for r in rows]), _recording,
        lambda r: f"{r['device']} {r['session_start']}",
    ):  # fmt: skip
        segments.setdefault(row["session_id"], []).append(row)
    parsed = {} if parsed is None else parsed
    return list(unreadable.read(
        "named session", rows,
        lambda r: _named(r, segments.get(r["session_id"], []), unreadable, parsed),
        lambda r: r["session_id"],
    ))  # fmt: skip


def _recording(row: Any) -> dict[str, Any]:
    record = session_record(row)
    return {"session_id": row["session_id"], "device": record.device,
            "session_start": row["session_start"], "recorded_s": record.recorded_s,
            "good_s": dict(record.good_s), "record": record}  # fmt: skip
