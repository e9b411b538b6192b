"""The benchmark night: a seeded synthetic recording, written once to a cached .npy file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from hardware import synthetic_emg
from hardware.synthetic_emg import NightPlan, SyntheticEMG, plan_night

WRITE_BLOCK = 65536
READ_FRAMES = 4096  # 32 KiB pieces of a 2-channel float32 file: below glibc's mmap threshold
CACHE_ENV = "CRAMPWATCH_BENCH_CACHE"


@dataclass(frozen=True)
class NightSpec:
    """What the cached night is: its length, rate, seeds and sample type (plan_night defaults)."""

    hours: float
    fs: float = 1000.0
    plan_seed: int = 1
    noise_seed: int = 1
    dtype: str = "float32"

    @cached_property
    def plan(self) -> NightPlan:
        return plan_night(self.plan_seed, duration_s=self.hours * 3600.0, fs=self.fs)

    @property
    def n_frames(self) -> int:
        return self.plan.n_samples

    @property
    def channels(self) -> tuple[str, ...]:
        return self.plan.channels

    def planned_cramps(self, channels: tuple[int, ...], stop_s: float) -> int:
        """Cramps in the ground truth on these channel indices that end before `stop_s`."""
        return sum(
            1
            for seg in self.plan.segments_of("cramp")
            if seg.channel in channels and seg.end_s <= stop_s
        )

    def file_name(self) -> str:
        return (
            f"night-{self.hours:g}h-{self.fs:g}Hz-plan{self.plan_seed}-noise{self.noise_seed}"
            f"-{self.dtype}.npy"
        )

    def fingerprint(self) -> dict[str, object]:
        """Everything the file's samples depend on, including the generator's source."""
        source = Path(synthetic_emg.__file__).read_bytes()
        return {**asdict(self), "generator_sha256": hashlib.sha256(source).hexdigest()}


def cache_dir() -> Path:
    """$CRAMPWATCH_BENCH_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/crampwatch-bench, else /tmp."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    candidate = Path(base) / "crampwatch-bench"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
    except OSError:
        candidate = Path(tempfile.gettempdir()) / "crampwatch-bench"
    return candidate


def ensure_night_file(spec: NightSpec, directory: Path | None = None) -> tuple[Path, bool]:
    """The cached night for `spec` (written when missing or stale); True when it was written now."""
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.file_name()
    meta_path = path.with_suffix(".json")
    fingerprint = spec.fingerprint()
    if path.exists() and meta_path.exists() and _read_json(meta_path) == fingerprint:
        return path, False
    _write_night(spec, path)
    meta_path.write_text(json.dumps(fingerprint, indent=2) + "\n")
    return path, True


def read_frames(path: Path, start: int, stop: int, columns: tuple[int, ...]) -> np.ndarray:
    """Frames [start, stop) of the chosen columns as float64, read with plain file reads.

    Read in small pieces into one preallocated array: freeing a large temporary would raise
    glibc's dynamic mmap threshold and change how the measured code's own temporaries are
    allocated (and page-faulted), making in-memory runs unlike a replay in a fresh process.
    """
    out = np.empty((stop - start, len(columns)))
    with path.open("rb") as handle:
        np.lib.format.read_magic(handle)
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        width = shape[1]
        handle.seek(handle.tell() + start * width * dtype.itemsize)
        for first in range(0, len(out), READ_FRAMES):
            rows = min(READ_FRAMES, len(out) - first)
            piece = np.fromfile(handle, dtype=dtype, count=rows * width).reshape(rows, width)
            out[first : first + rows] = piece[:, list(columns)]
    return out


def _write_night(spec: NightSpec, path: Path) -> None:
    """Stream the synthetic night into `path` (atomically: a partial file is never left behind)."""
    dtype = np.dtype(spec.dtype)
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (spec.n_frames, len(spec.channels)),
    }
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            for block in SyntheticEMG(spec.plan, spec.noise_seed).blocks(WRITE_BLOCK):
                handle.write(block.astype(dtype).tobytes())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
