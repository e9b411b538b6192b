"""Shared fixtures."""

from __future__ import annotations

import shutil
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
