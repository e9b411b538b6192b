"""Agreement of crampwatch's leg-movement and PLM scoring with the Luna toolset's ``LM`` command.

``python -m benchmarks.luna_agreement`` (needs ``lunapi``: ``pip install 'crampwatch[bench]'``)
scores the same signals both ways and prints a markdown table: leg movements (LM), candidate LMs
(CLM), PLM, PLM series, PLM per hour, and how many LMs and PLMs of one are matched (overlap in
time) by the other.

How Luna is fed: the pipeline's own 250 ms RMS envelope (one value per 20 ms hop, in uV) goes into an
empty in-memory Luna record, one signal per leg (``insert_signal`` at 50 Hz, ``SET-HEADERS
unit=uV``), and ``LM sig=L,R method=wasm`` runs with its defaults, which are the WASM 2016 numbers
(+8 / +2 uV, 0.5 s offset, 0.5-10 s CLMs, bilateral gap 0.5 s / 4 parts / 15 s, IMI 10-90 s,
series of 4). Both scorers then see one amplitude signal and differ in their rules and in how they
find the resting level: Luna takes a running 60 s median of the signal (with excursions left out),
crampwatch the noise floor it learns from quiet seconds only. Stretches the pipeline reports as lost
signal are set to the channel's median for Luna (it has no notion of them). Luna measures an LM's end
on the envelope as it is; crampwatch moves it back by the RMS window (0.23 s), as it does for every
event.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsp.config import PipelineConfig, ScalingConfig
from dsp.events import STATE_SIGNAL_LOST, StateChange
from dsp.pipeline import Pipeline
from hardware.recordings import open_recording
from hardware.synthetic_emg import SyntheticEMG, plan_night

HOP_RATE_HZ = 50
Interval = tuple[float, float]


@dataclass
class Scored:
    """One scorer's result on one recording (legs combined)."""

    lms: list[Interval]
    plms: list[Interval]
    n_clm: int
    n_series: int
    hours: float

    @property
    def plm_per_hour(self) -> float | None:
        return len(self.plms) / self.hours if self.hours > 0 else None


@dataclass
class Comparison:
    name: str
    ours: Scored
    luna: Scored
    lm_matched: int
    plm_matched: int


def score_ours(
    x: np.ndarray, config: PipelineConfig, block: int = 65536
) -> tuple[Scored, np.ndarray, np.ndarray]:
    """crampwatch on samples: the score, the envelope hops and where the signal was lost."""
    pipeline = Pipeline(config)
    pipeline.limb_movements.keep_movements()
    envelopes, changes = [], []
    for i in range(0, len(x), block):
        out = pipeline.process(x[i : i + block])
        envelopes.append(out.envelope)
        changes += out.state_changes
    out = pipeline.finish()
    changes += out.state_changes
    env = np.concatenate([*envelopes, out.envelope])
    summary = out.limb_movements
    assert summary is not None
    moves = pipeline.limb_movements.movements()
    plms = [(m.start_s, m.end_s) for s in summary.series for m in s.movements]
    scored = Scored(
        [(m.start_s, m.end_s) for m in moves],
        plms,
        summary.combined.candidates,
        summary.combined.plm_series,
        summary.combined.scored_s / 3600.0,
    )
    return scored, env, _lost_hops(changes, config.channels, len(env), pipeline.hop / config.fs)


def _lost_hops(
    changes: list[StateChange], channels: Sequence[str], n_hops: int, hop_s: float
) -> np.ndarray:
    lost = np.zeros((n_hops, len(channels)), dtype=bool)
    since: dict[str, float] = {}
    for change in changes:
        if change.state == STATE_SIGNAL_LOST:
            since.setdefault(change.channel, change.at_s)
        elif change.channel in since:
            start = since.pop(change.channel)
            lost[
                round(start / hop_s) : round(change.at_s / hop_s), channels.index(change.channel)
            ] = True
    for channel, start in since.items():
        lost[round(start / hop_s) :, channels.index(channel)] = True
    return lost


def score_luna(env: np.ndarray, lost: np.ndarray, hours: float) -> Scored:
    """Luna's LM command (method=wasm, its defaults) on the envelope hops, legs combined."""
    import lunapi

    env = np.where(np.isfinite(env), env, np.nan)
    for c in range(env.shape[1]):
        rest = float(np.nanmedian(env[:, c]))
        env[:, c] = np.where(lost[:, c] | ~np.isfinite(env[:, c]), rest, env[:, c])
    proj = lunapi.proj(verbose=False)
    proj.silence(True)
    seconds = math.ceil(len(env) / HOP_RATE_HZ)
    padded = np.vstack([env, np.repeat(env[-1:], seconds * HOP_RATE_HZ - len(env), axis=0)])
    labels = ["L", "R"][: env.shape[1]]
    inst = proj.empty_inst("crampwatch", seconds, 1)
    for c, label in enumerate(labels):
        inst.insert_signal(label, padded[:, c], HOP_RATE_HZ)
    inst.proc(f"SET-HEADERS sig={','.join(labels)} unit=uV")
    inst.proc(f"LM sig={','.join(labels)} method=wasm verbose")
    totals = inst.table("LM").iloc[0]
    events = inst.table("LM", "EVENT_TYPE")
    lms = events[events["TYPE"] == "LM"] if len(events) else events
    intervals = [(float(a), float(b)) for a, b in zip(lms["START"], lms["STOP"], strict=True)]
    plm = [iv for iv, flag in zip(intervals, lms["PLM"], strict=True) if int(flag) == 1]
    return Scored(intervals, plm, int(totals["N_CLM"]), int(totals["N_PLM_SEQ"]), hours)


