"""Saying that a broker cannot be reached: at once, then coalesced, then that it is back.

The first failed attempt is logged at once (what cannot be reached and that it keeps trying);
later failures are counted and reported at most once per interval with their number, never one
line per attempt; a connection after failures says how long it was down. A disconnection asked
for (a clean stop) is not reported as a loss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def _wall() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class OutageLog:
    """The link to one broker as the log and a status page see it (thread-safe)."""

    def __init__(
        self,
        logger: logging.Logger,
        address: str,
        *,
        who: str,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log, self.address, self.who = logger, address, who
        self.interval_s, self.clock = interval_s, clock
        self._lock = threading.Lock()
        self._connected = False
        self._stopping = False
        self._since = _wall()
        self._down_since: float | None = None
        self._failures = 0  # since the last connection
        self._unreported = 0  # failures not yet in a log line
        self._last_line = 0.0
        self._last_error: str | None = None

    def failed(self, reason: str) -> None:
        """A connection attempt failed (the broker is unreachable or refused us)."""
        with self._lock:
            now = self.clock()
            self._last_error = reason
            self._failures += 1
            if self._down_since is None:
                self._down_since = now
            if self._connected:
                self._connected, self._since = False, _wall()
            if self._failures == 1:
                self._last_line = now
                self.log.warning(
                    "%s: cannot reach the MQTT broker at %s (%s); retrying until it answers",
                    self.who, self.address, reason,
                )  # fmt: skip
                return
            self._unreported += 1
            if now - self._last_line >= self.interval_s:
                self.log.warning(
                    "%s: still cannot reach the MQTT broker at %s: %d more failed attempt(s) in "
                    "the last %.0f s (%s); retrying",
                    self.who, self.address, self._unreported, now - self._last_line, reason,
                )  # fmt: skip
                self._unreported, self._last_line = 0, now

    def connected(self) -> None:
        with self._lock:
            if self._failures:
                now = self.clock()
                down_s = now - (now if self._down_since is None else self._down_since)
                self.log.info(
                    "%s: connected to the MQTT broker at %s after %d failed attempt(s) over %.0f s",
                    self.who, self.address, self._failures, down_s,
                )  # fmt: skip
            else:
                self.log.info("%s: connected to the MQTT broker at %s", self.who, self.address)
            self._connected, self._since = True, _wall()
            self._failures = self._unreported = 0
            self._down_since, self._last_error = None, None

    def lost(self, reason: str) -> None:
        """The connection dropped; silent when it was a stop we asked for."""
        with self._lock:
            was, self._connected = self._connected, False
            if self._stopping:
                return
            self._since = _wall()
            self._down_since = self.clock()
            self._last_error = reason
        if was:
            self.log.warning(
                "%s: lost the MQTT broker at %s (%s); reconnecting", self.who, self.address, reason
            )

    def stopping(self) -> None:
        with self._lock:
            self._stopping = True

    @property
    def is_connected(self) -> bool:
        with self._lock:
            return self._connected

    def status(self) -> dict[str, Any]:
        """For a status page: where, whether connected, since when, failures and the last error."""
        with self._lock:
            return {
                "address": self.address,
                "connected": self._connected,
                "since": self._since,
                "failed_attempts": self._failures,
                "last_error": self._last_error,
            }
