"""``python -m benchmarks.batch_scale``: many recordings through the pipeline, a plain sequential
loop against `crampwatch batch` on Dask with 1 and with 2 worker processes, in one run.

- ``loop``: one fresh Python process replays every recording in turn, writing each one's events
  file (`crampwatch.replay(path, out=...)`: what a researcher's own script would do);
- ``batch xN``: the batch machinery (`research.runner.execute`: planning and resume check, one
  Dask task per recording, result files, tables) on a local cluster of N single-threaded worker
  processes, the same TCP-on-loopback transport a cluster of machines uses.

Measured: wall time, recordings and M samples (frames x channels) per second, the speed-up of
N workers over one, each worker's peak resident memory (getrusage in the worker), and the
scheduling overhead per recording: (time running tasks x workers - the tasks' own time) /
recordings, i.e. the worker time per recording not spent inside the task body (submission,
transfer of the job and the result, writing result.json, idle waiting). Planning (the resume
check) and writing the tables, and the cluster's start and worker warm-up (imports), are
reported apart: they are paid once per batch, not per recording.

The spec is 16 one-hour recordings (2 channels, 1 kHz, float32 .npy, each with a sidecar);
`--recordings 4 --minutes 5` is a quick run. Distinct synthetic nights are generated for up to
4 recordings and copied for the rest (the pipeline's work is the same), and kept in `--data`
(default: a folder in the system temp dir) for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import REPO_ROOT, child_env

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "batch.json"
FS = 1000.0
CHANNELS = ("left", "right")
DISTINCT = 4
TARGET_SPEEDUP = 1.8


def ensure_recordings(folder: Path, count: int, minutes: float) -> list[Path]:
    """`count` recordings of `minutes` each in `folder` (made once, then reused)."""
    from hardware.synthetic_emg import SyntheticEMG, plan_night

    folder = folder / f"{count}x{minutes:g}min"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        path = folder / f"night{number:03d}.npy"
        if not path.exists():
            source = folder / f"night{number % DISTINCT:03d}.npy"
            if number >= DISTINCT:
                shutil.copyfile(source, path)
            else:
                plan = plan_night(100 + number, duration_s=minutes * 60, fs=FS, channels=CHANNELS)
                partial = path.with_suffix(".partial.npy")
                np.save(partial, SyntheticEMG(plan, seed=100 + number).render().astype(np.float32))
                partial.replace(path)
        sidecar = folder / f"night{number:03d}.crampwatch.toml"
        sidecar.write_text(f'fs = {FS:g}\nunits = "uV"\nnames = {json.dumps(list(CHANNELS))}\n')
        paths.append(path)
    return paths


def run_loop(paths: list[Path], out: Path) -> dict[str, Any]:
    """The sequential loop, in a fresh process; returns its wall time and peak memory."""
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from firmware_host.allocator import keep_block_buffers\n"
        "import crampwatch\n"
        "keep_block_buffers()\n"
        "paths, out = [Path(p) for p in sys.argv[1:-1]], Path(sys.argv[-1])\n"
        "began = time.perf_counter()\n"
        "for p in paths:\n"
        "    crampwatch.replay(p, out=out / (p.stem + '.jsonl'), envelope=False)\n"
        "wall = time.perf_counter() - began\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'wall_s': wall, 'peak_rss_mb': peak}))\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths), str(out)],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _warm_up() -> None:
    """Imports every task needs, done before the clock starts."""
    import scipy.signal  # noqa: F401

    import research.batch  # noqa: F401


def run_batch(paths: list[Path], out: Path, workers: int) -> dict[str, Any]:
    """The batch on a fresh local cluster of `workers` processes."""
    from research.api import options
    from research.cluster import dask_client, worker_peaks
    from research.runner import BatchSettings, batch_options, execute
    from research.tables import parquet_available

    began = time.perf_counter()
    os.environ.pop("DASK_SCHEDULER_ADDRESS", None)
    if parquet_available():  # the driver's first Parquet table imports pyarrow and pandas:
        import pandas  # noqa: F401  a one-off of about a second, not a cost per recording
        import pyarrow.parquet  # noqa: F401
    with dask_client(None, workers=workers) as (client, _info):
        client.run(_warm_up)
        startup_s = time.perf_counter() - began
        settings = BatchSettings(
            recordings=paths, out=out, options=batch_options(options()), progress=False
        )
        clock = time.perf_counter()
        outcome = execute(settings, client=client)
        wall_s = time.perf_counter() - clock
        peaks = sorted(worker_peaks(client).values())
    failed = [r for r in outcome.results if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"batch x{workers}: {failed[0]['recording']}: {failed[0]['error']}")
    task_s = sum(r["elapsed_s"] for r in outcome.results)
    run_s = outcome.timings["run_s"]
    return {
        "workers": workers,
        "startup_s": startup_s,
        "wall_s": wall_s,
        "task_s": task_s,
        **outcome.timings,
        "overhead_ms_per_recording": 1000 * (run_s * workers - task_s) / len(paths),
        "worker_peak_rss_mb": peaks,
    }


def _row(name: str, wall_s: float, n: int, samples: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": name,
        "wall_s": wall_s,
        "recordings_per_s": n / wall_s,
        "msamples_per_s": samples / wall_s / 1e6,
        **extra,
    }


def report(rows: list[dict[str, Any]], count: int, minutes: float) -> str:
    lines = [
        f"{count} recordings x {minutes:g} min, 2 channels at 1 kHz "
        f"({platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
        "",
        "| run | wall s | recordings/s | M samples/s | vs 1 worker | worker peak RSS MB | "
        "overhead ms/recording | plan + tables s | cluster start + warm-up s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    one = next((r for r in rows if r.get("workers") == 1), None)
    for row in rows:
        speedup = f"{one['wall_s'] / row['wall_s']:.2f}x" if one and "workers" in row else "-"
        peaks = row.get("worker_peak_rss_mb") or [row.get("peak_rss_mb", 0.0)]
        overhead = row.get("overhead_ms_per_recording")
        startup = row.get("startup_s")
        cells = [
            row["run"],
            f"{row['wall_s']:.2f}",
            f"{row['recordings_per_s']:.2f}",
            f"{row['msamples_per_s']:.1f}",
            speedup,
            ", ".join(f"{p:.0f}" for p in peaks),
            "-" if overhead is None else f"{overhead:.0f}",
            "-" if startup is None else f"{row['plan_s'] + row['tables_s']:.2f}",
            "-" if startup is None else f"{startup:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    two = next((r for r in rows if r.get("workers") == 2), None)
    if one and two:
        speedup = one["wall_s"] / two["wall_s"]
        verdict = "met" if speedup >= TARGET_SPEEDUP else "NOT met"
        lines.append("")
        lines.append(f"2 workers vs 1: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: {verdict})")
        per_worker = one["recordings_per_s"]
        mb_per_recording = minutes * 60 * FS * len(CHANNELS) * 4 / 1e6
        lines.append(
            f"one worker reads {per_worker * mb_per_recording:.0f} MB/s of float32 .npy "
            f"({per_worker:.2f} recordings/s); N workers on N cores of any machines: about N x "
            "that, until the shared filesystem's bandwidth is reached"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_scale", description=__doc__)
    parser.add_argument("--recordings", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "crampwatch-batch-bench"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    paths = ensure_recordings(args.data, args.recordings, args.minutes)
    print(
        f"recordings ready in {time.perf_counter() - began:.1f} s: {paths[0].parent}",
        file=sys.stderr,
    )
    samples = int(args.recordings * args.minutes * 60 * FS * len(CHANNELS))
    rows = []
    with tempfile.TemporaryDirectory(prefix="crampwatch-batch-bench-") as tmp:
        loop = run_loop(paths, Path(tmp) / "loop")
        rows.append(_row("sequential loop (1 process)", loop["wall_s"], len(paths), samples, loop))
        for workers in (int(w) for w in args.workers.split(",")):
            measured = run_batch(paths, Path(tmp) / f"batch{workers}", workers)
            name = f"batch, {workers} worker{'s' * (workers != 1)}"
            rows.append(_row(name, measured["wall_s"], len(paths), samples, measured))
    text = report(rows, args.recordings, args.minutes)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"recordings": args.recordings, "minutes": args.minutes, "rows": rows}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
