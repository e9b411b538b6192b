"""Intake entries (DESIGN.md, "Intake entry"): validation of JSON payloads and Cronometer import.

An entry is stored in its factor's canonical unit with an aware UTC time (JSON: ISO 8601 with `Z`, in
milliseconds, like events). Ids are stable: without an `entry_id`, the id is derived from time, factor,
amount, unit, note and source, so the same entry delivered or imported twice gets the same id and the
store keeps one. A form that lets someone log two identical entries at the same minute should send its
own `entry_id` (e.g. a UUID made when the form opens), or the second is taken for a repeat of the first.

Cronometer's "Daily Nutrition" export gives one total per day and nutrient. Each becomes one entry at
12:00 local time on that day, with an id derived from (date, factor, "cronometer") only: re-importing an
updated export yields the same ids with new amounts, which the store must *replace* (upsert on
`entry_id` for source "cronometer") rather than ignore, so that corrections in Cronometer win.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dashboards.catalogue import (
    COUNT,
    Catalogue,
    Factor,
    IntakeError,
    check_amount_value,
    convert,
    format_number,
    lookup_unit,
    parse_amount,
)
from dashboards.validation import Invalid, json_object
from dsp.events import iso_utc, stable_event_id
from messaging.topics import INTAKE_SCHEMA

SCHEMA = INTAKE_SCHEMA
SOURCES = ("form", "api", "mqtt", "cli", "cronometer", "import")
# Sources that may leave `time` out (it is then "now"). MQTT may not: a redelivered message would get
# a new time, so a new derived id, and be counted twice.
TIME_OPTIONAL_SOURCES = ("form", "cli", "api")
PAYLOAD_FIELDS = (
    "schema", "entry_id", "time", "factor", "amount", "unit", "note", "source", "new_factor",
)  # fmt: skip
MAX_PAYLOAD_BYTES = 8192
MAX_NOTE_CHARS = 500
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)
ENTRY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
CRONOMETER_NOON = time(12, 0)
CRONOMETER_NOTE = "Cronometer daily total"


@dataclass(frozen=True)
class IntakeEntry:
    """One logged intake: `amount` is in `unit`, the factor's canonical unit; `time` is aware."""

    schema: ClassVar[str] = SCHEMA

    entry_id: str
    time: datetime
    factor: str
    amount: float
    unit: str
    note: str = ""
    source: str = "api"

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise IntakeError(f"entry {self.entry_id}: time must carry a timezone")
        check_amount_value(self.amount)

    def to_dict(self) -> dict[str, Any]:
        """The intake JSON object of DESIGN.md, plus `source`."""
        return {
            "schema": SCHEMA,
            "entry_id": self.entry_id,
            "time": iso_utc(self.time),
            "factor": self.factor,
            "amount": self.amount,
            "unit": self.unit,
            "note": self.note,
            "source": self.source,
        }

    def to_json(self) -> str:
        """`to_dict()` as compact JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def local_date(self, tz: tzinfo | str) -> date:
        """The calendar day of the entry in `tz`: the day whose totals it belongs to."""
        return self.time.astimezone(_zone(tz)).date()


# The same id and time formats as events: stable ids from what identifies an entry.
stable_entry_id = stable_event_id


def entry_from_payload(
    payload: Mapping[str, Any] | bytes | str,
    catalogue: Catalogue,
    *,
    source: str,
    now: datetime | None = None,
    local_tz: tzinfo | str | None = None,
    register_custom: bool = True,
) -> IntakeEntry:
    """A validated entry from a JSON object (dict, or its text/bytes), or an IntakeError saying why.

    `source` is who delivered it (one of SOURCES); a `source` field in the payload is ignored.
    A naive `time` is read in `local_tz`; without `local_tz` it is an error. `time` may be left out
    by the form, the CLI and the HTTP API (it is then `now`), not over MQTT. A factor not in `catalogue` becomes
    a custom factor in the unit given, registered in `catalogue` once the entry has validated
    (unless `register_custom` is False).
    """
    if source not in SOURCES:
        raise IntakeError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    now = _check_now(now)
    fields = _payload_object(payload)
    _check_schema(fields.get("schema"))
    moment = _entry_time(fields.get("time"), source=source, now=now, local_tz=local_tz)
    factor, amount = _factor_and_amount(fields, catalogue)
    note = clean_note(fields.get("note"))
    entry_id = _entry_id(fields.get("entry_id"))
    if entry_id is None:
        entry_id = stable_entry_id(iso_utc(moment), factor.key, amount, factor.unit, note, source)
    entry = IntakeEntry(entry_id, moment, factor.key, amount, factor.unit, note, source)
    if factor.custom and register_custom:
        catalogue.register(factor)
    return entry


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise IntakeError("now must be an aware datetime")
    return now


def _payload_object(payload: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    """The payload as a dict with only known fields, or an IntakeError."""
    try:
        return json_object(
            payload, what="payload", max_bytes=MAX_PAYLOAD_BYTES, fields=PAYLOAD_FIELDS
        )
    except Invalid as error:
        raise IntakeError(str(error)) from None


def _check_schema(schema: Any) -> None:
    if schema is not None and schema != SCHEMA:
        raise IntakeError(f"schema {schema!r} is not supported: expected {SCHEMA!r}")


def _entry_time(
    value: Any, *, source: str, now: datetime, local_tz: tzinfo | str | None
) -> datetime:
    """The entry's time, aware, in UTC, to the millisecond, within EARLIEST_TIME .. now + 1 day."""
    if value is None:
        if source not in TIME_OPTIONAL_SOURCES:
            raise IntakeError(
                "time is missing: give the time of intake as ISO 8601, e.g. "
                f"2026-01-05T21:30:00+01:00 (only {', '.join(TIME_OPTIONAL_SOURCES)} may leave it out)"
            )
        value = now
    moment = value if isinstance(value, datetime) else parse_time(value)
    if moment.tzinfo is None or moment.utcoffset() is None:
        if local_tz is None:
            raise IntakeError(f"time {value!r} has no timezone: add Z or an offset such as +01:00")
        moment = moment.replace(tzinfo=_zone(local_tz))
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00 in a zone east of UTC
        raise IntakeError(f"time {value!r} is out of range: check the date") from None
    check_time_bounds(moment, now)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


