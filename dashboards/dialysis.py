"""Dialysis sessions' details and lab results: what is logged, in which units and bounds, and the
figures that follow from them. Every way in (the session page's form, the JSON API, MQTT, the
command line) goes through `details_update` + `merged_details` and `lab_from_payload`, so one
set of rules refuses the same mistakes everywhere, with a message that says what to do.

The figures and the facts behind the bounds and the words (used for context, never as advice):

- Ultrafiltration rate (UFR) = ultrafiltration volume / post-dialysis weight / treatment hours,
  in mL/kg/h. Mean rates above 10 and above 13 mL/kg/h went with higher mortality (Assimon et
  al., Am J Kidney Dis 2016, 118,394 patients); a US quality measure flags 13 mL/kg/h or more in
  sessions shorter than 240 minutes (the NKF-KDOQI controversies report on UFR thresholds,
  2016). The treatment time is the logged start and end, else the recording's.
- Intradialytic hypotension: a lowest (nadir) systolic pressure below 90 mmHg was the definition
  most strongly associated with mortality (Flythe et al., J Am Soc Nephrol 2015); the European
  guideline's (a fall of 20 mmHg or more with symptoms and a nursing intervention) needs
  symptoms and interventions, which are not logged here, so only the fall itself is shown.
- Dialysate sodium is commonly 135-145 mmol/L (140 a usual standard); 145 gave fewer cramps than
  132 mEq/L in an early trial (Stewart et al., 1972), at the price of thirst and weight gain.
  A machine setting outside 120-160 mmol/L is a typing mistake.
- Interdialytic weight gain (IDWG): this session's pre-dialysis weight minus the previous
  session's post-dialysis weight (sessions at most 7 days apart); 3.5 kg or more went with cramps
  during dialysis in one unit's patients (Akkabut et al., 2021).
- Lab values are stored in mmol/L, converted from mg/dL with the molar masses (calcium 40.08,
  phosphorus 30.97, magnesium 24.31 g/mol) and from mEq/L by the ion's charge.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dashboards.validation import EARLIEST_DEVICE_TIME, MAX_AHEAD, Invalid, json_object
from dsp.events import iso_utc, stable_event_id
from messaging.sessions import check_session_id, check_session_kind

DETAILS_SCHEMA = "crampwatch.session/1"
LAB_SCHEMA = "crampwatch.lab/1"
MAX_SESSION_HOURS = 16.0  # nocturnal dialysis lasts about 8 h; no session is longer than this
READING_MARGIN = timedelta(hours=2)  # blood pressure taken before the start or after the end
MAX_READINGS = 100
MAX_REASON_CHARS = 200
MAX_NOTE_CHARS = 500
MAX_PAYLOAD_BYTES = 16384
MAX_LAB_BYTES = 4096
MAX_WEIGHT_CHANGE_KG = 10.0
IDWG_MAX_GAP = timedelta(days=7)
LAB_LOOKBACK = timedelta(days=35)  # a session is paired with the latest lab of the month before
UFR_WATCH, UFR_HIGH = 10.0, 13.0  # mL/kg/h
NADIR_LOW = 90.0  # mmHg
SYSTOLIC_FALL = 20.0  # mmHg
EARLY_END_REASONS = ("cramps", "low blood pressure", "access problem", "feeling unwell",
                     "patient's request", "machine or unit problem")  # fmt: skip


class DetailsError(ValueError):
    """Details or a lab result that cannot be stored; the text says what and what to do."""


# -- quantities ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A logged number: its canonical unit, the spellings of the units it may come in (with
    their size in the canonical unit) and its plausible bounds."""

    label: str
    unit: str
    low: float
    high: float
    spellings: Mapping[str, float]
    example: str
    unit_required: bool = False
    bounds_why: str = ""

    def read(self, value: Any, name: str) -> float:
        """A number in the canonical unit, or text such as '72.4 kg' / '160 lb'."""
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise DetailsError(f"{name}: give a number such as {self._example()}")
        if isinstance(value, str):
            number, unit = _split_number(value, name, self._example())
            if unit is None and self.unit_required:
                raise DetailsError(
                    f"{name}: {value.strip()!r} has no unit: give the unit from the report "
                    f"({self.units_text()})"
                )
            size = self._size(unit, name) if unit is not None else 1.0
        else:
            if self.unit_required:
                raise DetailsError(f"{name}: give it with its unit, e.g. {self._example()}")
            number, size, unit = float(value), 1.0, None
        if not math.isfinite(number):
            raise DetailsError(f"{name}: {value!r} is not a finite number")
        result = round(number * size, 6)
        if not self.low <= result <= self.high:
            shown = f"{_fmt(number)} {unit} is {_fmt(result)} {self.unit}" if unit else (
                f"{_fmt(result)} {self.unit}")  # fmt: skip
            why = f" ({self.bounds_why})" if self.bounds_why else ""
            raise DetailsError(
                f"{name}: {shown}, outside {_fmt(self.low)}-{_fmt(self.high)} {self.unit}{why}; "
                f"check the number and its unit ({self.units_text()})"
            )
        return result

    def units_text(self) -> str:
        names = list(dict.fromkeys(_UNIT_SHOWN[k] for k in self.spellings if k in _UNIT_SHOWN))
        return " or ".join(names)

    def _size(self, unit: str, name: str) -> float:
        size = self.spellings.get(_fold_unit(unit))
        if size is None:
            raise DetailsError(f"{name}: unknown unit {unit!r}; give {self.units_text()}")
        return size

    def _example(self) -> str:
        return f"'{self.example}'"


