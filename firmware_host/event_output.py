"""Writing detector output to files: JSON lines or CSV, all-or-nothing (no partial files).

Output files are written to a temporary file beside the target and renamed over it only when
complete, so a failed run leaves nothing half-written. The folder must exist (a mistyped folder is
an error, not a new folder), and the file gets the usual permissions (0666 less the umask).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from dsp.events import EVENT_FIELDS, Event, QualityChange

# One row per event: every field but the nested ones.
CSV_COLUMNS = tuple(f for f in EVENT_FIELDS if f not in ("schema", "envelope", "pipeline"))
OUTPUT_FORMATS = ("jsonl", "csv")
_NEW_FILE_MODE = 0o666  # less the umask, as for any file a program creates


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the option and what to do."""


def check_output_path(path: Path, option: str = "--out") -> Path:
    """The path of a file to write, refused when it names a folder or lies in a missing one."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a folder; give the path of the file to write, e.g. "
            f"{option} {path / 'events.jsonl'}"
        )
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputPathError(
            f"{option} {path}: the folder {folder} {what}; create it first, or choose another"
        )
    return path


@contextmanager
def atomic_path(path: Path, option: str = "--out") -> Iterator[Path]:
    """A temporary path beside `path` (an empty file, usual permissions) for a writer that opens
    files by name; it becomes `path` when the block finishes cleanly, and is removed otherwise."""
    path = check_output_path(path, option)
    temp = _create_temp(path)
    try:
        yield temp
        with temp.open("rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text_output(path: Path | None, option: str = "--out") -> Iterator[TextIO]:
    """Yield a text stream; for a path, the file appears only when the block finishes cleanly."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(path, option) as temp, temp.open("w", encoding="utf-8", newline="") as stream:
        yield stream
        stream.flush()


def _create_temp(path: Path) -> Path:
    """A new, empty file `.NAME.<8 random hex digits>.partial` beside `path`, created with 0666 (the kernel takes
    off the umask; tempfile.mkstemp would make it 0600)."""
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE))
        except FileExistsError:
            continue
        return temp


class EventWriter:
    """Writes events (and, in JSON lines, quality changes and a closing summary) to a stream."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; use one of {OUTPUT_FORMATS}")
        self.stream, self.fmt = stream, fmt
        self._csv: csv.DictWriter | None = None
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            self._csv.writeheader()

    def event(self, event: Event) -> None:
        payload = event.to_dict()
        if self._csv is not None:
            self._csv.writerow(payload)
        else:
            self._line(payload)

    def quality(self, change: QualityChange) -> None:
        if self._csv is None:
            self._line(
                {
                    "type": "quality",
                    "channel": change.channel,
                    "at_s": round(change.at_s, 3),
                    "problems": list(change.problems),
                }
            )

    def record(self, record: dict[str, Any]) -> None:
        """Any other typed record (a marker press, ...); JSON lines only."""
        if self._csv is None:
            self._line(record)

    def summary(self, summary: dict[str, Any]) -> None:
        if self._csv is None:
            self._line({"type": "summary", **summary})

    def _line(self, payload: dict[str, Any]) -> None:
        self.stream.write(json.dumps(payload, separators=(",", ":")) + "\n")


def event_line(event: Event) -> str:
    """One human-readable line for a terminal."""
    buffer = io.StringIO()
    end = f"{event.end_s:9.1f}" if event.end_s is not None else "      ..."
    buffer.write(
        f"{event.kind:8s} {event.phase:7s} {event.channel:12s} {event.start_s:9.1f} s -> {end} s"
        f"  {event.duration_s:7.1f} s  peak {event.peak_uv:7.1f} uV  floor {event.floor_uv:5.1f} uV"
    )
    if event.quality != "good":
        buffer.write(f"  [{event.quality}]")
    return buffer.getvalue()
