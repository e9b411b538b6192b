"""`crampwatch install-service`: run the daemon under systemd on the Pi.

Writes `crampwatch.service` (restart on failure, logs in the journal, SIGTERM for a clean stop,
started after the clock is set, real-time priority allowed for the converter's process) and, when
missing, a commented configuration file; then reloads systemd and enables the service. `--print`
only shows the unit.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import subprocess
import sys
from pathlib import Path

from firmware_host.device.daemon_config import example_text
from firmware_host.device.live_sources import REALTIME_PRIORITY

PROG = "crampwatch install-service"
UNIT_NAME = "crampwatch.service"
TIME_SYNC_NOTE = (
    "The service starts once the clock is where it was at the last shutdown. To have it wait for "
    "network time as well: sudo systemctl enable systemd-time-wait-sync.service (then, without a "
    "network, it waits for ever). Either way, a clock set later is noticed and event times are "
    "corrected."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "install-service", help="install the daemon as a systemd service (on the Pi)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("/etc/crampwatch/crampwatch.toml"),
        help="configuration file the service runs with (written if missing)",
    )
    parser.add_argument("--user", default=None, help="user the daemon runs as (default: you)")
    parser.add_argument(
        "--unit-dir", type=Path, default=Path("/etc/systemd/system"), help=argparse.SUPPRESS
    )
    parser.add_argument("--print", dest="show", action="store_true", help="only print the unit")
    parser.add_argument(
        "--no-start", action="store_true", help="write the files but do not enable or start it"
    )
    parser.set_defaults(func=run)


def unit_text(executable: str, config: Path, user: str) -> str:
    """The systemd unit for `crampwatch run --config CONFIG`."""
    return f"""[Unit]
Description=crampwatch calf-EMG cramp detector
Wants=network-online.target
# A Pi has no real-time clock. time-set.target: the clock is at least where it was at the last
# shutdown; time-sync.target: network time, when something (systemd-time-wait-sync.service) holds
# the target back until it is synchronised. Passive targets: ordered after, never pulled in.
# A clock set later, mid-night, is noticed by the daemon, which corrects its event times.
After=network-online.target mosquitto.service time-set.target time-sync.target

[Service]
Type=simple
User={user}
# I2C, SPI and GPIO access on Raspberry Pi OS.
SupplementaryGroups=i2c spi gpio
ExecStart={executable} run --config {config}
# The converter's own process may ask for real-time priority {REALTIME_PRIORITY} (SCHED_FIFO):
# then nothing else on the Pi delays a conversion.
LimitRTPRIO={REALTIME_PRIORITY}
# SIGTERM: open events are closed and sent, "offline" is published, files are closed.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=5
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=multi-user.target
"""


def run(args: argparse.Namespace) -> int:
    executable = shutil.which("crampwatch") or str(Path(sys.executable).with_name("crampwatch"))
    unit = unit_text(executable, args.config, args.user or getpass.getuser())
    if args.show:
        sys.stdout.write(unit)
        return 0
    try:
        if not args.config.exists():
            args.config.parent.mkdir(parents=True, exist_ok=True)
            args.config.write_text(example_text())
            print(f"wrote {args.config}: edit it (device id, source, broker)", file=sys.stderr)
        args.unit_dir.mkdir(parents=True, exist_ok=True)
        (args.unit_dir / UNIT_NAME).write_text(unit)
    except PermissionError as error:
        print(f"{PROG}: error: {error}; run it with sudo", file=sys.stderr)
        return 2
    print(f"wrote {args.unit_dir / UNIT_NAME}", file=sys.stderr)
    if args.no_start:
        return 0
    if not shutil.which("systemctl"):
        print(
            f"{PROG}: no systemctl here; on the Pi run: sudo systemctl daemon-reload && "
            "sudo systemctl enable --now crampwatch",
            file=sys.stderr,
        )
        return 2
    for command in (["daemon-reload"], ["enable", "--now", "crampwatch"]):
        result = subprocess.run(["systemctl", *command], check=False)
        if result.returncode != 0:
            print(f"{PROG}: error: systemctl {' '.join(command)} failed", file=sys.stderr)
            return 2
    print("crampwatch runs now; follow it with: journalctl -u crampwatch -f", file=sys.stderr)
    print(TIME_SYNC_NOTE, file=sys.stderr)
    return 0