_UNIT_SHOWN = {"kg": "kg", "lb": "lb", "ml": "mL", "l": "L", "mmol/l": "mmol/L", "meq/l": "mEq/L",
               "mg/dl": "mg/dL", "mmhg": "mmHg", "/min": "/min"}  # fmt: skip
_NUMBER_UNIT = re.compile(r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>.*)$")
KG = {"kg": 1.0, "kgs": 1.0, "kilogram": 1.0, "kilograms": 1.0, "lb": 0.45359237,
      "lbs": 0.45359237, "pound": 0.45359237, "pounds": 0.45359237}  # fmt: skip
ML = {"ml": 1.0, "l": 1000.0, "cc": 1.0, "litre": 1000.0, "litres": 1000.0, "liter": 1000.0,
      "liters": 1000.0}  # fmt: skip
WEIGHT = Quantity("weight", "kg", 20.0, 300.0, KG, "72.4 kg", bounds_why="an adult's weight")
UF_VOLUME = Quantity("ultrafiltration volume", "mL", 0.0, 10_000.0, ML, "2300 mL",
                     bounds_why="no session removes more than 10 L")  # fmt: skip
SODIUM = Quantity("dialysate sodium", "mmol/L", 120.0, 160.0, {"mmol/l": 1.0, "meq/l": 1.0},
                  "138 mmol/L", bounds_why="dialysate sodium is set at about 135-145")  # fmt: skip
SYSTOLIC = Quantity("systolic pressure", "mmHg", 50.0, 260.0, {"mmhg": 1.0}, "128 mmHg")
DIASTOLIC = Quantity("diastolic pressure", "mmHg", 20.0, 160.0, {"mmhg": 1.0}, "74 mmHg")
PULSE = Quantity("pulse", "/min", 20.0, 250.0, {"/min": 1.0, "bpm": 1.0}, "72 /min")
UF_REMOVED = Quantity("ultrafiltration so far", "mL", 0.0, 10_000.0, ML, "1200 mL")


def _fold_unit(text: str) -> str:
    return "".join(text.split()).casefold().replace("µ", "u")


