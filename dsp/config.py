"""One validated configuration for the whole DSP pipeline; every default comes from DESIGN.md."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

INPUT_MODES = ("raw", "envelope")
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]+")
INPUT_UNITS = ("counts", "V", "mV", "uV")
_UNIT_TO_VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6}


class ConfigError(ValueError):
    """A setting is wrong; the message names it, says what is wrong and what is allowed."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ScalingConfig:
    """How input values become microvolts at the electrodes.

    counts -> volts at the ADC input (``(counts - adc_zero_code) * adc_lsb_v``), V/mV/uV -> volts as they
    are; then ``uV = (volts - offset_v) / gain * 1e6``. `gain` is the analog front-end gain in front of
    the ADC (1 when the values already are at the electrodes).
    """

    units: Literal["counts", "V", "mV", "uV"] = "uV"
    adc_bits: int = 12
    adc_vref_v: float = 3.3
    adc_zero_code: float | None = None
    gain: float = 1.0
    offset_v: float = 0.0
    rails: tuple[float, float] | None = None

    def validate(self) -> None:
        _require(
            self.units in INPUT_UNITS, f"scaling.units is {self.units!r}; use one of {INPUT_UNITS}"
        )
        _require(1 <= self.adc_bits <= 32, f"scaling.adc_bits is {self.adc_bits}; use 1..32")
        _require(self.adc_vref_v > 0, f"scaling.adc_vref_v is {self.adc_vref_v}; it must be > 0")
        _require(
            math.isfinite(self.gain) and self.gain > 0,
            f"scaling.gain is {self.gain}; it must be > 0",
        )
        _require(math.isfinite(self.offset_v), f"scaling.offset_v is {self.offset_v}; give volts")
        if self.rails is not None:
            lo, hi = self.rails
            _require(lo < hi, f"scaling.rails {self.rails} must be (low, high) with low < high")

    @property
    def adc_lsb_v(self) -> float:
        return self.adc_vref_v / (2**self.adc_bits)

    @property
    def input_rails(self) -> tuple[float, float] | None:
        """The lowest and highest input value the converter can give, in input units (None: unknown)."""
        if self.rails is not None:
            return self.rails
        if self.units == "counts":
            return (0.0, float(2**self.adc_bits - 1))
        return None

    def factor_and_offset(self) -> tuple[float, float]:
        """(factor, offset) with ``uV = input * factor - offset``, for one multiply-add per sample."""
        if self.units == "counts":
            zero = self.adc_zero_code if self.adc_zero_code is not None else 0.0
            volts_per_unit, zero_v = self.adc_lsb_v, zero * self.adc_lsb_v
        else:
            volts_per_unit, zero_v = _UNIT_TO_VOLTS[self.units], 0.0
        factor = volts_per_unit / self.gain * 1e6
        offset = (zero_v + self.offset_v) / self.gain * 1e6
        return factor, offset


