"""The MCP3008 10-bit SPI converter: request/reply bytes, a thin chip wrapper, and a paced source.

Protocol (Microchip DS21295, sections 5 and 6.1): with CS low, the first clock with DIN high is the
start bit, then SGL/DIFF, D2, D1, D0; one more clock ends the sample; the chip then drives a low null
bit and the result B9..B0, MSB first. With 8-bit SPI words that is the 3-byte transaction
``[0x01, SGL << 7 | D2..D0 << 4, 0x00]`` and the reply ``[?, ?????0 B9 B8, B7..B0]`` (``?``: DOUT is
high-impedance). One ``xfer2`` (CS held low across the three bytes) is one conversion.

The SPI clock must suit the supply: at most 1.35 MHz at VDD = 2.7 V and 3.6 MHz at VDD = 5 V, and at
least about 10 kHz (the held sample leaks after 1.2 ms). spidev is imported only in `open_spi`,
because it is the optional extra ``crampwatch[pi]``.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np

from hardware.acquisition import Frame, RetryPolicy, ThreadedSource
from hardware.clock import Clock

RESOLUTION = 1024
FULL_SCALE = RESOLUTION - 1
MAX_CLOCK_HZ = 3_600_000  # VDD = 5 V; 1_350_000 at VDD = 2.7 V
MIN_CLOCK_HZ = 10_000
DEFAULT_CLOCK_HZ = 1_350_000  # safe at any supply the chip accepts (2.7-5.5 V)
SPI_MODES = (0, 3)  # the chip supports SPI modes 0,0 and 1,1

InputSpec = int | str
"""Single-ended: a channel 0..7 or ``"CH3"``; pseudo-differential: ``"CH0-CH1"`` (IN+ - IN-)."""


class SpiLike(Protocol):
    """What the driver needs from a spidev.SpiDev (or a stand-in)."""

    def xfer2(self, values: list[int]) -> list[int]: ...

    def close(self) -> None: ...


class MCP3008ReplyError(OSError):
    """A reply no MCP3008 sends (null bit high: no chip answering, wiring or clock wrong)."""


# ---- bytes ------------------------------------------------------------------------------------


def _check_channel(channel: int) -> int:
    if isinstance(channel, bool) or not isinstance(channel, int | np.integer):
        raise ValueError(f"MCP3008 channel must be an integer 0..7, got {channel!r}")
    if not 0 <= channel <= 7:
        raise ValueError(f"MCP3008 channel must be 0..7, got {channel}")
    return int(channel)


def request_bytes(channel: int, differential: bool = False) -> list[int]:
    """The 3-byte request for one conversion.

    Single-ended: `channel` is the input 0..7. Pseudo-differential (SGL/DIFF = 0): `channel` is the
    D2..D0 field, 2k selecting CH(2k)+ / CH(2k+1)- and 2k+1 the reverse (see `differential_field`).
    """
    channel = _check_channel(channel)
    return [0x01, (0x00 if differential else 0x80) | channel << 4, 0x00]


def decode(reply: Sequence[int]) -> int:
    """The 10-bit result from a 3-byte reply: B9..B8 are the low bits of byte 1, B7..B0 byte 2."""
    if len(reply) != 3:
        raise ValueError(f"an MCP3008 reply has 3 bytes, got {len(reply)}: {list(reply)!r}")
    return ((reply[1] & 0x03) << 8) | reply[2]


def differential_field(plus: int, minus: int) -> int:
    """The D2..D0 field for the pseudo-differential pair IN+ = CH`plus`, IN- = CH`minus`."""
    plus, minus = _check_channel(plus), _check_channel(minus)
    if plus // 2 != minus // 2 or plus == minus:
        raise ValueError(
            f"CH{plus}-CH{minus} is not an MCP3008 pair: pairs are CH0/CH1, CH2/CH3, CH4/CH5, CH6/CH7"
        )
    return plus


def pair_of(field: int) -> tuple[int, int]:
    """(IN+, IN-) input numbers selected by a pseudo-differential D2..D0 field."""
    field = _check_channel(field)
    return field, field ^ 1


@dataclass(frozen=True)
class InputSelect:
    """One conversion's input selection: the D2..D0 field and SGL/DIFF."""

    channel: int
    differential: bool = False

    def __str__(self) -> str:
        if not self.differential:
            return f"CH{self.channel}"
        plus, minus = pair_of(self.channel)
        return f"CH{plus}-CH{minus}"


def _channel_name(text: str, spec: object) -> int:
    name = text.strip().upper()
    if not name.startswith("CH") or not name[2:].isdigit():
        raise ValueError(f"bad MCP3008 input {spec!r}: use 0..7, 'CH3' or a pair like 'CH0-CH1'")
    return _check_channel(int(name[2:]))


