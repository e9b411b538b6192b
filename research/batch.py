"""A batch: many recordings (times settings combinations) through the pipeline, one task each.

A task (`run_job`) replays one recording with one combination of settings exactly as `crampwatch
replay` does and leaves, in its own folder under `OUT/results/`, the events file (as replay
writes it), the night plot when asked, and `result.json`: what the tables need. Every file is
written whole (temporary file, then rename), `result.json` last; a task whose `result.json`
exists with its key is done, so a re-run, a second copy of a task after a lost worker, or a
resumed batch repeats nothing that was finished. The key covers the recording's files (see
`research.inputs.fingerprint`), its sidecar and truth files, every option and setting, and the
software version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from dsp import __version__
from dsp.annotations import Annotation
from dsp.evaluation import SCORABLE_KINDS
from firmware_host.allocator import keep_block_buffers
from firmware_host.commands.evaluate import load_annotations
from firmware_host.event_output import EventWriter, atomic_text_output
from hardware.recordings import RecordingError
from hardware.recordings.errors import COMMAND_LINE
from research.files import remove_partial_files, write_json_atomically
from research.inputs import fingerprint, recording_files
from research.night import EVENT_TABLE_FIELDS, replay_file
from research.sidecar import (
    Sidecar,
    SidecarError,
    load_sidecar,
    sidecar_for,
    sidecar_path,
    truth_beside,
)

RESULT_SCHEMA = "crampwatch.batch-result/1"
RESULT_FILE = "result.json"
EVENTS_FILE = "events.jsonl"
RESULTS_FOLDER = "results"


@dataclass(frozen=True)
class Job:
    """One recording with one combination of settings: everything a worker needs."""

    recording: Path
    combination: str
    settings: dict[str, Any]
    options: dict[str, Any]
    folder: Path
    key: str
    out: Path
    truth: str = "auto"
    kinds: tuple[str, ...] = ("cramp",)
    min_overlap_s: float = 0.0
    channel_map: dict[str, str] = field(default_factory=dict)
    plot_format: str | None = None
    tz: tzinfo | None = None

    @property
    def result_path(self) -> Path:
        return self.folder / RESULT_FILE

    @property
    def plot_path(self) -> Path | None:
        return self.folder / f"night.{self.plot_format}" if self.plot_format else None


def task_key(
    recording: Path,
    options: dict[str, Any],
    settings: dict[str, Any],
    scoring: dict[str, Any],
    *,
    full_hash: bool = False,
) -> str:
    """The identity of a task: content of every file it reads, options, settings, version."""
    files = [*recording_files(recording)]
    try:
        sidecar_file = sidecar_path(recording)
    except SidecarError:
        sidecar_file = None
    sidecar = _lenient_sidecar(sidecar_file)
    files += [p for p in (sidecar_file, truth_beside(recording)) if p is not None]
    if sidecar is not None:
        files += [p for p in (sidecar.truth, sidecar.options.get("calibration")) if p]
    if options.get("calibration"):
        files.append(Path(options["calibration"]))
    try:
        content = fingerprint([p for p in files if p.is_file()], full=full_hash)
    except OSError as error:  # unreadable: the task will say so; key it by the path alone
        content = f"unreadable {recording.resolve()}: {error.strerror}"
    document = {
        "schema": RESULT_SCHEMA,
        "software": __version__,
        "recording": str(recording.resolve()),
        "content": content,
        "options": options,
        "settings": settings,
        "scoring": scoring,
    }
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _lenient_sidecar(path: Path | None) -> Sidecar | None:
    if path is None:
        return None
    try:
        return load_sidecar(path)
    except SidecarError:
        return None  # the task reports it


def job_folder(out: Path, recording: Path, key: str) -> Path:
    """`OUT/results/NAME-KEY`: the recording's name kept readable, the key making it unique."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", recording.name).strip("._") or "recording"
    return out / RESULTS_FOLDER / f"{name[:60]}-{key[:16]}"


