"""The `crampwatch` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dashboards import commands as dashboard_commands
from dsp import __version__
from firmware_host.allocator import keep_block_buffers
from firmware_host.commands import (
    calibrate,
    config,
    demo,
    evaluate,
    export,
    replay,
    run,
    samples,
    service,
)
from research import commands as research_commands

# In the order `crampwatch --help` lists them.
COMMANDS = (demo, samples, replay, evaluate, run, calibrate, export, config, service)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crampwatch",
        description="Calf-EMG cramp detector: replay recordings, run simulated nights, score detections.",
    )
    parser.add_argument("--version", action="version", version=f"crampwatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    dashboard_commands.add_parsers(subparsers)
    research_commands.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    keep_block_buffers()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("crampwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
