"""What a simulated ADC's input pins see: a signal played through a modelled front end.

A `SignalPlayer` turns a stream of sample blocks (synthetic or recorded, electrode microvolts) into
values at any time a converter samples, moving forward only and holding a bounded buffer.
`AnalogInputs` maps converter inputs to signal channels through a `FrontEnd` and applies input faults
(railed or stuck inputs, electrodes coming off) over stretches of time.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from hardware.front_end import FrontEnd

_TO_MICROVOLTS = {"uV": 1.0, "mV": 1e3, "V": 1e6}


class SignalPlayer:
    """A signal in electrode microvolts, sampled at increasing times (sample and hold)."""

    def __init__(
        self, blocks: Iterator[np.ndarray], fs: float, channels: Sequence[str], scale: float = 1.0
    ) -> None:
        self.fs = float(fs)
        self.channels = tuple(channels)
        self._blocks = blocks
        self._scale = scale
        self._buffer: deque[tuple[int, np.ndarray]] = deque()  # (first index, block)
        self._loaded = 0  # samples read from the stream so far
        self.exhausted = False

    @classmethod
    def from_synthetic(
        cls, plan: object, seed: int, block: int = 8192, apart: bool = False
    ) -> SignalPlayer:
        """A synthetic night. With `apart`, it is made in a process of its own, a block ahead:
        a converter paced in real time must not wait while the signal is made (in this process
        the making would hold the interpreter for tens of milliseconds at a time)."""
        blocks = (
            made_apart(partial(_synthetic_blocks, plan, seed, block))
            if apart
            else _synthetic_blocks(plan, seed, block)
        )
        return cls(blocks, plan.fs, plan.channels)  # type: ignore[attr-defined]

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        fs: float | None = None,
        channels: Sequence[str | int] | None = None,
        units: str | None = None,
        block: int = 8192,
        apart: bool = False,
    ) -> SignalPlayer:
        """Play a recording; its values must be in uV, mV or V (counts have no electrode scale).
        `apart`: as for `from_synthetic`."""
        from hardware.recordings import RecordingError, open_recording
        from hardware.recordings.errors import SIGNAL_OPTIONS

        recording = open_recording(
            path, fs=fs, channels=channels, units=units, option_names=SIGNAL_OPTIONS
        )
        info = recording.info
        unit = info.units or "uV"
        if unit not in _TO_MICROVOLTS:
            recording.close()
            raise RecordingError(
                f"'{path}' is in {unit}; a simulated chip needs the electrode signal in uV, mV "
                "or V (pass --signal-units if the file does not say)"
            )
        if apart:
            recording.close()
            blocks = made_apart(partial(_file_blocks, path, fs, channels, units, block))
        else:
            blocks = recording.blocks(block)
        return cls(blocks, info.fs, info.channels, _TO_MICROVOLTS[unit])

    def preload(self) -> None:
        """Have the first block ready (before a converter starts sampling in real time)."""
        self._load_until(0)

    @property
    def duration_s(self) -> float | None:
        """The signal's length, once it has all been read (else None)."""
        return self._loaded / self.fs if self.exhausted else None

    def ended(self, t: float) -> bool:
        """Has the signal run out by time t?"""
        self._load_until(int(t * self.fs + 1e-9))
        return self.exhausted and int(t * self.fs + 1e-9) >= self._loaded

    def at(self, t: float) -> np.ndarray:
        """The signal at time t (s from its start), one value per channel; NaN past its end."""
        index = int(t * self.fs + 1e-9)
        self._load_until(index)
        while len(self._buffer) > 1 and self._buffer[1][0] <= index:
            self._buffer.popleft()
        if self._buffer:
            first, block = self._buffer[0]
            if first <= index < first + len(block):
                return block[index - first] * self._scale
        return np.full(len(self.channels), np.nan)

    def _load_until(self, index: int) -> None:
        while not self.exhausted and self._loaded <= index:
            try:
                block = next(self._blocks)
            except StopIteration:
                self.exhausted = True
                return
            self._buffer.append((self._loaded, np.asarray(block, dtype=np.float64)))
            self._loaded += len(block)


def _synthetic_blocks(plan: object, seed: int, block: int) -> Iterator[np.ndarray]:
    from hardware.synthetic_emg import SyntheticEMG

    return SyntheticEMG(plan, seed=seed).blocks(block)  # type: ignore[arg-type]


