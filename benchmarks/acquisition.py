"""``python -m benchmarks.acquisition``: slots kept, slot-time jitter and CPU share of the acquisition
path at real time, with a zero-cost bus, MQTT and the night recording on.

Each source runs as the device daemon (`crampwatch run`'s `Daemon`, in a worker process of this
module) whose converter is the real driver on a zero-cost bus stand-in
(`hardware.instant_buses`: answers at once with a known sequence, so the simulation's own cost is
out of the figure), in the acquisition process, at real time (the system clock):

- ``mcp3008``: MCP3008 driver, 1 kHz x 2 channels (CH0, CH1);
- ``ads1115-1``: ADS1115 driver, 860 SPS, one input (RDY pulses from a thread, as lgpio delivers
  them on a Pi);
- ``ads1115-2``: ADS1115 driver, 860 SPS, two inputs by MUX switching (215 Hz per channel).

The daemon publishes to a private Mosquitto (a subscriber takes every message) and records the
night to a temporary directory. Measured per source: slots kept (not missed by a late host, not
dropped for a slow reader), the values checked against the bus's sequence (every kept value in
the row of its own conversion), the lateness of each kept row's time behind its slot on an ideal
grid (percentiles; for two ADS1115 inputs the row time is derived from the RDY pulses), CPU share
of one core of the acquisition process and of the rest of the daemon, the scheduling the
acquisition process obtained, and MQTT messages delivered.

``--load`` runs a CPU hog on every core meanwhile (Debian's ``stress-ng --cpu 0``; the benchmark
says how to install it when it is missing). Sources run one after the other, ``--minutes`` each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import REPO_ROOT
from hardware.acquisition import SampleBlock, ThreadedSource
from hardware.acquisition_process import ProcessSource
from hardware.ads1115 import ADS1115Source, lsb_volts
from hardware.clock import SystemClock
from hardware.front_end import FrontEnd
from hardware.instant_buses import (
    ADS1115_SPAN,
    InstantADS1115Bus,
    InstantMCP3008SPI,
    mcp3008_code,
)
from hardware.mcp3008 import RESOLUTION, MCP3008Source

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "acquisition.json"
SOURCES = ("mcp3008", "ads1115-1", "ads1115-2")
TARGET_KEPT = 0.999
VREF, PGA, READY_PIN, ADS_RATE = 3.3, 2.048, 17, 860
FRONT_END = FrontEnd(gain=1000.0, offset_v=1.65, rails_v=(0.0, 3.3))


# ---- what the acquisition process builds --------------------------------------------------------


def build_instant(kind: str, seconds: float) -> ThreadedSource:
    """The real driver on a zero-cost bus, for `seconds` from its first slot."""
    clock = SystemClock()
    if kind == "mcp3008":
        first: list[float] = []

        def finished() -> bool:
            now = clock.monotonic()
            first[:] = first or [now]
            return now - first[0] >= seconds

        return MCP3008Source(
            InstantMCP3008SPI(),
            [("left_calf", "CH0"), ("right_calf", "CH1")],
            vref=VREF,
            fs=1000.0,
            clock=clock,
            is_finished=finished,
        )
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    bus = InstantADS1115Bus(factory.pin(READY_PIN), ADS_RATE, clock=clock, duration_s=seconds)
    pairs = [("left_calf", "AIN0-AIN1"), ("right_calf", "AIN2-AIN3")]
    return ADS1115Source(
        bus,
        inputs=pairs[: 1 if kind == "ads1115-1" else 2],
        pga=PGA,
        data_rate=ADS_RATE,
        ready_pin=READY_PIN,
        clock=clock,
        pin_factory=factory,
        is_finished=bus.finished.is_set,
    )


class TappedSource(ProcessSource):
    """The acquisition process, with each row's index and time kept for the figures."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows: list[tuple[int, np.ndarray, np.ndarray]] = []

    def read_block(self, timeout: float | None = None) -> SampleBlock | None:
        block = super().read_block(timeout)
        if block is not None and block.times is not None:
            self.rows.append((block.first_index, block.times, block.samples))
        return block


# ---- the worker: one daemon -----------------------------------------------------------------


