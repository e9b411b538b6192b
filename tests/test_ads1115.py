"""ADS1115 driver and simulated chip: register bytes, decoding, and acquisition through the sim.

Acquisition tests run the simulated chip and the driver on a shared VirtualClock (the chip's
conversions are events on it: every run is the same, and as fast as the computer allows) with
gpiozero's MockFactory for the ALERT/RDY pin; a host late for some MUX switches is made late on
purpose (`LateSource`), never by hoping for load. Every value the driver returns is checked
against the simulated chip's own log of conversions: the conversion published last before the
frame's RDY pulse must have exactly that code (nothing invented, nothing mislabelled in time).
With several inputs, rows are also checked against the time base: row r holds conversions made
about r slots of 2n conversions after the first (missed slots are NaN rows, never dropped rows).
One test runs in real time and asserts what holds however busy the host is: every value exact,
every slot accounted for, the share kept as reported.
"""

from __future__ import annotations

import bisect
import contextlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from hardware.acquisition import AcquisitionError, Frame, RetryPolicy, SampleBlock
from hardware.ads1115 import (
    ADS1115,
    COMP_QUE_ONE,
    MODE_CONTINUOUS,
    MUX,
    PGA,
    REG_CONFIG,
    REG_HI_THRESH,
    REG_LO_THRESH,
    ADS1115Source,
    _ConversionGrid,
    _ReadyLine,
    _SlotGrid,
    config_word,
    lsb_volts,
    signed16,
)
from hardware.ads1115_sim import Conversion, SimulatedADS1115Bus
from hardware.analog_inputs import AnalogInputs, InputFault, SignalPlayer
from hardware.clock import Clock, ScaledClock, VirtualClock
from hardware.front_end import FrontEnd
from hardware.log_coalescing import COALESCE

SIGNAL_FS = 10_000.0
READY_GPIO = 17
FRONT_END = FrontEnd(gain=1000.0, offset_v=1.65, rails_v=(0.0, 3.3))


# ---- helpers --------------------------------------------------------------------------------


class RecordingBus:
    """Records smbus2 block writes; serves block reads from `replies`."""

    def __init__(self, replies: dict[int, list[int]] | None = None) -> None:
        self.writes: list[tuple[int, int, list[int]]] = []
        self.replies = replies or {}

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: Sequence[int], force: bool | None = None
    ) -> None:
        self.writes.append((i2c_addr, register, list(data)))

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        return list(self.replies[register][:length])

    def close(self) -> None:
        pass


