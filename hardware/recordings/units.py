"""Units of EMG values: canonical names, what a file declares, and converting the selected
channels to one unit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hardware.recordings.errors import RecordingError, option

_UNIT_ALIASES = {
    "uv": "uV",
    "µv": "uV",
    "μv": "uV",
    "microvolt": "uV",
    "microvolts": "uV",
    "mv": "mV",
    "millivolt": "mV",
    "millivolts": "mV",
    "v": "V",
    "volt": "V",
    "volts": "V",
    "counts": "counts",
    "count": "counts",
    "adc": "counts",
    "raw": "counts",
    "lsb": "counts",
    "adu": "counts",
    "digital": "counts",
}
_NO_UNIT = {"", "nu", "n/a", "na", "?", "none", "unknown", "-", "au", "a.u.", "arb"}
_VOLTS = {"uV": 1e-6, "mV": 1e-3, "V": 1.0}
_CANONICAL_UNITS = ("counts", "uV", "mV", "V")


def normalize_units(text: str | None) -> str | None:
    """Canonical unit ("uV", "mV", "V", "counts") for a unit string; None for None/empty.

    Raises RecordingError for a string that is not an EMG unit.
    """
    if text is None or not text.strip():
        return None
    unit = _canonical_unit(text)
    if unit is None:
        raise RecordingError(
            f"unknown units {text!r}: use one of {', '.join(_CANONICAL_UNITS)} "
            "(µV, microvolts, adc and raw are accepted too)"
        )
    return unit


def _canonical_unit(text: str) -> str | None:
    return _UNIT_ALIASES.get(text.strip().lower())


def _declared_unit(text: str | None) -> str | None:
    """A unit as a file declares it: canonical when electrical, None when unstated, else as is."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped.lower() in _NO_UNIT:
        return None
    return _canonical_unit(stripped) or stripped


def _is_other_unit(unit: str | None) -> bool:
    return unit is not None and unit not in _CANONICAL_UNITS


def _resolve_units(
    path: Path, names: Sequence[str], declared: Sequence[str | None], override: str | None
) -> tuple[str | None, np.ndarray | None]:
    """The unit of the output and a per-channel scale factor (None when no scaling is needed)."""
    if override is not None:
        return override, None
    known = [(n, u) for n, u in zip(names, declared, strict=True) if u is not None]
    if not known:
        return None, None
    electrical = [(n, u) for n, u in known if not _is_other_unit(u)]
    other = [(n, u) for n, u in known if _is_other_unit(u)]
    if other and electrical:
        shown = ", ".join(f"{n} ({u})" for n, u in known)
        raise RecordingError(
            f"the selected channels of '{path}' have incompatible units: {shown}; select "
            "channels of one kind"
            + option("channel", "NAME", " ({})")
            + f", or pass {option('units', 'UNIT')} to treat them alike"
        )
    if other:
        return None, None
    target = electrical[0][1]
    kinds = {u == "counts" for _, u in electrical}
    if len(kinds) > 1:
        shown = ", ".join(f"{n} ({u})" for n, u in electrical)
        raise RecordingError(
            f"the selected channels of '{path}' mix ADC counts and volts: {shown}; select "
            "channels of one kind"
            + option("channel", "NAME", " ({})")
            + f", or pass {option('units', 'UNIT')} to treat them alike"
        )
    if target == "counts" or all(u == target for _, u in electrical):
        return target, None
    scale = np.array(
        [1.0 if u is None else _VOLTS[u] / _VOLTS[target] for u in declared], dtype=np.float64
    )
    return target, scale
