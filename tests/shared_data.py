"""Where the shared real EMG recordings live, for tests and benchmarks that use them.

The folder is named by the environment variable CRAMPWATCH_EMG_DATA, else it is
`<repo>/../shared/data/emg`. It is not part of the repository: tests that need it skip when it is
absent, so a fresh clone still passes.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CRAMPWATCH_EMG_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO_ROOT.parent / "shared" / "data" / "emg"


def emg_data_dir() -> Path | None:
    """The shared EMG data folder, or None when it is not there."""
    configured = os.environ.get(ENV_VAR)
    folder = Path(configured).expanduser() if configured else DEFAULT_DIR
    return folder if folder.is_dir() else None


def missing_reason() -> str:
    """Why tests that need the shared recordings are skipped."""
    configured = os.environ.get(ENV_VAR)
    where = f"{ENV_VAR}={configured}" if configured else f"{DEFAULT_DIR} (or set {ENV_VAR})"
    return f"shared EMG recordings not found at {where}"


def require_emg_data_dir() -> Path:
    """The shared EMG data folder; skips the calling test when it is absent."""
    import pytest

    folder = emg_data_dir()
    if folder is None:
        pytest.skip(missing_reason())
    return folder
