"""What a measuring subprocess runs: each task loads its input, then returns a timed callable.

`prepare(params)` does everything that must not be timed (imports, reading an in-memory segment)
and returns `run`, which does the measured work once and returns what it found plus the number of
samples (frames x channels) it processed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.floor import ScipyFloor
from benchmarks.night import read_frames

Found = dict[str, Any]
Run = Callable[[], Found]
Params = dict[str, Any]


def replay_config(path: Path, fs: float, channels: tuple[str, ...]) -> Any:
    """The configuration `crampwatch replay FILE --fs FS --units uV` would use."""
    from firmware_host.commands import replay as replay_command

    parser = argparse.ArgumentParser()
    replay_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["replay", str(path), "--fs", f"{fs:g}", "--units", "uV"])
    return replay_command.pipeline_config(args, fs, channels, "uV")


def _segment(params: Params) -> np.ndarray:
    columns = tuple(params["columns"])
    return read_frames(Path(params["path"]), params["start"], params["stop"], columns)


def _blocks(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(x), size):
        yield x[start : start + size]


# ---- our pipeline -------------------------------------------------------------------------------


def pipeline_file(params: Params) -> Run:
    """The real replay path: open_recording + replay() writing JSON lines to /dev/null."""
    from firmware_host.commands.replay import replay
    from firmware_host.event_output import EventWriter
    from hardware.recordings import open_recording

    path, fs, block = Path(params["path"]), float(params["fs"]), int(params["block"])

    def run() -> Found:
        with (
            open_recording(path, fs=fs, units="uV") as recording,
            open(os.devnull, "w", encoding="utf-8") as sink,
        ):
            config = replay_config(path, fs, recording.info.channels)
            summary = replay(
                recording, config, EventWriter(sink, "jsonl"), progress=False, block_size=block
            )
            samples = (recording.info.n_samples or 0) * len(recording.info.channels)
        channels = summary.as_dict()["channels"].values()
        return {
            "samples": samples,
            "cramps": sum(c["cramps"] for c in channels),
            "movements": sum(c["movements"] for c in channels),
        }

    return run


def pipeline_memory(params: Params) -> Run:
    """The pipeline alone, fed blocks of an in-memory segment (no file reading)."""
    from dsp.pipeline import Pipeline

    x = _segment(params)
    fs, block = float(params["fs"]), int(params["block"])
    names = tuple(f"ch{c}" for c in params["columns"])
    config = replay_config(Path(params["path"]), fs, names)

    def run() -> Found:
        pipeline = Pipeline(config)
        events = [e for b in _blocks(x, block) for e in pipeline.process(b).events]
        events += pipeline.finish().events
        ended = [e for e in events if e.phase == "ended"]
        return {
            "samples": x.size,
            "cramps": sum(e.kind == "cramp" for e in ended),
            "movements": sum(e.kind == "movement" for e in ended),
        }

    return run


# ---- the floor ----------------------------------------------------------------------------------


def floor_file(params: Params) -> Run:
    """The scipy floor on the same file, read the same way in the same block size."""
    from hardware.recordings import open_recording

    path, fs, block = Path(params["path"]), float(params["fs"]), int(params["block"])

    def run() -> Found:
        with open_recording(path, fs=fs, units="uV") as recording:
            floor = ScipyFloor(fs, len(recording.info.channels))
            samples = 0
            for b in recording.blocks(block):
                floor.process(b)
                samples += b.size
        return {"samples": samples, "hops": floor.hops_emitted}

    return run


def floor_memory(params: Params) -> Run:
    """The scipy floor on an in-memory segment, in the same blocks."""
    x = _segment(params)
    fs, block = float(params["fs"]), int(params["block"])

    def run() -> Found:
        floor = ScipyFloor(fs, x.shape[1])
        for b in _blocks(x, block):
            floor.process(b)
        return {"samples": x.size, "hops": floor.hops_emitted}

    return run


# ---- peers (single channel, whole array) ---------------------------------------------------------


def import_peer(name: str) -> Any:
    """Import a peer; when it is installed but one of its own imports is missing, say which."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError as error:
        if error.name and error.name.split(".")[0] != name.split(".")[0]:
            raise ImportError(
                f"{name} is installed but needs '{error.name}', which it does not declare: "
                f"pip install {error.name}"
            ) from error
        raise


def neurokit2_process(params: Params) -> Run:
    """NeuroKit2 `emg_process`: clean, amplitude, activation detection over the whole array."""
    nk = import_peer("neurokit2")
    x = _segment(params)[:, 0]
    fs = int(params["fs"])

    def run() -> Found:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, info = nk.emg_process(x, sampling_rate=fs)
        return {"samples": x.size, "activations": len(info["EMG_Onsets"])}

    return run


def biosppy_emg(params: Params) -> Run:
    """BioSPPy `emg.emg`: high-pass filter and onset detection over the whole array."""
    emg = import_peer("biosppy.signals.emg")
    x = _segment(params)[:, 0]
    fs = float(params["fs"])

    def run() -> Found:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = emg.emg(signal=x, sampling_rate=fs, show=False)
        return {"samples": x.size, "activations": len(out["onsets"])}

    return run


TASKS: dict[str, Callable[[Params], Run]] = {
    "pipeline_file": pipeline_file,
    "floor_file": floor_file,
    "pipeline_memory": pipeline_memory,
    "floor_memory": floor_memory,
    "neurokit2": neurokit2_process,
    "biosppy": biosppy_emg,
}