@dataclass(frozen=True)
class FilterConfig:
    """Band-pass (Butterworth, second-order sections) and mains notch for raw-mode input."""

    band_low_hz: float = 20.0
    band_high_hz: float = 450.0
    band_high_fraction_of_fs: float = 0.45
    order: int = 4
    notch_hz: float | None = 50.0
    notch_q: float = 30.0
    notch_harmonics: int = 1
    envelope_lowpass_hz: float = 5.0

    def effective_band(self, fs: float) -> tuple[float, float]:
        return self.band_low_hz, min(self.band_high_hz, self.band_high_fraction_of_fs * fs)

    def validate(self, fs: float, mode: str) -> None:
        _require(1 <= self.order <= 12, f"filter.order is {self.order}; use 1..12")
        _require(
            0 < self.band_high_fraction_of_fs < 0.5,
            f"filter.band_high_fraction_of_fs is {self.band_high_fraction_of_fs}; it must be "
            "between 0 and 0.5 (the band must end below half the sampling rate)",
        )
        if mode == "envelope":
            _require(
                0 < self.envelope_lowpass_hz < fs / 2,
                f"filter.envelope_lowpass_hz is {self.envelope_lowpass_hz} Hz; it must be between 0 "
                f"and half the sampling rate ({fs / 2:g} Hz)",
            )
            return
        low, high = self.effective_band(fs)
        _require(self.band_low_hz > 0, f"filter.band_low_hz is {self.band_low_hz}; it must be > 0")
        _require(
            high > low * 1.25,
            f"a sampling rate of {fs:g} Hz is too low for the {low:g}-{self.band_high_hz:g} Hz raw EMG "
            f"band (the band's top is capped at {self.band_high_fraction_of_fs:g} x fs = {high:g} Hz); "
            f"raw mode needs at least {low * 1.25 / self.band_high_fraction_of_fs:.0f} Hz "
            "(1000 Hz or more is standard for surface EMG). Sample faster, lower filter.band_low_hz, "
            "or use mode 'envelope' for an envelope-output sensor",
        )
        if self.notch_hz is not None:
            _require(self.notch_hz > 0, f"filter.notch_hz is {self.notch_hz}; use 50, 60 or none")
            _require(self.notch_q > 0, f"filter.notch_q is {self.notch_q}; it must be > 0")
            _require(self.notch_harmonics >= 1, "filter.notch_harmonics must be >= 1")

    def notch_frequencies(self, fs: float) -> list[float]:
        """Mains frequency and harmonics that fall inside the pass band (the others are filtered anyway)."""
        if self.notch_hz is None:
            return []
        low, high = self.effective_band(fs)
        candidates = [self.notch_hz * k for k in range(1, self.notch_harmonics + 1)]
        return [f for f in candidates if low < f < high]


@dataclass(frozen=True)
class EnvelopeConfig:
    """RMS envelope: window length and hop (the envelope's sampling interval)."""

    window_s: float = 0.25
    hop_s: float = 0.02
    tick_s: float = 1.0

    def window_samples(self, fs: float) -> int:
        return max(1, round(self.window_s * fs))

    def hop_samples(self, fs: float) -> int:
        return max(1, round(self.hop_s * fs))

    def hops_per_tick(self, fs: float) -> int:
        """Detection, quality and floor work on ticks of whole hops, about `tick_s` long."""
        return max(1, round(self.tick_s * fs / self.hop_samples(fs)))

    def validate(self, fs: float) -> None:
        _require(self.hop_s > 0, f"envelope.hop_s is {self.hop_s}; it must be > 0")
        _require(
            self.window_s >= self.hop_s,
            f"envelope.window_s ({self.window_s}) must be at least envelope.hop_s ({self.hop_s})",
        )
        _require(self.tick_s >= self.hop_s, "envelope.tick_s must be at least envelope.hop_s")


@dataclass(frozen=True)
class QualityConfig:
    """Per-channel signal-quality checks, made once per tick (about a second), and what counts as
    measured when samples are missing.

    After a gap of missing samples, the filtered signal is not a measurement for as long as the gap
    lasted, at most `gap_settle_s` (the band-pass's transient); gaps up to `gap_bridge_s` are
    crossed on a straight line that only steers the filter, longer ones restart it. An envelope hop
    needs `min_measured_fraction` of its window measured, or it is missing.
    """

    flat_uv: float = 0.05
    railed_fraction: float = 0.5
    clipping_blocking_fraction: float = 0.1
    mains_fraction: float = 0.8
    settle_s: float = 1.0
    gap_settle_s: float = 0.05
    gap_bridge_s: float = 1.0
    min_measured_fraction: float = 0.25

    def validate(self) -> None:
        for name in ("clipping_blocking_fraction", "min_measured_fraction"):
            _require(0 < getattr(self, name) <= 1, f"quality.{name} must be in (0, 1]")
        for name in ("gap_settle_s", "gap_bridge_s"):
            _require(getattr(self, name) >= 0, f"quality.{name} must be >= 0")
        _require(self.flat_uv >= 0, "quality.flat_uv must be >= 0")
        _require(0 < self.railed_fraction <= 1, "quality.railed_fraction must be in (0, 1]")
        _require(0 < self.mains_fraction <= 1, "quality.mains_fraction must be in (0, 1]")
        _require(self.settle_s >= 0, "quality.settle_s must be >= 0")


