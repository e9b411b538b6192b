"""Input values (ADC counts, V, mV or uV) to microvolts at the electrodes."""

from __future__ import annotations

import numpy as np

from dsp.config import ScalingConfig


class Scaler:
    """Stateless: one multiply-add per sample; NaN (a missing sample) stays NaN."""

    def __init__(self, config: ScalingConfig) -> None:
        self.factor, self.offset = config.factor_and_offset()
        rails = config.input_rails
        self.rails_uv: tuple[float, float] | None = (
            None
            if rails is None
            else (rails[0] * self.factor - self.offset, rails[1] * self.factor - self.offset)
        )

    def process(self, block: np.ndarray) -> np.ndarray:
        out = np.multiply(block, self.factor, dtype=np.float64)
        if self.offset:
            out -= self.offset
        return out
