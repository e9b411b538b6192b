"""A simulated ADS1115 behind an `smbus2.SMBus` stand-in, for tests and demos without a Pi.

`SimulatedADS1115Bus` answers at one I2C address (others NACK with errno 121) with the chip's
register semantics: the pointer register, config (reset 0x8583), conversion, Lo_thresh (0x8000)
and Hi_thresh (0x7FFF), big-endian on the wire. A background thread follows a shared `Clock` and
completes conversions at data_rate x (1 + clock_error): each samples the selected MUX input from
`AnalogInputs.volts(t)` at the conversion's end, quantised to 16 bits for the PGA and clipped to
0x7FFF / 0x8000. On a virtual clock (`VirtualClock`) there is no thread: each conversion's end is
an event on the clock, run by whoever sleeps past it, so the chip and the driver that reads it
run as fast as the computer allows and every run is the same. Conversions of an uninterrupted
continuous run are on an exact grid (start + k periods), not a sum of periods. Continuous and single-shot (OS bit) modes behave as the datasheet says: a config
write during a conversion takes effect for the next one (in continuous mode: any write made before
the chip published the current result, so the rule holds in the timeline a driver observes even
when the chip's thread runs late). With RDY thresholds (Hi MSB 1, Lo MSB 0)
and COMP_QUE != 11 the ALERT/RDY pin (a gpiozero MockPin) pulses low at the end of each
continuous conversion, or goes low at the end of a single-shot one until the next starts. The
comparator function itself is not simulated.

Register update and RDY pulse happen together under the chip's lock, so a driver that counts
pulses can tell whether a read may have caught a newer conversion (RDY callbacks run on the chip's
thread with the chip locked: they must not use the bus). `conversions` logs every conversion (its
time, when it was published, settings, true volts, code, whether RDY went out) and `traffic` the
bytes on the wire, both bounded; a non-finite input converts to code 0. When the signal ends
(`inputs.ended(t)`), conversions and pulses stop and `finished` (a `threading.Event`) is set: pass
`finished.is_set` as the source's `is_finished`. Faults: `bus_error_rate` (an access raises
OSError 5), `missed_ready_rate` (a pulse is not sent), plus the `InputFault`s of the inputs.
"""

from __future__ import annotations

import ctypes
import math
import random
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hardware.ads1115 import (
    CODE_MAX,
    CODE_MIN,
    CONFIG_RESET,
    DEFAULT_ADDRESS,
    HI_THRESH_RESET,
    LO_THRESH_RESET,
    MODE_CONTINUOUS,
    MUX_PINS,
    MUX_SHIFT,
    OS_BIT,
    PGA_FULL_SCALE,
    PGA_SHIFT,
    RATE_OF_CODE,
    REG_CONFIG,
    REG_CONVERSION,
    REG_HI_THRESH,
    REG_LO_THRESH,
)
from hardware.analog_inputs import AnalogInputs
from hardware.clock import Clock, is_real_time
from hardware.closing import ClosedOnExit

I2C_M_RD = 0x0001  # the read flag of an i2c_msg (linux/i2c.h)