@dataclass(frozen=True)
class DetectorConfig:
    """Noise floor, hysteresis thresholds and the cramp/movement rules (DESIGN.md defaults).

    The floor is learned from quiet ticks; detection waits for `floor_warmup_s` of them. A given
    floor (`initial_floor_uv`, else a channel's calibration) is used from the start: held all
    through when `learn_floor` is False, else only until a floor has been learned.

    `max_gap_s` is the longest gap of missing envelope that an event survives (noted as `gap`); it
    may not exceed `merge_gap_s`, since the merge rule already joins activity that far apart and so
    nothing a shorter gap hides could have ended the event. `weak_mvc_percent`: with an MVC
    calibration, a cramp weaker than this (mean envelope in % of MVC) has low confidence.
    """

    on_factor: float = 3.0
    on_margin_uv: float = 8.0
    off_factor: float = 1.5
    off_margin_uv: float = 2.0
    off_hold_s: float = 0.5
    merge_gap_s: float = 2.0
    max_gap_s: float = 2.0
    cramp_min_s: float = 10.0
    movement_min_s: float = 0.5
    floor_window_s: float = 120.0
    floor_percentile: float = 20.0
    floor_warmup_s: float = 5.0
    initial_floor_uv: float | None = None
    learn_floor: bool = True
    tonic_window_s: float = 1.5
    tonic_ratio: float = 0.25
    dip_min_s: float = 0.1
    trace_pre_s: float = 10.0
    trace_max_points: int = 600
    max_event_s: float = 1800.0
    on_mvc_percent: float | None = None
    off_mvc_percent: float | None = None
    weak_mvc_percent: float = 5.0

    def validate(self) -> None:
        _require(
            0 <= self.weak_mvc_percent < 100,
            "detector.weak_mvc_percent must be at least 0 and below 100",
        )
        for name in ("on_mvc_percent", "off_mvc_percent"):
            value = getattr(self, name)
            _require(value is None or 0 < value < 100, f"detector.{name} must be between 0 and 100")
        _require(
            (self.on_mvc_percent is None) == (self.off_mvc_percent is None),
            "detector.on_mvc_percent and detector.off_mvc_percent go together: give both or none",
        )
        if self.on_mvc_percent is not None and self.off_mvc_percent is not None:
            _require(
                self.on_mvc_percent >= self.off_mvc_percent,
                "detector.on_mvc_percent must not be below detector.off_mvc_percent",
            )
        for name in ("on_factor", "off_factor"):
            _require(getattr(self, name) >= 1.0, f"detector.{name} must be >= 1")
        _require(
            self.on_factor * 1.0 >= self.off_factor and self.on_margin_uv >= self.off_margin_uv,
            "detector: the 'on' threshold must not be below the 'off' threshold "
            "(on_factor >= off_factor and on_margin_uv >= off_margin_uv)",
        )
        for name in ("off_hold_s", "merge_gap_s", "movement_min_s", "trace_pre_s", "dip_min_s"):
            _require(getattr(self, name) >= 0, f"detector.{name} must be >= 0")
        _require(
            0 <= self.max_gap_s <= self.merge_gap_s,
            f"detector.max_gap_s ({self.max_gap_s}) must be between 0 and detector.merge_gap_s "
            f"({self.merge_gap_s}): a longer gap could hide a pause that would end the event",
        )
        _require(self.cramp_min_s > 0, "detector.cramp_min_s must be > 0")
        _require(
            self.max_event_s > self.cramp_min_s,
            "detector.max_event_s must be longer than detector.cramp_min_s",
        )
        _require(self.floor_window_s > 0, "detector.floor_window_s must be > 0")
        _require(0 <= self.floor_percentile <= 100, "detector.floor_percentile must be in 0..100")
        _require(self.floor_warmup_s >= 0, "detector.floor_warmup_s must be >= 0")
        if self.initial_floor_uv is not None:
            _require(self.initial_floor_uv > 0, "detector.initial_floor_uv must be > 0")
        _require(self.tonic_window_s > 0, "detector.tonic_window_s must be > 0")
        _require(0 <= self.tonic_ratio < 1, "detector.tonic_ratio must be in [0, 1)")
        _require(self.trace_max_points >= 10, "detector.trace_max_points must be >= 10")