def _split_number(text: str, name: str, example: str) -> tuple[float, str | None]:
    stripped = " ".join(text.split())
    if not stripped or len(stripped) > 40:
        raise DetailsError(f"{name}: give a number such as {example}")
    if "," in stripped:
        raise DetailsError(f"{name}: {stripped!r} has a comma: use a dot for decimals")
    match = _NUMBER_UNIT.match(stripped)
    if match is None:
        raise DetailsError(f"{name}: {stripped!r} does not start with a number, e.g. {example}")
    return float(match["number"]), (match["unit"] or None)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


# -- session details -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A blood pressure reading; `uf_removed_ml` is the volume removed so far, if noted."""

    time: datetime
    systolic: float
    diastolic: float
    pulse: float | None = None
    uf_removed_ml: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"time": iso_utc(self.time), "systolic": self.systolic,
                "diastolic": self.diastolic, "pulse": self.pulse,
                "uf_removed_ml": self.uf_removed_ml}  # fmt: skip


@dataclass(frozen=True)
class SessionDetails:
    """What was logged about a session (every field optional)."""

    start: datetime | None = None
    end: datetime | None = None
    pre_weight_kg: float | None = None
    post_weight_kg: float | None = None
    uf_volume_ml: float | None = None
    dialysate_sodium_mmol_l: float | None = None
    blood_pressure: tuple[Reading, ...] = ()
    ended_early: bool = False
    ended_early_reason: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The stored (and API) form: times in UTC ISO 8601, numbers in canonical units."""
        out = asdict(self)
        out["start"] = iso_utc(self.start) if self.start else None
        out["end"] = iso_utc(self.end) if self.end else None
        out["blood_pressure"] = [r.to_dict() for r in self.blood_pressure]
        return out

    @classmethod
    def from_stored(cls, text: str | None) -> SessionDetails:
        """Details as stored (`to_dict` as JSON); a stored value that no longer passes the
        checks raises ValueError (the caller skips and counts the row)."""
        if not text:
            return cls()
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("details are not an object")
        update = _update_from_fields(data, UTC, None, stored=True)
        return merged_details(cls(), update, check_times=False)

    @property
    def hours(self) -> float | None:
        """The treatment time logged (end - start), in hours."""
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds() / 3600.0

    @property
    def logged(self) -> bool:
        return self != SessionDetails()


DETAIL_FIELDS = ("start", "end", "pre_weight_kg", "post_weight_kg", "uf_volume_ml",
                 "dialysate_sodium_mmol_l", "blood_pressure", "ended_early",
                 "ended_early_reason", "note")  # fmt: skip
PAYLOAD_FIELDS = ("schema", "session_id", "session_kind", *DETAIL_FIELDS)
READING_FIELDS = ("time", "systolic", "diastolic", "pulse", "uf_removed_ml")


@dataclass(frozen=True)
class DetailsUpdate:
    """A validated payload: which session (None: a new one), its kind if given, and the fields
    to set (a None value clears the field; fields not named are kept)."""

    session_id: str | None
    kind: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)


def details_update(
    payload: Mapping[str, Any] | bytes | str, *, tz: tzinfo, now: datetime | None = None
) -> DetailsUpdate:
    """A details payload (a JSON object, or its text) checked field by field; the checks across
    fields come in `merged_details`. Naive times are local times in `tz`."""
    fields = _payload_object(payload)
    if fields.get("schema") is not None and fields["schema"] != DETAILS_SCHEMA:
        raise DetailsError(
            f"schema {str(fields['schema'])[:60]!r} is not supported: expected {DETAILS_SCHEMA!r}"
        )
    session_id = fields.get("session_id")
    kind = fields.get("session_kind")
    try:
        if session_id is not None:
            check_session_id(session_id)
        if kind is not None:
            check_session_kind(kind, named=True)
    except ValueError as error:
        raise DetailsError(str(error)) from None
    update = _update_from_fields(fields, tz, now or datetime.now(UTC), stored=False)
    return DetailsUpdate(session_id, kind, update)


def _payload_object(payload: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    try:
        return json_object(
            payload, what="the details", max_bytes=MAX_PAYLOAD_BYTES, fields=PAYLOAD_FIELDS
        )
    except Invalid as error:
        raise DetailsError(str(error)) from None


def _update_from_fields(
    fields: Mapping[str, Any], tz: tzinfo, now: datetime | None, *, stored: bool
) -> dict[str, Any]:
    """Each detail field present, checked and in its canonical form (None: cleared)."""
    out: dict[str, Any] = {}
    for name in DETAIL_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            out[name] = None
        elif name in ("start", "end"):
            out[name] = session_time(value, name, tz, now)
        elif name in ("pre_weight_kg", "post_weight_kg"):
            out[name] = WEIGHT.read(value, name)
        elif name == "uf_volume_ml":
            out[name] = UF_VOLUME.read(value, name)
        elif name == "dialysate_sodium_mmol_l":
            out[name] = SODIUM.read(value, name)
        elif name == "blood_pressure":
            out[name] = _readings(value, tz, now)
        elif name == "ended_early":
            if not isinstance(value, bool):
                raise DetailsError("ended_early: give true or false")
            out[name] = value
        else:
            limit = MAX_REASON_CHARS if name == "ended_early_reason" else MAX_NOTE_CHARS
            out[name] = _text(value, name, limit)
    if stored:
        out.setdefault("ended_early", False)
    return out


def session_time(value: Any, name: str, tz: tzinfo, now: datetime | None) -> datetime:
    """An ISO 8601 time (local in `tz` without an offset) within the times a device could have
    recorded: from 2020 to a day after `now` (None: not checked against now)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise DetailsError(f"{name}: {text!r} is a date only: give the time too, e.g. "
                               f"{text}T07:30")  # fmt: skip
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise DetailsError(
                f"{name}: {text[:40]!r} is not a time such as 2026-11-16T07:30 (local time) or "
                "2026-11-16T06:30Z"
            ) from None
    else:
        raise DetailsError(f"{name}: give an ISO 8601 time such as 2026-11-16T07:30")
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=tz)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise DetailsError(f"{name}: {value!r} is out of range") from None
    if moment < EARLIEST_DEVICE_TIME:
        raise DetailsError(f"{name}: {iso_utc(moment)} is before 2020: check the date")
    if now is not None and moment > now + MAX_AHEAD:
        raise DetailsError(f"{name}: {iso_utc(moment)} is more than a day ahead: check the date")
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise DetailsError(f"{name}: give text")
    text = " ".join(value.split())
    if len(text) > limit:
        raise DetailsError(f"{name}: {len(text)} characters, more than {limit}")
    return text


