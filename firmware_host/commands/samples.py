"""`crampwatch samples [DIR]`: sample recordings to try crampwatch on, with their ground truth.

One seeded synthetic two-calf night (a cramp, turning over, a walk, periodic limb movements) is
written in every format `replay` reads: CSV with metadata, .npy, .npz, EDF+ (with the ground truth
as annotations) and WFDB; beside them `truth.csv` (for `crampwatch evaluate`) and a made-up
nutrition-tracker export (`dailysummary.csv`, Cronometer's daily-nutrition layout) for
`crampwatch intake import`. Everything is labelled as synthetic. The README's examples use them.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from dsp.annotations import Annotation
from firmware_host.commands.evaluate import write_annotations_csv
from hardware.synthetic_emg import NightPlan, SyntheticEMG, scenario

CHANNELS = ("left_calf", "right_calf")
BLOCK_SECONDS = 60
MAX_MINUTES = 120
SUPPORTED_FS = (500.0, 1000.0, 2000.0)
# EDF stores 16-bit samples: +-5000 uV (the synthetic rails) in steps of about 0.15 uV.
EDF_RANGE_UV = 5000.0
DIARY_DAYS = 14
RECORDING_START = datetime(2026, 1, 5, 22, 30)  # the EDF header's start (EDF has no time zone)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "samples",
        help="write sample recordings (every format replay reads) with their ground truth",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument(
        "dir", nargs="?", type=Path, default=Path("samples"),
        help="folder to write into (default ./samples; created, must be empty or absent)",
    )  # fmt: skip
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help=f"length of the night (default 10, at most {MAX_MINUTES})",
    )
    parser.add_argument("--seed", type=int, default=3, help="which synthetic night (default 3)")
    parser.add_argument(
        "--fs",
        type=float,
        default=1000.0,
        help="sampling rate: 500, 1000 or 2000 Hz (default 1000)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prog = "crampwatch samples"
    problem = _check_arguments(args)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    try:
        written = write_samples(args.dir, minutes=args.minutes, seed=args.seed, fs=args.fs)
    except ImportError as error:
        print(
            f"{prog}: error: {error.name} is missing: pip install 'crampwatch[research]' "
            "(EDF and WFDB writers)",
            file=sys.stderr,
        )
        return 2
    except OSError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {args.dir}/ (synthetic data, seed {args.seed}):")
    for path, what in written:
        print(f"  {path.name:<18} {what}")
    return 0


def _check_arguments(args: argparse.Namespace) -> str | None:
    if not MIN_MINUTES <= args.minutes <= MAX_MINUTES:
        return f"--minutes must be {MIN_MINUTES}-{MAX_MINUTES} (sample files are for trying things out)"
    if args.fs not in SUPPORTED_FS:
        return "--fs must be one of " + ", ".join(f"{f:g}" for f in SUPPORTED_FS)
    if args.dir.exists() and (not args.dir.is_dir() or any(args.dir.iterdir())):
        return f"{args.dir} exists and is not an empty folder: name a new folder"
    if not args.dir.parent.is_dir():
        return f"the folder {args.dir.parent} does not exist: create it first"
    return None


# The sample night's events (kind, start_s, end_s[, channel]); later minutes are quiet rest.
SAMPLE_EVENTS: tuple[tuple, ...] = (
    ("movement", 75.0, 78.0),  # turning over: both calves
    ("cramp", 150.0, 240.0, "left_calf"),  # 90 s, after a slow rise
    *(("movement", at, at + 1.5, "right_calf") for at in (290.0, 318.0, 344.0, 371.0, 399.0)),
    ("walking", 450.0, 540.0),  # to the bathroom and back: rhythmic, not a cramp
    ("movement", 570.0, 572.5, "left_calf"),
)
MIN_MINUTES = 10


def sample_plan(minutes: float, seed: int, fs: float) -> NightPlan:
    """The sample night: turning over, a cramp on the left calf, a periodic limb movement series
    on the right, a walk, then quiet rest."""
    return scenario(seed, fs=fs, duration_s=minutes * 60.0, events=SAMPLE_EVENTS, channels=CHANNELS)


def write_samples(
    folder: Path, *, minutes: float = 10.0, seed: int = 3, fs: float = 1000.0
) -> list[tuple[Path, str]]:
    """Write the sample files into `folder` (created); returns (path, description) pairs.

    Each file is written to a temporary name and renamed when complete.
    """
    import pyedflib  # noqa: F401  (fail before anything is written)
    import wfdb  # noqa: F401

    plan = sample_plan(minutes, seed, fs)
    folder.mkdir(parents=True, exist_ok=True)
    n = plan.n_samples
    seconds = n // int(fs)  # EDF and the other files hold whole seconds
    blocks = partial_blocks(plan, seed, whole_seconds=seconds)
    writers: list[tuple[str, Callable[[Path], None], str]] = [
        ("night.csv", lambda p: _write_csv(p, blocks(), plan, seed),
         "CSV, time column, '# sampling rate' and '# units' lines"),
        ("night.npy", lambda p: _write_npy(p, blocks(), seconds * int(fs)),
         f"NumPy (samples, 2) in uV: replay with --fs {fs:g} --units uV"),
        ("night.npz", lambda p: _write_npz(p, blocks(), fs),
         "NumPy archive: 'calves' (samples, 2), 'fs' and 'units'"),
        ("night.edf", lambda p: _write_edf(p, blocks(), plan, seconds),
         "EDF+ with the ground truth as annotations"),
        ("night.hea", lambda p: _write_wfdb(p, blocks(), fs),
         "WFDB header (+ night.dat)"),
        ("truth.csv", lambda p: write_annotations_csv(p, plan.annotations),
         "ground truth for crampwatch evaluate"),
        ("dailysummary.csv", lambda p: _write_diary(p, seed),
         "made-up nutrition-tracker export for intake import"),
    ]  # fmt: skip
    written = []
    for name, write, what in writers:
        target = folder / name
        _atomically(target, write)
        written.append((target, what))
    return written


def partial_blocks(
    plan: NightPlan, seed: int, *, whole_seconds: int
) -> Callable[[], Iterator[np.ndarray]]:
    """A fresh iterator over the night's samples (uV, float64) in one-minute blocks."""
    fs = int(plan.fs)

    def blocks() -> Iterator[np.ndarray]:
        source = SyntheticEMG(plan, seed)
        left = whole_seconds * fs
        for block in source.blocks(BLOCK_SECONDS * fs):
            if left <= 0:
                return
            yield block[:left]
            left -= len(block)

    return blocks


