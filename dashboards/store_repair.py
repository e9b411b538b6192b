"""Schema migration 2: bring a store written before device times were checked up to today's rules.

Each stored device message goes through the same checks ingest now applies to a new one
(`dashboards.ingest`), with the time it arrived as its receipt time. A row that passes is
rewritten with its times in the canonical form (UTC, milliseconds, `Z`), so text comparisons
order it correctly; a row that fails (ends before it starts, dated 1970 or 9999, strings in its
envelope trace, ...) is moved to the refusals with the reason, and counted as refused, exactly as
if it had been refused on arrival. Intake rows are checked against the intake rules.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from datetime import UTC, datetime
from typing import Any

from dashboards.catalogue import IntakeError
from dashboards.ingest import validate_envelope, validate_event, validate_state
from dashboards.intake import check_time_bounds, iso_utc
from dashboards.store import Store
from dashboards.validation import Invalid, canonical, device_time, parse_iso, strict_json

log = logging.getLogger("crampwatch.dashboard.store")

REASON_PREFIX = "removed from the store on upgrade: "


def repair_stored_rows(db: sqlite3.Connection, now: datetime | None = None) -> dict[str, int]:
    """Check and normalise every stored row; returns how many were removed, per table."""
    now = now or datetime.now(UTC)
    db.row_factory = sqlite3.Row
    try:
        removed = {
            "event": _events(db, now),
            "quality": _timed(db, "quality", "problems", now),
            "marker": _timed(db, "marker", "source", now),
            "session": _sessions(db, now),
            "device": _devices(db, now),
            "intake": _intakes(db, now),
        }
    finally:
        db.row_factory = None
    if any(removed.values()):
        log.warning(
            "store upgrade: moved %s implausible row(s) to the refusals (%s)",
            sum(removed.values()),
            ", ".join(f"{table} {n}" for table, n in removed.items() if n),
        )
    return removed


def _received(text: Any, now: datetime) -> datetime:
    try:
        return parse_iso(text, "received")
    except Invalid:
        return now


def _quarantine(db: sqlite3.Connection, topic: str, reason: str, payload: str) -> None:
    Store.record_refusal(db, topic, REASON_PREFIX + reason, payload)


def _events(db: sqlite3.Connection, now: datetime) -> int:
    removed = 0
    rows = db.execute("SELECT rowid, device, payload, received FROM event").fetchall()
    for row in rows:
        topic = f"crampwatch/{row['device']}/event"
        try:
            payload = strict_json(row["payload"])
            if not isinstance(payload, dict):
                raise Invalid("not a JSON object")
            event = validate_event(payload, row["device"], _received(row["received"], now))
        except Invalid as error:
            _quarantine(db, topic, str(error), row["payload"])
            db.execute("DELETE FROM event WHERE rowid = ?", (row["rowid"],))
            removed += 1
            continue
        db.execute(
            "UPDATE event SET start = ?, end = ?, duration_s = ?, peak_uv = ?, payload = ?"
            " WHERE rowid = ?",
            (event["start"], event.get("end"), event["duration_s"], event.get("peak_uv"),
             json.dumps(event), row["rowid"]),
        )  # fmt: skip
    return removed


def _timed(db: sqlite3.Connection, table: str, column: str, now: datetime) -> int:
    """Quality changes and markers: their time is checked (the rest was checked on arrival and
    is not affected); a row whose canonical time is stored already is the same message twice."""
    removed = 0
    rows = db.execute(f"SELECT rowid, device, at, {column} FROM {table}").fetchall()
    for row in rows:
        try:
            at = canonical(device_time(row["at"], "at", now))
        except Invalid as error:
            shown = json.dumps({"at": row["at"], column: row[column]})
            _quarantine(db, f"crampwatch/{row['device']}/{table}", str(error), shown)
            db.execute(f"DELETE FROM {table} WHERE rowid = ?", (row["rowid"],))
            removed += 1
            continue
        if at != row["at"]:
            db.execute(f"UPDATE OR IGNORE {table} SET at = ? WHERE rowid = ?", (at, row["rowid"]))
            db.execute(f"DELETE FROM {table} WHERE rowid = ? AND at != ?", (row["rowid"], at))
    return removed


def _sessions(db: sqlite3.Connection, now: datetime) -> int:
    removed = 0
    rows = db.execute(
        "SELECT rowid, device, session_start, recorded_s, good_s, updated FROM session"
    ).fetchall()
    for row in rows:
        try:
            received = _received(row["updated"], now)
            start = canonical(device_time(row["session_start"], "session_start", received))
            _check_session_figures(row)
        except Invalid as error:
            shown = json.dumps(
                {"session_start": row["session_start"], "recorded_s": row["recorded_s"]}
            )
            _quarantine(db, f"crampwatch/{row['device']}/state", str(error), shown)
            db.execute("DELETE FROM session WHERE rowid = ?", (row["rowid"],))
            removed += 1
            continue
        if start != row["session_start"]:
            db.execute(
                "UPDATE OR IGNORE session SET session_start = ? WHERE rowid = ?",
                (start, row["rowid"]),
            )
            db.execute(
                "DELETE FROM session WHERE rowid = ? AND session_start != ?", (row["rowid"], start)
            )
    return removed


def _check_session_figures(row: sqlite3.Row) -> None:
    recorded = row["recorded_s"]
    if not isinstance(recorded, int | float) or not math.isfinite(recorded) or recorded < 0:
        raise Invalid(f"recorded_s {recorded!r} is not a duration")
    good = strict_json(row["good_s"])
    if not isinstance(good, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in good.values()
    ):
        raise Invalid("good_s is not seconds per channel")


def _devices(db: sqlite3.Connection, now: datetime) -> int:
    """A device's latest state and envelope summary: an implausible one is cleared."""
    removed = 0
    checks = {"state": validate_state, "envelope": validate_envelope}
    for row in db.execute("SELECT device, last_seen, state, envelope FROM device").fetchall():
        received = _received(row["last_seen"], now)
        for column, validate in checks.items():
            if row[column] is None:
                continue
            try:
                payload = strict_json(row[column])
                if not isinstance(payload, dict):
                    raise Invalid("not a JSON object")
                fixed = json.dumps(validate(payload, row["device"], received))
            except Invalid as error:
                _quarantine(db, f"crampwatch/{row['device']}/{column}", str(error), row[column])
                fixed = None
                removed += 1
            if fixed != row[column]:
                db.execute(
                    f"UPDATE device SET {column} = ? WHERE device = ?", (fixed, row["device"])
                )
    return removed


def _intakes(db: sqlite3.Connection, now: datetime) -> int:
    removed = 0
    for row in db.execute("SELECT rowid, entry_id, time, amount FROM intake").fetchall():
        try:
            moment = parse_iso(row["time"], "time")
            check_time_bounds(moment, now)
            amount = row["amount"]
            if not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
                raise Invalid(f"amount {amount!r} is not a finite number 0 or more")
        except (Invalid, IntakeError) as error:
            shown = json.dumps({"entry_id": row["entry_id"], "time": row["time"]})
            _quarantine(db, "intake", str(error), shown)
            db.execute("DELETE FROM intake WHERE rowid = ?", (row["rowid"],))
            removed += 1
            continue
        if iso_utc(moment) != row["time"]:
            db.execute(
                "UPDATE intake SET time = ? WHERE rowid = ?", (iso_utc(moment), row["rowid"])
            )
    return removed
