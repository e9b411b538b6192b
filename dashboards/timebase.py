"""Times as the dashboard stores and groups them: UTC ISO 8601 text, nights in a local zone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import numpy as np

NIGHT_START = time(18, 0)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def night_window(night: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """A night's start and end as aware UTC times (18:00 local to 12:00 the next day)."""
    start = datetime.combine(night, NIGHT_START, tzinfo=tz)
    end = datetime.combine(night + timedelta(days=1), time(12, 0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def zone_key(tz: tzinfo) -> str:
    """A zone's name (IANA key where it has one)."""
    return str(getattr(tz, "key", None) or tz)


def utc_seconds(texts: Sequence[str]) -> np.ndarray:
    """POSIX seconds of many UTC times as stored ('2026-01-05T21:30:00.000Z'), vectorised;
    when any is spelt otherwise (an offset), all are parsed one by one."""
    if all(t.endswith("Z") for t in texts):
        try:
            stamps = np.array([t[:-1] for t in texts], dtype="datetime64[ms]")
            return stamps.astype(np.int64) / 1000.0
        except ValueError:
            pass
    return np.array([parse_time(t).timestamp() for t in texts], dtype=float)