def worker(kind: str, seconds: float, broker: str, work: Path, realtime: bool) -> dict[str, Any]:
    """Run the daemon on one source; its figures."""
    from gpiozero.pins.mock import MockFactory

    from firmware_host.cli import build_parser
    from firmware_host.commands.run import settings
    from firmware_host.device import live_sources
    from firmware_host.device.daemon import Daemon

    source = TappedSource(
        partial(build_instant, kind, seconds),
        clock=SystemClock(),
        realtime_priority=live_sources.REALTIME_PRIORITY if realtime else None,
    )
    if kind == "mcp3008":
        lsb = VREF / RESOLUTION
        live = live_sources.Live(source, FRONT_END, (0.0, VREF - lsb), MockFactory(), lsb)
    else:
        swing = FRONT_END.rails_v[1] - FRONT_END.offset_v
        front = FrontEnd(FRONT_END.gain, 0.0, (-swing, swing))
        live = live_sources.Live(source, front, (-swing, swing), MockFactory(), lsb_volts(PGA))
    argv = ["run", "--source", kind.split("-")[0], "--broker", broker, "--device",
            f"bench-{kind}", "--outbox", str(work / f"{kind}-outbox.db"), "--record-dir",
            str(work / f"{kind}-nights"), "--log-level", "warning"]  # fmt: skip
    args = settings(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    started, usage0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    daemon = Daemon(args, open_source=lambda _: live)
    daemon.run()
    wall_s = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    daemon_cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    from firmware_host.device.outbox import Outbox

    with Outbox(work / f"{kind}-outbox.db") as outbox:
        counts = outbox.counts()
    stats = daemon.stats
    report = source.report
    return {
        "source": kind,
        "seconds": seconds,
        "frames": stats["frames"],
        "missed_slots": stats["missed_slots"],
        "dropped_frames": stats["dropped_frames"],
        "missing_frames": stats["missing_frames"],
        "kept": 1 - (stats["missed_slots"] + stats["dropped_frames"]) / max(1, stats["frames"]),
        **figures(kind, source),
        "acquisition_cpu_share": report.extra["acquire_cpu_s"] / report.extra["acquire_wall_s"],
        "daemon_cpu_share": daemon_cpu / wall_s,
        "priority": report.priority,
        "outbox": {"sent": counts.sent, "unsent": counts.unsent, "dropped": counts.dropped},
        "log_lines_dropped": report.log_lines_dropped,
    }


def figures(kind: str, source: TappedSource) -> dict[str, Any]:
    """Lateness of kept rows behind an ideal slot grid, and the values against the sequence."""
    index = np.concatenate([np.arange(i, i + len(t)) for i, t, _ in source.rows])
    times = np.concatenate([t for _, t, _ in source.rows])
    samples = np.concatenate([x for _, _, x in source.rows])
    kept = np.isfinite(times) & ~np.isnan(samples).any(axis=1)
    period = {"mcp3008": 1e-3, "ads1115-1": 1 / ADS_RATE, "ads1115-2": 4 / ADS_RATE}[kind]
    ideal = times[kept] - index[kept] * period
    lateness_us = (ideal - ideal.min()) * 1e6 if kept.any() else np.zeros(1)
    levels = np.percentile(lateness_us, [50, 99, 99.9, 100])
    percentiles = dict(zip(("p50", "p99", "p99.9", "max"), levels, strict=True))
    return {
        "missed_at": np.flatnonzero(~np.isfinite(times))[:20].tolist(),
        "lateness_us": {k: round(float(v), 1) for k, v in percentiles.items()},
        "sequence_intact": sequence_intact(kind, index[kept], samples[kept]),
    }


def sequence_intact(kind: str, index: np.ndarray, samples: np.ndarray) -> float:
    """Share of kept values that are the bus's answer for their own row: for the MCP3008 the
    transfers in order; for the ADS1115 a conversion whose number puts it in that row (one
    input: exactly; two: within half a row, as the driver places a value from a switch it was
    late for in the row nearest its conversion)."""
    if kind == "mcp3008":  # transfers in order: row r, channel c is transfer 2 k + c, k-th kept
        codes = np.round(samples.ravel() / (VREF / RESOLUTION)).astype(int)
        expected = np.array([mcp3008_code(k) for k in range(len(codes))])
        return float(np.mean(codes == expected))
    if not len(index):
        return 0.0
    codes = np.round(samples / lsb_volts(PGA)).astype(int) + ADS1115_SPAN // 2
    per_row, lag = (1, 0) if kind == "ads1115-1" else (4, 2)
    offsets = (codes - per_row * index[:, None] - lag * np.arange(samples.shape[1])) % ADS1115_SPAN
    values, counts = np.unique(offsets, return_counts=True)
    mode = values[np.argmax(counts)]
    off = (offsets - mode + ADS1115_SPAN // 2) % ADS1115_SPAN - ADS1115_SPAN // 2
    half = (per_row - 1) / 2  # a row spans per_row conversions
    centres = np.arange(-per_row, per_row + 1) / 2
    return float(max(np.mean(np.abs(off - centre) <= half) for centre in centres))


# ---- the orchestration --------------------------------------------------------------------------


@dataclass
class Hog:
    """stress-ng on every core, for the loaded run."""

    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, seconds: float) -> Hog:
        command = ["stress-ng", "--cpu", "0", "--timeout", f"{int(seconds) + 60}s", "--quiet"]
        return cls(subprocess.Popen(command, stdout=subprocess.DEVNULL))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.acquisition",
        description="Slots kept, slot-time jitter and CPU share of the acquisition process at "
        "real time, zero-cost bus, MQTT and recording on.",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="per source (default 10)")
    parser.add_argument("--sources", default=",".join(SOURCES), help=f"from {', '.join(SOURCES)}")
    parser.add_argument("--load", action="store_true", help="a CPU hog on every core (stress-ng)")
    parser.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="do not ask for real-time priority for the acquisition process",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    if unknown := [s for s in args.sources if s not in SOURCES]:
        parser.error(f"--sources: unknown {unknown}; choose from {', '.join(SOURCES)}")
    if not 0 < args.minutes <= 24 * 60:
        parser.error("--minutes must be in (0, 1440]")
    return args


