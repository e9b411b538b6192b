"""Parent side: run a task in a fresh subprocess and gather its runs into one measurement."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class Measurement:
    """One row of the table: a task's runs, memory, and what it found (or why it could not run)."""

    key: str
    label: str
    data: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    base_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.runs)

    @property
    def samples(self) -> int:
        return int(self.runs[0]["found"]["samples"]) if self.ok else 0

    @property
    def found(self) -> dict[str, Any]:
        return self.runs[-1]["found"] if self.ok else {}

    @property
    def wall_median_s(self) -> float:
        return statistics.median(r["wall_s"] for r in self.runs)

    @property
    def wall_best_s(self) -> float:
        return min(r["wall_s"] for r in self.runs)

    @property
    def cpu_median_s(self) -> float:
        return statistics.median(r["cpu_s"] for r in self.runs)

    @property
    def sys_median_s(self) -> float:
        return statistics.median(r["sys_s"] for r in self.runs)

    @property
    def throughput_msps(self) -> float:
        """Millions of samples (frames x channels) per second, from the median wall time."""
        return self.samples / self.wall_median_s / 1e6

    @property
    def best_throughput_msps(self) -> float:
        return self.samples / self.wall_best_s / 1e6

    def add(self, result: dict[str, Any]) -> None:
        """Merge one subprocess result (several runs of one row may come from several processes)."""
        if "error" in result:
            self.error = result["error"]
            return
        self.runs.extend(result["runs"])
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, result["peak_rss_mb"])
        self.base_rss_mb = max(self.base_rss_mb or 0.0, result["base_rss_mb"])

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "data": self.data,
            "note": self.note,
            "error": self.error,
            "runs": self.runs,
            "base_rss_mb": self.base_rss_mb,
            "peak_rss_mb": self.peak_rss_mb,
        }
        if self.ok:
            out |= {
                "samples": self.samples,
                "wall_median_s": self.wall_median_s,
                "wall_best_s": self.wall_best_s,
                "cpu_median_s": self.cpu_median_s,
                "sys_median_s": self.sys_median_s,
                "msamples_per_s": self.throughput_msps,
                "best_msamples_per_s": self.best_throughput_msps,
                "found": self.found,
            }
        return out


def child_env() -> dict[str, str]:
    """The parent's environment, with one-thread math libraries and the repository importable."""
    env = dict(os.environ)
    env.update(dict.fromkeys(ONE_THREAD, "1"))
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_task(task: str, params: dict[str, Any], timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run `task` in a fresh interpreter and return its JSON result (or {"error": ...})."""
    with tempfile.TemporaryDirectory(prefix="crampwatch-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "benchmarks.worker", task, json.dumps(params)]
        completed = subprocess.run(
            [*command, str(result_path)],
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if result_path.exists():
            result = json.loads(result_path.read_text())
            if "error" in result and completed.stderr:
                sys.stderr.write(completed.stderr)
            return result
    return {"task": task, "error": f"worker exited with {completed.returncode}: {completed.stderr}"}
