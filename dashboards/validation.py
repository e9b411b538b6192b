"""Checks for what reaches the dashboard from outside (MQTT, HTTP, files) and for what it reads
back from its store: strict JSON, device times, bounded numbers, unreadable rows.

Device times are normalised to one canonical form (UTC, milliseconds, `Z`: the device's own
`iso_utc`), so the store compares them as text correctly. A device time must lie between
2020-01-01 and a day after the message arrived:

- A Raspberry Pi has no real-time clock: until NTP has set it, it reads 1970 (or the last time
  fake-hwclock saved). No night recorded with crampwatch can predate 2020, so an earlier date is a
  clock that was never set, and would stretch every range (a 1970 event made a 20,000-row page).
- Events are sent live or later from the device's outbox, never ahead of time: a time more than a
  day after receipt is a wrong clock or a forged message (9999-12-31 made pages never answer). The
  day of slack covers a device and a dashboard whose clocks disagree.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from dsp.events import iso_utc

log = logging.getLogger("crampwatch.dashboard")

EARLIEST_DEVICE_TIME = datetime(2020, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)
MAX_JSON_DEPTH = 32
MAX_MAGNITUDE = 1e12  # any measured figure beyond this is not a measurement
MAX_TIME_TEXT = 64
MAX_SESSION_S = 1e9  # seconds from a session's start: 30 years
MAX_TRACE_POINTS = 10_000

T = TypeVar("T")


class Invalid(ValueError):
    """Something that does not pass a check; the text says what and why."""


# -- JSON ----------------------------------------------------------------------------------------


def strict_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON that may be hostile: NaN/Infinity, numbers that overflow (1e400), integers of
    thousands of digits and deep nesting are refused with an `Invalid`, never a traceback."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise Invalid(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as error:
        raise Invalid(f"not JSON: {error}") from None
    except UnicodeDecodeError:
        raise Invalid("not UTF-8 text") from None
    except ValueError as error:  # e.g. an integer with more than 4,300 digits
        if isinstance(error, Invalid):
            raise
        raise Invalid(f"a number JSON cannot hold here ({str(error)[:80]})") from None
    if depth(value, max_depth) > max_depth:
        raise Invalid(f"nested deeper than {max_depth} levels")
    return value


def json_object(
    payload: Mapping[str, Any] | bytes | str, *, what: str, max_bytes: int, fields: Collection[str]
) -> dict[str, Any]:
    """A message as a dict: UTF-8 text or bytes of at most `max_bytes` parsed strictly, or a
    mapping as it is; no field outside `fields`. Raises Invalid naming `what` and what is wrong."""
    if isinstance(payload, bytes | bytearray | str):
        raw = (
            payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
        )
        if len(raw) > max_bytes:
            raise Invalid(f"{what} of {len(raw)} bytes is more than {max_bytes} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Invalid(f"{what} is not UTF-8 text: {error}") from None
        try:
            payload = strict_json(text)
        except Invalid as error:
            raise Invalid(f"{what} is not valid JSON: {error}") from None
    if not isinstance(payload, Mapping):
        raise Invalid(f"{what} must be a JSON object, not {type(payload).__name__}")
    unknown = sorted(str(k)[:40] for k in payload if k not in fields)
    if unknown:
        raise Invalid(
            f"unknown field(s) {', '.join(unknown)}: allowed fields are {', '.join(fields)}"
        )
    return dict(payload)


def _no_constant(name: str) -> None:
    raise Invalid(f"{name} is not a finite number (not a number JSON allows)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Invalid(f"the number {text[:40]} is too large")
    return value


def depth(value: Any, limit: int) -> int:
    """Nesting depth of lists and objects, counted without recursion, stopping past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


# -- numbers -------------------------------------------------------------------------------------


