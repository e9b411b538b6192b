"""The wearer's side of the device: the marker button and the status LED."""

from __future__ import annotations

from dsp.events import STATE_IDLE, iso_utc
from dsp.pipeline import PipelineOutput
from firmware_host.device import live_sources
from firmware_host.device.session_control import SessionControl
from hardware.closing import ClosedOnExit
from hardware.pins import (
    MARKER_BUTTON_PIN,
    SOURCE_HOLD,
    STATUS_LED_PIN,
    MarkerButton,
    StatusLed,
    led_state_for,
)


class DevicePanel(ClosedOnExit):
    """The wearer's side of the device: the marker button (each press is written beside the
    events, for research; holding it down starts or ends a named session such as dialysis) and
    the status LED (ok, cramp, signal lost). On simulated converters both sit on gpiozero mock
    pins, so tests can press the button."""

    def __init__(
        self, live: live_sources.Live, channels: tuple[str, ...],
        session: SessionControl | None = None,
    ) -> None:  # fmt: skip
        self.session = session
        self.clock = live.source.clock
        self.button = MarkerButton(
            MARKER_BUTTON_PIN, clock=self.clock, pin_factory=live.pin_factory
        )
        self.led = StatusLed(STATUS_LED_PIN, pin_factory=live.pin_factory)
        self.states = dict.fromkeys(channels, STATE_IDLE)
        self.led.show(led_state_for(self.states))
        self.t0: float | None = None
        self.markers: list[dict[str, object]] = []

    def update(self, output: PipelineOutput, elapsed_s: float) -> list[dict[str, object]]:
        """Follow the channel states on the LED; returns the marker presses since last time
        (`type: marker`, seconds from the session's first sample and wall time)."""
        for change in output.state_changes:
            self.states[change.channel] = change.state
        if output.state_changes:
            self.led.show(led_state_for(self.states))
        if self.t0 is None:  # the clock time of the session's first sample
            self.t0 = self.clock.monotonic() - elapsed_s
        fresh = [
            {
                "type": "marker",
                "source": marker.source,
                "at_s": round(marker.at - self.t0, 3),
                "wall": iso_utc(marker.wall),
            }
            for marker in self.button.take_markers()
        ]
        self.markers += fresh
        if self.session is not None:
            for marker in fresh:
                if marker["source"] == SOURCE_HOLD:
                    at_s = float(marker["at_s"])  # type: ignore[arg-type]
                    self.session.hold(at_s - self.button.hold_time, at_s)
        return fresh

    def close(self) -> None:
        self.button.close()
        self.led.close()
