"""How much disk the recorded nights may take: a size budget, a number of nights and a free-space
floor that the recorder never writes past.

Nights live in one folder, one directory each (`night_recorder.night_directory`). When the nights
take more than `max_bytes`, number more than `max_nights`, or a write would leave less than
`min_free_bytes` free on the filesystem, the oldest nights are removed first (by their start time,
which their directory names sort by), never the one being recorded and never anything that is not
a night (a directory without a crampwatch night.json is left alone). If that is not enough, the
recorder pauses (`room_for` says no) and the night gets a gap, rather than the disk filling up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("crampwatch.recording")

NIGHT_FORMATS = ("crampwatch.night/1", "crampwatch.night/2")
MB = 1_000_000


@dataclass(frozen=True)
class StoredNight:
    directory: Path
    bytes: int


class RecordingBudget:
    """The limits for one folder of nights; `room_for` before each write, `enforce` now and then."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 0,
        max_nights: int = 0,
        min_free_bytes: int = 0,
    ) -> None:
        if max_bytes < 0 or max_nights < 0 or min_free_bytes < 0:
            raise ValueError("recording limits must be 0 (no limit) or more")
        self.root = Path(root)
        self.max_bytes = max_bytes  # 0: no size limit
        self.max_nights = max_nights  # 0: no limit on the number
        self.min_free_bytes = min_free_bytes
        self.pruned_nights = 0
        self.pruned_bytes = 0
        self._current_bytes = 0  # the night being recorded, as its recorder reports it
        self._others: list[StoredNight] | None = None  # the other nights, oldest first

    def free_bytes(self) -> int:
        """Free space for this user on the filesystem that holds the nights."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        stats = os.statvfs(path)
        return stats.f_bavail * stats.f_frsize

    def nights(self, current: Path | None = None) -> list[StoredNight]:
        """The recorded nights other than `current`, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for directory in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if current is not None and directory == current:
                continue
            if _is_night(directory):
                found.append(StoredNight(directory, _size(directory)))
        return found

    def room_for(self, n_bytes: int, current: Path | None, current_bytes: int) -> bool:
        """May the recorder write `n_bytes` more to the night in `current` (which holds
        `current_bytes`)? Removes the oldest other nights to make room; False when even that is
        not enough."""
        self._current_bytes = current_bytes
        if self._others is None:
            self._others = self.nights(current)
        while not self._fits(n_bytes):
            if not self._others or not self._remove(self._others.pop(0)):
                return False
        return True

    def enforce(self, current: Path | None, current_bytes: int = 0) -> bool:
        """Look at the folder again and remove the oldest nights while a limit is exceeded (at
        the start of a night and now and then during it); False if the limits still do not hold."""
        self._others = self.nights(current)
        return self.room_for(0, current, current_bytes)

    def _remove(self, night: StoredNight) -> bool:
        try:
            shutil.rmtree(night.directory)
        except OSError as error:
            log.error("cannot remove the old night %s to make room: %s", night.directory, error)
            return False
        self.pruned_nights += 1
        self.pruned_bytes += night.bytes
        log.warning(
            "removed the oldest recorded night %s (%.1f MB) to stay within the recording budget "
            "(%s)",
            night.directory.name,
            night.bytes / MB,
            self.describe_limits(),
        )
        return True

    def describe_limits(self) -> str:
        parts = []
        if self.max_bytes:
            parts.append(f"at most {self.max_bytes / MB:g} MB")
        if self.max_nights:
            parts.append(f"at most {self.max_nights} nights")
        parts.append(f"at least {self.min_free_bytes / MB:g} MB left free")
        return ", ".join(parts)

    def status(self) -> dict[str, Any]:
        """For the device's state message and the log."""
        others = self._others if self._others is not None else self.nights()
        try:
            free: float | None = round(self.free_bytes() / MB, 1)
        except OSError:
            free = None
        return {
            "free_mb": free,
            "floor_mb": round(self.min_free_bytes / MB, 1),
            "nights": len(others) + (1 if self._current_bytes else 0),
            "nights_mb": round((sum(n.bytes for n in others) + self._current_bytes) / MB, 1),
            "budget_mb": round(self.max_bytes / MB, 1) if self.max_bytes else None,
            "max_nights": self.max_nights or None,
            "pruned_nights": self.pruned_nights,
        }

    def _fits(self, n_bytes: int) -> bool:
        assert self._others is not None
        if self.free_bytes() - n_bytes < self.min_free_bytes:
            return False
        total = sum(n.bytes for n in self._others) + self._current_bytes + n_bytes
        if self.max_bytes and total > self.max_bytes:
            return False
        return not (self.max_nights and len(self._others) + 1 > self.max_nights)


def _is_night(directory: Path) -> bool:
    try:
        meta = json.loads((directory / "night.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") in NIGHT_FORMATS


def _size(directory: Path) -> int:
    total = 0
    for entry in os.scandir(directory):
        try:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
    return total