def parse_input(spec: InputSpec) -> InputSelect:
    """An input spec (``3``, ``"CH3"``, ``"CH1-CH0"``) as an `InputSelect`."""
    if isinstance(spec, str):
        parts = spec.split("-")
        if len(parts) == 1:
            return InputSelect(_channel_name(parts[0], spec))
        if len(parts) == 2:
            plus, minus = (_channel_name(part, spec) for part in parts)
            return InputSelect(differential_field(plus, minus), differential=True)
        raise ValueError(f"bad MCP3008 input {spec!r}: use 0..7, 'CH3' or a pair like 'CH0-CH1'")
    return InputSelect(_check_channel(spec))


def check_spi_settings(spi: object) -> None:
    """Refuse SPI settings the chip cannot work with (when the object reports them)."""
    speed = getattr(spi, "max_speed_hz", None)
    if isinstance(speed, int) and speed > MAX_CLOCK_HZ:
        raise ValueError(
            f"SPI clock {speed} Hz is too fast for an MCP3008 (at most 1.35 MHz at 2.7 V, "
            "3.6 MHz at 5 V): set max_speed_hz after open(); a Raspberry Pi defaults to 125 MHz"
        )
    mode = getattr(spi, "mode", None)
    if isinstance(mode, int) and mode not in SPI_MODES:
        raise ValueError(f"SPI mode {mode} does not work with an MCP3008: use mode 0 (or 3)")


# ---- the chip ---------------------------------------------------------------------------------


class MCP3008:
    """An MCP3008 on an opened spidev-like bus: one `xfer2` per conversion."""

    def __init__(self, spi: SpiLike) -> None:
        check_spi_settings(spi)
        self.spi = spi
        self._requests: dict[tuple[int, bool], list[int]] = {}

    def read_raw(self, channel: int, differential: bool = False) -> int:
        """One conversion, 0..1023. Raises OSError on a bus error or an impossible reply."""
        key = (channel, differential)
        request = self._requests.get(key)
        if request is None:
            request = self._requests[key] = request_bytes(channel, differential)
        reply = self.spi.xfer2(list(request))
        if len(reply) == 3 and reply[1] & 0x04:
            raise MCP3008ReplyError(
                errno.EIO, f"MCP3008 null bit was 1 in reply {list(reply)!r}: is the chip there?"
            )
        return decode(reply)

    def read_volts(self, channel: int, vref: float, differential: bool = False) -> float:
        """One conversion in volts at the input (the lower edge of the code's step)."""
        return self.to_volts(self.read_raw(channel, differential), vref)

    @staticmethod
    def to_volts(raw: Any, vref: float) -> Any:
        """Codes to volts: raw * vref / 1024 (works on numbers and arrays)."""
        return raw * vref / RESOLUTION


def open_spi(
    bus: int = 0, device: int = 0, max_speed_hz: int = DEFAULT_CLOCK_HZ, mode: int = 0
) -> Any:
    """Open ``/dev/spidev<bus>.<device>`` with spidev, set for an MCP3008."""
    if not MIN_CLOCK_HZ <= max_speed_hz <= MAX_CLOCK_HZ:
        raise ValueError(
            f"max_speed_hz {max_speed_hz} is outside what an MCP3008 takes "
            f"({MIN_CLOCK_HZ} Hz .. 1.35 MHz at 2.7 V, 3.6 MHz at 5 V)"
        )
    if mode not in SPI_MODES:
        raise ValueError(f"SPI mode {mode} does not work with an MCP3008: use 0 (or 3)")
    try:
        import spidev
    except ImportError as error:
        raise ImportError(
            "reading an MCP3008 needs spidev: pip install 'crampwatch[pi]'"
        ) from error
    spi = spidev.SpiDev()
    try:
        spi.open(bus, device)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            error.errno,
            f"/dev/spidev{bus}.{device} does not exist: enable SPI (raspi-config, "
            "or dtparam=spi=on in config.txt) and check the bus and chip-select numbers",
        ) from error
    except PermissionError as error:
        raise PermissionError(
            error.errno, f"no access to /dev/spidev{bus}.{device}: add the user to group 'spi'"
        ) from error
    spi.max_speed_hz = max_speed_hz  # only after open(): spidev refuses settings before it
    spi.mode = mode
    return spi


# ---- the acquisition source -------------------------------------------------------------------


