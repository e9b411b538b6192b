"""Live sources for the command line: a real or simulated converter, or a recording played.

`--sim mcp3008|ads1115` runs the real driver against a simulated chip fed by a synthetic night or a
recorded file, through a modelled front end (gain 1000, biased at mid-supply). `--speed X` plays
X times faster than real time; `--speed 0` as fast as the computer allows (on a virtual clock:
every run gives the same samples, and nothing is ever missed).

Converters, real or simulated, run in an acquisition process of their own
(`hardware.acquisition_process`): the driver (and a simulated chip with it) is built there, from
the picklable recipes below, so nothing the daemon does can hold it up. `SlotKeeping` watches how
many of the converter's slots the host keeps and says so, once and then as a periodic summary,
when it is less than 99 %.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from dsp.config import PipelineConfig, ScalingConfig
from hardware.acquisition import AcquisitionSource, SampleBlock, ThreadedSource, contiguous
from hardware.acquisition_process import ProcessSource
from hardware.ads1115 import ADS1115Source, lsb_volts
from hardware.ads1115_sim import SimulatedADS1115Bus
from hardware.analog_inputs import AnalogInputs, SignalPlayer
from hardware.clock import Clock, ScaledClock, SystemClock, VirtualClock
from hardware.file_source import FileSource
from hardware.front_end import FrontEnd
from hardware.mcp3008 import RESOLUTION, MCP3008Source, open_spi
from hardware.mcp3008_sim import SimulatedMCP3008SPI
from hardware.recordings import open_recording
from hardware.recordings.errors import SIGNAL_OPTIONS
from hardware.synthetic_emg import plan_night, scenario

log = logging.getLogger("crampwatch")

SIM_CHIPS = ("mcp3008", "ads1115")
SIGNAL_FS = 4000.0
FRONT_END = FrontEnd(gain=1000.0, offset_v=1.65, rails_v=(0.0, 3.3))
RATE_ESTIMATE_S = 2.0
ADS1115_READY_PIN = 17
ADS1115_PGA = 2.048
SIM_VREF = 3.3
# Transfers a simulated chip remembers (for tests); few in a live run: a long log of small
# objects makes garbage collection stall the converter loop for tens of milliseconds.
SIM_HISTORY = 256
REALTIME_PRIORITY = 20  # SCHED_FIFO priority a real converter's process asks for
KEEP_TARGET = 0.99  # below this share of slots kept, the host is too slow: say so
KEEP_WINDOW_S = 5.0  # ... measured over this many seconds
KEEP_SUMMARY_S = 60.0  # then a summary this often while slots are lost


def add_live_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("simulated converter")
    group.add_argument("--sim", choices=SIM_CHIPS, help="run the real driver on a simulated chip")
    group.add_argument(
        "--signal",
        default="synthetic",
        help="what the chip's inputs see: 'synthetic' (a simulated night) or a "
        "recording in uV/mV/V (default synthetic)",
    )
    group.add_argument("--signal-fs", type=float, help="sampling rate of the --signal file")
    group.add_argument("--signal-units", choices=("uV", "mV", "V"), help="units of the file")
    group.add_argument("--hours", type=float, default=8.0, help="synthetic night length")
    group.add_argument("--seed", type=int, default=7, help="which synthetic night")
    group.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="times real time (0: as fast as the computer allows, on a virtual clock)",
    )
    group.add_argument(
        "--rate",
        type=float,
        help="converter rate: frames/s for mcp3008 (1000), data rate for ads1115 (860)",
    )
    group.add_argument(
        "--bus-error-rate",
        type=float,
        default=0.0,
        help="share of bus accesses that fail (fault injection)",
    )


@dataclass
class Live:
    """A started-on-demand source and what the pipeline needs to know about it.

    Converters deliver volts at the ADC through `front_end` (their rate is measured); a played
    file (`front_end` None) delivers its own units at its stated rate.
    """

    source: AcquisitionSource
    front_end: FrontEnd | None
    rails_v: tuple[float, float] | None
    pin_factory: object = None
    lsb_v: float | None = None
    config: PipelineConfig | None = None
    speed: float | None = None  # a simulation's --speed (None: real hardware)
    first_sample_monotonic: float | None = None  # system monotonic time of the first sample
    _pending: list[np.ndarray] = field(default_factory=list)

    def configure(
        self, args: argparse.Namespace, make: Callable[..., PipelineConfig] | None = None
    ) -> tuple[PipelineConfig, Iterator[np.ndarray]]:
        """Estimate the true rate over the first seconds, then make the pipeline configuration;
        returns it and the sample arrays (NaN rows for anything missed), from the first sample."""
        from firmware_host.commands.replay import pipeline_config

        blocks = self._watched(self.source.blocks(timeout=30.0))
        first: list = []
        for block in blocks:
            if not first:
                self.first_sample_monotonic = _first_sample_time(self.source, block)
            first.append(block)
            if block.t_last - first[0].t_first >= RATE_ESTIMATE_S:
                break
        if not first:
            raise ValueError("the source delivered no samples")
        if self.front_end is None:
            assert isinstance(self.source, FileSource)
            self.config = (make or pipeline_config)(
                args, self.source.nominal_fs, self.source.channels, self.source.units
            )
        else:
            fs = round(first[-1].fs_estimate, 1)
            base = (make or pipeline_config)(args, fs, self.source.channels, "V")
            self.config = base.with_changes(
                scaling=ScalingConfig(
                    units="V",
                    gain=self.front_end.gain,
                    offset_v=self.front_end.offset_v,
                    rails=self.rails_v,
                )
            )
        arrays = contiguous(_chain(first, blocks), len(self.source.channels))
        return self.config, arrays

    def first_sample_age_s(self) -> float:
        """How long ago (real seconds) the first sample was taken."""
        if self.first_sample_monotonic is None:
            return 0.0
        return max(0.0, time.monotonic() - self.first_sample_monotonic)

    def _watched(self, blocks: Iterator[SampleBlock]) -> Iterator[SampleBlock]:
        """The blocks, with the host's slot keeping watched (converters only)."""
        if not isinstance(self.source, ProcessSource):
            yield from blocks
            return
        report = self.source.report
        log.log(
            logging.INFO if self.speed is None else logging.DEBUG,
            "acquisition process %s: %s",
            report.pid,
            report.priority,
        )
        keeping = SlotKeeping(self.source, self.speed)
        for block in blocks:
            keeping.check()
            yield block
        keeping.finish()

    def take_seconds(self, arrays: Iterator[np.ndarray], seconds: float) -> list[np.ndarray]:
        """Arrays covering `seconds` of samples (the last one cut to fit)."""
        assert self.config is not None
        need = round(seconds * self.config.fs)
        taken: list[np.ndarray] = []
        if self._pending:
            arrays = _chain(self._pending, arrays)
            self._pending = []
        for array in arrays:
            if len(array) >= need:
                taken.append(array[:need])
                if len(array) > need:
                    self._pending.append(array[need:])
                return taken
            taken.append(array)
            need -= len(array)
        return taken


