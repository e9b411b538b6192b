"""How the pages write durations, clock times and days: for people, not for parsers."""

from __future__ import annotations

from datetime import date, datetime, tzinfo

from dashboards.timebase import parse_time


def duration(seconds: float | None) -> str:
    """'49 s', '8 min 0 s', '1 h 5 min'."""
    if seconds is None:
        return ""
    total = round(seconds)
    if total < 60:
        return f"{seconds:.0f} s" if seconds >= 9.5 else f"{seconds:.1f} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def hours_minutes(minutes: float | None) -> str:
    """'7 h 28 min', '45 min'."""
    if minutes is None:
        return ""
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min" if hours else f"{rest} min"


def day_name(day: date) -> str:
    """'Tue 2 Dec 2026'."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def short_day(day: date) -> str:
    """'Tue 2 Dec'."""
    return f"{day:%a} {day.day} {day:%b}"


def local(moment: datetime | str | None, tz: tzinfo) -> datetime | None:
    """An aware time (or its ISO text) in the dashboard's zone."""
    if moment is None or moment == "":
        return None
    value = parse_time(moment) if isinstance(moment, str) else moment
    return value.astimezone(tz)


def channel_name(channel: str) -> str:
    """'left_calf' -> 'left calf'."""
    return channel.replace("_", " ")
