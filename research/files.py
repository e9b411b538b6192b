"""Files written whole or not at all (a crash, Ctrl-C or a killed worker leaves no half file)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from firmware_host.event_output import atomic_text_output

PARTIAL_SUFFIX = ".partial"


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """`data` as `path`: written to a temporary file beside it, synced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, document: Any) -> None:
    """`document` as indented JSON, written whole or not at all."""
    with atomic_text_output(path) as stream:
        json.dump(document, stream, indent=1, allow_nan=False)
        stream.write("\n")


def remove_partial_files(folder: Path) -> int:
    """Delete temporary files left by writers that were killed (no one else may be writing in
    `folder`); returns how many there were."""
    removed = 0
    if folder.is_dir():
        for path in folder.rglob(f".*{PARTIAL_SUFFIX}"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
