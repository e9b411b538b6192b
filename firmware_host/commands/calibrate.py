"""`crampwatch calibrate`: measure each channel's resting floor and, optionally, its maximal
voluntary contraction (MVC), and save them for the detector (`--calibration FILE`).

From a recording: `crampwatch calibrate FILE --rest START END [--mvc START END]`.
Guided, from a (simulated) converter: `crampwatch calibrate --sim mcp3008 [--mvc]`: relax for
`--rest-s` seconds, then, with `--mvc`, contract as hard as you can for `--mvc-s` seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dsp.calibration import mvc_uv, rest_floor_uv
from dsp.config import ChannelCalibration, ConfigError, PipelineConfig
from dsp.pipeline import Pipeline
from firmware_host.calibration_file import save_calibration
from firmware_host.commands.replay import (
    add_pipeline_options,
    add_recording_options,
    open_for_command,
    pipeline_config,
)
from firmware_host.device import live_sources
from firmware_host.event_output import check_output_path
from hardware.recordings import RecordingError

PROG = "crampwatch calibrate"
# Only these stretches are kept in memory: a resting floor needs a few minutes at most, an MVC
# a few seconds of contraction (each repeat).
MAX_REST_S = 600.0
MAX_MVC_S = 120.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure resting floor and MVC per channel",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("file", nargs="?", type=Path, help="a recording to calibrate from")
    parser.add_argument(
        "--rest",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        help="seconds of the recording where the wearer rests",
    )
    parser.add_argument(
        "--mvc",
        nargs="*",
        type=float,
        metavar="START END",
        help="with a recording: the seconds of a maximal contraction; live: also record one",
    )
    parser.add_argument("--rest-s", type=float, default=30.0, help="live: seconds of rest")
    parser.add_argument("--mvc-s", type=float, default=5.0, help="live: seconds of contraction")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("calibration.json"),
        help="where to save (default calibration.json)",
    )
    add_recording_options(parser)
    live_sources.add_live_options(parser)
    add_pipeline_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        check_output_path(args.out)
        if args.file is not None:
            calibrations, fs = _from_file(args)
            source = str(args.file)
        elif args.sim:
            calibrations, fs = _guided(args)
            source = f"sim:{args.sim}"
        else:
            raise ValueError("give a recording (FILE --rest START END) or a converter (--sim ...)")
        save_calibration(args.out, calibrations, fs=fs, source=source)
    except (RecordingError, ConfigError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    for name, calibration in calibrations.items():
        mvc = "" if calibration.mvc_uv is None else f", MVC {calibration.mvc_uv:.1f} uV"
        print(f"{name}: resting floor {calibration.floor_uv:.2f} uV{mvc}")
    print(f"saved {args.out}; use it with --calibration {args.out}")
    return 0


def envelope_of(blocks: Iterable[np.ndarray], config: PipelineConfig) -> np.ndarray:
    """The pipeline's envelope (hops x channels) over a whole recording segment."""
    pipeline = Pipeline(config, source_id="calibration")
    parts = [pipeline.process(block).envelope for block in blocks]
    # the pipeline holds back the last fraction of a second until it finishes
    parts.append(pipeline.finish().envelope)
    return np.concatenate(parts)


def calibrations_from(
    config: PipelineConfig, rest: np.ndarray, contraction: np.ndarray | None
) -> dict[str, ChannelCalibration]:
    """Floor (and MVC) per channel from the envelope of a rest and a contraction stretch."""
    hop_s = config.envelope.hop_samples(config.fs) / config.fs
    floors = rest_floor_uv(
        rest, config.envelope.hops_per_tick(config.fs), config.detector.floor_percentile
    )
    mvcs = mvc_uv(contraction, max(1, round(1.0 / hop_s))) if contraction is not None else None
    result = {}
    for c, name in enumerate(config.channels):
        mvc = None if mvcs is None else float(mvcs[c])
        if mvc is not None and mvc <= floors[c] * 2:
            raise ValueError(
                f"{name}: the contraction ({mvc:.1f} uV) is not clearly above rest "
                f"({floors[c]:.1f} uV); check the electrodes and contract harder"
            )
        result[name] = ChannelCalibration(float(floors[c]), mvc)
    return result


