"""Sampling rates: checking a given rate, snapping a measured one, and choosing among the
rates a file states."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from hardware.recordings.errors import RecordingError, option
from hardware.recordings.limits import RATE_RANGE, check_file_rate, rate_in_range

_RATE_TOLERANCE = 1e-3  # relative: two sampling rates closer than this agree


def _snap_rate(fs: float) -> float:
    """Round a measured rate to the nearest integer when it is that within 0.01 %."""
    nearest = round(fs)
    if nearest > 0 and abs(fs - nearest) <= 1e-4 * fs:
        return float(nearest)
    return fs


def _rates_agree(a: float, b: float) -> bool:
    return abs(a - b) <= _RATE_TOLERANCE * max(a, b)


def _check_fs_argument(fs: float | None) -> float | None:
    if fs is None:
        return None
    try:
        value = float(fs)
    except (TypeError, ValueError):
        value = math.nan
    if not rate_in_range(value):
        shown = repr(fs) if math.isnan(value) else f"{value:g}"
        raise RecordingError(
            f"{option('fs', shown)}: the sampling rate must be {RATE_RANGE} (surface EMG is "
            "sampled at 1-4 kHz, needle EMG at up to about 50 kHz)"
        )
    return value


def _choose_rate(path: Path, given: float | None, found: Sequence[tuple[str, float]]) -> float:
    """The sampling rate: the file's own (all sources must agree) or the given one."""
    for where, rate in found:
        check_file_rate(path, where, rate)
    for i, (where_a, rate_a) in enumerate(found):
        for where_b, rate_b in found[i + 1 :]:
            if not _rates_agree(rate_a, rate_b):
                raise RecordingError(
                    f"'{path}' contradicts itself: {where_a} says {rate_a:g} Hz but {where_b} "
                    f"says {rate_b:g} Hz; fix the file (or remove one of them)"
                )
    if given is not None:
        for where, rate in found:
            if not _rates_agree(given, rate):
                raise RecordingError(
                    f"{option('fs', f'{given:g}')} contradicts '{path}': {where} says {rate:g} "
                    f"Hz; leave {option('fs')} out to use the file's rate"
                )
        return given
    if found:
        return found[0][1]
    raise RecordingError(
        f"no sampling rate in '{path}': the file does not state one; pass {option('fs', 'HZ')}"
    )
