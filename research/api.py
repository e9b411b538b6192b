"""The Python API for notebooks and scripts, re-exported by `import crampwatch`.

Every function takes the command line's options by their long names (`fs`, `channels`, `units`,
`mode`, `device`, `notch`, `adc_bits`, `vref`, `gain`, `floor_uv`, `calibration`, `mvc_percent`,
`rails`) with the same defaults, and `settings` for `--set` ({"detector.cramp_min_s": 8}).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import tzinfo
from pathlib import Path
from typing import Any

from dsp.annotations import Annotation
from dsp.evaluation import KindScore
from dsp.overrides import apply_settings, parse_value, settings_grid
from firmware_host.commands.evaluate import load_annotations
from firmware_host.commands.replay import (
    add_pipeline_options,
    add_recording_options,
    pipeline_config,
)
from firmware_host.event_output import EventWriter, atomic_text_output
from hardware.recordings import Recording, open_recording
from research.inputs import find_recordings
from research.night import Night, analyse, parse_start, read_events_file, replay_file
from research.runner import BatchOutcome, BatchSettings, batch_options, execute

__all__ = [
    "BatchOutcome",
    "Night",
    "batch",
    "load_truth",
    "open_recording",
    "options",
    "read_events",
    "replay",
    "score",
]


def options(**values: Any) -> argparse.Namespace:
    """The command line's recording and pipeline options with their defaults, `values` applied;
    an unknown name is a TypeError that lists the known ones."""
    parser = argparse.ArgumentParser(add_help=False)
    add_recording_options(parser)
    add_pipeline_options(parser)
    args = parser.parse_args([])
    known = {k for k in vars(args) if k != "settings"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; the options are {sorted(known)}")
    for name, value in values.items():
        setattr(args, name, _option_value(name, value))
    return args


def _option_value(name: str, value: Any) -> Any:
    if name == "channels" and value is not None:
        return [str(v) for v in ([value] if isinstance(value, str | int) else value)]
    if name == "notch":
        return "none" if value is None else str(value).removesuffix(".0")
    if name in ("calibration",) and value is not None:
        return Path(value)
    return value


def _typed_settings(settings: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """{key: [values]} checked and typed as `--set` does."""
    typed: dict[str, list[Any]] = {}
    for key, value in (settings or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        typed[key] = [parse_value(key, "none" if v is None else str(v)) for v in values]
    return typed


def replay(
    source: str | Path | Recording,
    *,
    out: str | Path | None = None,
    settings: Mapping[str, Any] | None = None,
    start: str | None = None,
    envelope: bool = True,
    progress: bool = False,
    **option_values: Any,
) -> Night:
    """Run a recording (a path, or one from `open_recording`) through the pipeline, as
    `crampwatch replay` does, and return its Night: `events`, per-channel `figures`, signal-lost
    stretches, a binned `envelope` (unless `envelope=False`), `events_frame()`, `plot()`.

    A path is opened with the options and its sidecar (`NAME.crampwatch.toml`), if any; `out`
    also writes the events file replay would write; `start` (ISO 8601) dates the events.
    """
    args = options(**option_values)
    args.start = start
    typed = _typed_settings(settings)
    several = [key for key, values in typed.items() if len(values) != 1]
    if several:
        raise ValueError(f"replay takes one value per setting ({several}); `batch` runs sweeps")
    one = {key: values[0] for key, values in typed.items()}
    with atomic_text_output(Path(out)) if out is not None else nullcontext(None) as stream:
        writer = EventWriter(stream, "jsonl") if stream is not None else None
        if isinstance(source, Recording):
            info = source.info
            config = pipeline_config(args, info.fs, info.channels, info.units or "uV")
            return analyse(
                source,
                apply_settings(config, one),
                writer=writer,
                start=parse_start(start),
                envelope=envelope,
                progress=progress,
            )
        night, _sidecar = replay_file(
            Path(source), args, settings=one, writer=writer, envelope=envelope, progress=progress
        )
        return night


def read_events(path: str | Path) -> Night:
    """A Night read back from an events file that `crampwatch replay` wrote (no envelope)."""
    return read_events_file(Path(path))


def load_truth(path: str | Path) -> list[Annotation]:
    """Ground truth as `crampwatch evaluate` reads it: CSV `kind,start_s,end_s[,channel]`, JSON
    lines, or an EDF+ file's annotations. Score with `night.score(truth)`."""
    return load_annotations(Path(path))


def batch(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    truth: str = "auto",
    kinds: Sequence[str] = ("cramp",),
    min_overlap_s: float = 0.0,
    channel_map: Mapping[str, str] | None = None,
    plots: bool = False,
    plot_format: str = "png",
    tz: tzinfo | None = None,
    full_hash: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    memory_limit: str | int | None = None,
    progress: bool = True,
    **option_values: Any,
) -> BatchOutcome:
    """`crampwatch batch`: every recording in `inputs` (files, folders, globs) through the
    pipeline on Dask, once per combination of `settings` ({key: value or [values]}); returns
    the outcome, whose `.recordings`, `.events`, `.scores` and `.pooled` are DataFrames of the
    tables it wrote to `out`."""
    args = options(**option_values)
    assignments = [(k, tuple(v)) for k, v in _typed_settings(settings).items()]
    names = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    run = BatchSettings(
        recordings=find_recordings(names, exclude=Path(out)),
        out=Path(out),
        options=batch_options(args),
        grid=settings_grid(assignments),
        truth=truth,
        kinds=tuple(kinds),
        min_overlap_s=min_overlap_s,
        channel_map=dict(channel_map or {}),
        plot_format=plot_format if plots else None,
        tz=tz,
        full_hash=full_hash,
        scheduler=scheduler,
        workers=workers,
        memory_limit=memory_limit,
        progress=progress,
    )
    return execute(run)


def score(
    night: Night,
    truth: Sequence[Annotation],
    kinds: Sequence[str] = ("cramp",),
    *,
    min_overlap_s: float = 0.0,
    channel_map: dict[str, str] | None = None,
) -> dict[str, KindScore]:
    """`night.score(...)`: precision, recall, F1, timing errors per kind against the truth."""
    return night.score(truth, kinds, min_overlap_s=min_overlap_s, channel_map=channel_map)