def number(value: Any, name: str, *, low: float = -MAX_MAGNITUDE, high: float = MAX_MAGNITUDE) -> float:  # fmt: skip
    """A real number (not true/false) within [low, high], as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{name!r} must be a number, not {type(value).__name__}")
    if isinstance(value, int) and not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
        raise Invalid(f"{name!r} is out of range")
    result = float(value)
    if not math.isfinite(result):
        raise Invalid(f"{name!r} is not a finite number")
    if not low <= result <= high:
        raise Invalid(f"{name!r} is {result:g}, outside {low:g}..{high:g}")
    return result


def check_envelope_trace(trace: Any) -> None:
    """An event's envelope trace (`t0_s`, `dt_s`, `uv`) that a page can draw, else `Invalid`."""
    try:
        if not isinstance(trace, dict):
            raise Invalid("not an object")
        number(trace.get("t0_s"), "envelope.t0_s", low=-MAX_SESSION_S, high=MAX_SESSION_S)
        number(trace.get("dt_s"), "envelope.dt_s", low=1e-6, high=3600.0)
        values = trace.get("uv")
        if not isinstance(values, list) or len(values) > MAX_TRACE_POINTS:
            raise Invalid(f"envelope.uv must be a list of at most {MAX_TRACE_POINTS} numbers")
        for value in values:
            if value is not None:
                number(value, "envelope.uv")
    except Invalid as error:
        raise Invalid(f"envelope trace: {error}") from None


# -- device times --------------------------------------------------------------------------------


def parse_iso(text: Any, name: str) -> datetime:
    """An aware ISO 8601 time (extended or basic format, `Z` or an offset), else `Invalid`."""
    if not isinstance(text, str):
        raise Invalid(f"{name!r} must be an ISO 8601 time, not {type(text).__name__}")
    if len(text) > MAX_TIME_TEXT:
        raise Invalid(f"{name!r} is not an ISO 8601 time: {text[:40]!r}...")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(f"{name!r} is not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise Invalid(f"{name!r} has no time zone: {text!r} (add Z or an offset)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"{name!r} is out of range: {text!r}") from None


def device_time(text: Any, name: str, received: datetime) -> datetime:
    """A device time, in UTC, checked to lie between 2020 and a day after `received`."""
    moment = parse_iso(text, name)
    if moment < EARLIEST_DEVICE_TIME:
        raise Invalid(
            f"{name!r} is {text!r}, before 2020: the device's clock was not set (a Pi without "
            "network time starts in 1970)"
        )
    if moment > received + MAX_AHEAD:
        raise Invalid(
            f"{name!r} is {text!r}, more than a day after the message arrived "
            f"({canonical(received)}): check the device's clock"
        )
    return moment


def canonical(moment: datetime) -> str:
    """The one form device times are stored in: UTC, milliseconds, `Z`."""
    return iso_utc(moment)


def plausible_window(now: datetime | None = None) -> tuple[str, str]:
    """The canonical text bounds every stored device time lies within."""
    now = now or datetime.now(UTC)
    return canonical(EARLIEST_DEVICE_TIME), canonical(now + MAX_AHEAD)


# -- reading back ----------------------------------------------------------------------------------


class UnreadableRows:
    """Counts stored rows that cannot be shown (and logs each once), so a bad row is skipped
    rather than failing a page."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    def skip(self, table: str, key: str, error: Exception) -> None:
        keys = self._seen.setdefault(table, set())
        if key not in keys:
            keys.add(key)
            log.warning("skipped an unreadable %s row (%s): %s", table, key[:80], error)

    def counts(self) -> dict[str, int]:
        return {table: len(keys) for table, keys in sorted(self._seen.items())}

    def total(self) -> int:
        return sum(len(keys) for keys in self._seen.values())

    def read(
        self,
        table: str,
        rows: Iterable[Any],
        convert: Callable[[Any], T],
        key: Callable[[Any], str],
    ) -> Iterator[T]:
        """`convert(row)` for each row; rows it fails on are skipped and counted."""
        for row in rows:
            try:
                yield convert(row)
            except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as error:
                self.skip(table, str(key(row)), error)