_DATE_ONLY = re.compile(r"^\d{4}-?\d{2}-?\d{2}$")


def parse_time(text: Any) -> datetime:
    """An ISO 8601 date and time (offset optional; naive is returned naive), or an IntakeError."""
    if not isinstance(text, str):
        raise IntakeError(f"time must be ISO 8601 text, not {type(text).__name__}")
    stripped = text.strip()
    if _DATE_ONLY.match(stripped):
        raise IntakeError(
            f"time {stripped!r} is a date only: give a time of day too, e.g. {stripped}T21:30+01:00"
        )
    try:
        return datetime.fromisoformat(stripped)
    except ValueError:
        raise IntakeError(
            f"time {stripped[:40]!r} is not ISO 8601: use e.g. 2026-01-05T21:30:00Z or "
            "2026-01-05T21:30:00+01:00"
        ) from None


def check_time_bounds(moment: datetime, now: datetime) -> None:
    """An IntakeError if `moment` is before 2000 or more than a day after `now`."""
    if moment < EARLIEST_TIME:
        raise IntakeError(f"time {iso_utc(moment)} is before 2000: check the date")
    if moment > now + MAX_AHEAD:
        raise IntakeError(
            f"time {iso_utc(moment)} is more than a day in the future (now is {iso_utc(now)})"
        )


def _zone(tz: tzinfo | str) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise IntakeError(
            f"unknown time zone {tz!r}: use an IANA name such as Europe/Berlin"
        ) from None


def _factor_and_amount(fields: Mapping[str, Any], catalogue: Catalogue) -> tuple[Factor, float]:
    """The factor (known or a new custom one) and the amount in its canonical unit."""
    name = fields.get("factor")
    if name is None or (isinstance(name, str) and not name.strip()):
        raise IntakeError("factor is missing: give a factor such as 'water' or 'magnesium'")
    value, unit = _amount_and_unit(fields.get("amount"), fields.get("unit"))
    new_factor = fields.get("new_factor", False)
    if not isinstance(new_factor, bool):
        raise IntakeError("new_factor must be true or false")
    factor = catalogue.resolve(name, unit, new_factor=new_factor)
    if value is None:
        if factor.default_amount is None:
            raise IntakeError(
                f"amount is missing: give the {factor.key} amount in {factor.units_text(name)}"
            )
        return factor, factor.default_amount
    if unit is None and factor.dimension != COUNT:
        number = format_number(value)
        raise IntakeError(
            f"{name.strip()}: '{number}' has no unit: give it in {factor.units_text(name)}"
        )
    return factor, factor.to_canonical(value, unit, name)


