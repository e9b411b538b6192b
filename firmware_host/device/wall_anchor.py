"""The session's wall-clock start, on a device whose clock may be wrong and may jump.

A Raspberry Pi has no real-time clock: it boots with the time it last saved (or 1970) and is set
from the network later, often minutes into a night, by a step of minutes or hours, forwards or
backwards. Acquisition, durations and the order of events never use the wall clock (they use the
monotonic clock and sample counts); wall time is only an anchor: the session's start, from which
event times are its sample offsets. `WallAnchor` keeps that anchor as the monotonic instant of
the first sample plus the wall clock's offset from the monotonic clock, and looks at that offset
as the daemon runs: a change of more than `step_s` is a step of the system clock (NTP slews small
errors slowly; it steps large ones). The anchor is then corrected and the correction logged, so
messages made from then on carry corrected times. A clock before `PLAUSIBLE_FROM` (before this
software existed) is called out as not set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger("crampwatch")

PLAUSIBLE_FROM = datetime(2026, 1, 1, tzinfo=UTC)  # no earlier clock can be right for crampwatch
STEP_S = 1.0


class SystemTime(Protocol):
    """The two clocks the anchor compares (injectable for tests)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class OsTime:
    """The system's wall clock (`time.time`) and monotonic clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class Correction:
    """One step of the system clock as the anchor saw it."""

    at_monotonic: float
    step_s: float
    start_before: datetime
    start_after: datetime


class WallAnchor:
    """Wall time of the session's sample offsets; see the module doc.

    `first_sample_age_s`: how long ago the session's first sample was taken (0: now)."""

    def __init__(
        self,
        clock: SystemTime | None = None,
        *,
        first_sample_age_s: float = 0.0,
        step_s: float = STEP_S,
        plausible_from: datetime = PLAUSIBLE_FROM,
    ) -> None:
        self.clock = clock or OsTime()
        self.step_s = step_s
        self.plausible_from = plausible_from
        now = self.clock.monotonic()
        self.first_sample = now - max(0.0, first_sample_age_s)
        self._offset = self.clock.time() - now  # wall = monotonic + offset
        self.corrections: list[Correction] = []
        self.plausible = self._plausible(self.start)
        if not self.plausible:
            log.warning(
                "the system clock says %s, before crampwatch existed: it has not been set yet "
                "(a Pi has no real-time clock; it is set from the network). Event times are "
                "corrected when it is.",
                _words(self.start),
            )

    @property
    def start(self) -> datetime:
        """The wall time of the session's first sample."""
        return _utc(self.first_sample + self._offset)

    def at(self, seconds: float) -> datetime:
        """The wall time `seconds` after the session's first sample."""
        return self.start + timedelta(seconds=seconds)

    def check(self) -> bool:
        """Look at the clocks; True (and the anchor corrected, logged) if the wall clock
        stepped since the last look."""
        now = self.clock.monotonic()
        offset = self.clock.time() - now
        step = offset - self._offset
        if abs(step) <= self.step_s:
            return False
        before = self.start
        self._offset = offset
        after = self.start
        self.corrections.append(Correction(now, step, before, after))
        was_plausible, self.plausible = self.plausible, self._plausible(after)
        log.warning(
            "the system clock stepped %s by %s%s: event times are corrected; the session "
            "started at %s (not %s)%s",
            "forwards" if step > 0 else "backwards",
            _duration(abs(step)),
            "" if was_plausible else " (it had not been set)",
            _words(after),
            _words(before),
            "" if self.plausible else "; the clock is still before crampwatch existed",
        )
        return True

    def _plausible(self, moment: datetime) -> bool:
        return moment >= self.plausible_from


def _utc(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def _words(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min {secs} s"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s"
