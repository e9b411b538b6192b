"""Clocks for acquisition: the system's monotonic clock, or one that runs faster for simulations."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What acquisition code and simulated chips use to tell and pass time."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ScaledClock:
    """Time that passes `speed` times faster than real time (shared by a simulated chip and the
    acquisition loop that reads it, so both agree on what "now" is)."""

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
    as fast as the computer allows, and every run gives the same samples at the same times."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds
