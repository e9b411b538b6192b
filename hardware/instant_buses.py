"""Zero-cost bus stand-ins: an spidev and an SMBus that answer at once with a known sequence.

They measure the acquisition path itself (driver, pacing, acquisition process, ring) without the
cost of a simulated chip: every answer is a few integer operations, so what is measured is what a
Pi's real bus would leave. The values follow a known sequence, so a reader can check that every
value reached the row of its own conversion.

- `InstantMCP3008SPI`: transfer k (counting from 0) answers code `mcp3008_code(k)` whatever it
  asked for. A frame of n channels is n consecutive transfers.
- `InstantADS1115Bus`: from the first config write (t0), conversion k ends at `t0 + (k + 1) /
  rate` on the clock; a thread pulses the RDY pin (a gpiozero mock pin) for each, as the chip's
  ALERT/RDY line would, late ones in a burst. The conversion register holds `ads1115_code(k)` of
  the latest; config reads say idle.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from hardware.clock import Clock, SystemClock

MCP3008_MID = 512
ADS1115_SPAN = 64


def mcp3008_code(k: int) -> int:
    """The code of transfer k: mid-scale plus a ramp of 16 (k mod 16 - 8)."""
    return MCP3008_MID + k % 16 - 8


def ads1115_code(k: int) -> int:
    """The code of conversion k: a ramp of 64 codes around 0."""
    return k % ADS1115_SPAN - ADS1115_SPAN // 2


class InstantMCP3008SPI:
    """An spidev stand-in with settings an MCP3008 accepts; see the module doc."""

    def __init__(self) -> None:
        self.max_speed_hz = 1_350_000
        self.mode = 0
        self.transfers = 0

    def xfer2(self, values: list[int]) -> list[int]:
        code = mcp3008_code(self.transfers)
        self.transfers += 1
        return [0, (code >> 8) & 0x03, code & 0xFF]

    def close(self) -> None:
        pass


class InstantADS1115Bus:
    """An smbus2 stand-in for an ADS1115 converting continuously at `rate`; see the module doc.

    `ready_pin`: the mock pin the driver's RDY input is on. `duration_s`: after that long (from
    the first conversion's start) no more conversions come, and `finished` is set."""

    def __init__(
        self,
        ready_pin: object,
        rate: float,
        *,
        clock: Clock | None = None,
        duration_s: float | None = None,
    ) -> None:
        self.ready_pin = ready_pin
        self.rate = float(rate)
        self.clock = clock or SystemClock()
        self.duration_s = duration_s
        self.conversions = 0
        self.finished = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._code = 0

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        if self._thread is None and register == 1:  # the first config write starts the chip
            self._thread = threading.Thread(target=self._convert, name="instant-rdy", daemon=True)
            self._thread.start()

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        value = (self._code & 0xFFFF) if register == 0 else 0x8000
        return [value >> 8, value & 0xFF][:length]

    def close(self) -> None:
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _convert(self) -> None:
        t0 = self.clock.monotonic()
        k = 0
        while not self._halt.is_set():
            due = t0 + (k + 1) / self.rate
            if self.duration_s is not None and due > t0 + self.duration_s:
                self.finished.set()
                return
            wait = due - self.clock.monotonic()
            if wait > 0:
                self.clock.sleep(wait)
            self._code = ads1115_code(k)
            self.conversions = k + 1
            self.ready_pin.drive_low()  # type: ignore[attr-defined]
            self.ready_pin.drive_high()  # type: ignore[attr-defined]
            if len(self.ready_pin.states) > 1000:  # type: ignore[attr-defined]
                self.ready_pin.clear_states()  # type: ignore[attr-defined]  (a mock pin's log)
            k += 1
