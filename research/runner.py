"""A whole batch: plan the tasks, skip the finished ones, run the rest on Dask with a progress
bar, and write the tables; Ctrl-C stops it cleanly and the next run goes on from there."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from tqdm import tqdm

from firmware_host.commands.replay import add_pipeline_options, add_recording_options
from research.batch import RESULTS_FOLDER, Job, finished_result, plan_jobs
from research.cluster import ClusterError, ClusterInfo, dask_client, run_jobs
from research.collect import (
    events_table,
    pooled_table,
    recordings_table,
    scores_table,
    settings_text,
)
from research.files import remove_partial_files
from research.tables import Table, write_table

PROG = "crampwatch batch"


def recording_option_dests() -> list[str]:
    """The option names (dests) that say how to read a recording and run the pipeline: the
    ones `crampwatch replay` takes, so a batch runs each recording as a replay would."""
    parser = argparse.ArgumentParser(add_help=False)
    add_recording_options(parser)
    add_pipeline_options(parser)
    return [action.dest for action in parser._actions]


def batch_options(args: argparse.Namespace) -> dict[str, Any]:
    """Those options' values in `args` as plain data (paths as text), for keys and workers."""
    values = {dest: getattr(args, dest, None) for dest in recording_option_dests()}
    return {dest: str(v) if isinstance(v, Path) else v for dest, v in values.items()}


@dataclass
class BatchSettings:
    """What a batch runs: recordings x settings combinations, and how."""

    recordings: list[Path]
    out: Path
    options: dict[str, Any]
    grid: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    truth: str = "auto"
    kinds: tuple[str, ...] = ("cramp",)
    min_overlap_s: float = 0.0
    channel_map: dict[str, str] = field(default_factory=dict)
    plot_format: str | None = None
    tz: tzinfo | None = None
    full_hash: bool = False
    scheduler: str | None = None
    workers: int | None = None
    memory_limit: str | int | None = None
    progress: bool = True


@dataclass
class BatchOutcome:
    """What a batch did: the results in table order, the tables' files, and the figures."""

    results: list[dict[str, Any]]
    tables: dict[str, Table]
    files: list[Path]
    skipped: int
    ran: int
    cluster: ClusterInfo | None
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)  # plan_s, run_s, tables_s

    @property
    def failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.results)

    def frame(self, name: str) -> Any:
        """The table `name` (recordings, events, scores, pooled) as a pandas DataFrame."""
        import pandas

        table = self.tables[name]
        return pandas.DataFrame(table.typed_rows(), columns=table.column_names())

    @property
    def recordings(self) -> Any:
        return self.frame("recordings")

    @property
    def events(self) -> Any:
        return self.frame("events")

    @property
    def scores(self) -> Any:
        return self.frame("scores")

    @property
    def pooled(self) -> Any:
        return self.frame("pooled")


def execute(settings: BatchSettings, *, client: Any = None) -> BatchOutcome:
    """Run the batch (on `client` when given, else as `settings` says) and write its tables.

    Raises KeyboardInterrupt after a clean stop when interrupted."""
    began = time.perf_counter()
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(
        settings.recordings,
        settings.grid,
        {**settings.options, "settings": None},
        out,
        truth=settings.truth,
        kinds=settings.kinds,
        min_overlap_s=settings.min_overlap_s,
        channel_map=settings.channel_map,
        plot_format=settings.plot_format,
        tz=settings.tz,
        full_hash=settings.full_hash,
    )
    planned = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for job in jobs:
        done = finished_result(job)
        if done is not None:
            results[job.key] = done
    pending = [job for job in jobs if job.key not in results]
    cluster = None
    if pending:
        cluster = _run_pending(settings, pending, results, len(jobs), client)
    ran = time.perf_counter()
    ordered = [results[job.key] for job in jobs]
    tables = {
        "recordings": recordings_table(ordered),
        "events": events_table(ordered),
        "scores": scores_table(ordered),
        "pooled": pooled_table(ordered, settings.grid, settings.kinds),
    }
    files = [path for table in tables.values() for path in write_table(table, out)]
    return BatchOutcome(
        results=ordered,
        tables=tables,
        files=files,
        skipped=len(jobs) - len(pending),
        ran=len(pending),
        cluster=cluster,
        seconds=time.perf_counter() - began,
        timings={
            "plan_s": planned - began,
            "run_s": ran - planned,
            "tables_s": time.perf_counter() - ran,
        },
    )


