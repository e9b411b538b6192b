"""The dashboard's commands: `crampwatch dashboard`, `crampwatch intake add|import` and
`crampwatch session log|lab` (a dialysis session's details, a lab result).

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
    _add_session_parsers(subparsers)


def _add_session_parsers(subparsers: argparse._SubParsersAction) -> None:
    session = subparsers.add_parser(
        "session", help="log a dialysis (or other named) session's details, or a lab result"
    )
    actions = session.add_subparsers(dest="action", metavar="ACTION", required=True)
    log = actions.add_parser(
        "log",
        help="log a session (give --start) or more about one (give --id); weights in kg or lb, "
        "volumes in mL or L",
    )
    log.add_argument("--id", dest="session_id", help="the session to add to (see the dashboard)")
    log.add_argument("--kind", help="a new session's kind (default dialysis)")
    log.add_argument("--start", help="treatment start (ISO 8601; local time without an offset)")
    log.add_argument("--end", help="treatment end")
    log.add_argument("--pre-weight", dest="pre_weight_kg", help="weight before, e.g. 73.1kg")
    log.add_argument("--post-weight", dest="post_weight_kg", help="weight after, e.g. 70.9kg")
    log.add_argument("--uf", dest="uf_volume_ml", help="ultrafiltration volume, e.g. 2200mL")
    log.add_argument("--sodium", dest="dialysate_sodium_mmol_l", help="dialysate sodium, mmol/L")
    log.add_argument(
        "--bp", action="append", default=[], metavar="'HH:MM SYS/DIA [pulse P] [uf ML]'",
        help="a blood pressure reading on the session's day (repeat for more; replaces the "
        "readings logged before)",
    )  # fmt: skip
    log.add_argument("--ended-early", metavar="REASON", help="the session ended early, and why")
    log.add_argument("--note")
    _db_options(log)
    log.set_defaults(func=run_session_log)
    lab = actions.add_parser("lab", help="log a lab result, e.g. calcium '2.2 mmol/L'")
    lab.add_argument("analyte", help="calcium, phosphorus, potassium or magnesium")
    lab.add_argument("value", help="with its unit: '2.2 mmol/L', '8.8 mg/dL'")
    lab.add_argument("--time", help="when the blood was taken (ISO 8601; default now)")
    lab.add_argument("--note")
    _db_options(lab)
    lab.set_defaults(func=run_session_lab)


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


def _open_sessions(args: argparse.Namespace, prog: str):
    try:
        from dashboards.dialysis_log import DialysisLog
        from dashboards.server import local_zone
        from dashboards.store import Store
    except ImportError as error:
        raise SystemExit(f"{prog}: error: {error.name} is missing; {EXTRA_HINT}") from None
    store = Store(args.db.expanduser())
    return store, DialysisLog(store, local_zone(args.tz))


def session_payload(args: argparse.Namespace, store, tz) -> dict:
    """The command line's details as a details payload (the same checks as the pages)."""
    from dashboards.dialysis import DetailsError, SessionDetails, readings_from_lines, session_time

    names = ("session_id", "start", "end", "pre_weight_kg", "post_weight_kg", "uf_volume_ml",
             "dialysate_sodium_mmol_l", "note")  # fmt: skip
    payload = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.kind:
        payload["session_kind"] = args.kind
    if args.ended_early is not None:
        payload["ended_early"] = True
        payload["ended_early_reason"] = args.ended_early
    if args.bp:
        if args.start:
            start = session_time(args.start, "start", tz, None)
        else:
            rows = store.named_session_rows(session_id=args.session_id) if args.session_id else []
            stored = SessionDetails.from_stored(rows[0]["details"]) if rows else SessionDetails()
            start = stored.start or (
                session_time(rows[0]["span_start"], "start", tz, None) if rows else None
            )
        if start is None:
            raise DetailsError("--bp needs the session's start: give --start")
        local = start.astimezone(tz)
        payload["blood_pressure"] = readings_from_lines("\n".join(args.bp), local.date(), tz,
                                                        local.time())  # fmt: skip
    return payload


def run_session_log(args: argparse.Namespace) -> int:
    from dashboards.dialysis import DetailsError
    from dashboards.store import StoreError

    prog = "crampwatch session log"
    try:
        store, log = _open_sessions(args, prog)
        with store:
            session_id, _details, new = log.log(session_payload(args, store, log.tz), "cli")
    except (DetailsError, StoreError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"{'logged' if new else 'updated'}: session {session_id}")
    return 0


def run_session_lab(args: argparse.Namespace) -> int:
    from dashboards.dialysis import DetailsError
    from dashboards.store import StoreError

    prog = "crampwatch session lab"
    payload = {"analyte": args.analyte, "value": args.value}
    for name in ("time", "note"):
        if getattr(args, name) is not None:
            payload[name] = getattr(args, name)
    try:
        store, log = _open_sessions(args, prog)
        with store:
            lab, new = log.add_lab(payload, "cli")
    except (DetailsError, StoreError, ValueError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    verb = "logged" if new else "already logged"
    print(f"{verb}: {lab.analyte} {lab.value:.3g} mmol/L at {lab.time:%Y-%m-%d %H:%M} UTC")
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
