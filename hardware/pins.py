"""The device's GPIO parts (gpiozero): the wearer's marker button and the status LED.

`MarkerButton` turns each press into a timestamped `Marker` (clock time from the same `Clock` as
acquisition, so markers line up with sample blocks, plus UTC wall time); holding the button is
reported separately. `StatusLed` shows the device state with dim, bedroom-friendly blink patterns.
`led_state_for` folds the detector's per-channel states into the one LED state.

Pass `pin_factory=` (e.g. gpiozero's `MockFactory`) to run without a Pi; with `None`, gpiozero uses
`gpiozero.Device.pin_factory` or picks the board's own (lgpio on current Raspberry Pi OS).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from gpiozero import LED, Button

from dsp.events import STATE_CRAMP, STATE_IDLE, STATE_MOVEMENT, STATE_SIGNAL_LOST
from hardware.clock import Clock, SystemClock
from hardware.closing import ClosedOnExit

log = logging.getLogger(__name__)

# Default wiring (hardware/README.md): BCM GPIO numbers.
MARKER_BUTTON_PIN = 27  # header pin 13, button to GND (pin 14), internal pull-up
STATUS_LED_PIN = 22  # header pin 15, through a resistor to the LED, LED cathode to GND

SOURCE_BUTTON = "button"  # a press
SOURCE_HOLD = "hold"  # the button held down for `hold_time` (after its own press marker)


@dataclass(frozen=True, slots=True)
class Marker:
    """One wearer input: `at` is clock time (`Clock.monotonic()`), `wall` the UTC time."""

    at: float
    wall: datetime
    source: str = SOURCE_BUTTON


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MarkerButton(ClosedOnExit):
    """The button the wearer presses when a cramp wakes them.

    Every press is recorded at once as a `Marker(source="button")`: appended to a thread-safe
    pending list (`take_markers()`) and passed to `on_marker`. Keeping the button down for
    `hold_time` seconds additionally records a `Marker(source="hold")` at the moment the hold is
    recognised; it always follows the press marker that started it. Presses that come less than
    `bounce_time` after the button's previous change are contact bounce and are ignored (gpiozero
    also debounces in the GPIO driver where the pin factory supports it).

    `on_marker` runs in gpiozero's event threads: keep it short. An exception in it is logged and
    does not lose the marker.
    """

    def __init__(
        self,
        pin: int | str = MARKER_BUTTON_PIN,
        *,
        clock: Clock | None = None,
        on_marker: Callable[[Marker], None] | None = None,
        bounce_time: float = 0.05,
        hold_time: float = 3.0,
        pin_factory: Any = None,
        wall_clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not bounce_time >= 0:
            raise ValueError(f"bounce_time must be >= 0 seconds, got {bounce_time}")
        if not hold_time > 0:
            raise ValueError(f"hold_time must be > 0 seconds, got {hold_time}")
        self.clock: Clock = clock or SystemClock()
        self.on_marker = on_marker
        self.bounce_time = float(bounce_time)
        self.hold_time = float(hold_time)
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._pending: list[Marker] = []
        self._last_change: float | None = None  # clock time of the button's last edge
        self._button = Button(
            pin,
            pull_up=True,
            bounce_time=bounce_time or None,
            hold_time=hold_time,
            hold_repeat=False,
            pin_factory=pin_factory,
        )
        self._button.when_pressed = self._pressed
        self._button.when_released = self._released
        self._button.when_held = self._held

    # gpiozero callbacks (its threads, or the caller's thread for mock pins)
    def _pressed(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            bounce = self._last_change is not None and now - self._last_change < self.bounce_time
            self._last_change = now
        if not bounce:
            self._record(Marker(now, self._wall_clock(), SOURCE_BUTTON))

    def _released(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            self._last_change = now

    def _held(self) -> None:
        self._record(Marker(self.clock.monotonic(), self._wall_clock(), SOURCE_HOLD))

    def _record(self, marker: Marker) -> None:
        with self._lock:
            self._pending.append(marker)
        callback = self.on_marker
        if callback is not None:
            try:
                callback(marker)
            except Exception:
                log.exception("marker callback failed for %s", marker)

    def take_markers(self) -> list[Marker]:
        """The markers recorded since the last call, oldest first (and forget them)."""
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    @property
    def is_pressed(self) -> bool:
        return bool(self._button.is_pressed)

    @property
    def closed(self) -> bool:
        return bool(self._button.closed)

    def close(self) -> None:
        """Release the pin (idempotent); pending markers can still be taken."""
        self._button.close()


# LED states and their patterns: (on seconds, off seconds) pairs repeated forever.
LED_OK = "ok"
LED_CRAMP = "cramp"
LED_SIGNAL_LOST = "signal_lost"
LED_OFF = "off"
LED_STATES = (LED_OK, LED_CRAMP, LED_SIGNAL_LOST, LED_OFF)

Pattern = tuple[tuple[float, float], ...]
PATTERNS: Mapping[str, Pattern] = MappingProxyType(
    {
        LED_OK: ((0.1, 4.9),),  # a short blink every 5 s: barely lights a bedroom
        LED_CRAMP: ((0.1, 0.1),),  # fast blink (5 Hz) while a cramp is in progress
        LED_SIGNAL_LOST: ((0.1, 0.2), (0.1, 1.6)),  # double blink every 2 s
        LED_OFF: (),
    }
)
_TICK_S = 0.05  # step of multi-blink patterns (played through gpiozero's `source`)


class StatusLed(ClosedOnExit):
    """The status LED: `show(state)` with one of `LED_STATES`.

    Single on/off patterns run on `LED.blink(background=True)`, the double blink on the LED's
    `source` (both gpiozero's own threads). `time_scale` multiplies every duration (< 1 makes
    the patterns faster, for tests and demos).
    """

    def __init__(
        self,
        pin: int | str = STATUS_LED_PIN,
        *,
        active_high: bool = True,
        time_scale: float = 1.0,
        pin_factory: Any = None,
    ) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = float(time_scale)
        self._lock = threading.Lock()
        self._state = LED_OFF
        self._led = LED(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)

    @property
    def state(self) -> str:
        """The state being shown."""
        return self._state

    @property
    def is_lit(self) -> bool:
        return bool(self._led.is_lit)

    @property
    def closed(self) -> bool:
        return bool(self._led.closed)

    def show(self, state: str) -> None:
        """Switch to the pattern for `state`; showing the current state again changes nothing."""
        if state not in PATTERNS:
            raise ValueError(f"unknown LED state {state!r}; allowed: {', '.join(LED_STATES)}")
        with self._lock:
            if self._led.closed:
                raise RuntimeError("the status LED is closed")
            if state == self._state:
                return
            self._led.source = None  # stops a running multi-blink
            self._led.off()  # stops a running blink
            self._start(PATTERNS[state])
            self._state = state

    def _start(self, pattern: Pattern) -> None:
        scale = self.time_scale
        if not pattern:
            return
        if len(pattern) == 1:
            on_s, off_s = pattern[0]
            self._led.blink(on_time=on_s * scale, off_time=off_s * scale, background=True)
            return
        tick = _TICK_S * scale
        values: list[int] = []
        for on_s, off_s in pattern:
            values += [1] * max(1, round(on_s / _TICK_S)) + [0] * max(1, round(off_s / _TICK_S))
        self._led.source_delay = tick
        self._led.source = itertools.cycle(values)

    def close(self) -> None:
        """Turn the LED off and release the pin (idempotent)."""
        with self._lock:
            if not self._led.closed:
                self._led.close()  # stops blink and source threads
            self._state = LED_OFF


CHANNEL_STATES = frozenset({STATE_IDLE, STATE_MOVEMENT, STATE_CRAMP, STATE_SIGNAL_LOST})


def led_state_for(channel_states: Mapping[str, str] | Iterable[str]) -> str:
    """One LED state for all channels: any cramp -> "cramp", else any signal lost ->
    "signal_lost", else "ok" (idle and movement are both normal). No channels -> "off".

    Takes the detector's states (`dsp.events.STATE_*`) as a channel -> state mapping or a plain
    iterable; an unknown state raises ValueError.
    """
    states = set(channel_states.values() if isinstance(channel_states, Mapping) else channel_states)
    unknown = states - CHANNEL_STATES
    if unknown:
        raise ValueError(
            f"unknown channel state(s) {sorted(unknown)}; expected {sorted(CHANNEL_STATES)}"
        )
    if not states:
        return LED_OFF
    if STATE_CRAMP in states:
        return LED_CRAMP
    if STATE_SIGNAL_LOST in states:
        return LED_SIGNAL_LOST
    return LED_OK