def _amount_and_unit(amount: Any, unit: Any) -> tuple[float | None, str | None]:
    """The amount as given, as (number or None when absent, unit text or None)."""
    if unit is not None and not isinstance(unit, str):
        raise IntakeError(f"unit must be text such as 'mg', not {type(unit).__name__}")
    if unit is not None:
        unit = unit.strip() or None
    if amount is None or (isinstance(amount, str) and not amount.strip()):
        if unit is not None:
            raise IntakeError(f"unit {unit!r} is given but the amount is missing")
        return None, None
    if isinstance(amount, str):
        value, written_unit = parse_amount(amount)
        return value, _agreeing_unit(amount, written_unit, unit)
    return check_amount_value(amount), unit


def _agreeing_unit(amount: str, written: str | None, field: str | None) -> str | None:
    """The unit from the amount text or the unit field; both given must name the same unit."""
    if written is None or field is None:
        return written or field
    same = written.casefold() == field.casefold()
    if not same:
        try:
            same = lookup_unit(written) == lookup_unit(field)
        except IntakeError:
            same = False
    if not same:
        raise IntakeError(f"amount {amount.strip()!r} disagrees with unit {field!r}: give one unit")
    return written


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_note(note: Any) -> str:
    """The note as plain text: trimmed, newlines kept, at most 500 characters; never escaped here."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise IntakeError(f"note must be text, not {type(note).__name__}")
    text = note.replace("\r\n", "\n").replace("\r", "\n").strip()
    if _CONTROL_CHARS.search(text):
        raise IntakeError("note contains control characters: use plain text")
    if len(text) > MAX_NOTE_CHARS:
        raise IntakeError(f"note is {len(text)} characters long: at most {MAX_NOTE_CHARS} allowed")
    return text


def _entry_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not ENTRY_ID_PATTERN.match(value):
        raise IntakeError(
            f"entry_id {value!r} is not allowed: use 1-64 letters, digits, '.', ':', '_' and '-'"
        )
    return value


# --- Cronometer "Daily Nutrition" export -----------------------------------------------------------

# Nutrient names in Cronometer's headers ("Name (unit)"), folded, mapped to factor keys.
CRONOMETER_NUTRIENTS = {
    "water": "water",
    "magnesium": "magnesium",
    "potassium": "potassium",
    "calcium": "calcium",
    "sodium": "sodium",
    "vitamin e": "vitamin_e",
    "b6 (pyridoxine)": "vitamin_b6",
    "vitamin b6": "vitamin_b6",
    "vitamin b6 (pyridoxine)": "vitamin_b6",
    "caffeine": "caffeine",
    "alcohol": "alcohol",
}
CRONOMETER_DATE_COLUMNS = ("date", "day")
CRONOMETER_EXAMPLE_COLUMNS = (
    "Date",
    "Water (g)",
    "Magnesium (mg)",
    "Potassium (mg)",
    "Caffeine (mg)",
)
_HEADER_PATTERN = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)\s*$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
MAX_REPORTED_PROBLEMS = 10


@dataclass(frozen=True)
class _Column:
    """A Cronometer column we import: its index, header, factor and converter to canonical."""

    index: int
    header: str
    factor: Factor
    to_canonical: Callable[[float], float]


@dataclass(frozen=True)
class _DailyExport:
    """Where things are in one export, and how to turn one of its rows into entries."""

    header: list[str]
    date_index: int
    columns: list[_Column]
    energy_index: int | None
    completed_index: int | None
    zone: tzinfo

    def row_day(self, row: list[str]) -> date:
        """The row's date, after checking the row's width."""
        if len(row) != len(self.header):
            raise IntakeError(f"expected {len(self.header)} columns, found {len(row)}")
        return _row_date(row[self.date_index], self.header[self.date_index])

    def row_entries(self, row: list[str], day: date, now: datetime) -> list[IntakeEntry]:
        """The day's entries; none if nothing was logged that day."""
        values = _row_values(row, self.columns, self.energy_index, self.header)
        if not any(v > 0 for v in values.values() if v is not None):
            return []
        moment = datetime.combine(day, CRONOMETER_NOON, tzinfo=self.zone).astimezone(UTC)
        check_time_bounds(moment, now)
        note = _cronometer_note(row, self.completed_index)
        return _day_entries(day, moment, self.columns, values, note)


