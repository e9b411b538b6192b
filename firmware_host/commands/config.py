"""`crampwatch config check FILE` and `crampwatch config example`: the daemon's TOML settings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_host.device.daemon_config import BY_NAME, DaemonConfigError, example_text, load_config

PROG = "crampwatch config"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "config", help="check a daemon configuration file, or print a commented example"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate FILE and show the settings it makes")
    check.add_argument("file", type=Path)
    check.set_defaults(func=check_file)
    example = actions.add_parser("example", help="print a full, commented configuration")
    example.set_defaults(func=print_example)


def check_file(args: argparse.Namespace) -> int:
    try:
        values = load_config(args.file)
    except DaemonConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(f"{args.file}: valid ({len(values)} setting(s); the rest are defaults)")
    by_dest = {s.dest: s for s in BY_NAME.values()}
    for dest, value in values.items():
        setting = by_dest[dest]
        shown = "********" if setting.key == "password" else value
        print(f"  [{setting.section}] {setting.key} = {shown!r}")
    return 0


def print_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_text())
    return 0
