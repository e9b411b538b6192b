"""``--profile``: where the pipeline spends its time, on an in-memory segment (cProfile)."""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
from pathlib import Path

from benchmarks.night import read_frames
from benchmarks.tasks import replay_config


def profile_pipeline(
    path: Path, fs: float, frames: int, n_channels: int, block: int, top: int = 20
) -> str:
    """Profile the pipeline over `frames` frames of the file (all channels); print and return."""
    from dsp.pipeline import Pipeline

    x = read_frames(path, 0, frames, tuple(range(n_channels)))
    config = replay_config(path, fs, tuple(f"ch{c}" for c in range(n_channels)))
    pipeline = Pipeline(config)
    profiler = cProfile.Profile()
    profiler.enable()
    for start in range(0, len(x), block):
        pipeline.process(x[start : start + block])
    pipeline.finish()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    text = out.getvalue()
    print(text, file=sys.stderr)
    return text
