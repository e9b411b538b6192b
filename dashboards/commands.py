"""The dashboard's commands: `crampwatch dashboard` and `crampwatch intake add|import`.

The web parts (FastAPI, uvicorn) are imported only when a command runs, so the device side of
crampwatch does not need them (`pip install 'crampwatch[dashboard]'`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_DB = Path("~/.local/share/crampwatch/dashboard.db")
EXTRA_HINT = "the dashboard needs its extra: pip install 'crampwatch[dashboard]' (./run.sh does it)"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    dashboard = subparsers.add_parser(
        "dashboard", help="store device messages and intake, serve the web dashboard"
    )
    _db_options(dashboard)
    dashboard.add_argument("--broker", default="localhost:1883", help="MQTT HOST:PORT, or 'none'")
    dashboard.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="a further name the dashboard is reached by (default: the loopback names, or the "
        "--host address; repeat for more)",
    )
    dashboard.add_argument(
        "--token",
        default=os.environ.get("CRAMPWATCH_DASHBOARD_TOKEN"),
        help="required to listen beyond loopback (or $CRAMPWATCH_DASHBOARD_TOKEN)",
    )
    dashboard.set_defaults(func=run_dashboard)

    intake = subparsers.add_parser("intake", help="log intake from the command line")
    actions = intake.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="log FACTOR AMOUNT[UNIT], e.g. magnesium 300mg")
    add.add_argument("factor")
    add.add_argument("amount", help="e.g. 300mg, '1.5 L', 2 (in the factor's unit)")
    add.add_argument("--time", help="when (ISO 8601; local time when no offset; default now)")
    add.add_argument("--note", default=None)
    add.add_argument(
        "--new-factor",
        action="store_true",
        help="FACTOR is a new factor of its own, even if it is spelt like a known one",
    )
    _db_options(add)
    add.set_defaults(func=run_intake_add)
    imported = actions.add_parser("import", help="import a Cronometer daily-nutrition CSV")
    imported.add_argument("file", type=Path)
    _db_options(imported)
    imported.set_defaults(func=run_intake_import)


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"SQLite file ({DEFAULT_DB})")
    parser.add_argument("--tz", help="time zone for nights and days (default: the system's)")


def _open(args: argparse.Namespace, prog: str):
    try:
        from dashboards.intake_log import IntakeLog, load_catalogue
        from dashboards.server import local_zone
        from dashboards.store import Store
    except ImportError as error:
        raise SystemExit(f"{prog}: error: {error.name} is missing; {EXTRA_HINT}") from None
    store = Store(args.db.expanduser())
    return store, IntakeLog(store, load_catalogue(store), local_zone(args.tz))


def run_intake_add(args: argparse.Namespace) -> int:
    from dashboards.catalogue import IntakeError, UnknownFactorError
    from dashboards.store import StoreError

    prog = "crampwatch intake add"
    try:
        store, log = _open(args, prog)
        with store:
            payload = {"factor": args.factor, "amount": args.amount, "note": args.note}
            if args.new_factor:
                payload["new_factor"] = True
            if args.time:
                payload["time"] = args.time
            entry, new = log.add(payload, "cli")
    except (IntakeError, StoreError, ValueError) as error:
        hint = " (--new-factor confirms it)" if isinstance(error, UnknownFactorError) else ""
        print(f"{prog}: error: {error}{hint}", file=sys.stderr)
        return 2
    verb = "logged" if new else "already logged"
    print(
        f"{verb}: {entry.amount:g} {entry.unit} {entry.factor} at {entry.time:%Y-%m-%d %H:%M} UTC"
    )
    return 0


def run_intake_import(args: argparse.Namespace) -> int:
    from dashboards.catalogue import IntakeError
    from dashboards.store import StoreError

    prog = "crampwatch intake import"
    try:
        store, log = _open(args, prog)
        with store:
            total, new = log.import_cronometer(args.file)
    except (IntakeError, StoreError, OSError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"imported {total} entries from {args.file} ({new} new)")
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    prog = "crampwatch dashboard"
    try:
        from dashboards.guard import is_loopback
        from dashboards.server import DashboardSetupError, build, local_zone, serve
        from dashboards.store import StoreError
        from messaging.broker import parse_broker
    except ImportError as error:
        print(f"{prog}: error: {error.name} is missing; {EXTRA_HINT}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if not is_loopback(args.host) and not args.token:
            raise DashboardSetupError(
                f"listening on {args.host} lets other machines in: give --token (or set "
                "CRAMPWATCH_DASHBOARD_TOKEN), or keep the default --host 127.0.0.1"
            )
        if not 0 < args.port < 65536:
            raise DashboardSetupError("--port must be 1-65535")
        broker = None if args.broker == "none" else parse_broker(args.broker)
        process = build(args.db.expanduser(), broker=broker, tz=local_zone(args.tz),
                        token=args.token, listen=(args.host, args.port),
                        allowed_hosts=args.allowed_host)  # fmt: skip
    except (DashboardSetupError, StoreError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        serve(process, args.host, args.port)
    finally:
        process.close()
    return 0
