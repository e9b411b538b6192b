"""What a recording may declare and what a reader holds at once, so that reading (and replaying)
stays in bounded memory whatever a file or the arguments say.

- Sampling rate: 1 Hz to 100 kHz. Surface EMG is sampled at 1-4 kHz, needle and fine-wire EMG
  (low-pass up to 10 kHz, ISEK) at 20-50 kHz; 100 kHz leaves twice that headroom. Envelope-output
  sensors are read at a few Hz and up (an ADS1115 at 8 SPS).
- Channels: at most 64 replayed at once, and at most 500,000 samples per second over all of
  them (e.g. 10 channels at 50 kHz, 5 at 100 kHz, 64 at 7.8 kHz): the pipeline holds about a
  second of every channel, several times over (the spike stage alone holds back half a second
  and works on it in several arrays), so this product is what its memory grows with.
- Reads happen in steps of at most `READ_BYTES`; text lines are at most `MAX_LINE_CHARS` long and
  the layout is probed from at most `HEAD_CHARS` characters; arrays (.npy/.npz) have at most
  `MAX_COLUMNS` columns; an .npz holds at most `MAX_NPZ_MEMBERS` arrays, its scalars (rate,
  units) at most `MAX_SCALAR_BYTES`; an EDF+ file at most `MAX_EDF_ANNOTATIONS` annotations
  (pyedflib's EDFlib keeps every one in memory, about 0.5 kB each).
"""

from __future__ import annotations

import math
from pathlib import Path

from hardware.recordings.errors import RecordingError, option

MIN_FS_HZ = 1.0
MAX_FS_HZ = 100_000.0
MAX_CHANNELS = 64
MAX_SAMPLES_PER_S = 500_000
READ_BYTES = 4 << 20
BLOCK_BYTES = 4 << 20  # float64 values per block handed to the pipeline
MAX_BLOCK_ROWS = 1 << 20
MAX_LINE_CHARS = 64 << 10
HEAD_CHARS = 4 << 20
MAX_COLUMNS = 4096
MAX_NPZ_MEMBERS = 1024
MAX_SCALAR_BYTES = 4096
MAX_EDF_ANNOTATIONS = 100_000
RATE_RANGE = f"{MIN_FS_HZ:g} Hz to {MAX_FS_HZ:,.0f} Hz"


def rate_in_range(fs: float) -> bool:
    return math.isfinite(fs) and MIN_FS_HZ <= fs <= MAX_FS_HZ


def check_file_rate(path: Path, where: str, fs: float) -> None:
    """Refuse a rate a file states (its header, a time column) outside the range."""
    if not rate_in_range(fs):
        raise RecordingError(
            f"'{path}' says it is sampled at {fs:g} Hz ({where}); crampwatch reads recordings "
            f"sampled at {RATE_RANGE} - the file is damaged or not an EMG recording; fix its rate"
        )


def check_rate_and_channels(path: Path, fs: float, n_channels: int) -> None:
    """Refuse more channels, or more samples per second over them, than the pipeline takes."""
    if n_channels > MAX_CHANNELS:
        raise RecordingError(
            f"{n_channels} channels of '{path}' are selected; crampwatch replays at most "
            f"{MAX_CHANNELS} at a time" + option("channel", "NAME", " - choose them with {}")
        )
    if fs * n_channels > MAX_SAMPLES_PER_S:
        most = max(1, int(MAX_SAMPLES_PER_S // fs))
        raise RecordingError(
            f"{n_channels} channels at {fs:g} Hz are {fs * n_channels:,.0f} samples per second; "
            f"crampwatch replays at most {MAX_SAMPLES_PER_S:,} per second (here: {most} "
            "channel(s) at a time)" + option("channel", "NAME", " - choose them with {}")
        )


def block_rows(n_channels: int, wanted: int | None = None) -> int:
    """Rows of a block of float64 values: `wanted` (default 65536), at most BLOCK_BYTES."""
    most = max(1, BLOCK_BYTES // (8 * max(1, n_channels)))
    return max(1, min(most, 65536 if wanted is None else wanted))


def read_rows(row_bytes: int) -> int:
    """Rows a reader reads per step when a row takes `row_bytes` bytes."""
    return max(1, READ_BYTES // max(1, row_bytes))
