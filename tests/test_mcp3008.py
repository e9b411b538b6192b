"""The MCP3008 driver against the simulated chip: bytes on the bus, waveforms, faults, pacing."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from hardware.acquisition import AcquisitionError, RetryPolicy, SampleBlock
from hardware.analog_inputs import AnalogInputs, InputFault, SignalPlayer
from hardware.clock import ScaledClock, VirtualClock
from hardware.front_end import FrontEnd
from hardware.mcp3008 import (
    MCP3008,
    InputSelect,
    MCP3008ReplyError,
    MCP3008Source,
    decode,
    differential_field,
    open_spi,
    parse_input,
    request_bytes,
)
from hardware.mcp3008_sim import SimulatedMCP3008SPI, SPIConfigError, max_clock_hz

VREF = 3.3
LSB = VREF / 1024
SIGNAL_FS = 10_000.0
FRONT_END = FrontEnd()  # gain 1000, 1.65 V bias, rails 0 .. 3.3 V
PAIRS = ["CH0-CH1", "CH1-CH0", "CH2-CH3", "CH3-CH2", "CH4-CH5", "CH5-CH4", "CH6-CH7", "CH7-CH6"]


class Recording:
    """A known electrode signal (uV, SIGNAL_FS) and the volts it puts on the chip's pins."""

    def __init__(self, columns: list[np.ndarray], faults: tuple[InputFault, ...] = ()) -> None:
        self.uv = np.column_stack(columns)
        self.faults = faults

    @classmethod
    def sines(cls, seconds: float, faults: tuple[InputFault, ...] = ()) -> Recording:
        """Channel 0: 7 Hz, 1.2 V peak; channel 1: 3 Hz, 0.8 V peak; both around vref / 2."""
        t = np.arange(round(seconds * SIGNAL_FS)) / SIGNAL_FS
        volts_to_uv = 1e6 / FRONT_END.gain
        return cls(
            [
                1.2 * volts_to_uv * np.sin(2 * np.pi * 7 * t),
                0.8 * volts_to_uv * np.sin(2 * np.pi * 3 * t + 1.0),
            ],
            faults,
        )

    def inputs(self) -> AnalogInputs:
        player = SignalPlayer(self._blocks(), SIGNAL_FS, ["a", "b"])
        return AnalogInputs(player, FRONT_END, [0, 1, None, None], self.faults)

    def _blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.uv), 1000):
            yield self.uv[start : start + 1000]

    def volts(self, t: np.ndarray, pin: int) -> np.ndarray:
        """True volts on `pin` at signal times `t` (sample and hold, as the player does)."""
        t = np.asarray(t, dtype=float)
        index = np.minimum((t * SIGNAL_FS + 1e-9).astype(int), len(self.uv) - 1)
        out = FRONT_END.volts(self.uv[index, pin])
        for fault in self.faults:
            inside = (fault.input == pin) & (t >= fault.start_s) & (t < fault.end_s)
            if fault.kind == "railed":
                out = np.where(inside, FRONT_END.rails_v[1 if fault.rail == "high" else 0], out)
            elif fault.kind == "electrode_off":
                out = np.where(inside, FRONT_END.offset_v, out)
        return out


def make_sim(
    recording: Recording, clock: object, speed_hz: int = 1_350_000, **options: object
) -> SimulatedMCP3008SPI:
    sim = SimulatedMCP3008SPI(recording.inputs(), clock, vref=VREF, **options)  # type: ignore[arg-type]
    sim.open(0, 0)
    sim.max_speed_hz = speed_hz
    return sim


def acquire(source: MCP3008Source) -> list[SampleBlock]:
    with source:
        source.start()
        return list(source.blocks(timeout=10))


def stacked(blocks: list[SampleBlock]) -> np.ndarray:
    assert [b.first_index for b in blocks] == list(np.cumsum([0] + [b.n for b in blocks[:-1]]))
    return np.vstack([b.samples for b in blocks])


def constant_inputs(volts: list[float]) -> AnalogInputs:
    """Pins held at fixed volts (front end with unit gain and no bias, so uV in = 1e-6 V out)."""
    level = np.array(volts) * 1e6
    player = SignalPlayer(iter([np.tile(level, (100_000, 1))]), SIGNAL_FS, list("abcdefgh"))
    return AnalogInputs(player, FrontEnd(gain=1.0, offset_v=0.0), list(range(len(volts))))


