"""What a simulated ADC's input pins see: a signal played through a modelled front end.

A `SignalPlayer` turns a stream of sample blocks (synthetic or recorded, electrode microvolts) into
values at any time a converter samples, moving forward only and holding a bounded buffer.
`AnalogInputs` maps converter inputs to signal channels through a `FrontEnd` and applies input faults
(railed or stuck inputs, electrodes coming off) over stretches of time.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
        cls, plan: object, seed: int, block: int = 8192, prefetch: int = 0
    ) -> SignalPlayer:
        """A synthetic night; with `prefetch`, that many blocks are made ahead on a thread of
        their own (a converter paced in real time must not wait while the signal is made)."""
        from hardware.synthetic_emg import SyntheticEMG

        emg = SyntheticEMG(plan, seed=seed)  # type: ignore[arg-type]
        blocks = emg.blocks(block)
        if prefetch:
            blocks = prefetched(blocks, prefetch)
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
        prefetch: int = 0,
    ) -> SignalPlayer:
        """Play a recording; its values must be in uV, mV or V (counts have no electrode scale).
        `prefetch`: as for `from_synthetic`."""
        from hardware.recordings import RecordingError, open_recording

        recording = open_recording(path, fs=fs, channels=channels, units=units)
        info = recording.info
        unit = info.units or "uV"
        if unit not in _TO_MICROVOLTS:
            recording.close()
            raise RecordingError(
                f"'{path}' is in {unit}; a simulated chip needs the electrode signal in uV, mV "
                "or V (pass --units if the file does not say)"
            )
        blocks = recording.blocks(block)
        if prefetch:
            blocks = prefetched(blocks, prefetch)
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


def prefetched(blocks: Iterator[np.ndarray], depth: int) -> Iterator[np.ndarray]:
    """The same blocks, made up to `depth` ahead by a thread of their own. (It keeps the priority
    of the thread that starts it: one of lower priority could be preempted while it holds the
    interpreter, and keep a real-time acquisition thread waiting.) An error in making them is
    raised where the block it concerns is taken."""
    ready: queue.Queue[tuple[np.ndarray | None, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def make() -> None:
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        ready.put((block, None), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((None, None))
        except BaseException as error:
            ready.put((None, error))

    threading.Thread(target=make, name="signal-prefetch", daemon=True).start()
    try:
        while True:
            block, error = ready.get()
            if error is not None:
                raise error
            if block is None:
                return
            yield block
    finally:
        stop.set()


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
