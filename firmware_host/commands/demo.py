"""`crampwatch demo`: the whole product with demo data, or (`--terminal`) one night in the terminal.

By default: a private Mosquitto broker, the dashboard on localhost and a simulated device playing a
few weeks of synthetic nights (see firmware_host/demo/stack.py). With `--terminal`, no services: a
seeded synthetic two-calf night (cramps, turning over, periodic limb movements, a walk to the
bathroom, an electrode coming off) is streamed through the same pipeline that runs live, events
are printed as they happen, and the detections are scored against the night's ground truth.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import ExitStack, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from dsp.config import ConfigError, PipelineConfig, ScalingConfig
from dsp.evaluation import evaluate
from dsp.pipeline import Pipeline, PipelineOutput
from firmware_host.commands.evaluate import write_annotations_csv
from firmware_host.event_output import (
    EventWriter,
    atomic_text_output,
    check_output_path,
    event_line,
)
from firmware_host.run_summary import RunSummary
from hardware.synthetic_emg import SyntheticEMG, plan_night

BLOCK_SAMPLES = 65536


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a simulated night through the detector (no hardware needed)",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "--terminal", action="store_true", help="one night in the terminal, no services"
    )
    parser.add_argument("--nights", type=int, default=14, help="nights the device plays (14)")
    parser.add_argument("--port", type=int, default=8080, help="dashboard port (8080)")
    parser.add_argument("--dir", type=Path, help="where the demo keeps its files (a temp dir)")
    parser.add_argument("--tz", help="time zone for nights (default: the system's)")
    parser.add_argument("--exit-when-done", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--hours", type=float, help="night length (default 7.5 for the device, 8 with --terminal)"
    )
    parser.add_argument("--seed", type=int, help="which simulated night (default 7)")
    parser.add_argument("--fs", type=float, help="sampling rate (default 1000)")
    parser.add_argument("--out", type=Path, help="also write the events as JSON lines here")
    parser.add_argument("--truth-out", type=Path, help="write the night's ground truth (CSV)")
    parser.add_argument("--movements", action="store_true", help="print movements too")
    parser.set_defaults(func=run)


# Options that only mean something for one night in the terminal.
TERMINAL_ONLY = ("seed", "fs", "out", "truth_out", "movements")


def run(args: argparse.Namespace) -> int:
    if args.terminal:
        return run_terminal(args)
    given = [name for name in TERMINAL_ONLY if getattr(args, name) not in (None, False)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        print(
            f"crampwatch demo: error: {options} belong to one night in the terminal: add "
            "--terminal (without it the demo starts the broker, dashboard and device)",
            file=sys.stderr,
        )
        return 2
    return run_stack(args)


def run_stack(args: argparse.Namespace) -> int:
    """Broker, dashboard and simulated device; serves until Ctrl-C."""
    prog = "crampwatch demo"
    try:
        from dashboards.server import DashboardSetupError, local_zone
        from firmware_host.demo.stack import NIGHT_HOURS, DemoStack
    except ImportError as error:
        print(f"{prog}: error: {error.name} is missing: pip install 'crampwatch[dashboard]'",
              file=sys.stderr)  # fmt: skip
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("crampwatch.dashboard.ingest").setLevel(logging.WARNING)
    if not 1 <= args.nights <= 120 or not 0 < (args.hours or NIGHT_HOURS) <= 16:
        print(f"{prog}: error: --nights must be 1-120 and --hours 0-16", file=sys.stderr)
        return 2
    try:
        tz = local_zone(args.tz)
        with ExitStack() as cleanup:
            if args.dir:
                directory = args.dir
                directory.mkdir(parents=True, exist_ok=True)
            else:  # removed again when the demo stops
                directory = Path(
                    cleanup.enter_context(TemporaryDirectory(prefix="crampwatch-demo-"))
                )
            stack = DemoStack(directory, args.port, args.nights, tz, args.hours or NIGHT_HOURS)
            signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: broker and files closed
            stack.run(exit_when_done=args.exit_when_done)
    except (DashboardSetupError, RuntimeError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: stopped", file=sys.stderr)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_terminal(args: argparse.Namespace) -> int:
    args.hours = args.hours or 8.0
    args.seed = 7 if args.seed is None else args.seed
    args.fs = args.fs or 1000.0
    if not 0 < args.hours <= 24:
        print("crampwatch demo: error: --hours must be between 0 and 24", file=sys.stderr)
        return 2
    try:
        if args.out:
            check_output_path(args.out)
        plan = plan_night(
            args.seed,
            duration_s=args.hours * 3600.0,
            fs=args.fs,
            channels=("left_calf", "right_calf"),
        )
        config = PipelineConfig(
            fs=args.fs,
            channels=plan.channels,
            device="demo",
            scaling=ScalingConfig(units="uV", rails=plan.rails_uv),
        )
    except (ConfigError, ValueError) as error:
        print(f"crampwatch demo: error: {error}", file=sys.stderr)
        return 2
    night_start = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
    pipeline = Pipeline(config, source_id=f"demo-seed-{args.seed}", session_start=night_start)
    summary = RunSummary(plan.channels)
    ended: list[dict] = []
    print(
        f"simulated night: {args.hours:g} h, {len(plan.channels)} channels at {args.fs:g} Hz, "
        f"seed {args.seed}; events as the detector reports them:"
    )
    with atomic_text_output(args.out) if args.out else nullcontext(None) as stream:
        writer = EventWriter(stream, "jsonl") if stream else None
        for block in SyntheticEMG(plan, seed=args.seed).blocks(BLOCK_SAMPLES):
            _show(pipeline.process(block), night_start, summary, writer, ended, args.movements)
        _show(pipeline.finish(), night_start, summary, writer, ended, args.movements)
        summary.duration_s = pipeline.duration_s
        if writer:
            writer.summary(summary.as_dict())
    if args.truth_out:
        write_annotations_csv(args.truth_out, plan.annotations)
    print()
    print(summary.format_text())
    report = evaluate(
        ended, plan.annotations, kinds=("cramp",), recording_hours=pipeline.duration_s / 3600
    )
    print()
    print("scored against the simulated night's ground truth:")
    print(report.format_text(max_listed=5))
    return 0


def _show(
    output: PipelineOutput,
    night_start: datetime,
    summary: RunSummary,
    writer: EventWriter | None,
    ended: list[dict],
    movements: bool,
) -> None:
    summary.add_events(output.events)
    summary.add_state_changes(output.state_changes)
    summary.add_limb_movements(output.limb_movements)
    summary.add_fasciculations(output.fasciculations)
    for event in output.events:
        if writer:
            writer.event(event)
        if event.phase == "ended":
            ended.append(event.to_dict())
        if event.kind == "cramp" or movements:
            clock = (night_start + timedelta(seconds=event.start_s)).strftime("%H:%M:%S")
            print(f"{clock}  {event_line(event)}", flush=True)
    for change in output.state_changes:
        if change.state == "signal_lost":
            clock = (night_start + timedelta(seconds=change.at_s)).strftime("%H:%M:%S")
            print(f"{clock}  signal lost on {change.channel}", flush=True)
