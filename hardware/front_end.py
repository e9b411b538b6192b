"""The analog front end between the electrodes and the ADC input, as modelled for simulated chips."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrontEnd:
    """Electrode microvolts -> volts at the ADC pin: gain, an output offset (mid-supply bias for
    single-ended converters) and the amplifier's output rails, where the signal clips."""

    gain: float = 1000.0
    offset_v: float = 1.65
    rails_v: tuple[float, float] = (0.0, 3.3)

    def volts(self, microvolts: np.ndarray) -> np.ndarray:
        """Volts at the ADC input for the given electrode signal (NaN stays NaN)."""
        out = np.asarray(microvolts, dtype=np.float64) * (self.gain * 1e-6) + self.offset_v
        return np.clip(out, self.rails_v[0], self.rails_v[1])

    def volt(self, microvolts: float) -> float:
        """`volts` for one value, in plain floats (simulated chips call this per conversion)."""
        value = microvolts * (self.gain * 1e-6) + self.offset_v
        low, high = self.rails_v
        return low if value < low else high if value > high else value

    def microvolts(self, volts: np.ndarray) -> np.ndarray:
        """Back from ADC-input volts to electrode microvolts (what the pipeline's scaling does)."""
        return (np.asarray(volts, dtype=np.float64) - self.offset_v) / self.gain * 1e6