class RecordingSource(ADS1115Source):
    """Keeps every frame, and with several inputs every channel's own (channel, time, value),
    for checking against the sim's log."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.frames: list[Frame] = []
        self.readings: list[tuple[int, float, float]] = []

    def _next_frame(self) -> Frame | None:
        frame = super()._next_frame()
        if frame is not None:
            self.frames.append(frame)
        return frame

    def _convert_after_switch(self, config: int) -> tuple[tuple[int, float] | None, float] | None:
        result = super()._convert_after_switch(config)
        if result is not None:
            pulse, value = result
            t = pulse[1] if pulse is not None else float("nan")
            self.readings.append((self._configs.index(config), t, value))
        return result

    def _single_shot(self, config: int) -> tuple[float, float] | None:
        result = super()._single_shot(config)
        if result is not None:
            self.readings.append((self._configs.index(config), *result))
        return result


class LateSource(RecordingSource):
    """A host late for some MUX switches: before a seeded share of its config writes it dawdles
    1.5 conversion periods, so the switch lands after the conversion it was meant for."""

    def __init__(self, *args: object, late_share: float = 0.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.late_share = late_share
        self.late_writes = 0
        self._late_rng = random.Random(3)

    def _write_fresh(self, config: int) -> tuple[int, float] | None:
        if self._late_rng.random() < self.late_share:
            self.late_writes += 1
            self.clock.sleep(1.5 * self._period)
        return super()._write_fresh(config)


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


def sines(duration_s: float, *specs: tuple[float, float]) -> np.ndarray:
    """Electrode signal (uV), one column per (frequency Hz, amplitude uV)."""
    t = np.arange(int(duration_s * SIGNAL_FS)) / SIGNAL_FS
    return np.column_stack([amp * np.sin(2 * np.pi * f * t) for f, amp in specs])


def pin_volts(signal: np.ndarray, t: float, column: int) -> float:
    """True volts at an ADC pin driven by `signal[:, column]` at time t (sample and hold)."""
    index = min(int(t * SIGNAL_FS + 1e-9), len(signal) - 1)
    return float(FRONT_END.volts(signal[index, column]))


@contextlib.contextmanager
def simulated_chip(
    signal: np.ndarray,
    clock: Clock,
    *,
    wiring: Sequence[int | None],
    ready_pin: object = None,
    faults: Sequence[InputFault] = (),
    **options: float,
) -> Iterator[SimulatedADS1115Bus]:
    channels = [f"s{i}" for i in range(signal.shape[1])]
    inputs = AnalogInputs(SignalPlayer(iter([signal]), SIGNAL_FS, channels), FRONT_END, wiring)
    inputs.faults = faults
    bus = SimulatedADS1115Bus(inputs, clock=clock, ready_pin=ready_pin, **options)  # type: ignore[arg-type]
    try:
        yield bus
    finally:
        bus.close()


def acquire(source: ADS1115Source) -> list[SampleBlock]:
    with source:
        source.start()
        return list(source.blocks(timeout=10.0))


def conversion_at(log: list[Conversion], t: float) -> Conversion:
    """The conversion the chip had published last at clock time t."""
    published = [c.published for c in log]
    return log[bisect.bisect_right(published, t) - 1]


def frame_rows(frames: list[Frame]) -> np.ndarray:
    """The row of each frame (the slots missed before it are NaN rows)."""
    return np.cumsum([f.missed_before + 1 for f in frames]) - 1


def check_blocks(blocks: list[SampleBlock], source: ADS1115Source) -> np.ndarray:
    """Blocks are contiguous and time-ordered; returns all samples."""
    expected = 0
    for block in blocks:
        assert block.first_index == expected
        assert block.t_first <= block.t_last
        expected += block.n
    samples = np.vstack([b.samples for b in blocks])
    assert source.stats.frames == len(samples)
    assert source.stats.missing_frames == sum(b.missing for b in blocks)
    return samples


# ---- configuration word and register bytes --------------------------------------------------


def test_config_word_examples() -> None:
    common = {"pga": 4.096, "data_rate": 860, "mode": MODE_CONTINUOUS, "comp_que": COMP_QUE_ONE}
    assert config_word(mux="AIN0", **common) == 0x42E0
    assert config_word(mux="AIN0-AIN1", **{**common, "pga": 0.256}) == 0x0AE0
    assert config_word(mux="AIN3", pga=6.144, data_rate=8, mode="single-shot", start=True) == (
        0x8000 | 0b111 << 12 | 0 << 9 | 1 << 8 | 0 << 5 | 0b11
    )
    assert [config_word(mux=m, pga=2.048, data_rate=128, mode=1) >> 12 & 7 for m in MUX] == list(
        range(8)
    )


def test_configure_writes_config_msb_first() -> None:
    bus = RecordingBus()
    chip = ADS1115(bus)
    chip.configure(mux="AIN0", pga=4.096, data_rate=860, mode=0, comp_que=COMP_QUE_ONE)
    chip.configure(mux="AIN0-AIN1", pga=0.256, data_rate=860, mode=0, comp_que=COMP_QUE_ONE)
    assert bus.writes == [(0x48, REG_CONFIG, [0x42, 0xE0]), (0x48, REG_CONFIG, [0x0A, 0xE0])]


def test_ready_thresholds_bytes() -> None:
    bus = RecordingBus({REG_CONFIG: [0x85, 0x83]})  # reset config: COMP_QUE 11, pin disabled
    ADS1115(bus, address=0x49).enable_ready_pin()
    assert bus.writes == [
        (0x49, REG_HI_THRESH, [0x80, 0x00]),
        (0x49, REG_LO_THRESH, [0x00, 0x00]),
        (0x49, REG_CONFIG, [0x05, 0x80]),  # COMP_QUE 00, OS not set (no conversion started)
    ]
    bus = RecordingBus()
    chip = ADS1115(bus)
    chip.configure(mux="AIN0", pga=4.096, data_rate=860, mode=0, comp_que=COMP_QUE_ONE)
    chip.enable_ready_pin()
    assert bus.writes[1:] == [(0x48, REG_HI_THRESH, [0x80, 0x00]), (0x48, REG_LO_THRESH, [0, 0])]


def test_sim_sees_the_same_bytes_and_resets_like_the_chip() -> None:
    signal = np.zeros((int(SIGNAL_FS), 1))
    with simulated_chip(signal, ScaledClock(10), wiring=[0, None, None, None]) as bus:
        assert bus.read_i2c_block_data(0x48, REG_CONFIG, 2) == [0x85, 0x83]
        assert bus.read_i2c_block_data(0x48, REG_LO_THRESH, 2) == [0x80, 0x00]
        assert bus.read_i2c_block_data(0x48, REG_HI_THRESH, 2) == [0x7F, 0xFF]
        chip = ADS1115(bus)
        chip.start_continuous("AIN0", 4.096, 860)
        assert ("write", 0x48, bytes([0x03, 0x80, 0x00])) in bus.traffic
        assert ("write", 0x48, bytes([0x02, 0x00, 0x00])) in bus.traffic
        assert list(bus.traffic)[-1] == ("write", 0x48, bytes([0x01, 0x42, 0xE0]))
        assert chip.read_register(REG_CONFIG) == 0x42E0  # OS reads 0: converting
        with pytest.raises(OSError) as nack:
            bus.read_i2c_block_data(0x49, REG_CONFIG, 2)
        assert nack.value.errno == 121


def test_sim_i2c_rdwr_combined_transfer() -> None:
    from smbus2 import i2c_msg

    signal = np.zeros((int(SIGNAL_FS), 1))
    with simulated_chip(signal, ScaledClock(10), wiring=[0, None, None, None]) as bus:
        write, read = i2c_msg.write(0x48, [REG_CONFIG]), i2c_msg.read(0x48, 2)
        bus.i2c_rdwr(write, read)
        assert list(read) == [0x85, 0x83]
        bus.i2c_rdwr(i2c_msg.write(0x48, [REG_HI_THRESH, 0x80, 0x00]))
        assert bus.register(REG_HI_THRESH) == 0x8000


@pytest.mark.parametrize(
    ("reply", "code"),
    [([0xFF, 0xFF], -1), ([0x80, 0x00], -32768), ([0x7F, 0xFF], 32767), ([0x00, 0x01], 1)],
)
def test_conversion_is_twos_complement(reply: list[int], code: int) -> None:
    assert ADS1115(RecordingBus({0: reply})).read_raw() == code
    assert signed16(reply[0] << 8 | reply[1]) == code


@pytest.mark.parametrize("full_scale", list(PGA))
def test_to_volts_for_each_pga(full_scale: float) -> None:
    assert ADS1115.to_volts(32767, full_scale) == pytest.approx(full_scale * 32767 / 32768)
    assert ADS1115.to_volts(-32768, full_scale) == pytest.approx(-full_scale)
    assert ADS1115.to_volts(1, full_scale) == pytest.approx(full_scale / 32768)
    assert lsb_volts(full_scale) == pytest.approx(full_scale / 32768)


def test_single_shot_reads_negative_and_clipped_codes() -> None:
    # 0.5 V below the bias on AIN0, AIN1 at the bias: AIN0-AIN1 = -0.5 V.
    signal = np.full((int(SIGNAL_FS), 1), -500.0)
    with simulated_chip(signal, ScaledClock(1), wiring=[0, None, None, None]) as bus:
        chip = ADS1115(bus, clock=bus.clock)
        shot = {"data_rate": 860, "timeout_s": 0.5}
        assert chip.read_single_shot("AIN0-AIN1", pga=2.048, **shot) == -8000
        assert bus.read_i2c_block_data(0x48, 0, 2) == [0xE0, 0xC0]
        assert chip.read_single_shot("AIN1", pga=1.024, **shot) == 0x7FFF  # 1.65 V: clips
        assert chip.read_single_shot("AIN1", pga=2.048, **shot) == 26400  # 1.65 V


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("data_rate", 100, "8, 16, 32, 64, 128, 250, 475, 860"),
        ("pga", 3.3, "6.144, 4.096, 2.048, 1.024, 0.512, 0.256"),
        ("mux", "AIN4", "AIN0-AIN1, AIN0-AIN3"),
        ("mode", "fast", "continuous, single-shot, 0 \\(continuous\\), 1 \\(single-shot\\)"),
        ("comp_que", 4, "0, 1, 2, 3"),
    ],
)
def test_bad_configuration_names_what_is_allowed(field: str, value: object, allowed: str) -> None:
    fields: dict[str, object] = {"mux": "AIN0", "pga": 2.048, "data_rate": 128, "mode": 0}
    fields[field] = value
    with pytest.raises(ValueError, match=allowed):
        config_word(**fields)  # type: ignore[arg-type]


def test_source_validates_before_opening() -> None:
    bus = RecordingBus()
    with pytest.raises(ValueError, match="860"):
        ADS1115Source(bus, inputs=[("a", "AIN0")], data_rate=1000)
    with pytest.raises(ValueError, match="AIN0-AIN1"):
        ADS1115Source(bus, inputs=[("a", "A0")])
    with pytest.raises(ValueError, match="unique"):
        ADS1115Source(bus, inputs=[("a", "AIN0"), ("a", "AIN1")])
    assert bus.writes == []


# ---- counting conversions between pulses ----------------------------------------------------


def test_grid_counts_lost_pulses_but_not_late_ones() -> None:
    period = 0.01
    grid = _ConversionGrid(hold_s=0.0, min_frames=1)
    # conversion k at k * period; pulse 3 is 0.7 periods late, pulse 6 never comes,
    # pulses 8 and 9 are seen together (count jumps by 2)
    pulses = [(1, 0.0), (2, 0.01), (3, 0.027), (4, 0.03), (5, 0.04), (6, 0.06), (8, 0.0805)]
    frames = [grid.place(count, t, np.array([count]), period) for count, t in pulses]
    frames.append(grid.flush())
    missed = [f.missed_before for f in frames if f is not None]
    assert missed == [0, 0, 0, 0, 0, 1, 1]
    # a stall: conversions 1, 2 and 3 are published together 2.5 periods late; the reader
    # sees pulse 2, then 4 (3 seen, not read), then the next ones on time
    grid = _ConversionGrid(hold_s=0.0, min_frames=4)
    pulses = [(1, 0.0), (2, 0.035), (4, 0.0351), (5, 0.04), (6, 0.05), (7, 0.06), (8, 0.07)]
    frames = [grid.place(count, t, np.array([count]), period) for count, t in pulses]
    while (frame := grid.flush()) is not None:
        frames.append(frame)
    missed = [f.missed_before for f in frames if f is not None]
    assert missed == [0, 0, 1, 0, 0, 0, 0]  # only the conversion seen but not read


class SteppedClock:
    """A clock the test sets."""

    t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_ready_line_period_is_not_fooled_by_bursts_or_lost_pulses() -> None:
    period = 1 / (860 * 1.04)  # a chip 4 % fast
    # a callback thread that wakes every 7 periods and sees the pulses since then all at once
    clock = SteppedClock()
    line = _ReadyLine(clock, 1 / 860)
    for k in range(1, 4000):
        clock.t = (k // 7 + 1) * 7 * period + 1e-7 * (k % 7)
        line.pulse()
    assert line.period == pytest.approx(period, rel=1e-4)
    # pulses on time give or take a tenth of a period, 5 % of them lost
    clock, rng = SteppedClock(), random.Random(1)
    line = _ReadyLine(clock, 1 / 860)
    for k in range(1, 4000):
        if rng.random() >= 0.05:
            clock.t = (k + rng.uniform(0.0, 0.1)) * period
            line.pulse()
    assert line.period == pytest.approx(period, rel=1e-3)


def test_slot_grid_puts_each_value_in_the_slot_of_its_conversion() -> None:
    """Two inputs: slots of four conversions. Passes the host was late for take five or more;
    the slots they overran are missed, a value lands in the slot nearest its conversion (less
    two for the second input), and lost pulses still count as conversions."""
    period = 0.01
    # each pass: the conversion (= its value) read for each input, None for no pulse
    passes: list[tuple[int | None, int]] = [(0, 2), (4, 6), (9, 11), (14, 17), (None, 21)]
    passes += [(30, 32), (36, 40), (42, 44)]  # (22..29: a pass that saw no pulse at all)
    passes += [(48 + 4 * j, 50 + 4 * j) for j in range(25)]  # three pulses before 48 lost
    grid, frames = _SlotGrid(2), []
    for first, second in passes:
        lost = 3 if second >= 50 else 0
        pulses = [None if c is None else (c + 1 - lost, c * period) for c in (first, second)]
        grid.place(pulses, np.array([np.nan if first is None else first, second]), period)
        while (frame := grid.take()) is not None:
            frames.append(frame)
    while (frame := grid.flush()) is not None:
        frames.append(frame)
    rows = frame_rows(frames)
    got = {
        int(row): [None if np.isnan(v) else int(v) for v in f.values]
        for row, f in zip(rows, frames, strict=True)
    }
    expected = {0: [0, 2], 1: [4, 6], 2: [9, 11], 4: [14, 17], 5: [None, 21], 8: [30, 32]}
    expected |= {9: [36, None], 10: [None, 40], 11: [42, 44]}
    expected |= {12 + j: [48 + 4 * j, 50 + 4 * j] for j in range(25)}
    assert got == expected  # rows 3, 6 and 7: missed (NaN rows)
    assert [f.t for f in frames] == pytest.approx(4 * period * rows)  # each slot's own time


# ---- acquisition through the simulated chip -------------------------------------------------


@dataclass
class Run:
    """One acquisition through the simulated chip: what the source gave, and the chip's log."""

    source: RecordingSource
    blocks: list[SampleBlock]
    log: list[Conversion]

    @property
    def samples(self) -> np.ndarray:
        return check_blocks(self.blocks, self.source)

    @property
    def times(self) -> np.ndarray:
        return np.array([f.t for f in self.source.frames])

    def conversions(self, first_t: float, last_t: float) -> list[Conversion]:
        first, last = conversion_at(self.log, first_t), conversion_at(self.log, last_t)
        return self.log[self.log.index(first) : self.log.index(last) + 1]


