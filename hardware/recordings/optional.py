"""Packages some formats need that the device does not: imported on first use, with a hint."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from hardware.recordings.errors import RecordingError

RESEARCH_HINT = "pip install 'crampwatch[research]'"


@contextlib.contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Hide third-party deprecation noise (wfdb calls deprecated pandas APIs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def import_optional(module: str, what: str) -> Any:
    """The module, or a RecordingError that says which extra installs it."""
    try:
        with quiet_deprecations():
            return __import__(module)
    except ImportError as error:
        raise RecordingError(
            f"reading {what} needs the '{module}' package, which is not installed: {RESEARCH_HINT}"
        ) from error