def open_live(
    args: argparse.Namespace, calibration_script: tuple[float, float] | None = None
) -> Live:
    """The simulated converter the options describe (not started): the chip and the real driver
    are built in the acquisition process when the source is opened."""
    if args.speed < 0 or not math.isfinite(args.speed):
        raise ValueError("--speed must be >= 0 (0: as fast as the computer allows)")
    if not 0 <= args.bus_error_rate < 1:
        raise ValueError("--bus-error-rate must be in [0, 1)")
    if args.signal == "synthetic" and calibration_script is None and not 0 < args.hours <= 24:
        raise ValueError("--hours must be between 0 and 24")
    if args.signal != "synthetic" and not Path(args.signal).exists():
        raise ValueError(f"--signal {args.signal}: no such file")
    clock = _clock(args)
    spec = SimSpec(
        chip=args.sim,
        signal=args.signal,
        signal_fs=args.signal_fs,
        signal_units=args.signal_units,
        hours=args.hours,
        seed=args.seed,
        rate=args.rate,
        bus_error_rate=args.bus_error_rate,
        calibration_script=calibration_script,
    )
    # Real-time priority (where allowed) for runs at real time: they sleep most of the time.
    priority = REALTIME_PRIORITY if 0 < args.speed <= 1 else None
    source = ProcessSource(
        partial(build_simulated, spec, clock), clock=clock, realtime_priority=priority
    )
    from gpiozero.pins.mock import MockFactory

    if args.sim == "mcp3008":
        lsb = SIM_VREF / RESOLUTION
        return Live(source, FRONT_END, (0.0, SIM_VREF - lsb), MockFactory(), lsb, speed=args.speed)
    swing = FRONT_END.rails_v[1] - FRONT_END.offset_v
    differential = FrontEnd(FRONT_END.gain, 0.0, (-swing, swing))
    return Live(
        source,
        differential,
        (-swing, swing),
        MockFactory(),
        lsb_volts(ADS1115_PGA),
        speed=args.speed,
    )