def chip_run(
    pins: MockFactory,
    signal: np.ndarray,
    *,
    wiring: Sequence[int | None],
    clock: Clock | None = None,
    rdy: bool = True,
    faults: Sequence[InputFault] = (),
    sim: dict[str, float] | None = None,
    bus_factory: bool = False,
    source_type: type[RecordingSource] = RecordingSource,
    **source_options: object,
) -> Run:
    """Acquire the whole signal through the simulated chip, on a virtual clock unless given."""
    pins.reset()
    clock = clock or VirtualClock()
    ready_pin = pins.pin(READY_GPIO) if rdy else None
    with simulated_chip(
        signal, clock, wiring=wiring, ready_pin=ready_pin, faults=faults, **(sim or {})
    ) as bus:
        source = source_type(
            (lambda: bus) if bus_factory else bus,
            ready_pin=READY_GPIO if rdy else None,
            clock=clock,
            is_finished=bus.finished.is_set,
            **source_options,
        )
        blocks = acquire(source)
        log = list(bus.conversions)
        if bus_factory:
            with pytest.raises(OSError):
                bus.read_i2c_block_data(0x48, 0, 2)  # the source closed the bus it opened
    return Run(source, blocks, log)


def test_single_input_sine_comes_back_exactly_at_the_chip_rate(pins: MockFactory) -> None:
    data_rate, clock_error, pga = 128, 0.07, 4.096
    true_fs = data_rate * (1 + clock_error)
    signal = sines(3.0, (5.0, 1000.0))  # 1 V amplitude around 1.65 V
    run = chip_run(
        pins,
        signal,
        wiring=[0, None, None, None],
        sim={"clock_error": clock_error},
        inputs=[("calf", "AIN0")],
        pga=pga,
        data_rate=data_rate,
        block_frames=64,
    )
    source, samples, times, lsb = run.source, run.samples, run.times, lsb_volts(pga)
    assert source.nominal_fs == data_rate
    for frame in source.frames:  # each value is exactly the conversion whose pulse was read
        conversion = conversion_at(run.log, frame.t)
        assert frame.t == conversion.t  # read at its pulse, on the virtual clock
        assert frame.values[0] == conversion.code * lsb
        assert abs(frame.values[0] - pin_volts(signal, conversion.t, 0)) <= lsb
    assert np.all(np.diff(times) > 0) and 2.9 < times[-1] < 3.1
    assert not np.isnan(samples).any()  # every conversion kept
    assert len(samples) == len(run.conversions(times[0], times[-1]))
    assert run.blocks[-1].fs_estimate == pytest.approx(true_fs, rel=1e-6)


