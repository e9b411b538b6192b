"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import MOSQUITTO, Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free loopback port, stopped at the end of the test."""
    if not shutil.which(MOSQUITTO):
        pytest.fail("mosquitto is not installed: ./run.sh test installs the Debian package")
    directory = tmp_path / "broker"
    directory.mkdir()
    broker = Mosquitto(directory)
    broker.start()
    yield broker
    broker.stop()


SCREENSHOTS_USED = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where browser tests save screenshots for people to look at ($CRAMPWATCH_SCREENSHOTS,
    default <tmp>/crampwatch-screenshots); the folder is printed at the end of the run."""
    folder = Path(
        os.environ.get("CRAMPWATCH_SCREENSHOTS")
        or Path(tempfile.gettempdir()) / "crampwatch-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SCREENSHOTS_USED] = folder
    return folder


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    folder = config.stash.get(SCREENSHOTS_USED, None)
    if folder is not None:
        terminalreporter.write_line(f"browser screenshots saved in {folder}")