def _readings(value: Any, tz: tzinfo, now: datetime | None) -> tuple[Reading, ...]:
    if not isinstance(value, list):
        raise DetailsError(
            "blood_pressure: give a list of readings such as "
            '[{"time": "2026-11-16T08:00", "systolic": 132, "diastolic": 78}]'
        )
    if len(value) > MAX_READINGS:
        raise DetailsError(f"blood_pressure: {len(value)} readings, more than {MAX_READINGS}")
    readings = []
    for i, item in enumerate(value, start=1):
        where = f"blood pressure reading {i}"
        if not isinstance(item, Mapping):
            raise DetailsError(f"{where}: give an object with time, systolic and diastolic")
        unknown = sorted(str(k)[:30] for k in item if k not in READING_FIELDS)
        if unknown:
            raise DetailsError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: "
                               f"{', '.join(READING_FIELDS)}")  # fmt: skip
        for needed in ("time", "systolic", "diastolic"):
            if item.get(needed) is None:
                raise DetailsError(f"{where}: {needed} is missing")
        reading = Reading(
            session_time(item["time"], f"{where} time", tz, now),
            SYSTOLIC.read(item["systolic"], f"{where} systolic"),
            DIASTOLIC.read(item["diastolic"], f"{where} diastolic"),
            PULSE.read(item["pulse"], f"{where} pulse") if item.get("pulse") is not None else None,
            UF_REMOVED.read(item["uf_removed_ml"], f"{where} ultrafiltration so far")
            if item.get("uf_removed_ml") is not None else None,
        )  # fmt: skip
        if reading.diastolic >= reading.systolic:
            raise DetailsError(
                f"{where}: diastolic {_fmt(reading.diastolic)} is not below systolic "
                f"{_fmt(reading.systolic)}: write it as systolic/diastolic, e.g. 132/78"
            )
        readings.append(reading)
    return tuple(sorted(readings, key=lambda r: r.time))