def _run_pending(
    settings: BatchSettings,
    pending: list[Job],
    results: dict[str, dict[str, Any]],
    total: int,
    client: Any,
) -> ClusterInfo | None:
    bar = tqdm(
        total=total,
        initial=total - len(pending),
        unit="recording",
        desc="batch",
        file=sys.stderr,
        disable=not settings.progress or None,
    )

    def keep(job: Job, result: dict[str, Any]) -> None:
        results[job.key] = result
        bar.update(1)
        if result["status"] != "ok":
            bar.write(f"{PROG}: {job.recording}: {result['error']}", file=sys.stderr)

    with bar:
        if client is not None:
            run_jobs(client, pending, keep)
            return None
        embedded = False
        try:
            with dask_client(
                settings.scheduler, workers=settings.workers, memory_limit=settings.memory_limit
            ) as (own_client, info):
                embedded = info.embedded
                run_jobs(own_client, pending, keep)
                return info
        finally:
            if embedded:  # its workers are gone: whatever they left half-written can go
                remove_partial_files(settings.out / RESULTS_FOLDER)


def run_batch(settings: BatchSettings) -> int:
    """The `crampwatch batch` command's work; returns the exit code (0 all done, 1 some
    recordings failed, 2 the batch could not run, 130 interrupted)."""
    try:
        outcome = execute(settings)
    except ClusterError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        done = _count_done(settings.out)
        print(
            f"{PROG}: interrupted; {done} finished result(s) are kept in {settings.out}. Run the "
            "same command again to go on from there.",
            file=sys.stderr,
        )
        return 130
    print(_report(outcome, settings), file=sys.stderr)
    return 1 if outcome.failed else 0


def _count_done(out: Path) -> int:
    return sum(1 for _ in (out / RESULTS_FOLDER).glob("*/result.json"))


def _report(outcome: BatchOutcome, settings: BatchSettings) -> str:
    recordings = len(settings.recordings)
    combos = len(settings.grid)
    lines = [
        f"{recordings} recording(s) x {combos} setting combination(s): "
        f"{len(outcome.results) - outcome.failed} done, {outcome.failed} failed "
        f"({outcome.skipped} already done earlier, {outcome.ran} run now) in {outcome.seconds:.1f} s"
    ]
    if outcome.cluster is not None:
        where = (
            "local cluster" if outcome.cluster.embedded else f"cluster {outcome.cluster.address}"
        )
        lines.append(f"ran on the {where} with {outcome.cluster.workers} worker(s)")
    pooled = outcome.tables["pooled"].rows
    best = [row for row in pooled if row.get("rank") == 1]
    for row in best:
        lines.append(
            f"best {row['kind']} F1 {row['f1']:.3f} (precision {_ratio(row['precision'])}, "
            f"recall {_ratio(row['recall'])}) with {settings_text(_swept(row, settings))} over "
            f"{row['scored_recordings']} scored recording(s)"
        )
    if outcome.failed:
        lines.append(
            f"failed recordings are listed with their error in {settings.out / 'recordings.csv'}"
        )
    lines.append("tables: " + ", ".join(str(p) for p in outcome.files))
    return "\n".join(lines)


def _swept(row: dict[str, Any], settings: BatchSettings) -> dict[str, Any]:
    number = int(row["combination"][1:])
    return settings.grid[number - 1]


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
