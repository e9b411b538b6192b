"""Clocks for acquisition: the system's monotonic clock, one that runs faster for simulations, and
a virtual one that moves only when someone sleeps (runs as fast as the computer allows).

`real_time` tells the two kinds apart: on a real-time clock a late host misses slots, and waiting
costs time; on a virtual clock nothing is ever late, so acquisition waits for its reader instead
of dropping samples, and a simulated chip runs its conversions as events scheduled on the clock
(`call_at`) rather than on a thread of its own.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """What acquisition code and simulated chips use to tell and pass time."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


def is_real_time(clock: object) -> bool:
    """Does time pass on this clock whether or not anyone sleeps on it?"""
    return bool(getattr(clock, "real_time", True))


class SystemClock:
    """Real time (CLOCK_MONOTONIC: the same in every process, never stepped by NTP)."""

    real_time = True

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Time that passes `speed` times faster than real time (shared by a simulated chip and the
    acquisition loop that reads it, so both agree on what "now" is; a copy in another process
    agrees too, since it counts from the same system monotonic instant)."""

    real_time = True

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._real_start = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._real_start) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


class VirtualClock:
    """Time that moves only when someone sleeps: a paced loop reading a simulated chip then runs
    as fast as the computer allows, and every run gives the same samples at the same times.

    `call_at(t, action)` schedules an action (a simulated chip's conversion ending) at clock time
    t: a `sleep` that passes t stops there, runs it on the sleeping thread with the clock reading
    t, then goes on. Only one thread should sleep on a virtual clock (the acquisition loop);
    others may read it."""

    real_time = False

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if not seconds > 0:
            return
        with self._lock:
            target = self._now + seconds
        while True:
            with self._lock:
                if not self._events or self._events[0][0] > target:
                    self._now = max(self._now, target)
                    return
                t, _, action = heapq.heappop(self._events)
                self._now = max(self._now, t)
            action()

    def call_at(self, t: float, action: Callable[[], None]) -> None:
        """Run `action` when a sleep reaches clock time `t` (at once, on the next sleep, if t has
        passed)."""
        with self._lock:
            heapq.heappush(self._events, (t, next(self._order), action))

    def __getstate__(self) -> dict[str, object]:
        """A copy (for another process) keeps the time, not the lock or the scheduled actions."""
        return {"_now": self._now}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(float(state["_now"]))  # type: ignore[misc, arg-type]