def merged_details(
    stored: SessionDetails, update: Mapping[str, Any], *, check_times: bool = True
) -> SessionDetails:
    """`stored` with `update` applied, checked across fields: the end after the start and at
    most MAX_SESSION_HOURS later, readings near the session, weights that fit together, a
    reason only for a session that ended early."""
    values = {name: getattr(stored, name) for name in DETAIL_FIELDS}
    for name, value in update.items():
        values[name] = _cleared(name) if value is None else value
    details = SessionDetails(**values)
    start, end = details.start, details.end
    if start is not None and end is not None:
        if end <= start:
            raise DetailsError(f"end {iso_utc(end)} is not after start {iso_utc(start)}")
        if details.hours is not None and details.hours > MAX_SESSION_HOURS:
            raise DetailsError(
                f"the session would last {details.hours:.1f} h, more than {MAX_SESSION_HOURS:g} h: "
                "check the start and end dates"
            )
    if check_times and start is not None:
        latest = (end or start + timedelta(hours=MAX_SESSION_HOURS)) + READING_MARGIN
        for reading in details.blood_pressure:
            if not start - READING_MARGIN <= reading.time <= latest:
                raise DetailsError(
                    f"the blood pressure reading at {iso_utc(reading.time)} is more than 2 h "
                    "from the session: check its time (and the session's date)"
                )
    pre, post = details.pre_weight_kg, details.post_weight_kg
    if pre is not None and post is not None and abs(pre - post) > MAX_WEIGHT_CHANGE_KG:
        raise DetailsError(
            f"pre-dialysis {_fmt(pre)} kg and post-dialysis {_fmt(post)} kg are more than "
            f"{MAX_WEIGHT_CHANGE_KG:g} kg apart: check both weights"
        )
    if details.ended_early_reason and not details.ended_early:
        raise DetailsError("a reason for ending early is given, but ended_early is not true")
    return details


def _cleared(name: str) -> Any:
    return {"blood_pressure": (), "ended_early": False, "ended_early_reason": "",
            "note": ""}.get(name)  # fmt: skip


# -- the form's blood pressure lines ---------------------------------------------------------------

_READING_LINE = re.compile(
    r"^(?P<clock>\d{1,2}[:.]\d{2})\s+(?P<sys>\d{2,3}(?:\.\d+)?)\s*/\s*(?P<dia>\d{2,3}(?:\.\d+)?)"
    r"(?P<rest>(?:\s+(?:pulse|uf)\s*\d+(?:\.\d+)?\s*(?:ml|l)?)*)\s*$",
    re.IGNORECASE,
)
_READING_EXTRA = re.compile(r"(pulse|uf)\s*(\d+(?:\.\d+)?)\s*(ml|l)?", re.IGNORECASE)


