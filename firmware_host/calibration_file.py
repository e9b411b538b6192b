"""Saving and loading calibrations (JSON), so the detector can use them later."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

from dsp.config import ChannelCalibration
from dsp.events import iso_utc
from firmware_host.event_output import atomic_text_output

SCHEMA = "crampwatch.calibration/1"


class CalibrationFileError(ValueError):
    """A calibration file is missing or malformed; the message says what to do."""


def save_calibration(
    path: Path, calibrations: dict[str, ChannelCalibration], *, fs: float, source: str
) -> None:
    """Write the calibration atomically (a crash never leaves half a file)."""
    document = {
        "schema": SCHEMA,
        "created": iso_utc(datetime.now(UTC)),
        "source": source,
        "fs": fs,
        "channels": {
            name: {
                "floor_uv": round(c.floor_uv, 4),
                "mvc_uv": None if c.mvc_uv is None else round(c.mvc_uv, 4),
            }
            for name, c in calibrations.items()
        },
    }
    with atomic_text_output(path) as stream:
        json.dump(document, stream, indent=2)
        stream.write("\n")


def load_calibration(path: Path) -> dict[str, ChannelCalibration]:
    """Read a calibration written by `crampwatch calibrate`."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CalibrationFileError(
            f"calibration file {path} does not exist; run `crampwatch calibrate` first"
        ) from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CalibrationFileError(f"{path} is not a calibration file: {error}") from error
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise CalibrationFileError(f"{path} is not a crampwatch calibration ({SCHEMA})")
    channels = document.get("channels")
    if not isinstance(channels, dict) or not channels:
        raise CalibrationFileError(f"{path} names no channels")
    return {name: _channel(path, name, figures) for name, figures in channels.items()}


def _channel(path: Path, name: str, figures: object) -> ChannelCalibration:
    if not isinstance(figures, dict):
        raise CalibrationFileError(f"{path}: channel {name!r} has no figures")
    floor, mvc = figures.get("floor_uv"), figures.get("mvc_uv")
    for key, value in (("floor_uv", floor), ("mvc_uv", mvc)):
        if value is None and key == "mvc_uv":
            continue
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise CalibrationFileError(f"{path}: channel {name!r} {key} must be a number")
    return ChannelCalibration(float(floor), None if mvc is None else float(mvc))  # type: ignore[arg-type]