def _clock(args: argparse.Namespace) -> Clock:
    return VirtualClock() if args.speed == 0 else ScaledClock(args.speed)


@dataclass(frozen=True)
class SimSpec:
    """A simulated converter, as the options describe it (sent to the acquisition process)."""

    chip: str
    signal: str
    signal_fs: float | None
    signal_units: str | None
    hours: float
    seed: int
    rate: float | None
    bus_error_rate: float
    calibration_script: tuple[float, float] | None = None


def build_simulated(spec: SimSpec, clock: Clock) -> ThreadedSource:
    """The simulated chip fed by the signal, and the real driver reading it at the bus (runs in
    the acquisition process)."""
    player = _player(spec)
    player.preload()
    if spec.chip == "mcp3008":
        return _mcp3008(spec, player, clock)
    return _ads1115(spec, player, clock)


def _player(spec: SimSpec) -> SignalPlayer:
    channels = ("left_calf", "right_calf")
    if spec.signal != "synthetic":
        return SignalPlayer.from_file(
            Path(spec.signal), fs=spec.signal_fs, units=spec.signal_units, apart=True
        )
    if spec.calibration_script is not None:
        rest_s, mvc_s = spec.calibration_script
        events = [("cramp", rest_s, rest_s + mvc_s, None, {"level_uv": 300.0})] if mvc_s else []
        plan = scenario(
            spec.seed,
            fs=SIGNAL_FS,
            duration_s=rest_s + mvc_s + 3.0,
            channels=channels,
            events=events,
            prodrome=False,
        )
    else:
        plan = plan_night(
            spec.seed, duration_s=spec.hours * 3600.0, fs=SIGNAL_FS, channels=channels
        )
    return SignalPlayer.from_synthetic(plan, seed=spec.seed, apart=True)


def _mcp3008(spec: SimSpec, player: SignalPlayer, clock: Clock) -> MCP3008Source:
    inputs = AnalogInputs(
        player, FRONT_END, wiring=list(range(len(player.channels))), start_at_first_sample=True
    )
    spi = SimulatedMCP3008SPI(
        inputs,
        clock,
        vref=SIM_VREF,
        bus_error_rate=spec.bus_error_rate,
        seed=spec.seed,
        history=SIM_HISTORY,
    )
    spi.open(0, 0)
    spi.max_speed_hz = 1_350_000
    return MCP3008Source(
        spi,
        [(name, f"CH{i}") for i, name in enumerate(player.channels)],
        vref=SIM_VREF,
        fs=spec.rate or 1000.0,
        clock=clock,
        is_finished=lambda: spi.finished,
        finished_at=spi.finished_at,
    )


