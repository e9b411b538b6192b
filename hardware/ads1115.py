"""TI ADS1115 16-bit I2C ADC: register access, configuration and an acquisition source.

Facts from the datasheet (TI SBAS444) this module relies on:

- Registers (pointer P[1:0]): 0 conversion (signed 16-bit, read-only), 1 config (reset 0x8583),
  2 Lo_thresh (reset 0x8000), 3 Hi_thresh (reset 0x7FFF). Registers are big-endian on the wire:
  write = pointer, MSB, LSB; read = pointer, then MSB, LSB (so `read_i2c_block_data`, never SMBus
  `read_word_data`, which is little-endian).
- Config: OS(15) MUX(14:12) PGA(11:9) MODE(8) DR(7:5) COMP_MODE(4) COMP_POL(3) COMP_LAT(2)
  COMP_QUE(1:0). OS reads 0 while a conversion is in progress; writing OS=1 starts a single-shot
  conversion (only from power-down).
- ALERT/RDY becomes a conversion-ready pin when Hi_thresh MSB = 1, Lo_thresh MSB = 0 and
  COMP_QUE != 11: about an 8 us low pulse at the end of each conversion in continuous mode.
- Continuous mode: after a config write, the conversion in progress completes with the previous
  settings; the following ones use the new settings. The data rate is within about +-10 %.

`ADS1115Source` acquires in one of three ways:

- one input, RDY pin: continuous mode, one frame per RDY pulse; `nominal_fs = data_rate`.
- several inputs, RDY pin: MUX switching in continuous mode. Each channel costs two conversions
  (the one in progress at the switch is discarded), so per-channel rate = conversion rate / (2 n):
  one frame slot per 2n conversions.
- no RDY pin (`ready_pin=None`): host-paced single-shot conversions polled through the OS bit, on
  a clock grid of slots of 1.25 / data_rate + 2 ms per channel (chip tolerance, polling, bus):
  per-channel rate 1 / (n (1.25 / data_rate + 0.002)), e.g. 290 SPS at 860, 143 at 250.

Switching the MUX (several inputs, RDY): after the config write the driver takes the second RDY
pulse counted from the moment the write returned, and only if it comes 1.25 conversion periods or
more after the write. The first pulse can belong to the conversion in progress when the write
landed, made with the previous input; pulses counted before the write returned could belong to a
conversion that ended before it landed; the time guard covers a pulse of the old conversion that
was observed late. A channel whose pulse does not come within 4.5 periods is NaN.

Samples are never invented: a missed RDY pulse, a bus access that fails all its retries, or a read
that may have caught a newer conversion than the pulse it answers (another pulse came during the
read, or the read ended 0.75 periods or more after its pulse) becomes NaN / `missed_before`.
With the RDY pin, the time base is the chip's own conversions. Conversions whose pulse never
came are counted from the pulse times on the chip's regular conversion grid (`_ConversionGrid`;
the period comes from the pulses, `_ReadyLine`). One input: one frame slot per conversion. n
inputs: one slot per 2n conversions (`_SlotGrid`); each value goes to the slot nearest its own
conversion, so a MUX switch the host was too late for (that pass over the inputs takes more than
2n conversions) leaves NaN slots instead of shortening the time base. Frames wait about 0.5 s
for the count to settle, and `stop()` drops the frames still waiting. Frame times are clock
times of the RDY callback (with MUX switching: the slot's, from a pulse less its lateness), or
of the OS bit seen set when polling. The source ends when `is_finished()` (given by a
simulation) says so and nothing is pending; on hardware it runs until `stop()`, and fails with
`AcquisitionError` after 5 s without a RDY pulse (the configuration is re-sent meanwhile).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np

from hardware.acquisition import AcquisitionError, Frame, RetryPolicy, ThreadedSource
from hardware.clock import Clock, SystemClock, is_real_time
from hardware.log_coalescing import repeated

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = 0x48

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
REG_LO_THRESH = 0x02
REG_HI_THRESH = 0x03
REGISTERS = (REG_CONVERSION, REG_CONFIG, REG_LO_THRESH, REG_HI_THRESH)

CONFIG_RESET = 0x8583
LO_THRESH_RESET = 0x8000
HI_THRESH_RESET = 0x7FFF

OS_BIT = 0x8000
MUX_SHIFT, PGA_SHIFT, MODE_SHIFT, DR_SHIFT = 12, 9, 8, 5

MUX: dict[str, int] = {
    "AIN0-AIN1": 0b000,
    "AIN0-AIN3": 0b001,
    "AIN1-AIN3": 0b010,
    "AIN2-AIN3": 0b011,
    "AIN0": 0b100,
    "AIN1": 0b101,
    "AIN2": 0b110,
    "AIN3": 0b111,
}
# (positive pin, negative pin or None for GND) for each MUX code.
MUX_PINS: dict[int, tuple[int, int | None]] = {
    0b000: (0, 1),
    0b001: (0, 3),
    0b010: (1, 3),
    0b011: (2, 3),
    0b100: (0, None),
    0b101: (1, None),
    0b110: (2, None),
    0b111: (3, None),
}
PGA: dict[float, int] = {
    6.144: 0b000,
    4.096: 0b001,
    2.048: 0b010,
    1.024: 0b011,
    0.512: 0b100,
    0.256: 0b101,
}
# Full scale for every PGA code (110 and 111 also mean +-0.256 V).
PGA_FULL_SCALE: dict[int, float] = {
    **{code: fs for fs, code in PGA.items()},
    0b110: 0.256,
    0b111: 0.256,
}
DATA_RATES: dict[int, int] = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
RATE_OF_CODE: dict[int, int] = {code: rate for rate, code in DATA_RATES.items()}

MODE_CONTINUOUS = 0
MODE_SINGLE_SHOT = 1
_MODE_NAMES = {"continuous": MODE_CONTINUOUS, "single-shot": MODE_SINGLE_SHOT}

COMP_QUE_ONE = 0b00  # assert after one conversion (also: RDY enabled)
COMP_QUE_TWO = 0b01
COMP_QUE_FOUR = 0b10
COMP_QUE_DISABLE = 0b11  # comparator off, ALERT/RDY high-impedance (reset value)

CODE_MAX = 0x7FFF
CODE_MIN = -0x8000

# Source tuning (fractions of a conversion period unless said otherwise).
FRESH_MARGIN = 0.25  # a pulse this long after (1 period +) the config write is a new-settings one
MUX_TIMEOUT_PERIODS = 4.5  # give up on a channel (NaN) this long after its MUX write
SILENCE_PERIODS = 20  # no pulse this long: re-send the configuration
SILENCE_FAIL_S = 5.0  # no pulse this long (or 50 periods, if longer): the source fails
GRID_HOLD_S = 0.5  # RDY: frames wait this long (and for (min, max) more pulses) before
GRID_HOLD_FRAMES = (8, 128)  # their count of missed conversions is final
REBAKE = 1e-4  # a period moved this much (relative): held positions are worked out again
PERIOD_BLOCK = 8  # pulses per block: the least late one is a point on the timing floor
PERIOD_BLOCKS = (6, 2048)  # floor points before the period comes from them, and kept (~19 s)
PERIOD_ENDS = 8  # the period's slope runs between the least late of this many oldest and newest
CALM_PULSES = 256  # the share of regular intervals is averaged over about this many pulses
CALM_SHARE = 0.7  # from this share of regular intervals on, their mean is trusted
LOST_SHARE = 0.02  # the mean serves when this much shorter than the floor (pulses are lost)
POLL_SLACK = 1.25  # polled single-shot slot per channel: periods (a chip 10 % slow, polls) ...
POLL_OVERHEAD_S = 0.002  # ... plus this for the trigger write, OS polls and the read


class SMBusLike(Protocol):
    """The part of `smbus2.SMBus` the driver uses."""

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None: ...

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]: ...

    def close(self) -> None: ...


# ---- configuration word ----------------------------------------------------------------------


def _choice(kind: str, value: object, table: dict[Any, int]) -> int:
    if value in table:
        return table[value]
    allowed = ", ".join(str(key) for key in table)
    raise ValueError(f"ADS1115 {kind} {value!r} is not supported; allowed: {allowed}")


def mux_code(mux: str) -> int:
    """MUX[2:0] for an input name such as 'AIN0' (vs GND) or 'AIN0-AIN1' (differential)."""
    name = mux.upper().replace(" ", "") if isinstance(mux, str) else mux
    return _choice("MUX", name, MUX)


def pga_code(pga: float) -> int:
    """PGA[2:0] for a full-scale range in volts (6.144 ... 0.256)."""
    try:
        key = round(float(pga), 3)
    except (TypeError, ValueError):
        key = pga  # type: ignore[assignment]
    try:
        return _choice("PGA full scale (V)", key, PGA)
    except ValueError:
        raise ValueError(
            f"ADS1115 PGA full scale {pga!r} V is not supported; allowed: "
            + ", ".join(f"{fs}" for fs in PGA)
        ) from None


def data_rate_code(data_rate: int) -> int:
    """DR[2:0] for a data rate in samples per second."""
    return _choice("data rate (SPS)", data_rate, DATA_RATES)


def _mode_bit(mode: int | str) -> int:
    if mode in (MODE_CONTINUOUS, MODE_SINGLE_SHOT) and not isinstance(mode, bool):
        return int(mode)
    return _choice("mode", mode, {**_MODE_NAMES, "0 (continuous)": 0, "1 (single-shot)": 1})


def _bit(name: str, value: int) -> int:
    return _choice(name, value, {0: 0, 1: 1})


def config_word(
    *,
    mux: str,
    pga: float,
    data_rate: int,
    mode: int | str,
    comp_mode: int = 0,
    comp_pol: int = 0,
    comp_lat: int = 0,
    comp_que: int = COMP_QUE_DISABLE,
    start: bool = False,
) -> int:
    """The 16-bit config register value; `start` sets OS (begin a single-shot conversion).

    `comp_que` defaults to 11 (comparator and ALERT/RDY off, the reset value); use
    `COMP_QUE_ONE` (00) with RDY thresholds to get conversion-ready pulses.
    """
    que = _choice("COMP_QUE", comp_que, {0: 0, 1: 1, 2: 2, 3: 3})
    return (
        (OS_BIT if start else 0)
        | mux_code(mux) << MUX_SHIFT
        | pga_code(pga) << PGA_SHIFT
        | _mode_bit(mode) << MODE_SHIFT
        | data_rate_code(data_rate) << DR_SHIFT
        | _bit("COMP_MODE", comp_mode) << 4
        | _bit("COMP_POL", comp_pol) << 3
        | _bit("COMP_LAT", comp_lat) << 2
        | que
    )


def signed16(value: int) -> int:
    """Two's complement 16-bit register value -> signed int (0xFFFF -> -1, 0x8000 -> -32768)."""
    value &= 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