def readings_from_lines(text: str, day: date, tz: tzinfo, after: time | None = None) -> list[dict]:
    """The form's blood pressure lines ('07:45 128/74', '09:15 104/62 pulse 88 uf 1200') as
    readings on `day` (local); a clock time more than 2 h before `after` (the session's start)
    is taken for the next day (a night session)."""
    readings = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_READINGS:
        raise DetailsError(f"blood pressure: {len(lines)} lines, more than {MAX_READINGS}")
    for number, line in enumerate(lines, start=1):
        match = _READING_LINE.match(line)
        if match is None:
            raise DetailsError(
                f"blood pressure line {number} ({line[:40]!r}): write time systolic/diastolic, "
                "e.g. '07:45 128/74', optionally followed by 'pulse 72' and 'uf 600' (mL so far)"
            )
        hour, minute = (int(p) for p in re.split(r"[:.]", match["clock"]))
        if hour > 23 or minute > 59:
            raise DetailsError(
                f"blood pressure line {number}: {match['clock']} is not a clock time"
            )
        clock = time(hour, minute)
        moment = datetime.combine(day, clock, tzinfo=tz)
        if (
            after is not None
            and clock < after
            and (datetime.combine(day, after) - datetime.combine(day, clock) > READING_MARGIN)
        ):
            moment += timedelta(days=1)
        reading: dict[str, Any] = {"time": moment.isoformat(), "systolic": float(match["sys"]),
                                   "diastolic": float(match["dia"])}  # fmt: skip
        for key, value, unit in _READING_EXTRA.findall(match["rest"] or ""):
            if key.lower() == "pulse":
                reading["pulse"] = float(value)
            else:
                reading["uf_removed_ml"] = f"{value} {unit or 'mL'}"
        readings.append(reading)
    return readings


def reading_lines(details: SessionDetails, tz: tzinfo) -> str:
    """The readings as the form's lines (the inverse of `readings_from_lines`)."""
    lines = []
    for r in details.blood_pressure:
        line = f"{r.time.astimezone(tz):%H:%M} {r.systolic:g}/{r.diastolic:g}"
        if r.pulse is not None:
            line += f" pulse {r.pulse:g}"
        if r.uf_removed_ml is not None:
            line += f" uf {r.uf_removed_ml:g}"
        lines.append(line)
    return "\n".join(lines)


# -- derived figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFigures:
    """What follows from the details (None where something needed is missing)."""

    hours: float | None  # treatment time: logged, else the recording's
    hours_logged: bool
    uf_rate: float | None  # mL/kg/h
    idwg_kg: float | None
    previous_post_kg: float | None
    nadir: Reading | None
    first: Reading | None
    fall: float | None  # mmHg, first reading's systolic minus the lowest after it
    nadir_low: bool  # below NADIR_LOW
    fell_20: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["nadir"] = self.nadir.to_dict() if self.nadir else None
        out["first"] = self.first.to_dict() if self.first else None
        return out

    def notes(self) -> list[str]:
        """Plain-language context for the figures (what the literature says, not advice)."""
        notes = []
        if self.uf_rate is not None and self.uf_rate > UFR_HIGH:
            notes.append(
                f"Ultrafiltration rate {self.uf_rate:.1f} mL/kg/h: above 13 mL/kg/h, a rate "
                "that studies link with low blood pressure during dialysis, cramps and higher "
                "mortality; many units aim to stay below it."
            )
        elif self.uf_rate is not None and self.uf_rate > UFR_WATCH:
            notes.append(
                f"Ultrafiltration rate {self.uf_rate:.1f} mL/kg/h: above 10 mL/kg/h, where "
                "studies begin to see more low blood pressure and higher mortality."
            )
        if self.nadir_low and self.nadir is not None:
            notes.append(
                f"Lowest systolic pressure {self.nadir.systolic:g} mmHg: below 90 mmHg, the "
                "usual definition of intradialytic hypotension."
            )
        if self.fell_20 and self.fall is not None:
            notes.append(
                f"Systolic pressure fell by {self.fall:g} mmHg during the session (a fall of 20 "
                "mmHg or more is part of the European definition of intradialytic hypotension, "
                "which also needs symptoms and a nursing intervention)."
            )
        return notes