def opened(sim: SimulatedMCP3008SPI, speed_hz: int = 1_350_000) -> SimulatedMCP3008SPI:
    sim.open(0, 0)
    sim.max_speed_hz = speed_hz
    return sim


# ---- bytes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", range(8))
def test_request_bytes_single_ended(channel: int) -> None:
    assert request_bytes(channel) == [0x01, 0x80 | channel << 4, 0x00]


def test_request_bytes_pseudo_differential() -> None:
    for field, name in enumerate(PAIRS):
        select = parse_input(name)
        assert select == InputSelect(field, differential=True)
        assert str(select) == name
        assert request_bytes(select.channel, differential=True) == [0x01, field << 4, 0x00]
    assert differential_field(7, 6) == 7


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ([0x00, 0x03, 0xFF], 1023),
        ([0x00, 0x02, 0x00], 512),
        ([0x00, 0x00, 0x00], 0),
        ([0x00, 0x01, 0x23], 0x123),
        ([0xFF, 0xF9, 0x23], 0x123),  # undriven bits read high: masked off
    ],
)
def test_decode(reply: list[int], code: int) -> None:
    assert decode(reply) == code


@pytest.mark.parametrize("bad", [8, -1, 16, True, 1.0, "0"])
def test_bad_channels_raise(bad: object) -> None:
    with pytest.raises(ValueError, match="channel"):
        request_bytes(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["CH8", "CH0-CH2", "CH1-CH2", "CH3-CH3", "ch", "CH0-CH1-CH2", 9])