def lsb_volts(pga: float) -> float:
    """Volts per code at a PGA full scale (FS / 32768)."""
    return PGA_FULL_SCALE[pga_code(pga)] / 32768.0


# ---- the chip ---------------------------------------------------------------------------------


class ADS1115:
    """One ADS1115 on an smbus2-like bus: big-endian register access and the usual operations."""

    def __init__(
        self, bus: SMBusLike, address: int = DEFAULT_ADDRESS, clock: Clock | None = None
    ) -> None:
        self.bus = bus
        self.address = address
        self.clock = clock or SystemClock()
        self.config: int | None = None  # last config word written

    def write_register(self, reg: int, value: int) -> None:
        """Write a 16-bit register, MSB first."""
        _check_register(reg)
        if reg == REG_CONVERSION:
            raise ValueError("the ADS1115 conversion register is read-only")
        value &= 0xFFFF
        self.bus.write_i2c_block_data(self.address, reg, [value >> 8, value & 0xFF])
        if reg == REG_CONFIG:
            self.config = value

    def read_register(self, reg: int) -> int:
        """Read a 16-bit register (unsigned), MSB first."""
        _check_register(reg)
        msb, lsb = self.bus.read_i2c_block_data(self.address, reg, 2)
        return (msb << 8) | lsb

    def configure(self, **fields: Any) -> int:
        """Write the config register from `config_word` fields; returns the word written."""
        word = config_word(**fields)
        self.write_register(REG_CONFIG, word)
        return word

    def enable_ready_pin(self) -> None:
        """ALERT/RDY as conversion-ready pin: Hi_thresh MSB 1, Lo_thresh MSB 0, and COMP_QUE != 11
        (a config with COMP_QUE 11 is rewritten with 00, its other bits kept, OS not set)."""
        self.write_register(REG_HI_THRESH, 0x8000)
        self.write_register(REG_LO_THRESH, 0x0000)
        config = self.config if self.config is not None else self.read_register(REG_CONFIG)
        if config & 0b11 == COMP_QUE_DISABLE:
            self.write_register(REG_CONFIG, (config & ~OS_BIT & ~0b11) | COMP_QUE_ONE)

    def start_continuous(
        self, mux: str, pga: float, data_rate: int, *, ready_pin: bool = True
    ) -> int:
        """Continuous conversions of `mux`; with `ready_pin`, ALERT/RDY pulses after each one."""
        if ready_pin:
            self.enable_ready_pin()
        que = COMP_QUE_ONE if ready_pin else COMP_QUE_DISABLE
        return self.configure(
            mux=mux, pga=pga, data_rate=data_rate, mode=MODE_CONTINUOUS, comp_que=que
        )

    def conversion_done(self) -> bool:
        """The OS bit: True when no conversion is in progress."""
        return bool(self.read_register(REG_CONFIG) & OS_BIT)

    def read_raw(self) -> int:
        """The latest conversion as a signed code."""
        return signed16(self.read_register(REG_CONVERSION))

    @staticmethod
    def to_volts(raw: int, pga: float) -> float:
        """Code -> volts at the ADC input: raw * FS / 32768."""
        return raw * lsb_volts(pga)

    def read_single_shot(
        self, mux: str, pga: float = 2.048, data_rate: int = 860, timeout_s: float | None = None
    ) -> int:
        """Start one conversion (OS=1, single-shot), poll OS until done, return the code."""
        period = 1.0 / data_rate
        self.configure(mux=mux, pga=pga, data_rate=data_rate, mode=MODE_SINGLE_SHOT, start=True)
        deadline = self.clock.monotonic() + (timeout_s if timeout_s is not None else 3 * period)
        self.clock.sleep(0.85 * period)
        while not self.conversion_done():
            if self.clock.monotonic() > deadline:
                raise TimeoutError(f"ADS1115 at {self.address:#04x}: conversion did not finish")
            self.clock.sleep(period / 8)
        return self.read_raw()