def test_the_same_run_gives_the_same_samples_on_the_virtual_clock(pins: MockFactory) -> None:
    signal = sines(2.0, (3.0, 800.0), (7.0, 500.0))
    options = {"inputs": [("left", "AIN0-AIN3"), ("right", "AIN1-AIN3")], "data_rate": 860}
    runs = [
        chip_run(pins, signal, wiring=[0, 1, None, None], sim={"clock_error": 0.04}, **options)
        for _ in range(2)
    ]
    first, second = (run.samples for run in runs)
    assert np.array_equal(first, second) and not np.isnan(first).any()
    assert np.array_equal(runs[0].times, runs[1].times)


def check_mux_readings(run: Run, signal: np.ndarray, pga: float, mux: Sequence[str]) -> int:
    """Every value read is exactly the conversion of its own input whose RDY pulse was read, within
    1 LSB of that input at the conversion's time; returns how many values there were."""
    lsb, codes = lsb_volts(pga), [MUX[name] for name in mux]
    values = 0
    for channel, t, value in run.source.readings:
        if np.isnan(value):
            continue
        values += 1
        conversion = conversion_at(run.log, t)  # the one whose RDY pulse was read
        assert conversion.mux == codes[channel], f"{channel} at {t}: another input's conversion"
        assert value == conversion.code * lsb
        assert abs(value - (pin_volts(signal, conversion.t, channel) - FRONT_END.offset_v)) <= lsb
    return values


