"""`crampwatch replay FILE`: play a recorded EMG file through the same pipeline that runs live."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dsp.config import (
    ChannelCalibration,
    ConfigError,
    DetectorConfig,
    FilterConfig,
    PipelineConfig,
    ScalingConfig,
)
from dsp.events import Event, QualityChange, iso_utc
from dsp.overrides import apply_settings, parse_assignment, single_settings
from dsp.pipeline import Pipeline, PipelineOutput
from firmware_host.calibration_file import CalibrationFileError, load_calibration
from firmware_host.event_output import (
    OUTPUT_FORMATS,
    EventWriter,
    atomic_text_output,
    check_output_path,
)
from firmware_host.run_summary import RunSummary
from hardware.recordings import SUPPORTED_FORMATS, Recording, RecordingError, open_recording
from hardware.recordings.errors import COMMAND_LINE
from hardware.recordings.limits import MAX_BLOCK_ROWS, block_rows

PROG = "crampwatch replay"
DEFAULT_BLOCK = 65536
DELIMITERS = ("comma", "tab", "semicolon", "whitespace")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recorded EMG file through the detector",
        description="Replay a recording (CSV/text, .npy/.npz, EDF/BDF, WFDB) through the pipeline "
        "and write one event per line.",
    )
    parser.add_argument(
        "file", type=Path, help="the recording (for WFDB the .hea, .dat or record name)"
    )
    add_recording_options(parser)
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=OUTPUT_FORMATS,
        default="jsonl",
        help="output format (default jsonl)",
    )
    parser.add_argument("--out", type=Path, help="output file (default: standard output)")
    add_pipeline_options(parser)
    parser.add_argument(
        "--start", help="UTC start time of the recording (ISO 8601), for event times"
    )
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def add_recording_options(parser: argparse.ArgumentParser) -> None:
    """Options that say how to read a recording (shared by every command that reads one)."""
    parser.add_argument("--fs", type=float, help="sampling rate in Hz, when the file does not say")
    parser.add_argument(
        "--channel",
        action="append",
        dest="channels",
        metavar="NAME_OR_INDEX",
        help="channel to use (name or 0-based index); repeat for several",
    )
    parser.add_argument(
        "--mode",
        choices=("raw", "envelope"),
        default="raw",
        help="raw EMG (band-pass + RMS) or an envelope-output sensor",
    )
    parser.add_argument(
        "--units",
        choices=("counts", "uV", "mV", "V"),
        help="units of the values, when the file does not say",
    )
    parser.add_argument(
        "--file-format",
        choices=SUPPORTED_FORMATS,
        help="the recording's format, when its extension does not say (e.g. a .emg CSV)",
    )
    parser.add_argument(
        "--delimiter",
        choices=DELIMITERS,
        help="text files: what separates the values (default: detected)",
    )
    parser.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        help="text files: the first row names the columns (--no-header: it is data; default: "
        "detected)",
    )


def open_for_command(
    args: argparse.Namespace,
    path: str | Path | None = None,
    option_names: Mapping[str, str] = COMMAND_LINE,
) -> Recording:
    """The recording (`path`, else `args.file`) the shared reading options describe; errors name
    the options as `option_names` spell them (the command line's by default)."""
    return open_recording(
        args.file if path is None else path,
        fs=args.fs,
        channels=channel_args(args.channels),
        units=args.units,
        fmt=args.file_format,
        delimiter=args.delimiter,
        has_header=args.header,
        option_names=option_names,
    )


def channel_args(values: list[str] | None) -> list[str | int] | None:
    """`--channel` values: digits are indices, anything else a name."""
    if not values:
        return None
    return [int(v) if v.lstrip("-").isdigit() else v for v in values]


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline."""
    parser.add_argument("--device", default="replay", help="device id reported in events")
    parser.add_argument(
        "--notch",
        choices=("50", "60", "none"),
        default="50",
        help="mains frequency to notch out (default 50)",
    )
    parser.add_argument(
        "--adc-bits", type=int, default=12, help="ADC resolution for --units counts"
    )
    parser.add_argument("--vref", type=float, default=3.3, help="ADC full-scale volts for counts")
    parser.add_argument("--gain", type=float, default=1.0, help="front-end gain before the ADC")
    parser.add_argument(
        "--floor-uv",
        type=float,
        metavar="UV",
        help="the resting floor in uV, when it is known: detection uses it from the first sample "
        "and holds it all through instead of learning one from quiet (see --learn-floor)",
    )
    parser.add_argument(
        "--learn-floor",
        action="store_true",
        help="with --floor-uv: start with it, then learn the floor from quiet as usual (it then "
        "follows slow changes of the resting level)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="a file from `crampwatch calibrate`: per-channel resting floor (and MVC)",
    )
    parser.add_argument(
        "--mvc-percent",
        type=float,
        nargs=2,
        metavar=("ON", "OFF"),
        help="thresholds in %% of each channel's MVC (needs --calibration with an MVC)",
    )
    parser.add_argument(
        "--rails",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="lowest and highest value the recorder can give, in input units (known for "
        "counts); enables the clipping check for recordings in volts",
    )
    parser.add_argument(
        "--set",
        action="append",
        dest="settings",
        type=setting_argument,
        metavar="SECTION.KEY=VALUE",
        help="any pipeline setting by name, e.g. detector.cramp_min_s=8 (repeat for several)",
    )


def setting_argument(text: str) -> tuple[str, tuple[Any, ...]]:
    """`--set` value -> (key, values), checked against the pipeline configuration."""
    try:
        return parse_assignment(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def pipeline_config(
    args: argparse.Namespace, fs: float, channels: tuple[str, ...], units: str
) -> PipelineConfig:
    """The pipeline configuration the shared options describe."""
    notch = None if str(args.notch) in ("none", "0") else float(args.notch)
    config = PipelineConfig(
        fs=fs,
        channels=channels,
        mode=args.mode,
        device=args.device,
        scaling=ScalingConfig(
            units=units,
            adc_bits=args.adc_bits,
            adc_vref_v=args.vref,
            gain=args.gain,
            rails=tuple(args.rails) if args.rails else None,
        ),
        filter=FilterConfig(notch_hz=notch),
        detector=DetectorConfig(
            initial_floor_uv=args.floor_uv,
            learn_floor=_learn_floor(args),
            on_mvc_percent=args.mvc_percent[0] if args.mvc_percent else None,
            off_mvc_percent=args.mvc_percent[1] if args.mvc_percent else None,
        ),
        calibration=_calibration_for(args, channels),
    )
    return apply_settings(config, single_settings(getattr(args, "settings", None)))


def _learn_floor(args: argparse.Namespace) -> bool:
    """Is the floor learned? Always, unless --floor-uv holds one (without --learn-floor)."""
    learn = bool(getattr(args, "learn_floor", False))
    if args.floor_uv is None:
        if learn:
            raise ConfigError(
                "--learn-floor goes with --floor-uv (without a given floor it is always learned)"
            )
        return True
    return learn


def _calibration_for(
    args: argparse.Namespace, channels: tuple[str, ...]
) -> tuple[tuple[str, ChannelCalibration], ...]:
    if not args.calibration:
        return ()
    saved = load_calibration(Path(args.calibration))
    missing = [c for c in channels if c not in saved]
    if missing:
        raise ConfigError(
            f"{args.calibration} has no calibration for {missing} (it has {sorted(saved)}); "
            "calibrate those channels or choose others with --channel"
        )
    return tuple((c, saved[c]) for c in channels)


def run(args: argparse.Namespace) -> int:
    try:
        _check_block_size(args.block_size)
        start = _parse_start(args.start)
        if args.out is not None:
            check_output_path(args.out)
        with open_for_command(args) as recording:
            info = recording.info
            units = info.units or _assume_microvolts(info.path)
            config = pipeline_config(args, info.fs, info.channels, units)
            if start is None:
                print(f"{PROG}: note: {RELATIVE_TIMES}", file=sys.stderr)
            with atomic_text_output(args.out) as stream:
                summary = replay(
                    recording,
                    config,
                    EventWriter(stream, args.fmt),
                    start=start,
                    progress=not args.no_progress,
                    block_size=args.block_size,
                )
    except (RecordingError, ConfigError, CalibrationFileError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{PROG}: error: {_os_error_text(error)}", file=sys.stderr)
        return 2
    print(summary.format_text(), file=sys.stderr)
    if start is None:
        print(f"  event times: {RELATIVE_TIMES}", file=sys.stderr)
    return 0


RELATIVE_TIMES = (
    "no --start given, so event times count from the first sample of the file, written as "
    "1970-01-01T00:00:00Z (start_s and end_s are seconds from it); pass --start, e.g. "
    "--start 2026-11-21T22:30:00Z, to date them"
)


def _check_block_size(rows: int) -> None:
    if not 1 <= rows <= MAX_BLOCK_ROWS:
        raise ValueError(f"--block-size {rows}: give 1 to {MAX_BLOCK_ROWS:,} rows")


def _os_error_text(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or error}{where}; check the path and its permissions"


def replay(
    recording: Recording,
    config: PipelineConfig,
    writer: EventWriter,
    *,
    start: datetime | None = None,
    progress: bool = True,
    block_size: int = DEFAULT_BLOCK,
    observe: Callable[[PipelineOutput], None] | None = None,
) -> RunSummary:
    """Stream the recording through a fresh pipeline, writing as it goes; returns the totals.

    Blocks are at most `block_size` rows and at most limits.BLOCK_BYTES of samples, and hold whole
    ticks when a tick fits (the pipeline then never has to stitch a tick across blocks).
    `observe`, when given, sees every pipeline output (envelope hops, events, state changes).
    """
    pipeline = Pipeline(config, source_id=recording.info.source_id, session_start=start)
    block_size = block_rows(config.n_channels, block_size)
    if block_size >= pipeline.tick_samples:
        block_size = block_size // pipeline.tick_samples * pipeline.tick_samples
    summary = RunSummary(config.channels)
    bar = tqdm(
        total=recording.info.n_samples,
        unit="sample",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress or None,
        desc=recording.info.path.name,
        leave=False,
    )
    with bar:
        for block in recording.blocks(block_size):
            _record(pipeline.process(block), writer, summary, observe)
            bar.update(len(block))
    _record(pipeline.finish(), writer, summary, observe)
    if pipeline.samples_in == 0:
        raise RecordingError(f"{recording.info.path} holds no samples; nothing to replay")
    summary.duration_s = pipeline.duration_s
    writer.summary(
        {
            "file": str(recording.info.path),
            "source_id": recording.info.source_id,
            "fs": config.fs,
            "start": None if start is None else iso_utc(start),
            **summary.as_dict(),
        }
    )
    return summary


def _record(
    output: PipelineOutput,
    writer: EventWriter,
    summary: RunSummary,
    observe: Callable[[PipelineOutput], None] | None = None,
) -> None:
    if observe is not None:
        observe(output)
    for record in output.records:
        if isinstance(record, Event):
            writer.event(record)
        elif isinstance(record, QualityChange):
            writer.quality(record)
    summary.add_events(output.events)
    summary.add_state_changes(output.state_changes)
    summary.add_limb_movements(output.limb_movements)
    summary.add_fasciculations(output.fasciculations)


def _assume_microvolts(path: Path) -> str:
    print(
        f"{PROG}: note: {path.name} does not state its units; assuming microvolts "
        "(pass --units to say otherwise)",
        file=sys.stderr,
    )
    return "uV"


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(
            f"--start {text!r} is not an ISO 8601 time such as 2026-11-21T22:30:00Z"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