def _check_register(reg: int) -> None:
    if reg not in REGISTERS:
        raise ValueError(f"ADS1115 register {reg!r} does not exist; allowed: 0, 1, 2, 3")


# ---- the conversion-ready line ----------------------------------------------------------------


class _ReadyLine:
    """Counts RDY pulses (called from the GPIO callback thread), remembers when the last one came
    and estimates the conversion period.

    Pulses are late (callback latency; a stalled thread sees several at once) but never early.
    The timing floor: of every `PERIOD_BLOCK` pulses the least late (lowest time less count x
    period) is kept, and the period is the slope between the least late of the oldest
    `PERIOD_ENDS` points kept and of the newest. Latency cancels and bursts cannot bias it, but it
    counts pulses: lost ones lengthen it by their share. The mean of the intervals within 50 % of
    the floor's period leaves a lost pulse's double interval out, but only pulses that come
    regularly make it unbiased (it learns while `CALM_SHARE` of the recent intervals are within
    25 % of the period). So the period is the floor's, or the mean while pulses are regular and
    the mean is `LOST_SHARE` or more shorter (pulses are being lost); the mean alone (of the
    intervals within 50 % of the nominal period) until the floor has enough points."""

    def __init__(self, clock: Clock, period: float) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self.count = 0
        self.last_t = -math.inf
        self.period = period
        self._nominal = period
        self._mean = period  # mean of the intervals near the period
        self._intervals = 0
        self._calm = 1.0  # share of recent intervals within 25 % of the period
        self._floor_period: float | None = None
        self._best: tuple[float, int, float] | None = None  # block's least late: residual, n, t
        self._in_block = 0
        self._floor: deque[tuple[int, float]] = deque(maxlen=PERIOD_BLOCKS[1])

    def pulse(self) -> None:
        t = self._clock.monotonic()
        with self._cond:
            self._follow(t)
            self.count += 1
            self.last_t = t
            self._cond.notify_all()

    def _follow(self, t: float) -> None:
        """Update both estimates with a pulse at t, then choose."""
        interval = t - self.last_t
        floor = self._floor_period
        reference = floor or self._nominal
        ratio = interval / reference
        self._calm += ((0.75 < ratio < 1.25) - self._calm) / CALM_PULSES
        calm = self._calm >= CALM_SHARE
        if 0.5 < ratio < 1.5 and (calm or floor is None):
            # consecutive intervals telescope, so latency cancels out
            self._intervals += 1
            self._mean += (interval - self._mean) / min(self._intervals, 20_000)
        self._on_floor(self.count + 1, t)
        losing = calm and floor is not None and self._mean < (1 - LOST_SHARE) * floor
        self.period = self._mean if floor is None or losing else floor

    def _on_floor(self, count: int, t: float) -> None:
        """Pulse `count` came at t: keep the least late of each block."""
        residual = t - count * self.period
        if self._best is None or residual < self._best[0]:
            self._best = (residual, count, t)
        self._in_block += 1
        if self._in_block < PERIOD_BLOCK:
            return
        self._floor.append(self._best[1:])
        self._best, self._in_block = None, 0
        if len(self._floor) >= PERIOD_BLOCKS[0]:
            ends = min(PERIOD_ENDS, len(self._floor) // 2)
            n0, t0 = self._least_late(range(ends))
            n1, t1 = self._least_late(range(len(self._floor) - ends, len(self._floor)))
            self._floor_period = (t1 - t0) / (n1 - n0)

    def _least_late(self, points: range) -> tuple[int, float]:
        """The floor point among `points` least late for the current period."""
        return min((self._floor[i] for i in points), key=lambda p: p[1] - p[0] * self.period)

    def snapshot(self) -> tuple[int, float]:
        with self._cond:
            return self.count, self.last_t

    def wait(
        self,
        min_count: int,
        not_before: float,
        deadline: float | None,
        ending: Callable[[], bool],
    ) -> tuple[int, float] | None:
        """The (count, time) of the latest pulse once count >= min_count and its time >=
        not_before; None at the deadline (clock time) or when `ending()`. On a virtual clock
        waiting is sleeping on the clock (the chip's conversions are events on it)."""
        real_time = is_real_time(self._clock)
        with self._cond:
            while not (self.count >= min_count and self.last_t >= not_before):
                if ending():
                    return None
                # Real time: every pulse wakes the wait, so only `ending()` needs a look now and
                # then. Virtual time: the sleep must not pass a pulse by far.
                slice_s = 0.005 if real_time else min(0.005, self.period / 4)
                if deadline is not None:
                    remaining = deadline - self._clock.monotonic()
                    if remaining <= 0:
                        return None
                    slice_s = min(slice_s, remaining)
                if real_time:
                    self._cond.wait(timeout=max(slice_s, 1e-4))
                else:
                    self._clock.sleep(slice_s)  # RLock: the pulse callback may take it here
            return self.count, self.last_t


class _ConversionGrid:
    """Counts the conversions between RDY pulses, including those whose pulse never came.

    Pulses seen but not read are counted exactly (pulse counter). For the rest, each pulse gets a
    position: the running sum of (gap / period - 1 - pulses seen in between). A position is the
    number of unseen conversions so far plus the pulse's lateness (callback latency, a stalled
    thread) in periods, above a slowly varying base. A pulse can be late but never early, so a
    frame's count of unseen conversions is decided when it is released: the lowest position over
    it and the frames held after it (for `hold_s`, at least `min_frames`, at most `max_frames`),
    minus the base, rounded. The base follows the decided frames' lateness down at once and up
    slowly (to track period drift); it never depends on an undecided frame. The period comes from
    the pulses (`_ReadyLine`), never from these decisions (that would feed back); when it moves
    by `REBAKE` or more, the held frames' positions are worked out again with it, from the last
    released frame on (an early, rougher estimate is not built into them).
    """

    def __init__(
        self,
        hold_s: float = GRID_HOLD_S,
        min_frames: int = GRID_HOLD_FRAMES[0],
        max_frames: int = GRID_HOLD_FRAMES[1],
    ) -> None:
        self.hold_s, self.min_frames, self.max_frames = hold_s, min_frames, max_frames
        self._held: deque[_Held] = deque()
        self._minima: deque[tuple[int, float]] = deque()  # (frame number, position), rising
        self._placed = 0  # frames placed, and released
        self._released = 0
        self._last: _Held | None = None  # the latest frame released
        self._period = math.nan  # the period the held positions were worked out with
        self._base = 0.0
        self._unseen = 0  # unseen conversions given to frames so far
        self.on_time = math.nan  # the latest frame released: its time less its lateness

    def place(self, count: int, t: float, values: np.ndarray, period: float) -> Frame | None:
        """Take a pulse (count, time), the frame's values and the conversion period; the oldest
        held frame once enough follow."""
        if not abs(period - self._period) < REBAKE * period:
            self._rebake(period)
        before = self._held[-1] if self._held else self._last
        if before is None:
            self._append(_Held(t, count, values, 0, 0.0))
        else:
            position = before.position + (t - before.t) / period - (count - before.count)
            self._append(_Held(t, count, values, count - before.count - 1, position))
        held = len(self._held)
        if held > self.max_frames or (held > self.min_frames and t - self._held[0].t > self.hold_s):
            return self._release()
        return None

    def flush(self, settle_s: float = 0.0) -> Frame | None:
        """The held frames one by one, at the end. The last ones have too few frames after them
        (fewer than `min_frames`, or for less than `settle_s`) to tell a lost pulse from a late
        one: they get no unseen conversions."""
        if not self._held:
            return None
        held = self._held
        return self._release(len(held) <= self.min_frames or held[-1].t - held[0].t < settle_s)

    def _append(self, frame: _Held) -> None:
        self._held.append(frame)
        while self._minima and self._minima[-1][1] >= frame.position:
            self._minima.pop()
        self._minima.append((self._placed, frame.position))
        self._placed += 1

    def _rebake(self, period: float) -> None:
        """The held frames' positions again, with `period`, from the latest released frame."""
        self._period = period
        frames, self._held, self._minima = list(self._held), deque(), deque()
        self._placed -= len(frames)
        before = self._last
        for frame in frames:
            if before is not None:
                position = before.position + (frame.t - before.t) / period
                frame = frame._replace(position=position - (frame.count - before.count))
            self._append(frame)
            before = frame

    def _release(self, final: bool = False) -> Frame:
        frame = self._held.popleft()
        number, lowest = self._minima[0]  # lowest position of this frame and all held after it
        if number == self._released:
            self._minima.popleft()
        self._released += 1
        self._last = frame
        unseen = self._unseen if final else max(self._unseen, round(lowest - self._base))
        extra, self._unseen = unseen - self._unseen, unseen
        lateness = frame.position - unseen - self._base
        self._base += lateness if lateness < 0 else 0.2 * min(lateness, 0.5)
        self.on_time = frame.t - max(lateness, 0.0) * self._period
        return Frame(frame.t, frame.values, frame.seen_gap + extra)


class _Held(NamedTuple):
    """A frame in `_ConversionGrid`: its pulse, values, pulses seen since the previous one, and
    position."""

    t: float
    count: int
    values: np.ndarray
    seen_gap: int
    position: float


class _SlotGrid:
    """Several inputs (MUX switching): conversions on a time base of slots, one row each.

    A pass over the n inputs takes `lag` (2) conversions per input, a slot of 2n, when the host
    is in time for every switch (input i converted `lag` x i after input 0), more when it was
    late for one. A pass is placed by the RDY pulse (count, time) of its first input that had
    one, through `_ConversionGrid`, which counts the conversions between those pulses, unseen
    ones included; the pass's other pulses follow by their counts. So every value read gets the
    index of its conversion and goes to the slot nearest it (less its input's lag; the first
    pass's slot is 0), the nearer of two values for one cell staying. A slot is given out once
    no later conversion can reach it; slots nothing reached are missed (NaN rows). A row's time
    is its slot's, from the first pass that reached it: its reference pulse's time less that
    pulse's lateness above the timing floor (so a stalled host does not skew it), never going
    back.
    """

    def __init__(self, n_inputs: int, lag: int = 2) -> None:
        self.per_slot = lag * n_inputs
        self._lags = [lag * i for i in range(n_inputs)]
        self._conversions = _ConversionGrid()
        self._passes: deque[tuple[list[int | None], float]] = deque()  # held: counts, period
        self._index = -1  # conversion index of the latest released reference pulse
        self._origin = 0  # conversion index of slot 0
        self._rows: dict[int, tuple[float, list[float], list[float]]] = {}  # t, values, distances
        self._last_slot = -1  # the last slot given out, and its time
        self._last_t = -math.inf
        self._out: deque[Frame] = deque()

    def place(
        self, pulses: Sequence[tuple[int, float] | None], values: np.ndarray, period: float
    ) -> None:
        """A pass: each input's pulse (count, time; None for none) and value (at least one
        pulse)."""
        reference = next(pulse for pulse in pulses if pulse is not None)
        after = [None if pulse is None else pulse[0] - reference[0] for pulse in pulses]
        self._passes.append((after, period))
        released = self._conversions.place(*reference, values, period)
        if released is not None:
            self._release(released)

    def take(self) -> Frame | None:
        """The next row given out, if any."""
        return self._out.popleft() if self._out else None

    def flush(self) -> Frame | None:
        """At the end: the rows still held, one per call (passes in the last `GRID_HOLD_S` / 2
        get no unseen conversions: a host that ran late for all of them would look like lost
        pulses)."""
        while (released := self._conversions.flush(GRID_HOLD_S / 2)) is not None:
            self._release(released)
        self._give_out(math.inf)
        return self.take()

    def _release(self, released: Frame) -> None:
        """A pass whose reference pulse's conversion index is decided: its values to slots."""
        after, period = self._passes.popleft()
        self._index += released.missed_before + 1
        if self._index == 0:  # the first pass: its reference input sets slot 0
            self._origin = -self._lags[after.index(0)]
        newest = self._index
        for channel, counts in enumerate(after):
            if counts is not None:
                newest = self._index + counts
                on_time, value = self._conversions.on_time, float(released.values[channel])
                self._put(channel, newest, value, on_time, period)
        reach = (newest + 1 - self._lags[-1] - self._origin) / self.per_slot
        self._give_out(math.floor(reach + 0.5))

    def _put(self, channel: int, index: int, value: float, t_ref: float, period: float) -> None:
        """A value (or NaN: the row exists, the cell stays empty) of conversion `index`, whose
        pass's reference conversion was at `t_ref`."""
        position = (index - self._lags[channel] - self._origin) / self.per_slot
        slot = math.floor(position + 0.5)
        if slot <= self._last_slot:  # cannot happen with consistent counts: never misplace
            return
        row = self._rows.get(slot)
        if row is None:
            t = t_ref - (self._index - self._origin - slot * self.per_slot) * period
            n = len(self._lags)
            row = self._rows[slot] = (t, [math.nan] * n, [math.inf] * n)
        _, values, distances = row
        distance = abs(position - slot)
        if not math.isnan(value) and distance < distances[channel]:
            values[channel], distances[channel] = value, distance

    def _give_out(self, first_open: float) -> None:
        """Rows of the slots before `first_open`, which no later conversion can reach (their
        times never go back: rows timed from pulses late by different amounts could)."""
        while self._rows and (slot := min(self._rows)) < first_open:
            t, values, _ = self._rows.pop(slot)
            self._last_t = max(t, self._last_t)
            self._out.append(Frame(self._last_t, np.array(values), slot - self._last_slot - 1))
            self._last_slot = slot


# ---- the acquisition source -------------------------------------------------------------------


class ADS1115Source(ThreadedSource):
    """Acquisition from one or several ADS1115 inputs (volts at the ADC input).

    `bus`: an smbus2-like object (not closed by the source), an I2C bus number (the source opens
    `smbus2.SMBus(n)` and closes it), or a zero-argument factory returning a bus (closed too).
    `inputs`: (channel name, MUX name) pairs. `ready_pin`: the GPIO wired to ALERT/RDY, read with
    gpiozero (`pin_factory` to choose one); None polls single-shot conversions instead.
    `is_finished`: optional callable; when it returns True and no conversion is pending the source
    ends (a simulated chip whose signal ran out). Real hardware runs until `stop()`.

    Per-channel rate: one input with RDY, `data_rate`; n inputs with RDY (MUX switching, two
    conversions per channel), `data_rate / (2 n)`; polled, `1 / (n (1.25 / data_rate +
    poll_overhead_s))` (bus and host time per conversion, 2 ms by default). The true rate
    differs with the chip's oscillator (+-10 %): `SampleBlock.fs_estimate` measures it.
    Frame times are clock times of the RDY pulse (or of the OS bit seen set) for the first channel.
    With MUX switching, channel k is converted 2k conversion periods after channel 0 when the
    host keeps up, later when it was late for a switch: every value goes to the row (slot of 2n
    conversions) nearest its own conversion, at most n conversions off, so one pass over the
    inputs can spread over two rows, and slots no value reached are NaN rows.
    """

    def __init__(
        self,
        bus: SMBusLike | Callable[[], SMBusLike] | int,
        *,
        address: int = DEFAULT_ADDRESS,
        inputs: Sequence[tuple[str, str]] = (("ch0", "AIN0-AIN1"),),
        pga: float = 4.096,
        data_rate: int = 860,
        ready_pin: int | None = None,
        clock: Clock | None = None,
        pin_factory: Any = None,
        retry: RetryPolicy | None = None,
        is_finished: Callable[[], bool] | None = None,
        poll_overhead_s: float = POLL_OVERHEAD_S,
        block_frames: int = 256,
        queue_blocks: int = 256,
    ) -> None:
        names, configs = _channel_configs(inputs, pga, data_rate, ready=ready_pin is not None)
        n = len(names)
        self._poll_slot = POLL_SLACK / data_rate + poll_overhead_s
        if ready_pin is None:
            nominal = 1.0 / (n * self._poll_slot)
        else:
            nominal = data_rate if n == 1 else data_rate / (2 * n)
        super().__init__(
            names,
            nominal,
            clock=clock,
            block_frames=block_frames,
            queue_blocks=queue_blocks,
            retry=retry,
        )
        self._bus_spec = bus
        self.address = address
        self.pga = float(pga)
        self.data_rate = data_rate
        self.ready_pin = ready_pin
        self._pin_factory = pin_factory
        self._is_finished = is_finished
        self._configs = configs
        self._lsb = lsb_volts(pga)
        self._period = 1.0 / data_rate
        self._ready = _ReadyLine(self.clock, self._period)
        self._bus: SMBusLike | None = None
        self._owns_bus = False
        self._device: Any = None
        self.chip: ADS1115 | None = None
        self.read_races = 0  # reads that may have caught a newer conversion (made NaN)
        self.ready_timeouts = 0  # channels given up for want of a RDY pulse (made NaN)
        self._reset_progress()

    def _reset_progress(self) -> None:
        self._need: tuple[int, float] = (1, -math.inf)
        self._grid = _ConversionGrid()  # one input
        self._slots = _SlotGrid(len(self._configs))  # several
        self._silent_since = 0.0
        self._grid_start = 0.0
        self._last_slot = -1
        self._maybe_busy = True  # poll mode: not yet seen idle

    # ---- device lifecycle ---------------------------------------------------------------------

    def _open_device(self) -> None:
        spec = self._bus_spec
        if isinstance(spec, int):
            import smbus2

            self._bus, self._owns_bus = smbus2.SMBus(spec), True
        elif callable(spec):
            self._bus, self._owns_bus = spec(), True
        else:
            self._bus, self._owns_bus = spec, False
        self.chip = ADS1115(self._bus, self.address, self.clock)
        if self.ready_pin is not None:
            from gpiozero import DigitalInputDevice

            self._device = DigitalInputDevice(
                self.ready_pin, pull_up=True, pin_factory=self._pin_factory
            )
            self._device.when_activated = self._ready.pulse

    def _close_device(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
        if self._bus is not None and self._owns_bus:
            self._bus.close()
        self._bus = None

    def _begin(self) -> None:
        self._reset_progress()
        self._silent_since = self.clock.monotonic()
        if self.ready_pin is None:
            self._grid_start = self.clock.monotonic()
            return
        if not self._enable_ready():
            raise AcquisitionError(f"ADS1115 at {self.address:#04x}: cannot set RDY thresholds")
        if len(self._configs) == 1 and not self._configure_single():
            raise AcquisitionError(f"ADS1115 at {self.address:#04x}: cannot write the config")

    def _next_frame(self) -> Frame | None:
        if self._ending():
            return self._grid.flush() if len(self._configs) == 1 else self._slots.flush()
        if self.ready_pin is None:
            return self._poll_frame()
        if len(self._configs) == 1:
            return self._single_frame()
        return self._mux_frame()

    # ---- bus helpers ----------------------------------------------------------------------------

    def _ending(self) -> bool:
        return self._stop.is_set() or (self._is_finished is not None and self._is_finished())

    def _write(self, reg: int, value: int) -> bool:
        chip = self._require_chip()

        def access() -> bool:
            chip.write_register(reg, value)
            return True

        return self._with_retries(access) is not None

    def _require_chip(self) -> ADS1115:
        if self.chip is None:
            raise AcquisitionError("ADS1115Source used before open()")
        return self.chip

    def _enable_ready(self) -> bool:
        return self._write(REG_HI_THRESH, 0x8000) and self._write(REG_LO_THRESH, 0x0000)

    def _write_fresh(self, config: int) -> tuple[int, float] | None:
        """Write the config; the (pulse count, time) a conversion made wholly with it needs.

        The conversion in progress when the write lands keeps the old settings; its pulse is at
        most the first after the write returns, so the second pulse counted from then on is new.
        Pulses are counted only after the write: one counted before it could be the conversion
        that ended just before the write landed. The time guard (1.25 periods after the write)
        also rejects a pulse of the old conversion that was observed late."""
        if not self._write(REG_CONFIG, config):
            return None
        count, _ = self._ready.snapshot()
        return count + 2, self.clock.monotonic() + (1.0 + FRESH_MARGIN) * self._ready.period

    def _read_volts(self, pulse: tuple[int, float] | None = None) -> float:
        """The conversion register in volts; NaN if the access failed. After a RDY `pulse`
        (count, time), also NaN when the value may belong to a newer conversion: another pulse
        came during the read, or the read ended so late (0.75 periods after the pulse) that the
        next conversion may have finished with its pulse lost."""
        raw = self._with_retries(self._require_chip().read_raw)
        if raw is None:
            return math.nan
        if pulse is not None:
            count, t = pulse
            late = self.clock.monotonic() - t > (1.0 - FRESH_MARGIN) * self._ready.period
            if late or self._ready.count != count:
                self.read_races += 1
                return math.nan
        return raw * self._lsb

    # ---- one input, RDY ------------------------------------------------------------------------

    def _configure_single(self) -> bool:
        """(Re)start continuous conversions; the next accepted pulse is two past the write (the
        conversion in progress at the write still has the previous settings) and comes at least
        1.25 periods after it."""
        need = self._write_fresh(self._configs[0])
        if need is None:
            return False
        self._need = need
        return True

    def _single_frame(self) -> Frame | None:
        """The next frame out of the grid (frames wait there about `GRID_HOLD_S`)."""
        while True:
            hit = self._await_pulse()
            if hit is None:
                return self._grid.flush()
            count, t = hit
            value = self._read_volts(hit)
            self._need = (count + 1, -math.inf)
            frame = self._grid.place(count, t, np.array([value]), self._ready.period)
            if frame is not None:
                return frame

    def _await_pulse(self) -> tuple[int, float] | None:
        """Wait for the pulse `self._need` asks for; re-send the configuration after a silence,
        fail after a long one."""
        while True:
            deadline = self.clock.monotonic() + SILENCE_PERIODS * self._ready.period
            hit = self._ready.wait(*self._need, deadline, self._ending)
            if hit is not None:
                self._silent_since = hit[1]
                return hit
            if self._ending():
                return None
            self._on_silence()

    def _on_silence(self) -> None:
        silent = self.clock.monotonic() - max(self._silent_since, self._ready.last_t)
        if silent > max(SILENCE_FAIL_S, 50 * self._ready.period):
            raise AcquisitionError(
                f"ADS1115 at {self.address:#04x}: no conversion-ready pulse on GPIO "
                f"{self.ready_pin} for {silent:.1f} s (check the ALERT/RDY wire and the bus)"
            )
        log.warning(
            "ADS1115: no RDY pulse for %.3f s; re-sending the configuration",
            silent,
            extra=repeated("ads1115 silent"),
        )
        self.ready_timeouts += 1
        self._enable_ready()
        if len(self._configs) == 1:
            self._configure_single()

    # ---- several inputs, RDY: MUX switching ----------------------------------------------------

    def _mux_frame(self) -> Frame | None:
        """The next frame out of the slot grid. A pass that saw no pulse at all holds nothing:
        it is not placed, and the slots it took stay missed. When the source ends during a pass,
        what that pass read still goes in."""
        while (frame := self._slots.take()) is None:
            pulses, values, ending = self._mux_pass()
            if any(pulse is not None for pulse in pulses):
                self._slots.place(pulses, values, self._ready.period)
            if ending:
                return self._slots.flush()
        return frame

    def _mux_pass(self) -> tuple[list[tuple[int, float] | None], np.ndarray, bool]:
        """One pass over the inputs: each one's pulse (None if it had none) and value, and
        whether the source is ending (the inputs not reached then have neither)."""
        pulses: list[tuple[int, float] | None] = [None] * len(self._configs)
        values = np.full(len(self._configs), np.nan)
        for i, config in enumerate(self._configs):
            result = self._convert_after_switch(config)
            if result is None:
                return pulses, values, True
            pulses[i], values[i] = result
        return pulses, values, False

    def _convert_after_switch(self, config: int) -> tuple[tuple[int, float] | None, float] | None:
        """Switch the MUX and read the first conversion made wholly with the new settings:
        the second pulse after the write that also comes 1.25 periods or more after it. Returns
        that pulse (count, time) and the value; None when the source is ending; no pulse and NaN
        when the write failed or no such pulse came in time."""
        need = self._write_fresh(config)
        if need is None:
            return None, math.nan
        min_count, fresh_after = need
        deadline = fresh_after + (MUX_TIMEOUT_PERIODS - 1 - FRESH_MARGIN) * self._ready.period
        hit = self._ready.wait(min_count, fresh_after, deadline, self._ending)
        if hit is None:
            return self._mux_timeout(min_count - 2)
        self._silent_since = hit[1]
        return hit, self._read_volts(hit)

    def _mux_timeout(self, count: int) -> tuple[None, float] | None:
        if self._ending():
            return None
        self.ready_timeouts += 1
        if self._ready.count == count:  # not one pulse: the chip may have lost its thresholds
            self._on_silence()
        return None, math.nan

    # ---- no RDY pin: polled single-shot conversions -------------------------------------------

    def _poll_frame(self) -> Frame | None:
        slot = self._await_slot()
        if slot is None:
            return None
        values = np.full(len(self._configs), np.nan)
        t_frame: float | None = None
        for i, config in enumerate(self._configs):
            result = self._single_shot(config)
            if result is None:
                return None
            t, values[i] = result
            t_frame = t if t_frame is None else t_frame
        assert t_frame is not None
        missed = slot - self._last_slot - 1 if self._last_slot >= 0 else 0
        self._last_slot = slot
        return Frame(t_frame, values, missed)

    def _await_slot(self) -> int | None:
        """Sleep until the next free slot of the polling grid; its index."""
        frame_period = self._poll_slot * len(self._configs)
        now = self.clock.monotonic()
        slot = max(self._last_slot + 1, math.ceil((now - self._grid_start) / frame_period))
        t_slot = self._grid_start + slot * frame_period
        while (wait := t_slot - self.clock.monotonic()) > 0:
            if self._ending():
                return None
            self.clock.sleep(min(wait, 0.01))
        return slot

    def _single_shot(self, config: int) -> tuple[float, float] | None:
        """Trigger one conversion, poll OS until done, read it; NaN if it failed or timed out.

        OS=1 starts a conversion only when the chip is idle (a trigger written during one is
        ignored, and the register would still hold the previous channel), so after any failure
        the chip is first seen idle before the next trigger."""
        if self._maybe_busy and self._poll_idle(wait_first=False) is None:
            return None if self._ending() else (self.clock.monotonic(), math.nan)
        self._maybe_busy = True
        if not self._write(REG_CONFIG, config):
            return self.clock.monotonic(), math.nan
        status = self._poll_idle(wait_first=True)
        now = self.clock.monotonic()
        if status is None:
            return None if self._ending() else (now, math.nan)
        self._maybe_busy = False
        if (status ^ config) & 0x7FFF:  # the trigger did not land as written
            return now, math.nan
        return now, self._read_volts()

    def _poll_idle(self, *, wait_first: bool) -> int | None:
        """Poll the config register until OS reads 1 (idle), within 2.5 conversion periods; the
        config read, or None on timeout / when the source is ending."""
        chip = self._require_chip()
        deadline = self.clock.monotonic() + 2.5 * self._period
        if wait_first:
            self.clock.sleep(0.85 * self._period)
        while not self._ending():
            status = self._with_retries(lambda: chip.read_register(REG_CONFIG))
            if status is not None and status & OS_BIT:
                return status
            if self.clock.monotonic() > deadline:
                return None
            self.clock.sleep(self._period / 16)
        return None


def _channel_configs(
    inputs: Sequence[tuple[str, str]], pga: float, data_rate: int, *, ready: bool
) -> tuple[tuple[str, ...], list[int]]:
    """Channel names and the config word each uses (validated here, before anything opens)."""
    pairs = list(inputs)
    if not pairs:
        raise ValueError("ADS1115Source needs at least one (channel name, MUX) input")
    names = tuple(name for name, _ in pairs)
    if len(set(names)) != len(names):
        raise ValueError(f"ADS1115Source channel names must be unique, got {names}")
    if ready:
        mode, que, start = MODE_CONTINUOUS, COMP_QUE_ONE, False
    else:
        mode, que, start = MODE_SINGLE_SHOT, COMP_QUE_DISABLE, True
    configs = [
        config_word(mux=mux, pga=pga, data_rate=data_rate, mode=mode, comp_que=que, start=start)
        for _, mux in pairs
    ]
    return names, configs