class MCP3008Source(ThreadedSource):
    """Frames of every configured input, paced on the clock at `fs` frames per second.

    Frame k is due at t0 + k / fs. The loop sleeps until it is due, timestamps the frame with the
    clock, then converts every input (one `xfer2` each, through the shared retry policy; a
    conversion that fails every retry is NaN). A frame late by one or more whole periods takes the
    slot it is in: the slots passed over become `Frame.missed_before`, never invented samples.
    Values are volts at the input pins (code * vref / 1024). `spi` is an opened spidev-like object
    or a factory called on `open()` (e.g. `open_spi`); the source owns it and closes it.
    `is_finished` (for simulated signals) ends the stream; a frame it ends during is let go, and
    slots the host was too late for before the end (up to `finished_at()`, the end's clock time,
    when given) are the stream's last, missing rows.
    """

    def __init__(
        self,
        spi: SpiLike | Callable[[], SpiLike],
        channels: Sequence[tuple[str, InputSpec]],
        *,
        vref: float = 3.3,
        fs: float = 1000.0,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        is_finished: Callable[[], bool] | None = None,
        finished_at: Callable[[], float | None] | None = None,
        block_frames: int = 256,
        queue_blocks: int = 256,
    ) -> None:
        names, selects = _check_channels(channels)
        if not (math.isfinite(vref) and vref > 0):
            raise ValueError(f"vref must be a positive voltage, got {vref}")
        if not (math.isfinite(fs) and fs > 0):
            raise ValueError(f"sampling rate must be > 0 frames per second, got {fs}")
        super().__init__(
            names,
            fs,
            clock=clock,
            block_frames=block_frames,
            queue_blocks=queue_blocks,
            retry=retry,
        )
        self.inputs = selects
        self.vref = float(vref)
        self.lsb_v = self.vref / RESOLUTION
        self._spi_or_factory = spi
        self._is_finished = is_finished
        self._finished_at = finished_at
        self._adc: MCP3008 | None = None
        self._reads: list[Callable[[], int]] = []
        self.t_start = 0.0
        self._slot = 0
        self._signal_over = False
        self._running_at = 0.0

    # ---- device ---------------------------------------------------------------------------------

    def _open_device(self) -> None:
        if self._adc is not None:
            return
        given = self._spi_or_factory
        spi = given if hasattr(given, "xfer2") else given()  # type: ignore[operator]
        try:
            self._adc = MCP3008(spi)
        except ValueError:
            spi.close()
            raise
        self._reads = [
            partial(self._adc.read_raw, select.channel, select.differential)
            for select in self.inputs
        ]

    def _close_device(self) -> None:
        if self._adc is not None:
            self._adc.spi.close()
            self._adc = None

    # ---- pacing ---------------------------------------------------------------------------------

    def _begin(self) -> None:
        if self._adc is None:
            self._open_device()
        self.t_start = self.clock.monotonic()
        self._slot = 0
        self._signal_over = False
        self._running_at = self.t_start  # the last time the signal was seen running

    def _next_frame(self) -> Frame | None:
        now = self._wait_until(self.t_start + self._slot / self.nominal_fs)
        if self._stop.is_set():
            return None
        late = (now - self.t_start) * self.nominal_fs - self._slot
        missed = max(0, int(late + 1e-6))  # whole periods passed over
        if self._finished():
            return self._missed_at_the_end()
        self._running_at = now
        values = self._read_frame()
        if self._finished():  # the signal ended while this frame was read: not part of it
            return self._missed_at_the_end()
        self._slot += missed + 1
        return Frame(now, values, missed)

    def _missed_at_the_end(self) -> Frame | None:
        """The signal ended (a simulation) while the host was late: the slots it passed over
        while the signal still ran (up to its end, or the last time it was seen running) end
        the stream as missing rows, so a stall at the end does not shorten the night."""
        if self._signal_over:
            return None
        self._signal_over = True
        end = self._finished_at() if self._finished_at is not None else None
        if end is None:  # slots up to the last time the signal was seen running
            due = math.floor((self._running_at - self.t_start) * self.nominal_fs + 1e-6) + 1
        else:  # slots before the end
            due = math.ceil((end - self.t_start) * self.nominal_fs - 1e-6)
        missed = due - self._slot
        if missed <= 0:
            return None
        self._slot += missed
        self.stats.missed_slots += 1  # the row below is a missed slot, not a failed read
        return Frame(math.nan, np.full(len(self.inputs), np.nan), missed - 1)  # no conversion

    def _finished(self) -> bool:
        return self._is_finished is not None and self._is_finished()

    def _wait_until(self, due: float) -> float:
        now = self.clock.monotonic()
        while now < due and not self._stop.is_set():
            self.clock.sleep(due - now)
            now = self.clock.monotonic()
        return now

    def _read_frame(self) -> np.ndarray:
        values = np.full(len(self._reads), np.nan)
        for i, read in enumerate(self._reads):
            raw = self._with_retries(read)
            if raw is not None:
                values[i] = raw * self.lsb_v
        return values


def _check_channels(
    channels: Sequence[tuple[str, InputSpec]],
) -> tuple[tuple[str, ...], tuple[InputSelect, ...]]:
    if not channels:
        raise ValueError("an MCP3008 source needs at least one (name, input) channel")
    names = tuple(str(name) for name, _ in channels)
    if len(set(names)) != len(names):
        raise ValueError(f"channel names must be unique, got {list(names)}")
    return names, tuple(parse_input(spec) for _, spec in channels)