@dataclass
class TimeBase:
    """Rows of a MUX run against the chip's conversions."""

    rows: int  # frames and missed slots (NaN rows)
    due: float  # slots in the conversion time from the first to the last pulse read, + 1
    worst_offset: float  # largest |a value's conversion - its row's|, in slots

    @property
    def covers_due(self) -> bool:
        """One row per slot due, within 2 rows and 1 % (a host stall can make the driver count
        a conversion too many or too few)."""
        return abs(self.rows - self.due) <= 2 + 0.01 * self.due


def check_time_base(run: Run, conversion_rate: float, pga: float, mux: Sequence[str]) -> TimeBase:
    """Rows on the slot grid. The chip's log holds every conversion in order; slot 0 begins at
    the conversion of the first pulse the driver read (less 2 per input before its input), and
    input i of row r is due 2n r + 2i conversions later. Every value must be a conversion of its
    input near there: the driver puts it in the slot nearest its conversion (half a slot off at
    most), a slot further when a stall made it miscount the conversions in between."""
    lsb, codes, per_slot = lsb_volts(pga), [MUX[name] for name in mux], 2 * len(mux)
    log, frames, samples = run.log, run.source.frames, run.samples
    rows = frame_rows(frames)
    assert len(samples) == rows[-1] + 1
    published = [c.published for c in log]
    pulses = [
        (c, bisect.bisect_right(published, t) - 1) for c, t, _ in run.source.readings if t > 0
    ]
    (c0, k0), (c1, k1) = pulses[0], pulses[-1]
    elapsed_s = log[k1].t - log[k0].t
    due = (elapsed_s * conversion_rate - 2 * (c1 - c0)) / per_slot + 1
    origin = k0 - 2 * c0
    worst = 0.0
    for row, frame in zip(rows, frames, strict=True):
        for channel, value in enumerate(frame.values):
            if np.isnan(value):
                continue
            assert samples[row, channel] == value
            due_at = origin + per_slot * row + 2 * channel
            near = range(max(0, due_at - 3 * per_slot), min(len(log), due_at + 3 * per_slot + 1))
            offsets = [
                abs(k - due_at) / per_slot
                for k in near
                if log[k].mux == codes[channel] and log[k].code * lsb == value
            ]
            assert offsets, f"row {row} ({channel}): {value} V is no conversion near its time"
            worst = max(worst, min(offsets))
    return TimeBase(len(samples), due, worst)


