"""Finding the recordings a batch names (files, folders searched recursively, globs), and the
fingerprint that tells whether a recording changed since it was last processed.

Fingerprint (the resume check): for each file that makes up a recording (for WFDB the header
and its `.dat`; also the sidecar and truth files), its absolute path, size, modification time
(nanoseconds) and the first and last 64 KiB of its content. That costs a `stat` and 128 KiB of
reading per file whatever its size, so checking a thousand 8-hour recordings on a network share
takes seconds, not the hours that hashing every byte would. Any rewrite (a new modification
time), truncation or append (a new size) or move (a new path) makes the recording count as new.
What it cannot see is a change in the middle of a file that keeps its size and has its
modification time set back; `--full-hash` hashes every byte for that.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from hardware.recordings.formats import _TEXT_SUFFIXES
from research.sidecar import is_companion_file

RECORDING_SUFFIXES = frozenset({*_TEXT_SUFFIXES, ".npy", ".npz", ".edf", ".bdf", ".hea"})
_EDGE_BYTES = 64 * 1024
_GLOB_CHARS = set("*?[")


class InputError(ValueError):
    """An input names nothing; the message says which."""


def find_recordings(inputs: Sequence[str | Path], exclude: Path | None = None) -> list[Path]:
    """The recordings named by files, folders (searched recursively) and globs, without
    duplicates, in a stable order. Files named explicitly are taken whatever their suffix;
    in folders, files with a recording suffix (a WFDB record by its `.hea`), skipping hidden
    files, sidecars, truth files and the folder `exclude` (the batch's own output)."""
    found: dict[Path, None] = {}
    excluded = exclude.resolve() if exclude is not None else None
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            found.update(dict.fromkeys(_in_folder(path, excluded)))
        elif _GLOB_CHARS & set(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                raise InputError(f"{text!r} matches no file or folder")
            for match in map(Path, matches):
                if match.is_dir():
                    found.update(dict.fromkeys(_in_folder(match, excluded)))
                elif _is_recording(match, excluded):
                    found[match.resolve()] = None
        else:
            raise InputError(f"{text}: no such file or folder (and not a glob pattern)")
    return sorted(found)


def _in_folder(folder: Path, excluded: Path | None) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root).resolve()
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d) != excluded)
        for name in sorted(files):
            path = here / name
            if _is_recording(path, excluded):
                yield path


def _is_recording(path: Path, excluded: Path | None) -> bool:
    if path.name.startswith(".") or is_companion_file(path):
        return False
    if excluded is not None and excluded in path.resolve().parents:
        return False
    suffix = path.suffix.lower()
    if suffix == ".dat" and path.with_suffix(".hea").is_file():
        return False  # the data file of a WFDB record, found through its header
    return suffix in RECORDING_SUFFIXES


def recording_files(recording: Path) -> list[Path]:
    """The files a recording is made of: itself, and for a WFDB header its `.dat`."""
    files = [recording]
    if recording.suffix.lower() == ".hea":
        files += [p for p in (recording.with_suffix(".dat"),) if p.is_file()]
    return files


def fingerprint(files: Iterable[Path], *, full: bool = False) -> str:
    """A hash of the files' identity and content (see the module notes); `full` reads every byte."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        with path.open("rb") as handle:
            if full:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            else:
                digest.update(handle.read(_EDGE_BYTES))
                if stat.st_size > _EDGE_BYTES:
                    handle.seek(max(_EDGE_BYTES, stat.st_size - _EDGE_BYTES))
                    digest.update(handle.read(_EDGE_BYTES))
    return digest.hexdigest()
