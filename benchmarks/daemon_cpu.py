"""``python -m benchmarks.daemon_cpu``: CPU share and memory of the device daemon, `crampwatch run`.

The daemon runs as a subprocess at real time (`--speed 1`, 1 kHz, 2 channels) against a private
Mosquitto with one subscriber taking every message, side by side in variants that show what each
part costs:

- ``sim``: the simulated MCP3008 (bit-level SPI, in the daemon's own process) + pipeline + MQTT +
  night recording: the full `crampwatch run --sim mcp3008` path;
- ``play``: the same kind of night played from a .npy file at real time + pipeline + MQTT +
  recording: what a Pi pays, without the chip simulation;
- ``chip``: the simulated MCP3008 + pipeline only (`--no-mqtt --no-record`);
- ``bare``: the file at real time + pipeline only (`--no-mqtt --no-record`).

CPU is the process's utime + stime (sampled from /proc/<pid>/stat, final from os.wait4), as a share
of one core over the signal's real-time length; memory is VmRSS / VmHWM from /proc/<pid>/status
and ru_maxrss. The spec is an hour (the default); `--minutes N` runs shorter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.measure import REPO_ROOT
from benchmarks.night import NightSpec, ensure_night_file
from firmware_host.device.outbox import Outbox
from tests.broker import Collector, Mosquitto

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "daemon.json"
SPEC_MINUTES = 60.0
TARGET_SHARE = 0.05  # of one core
FS = 1000.0
SEED = 7  # `crampwatch run`'s default synthetic night; the played file uses the same plan
TICKS = os.sysconf("SC_CLK_TCK")
JSON_STEP_S = 30.0  # timeline resolution kept in the JSON


@dataclass(frozen=True)
class Variant:
    """One way of running the daemon."""

    key: str
    label: str
    sim: bool
    outputs: bool  # MQTT and the night recording

    @property
    def device(self) -> str:
        return f"bench-{self.key}"


VARIANTS = {
    v.key: v
    for v in (
        Variant(
            "sim", "simulated MCP3008 (bit-level SPI) + pipeline + MQTT + recording", True, True
        ),
        Variant("play", "file at real time + pipeline + MQTT + recording", False, True),
        Variant("chip", "simulated MCP3008 + pipeline (no MQTT, no recording)", True, False),
        Variant("bare", "file at real time + pipeline (no MQTT, no recording)", False, False),
    )
}


@dataclass
class Sample:
    """One look at the running daemon: seconds since its start, CPU seconds, RSS and HWM in MB."""

    t_s: float
    cpu_s: float
    rss_mb: float
    hwm_mb: float


@dataclass
class Watched:
    """A running daemon and what was seen of it."""

    variant: Variant
    process: subprocess.Popen
    log_path: Path
    outbox_path: Path
    started: float
    samples: list[Sample] = field(default_factory=list)
    wall_s: float | None = None
    cpu_s: float | None = None
    user_s: float | None = None
    sys_s: float | None = None
    maxrss_mb: float | None = None
    returncode: int | None = None
    timed_out: bool = False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.daemon_cpu",
        description="CPU share of one core and resident memory of `crampwatch run` at real time "
        "(1 kHz, 2 channels, MQTT on), with the simulated chip and from a file, side by side.",
    )
    parser.add_argument(
        "--minutes", type=float, default=SPEC_MINUTES, help="real-time length (default 60)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default all, run concurrently)",
    )
    parser.add_argument("--no-record", action="store_true", help="no night recording anywhere")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})"
    )
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if not 0 < args.minutes <= 24 * 60 or args.interval <= 0:
        parser.error("--minutes must be in (0, 1440] and --interval > 0")
    return args


def _log(message: str) -> None:
    print(f"[daemon-bench] {message}", file=sys.stderr, flush=True)


def crampwatch_command() -> list[str]:
    """The installed `crampwatch` script beside this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("crampwatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "firmware_host.cli"]


def daemon_args(
    variant: Variant, minutes: float, broker: str, work: Path, night: Path, record: bool
) -> list[str]:
    """`crampwatch run` options for one variant."""
    if variant.sim:
        source = ["--sim", "mcp3008", "--hours", f"{minutes / 60:g}", "--seed", str(SEED)]
    else:
        source = ["--play", str(night), "--signal-fs", f"{FS:g}", "--signal-units", "uV"]
    common = ["--speed", "1", "--device", variant.device]
    if not variant.outputs:
        return ["run", *source, *common, "--no-mqtt", "--no-record"]
    outputs = ["--broker", broker, "--outbox", str(work / f"{variant.key}-outbox.db")]
    if record:
        outputs += ["--record-dir", str(work / f"{variant.key}-nights")]
    else:
        outputs.append("--no-record")
    return ["run", *source, *common, *outputs]


def start(variant: Variant, args: list[str], work: Path) -> Watched:
    """Start one daemon, its output in a log file beside its outbox."""
    log_path = work / f"{variant.key}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*crampwatch_command(), *args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Watched(variant, process, log_path, work / f"{variant.key}-outbox.db", time.monotonic())


def read_proc(pid: int) -> tuple[float, float, float] | None:
    """(utime + stime seconds, VmRSS MB, VmHWM MB) of a live process; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS
    memory = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    if len(memory) < 2:  # a zombie: no memory left to report
        return None
    return cpu_s, int(memory["VmRSS"]) / 1024, int(memory["VmHWM"]) / 1024


def sample(watched: Watched) -> None:
    """Add one sample while the daemon runs."""
    seen = read_proc(watched.process.pid)
    if seen is not None:
        watched.samples.append(Sample(time.monotonic() - watched.started, *seen))


def reap(watched: Watched) -> bool:
    """Collect the exit status and the final resource usage (os.wait4) if it has ended."""
    pid, status, usage = os.wait4(watched.process.pid, os.WNOHANG)
    if pid == 0:
        return False
    watched.wall_s = time.monotonic() - watched.started
    watched.returncode = os.waitstatus_to_exitcode(status)
    watched.process.returncode = watched.returncode  # reaped here, not by Popen
    watched.user_s, watched.sys_s = usage.ru_utime, usage.ru_stime
    watched.cpu_s = usage.ru_utime + usage.ru_stime
    watched.maxrss_mb = usage.ru_maxrss / 1024  # KiB on Linux
    return True


def watch(daemons: list[Watched], interval_s: float, timeout_s: float) -> None:
    """Sample every running daemon each interval until all have ended (SIGTERM after timeout)."""
    running = list(daemons)
    next_log = time.monotonic() + 300.0
    while running:
        for watched in list(running):
            sample(watched)
            if reap(watched):
                running.remove(watched)
                _log(f"{watched.variant.key}: exited {watched.returncode}")
            else:
                _enforce_timeout(watched, timeout_s)
        if time.monotonic() >= next_log:
            next_log += 300.0
            _log("; ".join(_progress(w) for w in running))
        time.sleep(interval_s if running else 0)


def _enforce_timeout(watched: Watched, timeout_s: float) -> None:
    """SIGTERM past the timeout (a clean stop), SIGKILL a minute later."""
    overdue = time.monotonic() - watched.started - timeout_s
    if overdue > 0 and not watched.timed_out:
        watched.timed_out = True
        watched.process.send_signal(signal.SIGTERM)
        _log(f"{watched.variant.key}: past {timeout_s:.0f} s, sent SIGTERM")
    elif overdue > 60:
        watched.process.send_signal(signal.SIGKILL)


def _progress(watched: Watched) -> str:
    last = watched.samples[-1] if watched.samples else None
    if last is None:
        return f"{watched.variant.key}: starting"
    return f"{watched.variant.key}: {last.t_s:.0f} s, {last.cpu_s:.1f} CPU s, {last.rss_mb:.0f} MB"


ACQUISITION = re.compile(
    r"acquisition: (\d+) frames, (\d+) missing \((\d+) slots the host was late for, (\d+) "
    r"dropped for a slow reader: [\d.]+ % of slots kept\), (\d+) bus errors \((\d+) retried\)"
)


def acquisition(log_text: str) -> dict[str, int]:
    """The daemon's closing acquisition line, as numbers."""
    match = ACQUISITION.search(log_text)
    if match is None:
        return {}
    keys = ("frames", "missing_frames", "missed_slots", "dropped_frames", "bus_errors", "retries")
    return dict(zip(keys, map(int, match.groups()), strict=True))


def steady_share(samples: list[Sample], warmup_s: float) -> float | None:
    """CPU share after the warm-up: the slope from the first sample past it to the last."""
    after = [s for s in samples if s.t_s >= warmup_s]
    if len(after) < 2 or after[-1].t_s - after[0].t_s <= 0:
        return None
    return (after[-1].cpu_s - after[0].cpu_s) / (after[-1].t_s - after[0].t_s)


def outbox_counts(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    with Outbox(path) as outbox:
        counts = outbox.counts()
    return {"unsent": counts.unsent, "sent": counts.sent, "dropped": counts.dropped}


def mqtt_received(collector: Collector, device: str) -> dict[str, int]:
    """Messages (and payload bytes) the independent subscriber got from one device."""
    mine = [payload for topic, payload, _ in list(collector.messages) if device in topic]
    return {"messages": len(mine), "bytes": sum(len(p) for p in mine)}


def summarize(
    watched: Watched, signal_s: float, warmup_s: float, collector: Collector | None
) -> dict[str, Any]:
    """Everything measured for one variant."""
    samples, log_text = watched.samples, watched.log_path.read_text(errors="replace")
    cpu_s = watched.cpu_s or 0.0  # always set: watch() reaps every daemon
    hwm = max([s.hwm_mb for s in samples] + [watched.maxrss_mb or 0.0])
    at_warmup = next((s for s in samples if s.t_s >= warmup_s), None)
    step = max(1, round(JSON_STEP_S / (samples[1].t_s - samples[0].t_s))) if len(samples) > 1 else 1
    result: dict[str, Any] = {
        "key": watched.variant.key,
        "label": watched.variant.label,
        "device": watched.variant.device,
        "returncode": watched.returncode,
        "timed_out": watched.timed_out,
        "signal_s": signal_s,
        "process_wall_s": watched.wall_s,
        "cpu_s": cpu_s,
        "user_s": watched.user_s,
        "sys_s": watched.sys_s,
        "cpu_share": cpu_s / signal_s,
        "steady_share": steady_share(samples, warmup_s),
        "warmup_s": warmup_s,
        "peak_rss_mb": hwm,
        "rss_end_mb": samples[-1].rss_mb if samples else None,
        "rss_after_warmup_mb": at_warmup.rss_mb if at_warmup else None,
        "acquisition": acquisition(log_text),
        "log_tail": log_text.splitlines()[-12:],
        "timeline": [
            {"t_s": round(s.t_s, 1), "cpu_s": round(s.cpu_s, 2), "rss_mb": round(s.rss_mb, 1)}
            for s in samples[::step]
        ],
    }
    if watched.variant.outputs:
        result["outbox"] = outbox_counts(watched.outbox_path)
        if collector is not None:
            result["mqtt_received"] = mqtt_received(collector, watched.variant.device)
    return result


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.2f} %"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table, one row per variant."""
    lines = [
        "| variant | what runs | CPU s | CPU share of one core | after warm-up | peak RSS MB "
        "| RSS end MB | MQTT msgs received | frames (missing, dropped) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        acq = r["acquisition"]
        frames = (
            f"{acq['frames']} ({acq['missing_frames']}, {acq['dropped_frames']})" if acq else "—"
        )
        mqtt = r.get("mqtt_received", {}).get("messages", "—")
        lines.append(
            f"| {r['key']} | {r['label']} | {r['cpu_s']:.1f} | **{_pct(r['cpu_share'])}** "
            f"| {_pct(r['steady_share'])} | {_mb(r['peak_rss_mb'])} | {_mb(r['rss_end_mb'])} "
            f"| {mqtt} | {frames} |"
        )
    return "\n".join(lines)


def _difference(by_key: dict[str, dict[str, Any]], a: str, b: str) -> str | None:
    if a in by_key and b in by_key:
        return _pct(by_key[a]["cpu_share"] - by_key[b]["cpu_share"])
    return None


def notes(rows: list[dict[str, Any]], context: dict[str, Any]) -> str:
    """Lines under the table: length, target, the parts' costs, conditions."""
    by_key = {r["key"]: r for r in rows}
    minutes = context["minutes"]
    out = [
        f"- {minutes:g} min of signal at real time (1 kHz, 2 channels); CPU share = (utime + "
        "stime) / signal seconds, startup included; 'after warm-up' is the rate after the "
        f"first {context['warmup_s']:.0f} s.",
    ]
    if minutes < SPEC_MINUTES:
        out.append(f"- **shorter than the spec's hour**: {minutes:g} min.")
    for key in ("sim", "play"):
        if key in by_key:
            share = by_key[key]["cpu_share"]
            verdict = "met" if share < TARGET_SHARE else "NOT met"
            out.append(
                f"- target < {TARGET_SHARE:.0%} of one core, `{key}`: {verdict} ({_pct(share)})."
            )
    parts = [
        ("chip simulation (chip - bare)", _difference(by_key, "chip", "bare")),
        ("MQTT + recording (play - bare)", _difference(by_key, "play", "bare")),
        ("MQTT + recording with the chip (sim - chip)", _difference(by_key, "sim", "chip")),
    ]
    found = [f"{name}: {value}" for name, value in parts if value is not None]
    if found:
        out.append("- what the parts cost, in share of one core: " + "; ".join(found) + ".")
    late = [
        f"`{r['key']}` {acq['missing_frames'] / acq['frames']:.1%}"
        for r in rows
        if (acq := r["acquisition"]) and acq["frames"] and acq["missing_frames"]
    ]
    if late:
        out.append(
            "- frames missed (the driver's 1 ms slots passed before it could read, shown as "
            f"gaps; no overruns): {', '.join(late)}. Those reads were not done, so their CPU "
            "share is understated by about as much."
        )
    if not context["record"]:
        out.append("- the night recording was off (`--no-record`).")
    failed = [r["key"] for r in rows if r["returncode"] != 0 or r["timed_out"]]
    if failed:
        out.append(f"- **did not end cleanly**: {', '.join(failed)} (see the JSON's log_tail).")
    out.append(
        f"- variants ran concurrently on {context['cpus']} CPUs ({context['cpu_model']}), load "
        f"average before {context['load_before']}, after {context['load_after']}. The played "
        "file is read in 4096-frame blocks, the MCP3008 driver delivers 256-frame blocks."
    )
    return "\n".join(out)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_variants(args: argparse.Namespace, night: Path, work: Path) -> list[dict[str, Any]]:
    """Broker, subscriber, the daemons side by side; their summaries."""
    signal_s = args.minutes * 60.0
    warmup_s = min(60.0, signal_s / 5)
    broker_dir = work / "broker"
    broker_dir.mkdir()
    broker = Mosquitto(broker_dir)
    broker.start()
    collector = Collector(broker, "#")
    try:
        daemons = [
            start(
                VARIANTS[key],
                daemon_args(
                    VARIANTS[key], args.minutes, broker.address, work, night, not args.no_record
                ),
                work,
            )
            for key in args.variants
        ]
        _log(f"started {', '.join(args.variants)}; {args.minutes:g} min at real time")
        watch(daemons, args.interval, timeout_s=signal_s * 1.25 + 300.0)
        time.sleep(2.0)  # let the last deliveries arrive
        return [summarize(d, signal_s, warmup_s, collector) for d in daemons]
    finally:
        collector.close()
        broker.stop()


def write_json(path: Path, run: dict[str, Any]) -> None:
    """Keep one run per length in the file: this one replaces an earlier run of the same length."""
    document: dict[str, Any] = {"schema": "crampwatch.bench.daemon/1", "runs": {}}
    if path.exists():
        with contextlib.suppress(ValueError):
            document = json.loads(path.read_text())
    document.setdefault("runs", {})[f"{run['settings']['minutes']:g}min"] = run
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spec = NightSpec(hours=args.minutes / 60.0, fs=FS, plan_seed=SEED, noise_seed=SEED)
    night, written = ensure_night_file(spec)
    _log(f"{'wrote' if written else 'reusing'} {night}")
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="crampwatch-daemon-bench-") as tmp:
        rows = run_variants(args, night, Path(tmp))
    context = {
        "minutes": args.minutes,
        "warmup_s": rows[0]["warmup_s"],
        "record": not args.no_record,
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_before": load_before,
        "load_after": _load(),
    }
    text = table(rows) + "\n\n" + notes(rows, context)
    print(text)
    run = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {**vars(args), "json": str(args.json)},
        "night_file": {**spec.fingerprint(), "path": str(night)},
        "context": context,
        "environment": {"python": platform.python_version(), "platform": platform.platform()},
        "variants": rows,
        "markdown": text,
    }
    write_json(args.json, run)
    _log(f"wrote {args.json}")
    return 0 if all(r["returncode"] == 0 and not r["timed_out"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
