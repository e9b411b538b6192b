"""Repeated conditions in the log: the first line, then a count per interval, never a flood.

A call site whose condition can repeat many times a second (a converter re-sending its
configuration, a channel's signal flapping between lost and back, an unreachable broker) tags its
line with `extra=repeated(key)`. The `Coalescer` on the log handler lets the first line of each key
through; further lines with that key within `interval_s` are counted, and once per interval, while
they go on, the latest one goes out with the count ("... (and 41 more like this in the last 60 s)").
`flush_due()` sends the summaries of conditions that stopped (the daemon calls it as it runs),
`flush_all()` the rest (at the end). Lines without a key pass untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

COALESCE = "coalesce"  # the LogRecord attribute that holds the key
DEFAULT_INTERVAL_S = 60.0


def repeated(key: str) -> dict[str, str]:
    """`extra=` for a log call whose condition can repeat: lines with the same key coalesce."""
    return {COALESCE: key}


@dataclass
class _Seen:
    since: float  # when the current interval began
    count: int = 0  # lines held back in it
    latest: logging.LogRecord | None = None


class Coalescer(logging.Filter):
    """A filter for a handler: see the module doc. Thread-safe."""

    def __init__(
        self,
        handler: logging.Handler,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = getattr(record, COALESCE, None)
        if key is None or getattr(record, "_coalesced", False):
            return True
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or (now - seen.since >= self.interval_s and not seen.count):
                self._seen[key] = _Seen(now)
                return True
            seen.count += 1
            seen.latest = record
            if now - seen.since < self.interval_s:
                return False
            self._summarise(record, seen, now)
            self._seen[key] = _Seen(now)
            return True

    def flush_due(self, *, everything: bool = False) -> None:
        """Send the held-back count of every condition whose interval is over (or of all)."""
        now = self.clock()
        due: list[logging.LogRecord] = []
        with self._lock:
            for key, seen in list(self._seen.items()):
                if not everything and now - seen.since < self.interval_s:
                    continue
                if seen.count and seen.latest is not None:
                    record = logging.makeLogRecord(seen.latest.__dict__)
                    record.created = time.time()  # written now
                    record.msecs = record.created % 1 * 1000
                    self._summarise(record, seen, now)
                    due.append(record)
                    self._seen[key] = _Seen(now)
                else:
                    del self._seen[key]  # quiet for a whole interval: the next line is a first
        for record in due:
            self.handler.handle(record)

    @staticmethod
    def _summarise(record: logging.LogRecord, seen: _Seen, now: float) -> None:
        """Make `record` (the latest of the interval) say how many there were."""
        message = record.getMessage()
        more = seen.count - 1
        span = max(1.0, now - seen.since)
        record.msg = (
            f"{message} (and {more} more like this in the last {span:.0f} s)" if more else message
        )
        record.args = None
        record._coalesced = True  # type: ignore[attr-defined]


_active: list[Coalescer] = []


def install(handler: logging.Handler, interval_s: float = DEFAULT_INTERVAL_S) -> Coalescer:
    """Coalesce repeated lines on `handler` (replacing an earlier installation)."""
    for old in _active:
        old.handler.removeFilter(old)
    coalescer = Coalescer(handler, interval_s)
    handler.addFilter(coalescer)
    _active[:] = [coalescer]
    return coalescer


def flush_due() -> None:
    """Summaries of the conditions whose interval is over (no-op when none is installed)."""
    for coalescer in _active:
        coalescer.flush_due()


def flush_all() -> None:
    """Every held-back count, now (at the end of a run)."""
    for coalescer in _active:
        coalescer.flush_due(everything=True)