def test_bad_inputs_raise(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_input(bad)  # type: ignore[arg-type]


def test_decode_needs_three_bytes() -> None:
    with pytest.raises(ValueError, match="3 bytes"):
        decode([0x03, 0xFF])


# ---- the simulated chip on the bus --------------------------------------------------------------

PIN_VOLTS = [0.0, 0.4, 1.0, 1.7, 2.2, 2.9, 3.3, 3.2999]


def expected_code(volts: float) -> int:
    return min(1023, max(0, int(np.floor(volts * 1024 / VREF))))


def test_driver_traffic_single_ended() -> None:
    sim = opened(SimulatedMCP3008SPI(constant_inputs(PIN_VOLTS), VirtualClock(), vref=VREF))
    adc = MCP3008(sim)
    codes = [adc.read_raw(channel) for channel in range(8)]
    assert [list(t.tx) for t in sim.transfers] == [[1, 0x80 | ch << 4, 0] for ch in range(8)]
    assert codes == [expected_code(v) for v in PIN_VOLTS]
    assert codes[0] == 0 and codes[6] == 1023  # the ends of the range clip, never wrap
    assert all(t.rx[0] == 0 and not t.rx[1] & 0xFC for t in sim.transfers)  # ? bits, null bit


def test_driver_traffic_pseudo_differential() -> None:
    sim = opened(SimulatedMCP3008SPI(constant_inputs(PIN_VOLTS), VirtualClock(), vref=VREF))
    adc = MCP3008(sim)
    codes = [adc.read_raw(field, differential=True) for field in range(8)]
    assert [list(t.tx) for t in sim.transfers] == [[1, field << 4, 0] for field in range(8)]
    for field, code in enumerate(codes):
        plus, minus = field, field ^ 1
        assert code == expected_code(PIN_VOLTS[plus] - PIN_VOLTS[minus])
    assert codes[0] == 0  # IN+ below IN-: code 0
    assert codes[1] == expected_code(0.4)


def test_reply_bits_follow_the_datasheet() -> None:
    sim = opened(SimulatedMCP3008SPI(constant_inputs([2.0]), VirtualClock(), vref=VREF, hi_z=1))
    code = expected_code(2.0)
    rx = sim.xfer2([0x01, 0x80, 0x00])
    assert rx == [0xFF, 0xF8 | code >> 8, code & 0xFF]  # ????????, ?????0 B9 B8, B7..B0
    assert MCP3008(sim).read_raw(0) == code
    # Start bit in the first byte (leading zeros optional): null at clock 6, B9 at 7 ... B0 at 16.
    rx = sim.xfer2([0b1100_0000, 0x00, 0x00])
    assert (rx[0] & 0x01) << 9 | rx[1] << 1 | rx[2] >> 7 == code
    assert rx[0] >> 1 == 0b111_1110  # six undriven clocks read high, then the null bit
    # Clocks after B0 bring B1..B9 LSB first, then zeros.
    rx = sim.xfer2([0x01, 0x80, 0x00, 0x00, 0x00])
    lsb_first = int(f"{rx[3]:08b}{rx[4]:08b}"[:9][::-1], 2)
    assert lsb_first == code >> 1 and rx[4] & 0x7F == 0
    # No start bit: DOUT never driven; no conversion.
    assert sim.readbytes(3) == [0xFF, 0xFF, 0xFF]
    assert sim.transfers[-1].conversion is None


def test_driver_rejects_a_reply_with_the_null_bit_high() -> None:
    class NoChip:  # MISO floating high, nothing answering
        max_speed_hz = 1_000_000
        mode = 0

        def xfer2(self, values: list[int]) -> list[int]:
            return [0xFF] * len(values)

        def close(self) -> None:
            pass

    with pytest.raises(MCP3008ReplyError, match="null bit") as caught:
        MCP3008(NoChip()).read_raw(0)
    assert isinstance(caught.value, OSError)  # so the retry policy counts it as a bus error


def test_sim_refuses_what_a_chip_cannot_do() -> None:
    sim = SimulatedMCP3008SPI(constant_inputs([1.0]), VirtualClock(), vref=VREF, vdd=3.3)
    with pytest.raises(OSError) as closed:
        sim.max_speed_hz = 1_000_000  # spidev: settings only after open()
    assert closed.value.errno == errno.EBADF
    sim.open(0, 0)
    assert sim.max_speed_hz == 125_000_000  # what a Pi reports until it is set
    with pytest.raises(SPIConfigError, match="125000000 Hz"):
        sim.xfer2([1, 0x80, 0])
    with pytest.raises(ValueError, match="too fast"):
        MCP3008(sim)
    sim.max_speed_hz = 1_350_000
    assert decode(sim.xfer2([1, 0x80, 0])) == expected_code(1.0)
    with pytest.raises(SPIConfigError):
        sim.xfer2([1, 0x80, 0], speed_hz=3_000_000)  # fine at 5 V, too fast at 3.3 V
    sim.mode = 1
    with pytest.raises(SPIConfigError, match="mode"):
        sim.xfer2([1, 0x80, 0])
    assert max_clock_hz(2.7) == 1_350_000 and max_clock_hz(5.0) == 3_600_000
    lax = opened(
        SimulatedMCP3008SPI(constant_inputs([1.0]), VirtualClock(), vref=VREF, strict=False),
        speed_hz=8_000_000,
    )
    assert len(lax.xfer2([1, 0x80, 0])) == 3 and lax.transfers[-1].error  # garbage, no raise


def test_sim_bus_errors_are_eio() -> None:
    sim = opened(
        SimulatedMCP3008SPI(constant_inputs([1.0]), VirtualClock(), vref=VREF, bus_error_rate=1.0)
    )
    with pytest.raises(OSError) as caught:
        sim.xfer2([1, 0x80, 0])
    assert (caught.value.errno, caught.value.strerror) == (5, "Input/output error")


def test_open_spi_explains_a_missing_spidev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spidev", None)
    with pytest.raises(ImportError, match=r"pip install 'crampwatch\[pi\]'"):
        open_spi()


def test_open_spi_checks_the_clock_before_touching_the_bus() -> None:
    with pytest.raises(ValueError, match="max_speed_hz"):
        open_spi(max_speed_hz=125_000_000)
    with pytest.raises(ValueError, match="mode"):
        open_spi(mode=1)


# ---- the acquisition source ---------------------------------------------------------------------

CHANNELS = [("left", 0), ("right", "CH1")]


def check_within_one_lsb(recording: Recording, samples: np.ndarray, t: np.ndarray) -> None:
    """Every present value is the code step holding the true signal at time t."""
    for pin in range(samples.shape[1]):
        present = ~np.isnan(samples[:, pin])
        error = recording.volts(t[present], pin) - samples[present, pin]
        assert np.all((error >= -1e-12) & (error <= LSB + 1e-12)), np.abs(error).max() / LSB


def test_known_waveform_comes_back_within_one_lsb_at_its_timestamps() -> None:
    recording = Recording.sines(2.0)
    clock = VirtualClock()
    sim = make_sim(recording, clock)
    source = MCP3008Source(
        sim, CHANNELS, vref=VREF, fs=1000, clock=clock, is_finished=lambda: sim.finished
    )
    blocks = acquire(source)
    samples = stacked(blocks)
    assert samples.shape == (2000, 2) and not np.isnan(samples).any()
    check_within_one_lsb(recording, samples, np.arange(2000) / 1000)
    assert np.ptp(samples[:, 0]) > 2.3 and np.ptp(samples[:, 1]) > 1.5  # each its own signal
    for block in blocks:  # frame i is on the clock at its slot
        assert block.t_first == pytest.approx(block.first_index / 1000, abs=1e-9)
        assert block.t_last == pytest.approx((block.first_index + block.n - 1) / 1000, abs=1e-9)
    assert blocks[-1].fs_estimate == pytest.approx(1000, rel=1e-6)
    assert source.stats.bus_errors == 0 and source.stats.missing_frames == 0


def test_real_time_pacing_on_a_scaled_clock() -> None:
    recording = Recording.sines(2.0)
    clock = ScaledClock(speed=2.0)
    sim = make_sim(recording, clock)
    source = MCP3008Source(
        sim, CHANNELS, vref=VREF, fs=1000, clock=clock, is_finished=lambda: sim.finished
    )
    t_before = clock.monotonic()
    blocks = acquire(source)
    t_after = clock.monotonic()
    samples = stacked(blocks)
    fs = 1000
    # Slots are taken on the clock, so the estimate holds even when the host lags (then slots
    # become gaps); a starved scheduler can still stretch the last block a little.
    assert blocks[-1].fs_estimate == pytest.approx(fs, rel=0.03)
    assert len(samples) == pytest.approx((blocks[-1].t_last - source.t_start) * fs, abs=2)
    # Slots the thread was not scheduled in become gaps: on a loaded CPU there can be many.
    assert np.isnan(samples).any(axis=1).mean() < 0.8
    for block in blocks:  # timestamps are clock readings, each in its frame's slot
        assert t_before <= block.t_first <= block.t_last <= t_after
        # t_last is the last converted frame's time: a block may end with a missed slot (a row
        # of NaN with no reading), which a host late at the very end leaves.
        converted = np.flatnonzero(~np.isnan(block.samples).all(axis=1))
        due = source.t_start + (block.first_index + converted[-1]) / fs
        assert -1e-9 <= block.t_last - due < 1 / fs
    # Each value is exactly what the chip converted, and that is the signal when it converted.
    conversions = [t.conversion for t in sim.transfers if t.conversion is not None]
    present = samples[~np.isnan(samples)]  # row-major: frame by frame, left then right
    dropped = len(conversions) - len(present)  # a frame the signal ended during is let go
    assert dropped in (0, len(CHANNELS))
    assert np.array_equal(present, [c.code * LSB for c in conversions[: len(present)]])
    for pin in (0, 1):
        # A lagging host can convert once more after the signal ran out (the pins then hold
        # what they had at the last conversion): there is no signal to compare that one with.
        duration_s = len(recording.uv) / SIGNAL_FS
        mine = [c for c in conversions if c.channel == pin and c.t < duration_s]
        truth = recording.volts(np.array([c.t for c in mine]), pin)
        error = truth - np.array([c.code * LSB for c in mine])
        assert np.all((error >= -1e-12) & (error < LSB))


def test_bus_errors_and_input_faults_leave_gaps_never_inventions() -> None:
    faults = (
        InputFault("railed", input=1, start_s=0.5, end_s=0.8, rail="high"),
        InputFault("electrode_off", input=0, start_s=1.0, end_s=1.3),
    )
    recording = Recording.sines(2.0, faults)
    clock = VirtualClock()
    sim = make_sim(recording, clock, bus_error_rate=0.05, seed=3)
    source = MCP3008Source(
        sim,
        CHANNELS,
        vref=VREF,
        fs=1000,
        clock=clock,
        retry=RetryPolicy(attempts=2),
        is_finished=lambda: sim.finished,
    )
    samples = stacked(acquire(source))
    t = np.arange(len(samples)) / 1000
    assert len(samples) == 2000  # kept going to the end of the signal
    assert source.stats.bus_errors == sim.bus_errors > 0
    assert source.stats.retries > 0
    failed = np.isnan(samples)
    assert 0 < failed.sum() < 0.01 * samples.size  # both tries failed: NaN, not a guess
    conversions = [x.conversion for x in sim.transfers if x.conversion is not None]
    assert failed.size - failed.sum() == len(conversions)
    check_within_one_lsb(recording, samples, t)
    railed = (t >= 0.5) & (t < 0.8) & ~failed[:, 1]
    assert np.all(samples[railed, 1] == 1023 * LSB)
    off = (t >= 1.0) & (t < 1.3) & ~failed[:, 0]
    assert np.all(np.abs(samples[off, 0] - FRONT_END.offset_v) < LSB)  # flat at the bias


class Interfering:
    """Passes transfers to the simulated chip; runs `action` just before transfer number `at`."""

    def __init__(self, sim: SimulatedMCP3008SPI, at: int, action: Callable[[], None]) -> None:
        self.sim, self.at, self.action = sim, at, action
        self.max_speed_hz, self.mode = sim.max_speed_hz, sim.mode
        self.count = 0

    def xfer2(self, values: list[int]) -> list[int]:
        self.count += 1
        if self.count == self.at:
            self.action()
        return self.sim.xfer2(values)

    def close(self) -> None:
        self.sim.close()


@pytest.mark.parametrize(("stall_periods", "missed"), [(5.5, 4), (3.0, 2), (0.9, 0)])
def test_falling_behind_leaves_missed_slots_as_nan_rows(stall_periods: float, missed: int) -> None:
    recording = Recording.sines(1.0)
    clock = VirtualClock()
    sim = make_sim(recording, clock)
    bus = Interfering(sim, at=201, action=lambda: clock.sleep(stall_periods / 1000))  # frame 100
    source = MCP3008Source(
        lambda: bus, CHANNELS, vref=VREF, fs=1000, clock=clock, is_finished=lambda: sim.finished
    )
    samples = stacked(acquire(source))
    assert len(samples) == 1000  # slots stay on the clock: index i is due at i / fs
    gap = np.isnan(samples).all(axis=1)
    assert np.flatnonzero(gap).tolist() == list(range(101, 101 + missed))
    assert not np.isnan(samples[~gap]).any()
    assert source.stats.missing_frames == missed
    conversions = [x.conversion for x in sim.transfers if x.conversion is not None]
    assert np.array_equal(samples[~gap].ravel(), [c.code * LSB for c in conversions])


def test_a_stall_on_a_scaled_clock_becomes_a_gap_of_its_length() -> None:
    recording = Recording.sines(1.0)
    clock = ScaledClock(speed=2.0)
    sim = make_sim(recording, clock)
    bus = Interfering(sim, at=401, action=lambda: clock.sleep(0.0203))
    source = MCP3008Source(
        bus, CHANNELS, vref=VREF, fs=1000, clock=clock, is_finished=lambda: sim.finished
    )
    blocks = acquire(source)
    samples = stacked(blocks)
    gap = np.isnan(samples).all(axis=1)
    stalled = np.flatnonzero(~gap)[200]  # the frame whose first conversion was transfer 401
    after = np.flatnonzero(~gap[stalled + 1 :])[0]  # NaN rows before the next frame read
    assert 19 <= after < 60  # 20.3 periods late, less the frame being read; more if descheduled
    assert blocks[-1].fs_estimate == pytest.approx(1000, rel=0.01)


def test_a_misconfigured_bus_stops_acquisition_with_a_clear_error() -> None:
    recording = Recording.sines(1.0)
    clock = VirtualClock()
    sim = make_sim(recording, clock, speed_hz=125_000_000)
    with pytest.raises(ValueError, match="too fast"):
        MCP3008Source(sim, CHANNELS, clock=clock).open()
    sim = make_sim(recording, clock)

    def overclock() -> None:
        sim.max_speed_hz = 125_000_000

    bus = Interfering(sim, at=1001, action=overclock)  # changed under the running source
    source = MCP3008Source(bus, CHANNELS, clock=clock, is_finished=lambda: sim.finished)
    with source:
        source.start()
        read = []
        with pytest.raises(AcquisitionError, match="above the MCP3008"):
            for block in source.blocks(timeout=10):
                read.append(block)
    assert sum(block.n for block in read) == 500  # everything converted before it went wrong


def test_source_rejects_bad_configuration() -> None:
    sim = make_sim(Recording.sines(0.1), VirtualClock())
    with pytest.raises(ValueError, match="unique"):
        MCP3008Source(sim, [("a", 0), ("a", 1)])
    with pytest.raises(ValueError):
        MCP3008Source(sim, [("a", 8)])
    with pytest.raises(ValueError, match="sampling rate"):
        MCP3008Source(sim, CHANNELS, fs=0)
    with pytest.raises(ValueError, match="vref"):
        MCP3008Source(sim, CHANNELS, vref=-1)
