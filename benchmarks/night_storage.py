"""``python -m benchmarks.night_storage``: bytes per recorded night and the CPU it costs.

A synthetic night (the benchmark night of `benchmarks.night`, in uV) is turned into the ADC codes
each converter delivers behind the modelled front end (gain 1000): the MCP3008 (10 bits, 3.3 V,
1.65 V bias) and the ADS1115 (16 bits, +-2.048 V, differential). Each is recorded by the real
`NightRecorder` into a temporary folder in half-second blocks (what the daemon writes through), and
the bytes on disk and the process CPU time of the writes are measured, then read back once to check
that every code came back. For comparison: the landed format (float32 frames, 8 bytes per frame of
two channels), the codec alone at other zlib levels, and lzma over whole segments (smaller, but it
cannot flush every half second, so a killed recorder would lose up to a segment). When the real
recordings are present (`CRAMPWATCH_EMG_DATA` or ../shared/data/emg), BioSPPy's 12-bit ADC counts
(mostly rest) are measured as well.

Figures are per 8-hour night at 1 kHz x 2 channels, extrapolated from the minutes measured (the
spec is a whole 8-hour night: `--hours 8`; the default is 1 hour, `--quick` 10 minutes).
"""

from __future__ import annotations

import argparse
import lzma
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.night import NightSpec, ensure_night_file
from dsp.config import ScalingConfig
from firmware_host.device import sample_codec
from firmware_host.device.night_recorder import NightRecorder, open_night
from tests.shared_data import emg_data_dir

NIGHT_S = 8 * 3600.0
BLOCK_S = 0.5
MCP_LSB, ADS_LSB = 3.3 / 1024, 2.048 / 32768


def mcp3008_codes(microvolts: np.ndarray) -> np.ndarray:
    volts = np.clip(microvolts * 1e-3 + 1.65, 0.0, 3.3)
    return np.clip(np.floor(volts / MCP_LSB), 0, 1023)


def ads1115_codes(microvolts: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(microvolts * 1e-3 / ADS_LSB), -32768, 32767)


def record(codes: np.ndarray, fs: float, lsb: float, work: Path) -> dict[str, float]:
    """Record codes x lsb (volts) with the real recorder; bytes on disk, CPU seconds."""
    scaling = ScalingConfig(units="V", gain=1000.0, offset_v=0.0)
    directory = work / f"night-{time.monotonic_ns()}"
    block = round(BLOCK_S * fs)
    volts = codes * lsb
    cpu = 0.0
    with NightRecorder(
        directory, fs=fs, channels=("a", "b"), scaling=scaling, lsb_v=lsb,
        started=datetime.now(UTC), device="bench",
    ) as recorder:  # fmt: skip
        for i in range(0, len(volts), block):
            piece = volts[i : i + block]
            start = time.process_time()
            recorder.write(piece)
            cpu += time.process_time() - start
        start = time.process_time()
        recorder.close()
        cpu += time.process_time() - start
    size = sum(p.stat().st_size for p in directory.glob("samples-*"))
    start = time.process_time()
    back = np.concatenate(list(open_night(directory).blocks(1 << 16)))
    read_cpu = time.process_time() - start
    if not np.array_equal(np.rint(back / lsb), codes):
        raise AssertionError("the recorded codes did not read back bit for bit")
    return {"bytes": size, "cpu_s": cpu, "read_cpu_s": read_cpu}


def codec_only(codes: np.ndarray, fs: float, level: int) -> dict[str, float]:
    writer = sample_codec.SegmentWriter(level)
    block = round(BLOCK_S * fs)
    size, start = 0, time.process_time()
    for i in range(0, len(codes), block):
        size += len(writer.chunk(i, codes[i : i + block]))
    return {"bytes": size, "cpu_s": time.process_time() - start}


def lzma_segments(codes: np.ndarray, fs: float, segment_s: float = 3600.0) -> dict[str, float]:
    """The same records, each segment compressed whole with lzma (preset 6)."""
    step = round(segment_s * fs)
    block = round(BLOCK_S * fs)
    size, start = 0, time.process_time()
    for first in range(0, len(codes), step):
        segment = codes[first : first + step]
        payload = b"".join(
            sample_codec.encode(first + i, segment[i : i + block])
            for i in range(0, len(segment), block)
        )
        size += len(lzma.compress(payload, preset=6))
    return {"bytes": size, "cpu_s": time.process_time() - start}


def real_counts() -> np.ndarray | None:
    """BioSPPy's 12-bit counts as two channels (the first and second half of the file)."""
    root = emg_data_dir()
    if root is None or not (root / "biosppy" / "emg.txt").is_file():
        return None
    values = np.loadtxt(root / "biosppy" / "emg.txt", comments="#")
    values = values if values.ndim == 1 else values[:, -1]
    half = len(values) // 2
    return np.stack([values[:half], values[half : 2 * half]], axis=1)


def per_night(result: dict[str, float], seconds: float) -> dict[str, float]:
    scale = NIGHT_S / seconds
    out = {
        "mb_per_night": result["bytes"] * scale / 1e6,
        "cpu_us_per_s": result["cpu_s"] / seconds * 1e6,
    }
    if "read_cpu_s" in result:
        out["read_s_per_night"] = result["read_cpu_s"] * scale
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=1.0, help="signal measured (spec: 8)")
    parser.add_argument("--quick", action="store_true", help="10 minutes")
    args = parser.parse_args(argv)
    hours = 10 / 60 if args.quick else args.hours
    spec = NightSpec(hours=hours)
    night, _ = ensure_night_file(spec)
    microvolts = np.load(night, mmap_mode="r")[:, :2].astype(np.float64)
    fs, seconds = spec.fs, len(microvolts) / spec.fs
    float32_mb = 4 * 2 * fs * NIGHT_S / 1e6
    print(f"{seconds / 60:.0f} minutes of signal measured, figures per 8-hour night, 1 kHz x 2 ch")
    print(f"landed format (float32 frames): {float32_mb:.1f} MB per night")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, codes, lsb in (
            ("MCP3008 (10-bit)", mcp3008_codes(microvolts), MCP_LSB),
            ("ADS1115 (16-bit)", ads1115_codes(microvolts), ADS_LSB),
        ):
            rows.append(
                (name, "recorder, zlib 6", per_night(record(codes, fs, lsb, Path(tmp)), seconds))
            )
            for level in (1, 9):
                rows.append(
                    (name, f"codec, zlib {level}", per_night(codec_only(codes, fs, level), seconds))
                )
            rows.append((name, "lzma per segment", per_night(lzma_segments(codes, fs), seconds)))
        counts = real_counts()
        if counts is not None:
            real_s = len(counts) / 1000.0
            rows.append(("BioSPPy 12-bit counts (real, rest)", "recorder, zlib 6",
                         per_night(record(counts, 1000.0, 1.0, Path(tmp)), real_s)))  # fmt: skip
            rows.append(("BioSPPy 12-bit counts (real, rest)", "lzma per segment",
                         per_night(lzma_segments(counts, 1000.0), real_s)))  # fmt: skip
    print(
        f"{'signal':36s} {'storage':20s} {'MB/night':>9s} {'x smaller':>9s} {'CPU us per s':>12s}"
    )
    for name, how, figures in rows:
        print(
            f"{name:36s} {how:20s} {figures['mb_per_night']:9.1f} "
            f"{float32_mb / figures['mb_per_night']:9.1f} {figures['cpu_us_per_s']:12.0f}"
            + (f"   (reading the night back: {figures['read_s_per_night']:.1f} s CPU)"
               if "read_s_per_night" in figures else "")
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
