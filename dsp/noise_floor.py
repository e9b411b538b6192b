"""Resting noise floor: a low percentile of per-tick envelope medians over recent quiet ticks."""

from __future__ import annotations

import bisect
from collections import deque


class NoiseFloor:
    """Learns only from ticks it is given (the detector gives it quiet ticks, never an event).

    Until `warmup` quiet ticks have been seen the floor is not ready and detection waits, unless a
    starting floor was given (`initial_uv`, e.g. from a calibration): that one is used until
    `warmup` quiet ticks have been learned. A `fixed` floor is the given one, all the time: it
    learns nothing and is never reset.
    """

    def __init__(
        self,
        capacity: int,
        percentile: float,
        warmup: int,
        initial_uv: float | None = None,
        *,
        fixed: bool = False,
    ) -> None:
        if fixed and initial_uv is None:
            raise ValueError("a fixed floor needs a value")
        self.capacity = max(1, capacity)
        self.percentile = percentile
        self.warmup = max(1, warmup)
        self.fixed = fixed
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self._initial = initial_uv
        self.value: float = initial_uv if initial_uv is not None else float("nan")

    @property
    def ready(self) -> bool:
        return self._initial is not None or len(self._recent) >= self.warmup

    @property
    def given(self) -> bool:
        """Was a floor given (rather than learned from this recording alone)?"""
        return self._initial is not None

    def reset(self) -> None:
        """Forget everything learned (the baseline has shifted); warm up again."""
        if self.fixed:
            return
        self._recent.clear()
        self._sorted.clear()
        self._initial = None
        self.value = float("nan")

    def add(self, tick_median_uv: float) -> None:
        """Take one quiet tick's median envelope and update the floor."""
        if self.fixed:
            return
        self._recent.append(tick_median_uv)
        bisect.insort(self._sorted, tick_median_uv)
        if len(self._recent) > self.capacity:
            oldest = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        if self._initial is not None and len(self._recent) < self.warmup:
            return
        index = round(self.percentile / 100.0 * (len(self._sorted) - 1))
        self.value = self._sorted[index]