def session_figures(
    details: SessionDetails,
    previous: SessionDetails | None,
    recorded_hours: float | None = None,
) -> SessionFigures:
    """UFR, IDWG and the blood pressure figures of one session; `previous` is the same kind's
    session before it (for the weight gain), `recorded_hours` the recording's length."""
    hours = details.hours
    logged = hours is not None
    if hours is None:
        hours = recorded_hours if recorded_hours and recorded_hours > 0 else None
    rate = None
    if hours and details.uf_volume_ml is not None and details.post_weight_kg:
        rate = details.uf_volume_ml / details.post_weight_kg / hours
    idwg = previous_post = None
    if previous is not None and previous.post_weight_kg is not None and details.pre_weight_kg:
        gap_ok = (
            previous.end is None
            or details.start is None
            or timedelta(0) < details.start - previous.end <= IDWG_MAX_GAP
        )
        if gap_ok:
            previous_post = previous.post_weight_kg
            idwg = round(details.pre_weight_kg - previous_post, 3)
    readings = list(details.blood_pressure)
    during = [
        r for r in readings
        if (details.start is None or r.time >= details.start - timedelta(minutes=30))
        and (details.end is None or r.time <= details.end + timedelta(minutes=30))
    ]  # fmt: skip
    nadir = min(during, key=lambda r: r.systolic) if during else None
    first = during[0] if during else None
    fall = None
    if first is not None and nadir is not None and nadir.time >= first.time:
        fall = first.systolic - nadir.systolic
    return SessionFigures(
        hours=round(hours, 4) if hours else None, hours_logged=logged,
        uf_rate=round(rate, 2) if rate is not None else None, idwg_kg=idwg,
        previous_post_kg=previous_post, nadir=nadir, first=first, fall=fall,
        nadir_low=nadir is not None and nadir.systolic < NADIR_LOW,
        fell_20=fall is not None and fall >= SYSTOLIC_FALL,
    )  # fmt: skip


def uf_progress(
    details: SessionDetails, start: datetime, end: datetime
) -> tuple[list[tuple[datetime, float]], bool]:
    """Ultrafiltration removed over the session: the readings' volumes so far where noted
    (from 0 at the start to the total at the end), else a straight line at a constant rate.
    Returns the points and whether they are measured (False: the constant-rate line)."""
    total = details.uf_volume_ml
    begin, finish = details.start or start, details.end or end
    noted = [
        (r.time, r.uf_removed_ml) for r in details.blood_pressure if r.uf_removed_ml is not None
    ]
    if noted:
        points = [(begin, 0.0), *[(t, float(v)) for t, v in noted if begin <= t <= finish]]
        if total is not None and finish > points[-1][0]:
            points.append((finish, total))
        return points, True
    if total is None:
        return [], False
    return [(begin, 0.0), (finish, total)], False


# -- lab results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analyte:
    key: str
    label: str
    quantity: Quantity
    aliases: tuple[str, ...] = ()


def _lab(label: str, low: float, high: float, spellings: Mapping[str, float], example: str,
         required: bool = True) -> Quantity:  # fmt: skip
    return Quantity(label, "mmol/L", low, high, spellings, example, unit_required=required,
                    bounds_why="a serum value a lab reports")  # fmt: skip


ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        Analyte("calcium", "Calcium", _lab("calcium", 1.0, 4.5, {
            "mmol/l": 1.0, "mg/dl": 1 / 4.008, "meq/l": 0.5}, "2.2 mmol/L"),
            ("ca", "serum calcium")),
        Analyte("phosphorus", "Phosphorus", _lab("phosphorus", 0.2, 5.0, {
            "mmol/l": 1.0, "mg/dl": 1 / 3.097}, "1.6 mmol/L"), ("phosphate", "phos", "po4", "p")),
        Analyte("potassium", "Potassium", _lab("potassium", 1.5, 9.0, {
            "mmol/l": 1.0, "meq/l": 1.0}, "4.8 mmol/L", required=False),
            ("k", "serum potassium")),
        Analyte("magnesium", "Magnesium", _lab("magnesium", 0.2, 3.0, {
            "mmol/l": 1.0, "mg/dl": 1 / 2.431, "meq/l": 0.5}, "0.9 mmol/L"),
            ("serum magnesium",)),
    )
}  # fmt: skip
LAB_FIELDS = ("schema", "entry_id", "time", "analyte", "value", "unit", "note")


