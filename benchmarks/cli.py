"""``python -m benchmarks``: measure, print one markdown table, write it as JSON.

Rows: the full replay of a synthetic night from a file (the real `crampwatch replay` path), the
bare scipy floor on the same file, both again in memory on one hour (no file reading), and the
peers NeuroKit2 and BioSPPy on one hour of one channel next to ours on the same data.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement, run_task
from benchmarks.night import NightSpec, ensure_night_file
from benchmarks.report import Targets, markdown_table, notes, target_checks
from firmware_host.commands.replay import DEFAULT_BLOCK

BLOCK = DEFAULT_BLOCK  # the block size `crampwatch replay` reads and processes
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
INSTALL_HINT = "not installed: pip install 'crampwatch[bench]'"
PEERS = {"neurokit2": "NeuroKit2 emg_process", "biosppy": "BioSPPy emg.emg"}


@dataclass
class Row:
    """A planned row: which task runs on what data, and its measurement."""

    key: str
    label: str
    data: str
    task: str
    params: dict[str, Any]
    peer: bool = False
    note: str = ""
    measurement: Measurement = field(init=False)

    def __post_init__(self) -> None:
        self.measurement = Measurement(self.key, self.label, self.data, note=self.note)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Replay speed and memory of crampwatch on a synthetic night, a bare scipy "
        "floor, and the peers NeuroKit2 and BioSPPy.",
    )
    parser.add_argument(
        "--hours", type=float, help="length of the night (default 8; 0.5 with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 0.5 h night, 6 min segment, one run each"
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip NeuroKit2 and BioSPPy")
    parser.add_argument(
        "--repeat", type=int, help="runs per row of ours (default 5; 1 with --quick)"
    )
    parser.add_argument("--peer-repeat", type=int, default=1, help="runs per peer (default 1)")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of the pipeline in memory"
    )
    args = parser.parse_args(argv)
    args.hours = args.hours if args.hours is not None else (0.5 if args.quick else 8.0)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    if args.hours <= 0 or args.repeat < 1 or args.peer_repeat < 1:
        parser.error("--hours must be > 0, --repeat and --peer-repeat >= 1")
    args.segment_hours = min(args.hours, 0.1 if args.quick else 1.0)
    return args


def _hours_text(hours: float) -> str:
    return f"{hours:g} h" if hours >= 1 else f"{hours * 60:g} min"


def plan_rows(args: argparse.Namespace, spec: NightSpec, path: Path) -> list[Row]:
    """The rows of the table, in order: file replay, floor, both in memory, then the peers."""
    n_ch, fs = len(spec.channels), spec.fs
    night, segment = _hours_text(args.hours), _hours_text(args.segment_hours)
    on_file = {"path": str(path), "fs": fs, "block": BLOCK}
    stop = round(args.segment_hours * 3600 * fs)
    in_memory = {**on_file, "start": 0, "stop": stop}
    every, first = list(range(n_ch)), [0]

    def truth(channels: list[int], hours: float) -> str:
        return f"truth: {spec.planned_cramps(tuple(channels), hours * 3600)} cramps"

    file_data, memory_data = f"{night}, {n_ch} ch, .npy", f"{segment}, {n_ch} ch"
    rows = [
        Row(
            "pipeline_file",
            "pipeline: replay() from file",
            file_data,
            "pipeline_file",
            on_file,
            note=truth(every, args.hours),
        ),
        Row("floor_file", "scipy floor from file", file_data, "floor_file", on_file),
        Row(
            "pipeline_memory",
            "pipeline in memory",
            memory_data,
            "pipeline_memory",
            {**in_memory, "columns": every},
            note=truth(every, args.segment_hours),
        ),
        Row(
            "floor_memory",
            "scipy floor in memory",
            memory_data,
            "floor_memory",
            {**in_memory, "columns": every},
        ),
    ]
    if args.no_peers:
        return rows
    rows.append(
        Row(
            "pipeline_memory_1ch",
            "pipeline in memory (peer reference)",
            f"{segment}, 1 ch",
            "pipeline_memory",
            {**in_memory, "columns": first},
            note=truth(first, args.segment_hours),
        )
    )
    peer_params = {**in_memory, "columns": first}
    rows += [
        Row(module, label, f"{segment}, 1 ch, whole array", module, peer_params, peer=True)
        for module, label in PEERS.items()
    ]
    return rows


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _run_once(row: Row, repeats: int) -> None:
    result = run_task(row.task, {**row.params, "repeats": repeats})
    row.measurement.add(result)
    if "error" in result:
        _log(f"{row.key}: {result['error']}")
    else:
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in result["runs"])
        _log(f"{row.key}: {walls} s, peak RSS {result['peak_rss_mb']:.0f} MB")


def run_rows(rows: list[Row], repeats: int, peer_repeats: int) -> None:
    """Ours round-robin, one run per subprocess (load changes hit every row alike); then peers."""
    ours = [r for r in rows if not r.peer]
    for i in range(repeats):
        _log(f"round {i + 1}/{repeats}")
        for row in ours:
            if row.measurement.error is None:
                _run_once(row, 1)
    for row in (r for r in rows if r.peer):
        if importlib.util.find_spec(row.task) is None:
            row.measurement.error = INSTALL_HINT
            _log(f"{row.key}: {INSTALL_HINT}")
            continue
        _run_once(row, peer_repeats)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def environment() -> dict[str, Any]:
    packages = ("crampwatch", "numpy", "scipy", "neurokit2", "biosppy")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": {name: _version(name) for name in packages},
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def run_context(
    args: argparse.Namespace, spec: NightSpec, path: Path, load_before: str
) -> dict[str, Any]:
    """The conditions of the run, shown under the table."""
    return {
        "block": BLOCK,
        "repeats": args.repeat,
        "peer_repeats": args.peer_repeat,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": _load(),
        "night": f"plan_night(seed={spec.plan_seed}, duration {_hours_text(args.hours)}, "
        f"{spec.fs:g} Hz, channels {', '.join(spec.channels)}), noise seed {spec.noise_seed}, "
        f"{spec.dtype} in {path}",
    }


def json_document(
    args: argparse.Namespace,
    spec: NightSpec,
    path: Path,
    measurements: list[Measurement],
    context: dict[str, Any],
    text: str,
) -> dict[str, Any]:
    """Everything measured, with the settings, the night and the environment."""
    by_key = {m.key: m for m in measurements}
    return {
        "schema": "crampwatch.bench/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {**vars(args), "json": str(args.json)},
        "night": {
            **spec.fingerprint(),
            "path": str(path),
            "frames": spec.n_frames,
            "channels": list(spec.channels),
        },
        "context": context,
        "environment": environment(),
        "rows": [m.as_dict() for m in measurements],
        "targets": target_checks(by_key, Targets()),
        "markdown": text,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spec = NightSpec(hours=args.hours)
    _log(f"preparing the {_hours_text(args.hours)} synthetic night ...")
    path, written = ensure_night_file(spec)
    _log(f"{'wrote' if written else 'reusing'} {path} ({path.stat().st_size / 1e6:.0f} MB)")
    if args.profile:
        from benchmarks.profiling import profile_pipeline

        frames = round(args.segment_hours * 3600 * spec.fs)
        profile_pipeline(path, spec.fs, frames, len(spec.channels), BLOCK)
    load_before = _load()
    rows = plan_rows(args, spec, path)
    run_rows(rows, args.repeat, args.peer_repeat)
    measurements = [r.measurement for r in rows]
    context = run_context(args, spec, path, load_before)
    text = (
        markdown_table(measurements)
        + "\n"
        + notes({m.key: m for m in measurements}, Targets(), context)
    )
    print(text)
    write_json(args.json, json_document(args, spec, path, measurements, context, text))
    _log(f"wrote {args.json}")
    return 0
