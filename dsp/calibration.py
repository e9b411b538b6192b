"""Calibration figures from envelope recordings: the resting floor and the MVC level per channel."""

from __future__ import annotations

import numpy as np


def rest_floor_uv(envelope: np.ndarray, hops_per_tick: int, percentile: float = 20.0) -> np.ndarray:
    """Per channel: the `percentile` of per-tick envelope medians, the detector's floor estimator.

    `envelope` has shape (hops, channels); hops whose envelope is missing (NaN) are left out.
    """
    n_ticks = len(envelope) // hops_per_tick
    if n_ticks == 0:
        raise ValueError(
            f"a rest recording needs at least one whole tick ({hops_per_tick} envelope hops)"
        )
    ticks = envelope[: n_ticks * hops_per_tick].reshape(n_ticks, hops_per_tick, -1)
    medians = np.nanmedian(ticks, axis=1)
    return np.nanpercentile(medians, percentile, axis=0)


def mvc_uv(envelope: np.ndarray, hops_per_second: int) -> np.ndarray:
    """Per channel: the highest one-second mean of the envelope during a maximal contraction."""
    if len(envelope) < hops_per_second:
        raise ValueError("an MVC recording needs at least one second of envelope")
    kernel = np.ones(hops_per_second) / hops_per_second
    filled = np.where(np.isfinite(envelope), envelope, 0.0)
    return np.array(
        [np.convolve(filled[:, c], kernel, mode="valid").max() for c in range(envelope.shape[1])]
    )
