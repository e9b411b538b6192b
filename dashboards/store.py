"""The dashboard's SQLite store (WAL): events, sessions, device status, intake, refusals, the
patient's word on events, per-night summaries, named sessions (dialysis, ...) with their details,
and lab results.

Everything is keyed by its id (`event_id` + phase, `entry_id`, device + session start), so a
message stored twice, or replayed, changes nothing. The schema is versioned (`PRAGMA
user_version`) and migrated forward on open. Every write that can change a night's figures
notes the time it concerns in `changed` (in the same transaction), so that the per-night
summaries are recomputed for those nights only (`dashboards.night_summaries`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from messaging.sessions import NIGHT


def _repair(db: sqlite3.Connection) -> None:
    """Migration 2 (imported here: the repair uses ingest's checks, which use the store)."""
    from dashboards.store_repair import repair_stored_rows

    repair_stored_rows(db)


MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: the first schema
    """
    CREATE TABLE event (
        event_id TEXT NOT NULL,
        phase TEXT NOT NULL,
        device TEXT NOT NULL,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        start TEXT NOT NULL,
        end TEXT,
        duration_s REAL NOT NULL,
        peak_uv REAL,
        payload TEXT NOT NULL,
        received TEXT NOT NULL,
        PRIMARY KEY (event_id, phase)
    );
    CREATE INDEX event_start ON event (start);
    CREATE TABLE session (
        device TEXT NOT NULL,
        session_start TEXT NOT NULL,
        recorded_s REAL NOT NULL,
        good_s TEXT NOT NULL,
        cramps INTEGER NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (device, session_start)
    );
    CREATE TABLE quality (
        device TEXT NOT NULL,
        channel TEXT NOT NULL,
        at TEXT NOT NULL,
        problems TEXT NOT NULL,
        PRIMARY KEY (device, channel, at)
    );
    CREATE TABLE marker (
        device TEXT NOT NULL,
        at TEXT NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (device, at)
    );
    CREATE TABLE device (
        device TEXT PRIMARY KEY,
        status TEXT,
        status_at TEXT,
        last_seen TEXT NOT NULL,
        state TEXT,
        envelope TEXT
    );
    CREATE TABLE intake (
        entry_id TEXT PRIMARY KEY,
        time TEXT NOT NULL,
        factor TEXT NOT NULL,
        amount REAL NOT NULL,
        unit TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX intake_time ON intake (time);
    CREATE TABLE custom_factor (
        key TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        unit TEXT NOT NULL,
        kind TEXT NOT NULL
    );
    CREATE TABLE refusal (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    # 2: device times in one canonical form; rows no message could now deliver are moved to the
    # refusals (dashboards/store_repair.py)
    _repair,
    # 3: per-night summaries kept up to date (recomputed only for nights whose data changed),
    # the patient's word on events and marker presses, measured counts per session (PLMS,
    # fasciculations), and indexes for the night and report pages
    """
    CREATE TABLE night_summary (
        night TEXT PRIMARY KEY,
        summary TEXT NOT NULL
    );
    CREATE TABLE changed (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE label (
        target TEXT PRIMARY KEY,
        verdict TEXT NOT NULL,
        at TEXT NOT NULL,
        answered TEXT NOT NULL
    );
    CREATE INDEX label_at ON label (at);
    ALTER TABLE session ADD COLUMN measures TEXT;
    CREATE INDEX marker_at ON marker (at);
    CREATE INDEX quality_at ON quality (at);
    CREATE INDEX event_kind_start ON event (kind, phase, start);
    INSERT INTO changed (at) VALUES ('*');
    """,
    # 4: recordings of named sessions (dialysis, ...): a recording session's kind and id; the
    # named sessions with their details and their span (kept up to date, for range queries);
    # lab results
    """
    ALTER TABLE session ADD COLUMN kind TEXT NOT NULL DEFAULT 'night';
    ALTER TABLE session ADD COLUMN session_id TEXT;
    CREATE INDEX session_named ON session (session_id) WHERE session_id IS NOT NULL;
    CREATE TABLE named_session (
        session_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        device TEXT,
        started TEXT,
        ended TEXT,
        details TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL,
        span_start TEXT,
        span_end TEXT,
        updated TEXT NOT NULL
    );
    CREATE INDEX named_session_span ON named_session (span_start, span_end);
    CREATE TABLE lab_result (
        entry_id TEXT PRIMARY KEY,
        time TEXT NOT NULL,
        analyte TEXT NOT NULL,
        value REAL NOT NULL,
        unit TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX lab_time ON lab_result (time);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
KEEP_REFUSALS = 1000
EVERYTHING = "*"  # a change that concerns every night (a migration, another time zone)
VERDICTS = ("cramp", "not_cramp", "missed_cramp")
# What a device measured in a session, from its state message (the device's ChannelStates,
# firmware_host/device/messages.py): the name the night summaries use <- the message's field.
# Absent means not measured, never 0. Periodic limb movements (WASM 2016): the count and the
# index per hour of good signal; fasciculations: the session's count over all channels.
MEASURED_COUNTS = {"plms": "plm_tonight", "fasciculations": "fasciculations"}
MEASURED_RATES = {"plm_per_hour": "plm_per_hour"}


class StoreError(Exception):
    """The database cannot be opened or used."""


def _time_or_none(text: Any) -> datetime | None:
    from dashboards.timebase import parse_time

    try:
        return parse_time(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def session_measures(state: dict[str, Any]) -> dict[str, float]:
    """What a state message says the device measured this session (MEASURED_COUNTS: whole
    numbers >= 0; MEASURED_RATES: numbers >= 0), by the summaries' names; others left out."""
    found: dict[str, float] = {}
    for name, sent_as in MEASURED_COUNTS.items():
        value = state.get(sent_as)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            found[name] = value
    for name, sent_as in MEASURED_RATES.items():
        value = state.get(sent_as)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            found[name] = float(value)
    return found


@dataclass(frozen=True)
class StoredIntake:
    entry_id: str
    time: str
    factor: str
    amount: float
    unit: str
    note: str
    source: str


class Store:
    """One SQLite file; safe to share between the ingest thread and the web server."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"cannot use {self.path} as the dashboard database ({error}); give another "
                "--db path or move the damaged file away"
            ) from error

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer crampwatch (schema {version}, this one "
                f"knows {SCHEMA_VERSION}); upgrade crampwatch"
            )
        for number in range(version, SCHEMA_VERSION):
            step = MIGRATIONS[number]
            if isinstance(step, str):
                with self._db:
                    self._db.executescript(
                        f"BEGIN; {step}; PRAGMA user_version={number + 1}; COMMIT;"
                    )
                continue
            with self._db:  # one transaction: the step and the new version, or neither
                self._db.execute("BEGIN")
                step(self._db)
                self._db.execute(f"PRAGMA user_version={number + 1}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with self._db:
                    yield self._db
            finally:
                self._writes += 1

    def version(self) -> tuple[int, int]:
        """Changes whenever the data may have changed: a write through this store, or a commit
        by another connection (another process, e.g. `crampwatch intake add`)."""
        with self._lock:
            return self._writes, int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def columns(self, sql: str, n: int, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The `n` columns of a query's rows, each as a tuple (cheaper than rows for many)."""
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return list(zip(*rows, strict=True)) if rows else [() for _ in range(n)]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- device messages -------------------------------------------------------------------

    def add_event(self, event: dict[str, Any]) -> bool:
        """Store an event message; False when it was there already."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO event (event_id, phase, device, channel, kind, start,"
                " end, duration_s, peak_uv, payload, received)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event["event_id"], event["phase"], event["device"], event["channel"],
                    event["kind"], event["start"], event.get("end"), event["duration_s"],
                    event.get("peak_uv"), json.dumps(event), now_iso(),
                ),
            )  # fmt: skip
            self._seen(db, event["device"])
            if cursor.rowcount == 1:
                self._changed(db, event["start"])
            return cursor.rowcount == 1

    def add_quality(self, quality: dict[str, Any]) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO quality (device, channel, at, problems)"
                " VALUES (?, ?, ?, ?)",
                (quality["device"], quality["channel"], quality["at"],
                 json.dumps(quality["problems"])),
            )  # fmt: skip
            self._seen(db, quality["device"])
            return cursor.rowcount == 1

    def add_marker(self, marker: dict[str, Any]) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO marker (device, at, source) VALUES (?, ?, ?)",
                (marker["device"], marker["at"], marker["source"]),
            )
            self._seen(db, marker["device"])
            if cursor.rowcount == 1:
                self._changed(db, marker["at"])
            return cursor.rowcount == 1

    def set_state(self, state: dict[str, Any]) -> None:
        """The device's latest state, and its session's totals (never moved backwards). A
        named session's state (dialysis, ...) also records the named session and its span."""
        good = {c: v["good_s"] for c, v in state["channels"].items()}
        measures = session_measures(state)
        kind = state.get("session_kind") or NIGHT
        session_id = state.get("session_id") if kind != NIGHT else None
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO session (device, session_start, recorded_s, good_s, cramps, updated,"
                " measures, kind, session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (device, session_start) DO UPDATE SET recorded_s ="
                " excluded.recorded_s, good_s = excluded.good_s, cramps = excluded.cramps,"
                " updated = excluded.updated, measures = excluded.measures"
                " WHERE excluded.recorded_s >= session.recorded_s",
                (state["device"], state["session_start"], state["recorded_s"], json.dumps(good),
                 state.get("cramps_session", state["cramps_tonight"]), now_iso(),
                 json.dumps(measures) if measures else None, kind, session_id),
            )  # fmt: skip
            if cursor.rowcount == 1:
                self._changed(db, state["session_start"])
                if session_id is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO named_session (session_id, kind, device, source,"
                        " updated) VALUES (?, ?, ?, 'device', ?)",
                        (session_id, kind, state["device"], now_iso()),
                    )
                    db.execute(
                        "UPDATE named_session SET device = ? WHERE session_id = ? AND device IS NULL",
                        (state["device"], session_id),
                    )
                    self.refresh_span(db, session_id)
            latest = db.execute(
                "SELECT MAX(session_start) FROM session WHERE device = ?", (state["device"],)
            ).fetchone()[0]
            if latest == state["session_start"]:
                self._seen(db, state["device"], state=json.dumps(state))

    def set_status(self, device: str, status: str) -> None:
        with self.transaction() as db:
            self._seen(db, device)
            db.execute(
                "UPDATE device SET status = ?, status_at = ? WHERE device = ?",
                (status, now_iso(), device),
            )

    def set_envelope(self, envelope: dict[str, Any]) -> None:
        with self.transaction() as db:
            self._seen(db, envelope["device"], envelope=json.dumps(envelope))

    def _seen(self, db: sqlite3.Connection, device: str, **columns: str) -> None:
        db.execute(
            "INSERT INTO device (device, last_seen) VALUES (?, ?)"
            " ON CONFLICT (device) DO UPDATE SET last_seen = excluded.last_seen",
            (device, now_iso()),
        )
        for column, value in columns.items():
            db.execute(f"UPDATE device SET {column} = ? WHERE device = ?", (value, device))

    # -- the patient's word -----------------------------------------------------------------

    def set_label(self, target: str, verdict: str | None, at: str) -> bool:
        """The patient's verdict on an event ("event:<id>") or a marker press
        ("marker:<device>@<time>") at time `at`; None takes it back. True when it changed."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        with self.transaction() as db:
            if verdict is None:
                cursor = db.execute("DELETE FROM label WHERE target = ?", (target,))
            else:
                cursor = db.execute(
                    "INSERT INTO label (target, verdict, at, answered) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (target) DO UPDATE SET verdict = excluded.verdict,"
                    " answered = excluded.answered WHERE verdict != excluded.verdict",
                    (target, verdict, at, now_iso()),
                )
            if cursor.rowcount == 1:
                self._changed(db, at)
            return cursor.rowcount == 1

    def labels(self, start: str | None = None, end: str | None = None) -> dict[str, sqlite3.Row]:
        """The verdicts on things at `start` <= time < `end`, by target."""
        rows = self.query(
            "SELECT target, verdict, at, answered FROM label"
            " WHERE (? IS NULL OR at >= ?) AND (? IS NULL OR at < ?) ORDER BY at",
            (start, start, end, end),
        )
        return {row["target"]: row for row in rows}

    # -- per-night summaries ---------------------------------------------------------------

    def changes(self) -> tuple[int, list[str]]:
        """The newest change number and the times changed so far (EVERYTHING for all)."""
        rows = self.query("SELECT id, at FROM changed ORDER BY id")
        return (rows[-1]["id"] if rows else 0), sorted({row["at"] for row in rows})

    def put_night_summaries(
        self, summaries: dict[str, str], done: int, *, replace_all: bool = False
    ) -> None:
        """Store summaries (JSON by night) and forget the changes up to number `done`."""
        with self.transaction() as db:
            if replace_all:
                db.execute("DELETE FROM night_summary")
            db.executemany(
                "INSERT INTO night_summary (night, summary) VALUES (?, ?) ON CONFLICT (night)"
                " DO UPDATE SET summary = excluded.summary",
                list(summaries.items()),
            )
            db.execute("DELETE FROM changed WHERE id <= ?", (done,))

    def drop_night_summaries(self, nights: Sequence[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM night_summary WHERE night = ?", [(n,) for n in nights])

    def night_summaries(self, first: str | None, last: str | None) -> list[str]:
        """The stored summaries (JSON) of nights `first` to `last` (ISO dates), in order."""
        rows = self.query(
            "SELECT summary FROM night_summary WHERE (? IS NULL OR night >= ?)"
            " AND (? IS NULL OR night <= ?) ORDER BY night",
            (first, first, last, last),
        )
        return [row["summary"] for row in rows]

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def mark_everything_changed(self) -> None:
        with self.transaction() as db:
            self._changed(db, EVERYTHING)

    @staticmethod
    def _changed(db: sqlite3.Connection, at: str) -> None:
        db.execute("INSERT INTO changed (at) VALUES (?)", (at,))

    # -- refusals --------------------------------------------------------------------------

    def refuse(self, topic: str, reason: str, payload: bytes) -> None:
        """Keep a bounded record of a refused message and count it."""
        with self.transaction() as db:
            self.record_refusal(db, topic, reason, payload)

    @classmethod
    def record_refusal(
        cls, db: sqlite3.Connection, topic: str, reason: str, payload: bytes | str
    ) -> None:
        """Keep and count a refusal inside the caller's transaction."""
        text = (
            payload[:500].decode("utf-8", "replace")
            if isinstance(payload, bytes)
            else payload[:500]
        )
        db.execute(
            "INSERT INTO refusal (at, topic, reason, payload) VALUES (?, ?, ?, ?)",
            (now_iso(), topic[:200], reason[:500], text),
        )
        db.execute(
            "DELETE FROM refusal WHERE id <= (SELECT MAX(id) FROM refusal) - ?",
            (KEEP_REFUSALS,),
        )
        cls._bump(db, "refused")

    def counter(self, name: str) -> int:
        row = self.query("SELECT value FROM counter WHERE name = ?", (name,))
        return int(row[0]["value"]) if row else 0

    def bump(self, name: str, by: int = 1) -> None:
        with self.transaction() as db:
            self._bump(db, name, by)

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, by: int = 1) -> None:
        db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    # -- named sessions (dialysis, ...) and lab results -------------------------------------

    def put_named_session(
        self, session_id: str, kind: str, *, source: str, started: str | None = None,
        ended: str | None = None, details: str | None = None,
    ) -> bool:  # fmt: skip
        """Create a named session, or set the times and details given (None: kept as they
        are); its span follows. True when it was new."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO named_session (session_id, kind, source, updated)"
                " VALUES (?, ?, ?, ?)",
                (session_id, kind, source, now_iso()),
            )
            for column, value in (("started", started), ("ended", ended), ("details", details)):
                if value is not None:
                    db.execute(
                        f"UPDATE named_session SET {column} = ?, updated = ? WHERE session_id = ?",
                        (value, now_iso(), session_id),
                    )
            self.refresh_span(db, session_id)
            return cursor.rowcount == 1

    def delete_named_session(self, session_id: str) -> bool:
        """Delete a named session nothing recorded (a recorded one stays: its recordings are
        not a night's); False when there is none such."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM session WHERE session_id = ?", (session_id,)).fetchone():
                return False
            row = db.execute(
                "SELECT span_start, span_end FROM named_session WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM named_session WHERE session_id = ?", (session_id,))
            for at in row:
                if at:
                    self._changed(db, at)
            return True

    def refresh_span(self, db: sqlite3.Connection, session_id: str) -> None:
        """Recompute a named session's span (inside the caller's transaction) and note the
        times it changed, so that the nights it touches are summarised again."""
        from dashboards.named_sessions import logged_times, span_bounds
        from dashboards.timebase import iso, parse_time

        row = db.execute(
            "SELECT started, ended, details, span_start, span_end FROM named_session"
            " WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            return
        recordings = []
        for start, recorded_s in db.execute(
            "SELECT session_start, recorded_s FROM session WHERE session_id = ?", (session_id,)
        ).fetchall():
            try:
                begin = parse_time(start)
                recordings.append((begin, begin + timedelta(seconds=float(recorded_s))))
            except (TypeError, ValueError, OverflowError):
                continue  # an unreadable row adds nothing to the span
        started, ended = (_time_or_none(t) for t in row[:2])
        bounds = span_bounds(started, ended, logged_times(row[2]), recordings)
        new = (iso(bounds[0]), iso(bounds[1])) if bounds else (None, None)
        old = (row[3], row[4])
        if new == old:
            return
        db.execute(
            "UPDATE named_session SET span_start = ?, span_end = ? WHERE session_id = ?",
            (*new, session_id),
        )
        for at in {*old, *new} - {None}:
            self._changed(db, at)

    def named_session_rows(
        self, start: str | None = None, end: str | None = None, *, session_id: str | None = None
    ) -> list[sqlite3.Row]:
        """Named sessions whose span overlaps [start, end) (or the one `session_id`), by start."""
        if session_id is not None:
            return self.query(
                "SELECT * FROM named_session WHERE session_id = ? AND span_start IS NOT NULL",
                (session_id,),
            )
        return self.query(
            "SELECT * FROM named_session WHERE span_start IS NOT NULL"
            " AND (? IS NULL OR span_end > ?) AND (? IS NULL OR span_start < ?)"
            " ORDER BY span_start",
            (start, start, end, end),
        )

    def recordings_of(self, session_ids: Sequence[str]) -> list[sqlite3.Row]:
        """The recording sessions made as these named sessions."""
        rows: list[sqlite3.Row] = []
        for first in range(0, len(session_ids), 500):
            chunk = list(session_ids[first : first + 500])
            marks = ", ".join("?" * len(chunk))
            rows += self.query(
                "SELECT device, session_start, recorded_s, good_s, measures, kind, session_id"
                f" FROM session WHERE session_id IN ({marks}) ORDER BY session_start",
                chunk,
            )
        return rows

    def put_lab(self, lab: dict[str, Any]) -> bool:
        """Insert or replace a lab result by its id; True when it was new."""
        with self.transaction() as db:
            old = db.execute(
                "SELECT time FROM lab_result WHERE entry_id = ?", (lab["entry_id"],)
            ).fetchone()
            db.execute(
                "INSERT INTO lab_result (entry_id, time, analyte, value, unit, note, source,"
                " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO UPDATE SET"
                " time = excluded.time, analyte = excluded.analyte, value = excluded.value,"
                " unit = excluded.unit, note = excluded.note, source = excluded.source,"
                " updated = excluded.updated",
                (lab["entry_id"], lab["time"], lab["analyte"], lab["value"], lab["unit"],
                 lab.get("note") or "", lab.get("source") or "api", now_iso()),
            )  # fmt: skip
            return old is None

    def delete_lab(self, entry_id: str) -> bool:
        with self.transaction() as db:
            return (
                db.execute("DELETE FROM lab_result WHERE entry_id = ?", (entry_id,)).rowcount == 1
            )

    def labs(self, start: str | None = None, end: str | None = None) -> list[sqlite3.Row]:
        """Lab results at `start` <= time < `end`, oldest first."""
        return self.query(
            "SELECT entry_id, time, analyte, value, unit, note, source FROM lab_result"
            " WHERE (? IS NULL OR time >= ?) AND (? IS NULL OR time < ?) ORDER BY time",
            (start, start, end, end),
        )

    # -- intake ----------------------------------------------------------------------------

    def put_intake(self, entry: dict[str, Any]) -> bool:
        """Insert or replace an intake entry by its id; True when it was new."""
        return self.put_intakes([entry]) == 1

    def put_intakes(self, entries: Sequence[dict[str, Any]]) -> int:
        """Insert or replace intake entries by id in one transaction; returns how many were new."""
        updated = now_iso()
        rows = [
            (e["entry_id"], e["time"], e["factor"], e["amount"], e["unit"], e.get("note") or "",
             e.get("source") or "api", updated)
            for e in entries
        ]  # fmt: skip
        with self.transaction() as db:
            before = db.execute("SELECT COUNT(*) FROM intake").fetchone()[0]
            db.executemany(
                "INSERT INTO intake (entry_id, time, factor, amount, unit, note, source, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO UPDATE SET"
                " time = excluded.time, factor = excluded.factor, amount = excluded.amount,"
                " unit = excluded.unit, note = excluded.note, source = excluded.source,"
                " updated = excluded.updated",
                rows,
            )
            return db.execute("SELECT COUNT(*) FROM intake").fetchone()[0] - before

    def delete_intake(self, entry_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM intake WHERE entry_id = ?", (entry_id,)).rowcount == 1

    def intake(self, entry_id: str) -> StoredIntake | None:
        rows = self.query(
            "SELECT entry_id, time, factor, amount, unit, note, source FROM intake"
            " WHERE entry_id = ?",
            (entry_id,),
        )
        return StoredIntake(*rows[0]) if rows else None

    def intakes(
        self, start: str | None = None, end: str | None = None, *, limit: int = -1,
        offset: int = 0,
    ) -> list[StoredIntake]:  # fmt: skip
        """Entries at `start` <= time < `end`, newest first; at most `limit` (-1: all)."""
        rows = self.query(
            "SELECT entry_id, time, factor, amount, unit, note, source FROM intake"
            " WHERE (? IS NULL OR time >= ?) AND (? IS NULL OR time < ?) ORDER BY time DESC"
            " LIMIT ? OFFSET ?",
            (start, start, end, end, limit, offset),
        )
        return [StoredIntake(*row) for row in rows]

    def intake_count(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM intake")[0][0])

    def put_custom_factor(self, key: str, label: str, unit: str, kind: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO custom_factor (key, label, unit, kind) VALUES (?, ?, ?, ?)",
                (key, label, unit, kind),
            )

    def custom_factors(self) -> list[sqlite3.Row]:
        return self.query("SELECT key, label, unit, kind FROM custom_factor ORDER BY key")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