def _atomically(target: Path, write: Callable[[Path], None]) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        write(partial)
        if target.suffix == ".hea":
            partial.with_suffix(".dat.part").rename(target.with_suffix(".dat"))
        partial.rename(target)
    finally:
        for leftover in (partial, partial.with_suffix(".dat.part")):
            leftover.unlink(missing_ok=True)


def _write_csv(path: Path, blocks: Iterator[np.ndarray], plan: NightPlan, seed: int) -> None:
    fs = plan.fs
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(f"# crampwatch sample night: synthetic calf EMG, seed {seed}\n")
        handle.write(f"# sampling rate: {fs:g} Hz\n# units: uV\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["time_s", *plan.channels])
        time_format = f"%.{math.ceil(math.log10(fs))}f"  # exact to the sample
        first = 0
        for block in blocks:
            times = (first + np.arange(len(block))) / fs
            rows = np.column_stack([times, block])
            np.savetxt(handle, rows, fmt=[time_format, "%.3f", "%.3f"], delimiter=",")
            first += len(block)


def _write_npy(path: Path, blocks: Iterator[np.ndarray], n: int) -> None:
    with path.open("wb") as handle:
        header = {"descr": "<f4", "fortran_order": False, "shape": (n, len(CHANNELS))}
        np.lib.format.write_array_header_1_0(handle, header)
        for block in blocks:
            handle.write(block.astype("<f4").tobytes())


def _write_npz(path: Path, blocks: Iterator[np.ndarray], fs: float) -> None:
    # A small archive (minutes of signal): each member is written whole.
    samples = np.concatenate(list(blocks)).astype(np.float32)
    with path.open("wb") as handle:
        np.savez_compressed(handle, calves=samples, fs=np.float64(fs), units=np.str_("uV"))


def _write_edf(path: Path, blocks: Iterator[np.ndarray], plan: NightPlan, seconds: int) -> None:
    import pyedflib

    fs = int(plan.fs)
    writer = pyedflib.EdfWriter(str(path), len(plan.channels), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setStartdatetime(RECORDING_START)
        writer.setSignalHeaders(
            [
                {
                    "label": name,
                    "dimension": "uV",
                    "sample_frequency": fs,
                    "physical_min": -EDF_RANGE_UV,
                    "physical_max": EDF_RANGE_UV,
                    "digital_min": -32768,
                    "digital_max": 32767,
                    "transducer": "synthetic surface EMG",
                    "prefilter": "none",
                }
                for name in plan.channels
            ]
        )
        for block in blocks:
            clipped = np.clip(block, -EDF_RANGE_UV, EDF_RANGE_UV)
            for second in range(len(block) // fs):
                record = clipped[second * fs : (second + 1) * fs]
                writer.writeSamples([np.ascontiguousarray(record[:, c]) for c in range(2)])
        for annotation in _edf_annotations(plan.annotations, seconds):
            writer.writeAnnotation(*annotation)
    finally:
        writer.close()


def _edf_annotations(
    annotations: tuple[Annotation, ...], seconds: int
) -> Iterator[tuple[float, float, str]]:
    """(onset, duration, "KIND [CHANNEL]") as `crampwatch evaluate` reads them back."""
    for a in annotations:
        if a.start_s < seconds:
            text = a.kind if a.channel is None else f"{a.kind} {a.channel}"
            yield a.start_s, min(a.end_s, seconds) - a.start_s, text


def _write_wfdb(path: Path, blocks: Iterator[np.ndarray], fs: float) -> None:
    import wfdb

    # wfdb writes a record whole: sample files are minutes long, so this stays small.
    samples = np.concatenate(list(blocks))
    name = path.name.removesuffix(".hea.part")
    staging = path.parent / f".{name}-wfdb"
    staging.mkdir()
    try:
        wfdb.wrsamp(
            name, fs=fs, units=["uV", "uV"], sig_name=list(CHANNELS), p_signal=samples,
            fmt=["16", "16"], adc_gain=[6.5, 6.5], baseline=[0, 0], write_dir=str(staging),
        )  # fmt: skip
        (staging / f"{name}.dat").rename(path.with_suffix(".dat.part"))
        (staging / f"{name}.hea").rename(path)
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()


def _write_diary(path: Path, seed: int) -> None:
    """Two weeks of made-up daily totals in the layout of Cronometer's daily-nutrition export."""
    rng = np.random.default_rng(seed)
    first = date(2026, 1, 5)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            ["Date", "Energy (kcal)", "Water (g)", "Magnesium (mg)", "Potassium (mg)",
             "Calcium (mg)", "Sodium (mg)", "Caffeine (mg)", "Alcohol (g)", "Completed"]
        )  # fmt: skip
        for day in range(DIARY_DAYS):
            writer.writerow(
                [
                    (first + timedelta(days=day)).isoformat(),
                    int(rng.integers(1700, 2600)),
                    int(rng.integers(1200, 2800)),
                    int(rng.integers(180, 420)),
                    int(rng.integers(1800, 3800)),
                    int(rng.integers(500, 1200)),
                    int(rng.integers(1500, 3500)),
                    int(rng.choice([0, 95, 190])),
                    int(rng.choice([0, 0, 10, 20])),
                    "true",
                ]
            )