@dataclass(frozen=True)
class LabResult:
    entry_id: str
    time: datetime
    analyte: str
    value: float  # mmol/L
    note: str = ""
    source: str = "api"

    @property
    def unit(self) -> str:
        return ANALYTES[self.analyte].quantity.unit

    def to_dict(self) -> dict[str, Any]:
        return {"schema": LAB_SCHEMA, "entry_id": self.entry_id, "time": iso_utc(self.time),
                "analyte": self.analyte, "value": self.value, "unit": self.unit,
                "note": self.note, "source": self.source}  # fmt: skip


def find_analyte(name: Any) -> Analyte:
    if isinstance(name, str):
        folded = "_".join(name.strip().casefold().split())
        for analyte in ANALYTES.values():
            if folded in (analyte.key, *("_".join(a.split()) for a in analyte.aliases)):
                return analyte
    known = ", ".join(ANALYTES)
    raise DetailsError(f"analyte {str(name)[:40]!r} is not one of {known}")


def lab_from_payload(
    payload: Mapping[str, Any] | bytes | str, *, tz: tzinfo, source: str,
    now: datetime | None = None, time_optional: bool = True,
) -> LabResult:  # fmt: skip
    """A checked lab result: `analyte`, `value` (a number with `unit`, or text such as '2.2
    mmol/L' / '8.8 mg/dL'), `time` (when the blood was taken; now if left out where allowed)."""
    fields = _lab_object(payload)
    if fields.get("schema") is not None and fields["schema"] != LAB_SCHEMA:
        raise DetailsError(f"schema {str(fields['schema'])[:60]!r} is not {LAB_SCHEMA!r}")
    analyte = find_analyte(fields.get("analyte"))
    value = fields.get("value")
    unit = fields.get("unit")
    if value is None:
        raise DetailsError(f"value is missing: give the {analyte.label.lower()} value and unit")
    if unit is not None:
        if not isinstance(unit, str) or isinstance(value, str):
            raise DetailsError("give the value as a number with a separate unit, or as text "
                               "such as '2.2 mmol/L' without a unit")  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DetailsError("value: give a number")
        value = f"{float(value)!r} {unit}"
    measured = analyte.quantity.read(value, analyte.key)
    now = now or datetime.now(UTC)
    if fields.get("time") is None:
        if not time_optional:
            raise DetailsError("time is missing: give when the blood was taken (ISO 8601)")
        moment = now.replace(microsecond=now.microsecond // 1000 * 1000)
    else:
        moment = session_time(fields["time"], "time", tz, now)
    note = _text(fields.get("note") or "", "note", MAX_NOTE_CHARS)
    entry_id = fields.get("entry_id")
    if entry_id is None:
        entry_id = stable_event_id(iso_utc(moment), analyte.key, measured, note, "lab")
    else:
        try:
            check_session_id(entry_id)
        except ValueError:
            raise DetailsError(
                f"entry_id {str(entry_id)[:70]!r}: use 1-64 letters, digits, '.', '_', ':', '-'"
            ) from None
    return LabResult(entry_id, moment, analyte.key, measured, note, source)


def _lab_object(payload: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    try:
        return json_object(payload, what="a lab result", max_bytes=MAX_LAB_BYTES, fields=LAB_FIELDS)
    except Invalid as error:
        raise DetailsError(str(error)) from None


def latest_labs(
    labs: Sequence[LabResult], before: datetime, lookback: timedelta = LAB_LOOKBACK
) -> dict[str, LabResult]:
    """Per analyte, the latest result at most `lookback` before `before` (labs sorted by time)."""
    out: dict[str, LabResult] = {}
    for lab in labs:
        if before - lookback <= lab.time <= before:
            out[lab.analyte] = lab
    return out
