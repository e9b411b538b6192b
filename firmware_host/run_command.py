"""`crampwatch run --sim ads1115|mcp3008 --signal FILE|synthetic [--speed X]`: the live path.

The real driver reads a simulated converter at the bus; its samples run through the same pipeline
as a replay; events are printed as they happen (or written like `replay` writes them, with
`--out`). Ctrl-C stops cleanly: open events are closed and the totals printed.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dsp.config import ConfigError
from dsp.events import STATE_IDLE, Event, QualityChange, iso_utc
from dsp.pipeline import Pipeline, PipelineOutput
from firmware_host import live_sources
from firmware_host.calibration_file import CalibrationFileError
from firmware_host.event_output import OUTPUT_FORMATS, EventWriter, atomic_text_output, event_line
from firmware_host.replay_command import add_pipeline_options
from firmware_host.run_summary import RunSummary
from hardware.acquisition import AcquisitionError
from hardware.closing import ClosedOnExit
from hardware.pins import (
    MARKER_BUTTON_PIN,
    STATUS_LED_PIN,
    MarkerButton,
    StatusLed,
    led_state_for,
)
from hardware.recordings import RecordingError

PROG = "crampwatch run"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the live path (simulated converters: --sim)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    live_sources.add_live_options(parser)
    parser.add_argument("--mode", choices=("raw", "envelope"), default="raw")
    parser.add_argument("--out", type=Path, help="write events here (default: print them)")
    parser.add_argument("--format", dest="fmt", choices=OUTPUT_FORMATS, default="jsonl")
    add_pipeline_options(parser)
    parser.set_defaults(func=run, device="sim")


def run(args: argparse.Namespace) -> int:
    if not args.sim:
        print(
            f"{PROG}: error: say which converter: --sim mcp3008 or --sim ads1115 (real "
            "hardware comes with the device daemon)",
            file=sys.stderr,
        )
        return 2
    try:
        live = live_sources.open_live(args)
        with live.source:
            live.source.start()
            config, arrays = live.configure(args)
            started = datetime.now(UTC)
            pipeline = Pipeline(
                config, source_id=f"{args.device}-{started.isoformat()}", session_start=started
            )
            summary = RunSummary(config.channels)
            print(
                f"{args.sim}: {len(config.channels)} channel(s) at {config.fs:g} Hz "
                f"(estimated), {args.speed:g}x real time",
                file=sys.stderr,
            )
            panel = DevicePanel(live, config.channels)
            with (
                panel,
                atomic_text_output(args.out) if args.out else nullcontext(None) as stream,
            ):
                writer = EventWriter(stream, args.fmt) if stream else None
                try:
                    for array in arrays:
                        output = pipeline.process(array)
                        _show(output, started, summary, writer)
                        panel.update(output, writer, pipeline.duration_s)
                except KeyboardInterrupt:
                    print(f"{PROG}: stopping", file=sys.stderr)
                output = pipeline.finish()
                _show(output, started, summary, writer)
                panel.update(output, writer, pipeline.duration_s)
                summary.duration_s = pipeline.duration_s
                if writer:
                    writer.summary(
                        {**summary.as_dict(), "acquisition": live.source.stats.as_dict()}
                    )
    except (
        ConfigError,
        CalibrationFileError,
        RecordingError,
        AcquisitionError,
        ValueError,
    ) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(summary.format_text(), file=sys.stderr)
    stats = live.source.stats
    print(
        f"acquisition: {stats.frames} frames, {stats.missing_frames} missing, "
        f"{stats.bus_errors} bus errors ({stats.retries} retried), {stats.overruns} overruns",
        file=sys.stderr,
    )
    return 0


class DevicePanel(ClosedOnExit):
    """The wearer's side of the device: the marker button (each press is written beside the
    events, for research) and the status LED (ok, cramp, signal lost). On simulated converters
    both sit on gpiozero mock pins, so tests can press the button."""

    def __init__(self, live: live_sources.Live, channels: tuple[str, ...]) -> None:
        self.clock = live.source.clock
        self.button = MarkerButton(
            MARKER_BUTTON_PIN, clock=self.clock, pin_factory=live.pin_factory
        )
        self.led = StatusLed(STATUS_LED_PIN, pin_factory=live.pin_factory)
        self.states = dict.fromkeys(channels, STATE_IDLE)
        self.led.show(led_state_for(self.states))
        self.t0: float | None = None
        self.markers: list[dict[str, object]] = []

    def update(self, output: PipelineOutput, writer: EventWriter | None, elapsed_s: float) -> None:
        """Follow the channel states on the LED; write any marker presses."""
        for change in output.state_changes:
            self.states[change.channel] = change.state
        if output.state_changes:
            self.led.show(led_state_for(self.states))
        if self.t0 is None:  # the clock time of the session's first sample
            self.t0 = self.clock.monotonic() - elapsed_s
        for marker in self.button.take_markers():
            record = {
                "type": "marker",
                "source": marker.source,
                "at_s": round(marker.at - self.t0, 3),
                "wall": iso_utc(marker.wall),
            }
            self.markers.append(record)
            if writer is not None:
                writer.record(record)
            else:
                print(f"          marker ({marker.source}) at {record['at_s']:.1f} s", flush=True)

    def close(self) -> None:
        self.button.close()
        self.led.close()


def _show(
    output: PipelineOutput, started: datetime, summary: RunSummary, writer: EventWriter | None
) -> None:
    summary.add_events(output.events)
    summary.add_state_changes(output.state_changes)
    for record in output.records:
        if writer is not None:
            if isinstance(record, Event):
                writer.event(record)
            elif isinstance(record, QualityChange):
                writer.quality(record)
            continue
        if isinstance(record, Event):
            clock = (started + timedelta(seconds=record.start_s)).strftime("%H:%M:%S")
            print(f"{clock}  {event_line(record)}", flush=True)
        elif isinstance(record, QualityChange) and record.problems:
            print(
                f"          {record.channel}: {', '.join(record.problems)} at {record.at_s:.0f} s",
                flush=True,
            )


def _speed_text(speed: float) -> str:
    return "as fast as possible" if speed == 0 else f"{speed:g}x real time"