def test_two_inputs_by_mux_switching_each_get_their_own_signal(pins: MockFactory) -> None:
    data_rate, clock_error, pga = 128, -0.05, 1.024
    conversion_rate = data_rate * (1 + clock_error)
    signal = sines(3.0, (3.0, 800.0), (7.0, 500.0))
    mux = {"left": "AIN0-AIN3", "right": "AIN1-AIN3"}  # AIN3: the reference, at the bias
    run = chip_run(
        pins,
        signal,
        wiring=[0, 1, None, None],
        sim={"clock_error": clock_error},
        inputs=list(mux.items()),
        pga=pga,
        data_rate=data_rate,
        block_frames=32,
    )
    source, samples = run.source, run.samples
    assert source.nominal_fs == data_rate / 4  # two conversions per channel per frame
    passes = len(source.readings) // 2  # every pass reads both inputs, in order
    assert [c for c, _, _ in source.readings[: 2 * passes]] == [0, 1] * passes
    check_mux_readings(run, signal, pga, list(mux.values()))  # each value exactly
    left, right = samples.T
    assert not np.isnan(samples).any()  # in time for every switch: every slot kept
    assert abs(np.corrcoef(left, right)[0, 1]) < 0.3  # two signals, not one
    base = check_time_base(run, conversion_rate, pga, list(mux.values()))
    assert abs(base.rows - base.due) <= 1 and base.worst_offset == 0
    per_channel = conversion_rate / 4
    times = run.times
    assert (len(samples) - 1) / (times[-1] - times[0]) == pytest.approx(per_channel, rel=1e-6)
    assert run.blocks[-1].fs_estimate == pytest.approx(per_channel, rel=1e-6)