def _ads1115(spec: SimSpec, player: SignalPlayer, clock: Clock) -> ADS1115Source:
    """Differential pairs AIN0-AIN1 and AIN2-AIN3 (the second input of each at the front end's
    bias), +-2.048 V, data-ready on a mock GPIO pin, a chip clock 4 % fast."""
    from gpiozero.pins.mock import MockFactory

    if len(player.channels) > 2:
        raise ValueError(
            "the simulated ADS1115 reads two differential channels; the signal has "
            f"{len(player.channels)}"
        )
    factory = MockFactory()
    wiring: list[int | None] = [0, None, 1 if len(player.channels) > 1 else None, None]
    bus = SimulatedADS1115Bus(
        AnalogInputs(player, FRONT_END, wiring=wiring, start_at_first_sample=True),
        clock=clock,
        clock_error=0.04,
        ready_pin=factory.pin(ADS1115_READY_PIN),
        bus_error_rate=spec.bus_error_rate,
        seed=spec.seed,
        log_size=SIM_HISTORY,
        traffic_size=SIM_HISTORY,
    )
    pairs = ("AIN0-AIN1", "AIN2-AIN3")
    return ADS1115Source(
        bus,
        inputs=[(name, pairs[i]) for i, name in enumerate(player.channels)],
        pga=ADS1115_PGA,
        data_rate=int(spec.rate or 860),
        ready_pin=ADS1115_READY_PIN,
        clock=clock,
        pin_factory=factory,
        is_finished=bus.finished.is_set,
    )


def open_source(args: argparse.Namespace) -> Live:
    """The source the daemon's settings name: `args.source` is simulated, ads1115, mcp3008 or
    file (see firmware_host/daemon_config.py)."""
    if args.source == "simulated":
        return open_live(args)
    if args.source == "file":
        return _file(args)
    front_end = FrontEnd(args.front_end_gain, args.front_end_offset_v, (0.0, 3.3))
    if args.source == "mcp3008":
        return _real_mcp3008(args, front_end)
    return _real_ads1115(args, front_end)


def _file(args: argparse.Namespace) -> Live:
    if not args.play:
        raise ValueError("source kind 'file' needs a recording: --play FILE or [source] file")
    if args.speed < 0 or not math.isfinite(args.speed):
        raise ValueError("--speed must be >= 0 (0: as fast as possible)")
    recording = open_recording(
        args.play, fs=args.signal_fs, units=args.signal_units, option_names=SIGNAL_OPTIONS
    )
    clock = ScaledClock(args.speed) if args.speed > 0 else None
    return Live(FileSource(recording, clock=clock), None, None)


def _inputs(args: argparse.Namespace, default: list[str]) -> list[tuple[str, str]]:
    names = list(args.channel_names)
    inputs = list(args.inputs or default[: len(names)])
    if len(inputs) != len(names):
        raise ValueError(
            f"{len(names)} channel name(s) {names} but {len(inputs)} input(s) {inputs}: give "
            "one input per channel ([device] channels, [source] inputs)"
        )
    return list(zip(names, inputs, strict=True))


def _real_mcp3008(args: argparse.Namespace, front_end: FrontEnd) -> Live:
    """An MCP3008 on /dev/spidev<bus>.<device> (needs the `pi` extra), read in the acquisition
    process at real-time priority where allowed."""
    inputs = _inputs(args, ["CH0", "CH1", "CH2", "CH3"])
    build = partial(
        build_mcp3008, args.spi_bus, args.spi_device, inputs, args.vref, args.rate or 1000.0
    )
    clock = SystemClock()
    source = ProcessSource(build, clock=clock, realtime_priority=REALTIME_PRIORITY)
    lsb = args.vref / RESOLUTION
    return Live(source, front_end, (0.0, args.vref - lsb), None, lsb)


def build_mcp3008(
    spi_bus: int, spi_device: int, inputs: list[tuple[str, str]], vref: float, rate: float
) -> MCP3008Source:
    return MCP3008Source(
        lambda: open_spi(spi_bus, spi_device), inputs, vref=vref, fs=rate, clock=SystemClock()
    )