def read_cronometer_daily(
    stream_or_path: IO[str] | IO[bytes] | str | os.PathLike[str],
    catalogue: Catalogue,
    tz: tzinfo | str,
    *,
    factors: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[IntakeEntry]:
    """Entries from a Cronometer "Daily Nutrition" CSV export: one per day and known nutrient.

    `stream_or_path` is a text or binary stream, a path, or the CSV text itself (a str with a line
    break in it).

    Known columns (water, magnesium, potassium, calcium, sodium, vitamin E, B6, caffeine, alcohol)
    are converted from the unit in their header ("Water (g)" counts 1 g as 1 mL); other columns are
    ignored, as are empty cells and days with nothing logged (every known value and energy 0 or
    empty). On a logged day a 0 is kept: "no alcohol that day" is information. Each entry is at
    12:00 in `tz` on its day, with an id from (date, factor, "cronometer"), so a re-import of an
    updated export gives the same ids (the store should replace those). `factors` limits the import
    (e.g. leave water out when drinks are logged by hand: Cronometer's water includes the water in
    food). Nothing is returned unless every row is valid: the IntakeError names each bad line and
    column.
    """
    now = _check_now(now)
    reader = csv.reader(io.StringIO(_read_text(stream_or_path)))
    try:
        export = _daily_export(_first_row(reader), catalogue, _zone(tz), factors)
        entries: list[IntakeEntry] = []
        problems: list[str] = []
        n_problems = 0
        first_line_of_day: dict[date, int] = {}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            try:
                day = export.row_day(row)
                if day in first_line_of_day:
                    raise IntakeError(
                        f"date {day} appears twice (first on line {first_line_of_day[day]})"
                    )
                first_line_of_day[day] = line
                entries.extend(export.row_entries(row, day, now))
            except IntakeError as error:
                n_problems += 1
                if len(problems) < MAX_REPORTED_PROBLEMS:  # the rest are counted, not kept
                    problems.append(f"line {line}: {error}")
    except csv.Error as error:  # a cell over the csv module's 128 KB limit, a NUL byte, ...
        raise IntakeError(
            f"line {reader.line_num}: the file cannot be read as CSV ({error}); expected a "
            "Cronometer Daily Nutrition export"
        ) from None
    if problems:
        raise IntakeError(_problem_report(problems, n_problems))
    return sorted(entries, key=lambda e: (e.time, e.factor))


def _daily_export(
    header: list[str], catalogue: Catalogue, zone: tzinfo, factors: Collection[str] | None
) -> _DailyExport:
    """The layout of an export from its header, or an IntakeError saying what was expected."""
    return _DailyExport(
        header=header,
        date_index=_date_column(header),
        columns=_cronometer_columns(header, catalogue, factors),
        energy_index=_find_column(header, lambda name: name.startswith("energy")),
        completed_index=_find_column(header, lambda name: name == "completed"),
        zone=zone,
    )


def _read_text(stream_or_path: IO[str] | IO[bytes] | str | os.PathLike[str]) -> str:
    """The whole export as text; bytes are UTF-8 (with or without BOM), else Windows-1252.

    A str with a line break in it is taken for the CSV text itself, any other str for a path.
    """
    if isinstance(stream_or_path, str) and ("\n" in stream_or_path or "\r" in stream_or_path):
        data: str | bytes = stream_or_path
    elif isinstance(stream_or_path, str | os.PathLike):
        try:
            data = Path(stream_or_path).read_bytes()
        except OSError as error:
            shown = os.fspath(stream_or_path)[:200]
            raise IntakeError(f"cannot read the file {shown!r}: {error.strerror}") from None
    else:
        data = stream_or_path.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            data = data.decode("cp1252", errors="replace")
    return data.removeprefix("\ufeff")


def _first_row(reader: Any) -> list[str]:
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip() for cell in row]
    raise IntakeError("the file is empty: expected a Cronometer Daily Nutrition export")


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _date_column(header: list[str]) -> int:
    folded = [_fold(h) for h in header]
    if "food name" in folded:
        raise IntakeError(
            "this is Cronometer's Servings export (one row per food): export 'Daily Nutrition' instead"
        )
    for name in CRONOMETER_DATE_COLUMNS:
        if name in folded:
            return folded.index(name)
    found = ", ".join(repr(h) for h in header[:8]) + (", ..." if len(header) > 8 else "")
    raise IntakeError(
        "this is not a Cronometer Daily Nutrition export: there is no 'Date' column. "
        f"Expected columns such as {', '.join(CRONOMETER_EXAMPLE_COLUMNS)}; found {found}"
    )


def _find_column(header: list[str], matches: Callable[[str], bool]) -> int | None:
    return next((i for i, h in enumerate(header) if matches(_fold(h))), None)