@pytest.mark.parametrize(("data_rate", "late_share"), [(128, 0.3), (860, 0.5)])
def test_two_inputs_keep_every_slot_when_the_host_is_late(
    pins: MockFactory, data_rate: int, late_share: float
) -> None:
    """A host late for MUX switches (made late on purpose: before a seeded share of its switches
    it dawdles 1.5 conversion periods): the passes it was late for take more than four
    conversions, and the slots they overran are NaN rows. Rows still cover the elapsed conversion
    time slot for slot, and every value is a real conversion of its input, in the row of its
    time, with bus errors on top."""
    clock_error, pga = 0.04, 2.048
    conversion_rate = data_rate * (1 + clock_error)
    signal = sines(4.0, (3.0, 800.0), (7.0, 500.0))
    mux = ("AIN0-AIN3", "AIN1-AIN3")
    run = chip_run(
        pins,
        signal,
        wiring=[0, 1, None, None],
        sim={"clock_error": clock_error, "bus_error_rate": 0.05, "seed": 5},
        source_type=LateSource,
        inputs=[("left", mux[0]), ("right", mux[1])],
        pga=pga,
        data_rate=data_rate,
        retry=RetryPolicy(attempts=2, first_wait_s=0.0001),
        late_share=late_share,
        block_frames=64,
    )
    source, frames = run.source, run.source.frames
    assert source.stats.bus_errors > 0
    assert source.late_writes > 0.2 * len(source.readings)
    assert check_mux_readings(run, signal, pga, mux) > 0  # each value exactly
    base = check_time_base(run, conversion_rate, pga, mux)
    missed_slots = sum(f.missed_before for f in frames)
    assert missed_slots > 0.05 * base.rows  # the lateness made gaps ...
    assert source.stats.missed_slots == missed_slots
    assert base.covers_due, f"{base.rows} rows for {base.due:.1f} slots"  # ... not a shorter night
    assert base.worst_offset <= 1.0


def test_in_real_time_every_value_is_exact_and_the_share_kept_is_reported(
    pins: MockFactory,
) -> None:
    """The chip and the driver on real time (threads, however busy the host): nothing is checked
    that depends on the host keeping up, nothing is skipped. Every value is the conversion of
    its own pulse, every frame's slot is accounted for, and what was kept is what is reported."""
    data_rate, clock_error, pga = 250, 0.04, 4.096
    signal = sines(3.0, (5.0, 1000.0))
    run = chip_run(
        pins,
        signal,
        wiring=[0, None, None, None],
        clock=ScaledClock(1.0),
        sim={"clock_error": clock_error},
        inputs=[("calf", "AIN0")],
        pga=pga,
        data_rate=data_rate,
        block_frames=64,
    )
    source, samples, lsb = run.source, run.samples, lsb_volts(pga)
    values = 0
    for frame in source.frames:
        if np.isnan(frame.values[0]):
            continue
        values += 1
        conversion = conversion_at(run.log, frame.t)
        assert frame.values[0] == conversion.code * lsb
        assert abs(frame.values[0] - pin_volts(signal, conversion.t, 0)) <= lsb
    missing = int(np.isnan(samples).any(axis=1).sum())
    assert missing == source.stats.missing_frames and values == len(samples) - missing
    assert source.stats.missed_slots == sum(f.missed_before for f in source.frames)
    assert values / len(samples) > 0.5  # a sanity floor: the loop works at all


