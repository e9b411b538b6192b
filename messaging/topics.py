"""Topics and message schema names: `crampwatch/<device>/<leaf>` (DESIGN.md, "Contracts")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsp.events import EVENT_SCHEMA

STATE_SCHEMA = "crampwatch.state/1"
QUALITY_SCHEMA = "crampwatch.quality/1"
ENVELOPE_SCHEMA = "crampwatch.envelope/1"
MARKER_SCHEMA = "crampwatch.marker/1"
INTAKE_SCHEMA = "crampwatch.intake/1"
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ONLINE, OFFLINE = "online", "offline"


def check_device_id(device: str) -> str:
    """The device id, or a ValueError that says what is allowed."""
    if not DEVICE_ID_PATTERN.match(device):
        raise ValueError(
            f"device id {device!r} is not allowed: use 1-64 letters, digits, '-' and '_'"
        )
    return device


@dataclass(frozen=True)
class Topics:
    """`crampwatch/<device>/...` topics."""

    device: str
    prefix: str = "crampwatch"

    def __post_init__(self) -> None:
        check_device_id(self.device)

    def _topic(self, leaf: str) -> str:
        return f"{self.prefix}/{self.device}/{leaf}"

    @property
    def status(self) -> str:
        return self._topic("status")

    @property
    def state(self) -> str:
        return self._topic("state")

    @property
    def event(self) -> str:
        return self._topic("event")

    @property
    def quality(self) -> str:
        return self._topic("quality")

    @property
    def envelope(self) -> str:
        return self._topic("envelope")

    @property
    def marker(self) -> str:
        return self._topic("marker")

    @property
    def command(self) -> str:
        """Inbound: start and end named sessions (`messaging.sessions`)."""
        return self._topic("command")


__all__ = [
    "DEVICE_ID_PATTERN",
    "ENVELOPE_SCHEMA",
    "EVENT_SCHEMA",
    "INTAKE_SCHEMA",
    "MARKER_SCHEMA",
    "OFFLINE",
    "ONLINE",
    "QUALITY_SCHEMA",
    "STATE_SCHEMA",
    "Topics",
    "check_device_id",
]