class ReadyPin(Protocol):
    """What the simulated chip drives: a gpiozero MockPin."""

    def drive_low(self) -> None: ...

    def drive_high(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Conversion:
    """One completed conversion: its end time on the clock, when the chip published it, the
    settings it used, the true input volts, the code and whether a RDY signal went out."""

    t: float
    published: float
    mux: int
    pga: int
    volts: float
    code: int
    ready_sent: bool


@dataclass
class SimStats:
    conversions: int = 0
    ready_pulses: int = 0
    ready_missed: int = 0
    bus_errors: int = 0
    accesses: int = 0


def _fields(config: int) -> tuple[int, int, int, int]:
    """(mux, pga, mode, data rate in SPS) of a config word."""
    return (
        (config >> MUX_SHIFT) & 0b111,
        (config >> PGA_SHIFT) & 0b111,
        (config >> 8) & 1,
        RATE_OF_CODE[(config >> 5) & 0b111],
    )


def _forget_states(pin: object, keep: int = 1000) -> None:
    """A gpiozero MockPin logs every change (`states`): all night at 860 SPS that is millions
    of objects, and garbage collection that stalls. Keep only the recent ones."""
    states = getattr(pin, "states", None)
    if states is not None and len(states) > keep:
        pin.clear_states()  # type: ignore[attr-defined]


def quantise(volts: float, pga: int) -> int:
    """Volts -> signed code for PGA code `pga`, rounded to nearest and clipped to full scale."""
    if not math.isfinite(volts):
        return 0
    code = math.floor(volts / PGA_FULL_SCALE[pga] * 32768.0 + 0.5)
    return max(CODE_MIN, min(CODE_MAX, code))


class SimulatedADS1115Bus(ClosedOnExit):
    """An smbus2.SMBus stand-in with one simulated ADS1115 on it (see the module doc)."""

    def __init__(
        self,
        inputs: AnalogInputs,
        *,
        clock: Clock,
        address: int = DEFAULT_ADDRESS,
        clock_error: float = 0.0,
        ready_pin: ReadyPin | None = None,
        bus_error_rate: float = 0.0,
        missed_ready_rate: float = 0.0,
        seed: int = 0,
        log_size: int = 200_000,
        traffic_size: int = 10_000,
    ) -> None:
        if len(inputs.wiring) != 4:
            raise ValueError(
                f"an ADS1115 has four inputs AIN0..AIN3; the wiring has {len(inputs.wiring)}"
            )
        if not -0.5 < clock_error < 0.5:
            raise ValueError(f"clock_error {clock_error} is not plausible (real parts: +-0.1)")
        self.inputs = inputs
        self.clock = clock
        self.address = address
        self.clock_error = clock_error
        self.ready_pin = ready_pin
        self.bus_error_rate = bus_error_rate
        self.missed_ready_rate = missed_ready_rate
        self._bus_rng = random.Random(f"{seed}/bus")
        self._ready_rng = random.Random(f"{seed}/ready")
        self.conversions: deque[Conversion] = deque(maxlen=log_size)
        self.traffic: deque[tuple[str, int, bytes]] = deque(maxlen=traffic_size)
        self.stats = SimStats()
        self.finished = threading.Event()
        self._regs = {
            REG_CONVERSION: 0x0000,
            REG_CONFIG: CONFIG_RESET & ~OS_BIT,
            REG_LO_THRESH: LO_THRESH_RESET,
            REG_HI_THRESH: HI_THRESH_RESET,
        }
        self._pointer = REG_CONVERSION
        self._engine_config = self._regs[REG_CONFIG]  # the config as of the engine's time
        self._running: int | None = None  # config of the conversion in progress
        self._next_end: float | None = None
        self._grid = (0.0, 0, 0.0)  # continuous run: first start, conversions since, period
        self._pending: deque[tuple[float, int]] = deque()  # writes during a conversion
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._closed = False
        self._scheduled: float | None = None  # virtual clock: the conversion end scheduled
        self._thread: threading.Thread | None = None
        if is_real_time(clock):
            self._thread = threading.Thread(target=self._run, name="sim-ads1115", daemon=True)
            self._thread.start()

    # ---- the smbus2 surface -----------------------------------------------------------------

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        payload = bytes([register, *data])
        self._access(i2c_addr)
        self.traffic.append(("write", i2c_addr, payload))
        with self._lock:
            self._write_bytes(payload)

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        self._access(i2c_addr)
        with self._lock:
            self._write_bytes(bytes([register]))
            data = self._read_bytes(length)
        self.traffic.append(("write", i2c_addr, bytes([register])))
        self.traffic.append(("read", i2c_addr, data))
        return list(data)

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Combined transfers of smbus2 `i2c_msg.write` / `i2c_msg.read` messages."""
        for msg in i2c_msgs:
            self._access(msg.addr)
        for msg in i2c_msgs:
            with self._lock:
                if msg.flags & I2C_M_RD:
                    data = self._read_bytes(msg.len)
                    ctypes.memmove(msg.buf, data, msg.len)
                    self.traffic.append(("read", msg.addr, data))
                else:
                    payload = bytes(msg)
                    self._write_bytes(payload)
                    self.traffic.append(("write", msg.addr, payload))

    def close(self) -> None:
        """Close the bus and stop the chip's thread (its logs stay readable)."""
        self._closed = True
        self.stop()

    def stop(self) -> None:
        """End the conversion thread (on a virtual clock: no more conversions)."""
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    # ---- inspection -----------------------------------------------------------------------------

    def register(self, reg: int) -> int:
        """A register as the chip holds it (config with the OS bit as a read would show it)."""
        with self._lock:
            return self._register_value(reg)

    # ---- bus access -----------------------------------------------------------------------------

    def _access(self, addr: int) -> None:
        if self._closed:
            raise OSError(9, "Bad file descriptor")
        if addr != self.address:
            raise OSError(121, "Remote I/O error")
        self.stats.accesses += 1
        if self.bus_error_rate and self._bus_rng.random() < self.bus_error_rate:
            self.stats.bus_errors += 1
            raise OSError(5, "Input/output error")

    def _write_bytes(self, payload: bytes) -> None:
        """Pointer byte, then optionally MSB and LSB of that register."""
        if not payload:
            return
        self._pointer = payload[0] & 0b11
        if len(payload) == 1:
            return
        if len(payload) != 3:
            raise ValueError(f"an ADS1115 register write is pointer + 2 bytes, got {payload!r}")
        value = (payload[1] << 8) | payload[2]
        if self._pointer == REG_CONFIG:
            self._write_config(value)
        elif self._pointer != REG_CONVERSION:  # the conversion register is read-only
            self._regs[self._pointer] = value

    def _read_bytes(self, length: int) -> bytes:
        value = self._register_value(self._pointer)
        data = bytes([value >> 8, value & 0xFF])
        return (data + b"\xff" * max(0, length - 2))[:length]

    def _register_value(self, reg: int) -> int:
        value = self._regs[reg]
        if reg == REG_CONFIG:
            idle = self._running is None and not self._pending
            value = (value & ~OS_BIT) | (OS_BIT if idle else 0)
        return value

    # ---- the conversion engine (all under self._lock) --------------------------------------------

    def _write_config(self, value: int) -> None:
        now = self.clock.monotonic()
        self._regs[REG_CONFIG] = value & ~OS_BIT
        if self._running is None and not self._pending:
            self._apply_idle_write(now, value)
        else:  # takes effect when the conversion in progress ends
            self._pending.append((now, value))

    def _apply_idle_write(self, t: float, value: int) -> None:
        """A config write that lands while the chip is powered down (or converting continuously
        from idle): continuous mode or OS=1 starts a conversion at t."""
        self._engine_config = value & ~OS_BIT
        if _fields(value)[2] == MODE_CONTINUOUS or value & OS_BIT:
            self._start(t, self._engine_config)

    def _start(self, t: float, config: int) -> None:
        self._running = config
        period = self._period(config)
        self._grid = (t, 1, period)
        self._next_end = t + period
        if self._ready_enabled() and _fields(config)[2] != MODE_CONTINUOUS:
            self._release_ready()
        self._wake_engine()

    def _continue(self, t_end: float, config: int) -> None:
        """The next continuous conversion: on the run's grid while the period stays the same."""
        self._running = config
        period = self._period(config)
        start, n, grid_period = self._grid
        if period == grid_period:
            self._grid = (start, n + 1, period)
            self._next_end = start + (n + 1) * period
        else:
            self._grid = (t_end, 1, period)
            self._next_end = t_end + period

    def _period(self, config: int) -> float:
        return 1.0 / (_fields(config)[3] * (1.0 + self.clock_error))

    def _complete(self) -> None:
        """Finish the conversion due at self._next_end; decide what the chip does next."""
        assert self._running is not None and self._next_end is not None
        t_end, config = self._next_end, self._running
        if self.inputs.ended(t_end):
            self._finish()
            return
        mux, pga, mode, _ = _fields(config)
        volts = self._input_volts(t_end, mux)
        code = quantise(volts, pga)
        self._regs[REG_CONVERSION] = code & 0xFFFF
        self.stats.conversions += 1
        published = self.clock.monotonic()
        sent = self._signal_ready(continuous=mode == MODE_CONTINUOUS)
        self.conversions.append(Conversion(t_end, published, mux, pga, volts, code, sent))
        # Writes that landed during this conversion set up the next one. In continuous mode that
        # is every write made before the chip published this result (the chip's thread may run a
        # little behind the clock; a driver sees the chip's timeline only through it).
        cutoff = math.inf if mode == MODE_CONTINUOUS else t_end
        while self._pending and self._pending[0][0] <= cutoff:
            self._engine_config = self._pending.popleft()[1] & ~OS_BIT
        if _fields(self._engine_config)[2] == MODE_CONTINUOUS:
            self._continue(t_end, self._engine_config)
            return
        self._running, self._next_end = None, None
        while self._pending and self._running is None:  # landed after it, while powered down
            t_land, value = self._pending.popleft()
            self._apply_idle_write(t_land, value)

    def _input_volts(self, t: float, mux: int) -> float:
        pins = self.inputs.volts(t)
        positive, negative = MUX_PINS[mux]
        return float(pins[positive] - (pins[negative] if negative is not None else 0.0))

    def _finish(self) -> None:
        self._running, self._next_end = None, None
        self._pending.clear()
        self.finished.set()

    # ---- ALERT/RDY ----------------------------------------------------------------------------

    def _ready_enabled(self) -> bool:
        return (
            self.ready_pin is not None
            and bool(self._regs[REG_HI_THRESH] & 0x8000)
            and not self._regs[REG_LO_THRESH] & 0x8000
            and (self._regs[REG_CONFIG] & 0b11) != 0b11
        )

    def _active_low(self) -> bool:
        return not self._regs[REG_CONFIG] & 0b1000  # COMP_POL

    def _signal_ready(self, *, continuous: bool) -> bool:
        """Pulse (continuous) or assert (single-shot) ALERT/RDY; False if no signal went out."""
        if not self._ready_enabled():
            return False
        if self.missed_ready_rate and self._ready_rng.random() < self.missed_ready_rate:
            self.stats.ready_missed += 1
            return False
        pin = self.ready_pin
        assert pin is not None
        assert_, release = (
            (pin.drive_low, pin.drive_high)
            if self._active_low()
            else (pin.drive_high, pin.drive_low)
        )
        assert_()
        if continuous:
            release()
        self.stats.ready_pulses += 1
        _forget_states(pin)
        return True

    def _release_ready(self) -> None:
        pin = self.ready_pin
        assert pin is not None
        (pin.drive_high if self._active_low() else pin.drive_low)()

    # ---- the engine: a thread on a real-time clock, events on a virtual one ----------------------

    def _wake_engine(self) -> None:
        """The next conversion end may have moved: tell the thread, or schedule it (under the
        lock)."""
        if self._thread is not None:
            self._wake.set()
            return
        due = self._next_end
        if due is not None and due != self._scheduled and not self._halt.is_set():
            self._scheduled = due
            self.clock.call_at(due, lambda: self._on_due(due))  # type: ignore[attr-defined]

    def _on_due(self, t: float) -> None:
        """A scheduled conversion end (virtual clock): complete what is due, schedule the next."""
        with self._lock:
            if t == self._scheduled:
                self._scheduled = None
            if self._halt.is_set():
                return
            now = self.clock.monotonic()
            while self._next_end is not None and self._next_end <= now:
                self._complete()
            self._wake_engine()

    def _run(self) -> None:
        while not self._halt.is_set():
            with self._lock:
                now = self.clock.monotonic()
                while self._next_end is not None and self._next_end <= now:
                    self._complete()
                due = self._next_end
            if self.finished.is_set():
                return
            if due is None:
                self._wake.wait(timeout=0.01)
                self._wake.clear()
            else:
                self.clock.sleep(min(due - now, 0.05))
