"""A simulated MCP3008 behind a stand-in for spidev.SpiDev, for tests and demos without a Pi.

Each `xfer2` is one chip-select-low frame, worked out bit by bit as the chip does (DS21295 section 5):
the first 1 bit on DIN is the start bit (leading zeros are allowed, so any alignment works), then
SGL/DIFF and D2..D0; the input is sampled at that moment of the shared clock; DOUT stays
high-impedance through the sample clock, then sends a 0 null bit, B9..B0, B1..B9 (LSB first), then
zeros. High-impedance bits read as `hi_z` (0 by default: what a Pi's MISO pin with its default
pull-down reads).

Modelled misconfigurations (`strict=True` raises `SPIConfigError`; `strict=False` returns random
bytes as an overdriven or misclocked chip would): an SPI clock above the chip's limit for its supply
(linear between the datasheet's 1.35 MHz at 2.7 V and 3.6 MHz at 5 V) or below 10 kHz, SPI modes 1
and 2, a word size other than 8 bits, LSB-first. Like spidev on a Raspberry Pi, the clock after
`open()` is 125 MHz until it is set. Settings or transfers while closed raise OSError(EBADF).
`bus_error_rate` makes a transfer raise OSError(EIO) with that probability (seeded).
"""

from __future__ import annotations

import errno
import math
import random
from collections import deque
from dataclasses import dataclass

import numpy as np

from hardware.analog_inputs import AnalogInputs
from hardware.clock import Clock, SystemClock
from hardware.closing import ClosedOnExit

CHANNELS = 8
RESOLUTION = 1024
SPIDEV_OPEN_SPEED_HZ = 125_000_000  # what spidev reports on a Raspberry Pi until it is set
SPIDEV_BUFSIZ = 4096
MIN_CLOCK_HZ = 10_000
_TAIL_BITS = 20  # null bit, B9..B0 MSB first, B1..B9 LSB first


class SPIConfigError(ValueError):
    """The SPI settings of a transfer would not work with a real MCP3008."""


def max_clock_hz(vdd: float) -> float:
    """Highest SPI clock for supply `vdd` (datasheet points 2.7 V: 1.35 MHz, 5 V: 3.6 MHz)."""
    if not 2.7 <= vdd <= 5.5:
        raise ValueError(f"the MCP3008 runs from 2.7 V to 5.5 V, got VDD = {vdd} V")
    fraction = min(1.0, (vdd - 2.7) / (5.0 - 2.7))
    return 1_350_000 + fraction * (3_600_000 - 1_350_000)


@dataclass(frozen=True)
class Conversion:
    """One conversion: signal time, selection, the volts converted (IN+ - IN-) and the code."""

    t: float
    channel: int
    differential: bool
    volts: float
    code: int


@dataclass(frozen=True)
class Transfer:
    """One chip-select frame on the bus as the simulator saw it."""

    t: float
    tx: tuple[int, ...]
    rx: tuple[int, ...]
    speed_hz: int
    conversion: Conversion | None = None
    error: str | None = None


