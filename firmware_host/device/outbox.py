"""The durable outbox: every QoS 1 message is written here before it is published.

A message is marked sent only when the broker acknowledges it; whatever is unsent when the broker
goes away or the process dies is sent again later, in order. Retention is bounded: sent messages
are pruned after `keep_sent_s`; when more than `max_unsent` messages wait, the oldest quality
messages go first, then the oldest events, each drop logged as an error and counted (never
silently). Messages with a `coalesce_key` (the retained state) replace their unsent predecessor:
only the latest state matters.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("crampwatch.outbox")

SCHEMA_VERSION = 1
KIND_EVENT = "event"
DROP_ORDER = ("quality", "state", "marker", KIND_EVENT)  # what goes first when the outbox is full


class OutboxError(Exception):
    """The outbox file cannot be opened or used."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    unsent: int
    sent: int
    dropped: int


class Outbox:
    """A SQLite (WAL) queue of messages to publish; safe to use from several threads."""

    def __init__(
        self,
        path: Path,
        *,
        max_unsent: int = 100_000,
        keep_sent_s: float = 7 * 86400.0,
    ) -> None:
        if max_unsent < 1:
            raise ValueError("max_unsent must be at least 1")
        self.path = Path(path)
        self.max_unsent = max_unsent
        self.keep_sent_s = keep_sent_s
        self._lock = threading.Lock()
        self._db = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                db.executescript(
                    """
                    CREATE TABLE IF NOT EXISTS message (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        topic TEXT NOT NULL,
                        payload BLOB NOT NULL,
                        qos INTEGER NOT NULL,
                        retain INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        coalesce_key TEXT,
                        created REAL NOT NULL,
                        sent REAL
                    );
                    CREATE INDEX IF NOT EXISTS message_unsent ON message (id) WHERE sent IS NULL;
                    CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER);
                    """
                )
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise OutboxError(
                    f"{path} is an outbox of a newer crampwatch (schema {version}); "
                    "upgrade crampwatch or give another --outbox path"
                )
        except sqlite3.DatabaseError as error:
            raise OutboxError(
                f"cannot use {path} as the outbox ({error}); give another --outbox path "
                "or move the damaged file away"
            ) from error
        return db

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        kind: str,
        qos: int = 1,
        retain: bool = False,
        coalesce_key: str | None = None,
    ) -> int:
        """Store a message durably; returns its id."""
        with self._lock, self._db:
            if coalesce_key is not None:
                self._db.execute(
                    "DELETE FROM message WHERE coalesce_key = ? AND sent IS NULL", (coalesce_key,)
                )
            cursor = self._db.execute(
                "INSERT INTO message (topic, payload, qos, retain, kind, coalesce_key, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), kind, coalesce_key, time.time()),
            )
            self._enforce_limit()
            return int(cursor.lastrowid or 0)

    def unsent(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxMessage]:
        """The oldest unsent messages with an id above `after_id`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain, kind FROM message"
                " WHERE sent IS NULL AND id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxMessage(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def mark_sent(self, message_id: int) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE message SET sent = ? WHERE id = ? AND sent IS NULL",
                (time.time(), message_id),
            )

    def prune(self, now: float | None = None) -> int:
        """Forget sent messages older than the retention; returns how many."""
        cutoff = (now if now is not None else time.time()) - self.keep_sent_s
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM message WHERE sent IS NOT NULL AND sent < ?", (cutoff,)
            )
            return cursor.rowcount

    def counts(self) -> OutboxCounts:
        with self._lock:
            unsent, sent = self._db.execute(
                "SELECT COALESCE(SUM(sent IS NULL), 0), COALESCE(SUM(sent IS NOT NULL), 0)"
                " FROM message"
            ).fetchone()
            dropped = self._counter("dropped")
        return OutboxCounts(int(unsent), int(sent), dropped)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _enforce_limit(self) -> None:
        (unsent,) = self._db.execute("SELECT COUNT(*) FROM message WHERE sent IS NULL").fetchone()
        excess = unsent - self.max_unsent
        for kind in DROP_ORDER:
            if excess <= 0:
                return
            rows = self._db.execute(
                "SELECT id, topic, payload FROM message WHERE sent IS NULL AND kind = ?"
                " ORDER BY id LIMIT ?",
                (kind, excess),
            ).fetchall()
            for row_id, topic, payload in rows:
                log.error(
                    "outbox full (%d unsent, limit %d): dropping unsent %s message %d on %s: %s",
                    unsent,
                    self.max_unsent,
                    kind,
                    row_id,
                    topic,
                    bytes(payload)[:200].decode("utf-8", "replace"),
                )
                self._db.execute("DELETE FROM message WHERE id = ?", (row_id,))
            self._bump("dropped", len(rows))
            excess -= len(rows)

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
