"""The side-by-side markdown table, the target checks and notes under it, and the JSON document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.measure import Measurement

DASH = "—"
PEER_KEYS = ("neurokit2", "biosppy")
PEER_CAVEAT = (
    "- the peers do not detect cramps: they find muscle activations (onsets) over a whole array "
    "held in memory, one channel; the comparison is of processing speed and memory only. Ours "
    "streams the same segment in blocks, as it does live."
)


@dataclass(frozen=True)
class Targets:
    """From the issue: replay speed on one core, peak memory, and speed relative to the floor."""

    replay_msps: float = 20.0
    peak_rss_mb: float = 200.0
    floor_ratio: float = 0.3


def ratio(a: Measurement | None, b: Measurement | None) -> float | None:
    """Throughput of a over throughput of b, when both ran."""
    if a is None or b is None or not (a.ok and b.ok):
        return None
    return a.throughput_msps / b.throughput_msps


def ratios(rows: dict[str, Measurement]) -> dict[str, float | None]:
    """pipeline/floor (file and memory) and peer/ours (same hour, one channel)."""
    ours_1ch = rows.get("pipeline_memory_1ch")
    return {
        "pipeline_file": ratio(rows.get("pipeline_file"), rows.get("floor_file")),
        "pipeline_memory": ratio(rows.get("pipeline_memory"), rows.get("floor_memory")),
        "neurokit2": ratio(rows.get("neurokit2"), ours_1ch),
        "biosppy": ratio(rows.get("biosppy"), ours_1ch),
    }


def _found_text(m: Measurement) -> str:
    if not m.ok:
        return m.error or DASH
    found = m.found
    if "cramps" in found:
        text = f"{found['cramps']} cramps, {found['movements']} movements"
        return f"{text} ({m.note})" if m.note else text
    if "activations" in found:
        return f"{found['activations']} activation onsets"
    return f"{found['hops']} envelope values"


def _ratio_text(key: str, value: float | None) -> str:
    if value is None:
        return DASH
    if key.startswith("pipeline"):
        return f"{value:.2f} × floor"
    return f"{value:.2g} × ours (ours {1 / value:.0f}× faster)"


def _row(index: int, m: Measurement, ratio_value: float | None) -> str:
    if not m.ok:
        cells = [DASH] * 4
    else:
        cells = [
            f"{m.wall_median_s:.2f} / {m.wall_best_s:.2f}",
            f"{m.cpu_median_s:.2f} ({m.sys_median_s:.2f})",
            f"**{m.throughput_msps:.3g}** / {m.best_throughput_msps:.3g}",
            f"{m.peak_rss_mb:.0f} ({m.base_rss_mb:.0f})",
        ]
    found = _found_text(m)
    return (
        "| "
        + " | ".join([str(index), m.label, m.data, *cells, found, _ratio_text(m.key, ratio_value)])
        + " |"
    )


HEADER = (
    "| # | benchmark | data | wall s (median / best) | CPU s (sys) | M samples/s (median / best) "
    "| peak RSS MB (after setup) | found | ratio |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def markdown_table(rows: Sequence[Measurement]) -> str:
    by_key = {m.key: m for m in rows}
    r = ratios(by_key)
    lines = [HEADER] + [_row(i, m, r.get(m.key)) for i, m in enumerate(rows, 1)]
    return "\n".join(lines)


def target_checks(rows: dict[str, Measurement], targets: Targets) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None when it could not run)."""
    replay = rows.get("pipeline_file")
    ok = replay is not None and replay.ok
    floor_ratio = ratios(rows)["pipeline_file"]
    checks = [
        (
            "replay throughput, M samples/s",
            ">=",
            targets.replay_msps,
            replay.throughput_msps if ok else None,
        ),
        ("replay peak RSS, MB", "<", targets.peak_rss_mb, replay.peak_rss_mb if ok else None),
        ("pipeline / floor throughput (file)", ">=", targets.floor_ratio, floor_ratio),
    ]
    out = []
    for name, op, target, value in checks:
        met = None if value is None else (value >= target if op == ">=" else value < target)
        out.append({"name": name, "target": f"{op} {target:g}", "value": value, "met": met})
    return out


def _check_line(check: dict[str, Any]) -> str:
    value = check["value"]
    shown = DASH if value is None else f"{value:.2f}"
    verdict = {True: "met", False: "NOT met", None: "not measured"}[check["met"]]
    return f"- {check['name']}: {shown} (target {check['target']}): {verdict}"


def io_share_line(rows: dict[str, Measurement]) -> str | None:
    """How much of the file replay's time per sample is reading the file, from file vs memory."""
    file_run, memory_run = rows.get("pipeline_file"), rows.get("pipeline_memory")
    if file_run is None or memory_run is None or not (file_run.ok and memory_run.ok):
        return None
    per_file = 1.0 / file_run.throughput_msps
    per_memory = 1.0 / memory_run.throughput_msps
    share = max(0.0, per_file - per_memory) / per_file
    return (
        f"- replay from the file vs the pipeline in memory: {file_run.throughput_msps:.1f} vs "
        f"{memory_run.throughput_msps:.1f} M samples/s, so reading the file (float32 .npy to "
        f"float64 blocks) and replay()'s own work take about {share:.0%} of the replay time"
    )


def notes(rows: dict[str, Measurement], targets: Targets, context: dict[str, Any]) -> str:
    """Lines under the table: targets, the I/O share, caveats and the conditions of the run."""
    has_peers = any(key in rows for key in PEER_KEYS)
    peer_runs = f", {context['peer_repeats']} per peer" if has_peers else ""
    lines = ["", "Targets (issue):"]
    lines += [_check_line(c) for c in target_checks(rows, targets)]
    lines += ["", "Notes:"]
    io_line = io_share_line(rows)
    if io_line:
        lines.append(io_line)
    lines += [
        "- samples = frames x channels; throughput and ratios use the median wall time; CPU s is "
        "the process CPU time of one run, in brackets the part spent in the kernel (page faults "
        "of fresh memory, file reads); peak RSS is the high-water mark (VmHWM) "
        "of the measuring subprocess, in brackets after imports and loading its input, before "
        "the timed runs (ru_maxrss is not used: Linux carries the parent's peak into it).",
        "- ratio: pipeline rows = pipeline throughput / scipy floor throughput on the same data "
        "(floor = streaming sosfilt with zi, same 4th-order 20-450 Hz band-pass, no notch, "
        "cumulative-sum RMS 250 ms / 20 ms); peer rows = peer throughput / ours on the same "
        "segment, one channel.",
        f"- one thread per process (OMP/OPENBLAS/MKL_NUM_THREADS=1); block size "
        f"{context['block']}; {context['repeats']} run(s) per row of ours"
        f"{peer_runs}; {context['cpus']} CPU(s); load average "
        f"{context['load_before']} before, {context['load_after']} after.",
        f"- night: {context['night']}",
    ]
    if has_peers:
        lines.insert(-2, PEER_CAVEAT)
    return "\n".join(lines)