class SimulatedMCP3008SPI(ClosedOnExit):
    """A spidev.SpiDev stand-in with an MCP3008 on it, reading `inputs` at clock time.

    Input i of the chip is `inputs.wiring[i]`; inputs beyond the wiring are tied to AGND. Signal
    time is `clock.monotonic() - time_origin`. Once the signal has run out the pins hold their last
    values; `finished` says so, to end acquisition there. The last `history` transfers are kept in `transfers`.
    """

    def __init__(
        self,
        inputs: AnalogInputs,
        clock: Clock | None = None,
        *,
        vref: float = 3.3,
        vdd: float = 3.3,
        bus_error_rate: float = 0.0,
        seed: int = 0,
        strict: bool = True,
        hi_z: int = 0,
        history: int = 100_000,
        time_origin: float = 0.0,
    ) -> None:
        _check_supply(vref, vdd)
        if len(inputs.wiring) > CHANNELS:
            raise ValueError(f"an MCP3008 has {CHANNELS} inputs, wiring has {len(inputs.wiring)}")
        if not 0.0 <= bus_error_rate <= 1.0:
            raise ValueError(f"bus_error_rate must be in [0, 1], got {bus_error_rate}")
        if hi_z not in (0, 1):
            raise ValueError(f"hi_z is the bit level MISO floats to, 0 or 1, got {hi_z}")
        self.inputs = inputs
        self.clock = clock or SystemClock()
        self.vref = float(vref)
        self.vdd = float(vdd)
        self.max_clock_hz = max_clock_hz(vdd)
        self.bus_error_rate = bus_error_rate
        self.strict = strict
        self.hi_z = hi_z
        self.time_origin = time_origin
        self.transfers: deque[Transfer] = deque(maxlen=history)
        self.bus_errors = 0
        self._rng = random.Random(seed)
        self._fd: int | None = None
        self._last_pins = np.zeros(len(inputs.wiring))
        self._settings = {"max_speed_hz": 0, "mode": 0, "bits_per_word": 0, "lsbfirst": False}

    # ---- spidev's surface -----------------------------------------------------------------------

    def open(self, bus: int, device: int) -> None:
        """Open "/dev/spidev<bus>.<device>" (any numbers): the settings spidev reports on a Pi."""
        self._fd = 1000 + 10 * bus + device
        self._settings = {
            "max_speed_hz": SPIDEV_OPEN_SPEED_HZ,
            "mode": 0,
            "bits_per_word": 8,
            "lsbfirst": False,
        }

    def close(self) -> None:
        self._fd = None

    def fileno(self) -> int:
        return -1 if self._fd is None else self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def max_speed_hz(self) -> int:
        return int(self._settings["max_speed_hz"])

    @max_speed_hz.setter
    def max_speed_hz(self, value: int) -> None:
        self._set("max_speed_hz", int(value))

    @property
    def mode(self) -> int:
        return int(self._settings["mode"])

    @mode.setter
    def mode(self, value: int) -> None:
        if value not in (0, 1, 2, 3):
            raise TypeError("The mode attribute must be an integer between 0 and 3.")
        self._set("mode", value)

    @property
    def bits_per_word(self) -> int:
        return int(self._settings["bits_per_word"])

    @bits_per_word.setter
    def bits_per_word(self, value: int) -> None:
        if not 8 <= value <= 32:
            raise TypeError("The bits_per_word attribute must be an integer from 8 to 32.")
        self._set("bits_per_word", value)

    @property
    def lsbfirst(self) -> bool:
        return bool(self._settings["lsbfirst"])

    @lsbfirst.setter
    def lsbfirst(self, value: bool) -> None:
        self._set("lsbfirst", bool(value))

    def xfer2(
        self, values: list[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
    ) -> list[int]:
        """One transaction with chip select held low across all bytes; returns the bytes read."""
        return self._transfer(values, speed_hz, bits_per_word)

    def xfer(
        self, values: list[int], speed_hz: int = 0, delay_usecs: int = 0, bits_per_word: int = 0
    ) -> list[int]:
        """Treated as `xfer2` (one chip-select frame); the driver itself only uses `xfer2`."""
        return self._transfer(values, speed_hz, bits_per_word)

    def writebytes(self, values: list[int]) -> None:
        """A transaction whose reply is thrown away (a conversion started and abandoned)."""
        self._transfer(values, 0, 0)

    writebytes2 = writebytes

    def readbytes(self, n: int) -> list[int]:
        """Clock out n zero bytes: no start bit, so the chip never drives DOUT."""
        return self._transfer([0] * n, 0, 0)

    # ---- the chip -------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Has the signal on the inputs run out at the current clock time?"""
        return self.inputs.ended(self._now())

    def finished_at(self) -> float | None:
        """The clock time the signal on the inputs ends (known once it has all been read)."""
        end = self.inputs.end_time()
        return None if end is None else end + self.time_origin

    def _now(self) -> float:
        return self.clock.monotonic() - self.time_origin

    def _set(self, name: str, value: int | bool) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self._settings[name] = value

    def _transfer(self, values: list[int], speed_hz: int, bits_per_word: int) -> list[int]:
        tx = _check_bytes(values)
        if self._fd is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        t = self._now()
        speed = speed_hz or self.max_speed_hz
        if self.bus_error_rate and self._rng.random() < self.bus_error_rate:
            self.bus_errors += 1
            self.transfers.append(Transfer(t, tx, (), speed, error="EIO"))
            raise OSError(errno.EIO, "Input/output error")
        problem = self._config_problem(speed, bits_per_word or self.bits_per_word)
        if problem is not None:
            if self.strict:
                raise SPIConfigError(problem)
            rx = tuple(self._rng.randrange(256) for _ in tx)
            self.transfers.append(Transfer(t, tx, rx, speed, error=problem))
            return list(rx)
        rx, conversion = self._frame(tx, t)
        self.transfers.append(Transfer(t, tx, rx, speed, conversion))
        return list(rx)

    def _config_problem(self, speed: int, bits_per_word: int) -> str | None:
        if speed > self.max_clock_hz:
            return (
                f"SPI clock {speed} Hz is above the MCP3008's {self.max_clock_hz:.0f} Hz at "
                f"VDD = {self.vdd} V (set max_speed_hz after open(): spidev starts at 125 MHz)"
            )
        if speed < MIN_CLOCK_HZ:
            return f"SPI clock {speed} Hz is below {MIN_CLOCK_HZ} Hz: the held sample would leak"
        if self.mode not in (0, 3):
            return f"SPI mode {self.mode}: the MCP3008 works in modes 0 and 3 only"
        if bits_per_word != 8:
            return f"{bits_per_word}-bit words: the MCP3008 is driven with 8-bit words"
        if self.lsbfirst:
            return "LSB-first transfers: the MCP3008 takes its command MSB first"
        return None

    def _frame(self, tx: tuple[int, ...], t: float) -> tuple[tuple[int, ...], Conversion | None]:
        """DOUT for one chip-select frame, and the conversion it made (if the command completed)."""
        n_bits = 8 * len(tx)
        din = int.from_bytes(bytes(tx), "big")
        start = n_bits - din.bit_length()  # clock index of the first 1 on DIN
        if din == 0 or start + 5 >= n_bits:  # no start bit, or the sample never ended
            return self._reply(self._hi_z_bits(n_bits, n_bits), len(tx)), None
        command = (din >> (n_bits - start - 5)) & 0x0F
        conversion = self._convert(t, command & 0x07, differential=not command & 0x08)
        first = start + 6  # the null bit's clock
        tail = (conversion.code << 9) | _reverse9(conversion.code >> 1)
        shift = n_bits - first - _TAIL_BITS
        dout = tail << shift if shift >= 0 else tail >> -shift
        dout |= self._hi_z_bits(first, n_bits)
        return self._reply(dout, len(tx)), conversion

    def _hi_z_bits(self, count: int, n_bits: int) -> int:
        """The first `count` bits of the frame with DOUT undriven."""
        if not self.hi_z:
            return 0
        count = min(count, n_bits)
        return ((1 << count) - 1) << (n_bits - count)

    @staticmethod
    def _reply(dout: int, n_bytes: int) -> tuple[int, ...]:
        return tuple(dout.to_bytes(n_bytes, "big"))

    def _hold(self, pins: np.ndarray) -> np.ndarray:
        """Where the signal has run out (NaN), the pins keep their last value (0 V if none)."""
        gone = np.isnan(pins)
        if gone.any():
            pins = np.where(gone, self._last_pins, pins)
        self._last_pins = pins
        return pins

    def _convert(self, t: float, channel: int, differential: bool) -> Conversion:
        pins = self._hold(self.inputs.volts(t))
        if differential:
            plus, minus = channel, channel ^ 1
            volts = _pin(pins, plus) - _pin(pins, minus)
        else:
            volts = _pin(pins, channel)
        code = min(RESOLUTION - 1, max(0, math.floor(volts * RESOLUTION / self.vref)))
        return Conversion(t, channel, differential, volts, code)


def _pin(pins: np.ndarray, i: int) -> float:
    """Volts on input i; 0 V (AGND) when it is not wired."""
    return float(pins[i]) if i < len(pins) else 0.0


def _reverse9(value: int) -> int:
    """B9..B1 reversed: the LSB-first bits B1..B9 the chip sends after B0."""
    return int(f"{value & 0x1FF:09b}"[::-1], 2)


def _check_bytes(values: list[int]) -> tuple[int, ...]:
    tx = tuple(values)
    if len(tx) > SPIDEV_BUFSIZ:
        raise OverflowError(f"Argument list size exceeds {SPIDEV_BUFSIZ} bytes.")
    for value in tx:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise TypeError(f"Non-Int/Long value in arguments: {value!r} (bytes are 0..255)")
    return tx


def _check_supply(vref: float, vdd: float) -> None:
    max_clock_hz(vdd)
    if not 0.25 <= vref <= vdd:
        raise ValueError(f"VREF must be 0.25 V .. VDD ({vdd} V), got {vref} V")
