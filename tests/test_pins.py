"""Marker button, status LED and the channel-state -> LED mapping, on gpiozero's mock pins."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime

import pytest
from gpiozero import Device
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory, MockPin

from dsp.events import STATE_CRAMP, STATE_IDLE, STATE_MOVEMENT, STATE_SIGNAL_LOST
from hardware.pins import (
    LED_CRAMP,
    LED_OFF,
    LED_OK,
    LED_SIGNAL_LOST,
    LED_STATES,
    PATTERNS,
    Marker,
    MarkerButton,
    StatusLed,
    led_state_for,
)

BUTTON = 27
LED_PIN = 22


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def factory():
    saved = Device.pin_factory
    mock = MockFactory()
    Device.pin_factory = mock
    try:
        yield mock
    finally:
        mock.reset()
        Device.pin_factory = saved


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def press(pin: MockPin, clock: FakeClock, at: float, hold_s: float = 0.2) -> None:
    clock.now = at
    pin.drive_low()
    clock.now = at + hold_s
    pin.drive_high()


# --- marker button -----------------------------------------------------------------------------


def test_each_press_gives_a_timestamped_marker(factory, clock) -> None:
    received: list[Marker] = []
    pin = factory.pin(BUTTON)
    with MarkerButton(BUTTON, clock=clock, on_marker=received.append) as button:
        before = datetime.now(UTC)
        press(pin, clock, 1000.0)
        press(pin, clock, 1234.5)
        after = datetime.now(UTC)
        markers = button.take_markers()
    assert [(m.at, m.source) for m in markers] == [(1000.0, "button"), (1234.5, "button")]
    assert received == markers
    for m in markers:
        assert m.wall.tzinfo is not None and m.wall.utcoffset().total_seconds() == 0
        assert before <= m.wall <= after


def test_take_markers_returns_only_new_ones(factory, clock) -> None:
    pin = factory.pin(BUTTON)
    with MarkerButton(BUTTON, clock=clock) as button:
        press(pin, clock, 10.0)
        assert [m.at for m in button.take_markers()] == [10.0]
        assert button.take_markers() == []
        press(pin, clock, 20.0)
        assert [m.at for m in button.take_markers()] == [20.0]


def test_contact_bounce_is_ignored(factory, clock) -> None:
    pin = factory.pin(BUTTON)
    with MarkerButton(BUTTON, clock=clock, bounce_time=0.05) as button:
        # the contacts chatter for a few ms when pressed ...
        for i, low in enumerate([True, False, True, False, True]):
            clock.now = 100.0 + 0.003 * i
            pin.drive_low() if low else pin.drive_high()
        # ... and when released
        for i, low in enumerate([False, True, False, True, False]):
            clock.now = 100.5 + 0.003 * i
            pin.drive_low() if low else pin.drive_high()
        press(pin, clock, 101.0)  # a real second press, 0.5 s later
        markers = button.take_markers()
    assert [m.at for m in markers] == [100.0, 101.0]


def test_a_hold_is_reported_after_its_press(factory, clock) -> None:
    pin = factory.pin(BUTTON)
    held = threading.Event()

    def on_marker(marker: Marker) -> None:
        if marker.source == "hold":
            held.set()

    with MarkerButton(BUTTON, clock=clock, hold_time=0.1, on_marker=on_marker) as button:
        clock.now = 50.0
        pin.drive_low()
        assert held.wait(2.0), "no hold reported"
        pin.drive_high()
        markers = button.take_markers()
    assert [m.source for m in markers] == ["button", "hold"]
    assert markers[0].at == 50.0


def test_a_short_press_is_not_a_hold(factory, clock) -> None:
    pin = factory.pin(BUTTON)
    with MarkerButton(BUTTON, clock=clock, hold_time=0.1) as button:
        press(pin, clock, 5.0)
        time.sleep(0.2)
        assert [m.source for m in button.take_markers()] == ["button"]


def test_a_failing_callback_does_not_lose_the_marker(factory, clock) -> None:
    def boom(marker: Marker) -> None:
        raise RuntimeError("subscriber broke")

    pin = factory.pin(BUTTON)
    with MarkerButton(BUTTON, clock=clock, on_marker=boom) as button:
        press(pin, clock, 7.0)
        assert [m.at for m in button.take_markers()] == [7.0]


def test_close_releases_the_button_pin(factory, clock) -> None:
    button = MarkerButton(BUTTON, clock=clock)
    with pytest.raises(GPIOPinInUse):
        MarkerButton(BUTTON, clock=clock)
    button.close()
    button.close()  # idempotent
    assert button.closed
    again = MarkerButton(BUTTON, clock=clock)
    press(factory.pin(BUTTON), clock, 3.0)
    assert [m.at for m in again.take_markers()] == [3.0]
    again.close()


def test_an_explicit_pin_factory_is_used(factory, clock) -> None:
    other = MockFactory()
    with MarkerButton(BUTTON, clock=clock, pin_factory=other) as button:
        press(other.pin(BUTTON), clock, 9.0)
        assert [m.at for m in button.take_markers()] == [9.0]
        # the default factory's pin stays free
        MarkerButton(BUTTON, clock=clock).close()


# --- status LED ----------------------------------------------------------------------------------


def pulses(pin: MockPin) -> list[tuple[float, float]]:
    """(start, end) of each on-pulse since `pin.clear_states()`, in seconds from then (mock pins
    record each change as (time since the previous change, new state))."""
    t = 0.0
    out: list[tuple[float, float]] = []
    start = None
    for record in pin.states:
        t += record.timestamp
        if record.state and start is None:
            start = t
        elif not record.state and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, float("inf")))
    return out


def watch(led: StatusLed, pin: MockPin, state: str, count: int) -> list[tuple[float, float]]:
    """Show `state` and return the on-pulses once `count` have begun (or after 2 s)."""
    pin.clear_states()
    led.show(state)
    deadline = time.monotonic() + 2.0
    while len(pulses(pin)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return pulses(pin)[:count]


@pytest.fixture
def led_pin(factory) -> MockPin:
    return factory.pin(LED_PIN)


def test_ok_is_a_short_blink_per_period(factory, led_pin) -> None:
    with StatusLed(LED_PIN, time_scale=0.06) as led:  # 6 ms on, every 0.3 s
        seen = watch(led, led_pin, LED_OK, 2)
    assert len(seen) == 2, seen
    (start0, end0), (start1, _) = seen
    assert 0.28 < start1 - start0 < 0.4  # one blink per period
    assert end0 - start0 < 0.04  # a short one


def test_cramp_is_a_fast_even_blink(factory, led_pin) -> None:
    with StatusLed(LED_PIN, time_scale=0.3) as led:  # 30 ms on, 30 ms off
        seen = watch(led, led_pin, LED_CRAMP, 5)
    assert len(seen) == 5, seen
    assert seen[-1][0] - seen[0][0] < 0.4  # 4 periods of 60 ms, with slack
    widths = [end - start for start, end in seen[:-1]]  # the last may still be on
    assert all(0.015 < w < 0.08 for w in widths), widths  # on about half the time


def test_signal_lost_is_a_double_blink(factory, led_pin) -> None:
    with StatusLed(LED_PIN, time_scale=0.2) as led:  # period 0.4 s: 20 on, 40 off, 20 on, 320 off
        seen = watch(led, led_pin, LED_SIGNAL_LOST, 4)
    starts = [s for s, _ in seen]
    assert len(starts) == 4, seen
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] < 0.15 and gaps[2] < 0.15, gaps  # the two blinks of a pair
    assert gaps[1] > 0.25, gaps  # then a long pause
    assert 0.38 < starts[2] - starts[0] < 0.6  # pairs repeat every period (0.4 s)


def test_off_turns_the_led_off(factory, led_pin) -> None:
    with StatusLed(LED_PIN, time_scale=0.5) as led:
        led.show(LED_CRAMP)
        time.sleep(0.02)
        led_pin.clear_states()
        led.show(LED_OFF)
        time.sleep(0.15)
        assert not led.is_lit
        assert led.state == LED_OFF
    assert all(start < 0.01 for start, _ in pulses(led_pin)), pulses(led_pin)  # no blink after


def test_showing_the_same_state_again_does_not_restart_the_pattern(factory, led_pin) -> None:
    with StatusLed(LED_PIN, time_scale=0.06) as led:  # ok: a 6 ms blink every 0.3 s
        led_pin.clear_states()
        led.show(LED_OK)
        time.sleep(0.1)
        led.show(LED_OK)  # a restart would blink again now
        time.sleep(0.12)
        seen = pulses(led_pin)
    assert len(seen) == 1 and seen[0][0] < 0.06, seen


def test_unknown_state_is_refused_with_the_allowed_ones(factory) -> None:
    with StatusLed(LED_PIN) as led, pytest.raises(ValueError) as excinfo:
        led.show("panic")
    for name in LED_STATES:
        assert name in str(excinfo.value)


def test_close_releases_the_led_pin(factory, led_pin) -> None:
    led = StatusLed(LED_PIN, time_scale=0.5)
    led.show(LED_CRAMP)
    with pytest.raises(GPIOPinInUse):
        StatusLed(LED_PIN)
    led.close()
    led.close()  # idempotent
    assert led.closed
    with pytest.raises(RuntimeError):
        led.show(LED_OK)
    StatusLed(LED_PIN).close()


def test_patterns_match_the_spec() -> None:
    def period(state: str) -> float:
        return sum(on + off for on, off in PATTERNS[state])

    assert len(PATTERNS[LED_OK]) == 1 and period(LED_OK) == pytest.approx(5.0)
    assert PATTERNS[LED_OK][0][0] <= 0.2  # short
    assert len(PATTERNS[LED_SIGNAL_LOST]) == 2 and period(LED_SIGNAL_LOST) == pytest.approx(2.0)
    assert period(LED_CRAMP) <= 0.5
    assert PATTERNS[LED_OFF] == ()


# --- channel states -> LED state -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([STATE_IDLE, STATE_IDLE], LED_OK),
        ([STATE_MOVEMENT, STATE_IDLE], LED_OK),
        ([STATE_SIGNAL_LOST, STATE_MOVEMENT], LED_SIGNAL_LOST),
        ([STATE_SIGNAL_LOST, STATE_CRAMP], LED_CRAMP),
        ([STATE_CRAMP, STATE_IDLE], LED_CRAMP),
        ([], LED_OFF),
    ],
)
def test_led_state_for_channels(states: list[str], expected: str) -> None:
    assert led_state_for(states) == expected
    assert led_state_for({f"c{i}": s for i, s in enumerate(states)}) == expected


def test_led_state_for_refuses_unknown_states() -> None:
    with pytest.raises(ValueError, match="bogus"):
        led_state_for({"left_calf": "bogus"})