def _file_blocks(
    path: Path,
    fs: float | None,
    channels: Sequence[str | int] | None,
    units: str | None,
    block: int,
) -> Iterator[np.ndarray]:
    from hardware.recordings import open_recording

    with open_recording(path, fs=fs, channels=channels, units=units) as recording:
        yield from recording.blocks(block)


def made_apart(recipe: Callable[[], Iterator[np.ndarray]]) -> Iterator[np.ndarray]:
    """The blocks `recipe()` makes, made in a process of their own (one block ahead: it makes
    the next while this one is used). An error there is raised here; the process ends with the
    iterator, or with this process."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    maker = context.Process(
        target=_make_blocks, args=(recipe, send, os.getpid()), name="signal-maker", daemon=True
    )
    maker.start()
    send.close()
    try:
        while True:
            try:
                message = receive.recv()
            except EOFError:
                raise RuntimeError("the process making the signal ended without a word") from None
            if message is None:
                return
            if isinstance(message, BaseException):
                raise message
            yield message
    finally:
        receive.close()
        maker.join(timeout=1.0)
        if maker.is_alive():
            maker.terminate()


def _make_blocks(recipe: Callable[[], Iterator[np.ndarray]], send: Connection, parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # die with the reader's process (Linux)
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))
    if os.getppid() != parent:
        return
    try:
        for block in recipe():
            send.send(np.ascontiguousarray(block))
        send.send(None)
    except (BrokenPipeError, EOFError, ConnectionResetError):
        return
    except BaseException as error:  # told to the reader, who raises it
        with contextlib.suppress(OSError):
            send.send(error)


@dataclass(frozen=True)
class InputFault:
    """A fault on one converter input from `start_s` to `end_s` (signal time).

    kinds: `railed` (the input sits at a front-end rail), `stuck` (holds the value it had when the
    fault began), `electrode_off` (no signal: the amplifier output rests at its bias).
    """

    kind: str
    input: int
    start_s: float
    end_s: float
    rail: str = "high"

    def __post_init__(self) -> None:
        if self.kind not in ("railed", "stuck", "electrode_off"):
            raise ValueError(
                f"unknown input fault {self.kind!r}: use railed, stuck or electrode_off"
            )


@dataclass
class AnalogInputs:
    """Volts on a converter's input pins over time.

    `wiring[i]` is the signal channel driving input i (None: the input sits at the front end's
    bias, as the reference input of a differential pair does).
    """

    player: SignalPlayer
    front_end: FrontEnd
    wiring: Sequence[int | None]
    faults: Sequence[InputFault] = ()
    start_at_first_sample: bool = False
    """Play the signal from its start at the first conversion, whenever that happens on the
    clock (so a recording lines up with what the converter delivers)."""
    _stuck: dict[int, float] = field(default_factory=dict)
    _origin: float | None = None

    def ended(self, t: float) -> bool:
        return self.player.ended(self._signal_time(t))

    def end_time(self) -> float | None:
        """The clock time at which the signal ends, once that is known."""
        duration = self.player.duration_s
        if duration is None:
            return None
        return (self._origin or 0.0) + duration if self.start_at_first_sample else duration

    def volts(self, t: float) -> np.ndarray:
        """Volts on every input at clock time t."""
        t = self._signal_time(t)
        signal = self.player.at(t).tolist()
        volt = self.front_end.volt
        out = np.array([volt(0.0 if ch is None else signal[ch]) for ch in self.wiring])
        for fault in self.faults:
            if fault.start_s <= t < fault.end_s:
                out[fault.input] = self._faulty(fault, out[fault.input])
            else:
                self._stuck.pop(id(fault), None)
        return out

    def _signal_time(self, t: float) -> float:
        if not self.start_at_first_sample:
            return t
        if self._origin is None:
            self._origin = t
        return t - self._origin

    def _faulty(self, fault: InputFault, value: float) -> float:
        low, high = self.front_end.rails_v
        if fault.kind == "railed":
            return high if fault.rail == "high" else low
        if fault.kind == "electrode_off":
            return float(np.clip(self.front_end.offset_v, low, high))
        return self._stuck.setdefault(id(fault), value)