def run_worker(kind: str, args: argparse.Namespace, broker: str, work: Path) -> dict[str, Any]:
    out = work / f"{kind}.json"
    command = [sys.executable, "-m", "benchmarks.acquisition", "--worker", kind, "--minutes",
               str(args.minutes), "--broker", broker, "--work", str(work), "--json", str(out)]  # fmt: skip
    if not args.realtime:
        command.append("--no-realtime")
    log_path = work / f"{kind}.log"
    with log_path.open("w") as log:
        code = subprocess.call(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not out.exists():
        tail = "\n".join(log_path.read_text().splitlines()[-20:])
        raise SystemExit(f"{kind}: the daemon failed (exit {code}):\n{tail}")
    return json.loads(out.read_text())


def table(results: list[dict[str, Any]], loaded: bool) -> str:
    lines = [
        "| source | host | minutes | slots | kept | missed | dropped | values in their own row "
        "| lateness p50 / p99 / p99.9 / max (us) | acquisition CPU | daemon CPU | MQTT "
        "| scheduling |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        late = r["lateness_us"]
        lines.append(
            f"| {r['source']} | {'CPU hog on every core' if loaded else 'idle'} "
            f"| {r['seconds'] / 60:g} | {r['frames']} | {100 * r['kept']:.3f} % "
            f"| {r['missed_slots']} | {r['dropped_frames']} "
            f"| {100 * r['sequence_intact']:.2f} % "
            f"| {late['p50']:.0f} / {late['p99']:.0f} / {late['p99.9']:.0f} / {late['max']:.0f} "
            f"| {100 * r['acquisition_cpu_share']:.1f} % | {100 * r['daemon_cpu_share']:.1f} % "
            f"| {r['outbox']['sent']} ({r['mqtt_received']} received) | {r['priority']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.minutes * 60, args.broker, args.work, args.realtime)
        args.json.write_text(json.dumps(result, indent=2))
        return 0
    if args.load and shutil.which("stress-ng") is None:
        print(
            "benchmarks.acquisition: --load needs stress-ng (a CPU hog on every core): "
            "sudo apt-get install stress-ng",
            file=sys.stderr,
        )
        return 2
    from tests.broker import Collector, Mosquitto

    results = []
    hog = Hog.start(args.minutes * 60 * len(args.sources)) if args.load else None
    with tempfile.TemporaryDirectory(prefix="crampwatch-acq-") as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        collector = Collector(broker, "crampwatch/#")
        try:
            for kind in args.sources:
                print(f"[acquisition] {kind}: {args.minutes:g} min ...", file=sys.stderr)
                before = len(collector.messages)
                result = run_worker(kind, args, broker.address, Path(tmp))
                result["mqtt_received"] = len(collector.messages) - before
                results.append(result)
        finally:
            collector.close()
            broker.stop()
            if hog is not None:
                hog.stop()
    report = table(results, args.load)
    print(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "load": args.load,
                "realtime_asked": args.realtime,
                "target_kept": TARGET_KEPT,
                "results": results,
                "table": report,
            },
            indent=2,
        )
    )
    missed = [r["source"] for r in results if r["kept"] < TARGET_KEPT]
    if missed:
        print(f"below the {100 * TARGET_KEPT:.1f} % target: {', '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # as the module itself: the acquisition process imports its recipes
    from benchmarks.acquisition import main as benchmark_main

    raise SystemExit(benchmark_main())
