"""Small synthetic recordings with sidecars and truth files, for the batch, plot and API tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from firmware_host.commands.evaluate import write_annotations_csv
from hardware.synthetic_emg import SyntheticEMG, scenario

FS = 1000.0
START = "2026-01-14T22:41:00Z"


def write_night(
    folder: Path,
    name: str,
    seed: int,
    *,
    duration_s: float = 240.0,
    cramp_at: float = 60.0,
    sidecar: bool = True,
    truth: bool = True,
) -> Path:
    """`NAME.npy` (two calves, a 40 s cramp on the left, a movement on both), and beside it a
    sidecar (rate, units, channel names, start) and the ground truth `NAME.truth.csv`."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = scenario(
        seed,
        fs=FS,
        duration_s=duration_s,
        channels=("left", "right"),
        events=[("cramp", cramp_at, cramp_at + 40.0, "left"), ("movement", 150.0, 153.0)],
    )
    path = folder / f"{name}.npy"
    np.save(path, SyntheticEMG(plan, seed=seed).render())
    if sidecar:
        (folder / f"{name}.crampwatch.toml").write_text(
            f'fs = {FS:g}\nunits = "uV"\nnames = ["left", "right"]\nstart = "{START}"\n'
        )
    if truth:
        write_annotations_csv(folder / f"{name}.truth.csv", plan.annotations)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
