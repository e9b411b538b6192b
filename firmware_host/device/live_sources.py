"""Live sources for the command line: a simulated converter at the bus, playing a signal.

`--sim mcp3008|ads1115` runs the real driver against a simulated chip fed by a synthetic night or a
recorded file, through a modelled front end (gain 1000, biased at mid-supply). `--speed X` plays
X times faster than real time; `--speed 0` as fast as the computer allows (on a virtual clock, for
the MCP3008, whose loop paces itself).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsp.config import PipelineConfig, ScalingConfig
from hardware.acquisition import AcquisitionSource, contiguous
from hardware.ads1115 import ADS1115Source, lsb_volts
from hardware.ads1115_sim import SimulatedADS1115Bus
from hardware.analog_inputs import AnalogInputs, SignalPlayer
from hardware.clock import Clock, ScaledClock, SystemClock, VirtualClock
from hardware.file_source import FileSource
from hardware.front_end import FrontEnd
from hardware.mcp3008 import MCP3008Source, open_spi
from hardware.mcp3008_sim import SimulatedMCP3008SPI
from hardware.recordings import open_recording
from hardware.recordings.errors import SIGNAL_OPTIONS
from hardware.synthetic_emg import plan_night, scenario

SIM_CHIPS = ("mcp3008", "ads1115")
SIGNAL_FS = 4000.0
FRONT_END = FrontEnd(gain=1000.0, offset_v=1.65, rails_v=(0.0, 3.3))
RATE_ESTIMATE_S = 2.0
ADS1115_READY_PIN = 17
ADS1115_PGA = 2.048


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
        help="times real time (0: as fast as possible, mcp3008 only)",
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
    _pending: list[np.ndarray] = field(default_factory=list)

    def configure(
        self, args: argparse.Namespace, make: Callable[..., PipelineConfig] | None = None
    ) -> tuple[PipelineConfig, Iterator[np.ndarray]]:
        """Estimate the true rate over the first seconds, then make the pipeline configuration;
        returns it and the sample arrays (NaN rows for anything missed), from the first sample."""
        from firmware_host.commands.replay import pipeline_config

        blocks = self.source.blocks(timeout=30.0)
        first: list = []
        for block in blocks:
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
    """The simulated converter the options describe (not started)."""
    if args.speed < 0 or not math.isfinite(args.speed):
        raise ValueError("--speed must be >= 0 (0: as fast as possible)")
    if not 0 <= args.bus_error_rate < 1:
        raise ValueError("--bus-error-rate must be in [0, 1)")
    player = _player(args, calibration_script)
    clock = _clock(args)
    if args.sim == "mcp3008":
        return _mcp3008(args, player, clock)
    return _ads1115(args, player, clock)


def _clock(args: argparse.Namespace) -> Clock:
    if args.speed == 0:
        if args.sim != "mcp3008":
            raise ValueError("--speed 0 works with --sim mcp3008; give the ads1115 a speed > 0")
        return VirtualClock()
    return ScaledClock(args.speed)


def _player(
    args: argparse.Namespace, calibration_script: tuple[float, float] | None
) -> SignalPlayer:
    channels = ("left_calf", "right_calf")
    if args.signal != "synthetic":
        return SignalPlayer.from_file(Path(args.signal), fs=args.signal_fs, units=args.signal_units)
    if calibration_script is not None:
        rest_s, mvc_s = calibration_script
        events = [("cramp", rest_s, rest_s + mvc_s, None, {"level_uv": 300.0})] if mvc_s else []
        plan = scenario(
            args.seed,
            fs=SIGNAL_FS,
            duration_s=rest_s + mvc_s + 3.0,
            channels=channels,
            events=events,
            prodrome=False,
        )
    else:
        if not 0 < args.hours <= 24:
            raise ValueError("--hours must be between 0 and 24")
        plan = plan_night(
            args.seed, duration_s=args.hours * 3600.0, fs=SIGNAL_FS, channels=channels
        )
    return SignalPlayer.from_synthetic(plan, seed=args.seed)


def _mcp3008(args: argparse.Namespace, player: SignalPlayer, clock: Clock) -> Live:
    inputs = AnalogInputs(
        player, FRONT_END, wiring=list(range(len(player.channels))), start_at_first_sample=True
    )
    spi = SimulatedMCP3008SPI(
        inputs, clock, vref=3.3, bus_error_rate=args.bus_error_rate, seed=args.seed
    )
    spi.open(0, 0)
    spi.max_speed_hz = 1_350_000
    source = MCP3008Source(
        spi,
        [(name, f"CH{i}") for i, name in enumerate(player.channels)],
        vref=3.3,
        fs=args.rate or 1000.0,
        clock=clock,
        is_finished=lambda: spi.finished,
    )
    from gpiozero.pins.mock import MockFactory

    return Live(source, FRONT_END, (0.0, source.vref - source.lsb_v), MockFactory(), source.lsb_v)


def _ads1115(args: argparse.Namespace, player: SignalPlayer, clock: Clock) -> Live:
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
        bus_error_rate=args.bus_error_rate,
        seed=args.seed,
    )
    pairs = ("AIN0-AIN1", "AIN2-AIN3")
    source = ADS1115Source(
        bus,
        inputs=[(name, pairs[i]) for i, name in enumerate(player.channels)],
        pga=ADS1115_PGA,
        data_rate=int(args.rate or 860),
        ready_pin=ADS1115_READY_PIN,
        clock=clock,
        pin_factory=factory,
        is_finished=bus.finished.is_set,
    )
    swing = FRONT_END.rails_v[1] - FRONT_END.offset_v
    differential = FrontEnd(FRONT_END.gain, 0.0, (-swing, swing))
    return Live(source, differential, (-swing, swing), factory, lsb_volts(ADS1115_PGA))


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
    """An MCP3008 on /dev/spidev<bus>.<device> (needs the `pi` extra)."""
    source = MCP3008Source(
        lambda: open_spi(args.spi_bus, args.spi_device),
        _inputs(args, ["CH0", "CH1", "CH2", "CH3"]),
        vref=args.vref,
        fs=args.rate or 1000.0,
        clock=SystemClock(),
    )
    return Live(source, front_end, (0.0, source.vref - source.lsb_v), None, source.lsb_v)


def _real_ads1115(args: argparse.Namespace, front_end: FrontEnd) -> Live:
    """An ADS1115 on /dev/i2c-<bus>, data-ready on a GPIO pin; differential inputs, so the
    front end's bias cancels."""
    source = ADS1115Source(
        args.i2c_bus,
        address=args.i2c_address,
        inputs=_inputs(args, ["AIN0-AIN1", "AIN2-AIN3"]),
        pga=args.pga,
        data_rate=int(args.rate or 860),
        ready_pin=args.ready_pin,
        clock=SystemClock(),
    )
    differential = FrontEnd(front_end.gain, 0.0, (-args.pga, args.pga))
    return Live(source, differential, (-args.pga, args.pga), None, lsb_volts(args.pga))


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


__all__ = ["SIM_CHIPS", "Live", "add_live_options", "open_live", "open_source"]
