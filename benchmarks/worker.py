"""The measuring subprocess: ``python -m benchmarks.worker TASK PARAMS_JSON RESULT_PATH``.

It prepares the task (untimed), then times `repeats` runs: wall clock, process CPU time, the
system part of it and minor page faults. It writes a JSON result: the runs, what they found, the
resident set size after preparation and the peak resident set size of this process (VmHWM; see
`rss_mb`).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

STATUS = Path("/proc/self/status")


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    On Linux this is VmHWM, the high-water mark of this program's own address space. ru_maxrss is
    not usable here: the kernel carries the parent's peak into it across fork/vfork + exec, so
    every child would report at least the parent's peak (e.g. after it wrote the night file).
    """
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _usage() -> resource.struct_rusage:
    return resource.getrusage(resource.RUSAGE_SELF)


def measure(task: str, params: dict[str, Any]) -> dict[str, Any]:
    """Prepare (untimed), then time the runs of one task, each a first run in a fresh process."""
    from benchmarks.tasks import TASKS

    run = TASKS[task](params)
    base = rss_mb()
    runs = []
    for _ in range(int(params.get("repeats", 1))):
        usage0, wall0, cpu0 = _usage(), time.perf_counter(), time.process_time()
        found = run()
        wall, cpu, usage = time.perf_counter() - wall0, time.process_time() - cpu0, _usage()
        runs.append(
            {
                "wall_s": wall,
                "cpu_s": cpu,
                "sys_s": usage.ru_stime - usage0.ru_stime,
                "minor_faults": usage.ru_minflt - usage0.ru_minflt,
                "found": found,
            }
        )
    return {
        "task": task,
        "runs": runs,
        "base_rss_mb": base,
        "peak_rss_mb": rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def main(argv: list[str]) -> int:
    task, params_json, result_path = argv
    # Every measured process, ours and the peers', runs with the allocator setting that
    # `crampwatch` itself uses, so no row pays page faults the others do not.
    from firmware_host.allocator import keep_block_buffers

    keep_block_buffers()
    try:
        result = measure(task, json.loads(params_json))
    except Exception as error:  # reported to the parent, which shows it in the table
        traceback.print_exc()
        result = {"task": task, "error": f"{type(error).__name__}: {error}"}
    Path(result_path).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
