"""``python -m benchmarks.edf_io``: time and peak memory of the EDF+ export and of reading it back.

A night of MCP3008 codes (1 kHz, two channels, one sample in 100,000 missing) is recorded with the
device's NightRecorder, then, each in a fresh process: `crampwatch export NIGHT --edf OUT.edf`
(pyedflib's EdfWriter), and reading OUT.edf through `open_recording` (pyedflib's EdfReader, gaps
as NaN). Peak memory is the process's own VmHWM. The spec is an 8-hour night (the default);
`--hours 0.5` is a quick run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.measure import REPO_ROOT
from dsp.config import ScalingConfig
from firmware_host.device.night_recorder import NightRecorder

LSB_V = 3.3 / 1024
SCALING = ScalingConfig(units="V", gain=1000.0, offset_v=1.65, rails=(0.0, 3.3 - LSB_V))
STEP = 600_000  # samples per write: 10 minutes at 1 kHz
MEASURE = textwrap.dedent("""
    import sys, time
    {setup}
    t = time.perf_counter()
    {body}
    seconds = time.perf_counter() - t
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    print(f"{{seconds:.2f}} {{peak / 1024:.0f}}")
""")


def record_night(directory: Path, hours: float) -> int:
    """Record `hours` of two-channel MCP3008 codes; returns the samples per channel."""
    rng = np.random.default_rng(0)
    n = round(hours * 3600 * 1000)
    started = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
    channels = ("left_calf", "right_calf")
    with NightRecorder(
        directory, fs=1000.0, channels=channels, scaling=SCALING, lsb_v=LSB_V,
        started=started, device="bench",
    ) as night:  # fmt: skip
        for first in range(0, n, STEP):
            count = min(STEP, n - first)
            volts = rng.integers(300, 700, (count, 2)) * LSB_V
            volts[rng.random((count, 2)) < 1e-5] = np.nan
            night.write(volts)
    return n


def measure(setup: str, body: str) -> tuple[float, float]:
    """(seconds of `body`, peak MiB) in a fresh process that ran `setup` (imports) first."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE.format(setup=setup, body=body)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, peak = result.stdout.split()[-2:]
    return float(seconds), float(peak)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edf_io", description=__doc__)
    parser.add_argument("--hours", type=float, default=8.0, help="night length (default 8)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        night, out = Path(tmp) / "night", Path(tmp) / "night.edf"
        n = record_night(night, args.hours)
        argv_ = ["export", str(night), "--edf", str(out)]
        export = measure("from firmware_host.cli import main", f"assert main({argv_!r}) == 0")
        read = measure(
            "from hardware.recordings import open_recording",
            f"with open_recording({str(out)!r}) as r: assert sum(map(len, r.blocks())) == {n}",
        )
        size = out.stat().st_size / 1e6
    print(f"{args.hours:g} h night at 1 kHz x 2 channels ({size:.0f} MB as EDF+)")
    print("| step | seconds | peak MiB |\n|---|---|---|")
    print(f"| export (pyedflib EdfWriter) | {export[0]:.1f} | {export[1]:.0f} |")
    print(f"| read back (pyedflib EdfReader) | {read[0]:.1f} | {read[1]:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