def matched(a: list[Interval], b: list[Interval]) -> int:
    """Intervals of `a` that overlap one of `b`, each of `b` used once (both in time order)."""
    hits, j = 0, 0
    for start, end in sorted(a):
        while j < len(b) and b[j][1] <= start:
            j += 1
        if j < len(b) and b[j][0] < end:
            hits += 1
            j += 1
    return hits


def compare(name: str, x: np.ndarray, config: PipelineConfig) -> Comparison:
    ours, env, lost = score_ours(x, config)
    luna = score_luna(env, lost, ours.hours)
    return Comparison(
        name, ours, luna, matched(ours.lms, sorted(luna.lms)), matched(ours.plms, sorted(luna.plms))
    )


def synthetic_nights(
    seeds: Sequence[int], hours: float, fs: float, *, cramps: bool = False
) -> Iterator[tuple[str, np.ndarray, PipelineConfig]]:
    """Nights with PLM series and turnovers (and, with `cramps`, cramps and walks too)."""
    for seed in seeds:
        plan = plan_night(
            seed,
            duration_s=hours * 3600,
            fs=fs,
            n_cramps=1 if cramps else 0,
            n_walks=1 if cramps else 0,
            n_plm_series=max(1, round(2 * hours)),
            electrode_off=cramps,
        )
        kind = "PLM, turnovers, a cramp, a walk, electrode off" if cramps else "PLM, turnovers"
        x = SyntheticEMG(plan, seed + 1).render()
        yield (
            f"synthetic night {seed} ({hours:g} h: {kind})",
            x,
            PipelineConfig(fs=fs, channels=plan.channels),
        )


REAL = (
    ("biosppy/emg_1.txt", None, "one muscle, rest with short voluntary bursts"),
    ("uci_lower_limb/5Nsen.txt", 1000.0, "thigh EMG, seated leg movements"),
)


def real_recordings(folder: Path) -> Iterator[tuple[str, np.ndarray, PipelineConfig]]:
    """The shared real recordings where leg movements are meaningful (two channels at most)."""
    for relative, fs, what in REAL:
        path = folder / relative
        if not path.exists():
            continue
        with open_recording(path, fs=fs) as recording:
            info = recording.info
            x = np.concatenate(list(recording.blocks(65536)))[:, :2]
            config = PipelineConfig(
                fs=info.fs,
                channels=info.channels[:2],
                scaling=ScalingConfig(units=info.units or "uV"),
            )
        yield f"{relative} ({what})", x, config


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[Comparison]) -> str:
    head = (
        "| recording | LM ours / Luna | LM matched | CLM ours / Luna | PLM ours / Luna | "
        "PLM matched | series ours / Luna | PLM per hour ours / Luna |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        o, lu = r.ours, r.luna
        lines.append(
            f"| {r.name} | {len(o.lms)} / {len(lu.lms)} | {r.lm_matched} of {len(o.lms)} | "
            f"{o.n_clm} / {lu.n_clm} | {len(o.plms)} / {len(lu.plms)} | "
            f"{r.plm_matched} of {len(o.plms)} | {o.n_series} / {lu.n_series} | "
            f"{_fmt(o.plm_per_hour)} / {_fmt(lu.plm_per_hour)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.luna_agreement",
        description="Leg movements and PLM series: crampwatch against Luna's LM command.",
    )
    parser.add_argument("--seeds", type=int, default=6, help="synthetic nights (default 6)")
    parser.add_argument("--hours", type=float, default=2.0, help="hours per night (default 2)")
    parser.add_argument("--fs", type=float, default=500.0, help="sampling rate (default 500)")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("CRAMPWATCH_EMG_DATA", "../shared/data/emg")),
        help="the shared real recordings (default $CRAMPWATCH_EMG_DATA or ../shared/data/emg)",
    )
    args = parser.parse_args(argv)
    try:
        import lunapi  # noqa: F401
    except ImportError:
        print("lunapi is not installed: pip install 'crampwatch[bench]'", file=sys.stderr)
        return 2
    seeds = range(100, 100 + args.seeds)
    sources = [
        *synthetic_nights(seeds, args.hours, args.fs),
        *synthetic_nights(seeds[:2], args.hours, args.fs, cramps=True),
        *real_recordings(args.data),
    ]
    rows = []
    for name, x, config in sources:
        print(f"[luna] {name}", file=sys.stderr)
        rows.append(compare(name, x, config))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