def _cronometer_columns(
    header: list[str], catalogue: Catalogue, only: Collection[str] | None
) -> list[_Column]:
    """The columns we import, each with a checked converter; an IntakeError if none is usable."""
    wanted = None if only is None else {catalogue.get(name).key for name in only}
    columns: list[_Column] = []
    for index, text in enumerate(header):
        match = _HEADER_PATTERN.match(text)
        key = CRONOMETER_NUTRIENTS.get(_fold(match["name"])) if match else None
        if match is None or key is None or (wanted is not None and key not in wanted):
            continue
        factor = catalogue.get(key)
        if any(c.factor.key == key for c in columns):
            raise IntakeError(f"column {text!r}: a second column for {key}")
        columns.append(_Column(index, text, factor, _converter(factor, match["unit"], text)))
    if not columns:
        known = ", ".join(sorted({k for k in CRONOMETER_NUTRIENTS.values()}))
        raise IntakeError(
            f"no column to import: expected nutrient columns such as "
            f"{', '.join(CRONOMETER_EXAMPLE_COLUMNS[1:])} (factors: {known})"
        )
    return columns


def _converter(factor: Factor, unit: str, header: str) -> Callable[[float], float]:
    """value in the column's unit -> checked canonical amount; unit problems name the column."""

    def water_grams(value: float) -> float:
        return factor.to_canonical(convert(value, unit, "g"), "mL")

    def any_unit(value: float) -> float:
        return factor.to_canonical(value, unit)

    try:
        grams = factor.key == "water" and lookup_unit(unit).dimension == "mass"
    except IntakeError:
        grams = False
    to_canonical = water_grams if grams else any_unit
    try:
        to_canonical(0.0)
    except IntakeError as error:
        raise IntakeError(f"column {header!r}: {error}") from None
    return to_canonical


def _row_date(cell: str, header: str) -> date:
    match = _ISO_DATE.match(cell.strip())
    try:
        if match is None:
            raise ValueError
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise IntakeError(
            f"column {header!r}: {cell.strip()!r} is not a date like 2026-09-24"
        ) from None


def _row_values(
    row: list[str], columns: list[_Column], energy_index: int | None, header: list[str]
) -> dict[str, float | None]:
    """Canonical amounts by factor (None for empty cells), plus energy under '' when present."""
    values: dict[str, float | None] = {}
    problems: list[str] = []
    if energy_index is not None:
        try:
            values[""] = _cell_number(row[energy_index], header[energy_index])
        except IntakeError as error:
            problems.append(str(error))
    for column in columns:
        try:
            number = _cell_number(row[column.index], column.header)
            values[column.factor.key] = None if number is None else column.to_canonical(number)
        except IntakeError as error:
            message = str(error)
            prefix = f"column {column.header!r}"
            problems.append(message if message.startswith(prefix) else f"{prefix}: {message}")
    if problems:
        raise IntakeError("; ".join(problems))
    return values


def _cell_number(cell: str, header: str) -> float | None:
    """The number in a cell, None if empty; an IntakeError naming the column otherwise."""
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise IntakeError(f"column {header!r}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise IntakeError(f"column {header!r}: {text!r} is not a finite number 0 or more")
    return value


def _cronometer_note(row: list[str], completed_index: int | None) -> str:
    if completed_index is not None and _fold(row[completed_index]) == "false":
        return f"{CRONOMETER_NOTE} (day not marked complete)"
    return CRONOMETER_NOTE


def _day_entries(
    day: date,
    moment: datetime,
    columns: list[_Column],
    values: Mapping[str, float | None],
    note: str,
) -> list[IntakeEntry]:
    entries = []
    for column in columns:
        amount = values[column.factor.key]
        if amount is None:
            continue
        entry_id = stable_entry_id(day.isoformat(), column.factor.key, "cronometer")
        factor = column.factor
        entries.append(
            IntakeEntry(entry_id, moment, factor.key, amount, factor.unit, note, "cronometer")
        )
    return entries


def _problem_report(problems: list[str], total: int) -> str:
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = total - len(shown)
    tail = f"\n... and {more} more" if more else ""
    return "Cronometer import failed, nothing was imported:\n" + "\n".join(shown) + tail


__all__ = [
    "CRONOMETER_NUTRIENTS",
    "MAX_NOTE_CHARS",
    "SCHEMA",
    "SOURCES",
    "IntakeEntry",
    "IntakeError",
    "check_time_bounds",
    "clean_note",
    "entry_from_payload",
    "iso_utc",
    "parse_time",
    "read_cronometer_daily",
    "stable_entry_id",
]