@dataclass(frozen=True)
class SpikeConfig:
    """Brief isolated spikes (heartbeats leaking onto the channel, fasciculations) kept out of the
    raw-mode envelope (dsp/spikes.py): found on the band-passed signal in power per segment."""

    enabled: bool = True
    segment_s: float = 0.01
    """The shortest segment; longer at low sampling rates, so that a segment of band-limited
    noise has `segment_dof` degrees of freedom (2 x bandwidth x length) and noise rarely spikes."""
    segment_dof: float = 8.0
    guard_s: float = 0.08
    """A spike's peak segment is the highest within +-guard_s, and its blank stays within it."""
    flank_s: float = 0.15
    """Beyond the guard, this much signal on each side must be quiet (the spike stands alone)."""
    prominence: float = 8.0
    """The peak segment's power over each flank's level (the median of its blocks), at least."""
    train_ratio: float = 4.0
    """On one side at least, every block of the flank stays this far below the peak (a motor
    unit firing in a weak contraction has like potentials on both sides)."""
    max_width_s: float = 0.135
    """A spike's core (within 15 dB of its peak) lasts at most this long: a QRS complex or a
    motor-unit potential, not a jerk or a movement."""
    extent_ratio: float = 2.0
    """Around the peak, segments above this many times the flanks' power are blanked (+1 each side)."""
    min_peak_uv: float = 1.0
    """A spike's peak segment RMS, at least (nothing smaller can lift the envelope)."""
    count_prominence: float = 12.0
    """A spike that is not a heartbeat counts as a fasciculation from this prominence on (the
    rest are blanked all the same: noise alone seldom stands this far out)."""

    def segment_samples(self, fs: float, band_hz: tuple[float, float]) -> float:
        """The segment length in samples (before rounding to the envelope's base segments)."""
        bandwidth = max(band_hz[1] - band_hz[0], 1e-9)
        return max(self.segment_s, self.segment_dof / (2.0 * bandwidth)) * fs

    def validate(self) -> None:
        _require(self.segment_s > 0, "spikes.segment_s must be > 0")
        _require(
            self.guard_s >= self.segment_s and self.flank_s >= self.segment_s,
            "spikes.guard_s and spikes.flank_s must be at least spikes.segment_s",
        )
        _require(self.prominence > 1, "spikes.prominence must be > 1")
        _require(self.train_ratio >= 1, "spikes.train_ratio must be >= 1")
        _require(
            self.max_width_s >= self.segment_s, "spikes.max_width_s must be at least segment_s"
        )
        _require(
            1 <= self.extent_ratio < self.prominence,
            "spikes.extent_ratio must be at least 1 and below spikes.prominence",
        )
        _require(self.min_peak_uv >= 0, "spikes.min_peak_uv must be >= 0")
        _require(self.segment_dof > 0, "spikes.segment_dof must be > 0")
        _require(
            self.count_prominence >= self.prominence,
            "spikes.count_prominence must be at least spikes.prominence",
        )