def finished_result(job: Job) -> dict[str, Any] | None:
    """The job's result if it finished earlier with this key (and its plot, when asked)."""
    try:
        result = json.loads(job.result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("key") != job.key:
        return None
    if result.get("status") != "ok":
        return None  # failures are tried again: the cause may have been passing
    plot = job.plot_path
    if plot is not None and not plot.is_file():
        return None
    return result


def run_job(job: Job) -> dict[str, Any]:
    """The task: replay, score and plot one recording; never raises for a bad recording (the
    error goes into the result). Safe to run twice: a finished job returns its result."""
    done = finished_result(job)
    if done is not None:
        return done
    keep_block_buffers()  # as `crampwatch replay` does (workers are not started by its main)
    job.folder.mkdir(parents=True, exist_ok=True)
    remove_partial_files(job.folder)
    began = time.perf_counter()
    try:
        result = _process(job)
    except Exception as error:  # any failure is this recording's, never the batch's
        if _worker_stopping():
            raise  # torn down under the task (Ctrl-C, a closing cluster): not the recording's fault
        result = failed_result(job, _describe(error, job.recording))
    result["elapsed_s"] = round(time.perf_counter() - began, 3)
    result["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    write_json_atomically(job.result_path, result)
    return result


def _worker_stopping() -> bool:
    """Whether this runs in a Dask worker that is being stopped."""
    try:
        from distributed import get_worker

        status = get_worker().status.name
    except (ImportError, ValueError):
        return False
    return status.startswith(("clos", "stop")) or status == "failed"


def _describe(error: BaseException, recording: Path) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, RecordingError) and re.search(r"--(fs|units|channel)\b", text):
        text += f"; for this recording alone, say it in a sidecar {sidecar_for(recording).name}"
    expected = (ValueError, OSError, LookupError)
    return text if isinstance(error, expected) else f"{type(error).__name__}: {text}"


def failed_result(job: Job, error: str) -> dict[str, Any]:
    """The result of a job that failed with `error`."""
    return {**_identity(job), "status": "error", "error": error}


def _identity(job: Job) -> dict[str, Any]:
    return {
        "schema": RESULT_SCHEMA,
        "key": job.key,
        "recording": str(job.recording),
        "combination": job.combination,
        "settings": job.settings,
    }


def _process(job: Job) -> dict[str, Any]:
    events_path = job.folder / EVENTS_FILE
    with atomic_text_output(events_path) as stream:
        night, sidecar = replay_file(
            job.recording,
            argparse.Namespace(**job.options),
            settings=job.settings,
            writer=EventWriter(stream, "jsonl"),
            envelope=job.plot_format is not None,
            option_names=COMMAND_LINE,
        )
    truth = _truth(job, sidecar, night.format or "")
    result = {
        **_identity(job),
        "status": "ok",
        "error": None,
        "format": night.format,
        "fs": night.fs,
        "start": night.start.isoformat() if night.start else None,
        "duration_s": night.duration_s,
        "channels": list(night.channels),
        "figures": night.figures,
        "settings_hash": night.settings_hash,
        "source_id": night.source_id,
        "events": [{k: e.get(k) for k in EVENT_TABLE_FIELDS} for e in night.events],
        "events_file": _relative(events_path, job.out),
        "plot_file": None,
        "truth": None,
        "scores": None,
        "notes": night.notes,
    }
    if truth is not None:
        annotations, source = truth
        scores = night.score(
            annotations, job.kinds, min_overlap_s=job.min_overlap_s, channel_map=job.channel_map
        )
        result["truth"] = source
        result["scores"] = {kind: score.to_dict() for kind, score in scores.items()}
    if job.plot_path is not None:
        from research.plots import plot_night

        plot_night(night, job.plot_path, tz=job.tz)
        result["plot_file"] = _relative(job.plot_path, job.out)
    return result


def _relative(path: Path, out: Path) -> str:
    try:
        return str(path.relative_to(out))
    except ValueError:
        return str(path)


def _truth(job: Job, sidecar: Sidecar | None, fmt: str) -> tuple[list[Annotation], str] | None:
    """(ground truth, where it came from) for scoring, or None when the recording has none:
    the sidecar's `truth`, else NAME.truth.csv/.jsonl beside it, else (EDF+/BDF+) its own
    annotations when they hold a cramp or movement segment."""
    if job.truth == "none":
        return None
    path = sidecar.truth if sidecar is not None and sidecar.truth else truth_beside(job.recording)
    if path is not None:
        return load_annotations(path), str(path)
    if fmt in ("edf", "bdf"):
        annotations = load_annotations(job.recording)
        if any(a.kind in SCORABLE_KINDS for a in annotations):
            return annotations, "EDF+ annotations"
    return None


def plan_jobs(
    recordings: Sequence[Path],
    grid: Sequence[dict[str, Any]],
    options: dict[str, Any],
    out: Path,
    *,
    truth: str = "auto",
    kinds: Sequence[str] = ("cramp",),
    min_overlap_s: float = 0.0,
    channel_map: dict[str, str] | None = None,
    plot_format: str | None = None,
    tz: tzinfo | None = None,
    full_hash: bool = False,
) -> list[Job]:
    """One job per recording and settings combination (`c1`, `c2`, ... in grid order)."""
    scoring = {
        "truth": truth,
        "kinds": list(kinds),
        "min_overlap_s": min_overlap_s,
        "channel_map": channel_map or {},
    }
    jobs = []
    for number, settings in enumerate(grid, start=1):
        for recording in recordings:
            key = task_key(recording, options, settings, scoring, full_hash=full_hash)
            jobs.append(
                Job(
                    recording=recording,
                    combination=f"c{number}",
                    settings=dict(settings),
                    options=options,
                    folder=job_folder(out, recording, key),
                    key=key,
                    out=out,
                    truth=truth,
                    kinds=tuple(kinds),
                    min_overlap_s=min_overlap_s,
                    channel_map=dict(channel_map or {}),
                    plot_format=plot_format,
                    tz=tz,
                )
            )
    return jobs
