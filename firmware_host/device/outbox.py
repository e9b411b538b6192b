"""The outbox: every QoS 1 message is written here before it is published.

A message is marked sent only when the broker acknowledges it; whatever is unsent when the broker
goes away or the process dies is sent again later, in order. Retention is bounded: sent messages
are pruned after `keep_sent_s`; when more than `max_unsent` messages wait, the oldest quality
messages go first, then states and markers, then the oldest events, each drop logged as an error
and counted (never silently). Messages with a `coalesce_key` (the retained state) replace their
unsent predecessor: only the latest state matters.

The disk may fail under it (full, read-only, damaged, removed). Then the outbox holds messages in
memory, bounded by `memory_bytes` (beyond it, the same drop order, each drop logged and counted),
and they are still published; every `retry_s` it tries the disk again (`maintain`, called by the
MQTT sender thread, never by the detection loop) and, once the disk works, writes what it holds back
to the file. A damaged file is moved aside (`outbox.db.damaged-<time>`) and a new one started. No
disk problem raises out of the outbox: `status()` says where the messages are and why.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("crampwatch.outbox")

SCHEMA_VERSION = 1
KIND_EVENT = "event"
DROP_ORDER = ("quality", "state", "marker", KIND_EVENT)  # what goes first when the outbox is full
STORAGE_DISK, STORAGE_MEMORY = "disk", "memory"
_DAMAGED_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB: the file is not a usable database
_REMIND_S = 600.0  # while the disk stays unusable, say so again this often


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    coalesce_key: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    unsent: int
    sent: int
    dropped: int


class _NewerSchema(Exception):
    """The file is the outbox of a newer crampwatch: leave it alone."""


class Outbox:
    """A SQLite (WAL) queue of messages to publish, with a bounded in-memory fallback; safe to
    use from several threads."""

    def __init__(
        self,
        path: Path,
        *,
        max_unsent: int = 100_000,
        keep_sent_s: float = 7 * 86400.0,
        memory_bytes: int = 16 << 20,
        retry_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_unsent < 1:
            raise ValueError("max_unsent must be at least 1")
        if memory_bytes < 1:
            raise ValueError("memory_bytes must be at least 1")
        self.path = Path(path)
        self.max_unsent = max_unsent
        self.keep_sent_s = keep_sent_s
        self.memory_bytes = memory_bytes
        self.retry_s = retry_s
        self._clock = clock
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._memory: dict[int, OutboxMessage] = {}  # id order = arrival order
        self._memory_size = 0
        self._sent_unrecorded: set[int] = set()  # on disk, acknowledged, not yet marked there
        self._dropped_unrecorded = 0
        self._dropped_session = 0
        self._next_id = 1
        self._damaged = False
        self._leave_alone = False
        self.problem: str | None = None
        self._retry_at = 0.0
        self._reminded_at: float | None = None  # when the disk problem was last said loudly
        self._episode_loud = True
        self.epoch = 0  # bumped when older unsent messages become readable (a late disk)
        self.written_back = 0
        with self._lock:
            problem = self._connect()
            if problem is not None and self._damaged and self._move_aside():
                problem = self._connect()
            if problem is not None:
                self._next_id = int(time.time() * 1000)  # above any id a file may hold
                self._set_problem(problem)

    # -- the public queue ------------------------------------------------------------------

    @property
    def storage(self) -> str:
        """Where new messages go now: `disk`, or `memory` while the disk fails."""
        return STORAGE_DISK if self.problem is None else STORAGE_MEMORY

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
        """Store a message (on disk, or in memory while the disk fails); returns its id."""
        with self._lock:
            message = OutboxMessage(
                self._next_id, topic, bytes(payload), qos, retain, kind, coalesce_key
            )
            self._next_id += 1
            if coalesce_key is not None:
                self._forget_held(lambda m: m.coalesce_key == coalesce_key)
            if self._db is not None and self.problem is None:
                try:
                    with self._db:
                        self._insert(message)
                        self._enforce_disk_limit()
                    return message.id
                except sqlite3.Error as error:
                    self._degrade(error, f"storing a message ({kind})")
            self._hold(message)
            return message.id

    def unsent(self, *, after_id: int = 0, limit: int = 100) -> list[OutboxMessage]:
        """The oldest unsent messages with an id above `after_id` (disk and memory, in order)."""
        with self._lock:
            stored: list[OutboxMessage] = []
            if self._db is not None and not self._damaged:
                try:
                    rows = self._db.execute(
                        "SELECT id, topic, payload, qos, retain, kind, coalesce_key FROM message"
                        " WHERE sent IS NULL AND id > ? ORDER BY id LIMIT ?",
                        (after_id, limit + len(self._sent_unrecorded)),
                    ).fetchall()
                    stored = [
                        OutboxMessage(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5], r[6])
                        for r in rows
                        if r[0] not in self._sent_unrecorded
                    ]
                except sqlite3.Error as error:
                    self._degrade(error, "reading unsent messages")
            held = [m for i, m in self._memory.items() if i > after_id]
        merged = sorted([*stored, *held[:limit]], key=lambda m: m.id)
        return merged[:limit]

    def mark_sent(self, message_id: int) -> None:
        """The broker has it."""
        with self._lock:
            held = self._memory.pop(message_id, None)
            if held is not None:
                self._memory_size -= len(held.payload)
                return
            if self._db is None or self.problem is not None:
                self._sent_unrecorded.add(message_id)
                return
            try:
                with self._db:
                    self._db.execute(
                        "UPDATE message SET sent = ? WHERE id = ? AND sent IS NULL",
                        (time.time(), message_id),
                    )
            except sqlite3.Error as error:
                self._sent_unrecorded.add(message_id)
                self._degrade(error, "marking a message sent")

    def prune(self, now: float | None = None) -> int:
        """Forget sent messages older than the retention; returns how many."""
        cutoff = (now if now is not None else time.time()) - self.keep_sent_s
        with self._lock:
            if self._db is None or self.problem is not None:
                return 0
            try:
                with self._db:
                    cursor = self._db.execute(
                        "DELETE FROM message WHERE sent IS NOT NULL AND sent < ?", (cutoff,)
                    )
                return cursor.rowcount
            except sqlite3.Error as error:
                self._degrade(error, "pruning sent messages")
                return 0

    def counts(self) -> OutboxCounts:
        with self._lock:
            unsent = sent = dropped = 0
            if self._db is not None and not self._damaged:
                try:
                    unsent, sent = self._db.execute(
                        "SELECT COALESCE(SUM(sent IS NULL), 0), COALESCE(SUM(sent IS NOT NULL), 0)"
                        " FROM message"
                    ).fetchone()
                    dropped = self._counter("dropped")
                except sqlite3.Error as error:
                    self._degrade(error, "counting messages")
            unsent = max(0, int(unsent) - len(self._sent_unrecorded)) + len(self._memory)
            return OutboxCounts(unsent, int(sent), int(dropped) + self._dropped_unrecorded)

    def status(self) -> dict[str, Any]:
        """For the device's state message: where messages are kept and what was lost."""
        counts = self.counts()
        with self._lock:
            return {
                "storage": self.storage,
                "unsent": counts.unsent,
                "in_memory": len(self._memory),
                "in_memory_kb": round(self._memory_size / 1024, 1),
                "dropped": counts.dropped,
                "dropped_this_session": self._dropped_session,
                "problem": self.problem,
            }

    def maintain(self) -> bool:
        """While the disk fails: try it again (at most every `retry_s`), and write the held
        messages back once it works. Returns True when the outbox is on disk."""
        with self._lock:
            if self.problem is None:
                return True
            now = self._clock()
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_s
            return self._recover()

    def close(self) -> None:
        with self._lock:
            if self.problem is not None:
                self._retry_at = 0.0
                self.maintain()
            if self._memory:
                log.error(
                    "outbox: %d undelivered message(s) held in memory are lost at exit (%s)",
                    len(self._memory),
                    self.problem,
                )
            self._close_quietly(self._db)
            self._db = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the disk --------------------------------------------------------------------------

    def _connect(self) -> str | None:
        """Open (or create) the file; what is wrong with it when it cannot be used."""
        db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=5.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # A small write-ahead log: checkpoint every 64 pages, and give the space back.
            db.execute("PRAGMA wal_autocheckpoint=64")
            db.execute("PRAGMA journal_size_limit=262144")
            self._create_or_check(db)
            (largest,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM message").fetchone()
        except _NewerSchema as error:
            self._close_quietly(db)
            self._leave_alone = True
            return str(error)
        except (sqlite3.Error, OSError) as error:
            self._close_quietly(db)
            if isinstance(error, sqlite3.Error) and _is_damage(error):
                self._damaged = True
            return self._describe(error, "opening the file")
        self._db = db
        self._damaged = False
        self._next_id = max(self._next_id, int(largest) + 1)
        return None

    def _create_or_check(self, db: sqlite3.Connection) -> None:
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
            raise _NewerSchema(
                f"{self.path} is an outbox of a newer crampwatch (schema {version}); messages "
                "are held in memory only: upgrade crampwatch or give another --outbox path"
            )

    def _recover(self) -> bool:
        if self._leave_alone:
            return False
        if self._damaged:
            self._close_quietly(self._db)
            self._db = None
            if not self._move_aside():
                return False
        if self._db is None:
            problem = self._connect()
            if problem is not None:
                self.problem = problem
                self._remind()
                return False
            self.epoch += 1  # the file may hold older unsent messages: send from the start
        try:
            with self._db:
                self._write_back()
        except sqlite3.Error as error:
            if _is_damage(error):
                self._damaged = True
            self.problem = self._describe(error, "writing held messages back")
            self._remind()
            return False
        held = len(self._memory)
        self.written_back += held
        self._memory.clear()
        self._memory_size = 0
        self._sent_unrecorded.clear()
        self._dropped_unrecorded = 0
        log.log(
            logging.WARNING if self._episode_loud else logging.INFO,
            "outbox: the disk works again (%s); %d held message(s) written back to %s",
            self.problem,
            held,
            self.path,
        )
        self.problem = None
        return True

    def _write_back(self) -> None:
        assert self._db is not None
        for key in {m.coalesce_key for m in self._memory.values() if m.coalesce_key}:
            self._db.execute("DELETE FROM message WHERE coalesce_key = ? AND sent IS NULL", (key,))
        for message in self._memory.values():
            self._insert(message)
        now = time.time()
        self._db.executemany(
            "UPDATE message SET sent = ? WHERE id = ? AND sent IS NULL",
            [(now, i) for i in self._sent_unrecorded],
        )
        if self._dropped_unrecorded:
            self._bump("dropped", self._dropped_unrecorded)
        self._bump("disk_recovered", 1)  # a real write, even with nothing held
        self._enforce_disk_limit()

    def _move_aside(self) -> bool:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            self.path.replace(target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(target.with_name(target.name + suffix))
        except OSError as error:
            self.problem = f"{self.path} is damaged and cannot be moved aside ({error})"
            self._remind()
            return False
        log.error(
            "outbox: %s was damaged; moved it to %s (its unsent messages are not sent) and "
            "started a new one",
            self.path,
            target.name,
        )
        self._damaged = False
        return True

    def _insert(self, message: OutboxMessage) -> None:
        assert self._db is not None
        if message.coalesce_key is not None:
            self._db.execute(
                "DELETE FROM message WHERE coalesce_key = ? AND sent IS NULL",
                (message.coalesce_key,),
            )
        self._db.execute(
            "INSERT INTO message (id, topic, payload, qos, retain, kind, coalesce_key, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.id,
                message.topic,
                message.payload,
                message.qos,
                int(message.retain),
                message.kind,
                message.coalesce_key,
                time.time(),
            ),
        )

    def _enforce_disk_limit(self) -> None:
        assert self._db is not None
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
                _log_drop(f"{unsent} unsent, limit {self.max_unsent}", kind, row_id, topic, payload)
                self._db.execute("DELETE FROM message WHERE id = ?", (row_id,))
            self._bump("dropped", len(rows))
            self._dropped_session += len(rows)
            excess -= len(rows)

    def _counter(self, name: str) -> int:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> None:
        assert self._db is not None
        self._db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    # -- memory ----------------------------------------------------------------------------

    def _hold(self, message: OutboxMessage) -> None:
        self._memory[message.id] = message
        self._memory_size += len(message.payload)
        over_bytes = self._memory_size - self.memory_bytes
        over_count = len(self._memory) - self.max_unsent
        if over_bytes <= 0 and over_count <= 0:
            return
        for kind in DROP_ORDER:
            for victim in [m for m in self._memory.values() if m.kind == kind]:
                if self._memory_size <= self.memory_bytes and len(self._memory) <= self.max_unsent:
                    return
                del self._memory[victim.id]
                self._memory_size -= len(victim.payload)
                self._dropped_unrecorded += 1
                self._dropped_session += 1
                _log_drop(
                    f"{len(self._memory) + 1} held in memory, {self._memory_size // 1024} KB, "
                    f"limit {self.memory_bytes // 1024} KB",
                    kind,
                    victim.id,
                    victim.topic,
                    victim.payload,
                )

    def _forget_held(self, match: Callable[[OutboxMessage], bool]) -> None:
        for victim in [m for m in self._memory.values() if match(m)]:
            del self._memory[victim.id]
            self._memory_size -= len(victim.payload)

    # -- problems --------------------------------------------------------------------------

    def _degrade(self, error: Exception, doing: str) -> None:
        if isinstance(error, sqlite3.Error) and _is_damage(error):
            self._damaged = True
        first = self.problem is None
        self.problem = self._describe(error, doing)
        self._retry_at = self._clock() + self.retry_s
        if first:
            self._episode_loud = self._loud()
        if first and not self._episode_loud:
            log.info("outbox: the disk failed again (%s); holding messages in memory", error)
        elif first:
            self._reminded_at = self._clock()
            log.error(
                "outbox: %s; holding messages in memory (at most %d KB) and sending them from "
                "there; detection and MQTT go on, the disk is tried again every %g s",
                self.problem,
                self.memory_bytes // 1024,
                self.retry_s,
            )

    def _set_problem(self, problem: str) -> None:
        self.problem = problem
        self._retry_at = self._clock() + self.retry_s
        self._reminded_at = self._clock()
        log.error(
            "outbox: %s; holding messages in memory (at most %d KB); detection and MQTT go on",
            problem,
            self.memory_bytes // 1024,
        )

    def _loud(self) -> bool:
        """A disk that fails and recovers again and again is said loudly once per reminder
        period, then quietly (info) until the period has passed."""
        return self._reminded_at is None or self._clock() - self._reminded_at >= _REMIND_S

    def _remind(self) -> None:
        if self._loud():
            self._reminded_at = self._clock()
            log.error(
                "outbox: still no usable disk (%s); %d message(s) held in memory, %d dropped",
                self.problem,
                len(self._memory),
                self._dropped_session,
            )

    def _describe(self, error: Exception, doing: str) -> str:
        return f"the outbox file {self.path} failed while {doing} ({error})"

    @staticmethod
    def _close_quietly(db: sqlite3.Connection | None) -> None:
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()


def _is_damage(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _DAMAGED_CODES
    text = str(error)
    return "malformed" in text or "not a database" in text


def _log_drop(why: str, kind: str, message_id: int, topic: str, payload: Iterable[int]) -> None:
    log.error(
        "outbox full (%s): dropping unsent %s message %d on %s: %s",
        why,
        kind,
        message_id,
        topic,
        bytes(payload)[:200].decode("utf-8", "replace"),
    )
