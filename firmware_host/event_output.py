"""Writing detector output to files: JSON lines or CSV, all-or-nothing (no partial files)."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from dsp.events import EVENT_FIELDS, Event, QualityChange

# One row per event: every field but the nested ones.
CSV_COLUMNS = tuple(f for f in EVENT_FIELDS if f not in ("schema", "envelope", "pipeline"))
OUTPUT_FORMATS = ("jsonl", "csv")


@contextmanager
def atomic_text_output(path: Path | None) -> Iterator[TextIO]:
    """Yield a text stream; for a path, the file appears only when the block finishes cleanly."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


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