def _from_file(args: argparse.Namespace) -> tuple[dict[str, ChannelCalibration], float]:
    if not args.rest:
        raise ValueError("say where the wearer rests: --rest START END (seconds)")
    spans = [_span("--rest", args.rest, MAX_REST_S)]
    if args.mvc:
        spans.append(_span("--mvc", args.mvc, MAX_MVC_S))
    with open_for_command(args) as recording:
        info = recording.info
        config = pipeline_config(args, info.fs, info.channels, info.units or "uV")
        pieces = envelope_spans(recording.blocks(), config, spans)
    return calibrations_from(config, pieces[0], pieces[1] if args.mvc else None), config.fs


def envelope_spans(
    blocks: Iterable[np.ndarray], config: PipelineConfig, spans: list[tuple[float, float]]
) -> list[np.ndarray]:
    """The pipeline's envelope (hops x channels) inside each span of seconds, streamed: only the
    spans are kept, and reading stops after the last one."""
    pipeline = Pipeline(config, source_id="calibration")
    hop_s = config.envelope.hop_samples(config.fs) / config.fs
    pieces: list[list[np.ndarray]] = [[] for _ in spans]
    hops = 0
    last_end = max(end for _, end in spans)
    for block in [*blocks, None]:  # None: the end (the pipeline holds back a little)
        envelope = (pipeline.finish() if block is None else pipeline.process(block)).envelope
        ends = (hops + np.arange(1, len(envelope) + 1)) * hop_s
        for piece, (start, end) in zip(pieces, spans, strict=True):
            piece.append(envelope[(ends > start) & (ends <= end)])
        hops += len(envelope)
        if hops * hop_s >= last_end:
            break
    else:
        length_s = hops * hop_s
        for start, end in spans:
            if end > length_s + hop_s:
                raise ValueError(
                    f"{start:g}-{end:g} s is outside the recording, which is {length_s:.1f} s long"
                )
    width = (0, config.n_channels)
    return [np.concatenate(piece) if piece else np.empty(width) for piece in pieces]


def _guided(args: argparse.Namespace) -> tuple[dict[str, ChannelCalibration], float]:
    with_mvc = args.mvc is not None
    mvc_s = args.mvc_s if with_mvc else 0.0
    _seconds("--rest-s", args.rest_s, MAX_REST_S)
    if with_mvc:
        _seconds("--mvc-s", mvc_s, MAX_MVC_S)
    live = live_sources.open_live(args, calibration_script=(args.rest_s, mvc_s))
    with live.source:
        live.source.start()
        config, blocks = live.configure(args)
        print(f"relax your calves for {args.rest_s:g} s ...", file=sys.stderr)
        recorded = live.take_seconds(blocks, args.rest_s)
        if with_mvc:
            print(
                f"now push your toes down as hard as you can for {mvc_s:g} s ...", file=sys.stderr
            )
            recorded += live.take_seconds(blocks, mvc_s)
    envelope = envelope_of(recorded, config)
    hop_s = config.envelope.hop_samples(config.fs) / config.fs
    # The first second settles the filters; the contraction is the last `mvc_s` seconds.
    rest = _slice(envelope, hop_s, (min(1.0, args.rest_s / 2), args.rest_s))
    contraction = _slice(envelope, hop_s, (args.rest_s, args.rest_s + mvc_s)) if with_mvc else None
    return calibrations_from(config, rest, contraction), config.fs


def _span(flag: str, values: list[float], longest: float) -> tuple[float, float]:
    if len(values) != 2 or not values[1] > values[0] >= 0 or not np.isfinite(values[1]):
        raise ValueError(f"{flag} takes START END in seconds with END > START >= 0")
    if values[1] - values[0] > longest:
        raise ValueError(
            f"{flag} spans {values[1] - values[0]:g} s; give at most {longest:g} s (only that "
            "stretch is kept in memory, and it is plenty for a calibration)"
        )
    return values[0], values[1]


def _seconds(flag: str, value: float, longest: float) -> None:
    if not 0 < value <= longest:
        raise ValueError(f"{flag} {value:g}: give more than 0 and at most {longest:g} seconds")


def _slice(envelope: np.ndarray, hop_s: float, span: tuple[float, float]) -> np.ndarray:
    length_s = len(envelope) * hop_s
    if span[1] > length_s + hop_s:
        raise ValueError(
            f"{span[0]:g}-{span[1]:g} s is outside the recording, which is {length_s:.1f} s long"
        )
    ends = (np.arange(len(envelope)) + 1) * hop_s
    return envelope[(ends > span[0]) & (ends <= span[1])]
