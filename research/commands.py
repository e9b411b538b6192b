"""`crampwatch batch` (many recordings, sweeps, tidy tables, on Dask) and `crampwatch plot`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dsp.config import ConfigError
from dsp.evaluation import SCORABLE_KINDS
from dsp.overrides import apply_settings, settings_grid
from firmware_host.calibration_file import CalibrationFileError
from firmware_host.commands.evaluate import InputFileError, parse_channel_map
from firmware_host.commands.replay import (
    add_pipeline_options,
    add_recording_options,
    pipeline_config,
)
from hardware.recordings import RecordingError
from hardware.recordings.errors import COMMAND_LINE
from research.inputs import InputError, find_recordings
from research.plots import PLOT_FORMATS, PlotError, plot_format
from research.runner import BatchSettings, batch_options, run_batch
from research.sidecar import SidecarError


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    _add_batch(subparsers)
    _add_plot(subparsers)


def _add_batch(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="replay many recordings on Dask: tidy tables, scores, sweeps, plots",
        description="Replay every recording named (files, folders searched recursively, globs) "
        "through the pipeline as Dask tasks, and write per recording its events file and to OUT "
        "the tables recordings, events, scores and pooled (CSV, and Parquet with pyarrow). "
        "Several values in --set make a sweep over every combination. A re-run skips what is "
        "done. Options apply to all recordings; a sidecar NAME.crampwatch.toml beside a "
        "recording gives its own (see the README).",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="recording, folder or glob")
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    add_recording_options(parser)
    add_pipeline_options(parser)
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster (tcp://HOST:8786; default $DASK_SCHEDULER_ADDRESS, "
        "else a local cluster)",
    )
    parser.add_argument(
        "--workers", type=int, help="local cluster: worker processes (default one per core)"
    )
    parser.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="local cluster: memory per worker, e.g. 1GiB (default a share of RAM, at most 2GiB)",
    )
    parser.add_argument("--plots", action="store_true", help="a night plot per recording")
    parser.add_argument(
        "--plot-format", choices=PLOT_FORMATS, default="png", help="plot format (default png)"
    )
    parser.add_argument("--tz", help="time zone for plot clocks (default: this computer's)")
    parser.add_argument(
        "--truth",
        choices=("auto", "none"),
        default="auto",
        help="auto: score recordings that have a truth file or EDF+ annotations; none: never",
    )
    parser.add_argument(
        "--kind",
        action="append",
        choices=SCORABLE_KINDS,
        help="kind to score (repeat for several; default cramp)",
    )
    parser.add_argument(
        "--min-overlap", type=float, default=0.0, metavar="S", help="as in evaluate (default 0)"
    )
    parser.add_argument(
        "--channel-map", action="append", metavar="TRUTH=DETECTED", help="as in evaluate"
    )
    parser.add_argument(
        "--full-hash",
        action="store_true",
        help="tell changed recordings by hashing every byte (default: size, time, first and "
        "last 64 KiB)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run_batch_command)


def _add_plot(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot a night: envelope, cramps, movements, signal lost, markers",
        description="Plot a recording (run through the pipeline, envelope kept in bounded "
        "memory) or an events file from `crampwatch replay` (envelope around events only).",
    )
    parser.add_argument("source", type=Path, metavar="RECORDING_OR_EVENTS")
    parser.add_argument("--out", type=Path, required=True, help="night.png, .svg or .pdf")
    add_recording_options(parser)
    add_pipeline_options(parser)
    parser.add_argument("--start", help="UTC start of the recording (ISO 8601), for clock times")
    parser.add_argument("--tz", help="time zone for the clock (default: this computer's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run_plot_command)


def zone(name: str | None) -> tzinfo | None:
    """The named time zone; None means this computer's own."""
    if not name:
        return datetime.now().astimezone().tzinfo
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--tz {name!r} is not a time zone name such as Europe/Berlin") from None


def _error(prog: str, message: str, code: int = 2) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


# ---- batch --------------------------------------------------------------------------------------


def run_batch_command(args: argparse.Namespace) -> int:
    prog = "crampwatch batch"
    try:
        settings = BatchSettings(
            recordings=find_recordings(args.inputs, exclude=args.out),
            out=args.out,
            options=batch_options(args),
            grid=settings_grid(args.settings),
            truth=args.truth,
            kinds=tuple(dict.fromkeys(args.kind or ["cramp"])),
            min_overlap_s=_non_negative(args.min_overlap),
            channel_map=parse_channel_map(args.channel_map),
            plot_format=args.plot_format if args.plots else None,
            tz=zone(args.tz),
            full_hash=args.full_hash,
            scheduler=args.scheduler,
            workers=args.workers,
            memory_limit=args.memory_limit,
            progress=not args.no_progress,
        )
        _check_options(settings)
    except (InputError, ConfigError, ValueError) as error:
        return _error(prog, str(error))
    return run_batch(settings)


def _non_negative(seconds: float) -> float:
    if not seconds >= 0:
        raise ValueError(f"--min-overlap must be 0 or more seconds, got {seconds}")
    return seconds


def _check_options(settings: BatchSettings) -> None:
    """Refuse before any work what would fail every recording: bad option values or settings,
    checked on a stand-in configuration (at --fs, else a rate high enough for any band; without
    the calibration, which depends on each recording's channels)."""
    if settings.workers is not None and settings.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {settings.workers}")
    if not settings.recordings:
        raise ValueError("the inputs hold no recordings (see the README for the file types)")
    stand_in = argparse.Namespace(
        **{**settings.options, "settings": None, "calibration": None, "mvc_percent": None}
    )
    fs = settings.options.get("fs") or 20000.0
    for combination in settings.grid:
        apply_settings(pipeline_config(stand_in, fs, ("ch0",), "uV"), combination)


# ---- plot ---------------------------------------------------------------------------------------


def run_plot_command(args: argparse.Namespace) -> int:
    from research.night import EventsFileError, read_events_file, replay_file
    from research.plots import plot_night

    prog = "crampwatch plot"
    try:
        plot_format(args.out)
        tz = zone(args.tz)
        if args.source.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            night = read_events_file(args.source)
        else:
            night, _sidecar = replay_file(
                args.source, args, progress=not args.no_progress, option_names=COMMAND_LINE
            )
            for note in night.notes:
                print(f"{prog}: note: {note}", file=sys.stderr)
        plot_night(night, args.out, tz=tz)
    except (
        RecordingError,
        ConfigError,
        CalibrationFileError,
        EventsFileError,
        SidecarError,
        InputFileError,
        PlotError,
        ValueError,
    ) as error:
        return _error(prog, str(error))
    print(f"{prog}: wrote {args.out}", file=sys.stderr)
    return 0