def test_faults_become_nan_and_nothing_is_invented(pins: MockFactory) -> None:
    data_rate, clock_error, pga = 128, 0.03, 2.048
    signal = sines(3.0, (5.0, 300.0))
    railed = InputFault("railed", input=0, start_s=1.0, end_s=1.6)  # 3.3 V: beyond +-2.048 V
    faults = {"bus_error_rate": 0.05, "missed_ready_rate": 0.05, "seed": 7}
    run = chip_run(
        pins,
        signal,
        wiring=[0, None, None, None],
        faults=[railed],
        sim={"clock_error": clock_error, **faults},
        inputs=[("calf", "AIN0")],
        pga=pga,
        data_rate=data_rate,
        retry=RetryPolicy(attempts=2, first_wait_s=0.0001),
        block_frames=64,
    )
    source, samples, times, log, lsb = run.source, run.samples, run.times, run.log, lsb_volts(pga)
    assert source.stats.bus_errors > 0
    assert sum(not c.ready_sent for c in log) > 0
    assert times[-1] > 2.8  # kept going to the end of the signal
    nan_rows = int(np.isnan(samples[:, 0]).sum())
    assert nan_rows == source.stats.missing_frames
    published = [c.published for c in log]
    railed_values = exact = values = 0
    for frame in source.frames:
        if np.isnan(frame.values[0]):
            continue
        values += 1
        k = bisect.bisect_right(published, frame.t) - 1
        # Never invented: the value is a conversion of this input made about then. (A lost RDY
        # pulse in a burst of late ones can make it the next conversion: rare, not detectable.)
        nearby = [c for c in log[k - 1 : k + 3] if c.code * lsb == frame.values[0]]
        assert nearby, f"{frame.values[0]} V at {frame.t} is no conversion of the input"
        exact += log[k] in nearby
        conversion = nearby[0]
        if railed.start_s <= conversion.t < railed.end_s:
            assert conversion.code == 0x7FFF  # clipped at full scale
            railed_values += 1
        else:
            assert abs(frame.values[0] - pin_volts(signal, conversion.t, 0)) <= lsb
    assert railed_values > 0.5 * 0.6 * data_rate
    assert exact == values  # on the virtual clock no pulse is late: every read is its own
    window = run.conversions(times[0], times[-1])
    lost = sum(not c.ready_sent for c in window)
    # One row per conversion, lost pulses' ones as NaN (but a pulse lost among the last few
    # frames, flushed at the end, cannot be told from a late one: it is not counted).
    assert len(window) - 2 <= len(samples) <= len(window)
    assert lost - 2 <= nan_rows < lost + 0.1 * len(window)  # and reads that failed every retry


def test_polled_single_shot_without_ready_pin(pins: MockFactory) -> None:
    data_rate, pga = 64, 4.096
    signal = sines(3.0, (2.0, 900.0), (4.0, 600.0))
    run = chip_run(
        pins,
        signal,
        wiring=[0, 1, None, None],
        rdy=False,
        sim={"clock_error": -0.08},
        bus_factory=True,  # the source owns the bus: it closes it
        inputs=[("a", "AIN0"), ("b", "AIN1")],
        pga=pga,
        data_rate=data_rate,
        poll_overhead_s=0.005,
        block_frames=32,
    )
    source, samples, lsb = run.source, run.samples, lsb_volts(pga)
    assert source.nominal_fs == pytest.approx(1 / (2 * (1.25 / data_rate + 0.005)))
    for channel, t, value in source.readings:
        if np.isnan(value):
            continue
        conversion = conversion_at(run.log, t)  # the single shot whose OS bit was seen
        assert conversion.mux == MUX[("AIN0", "AIN1")[channel]]
        assert value == conversion.code * lsb
        assert abs(value - pin_volts(signal, conversion.t, channel)) <= lsb
    assert run.blocks[-1].fs_estimate == pytest.approx(source.nominal_fs, rel=1e-3)
    assert not np.isnan(samples).any()  # in time for every slot of the polling grid


def test_no_ready_pulses_is_a_clear_error_not_a_hang(
    pins: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    signal = np.zeros((int(60 * SIGNAL_FS), 1))
    clock = VirtualClock()
    with simulated_chip(signal, clock, wiring=[0, None, None, None]) as bus:  # RDY not wired
        source = ADS1115Source(
            bus,
            inputs=[("calf", "AIN0")],
            data_rate=860,
            ready_pin=READY_GPIO,
            clock=clock,
            is_finished=bus.finished.is_set,
        )
        with pytest.raises(AcquisitionError, match="ALERT/RDY"):
            acquire(source)
    resends = [r for r in caplog.records if "re-sending the configuration" in r.getMessage()]
    assert len(resends) > 100  # every 20 periods for 5 s ...
    assert all(getattr(r, COALESCE) == "ads1115 silent" for r in resends)  # ... one log line
    assert 5.0 <= clock.monotonic() < 5.1  # gave up after 5 s of silence (virtual: no waiting)
