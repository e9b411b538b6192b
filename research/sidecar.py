"""Per-recording sidecar files: what a recording's format does not say (rate, units, channels,
start, the recorder's scaling) and where its ground truth is.

Beside `night.csv` (any recording), `night.crampwatch.toml` or `night.crampwatch.json` (the
recording's name without its extension, so it serves every `night.*`), or `night.csv.crampwatch.toml`
for that one file (it wins over the other):

    fs = 1000                          # samples per second
    units = "mV"                       # counts, uV, mV or V
    channels = ["left_calf", 1]        # names or 0-based indices, in the wanted order
    names = ["left", "right"]          # names for the channels used (for files without names)
    mode = "raw"                       # raw or envelope
    start = "2026-01-14T22:41:00Z"     # when the first sample was taken (UTC unless an offset)
    gain = 1000                        # front-end gain before the converter
    adc_bits = 10                      # with units = "counts"
    vref = 3.3                         # the converter's full scale in volts, for counts
    rails = [0, 1023]                  # the lowest and highest value the recorder can give
    notch = 60                         # mains frequency: 50, 60 or "none"
    floor_uv = 3.5                     # a known resting floor
    calibration = "calibration.json"   # from `crampwatch calibrate` (relative to the sidecar)
    truth = "night.truth.csv"          # ground truth as `crampwatch evaluate` reads it

Every key is optional. A key in the sidecar wins over the same option on the command line (the
sidecar is about this one recording). Without a `truth` key, `night.truth.csv` or
`night.truth.jsonl` beside the recording is its ground truth when it exists.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SIDECAR_SUFFIXES = (".crampwatch.toml", ".crampwatch.json")
TRUTH_SUFFIXES = (".truth.csv", ".truth.jsonl")


class SidecarError(ValueError):
    """A sidecar file is malformed; the message names the file and the key."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


def _channel_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value
        )
    )


def _names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, str) and v.strip() for v in value)
        and len(set(value)) == len(value)
    )


def _rails(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value)


def _iso_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# key: (option dest, check, what is allowed)
_KEYS: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "fs": ("fs", _positive, "a positive number of samples per second"),
    "units": ("units", lambda v: v in ("counts", "uV", "mV", "V"), "counts, uV, mV or V"),
    "channels": ("channels", _channel_list, "a list of channel names or 0-based indices"),
    "mode": ("mode", lambda v: v in ("raw", "envelope"), "raw or envelope"),
    "start": ("start", _iso_time, "an ISO 8601 time such as 2026-01-14T22:41:00Z"),
    "gain": ("gain", _positive, "a positive number"),
    "adc_bits": ("adc_bits", lambda v: isinstance(v, int) and 1 <= v <= 32, "1 to 32"),
    "vref": ("vref", _positive, "a positive number of volts"),
    "rails": ("rails", _rails, "[low, high]"),
    "notch": ("notch", lambda v: v in (50, 60, "50", "60", "none"), '50, 60 or "none"'),
    "floor_uv": ("floor_uv", _positive, "a positive number of microvolts"),
    "calibration": ("calibration", _text, "the path of a calibration file"),
    "truth": ("truth", _text, "the path of a ground-truth file"),
    "names": ("names", _names, "a list of distinct channel names"),
}
_PATH_KEYS = ("calibration", "truth")


@dataclass(frozen=True)
class Sidecar:
    """A parsed sidecar: option values by option dest, paths resolved beside the file."""

    path: Path
    options: dict[str, Any]
    truth: Path | None
    names: tuple[str, ...] | None = None

    def channel_names(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        """The names to use for the recording's selected `channels`."""
        if self.names is None:
            return channels
        if len(self.names) != len(channels):
            raise SidecarError(
                f"the sidecar {self.path} names {len(self.names)} channel(s) {list(self.names)} "
                f"but {len(channels)} are used ({list(channels)}); give one name per channel, "
                "or choose the channels with `channels`"
            )
        return self.names

    def apply(self, args: argparse.Namespace) -> argparse.Namespace:
        """A copy of `args` with this sidecar's values in place of the command line's."""
        merged = argparse.Namespace(**vars(args))
        for dest, value in self.options.items():
            setattr(merged, dest, value)
        return merged


def sidecar_path(recording: Path) -> Path | None:
    """The recording's sidecar file, or None: `night.npy.crampwatch.toml` (this file only) before
    `night.crampwatch.toml` (every `night.*`); a TOML and a JSON one side by side are an error."""
    exact = [recording.with_name(recording.name + suffix) for suffix in SIDECAR_SUFFIXES]
    for candidates in (exact, _beside(recording, SIDECAR_SUFFIXES)):
        found = [p for p in candidates if p.is_file()]
        if len(found) > 1:
            raise SidecarError(
                f"{recording} has two sidecars ({found[0].name} and {found[1].name}); keep one"
            )
        if found:
            return found[0]
    return None


def sidecar_for(recording: Path) -> Path:
    """Where a TOML sidecar for this one recording goes."""
    return recording.with_name(recording.name + SIDECAR_SUFFIXES[0])


def truth_beside(recording: Path) -> Path | None:
    """`NAME.truth.csv` or `NAME.truth.jsonl` beside the recording, or None."""
    return next((p for p in _beside(recording, TRUTH_SUFFIXES) if p.is_file()), None)


def is_companion_file(path: Path) -> bool:
    """Whether the file is a sidecar or a truth file (not a recording)."""
    name = path.name.lower()
    return name.endswith(SIDECAR_SUFFIXES) or name.endswith(TRUTH_SUFFIXES)


def _beside(recording: Path, suffixes: tuple[str, ...]) -> list[Path]:
    stem = recording.name[: -len(recording.suffix)] if recording.suffix else recording.name
    return [recording.with_name(stem + suffix) for suffix in suffixes]


def load_sidecar(path: Path) -> Sidecar:
    """Read and check a sidecar (TOML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as error:
        raise SidecarError(f"cannot read the sidecar {path}: {error}") from error
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise SidecarError(
            f"the sidecar {path} is not valid {path.suffix[1:].upper()}: {error}"
        ) from error
    if not isinstance(document, dict):
        raise SidecarError(f"the sidecar {path} must hold keys and values (a table)")
    options: dict[str, Any] = {}
    for key, value in document.items():
        if key not in _KEYS:
            raise SidecarError(
                f"the sidecar {path} has an unknown key {key!r}; allowed: {', '.join(_KEYS)}"
            )
        dest, check, allowed = _KEYS[key]
        if not check(value):
            raise SidecarError(f"the sidecar {path}: {key} is {value!r}; use {allowed}")
        options[dest] = _option_value(path, key, value)
    truth = options.pop("truth", None)
    names = options.pop("names", None)
    return Sidecar(path=path, options=options, truth=truth, names=tuple(names) if names else None)


def _option_value(path: Path, key: str, value: Any) -> Any:
    """The value as the command-line option would hold it."""
    if key in _PATH_KEYS:
        return (path.parent / value).expanduser()
    if key == "channels":
        return [str(v) for v in value]
    if key == "rails":
        return [float(v) for v in value]
    if key == "notch":
        return str(value)
    if key in ("fs", "gain", "vref", "floor_uv"):
        return float(value)
    return value
