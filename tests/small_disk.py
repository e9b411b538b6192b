"""A real small filesystem for disk-fault tests: a tmpfs of a few MB mounted on a test folder (needs
root, or CAP_SYS_ADMIN; tests that need it skip with the reason elsewhere), filled up with a
ballast file, freed again, or remounted read-only."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.ballast = path / "ballast"

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave_bytes: int = 0) -> None:
        """Write a ballast file until only about `leave_bytes` are free."""
        chunk = b"\0" * 4096
        with self.ballast.open("ab") as handle:
            while self.free_bytes() > leave_bytes:
                try:
                    handle.write(chunk)
                    handle.flush()
                except OSError:
                    break

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def read_only(self) -> None:
        _mount("-o", "remount,ro", str(self.path))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def can_mount() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def small_disk(path: Path, size_bytes: int) -> Iterator[SmallDisk]:
    """A tmpfs of `size_bytes` at `path` (created), unmounted at the end."""
    if not can_mount():
        pytest.skip("mounting a small test filesystem needs root")
    path.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot mount a small test filesystem here: {error}")
    try:
        yield SmallDisk(path, size_bytes)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