@dataclass(frozen=True)
class ChannelCalibration:
    """What a calibration measured on one channel: the resting floor and, optionally, the envelope
    of a maximal voluntary contraction (MVC), both in uV."""

    floor_uv: float
    mvc_uv: float | None = None

    def validate(self, channel: str) -> None:
        _require(
            math.isfinite(self.floor_uv) and self.floor_uv > 0,
            f"calibration of {channel!r}: floor_uv must be > 0, got {self.floor_uv}",
        )
        if self.mvc_uv is not None:
            _require(
                math.isfinite(self.mvc_uv) and self.mvc_uv > self.floor_uv,
                f"calibration of {channel!r}: mvc_uv ({self.mvc_uv}) must be above the floor "
                f"({self.floor_uv}); was the contraction recorded?",
            )


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the pipeline needs, validated at construction."""

    fs: float
    channels: tuple[str, ...] = ("ch0",)
    mode: Literal["raw", "envelope"] = "raw"
    device: str = "crampwatch"
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    envelope: EnvelopeConfig = field(default_factory=EnvelopeConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    spikes: SpikeConfig = field(default_factory=SpikeConfig)
    calibration: tuple[tuple[str, ChannelCalibration], ...] = ()

    def __post_init__(self) -> None:
        _require(
            isinstance(self.fs, numbers.Real) and math.isfinite(self.fs) and self.fs > 0,
            f"sampling rate fs={self.fs!r} must be a positive number of samples per second",
        )
        object.__setattr__(self, "fs", float(self.fs))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        self.validate()

    def validate(self) -> None:
        _require(
            bool(DEVICE_ID.fullmatch(self.device)),
            f"device id {self.device!r} may use only letters, digits, '-' and '_' "
            "(it becomes part of MQTT topics)",
        )
        _require(len(self.channels) >= 1, "at least one channel is needed")
        _require(
            len(set(self.channels)) == len(self.channels),
            f"channel names must be unique, got {list(self.channels)}",
        )
        _require(self.mode in INPUT_MODES, f"mode is {self.mode!r}; use one of {INPUT_MODES}")
        self.scaling.validate()
        self.filter.validate(self.fs, self.mode)
        self.envelope.validate(self.fs)
        self.quality.validate()
        self.detector.validate()
        self.spikes.validate()
        for channel, calibration in self.calibration:
            _require(
                channel in self.channels,
                f"calibration for {channel!r}, which is not one of the channels {list(self.channels)}",
            )
            calibration.validate(channel)
        if not self.detector.learn_floor:
            unknown = [
                c
                for c in self.channels
                if self.detector.initial_floor_uv is None and self.calibration_of(c) is None
            ]
            _require(
                not unknown,
                f"a floor held fixed (detector.learn_floor false) needs a floor for {unknown}: "
                "give detector.initial_floor_uv (--floor-uv) or a calibration",
            )
        if self.detector.on_mvc_percent is not None:
            missing = [
                c
                for c in self.channels
                if self.calibration_of(c) is None or self.calibration_of(c).mvc_uv is None
            ]  # type: ignore[union-attr]
            _require(
                not missing,
                f"thresholds in % of MVC need a calibration with an MVC for {missing}; run "
                "`crampwatch calibrate --mvc` first",
            )

    def calibration_of(self, channel: str) -> ChannelCalibration | None:
        return dict(self.calibration).get(channel)

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    def with_changes(self, **changes: Any) -> PipelineConfig:
        return replace(self, **changes)

    def settings(self) -> dict[str, Any]:
        """The settings that shape detections, JSON-ready (reported in every event's pipeline block)."""
        return {
            "fs": self.fs,
            "mode": self.mode,
            "band_hz": list(self.filter.effective_band(self.fs)) if self.mode == "raw" else None,
            "filter_order": self.filter.order,
            "notch_hz": self.filter.notch_frequencies(self.fs) if self.mode == "raw" else [],
            "envelope_lowpass_hz": (
                self.filter.envelope_lowpass_hz if self.mode == "envelope" else None
            ),
            "envelope": asdict(self.envelope),
            "scaling": asdict(self.scaling),
            "quality": asdict(self.quality),
            "detector": asdict(self.detector),
            "spikes": asdict(self.spikes) if self.mode == "raw" else None,
            "calibration": {c: asdict(cal) for c, cal in self.calibration},
        }

    def settings_hash(self) -> str:
        text = json.dumps(self.settings(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
