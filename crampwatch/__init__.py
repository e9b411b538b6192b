"""crampwatch for notebooks and scripts: open recordings, run the cramp detector, score, plot,
and run batches and parameter sweeps on Dask.

    import crampwatch
    night = crampwatch.replay("night.edf", notch=60)
    night.events_frame()            # one row per cramp or movement (pandas)
    night.plot("night.png")

Options are the command line's (`fs`, `channels`, `units`, `mode`, `notch`, `gain`, `floor_uv`,
...), settings are `--set`'s ({"detector.cramp_min_s": 8}); see `research.api`.
"""

from dsp import __version__
from research.api import (
    BatchOutcome,
    Night,
    batch,
    load_truth,
    open_recording,
    options,
    read_events,
    replay,
    score,
)

__all__ = [
    "BatchOutcome",
    "Night",
    "__version__",
    "batch",
    "load_truth",
    "open_recording",
    "options",
    "read_events",
    "replay",
    "score",
]
