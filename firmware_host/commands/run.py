"""`crampwatch run`: the device daemon.

Source (a real ADS1115/MCP3008, a simulated one, or a recording played in real time or faster)
-> the same pipeline as `replay` -> MQTT (through the durable outbox), the night recording,
optionally an event file, and a log that says what happens. Settings come from a TOML file
(`--config`), overridden by the options given here. SIGTERM or Ctrl-C stops cleanly: open events
are closed and sent, `offline` is published, files are closed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dsp.config import ConfigError
from firmware_host.calibration_file import CalibrationFileError
from firmware_host.commands.replay import add_pipeline_options
from firmware_host.device import live_sources
from firmware_host.device.daemon import Daemon
from firmware_host.device.daemon_config import (
    SETTINGS,
    DaemonConfigError,
    load_config,
    resolve,
)
from firmware_host.event_output import OUTPUT_FORMATS, check_output_path
from hardware import log_coalescing
from hardware.acquisition import AcquisitionError
from hardware.recordings import RecordingError
from messaging.broker import parse_broker
from messaging.sessions import check_session_kind

PROG = "crampwatch run"
log = logging.getLogger("crampwatch")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the device daemon: acquire, detect, publish over MQTT, record the night",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--config", type=Path, help="TOML settings (see `crampwatch config`)")
    daemon = parser.add_argument_group("daemon")
    daemon.add_argument(
        "--source", choices=("simulated", "ads1115", "mcp3008", "file"), help="sample source"
    )
    daemon.add_argument("--play", help="play this recording (source 'file')")
    daemon.add_argument("--broker", help="MQTT broker HOST:PORT (default localhost:1883)")
    daemon.add_argument("--outbox", help="SQLite outbox file")
    daemon.add_argument(
        "--no-mqtt", dest="mqtt", action="store_const", const=False, help="do not publish"
    )
    daemon.add_argument(
        "--no-discovery",
        dest="discovery",
        action="store_const",
        const=False,
        help="no Home Assistant discovery",
    )
    daemon.add_argument(
        "--no-record", dest="record", action="store_const", const=False, help="do not record"
    )
    daemon.add_argument("--record-dir", dest="recording_dir", help="where nights are recorded")
    daemon.add_argument(
        "--session",
        metavar="KIND",
        help="record a named session instead of a night, e.g. dialysis (default: night)",
    )
    daemon.add_argument(
        "--log-level", dest="log_level", choices=("debug", "info", "warning", "error")
    )
    live_sources.add_live_options(parser)
    parser.add_argument("--mode", choices=("raw", "envelope"))
    parser.add_argument("--out", help="also write events here as JSON lines (or --format csv)")
    parser.add_argument("--format", dest="fmt", choices=OUTPUT_FORMATS, default="jsonl")
    add_pipeline_options(parser)
    # Unset options come from the config file, then the defaults (daemon_config.SETTINGS).
    parser.set_defaults(func=run, **{s.dest: None for s in SETTINGS})


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """The command line over the config file over the defaults, checked; DaemonConfigError."""
    file_values = load_config(args.config) if args.config else {}
    if args.source is None and args.sim is not None:
        args.source = "simulated"
    if args.source is None and args.play is not None:
        args.source = "file"
    resolve(args, file_values)
    try:
        parse_broker(args.broker)
    except ValueError as error:
        raise DaemonConfigError(f"--broker: {error}") from None
    if args.source == "file" and not args.play:
        raise DaemonConfigError("source 'file' needs a recording: --play FILE or [source] file")
    if args.source == "file" and not Path(args.play).exists():
        raise DaemonConfigError(f"--play {args.play}: no such file")
    try:
        check_session_kind(args.session)
    except ValueError as error:
        raise DaemonConfigError(f"--session: {error}") from None
    if args.out:
        check_output_path(Path(args.out))
    return args


def run(args: argparse.Namespace) -> int:
    try:
        args = settings(args)
    except (DaemonConfigError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    handler = _configure_logging(args.log_level)
    daemon = Daemon(args)
    try:
        with _stop_on_signals(daemon.stop):
            daemon.run()
        log_coalescing.flush_all()
        _log_summary(daemon)
    except (
        ConfigError,
        CalibrationFileError,
        RecordingError,
        AcquisitionError,
        ValueError,
        OSError,
    ) as error:
        log.error("%s: error: %s", PROG, error)
        return 2
    finally:
        log_coalescing.flush_all()
        logging.getLogger().removeHandler(handler)
    return 0


def _log_summary(daemon: Daemon) -> None:
    """The run's totals, as log lines (with time and level like every other)."""
    if daemon.summary is not None:
        for line in daemon.summary.format_text().splitlines():
            log.info("%s", line)
    s = daemon.stats
    if s:
        lost = s["missed_slots"] + s["dropped_frames"]
        kept = 100.0 * (1 - lost / max(1, s["frames"]))
        log.info(
            "acquisition: %d frames, %d missing (%d slots the host was late for, %d dropped "
            "for a slow reader: %.2f %% of slots kept), %d bus errors (%d retried)",
            s["frames"], s["missing_frames"] + s["dropped_frames"], s["missed_slots"],
            s["dropped_frames"], kept, s["bus_errors"], s["retries"],
        )  # fmt: skip


def _configure_logging(level: str) -> logging.Handler:
    """Log lines on stderr, each with its time and level (without the time under systemd: the
    journal adds its own); crampwatch's own lines at `level`, other libraries' warnings too.
    Repeated conditions are coalesced (`hardware.log_coalescing`)."""
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = "%(levelname)s %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    for logger in (root, logging.getLogger("crampwatch")):
        for old in list(logger.handlers):
            if getattr(old, "crampwatch_run", False):
                logger.removeHandler(old)
    handler.crampwatch_run = True  # type: ignore[attr-defined]
    log_coalescing.install(handler)
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    for name in ("crampwatch", "hardware"):
        logging.getLogger(name).setLevel(level.upper())
    return handler


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT ask for a clean stop; a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("%s received: stopping cleanly", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