def _real_ads1115(args: argparse.Namespace, front_end: FrontEnd) -> Live:
    """An ADS1115 on /dev/i2c-<bus>, data-ready on a GPIO pin; differential inputs, so the
    front end's bias cancels. Read in the acquisition process at real-time priority where
    allowed."""
    build = partial(
        build_ads1115,
        args.i2c_bus,
        args.i2c_address,
        _inputs(args, ["AIN0-AIN1", "AIN2-AIN3"]),
        args.pga,
        int(args.rate or 860),
        args.ready_pin,
    )
    source = ProcessSource(build, clock=SystemClock(), realtime_priority=REALTIME_PRIORITY)
    differential = FrontEnd(front_end.gain, 0.0, (-args.pga, args.pga))
    return Live(source, differential, (-args.pga, args.pga), None, lsb_volts(args.pga))


def build_ads1115(
    i2c_bus: int,
    address: int,
    inputs: list[tuple[str, str]],
    pga: float,
    data_rate: int,
    ready_pin: int,
) -> ADS1115Source:
    return ADS1115Source(
        i2c_bus,
        address=address,
        inputs=inputs,
        pga=pga,
        data_rate=data_rate,
        ready_pin=ready_pin,
        clock=SystemClock(),
    )


class SlotKeeping:
    """How many of the converter's slots the host keeps (not missed for being late, not dropped
    for want of a reader), over the last `window_s` seconds.

    Below `target`, it says so once, plainly (for a simulation: the speed asked for, the share
    kept, the fastest speed this computer is measured to manage, and `--speed 0`), then once per
    `summary_s` of real time while slots are still being lost, and once when they no longer are.
    A run too short for a whole window is judged as a whole at its end."""

    def __init__(
        self,
        source: ProcessSource,
        speed: float | None,
        *,
        target: float = KEEP_TARGET,
        window_s: float = KEEP_WINDOW_S,
        summary_s: float = KEEP_SUMMARY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.speed = source, speed
        self.target, self.window_s, self.summary_s = target, window_s, summary_s
        self.clock = clock
        self._points: deque[tuple[float, int, int, float | None]] = deque()
        self._first: tuple[float, int, int, float | None] | None = None
        self._warned = False
        self._summary_from: tuple[float, int, int] | None = None
        self._quiet = False

    def _look(self) -> tuple[float, int, int, float | None]:
        stats = self.source.stats
        lost = stats.missed_slots + stats.dropped_frames
        point = (self.clock(), stats.frames, lost, stats.loop_cpu_us / 1e6)
        if self._first is None:
            self._first = point
        return point

    def check(self) -> None:
        now, due, lost, _ = point = self._look()
        self._points.append(point)
        while len(self._points) > 2 and now - self._points[1][0] >= self.window_s:
            self._points.popleft()
        if not self._warned:
            t0, due0, lost0, _ = self._points[0]
            if now - t0 >= self.window_s and due - due0 >= self.source.nominal_fs:
                self._judge(due - due0, lost - lost0)
            return
        assert self._summary_from is not None
        since, due_s, lost_s = self._summary_from
        if now - since >= self.summary_s and due > due_s:
            self._summary(now - since, due - due_s, lost - lost_s, due, lost)
            self._summary_from = (now, due, lost)

    def finish(self) -> None:
        """At the end of the run: judged as a whole if it never filled a window; else the last
        summary, if slots were lost since the one before."""
        now, due, lost, _ = point = self._look()
        if not self._warned:
            assert self._first is not None
            _, due0, lost0, _ = self._first
            if due - due0 >= self.source.nominal_fs:  # at least a second of slots
                self._points = deque([self._first, point])
                self._judge(due - due0, lost - lost0)
            return
        assert self._summary_from is not None
        since, due_s, lost_s = self._summary_from
        if lost > lost_s:
            self._summary(now - since, due - due_s, lost - lost_s, due, lost)

    def _judge(self, due: int, lost: int) -> None:
        kept = 1.0 - lost / due
        if kept < self.target:
            self._warn(kept, due / self.source.nominal_fs)
            self._warned = True
            now, due_all, lost_all, _ = self._points[-1]
            self._summary_from = (now, due_all, lost_all)

    def _warn(self, kept: float, span_s: float) -> None:
        report = getattr(self.source, "report", None)
        realtime = report is not None and report.priority.startswith("real-time")
        busy = (
            "Something else keeps the CPU busy; see `top`."
            if realtime
            else "A busy computer needs real-time priority for the acquisition process: allowed "
            "for root, or by LimitRTPRIO (the service sets it)."
        )
        if self.speed is None:
            log.warning(
                "the host keeps only %.1f %% of the converter's slots (over the last %.0f s): "
                "the rest are gaps. %s",
                100 * kept,
                span_s,
                busy,
            )
            return
        fastest = self._fastest_speed()
        if self.speed > 1 and fastest >= 1:
            log.warning(
                "--speed %g is too fast for this computer: it kept only %.1f %% of the simulated "
                "converter's slots over %.0f s of signal (the rest are gaps, reported as signal "
                "lost). This computer manages about --speed %g; --speed 0 runs as fast as it "
                "can and keeps every sample.",
                self.speed,
                100 * kept,
                span_s,
                fastest,
            )
            return
        log.warning(
            "--speed %g: this computer kept only %.1f %% of the simulated converter's slots over "
            "%.0f s of signal (the rest are gaps, reported as signal lost): it cannot keep this "
            "pace now. %s --speed 0 runs as fast as it can and keeps every sample.",
            self.speed,
            100 * kept,
            span_s,
            busy,
        )

    def _summary(self, span_s: float, due: int, lost: int, due_all: int, lost_all: int) -> None:
        if lost == 0:
            if not self._quiet:
                log.info("acquisition: every slot kept in the last %.0f s", span_s)
            self._quiet = True
            return
        self._quiet = False
        log.warning(
            "acquisition: kept %.1f %% of slots in the last %.0f s (%d missed); %.1f %% since "
            "the start",
            100 * (1 - lost / due),
            span_s,
            lost,
            100 * (1 - lost_all / max(due_all, 1)),
        )

    def _fastest_speed(self) -> float:
        """From the converter loop's measured CPU time per frame, a quarter of a core's worth
        (the rest of the time is for waking on time and for the rest of the computer); when the
        host kept at least half of the slots, also no more than the speed it reached. Rounded
        down to 1, 2, 5 x 10^k."""
        assert self.speed is not None and self._first is not None
        _, due0, lost0, _ = self._points[0]
        _, due1, lost1, cpu1 = self._points[-1]
        share = 1 - (lost1 - lost0) / max(due1 - due0, 1)  # over the window
        estimates = [self.speed * share] if share >= 0.5 else []
        _, due_first, lost_first, cpu_first = self._first  # CPU: over the whole run so far
        kept = (due1 - due_first) - (lost1 - lost_first)
        if cpu1 is not None and cpu_first is not None and kept > 0 and cpu1 > cpu_first:
            frames_per_cpu_s = kept / (cpu1 - cpu_first)
            estimates.append(0.25 * frames_per_cpu_s / self.source.nominal_fs)
        return _round_down(min(estimates)) if estimates else 0.0


def _round_down(value: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above `value` (0 below 0.1)."""
    if value < 0.1:
        return 0.0
    exponent = math.floor(math.log10(value))
    for step in (5, 2, 1):
        candidate = step * 10.0**exponent
        if candidate <= value * (1 + 1e-9):
            return candidate
    return 10.0**exponent


def _first_sample_time(source: AcquisitionSource, block: SampleBlock) -> float:
    """When the first sample was taken, on the system's monotonic clock: its own time when the
    source runs on that clock (real hardware), else when it arrived (a simulation or a file,
    whose sample times are not the wall's anyway)."""
    if isinstance(getattr(source, "clock", None), SystemClock) and math.isfinite(block.t_first):
        return block.t_first
    return time.monotonic()


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


__all__ = ["SIM_CHIPS", "Live", "SlotKeeping", "add_live_options", "open_live", "open_source"]
