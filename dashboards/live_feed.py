"""Change notifications from ingest to the web pages (server-sent events)."""

from __future__ import annotations

import threading
from collections import deque


class LiveFeed:
    """A numbered, bounded list of what changed ("event", "state", "intake", ...); readers ask
    for everything after the number they have seen."""

    def __init__(self, keep: int = 1000) -> None:
        self._items: deque[tuple[int, str]] = deque(maxlen=keep)
        self._number = 0
        self._changed = threading.Condition()

    def publish(self, kind: str) -> None:
        with self._changed:
            self._number += 1
            self._items.append((self._number, kind))
            self._changed.notify_all()

    @property
    def latest(self) -> int:
        return self._number

    def since(self, number: int) -> list[tuple[int, str]]:
        with self._changed:
            return [item for item in self._items if item[0] > number]

    def wait(self, number: int, timeout_s: float) -> list[tuple[int, str]]:
        """What came after `number`, waiting up to `timeout_s` for something to come."""
        with self._changed:
            self._changed.wait_for(lambda: self._number > number, timeout=timeout_s)
            return [item for item in self._items if item[0] > number]
