"""Nightly cramp summaries and intake correlations for the dashboard: pure computation, no I/O.

The rules (DESIGN.md, "Dashboard analysis"), and the choices made where it is silent:

- A night runs from 18:00 to 12:00 local time and is named by the date it starts; 12:00-18:00 belongs
  to no night. Local time comes from converting the UTC instant, so DST nights are 17 or 19 hours long.
- Events belong to the night in which they start; events starting in the 12:00-18:00 gap are left out.
  Cramp events that overlap in time on different channels (both calves, or two heads of one calf) are
  one cramp: `cramps` counts merged episodes, `cramp_minutes` is the length of their union. Movements are
  merged the same way.
- A session belongs to the night in which it starts; one started in the 12:00-18:00 gap belongs to the
  night that starts that evening if it was still recording at 18:00, else to no night. Several sessions
  in one night add up per (device, channel); a session's good seconds are capped at its recorded seconds.
  A night's good-signal minutes are the **maximum over channels**: a cramp on either calf is seen as long
  as one channel is good, and the best channel is what the detector could rely on.
- A named session (dialysis, or another daytime session: `SessionSpan`) is its own unit: the events
  that start inside it belong to it (`summarize_sessions`), never to a night, and a recording made
  as a named session never adds to a night's signal. A night recording that overlaps a named session
  logged on the dashboard (the device was not told) counts for the night in proportion to the time
  outside it. Nights that touch no named session are computed exactly as before.
- Nights in the requested range with no session are returned as nights without data (`has_data` False,
  `complete` False, 0 good minutes): they are never read as nights without cramps, and are left out of
  the statistics even with `include_incomplete`.
- Intake is totalled per local calendar day in the factor's canonical unit. For a factor, a day with
  something logged (anything) but not this factor counts as 0 of it; a day with nothing logged at all is
  unknown and left out. Lag L pairs day d with the night named d + L (lag 0: the night that starts that
  evening; lag 1: the night after).
- Higher- vs lower-intake days split at the median of the paired days: "higher" is strictly above the
  median and days at the median go to "lower"; if no day is above the median (over half the days share
  the top value) days at the median go to "higher" instead. For 'event' factors "higher" means taken
  (a total above 0) and "lower" means not taken.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import numpy as np
from scipy import stats

from messaging.sessions import NIGHT as NIGHT_KIND

NIGHT_START = time(18)
NIGHT_END = time(12)
NIGHT_START_S = 18 * 3600
NIGHT_END_S = 12 * 3600
DAY_S = 86400
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
EVENT_KINDS = ("cramp", "movement")
FACTOR_KINDS = ("amount", "event")
STATUS_OK = "ok"
STATUS_TOO_FEW = "too_few"
STATUS_NO_VARIATION = "no_variation"
# Three or more cramp nights within seven consecutive nights: a doctor visit is advised (DESIGN.md).
NOTICE_WINDOW_NIGHTS = 7
NOTICE_CRAMP_NIGHTS = 3

CAVEAT_NOT_CAUSE = (
    "Correlation is not cause: an intake that goes with more or fewer cramps does not show that it "
    "causes or prevents them; something else (exercise, heat, illness, medication) may drive both."
)
CAVEAT_PLACEBO = (
    "Cramps become less frequent over time even without an effective treatment: in trials of "
    "magnesium, placebo groups had about a quarter fewer cramps after four weeks. A drop after "
    "starting something new may not be due to it."
)
CAVEAT_MANY_TESTS = (
    "Many factors and lags are compared, so some links appear by chance alone; the q values are "
    "adjusted for this (Benjamini-Hochberg)."
)
CAVEATS = (CAVEAT_NOT_CAUSE, CAVEAT_PLACEBO, CAVEAT_MANY_TESTS)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _json(value: Any) -> Any:
    """A JSON-ready copy: ISO strings for dates, None for NaN/inf, lists for tuples."""
    if isinstance(value, date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, _ToDict):
        return value.to_dict()
    if isinstance(value, bool | None | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(_json(k)): _json(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_json(v) for v in value]
    return value


class _ToDict:
    """`to_dict()` for the dataclasses below: every field, JSON-ready."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def _require_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")


# ---------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class CrampRecord(_ToDict):
    """One `ended` cramp or movement event, as stored (times aware, UTC)."""

    event_id: str
    channel: str
    kind: str
    start: datetime
    end: datetime
    duration_s: float
    peak_uv: float

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {EVENT_KINDS}, got {self.kind!r}")
        _require_aware(self.start, "start")
        _require_aware(self.end, "end")
        if self.end < self.start:
            raise ValueError(f"event {self.event_id} ends before it starts")


@dataclass(frozen=True, slots=True)
class SessionRecord(_ToDict):
    """One recording session: when it started, seconds recorded, seconds of good signal per
    channel; its kind ('night', or a named session's kind with its id)."""

    device: str
    session_start: datetime
    recorded_s: float
    good_s: Mapping[str, float] = field(default_factory=dict)
    kind: str = NIGHT_KIND
    session_id: str | None = None

    @property
    def end(self) -> datetime:
        return self.session_start + timedelta(seconds=self.recorded_s)

    def __post_init__(self) -> None:
        _require_aware(self.session_start, "session_start")
        if not self.recorded_s >= 0:
            raise ValueError(f"recorded_s must be >= 0, got {self.recorded_s}")
        for channel, seconds in self.good_s.items():
            if not seconds >= 0:
                raise ValueError(f"good_s[{channel!r}] must be >= 0, got {seconds}")


@dataclass(frozen=True, slots=True)
class SessionSpan(_ToDict):
    """A named session's time: from `start` to `end` (the recording's and the logged times
    together); minutes into the session count from `origin` (the logged treatment start, else
    `start`)."""

    session_id: str
    kind: str
    start: datetime
    end: datetime
    origin: datetime

    def __post_init__(self) -> None:
        for name in ("start", "end", "origin"):
            _require_aware(getattr(self, name), name)
        if self.end < self.start:
            raise ValueError(f"session {self.session_id} ends before it starts")

    def overlap_s(self, start: datetime, end: datetime) -> float:
        """Seconds of [start, end) inside this session."""
        return max(0.0, (min(end, self.end) - max(start, self.start)).total_seconds())


def span_times(spans: Sequence[SessionSpan]) -> tuple[np.ndarray, np.ndarray]:
    """The spans' starts and ends as POSIX seconds."""
    return (np.array([s.start.timestamp() for s in spans], dtype=float),
            np.array([s.end.timestamp() for s in spans], dtype=float))  # fmt: skip


def in_spans(timestamps: np.ndarray, spans: Sequence[SessionSpan]) -> np.ndarray:
    """Which POSIX timestamps lie inside a named session (start <= t < end)."""
    ts = np.asarray(timestamps, dtype=float)
    inside = np.zeros(ts.shape, dtype=bool)
    if not spans or ts.size == 0:
        return inside
    starts, ends = span_times(spans)
    order = np.argsort(starts)
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    # the latest span starting at or before t; inside if any span up to it reaches past t
    at = np.searchsorted(starts, ts, side="right") - 1
    inside[at >= 0] = ts[at >= 0] < ends[at[at >= 0]]
    return inside


def span_index(timestamps: np.ndarray, spans: Sequence[SessionSpan]) -> np.ndarray:
    """For each POSIX timestamp, the index of the first span holding it (start <= t < end),
    -1 for none."""
    ts = np.asarray(timestamps, dtype=float)
    which = np.full(ts.shape, -1, dtype=np.int64)
    for i, span in enumerate(spans):
        inside = (ts >= span.start.timestamp()) & (ts < span.end.timestamp()) & (which < 0)
        which[inside] = i
    return which


def _overlap_s(start: float, end: float, starts: np.ndarray, ends: np.ndarray) -> float:
    return float(np.clip(np.minimum(ends, end) - np.maximum(starts, start), 0.0, None).sum())


def night_share(session: SessionRecord, spans: Sequence[SessionSpan]) -> float:
    """The share of a recording that counts for nights: none of a named session's recording,
    and of a night recording the part outside the named sessions (1.0 when it touches none)."""
    return _night_share(session, *span_times(spans))


def _night_share(session: SessionRecord, starts: np.ndarray, ends: np.ndarray) -> float:
    if session.kind != NIGHT_KIND:
        return 0.0
    if starts.size == 0 or session.recorded_s <= 0:
        return 1.0
    begin = session.session_start.timestamp()
    inside = _overlap_s(begin, begin + session.recorded_s, starts, ends)
    return 1.0 if inside <= 0 else max(0.0, 1.0 - inside / session.recorded_s)


@dataclass(frozen=True, slots=True)
class IntakeRecord(_ToDict):
    """One intake entry: when, which factor, how much in the factor's canonical unit, its kind."""

    time: datetime
    factor: str
    amount: float
    kind: str = "amount"

    def __post_init__(self) -> None:
        _require_aware(self.time, "time")
        if self.kind not in FACTOR_KINDS:
            raise ValueError(f"factor kind must be one of {FACTOR_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.amount) and self.amount >= 0):
            raise ValueError(f"amount must be finite and >= 0, got {self.amount}")


# ---------------------------------------------------------------------------------------------------
# Nights


def night_of(moment: datetime, tz: tzinfo) -> date | None:
    """The night a moment belongs to (named by its start date), or None between 12:00 and 18:00."""
    _require_aware(moment, "moment")
    local = moment.astimezone(tz)
    if local.time() >= NIGHT_START:
        return local.date()
    if local.time() < NIGHT_END:
        return local.date() - timedelta(days=1)
    return None


def _offset_s(timestamp: float, tz: tzinfo) -> float:
    """The zone's UTC offset in seconds at a POSIX timestamp."""
    offset = datetime.fromtimestamp(timestamp, tz).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _transition(lo: float, hi: float, tz: tzinfo) -> float:
    """The first whole second in (lo, hi] at which the offset differs from the one at lo."""
    before = _offset_s(lo, tz)
    lo, hi = math.floor(lo), math.ceil(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _offset_s(mid, tz) != before else (mid, hi)
    return float(hi)


def local_seconds(timestamps: np.ndarray, tz: tzinfo) -> np.ndarray:
    """POSIX timestamps to local wall-clock seconds since 1970-01-01 local, vectorised.

    Offsets are sampled once a day over the span and each change located to the second, so the
    cost is per day of span rather than per timestamp (no zone changes offset twice in a day).
    """
    ts = np.asarray(timestamps, dtype=float)
    if ts.size == 0:
        return ts.copy()
    start, stop = float(ts.min()), float(ts.max())
    if ts.size <= (stop - start) / DAY_S + 2:  # sparse: converting each is cheaper
        return ts + np.array([_offset_s(t, tz) for t in ts])
    grid = np.append(np.arange(start, stop, DAY_S), stop)
    offsets = np.array([_offset_s(t, tz) for t in grid])
    changes = np.flatnonzero(offsets[1:] != offsets[:-1])
    bounds = np.array([_transition(grid[i], grid[i + 1], tz) for i in changes])
    levels = np.append(offsets[0], offsets[changes + 1])
    return ts + levels[np.searchsorted(bounds, ts, side="right")]


def _timestamps(moments: Iterable[datetime]) -> np.ndarray:
    return np.fromiter((m.timestamp() for m in moments), dtype=float)


def nights_of(moments: Sequence[datetime], tz: tzinfo) -> np.ndarray:
    """`night_of` for many aware moments: date ordinals, -1 where a moment belongs to no night."""
    return _nights(_timestamps(moments), tz)


def _nights(timestamps: np.ndarray, tz: tzinfo) -> np.ndarray:
    local = local_seconds(timestamps, tz)
    day = np.floor_divide(local, DAY_S).astype(np.int64) + EPOCH_ORDINAL
    second = np.mod(local, DAY_S)
    night = np.where(second >= NIGHT_START_S, day, day - 1)
    return np.where((second >= NIGHT_END_S) & (second < NIGHT_START_S), -1, night)


def session_night(session: SessionRecord, tz: tzinfo) -> date | None:
    """The night of the session's start; a daytime start counts for the evening if it reached 18:00.
    A named session (dialysis, ...) is no night's."""
    if session.kind != NIGHT_KIND:
        return None
    night = night_of(session.session_start, tz)
    if night is not None:
        return night
    day = session.session_start.astimezone(tz).date()
    evening = datetime.combine(day, NIGHT_START, tzinfo=tz)
    reached = session.session_start + timedelta(seconds=session.recorded_s) >= evening
    return day if reached else None


@dataclass(frozen=True, slots=True)
class NightSummary(_ToDict):
    """Figures for one night; `first_cramp` is local time; `has_data` False means no session at all.

    The fields after `complete` are filled in by the dashboard's stored summaries
    (`dashboards.night_summaries`): per channel figures (`cramps`, `cramp_minutes`, `movements`,
    `good_minutes`), the patient's word (`rejected`: detected cramps they said were not cramps,
    left out of every figure above; `confirmed`; `reported`: cramps they reported at a marker
    press that the detector missed, counted in `cramps`), marker presses, and what the device
    measured (None: not measured, never 0): PLMS, their index per hour of good signal, and
    fasciculations.
    """

    night: date
    cramps: int
    cramp_minutes: float
    strongest_uv: float | None
    first_cramp: datetime | None
    movements: int
    good_minutes: float
    recorded_minutes: float
    sessions: int
    has_data: bool
    complete: bool
    by_channel: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    rejected: int = 0
    confirmed: int = 0
    reported: int = 0
    markers: int = 0
    plms: int | None = None
    plm_per_hour: float | None = None
    fasciculations: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], tz: tzinfo) -> NightSummary:
        """The summary `to_dict()` gave (JSON), with `first_cramp` in `tz`."""
        first = data.get("first_cramp")
        values = {**data, "night": date.fromisoformat(data["night"]),
                  "first_cramp": datetime.fromisoformat(first).astimezone(tz) if first else None}  # fmt: skip
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass(frozen=True, slots=True)
class _Events:
    """One kind of event as arrays, sorted by (night, start); `row` indexes the full event list."""

    night: np.ndarray  # date ordinals
    start: np.ndarray  # POSIX seconds
    end: np.ndarray
    peak: np.ndarray
    row: np.ndarray

    @classmethod
    def of(
        cls,
        rows: np.ndarray,
        nights: np.ndarray,
        start: np.ndarray,
        end: np.ndarray,
        peak: np.ndarray,
    ) -> _Events:
        """The events at `rows` of the full arrays, sorted."""
        order = rows[np.lexsort((start[rows], nights[rows]))]
        return cls(nights[order], start[order], end[order], peak[order], order)

    def episodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions where merged episodes begin (events overlapping in time are one), their ends."""
        if self.start.size == 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        # Shift each night past the previous one by more than any event lasts, so one running
        # maximum of the ends never reaches from one night into the next.
        shift = (self.night - self.night[0]) * (float(np.max(self.end - self.start)) + 1.0)
        base = self.start[0]
        reach = np.maximum.accumulate(self.end - base + shift)
        new = np.ones(self.start.size, dtype=bool)
        new[1:] = (self.night[1:] != self.night[:-1]) | (
            self.start[1:] - base + shift[1:] > reach[:-1]
        )
        first = np.flatnonzero(new)
        return first, np.maximum.reduceat(self.end, first)


@dataclass(frozen=True, slots=True)
class _PerNight:
    """Event figures per night index 0..n-1 (night ordinal minus the first's)."""

    count: np.ndarray
    minutes: np.ndarray
    strongest: np.ndarray  # -inf where none
    first_row: np.ndarray  # row of the earliest event in the full list, -1 where none

    @classmethod
    def of(cls, events: _Events, first: int, n: int) -> _PerNight:
        starts, ends = events.episodes()
        index = events.night[starts] - first
        count = np.bincount(index, minlength=n)
        minutes = np.bincount(index, weights=ends - events.start[starts], minlength=n) / 60.0
        strongest = np.full(n, -np.inf)
        np.maximum.at(strongest, events.night - first, events.peak)
        first_row = np.full(n, -1, dtype=np.int64)
        nights_seen, at = np.unique(index, return_index=True)  # episodes are sorted by start
        first_row[nights_seen] = events.row[starts[at]]
        return cls(count, minutes, strongest, first_row)


def _signal_by_night(
    sessions: Sequence[SessionRecord], tz: tzinfo, spans: Sequence[SessionSpan] = ()
) -> dict[date, tuple[float, float, int]]:
    """Per night: (good minutes: best channel, recorded minutes, number of sessions); named
    sessions' recordings left out, night recordings counted outside named sessions only."""
    good: dict[date, dict[tuple[str, str], float]] = defaultdict(lambda: defaultdict(float))
    recorded: dict[date, float] = defaultdict(float)
    count: dict[date, int] = defaultdict(int)
    sessions = [s for s in sessions if s.kind == NIGHT_KIND]
    ordinals = nights_of([s.session_start for s in sessions], tz).tolist()
    starts, ends = span_times(spans)
    for session, ordinal in zip(sessions, ordinals, strict=True):
        night = date.fromordinal(ordinal) if ordinal >= 0 else session_night(session, tz)
        if night is None:
            continue
        share = _night_share(session, starts, ends)
        if share <= 0.0:
            continue
        recorded[night] += session.recorded_s if share == 1.0 else session.recorded_s * share
        count[night] += 1
        for channel, seconds in session.good_s.items():
            seconds = min(seconds, session.recorded_s)
            good[night][(session.device, channel)] += seconds if share == 1.0 else seconds * share
    return {
        night: (max(good[night].values(), default=0.0) / 60.0, recorded[night] / 60.0, count[night])
        for night in count
    }


def _summary(
    night: date,
    i: int,
    cramps: _PerNight,
    movements: _PerNight,
    signal: Mapping[date, tuple[float, float, int]],
    events: Sequence[CrampRecord],
    tz: tzinfo,
    min_good_minutes: float,
) -> NightSummary:
    """Night `night` (index `i` in the figures) as a NightSummary."""
    good, recorded, n_sessions = signal.get(night, (0.0, 0.0, 0))
    row = int(cramps.first_row[i])
    strongest = float(cramps.strongest[i])
    return NightSummary(
        night=night,
        cramps=int(cramps.count[i]),
        cramp_minutes=float(cramps.minutes[i]),
        strongest_uv=strongest if math.isfinite(strongest) else None,
        first_cramp=events[row].start.astimezone(tz) if row >= 0 else None,
        movements=int(movements.count[i]),
        good_minutes=good,
        recorded_minutes=recorded,
        sessions=n_sessions,
        has_data=night in signal,
        complete=night in signal and good >= min_good_minutes,
    )


def _night_range(
    seen: Iterable[date], first: date | None, last: date | None
) -> tuple[date, date] | None:
    """The nights to report: `first`..`last`, each defaulting to the data's span."""
    seen = sorted(seen)
    first = first if first is not None else (seen[0] if seen else last)
    last = last if last is not None else (seen[-1] if seen else first)
    if first is None or last is None:
        return None
    if last < first:
        raise ValueError(f"last ({last}) is before first ({first})")
    return first, last


def summarize_nights(
    cramps: Iterable[CrampRecord],
    sessions: Iterable[SessionRecord],
    tz: tzinfo,
    *,
    min_good_minutes: float = 240.0,
    first: date | None = None,
    last: date | None = None,
    spans: Sequence[SessionSpan] = (),
) -> list[NightSummary]:
    """One summary per night from `first` to `last` (default: the span of the data), in order.

    Pass only `ended` events, de-duplicated by event_id. Nights with no session come out as nights
    without data, never as nights without cramps. Events inside a named session (`spans`) are
    that session's, and left out.
    """
    events = list(cramps)
    if spans:
        inside = in_spans(_timestamps(e.start for e in events), spans)
        events = [e for e, out in zip(events, ~inside, strict=True) if out]
    signal = _signal_by_night(list(sessions), tz, spans)
    start = _timestamps(e.start for e in events)
    end = _timestamps(e.end for e in events)
    peak = np.fromiter((e.peak_uv for e in events), dtype=float, count=len(events))
    ordinals = _nights(start, tz)
    seen = {date.fromordinal(o) for o in np.unique(ordinals[ordinals >= 0]).tolist()}
    span = _night_range(seen | signal.keys(), first, last)
    if span is None:
        return []
    lo, n = span[0].toordinal(), (span[1] - span[0]).days + 1
    kept = (ordinals >= lo) & (ordinals < lo + n)
    is_cramp = np.array([e.kind == "cramp" for e in events], dtype=bool)
    cramp_figures, movement_figures = (
        _PerNight.of(_Events.of(np.flatnonzero(mask), ordinals, start, end, peak), lo, n)
        for mask in (kept & is_cramp, kept & ~is_cramp)
    )
    return [
        _summary(
            date.fromordinal(lo + i), i, cramp_figures, movement_figures, signal, events, tz,
            min_good_minutes,
        )
        for i in range(n)
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Named sessions (dialysis, ...)


@dataclass(frozen=True, slots=True)
class SessionSummary(_ToDict):
    """Figures for one named session (times aware): the cramps and movements that started in it
    (overlapping ones on different channels are one, as for nights), its first cramp and the
    minutes from `origin` (the treatment's start) to it and to every cramp (`cramp_minutes_in`),
    and its signal: recorded and good minutes (best channel) of the recordings made as this
    session and of night recordings that overlap it. `complete`: good signal for at least
    `min_good_share` of its length. The patient's word is added by the dashboard
    (`dashboards.named_sessions`), as for nights."""

    session_id: str
    kind: str
    start: datetime
    end: datetime
    origin: datetime
    cramps: int
    cramp_minutes: float
    strongest_uv: float | None
    first_cramp: datetime | None
    first_cramp_min: float | None
    movements: int
    recorded_minutes: float
    good_minutes: float
    has_recording: bool
    complete: bool
    cramp_minutes_in: tuple[float, ...] = ()
    rejected: int = 0
    confirmed: int = 0
    reported: int = 0
    markers: int = 0

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0


def _span_signal(
    sessions: Sequence[SessionRecord], spans: Sequence[SessionSpan]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per span: recorded minutes, good minutes (best channel), and whether anything recorded
    it: its own recordings in full, overlapping night recordings in proportion."""
    by_id = {span.session_id: i for i, span in enumerate(spans)}
    starts, ends = span_times(spans)
    recorded = np.zeros(len(spans))
    good: list[dict[tuple[str, str], float]] = [defaultdict(float) for _ in spans]
    for session in sessions:
        if session.session_id in by_id:
            targets = [(by_id[session.session_id], 1.0)]
        elif session.kind == NIGHT_KIND and session.recorded_s > 0:
            begin = session.session_start.timestamp()
            overlap = np.clip(np.minimum(ends, begin + session.recorded_s)
                              - np.maximum(starts, begin), 0.0, None)  # fmt: skip
            targets = [(int(i), overlap[i] / session.recorded_s) for i in np.flatnonzero(overlap)]
        else:
            continue
        for i, share in targets:
            recorded[i] += session.recorded_s * share / 60.0
            for channel, seconds in session.good_s.items():
                good[i][(session.device, channel)] += min(seconds, session.recorded_s) * share
    best = np.array([max(g.values(), default=0.0) / 60.0 for g in good])
    return recorded, best, recorded > 0


def summarize_sessions(
    cramps: Iterable[CrampRecord],
    sessions: Iterable[SessionRecord],
    spans: Sequence[SessionSpan],
    *,
    min_good_share: float = 0.75,
) -> list[SessionSummary]:
    """One summary per named session in `spans` (in their order), from the `ended` events
    (de-duplicated by event_id) and the recordings. A session nothing recorded has no data:
    `has_recording` False, never a session without cramps."""
    events = list(cramps)
    n = len(spans)
    start = _timestamps(e.start for e in events)
    end = _timestamps(e.end for e in events)
    peak = np.fromiter((e.peak_uv for e in events), dtype=float, count=len(events))
    which = span_index(start, spans)
    is_cramp = np.array([e.kind == "cramp" for e in events], dtype=bool)
    assigned = which >= 0
    cramp_events = _Events.of(np.flatnonzero(assigned & is_cramp), which, start, end, peak)
    figures = _PerNight.of(cramp_events, 0, n)
    movements = _PerNight.of(_Events.of(np.flatnonzero(assigned & ~is_cramp), which, start, end,
                                        peak), 0, n)  # fmt: skip
    first_of, _ = cramp_events.episodes()
    onsets: list[list[float]] = [[] for _ in spans]
    for i, t in zip(cramp_events.night[first_of].tolist(), cramp_events.start[first_of].tolist(),
                    strict=True):  # fmt: skip
        onsets[i].append((t - spans[i].origin.timestamp()) / 60.0)
    recorded, good, has = _span_signal(list(sessions), spans)
    out = []
    for i, span in enumerate(spans):
        row = int(figures.first_row[i])
        strongest = float(figures.strongest[i])
        first = events[row].start if row >= 0 else None
        length = (span.end - span.start).total_seconds() / 60.0
        out.append(SessionSummary(
            session_id=span.session_id, kind=span.kind, start=span.start, end=span.end,
            origin=span.origin, cramps=int(figures.count[i]),
            cramp_minutes=float(figures.minutes[i]),
            strongest_uv=strongest if math.isfinite(strongest) else None,
            first_cramp=first,
            first_cramp_min=(first - span.origin).total_seconds() / 60.0 if first else None,
            movements=int(movements.count[i]), recorded_minutes=float(recorded[i]),
            good_minutes=float(good[i]), has_recording=bool(has[i]),
            complete=bool(has[i] and good[i] >= min_good_share * length),
            cramp_minutes_in=tuple(onsets[i]),
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------------
# Intake


def daily_totals(entries: Iterable[IntakeRecord], tz: tzinfo) -> dict[date, dict[str, float]]:
    """Intake per local calendar day and factor, in canonical units; only days with entries appear."""
    entries = list(entries)
    return daily_totals_of(
        _timestamps(e.time for e in entries),
        [e.factor for e in entries],
        np.fromiter((e.amount for e in entries), dtype=float, count=len(entries)),
        tz,
    )


def daily_totals_of(
    timestamps: np.ndarray, factors: Sequence[str], amounts: np.ndarray, tz: tzinfo
) -> dict[date, dict[str, float]]:
    """`daily_totals` from columns: POSIX seconds, factor names, canonical amounts."""
    codes: dict[str, int] = {}
    factor = np.array([codes.setdefault(f, len(codes)) for f in factors], dtype=np.int64)
    amount = np.asarray(amounts, dtype=float)
    local = local_seconds(np.asarray(timestamps, dtype=float), tz)
    day = np.floor_divide(local, DAY_S).astype(np.int64) + EPOCH_ORDINAL
    keys, which = np.unique(day * max(len(codes), 1) + factor, return_inverse=True)
    sums = np.bincount(which, weights=amount, minlength=keys.size)  # adds in input order
    names = list(codes)
    totals: dict[date, dict[str, float]] = {}
    for key, total in zip(keys.tolist(), sums.tolist(), strict=True):
        ordinal, code = divmod(key, max(len(codes), 1))
        totals.setdefault(date.fromordinal(ordinal), {})[names[code]] = total
    return totals


def factor_kinds_of(entries: Iterable[IntakeRecord]) -> dict[str, str]:
    """Each logged factor's kind ('amount' or 'event'), as the entries give it (the last one wins)."""
    return {entry.factor: entry.kind for entry in entries}


# ---------------------------------------------------------------------------------------------------
# Statistics


def _bh(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q), in the input order."""
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    scaled = p_values[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty(m)
    q[order] = q_sorted
    return q


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q values: scipy's `false_discovery_control` if present, else our own."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p.copy()
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    control = getattr(stats, "false_discovery_control", None)
    if control is None:
        return _bh(p)
    return np.asarray(control(p, method="bh"), dtype=float)


@dataclass(frozen=True, slots=True)
class FactorInsight(_ToDict):
    """One factor at one lag. `status` 'ok' carries numbers; 'too_few'/'no_variation' carry None.

    `high_*` are the higher-intake days (or days the 'event' factor was taken), `low_*` the others;
    `difference` is high_mean - low_mean in cramps per night; `split` says where the line was drawn.
    """

    factor: str
    kind: str
    lag: int
    nights: int
    needed: int
    status: str
    message: str
    unit: str = ""
    rho: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    threshold: float | None = None
    split: str | None = None
    high_mean: float | None = None
    low_mean: float | None = None
    high_nights: int | None = None
    low_nights: int | None = None
    difference: float | None = None


@dataclass(frozen=True, slots=True)
class Insights(_ToDict):
    """All factor-lag results, the caveats to show with them, and the doctor-visit notice if any."""

    results: tuple[FactorInsight, ...]
    caveats: tuple[str, ...]
    notice: str | None
    nights_used: int
    nights_incomplete_left_out: int
    nights_without_data: int


def _fmt_amount(value: float) -> str:
    """An intake amount for a sentence: no needless decimals."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def with_unit(value: float, unit: str) -> str:
    return f"{_fmt_amount(value)} {unit}".strip()


def _label(factor: str) -> str:
    return factor.replace("_", " ")


def _when(lag: int, days_with: str) -> str:
    """'On days with X' moved by the lag: the night counted is always the one starting that evening."""
    if lag == 0:
        return f"On {days_with}"
    one = days_with.replace("days", "a day", 1)
    if abs(lag) == 1:
        return f"The day {'after' if lag > 0 else 'before'} {one}"
    return f"{abs(lag)} days {'after' if lag > 0 else 'before'} {one}"


def split_higher(x: np.ndarray, kind: str, unit: str) -> tuple[np.ndarray, float | None, str]:
    """The 'higher' mask, the median threshold (amount factors) and a phrase for it."""
    if kind == "event":
        return x > 0, None, "taken"
    median = float(np.median(x))
    high = x > median
    if high.any():
        return high, median, f"above {with_unit(median, unit)}"
    return x >= median, median, f"{with_unit(median, unit)} or more"


def _untestable(
    factor: str, kind: str, lag: int, x: np.ndarray, y: np.ndarray, needed: int, unit: str
) -> FactorInsight | None:
    """The result without numbers when there are too few nights or no variation, else None."""
    n = int(x.size)
    base = {"factor": factor, "kind": kind, "lag": lag, "nights": n, "needed": needed, "unit": unit}
    if n < needed:
        message = f"not enough nights yet ({n} of {needed} needed)"
        return FactorInsight(**base, status=STATUS_TOO_FEW, message=message)
    taken = x > 0
    if kind == "event" and (taken.all() or not taken.any()):
        which = "all" if taken.all() else "none"
        message = f"no variation: {_label(factor)} was logged on {which} of the {n} days"
        return FactorInsight(**base, status=STATUS_NO_VARIATION, message=message)
    if kind == "amount" and np.ptp(x) == 0:
        message = f"no variation: {_label(factor)} was {with_unit(x[0], unit)} on all {n} days"
        return FactorInsight(**base, status=STATUS_NO_VARIATION, message=message)
    if np.ptp(y) == 0:
        message = f"no variation: {y[0]:.0f} cramps on each of the {n} nights"
        return FactorInsight(**base, status=STATUS_NO_VARIATION, message=message)
    return None


def _tested(
    factor: str,
    kind: str,
    lag: int,
    x: np.ndarray,
    y: np.ndarray,
    needed: int,
    unit: str,
    rho: float,
    p_value: float,
) -> FactorInsight:
    """The result with numbers, without q (filled in once every p-value is known)."""
    high, threshold, split = split_higher(x, kind, unit)
    high_mean, low_mean = float(y[high].mean()), float(y[~high].mean())
    return FactorInsight(
        factor=factor,
        kind=kind,
        lag=lag,
        nights=int(x.size),
        needed=needed,
        status=STATUS_OK,
        message="",
        unit=unit,
        rho=rho,
        p_value=p_value,
        threshold=threshold,
        split=split,
        high_mean=high_mean,
        low_mean=low_mean,
        high_nights=int(high.sum()),
        low_nights=int((~high).sum()),
        difference=high_mean - low_mean,
    )


def spearman_columns(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho and p-value of `y` against each column of `x`: one scipy.stats.spearmanr call."""
    if x.shape[1] == 0:
        return np.empty(0), np.empty(0)
    result = stats.spearmanr(np.column_stack([y, x]))
    rho, p = np.atleast_2d(result.statistic), np.atleast_2d(result.pvalue)
    if x.shape[1] == 1:  # scipy returns scalars for two variables
        return np.array([rho[0, 0]]), np.array([p[0, 0]])
    return rho[0, 1:], p[0, 1:]


def _lag_results(
    factors: Sequence[str],
    kinds: Mapping[str, str],
    units: Mapping[str, str],
    lag: int,
    x: np.ndarray,
    y: np.ndarray,
    needed: int,
) -> dict[str, FactorInsight]:
    """Every factor's result at one lag; the testable ones share one spearmanr call."""
    out: dict[str, FactorInsight] = {}
    args = {
        f: (f, kinds[f], lag, x[:, j], y, needed, units.get(f, "")) for j, f in enumerate(factors)
    }
    for factor in factors:
        result = _untestable(*args[factor])
        if result is not None:
            out[factor] = result
    testable = [j for j, f in enumerate(factors) if f not in out]
    rho, p = spearman_columns(y, x[:, testable])
    for j, r, pv in zip(testable, rho.tolist(), p.tolist(), strict=True):
        out[factors[j]] = _tested(*args[factors[j]], rho=r, p_value=pv)
    return out


def link_strength(rho: float) -> str:
    size = abs(rho)
    if size < 0.1:
        return "Hardly any link"
    if size < 0.3:
        return "Weak link"
    if size < 0.5:
        return "Moderate link"
    return "Strong link"


def evidence_words(q: float) -> str:
    if q < 0.01:
        return "very unlikely to be chance alone, though that does not make it the cause"
    if q < 0.05:
        return "unlikely to be chance alone, though that does not make it the cause"
    if q < 0.2:
        return "could still be chance"
    return "could be chance"


def format_q(q: float) -> str:
    return "q < 0.001" if q < 0.001 else f"q = {q:.2f}"


def sentence(result: FactorInsight) -> str:
    """The plain-language sentence for an 'ok' result with its q value."""
    assert result.difference is not None and result.rho is not None and result.q_value is not None
    label = _label(result.factor)
    if result.kind == "event":
        days_with = f"days with {label}"
        counts = f"{result.high_nights} nights with vs {result.low_nights} without"
    else:
        days_with = f"days with more {label} ({result.split})"
        counts = f"{result.high_nights} vs {result.low_nights} nights"
    high, low = f"{result.high_mean:.1f}", f"{result.low_mean:.1f}"
    change = float(high) - float(low)  # as shown, so the sentence adds up
    if abs(change) < 0.05:
        what = "about as many cramps"
    else:
        what = f"{abs(change):.1f} {'more' if change > 0 else 'fewer'} cramps"
    return (
        f"{_when(result.lag, days_with)}, you had {what} that night "
        f"({high} vs {low} per night; {counts}). "
        f"{link_strength(result.rho)} (rank correlation {result.rho:.2f}, {format_q(result.q_value)}): "
        f"{evidence_words(result.q_value)}."
    )


def _with_q(results: list[FactorInsight]) -> list[FactorInsight]:
    """Fill in Benjamini-Hochberg q across every result with a p-value, and the sentences."""
    tested = [i for i, r in enumerate(results) if r.p_value is not None]
    q = bh_adjust([results[i].p_value for i in tested])  # type: ignore[misc]
    out = list(results)
    for i, q_value in zip(tested, q, strict=True):
        adjusted = replace(results[i], q_value=float(q_value))
        out[i] = replace(adjusted, message=sentence(adjusted))
    return out


def _usable(nights: Sequence[NightSummary], include_incomplete: bool) -> dict[date, int]:
    """Cramps per night for the nights that go into statistics."""
    return {n.night: n.cramps for n in nights if n.has_data and (n.complete or include_incomplete)}


def _pairs(
    usable: Mapping[date, int], days: Sequence[date], lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indexes of the days whose night `lag` later is usable, and those nights' cramps."""
    step = timedelta(days=lag)
    rows = [i for i, d in enumerate(days) if d + step in usable]
    cramps = [usable[days[i] + step] for i in rows]
    return np.array(rows, dtype=np.int64), np.array(cramps, dtype=float)


def _intake_matrix(
    totals: Mapping[date, Mapping[str, float]], days: Sequence[date], factors: Sequence[str]
) -> np.ndarray:
    """Days x factors; 0 where a day has entries but none for the factor."""
    x = np.array([[totals[d].get(f, 0.0) for f in factors] for d in days], dtype=float)
    return x.reshape(len(days), len(factors))


def paired_days(
    nights: Sequence[NightSummary],
    totals: Mapping[date, Mapping[str, float]],
    factor: str,
    lag: int,
    *,
    include_incomplete: bool = False,
) -> list[tuple[date, float, int]]:
    """(day, intake of `factor` that day, cramps in the night `lag` later): exactly the pairs
    `insights` uses for this factor and lag (a day with other intake logged counts as 0)."""
    return paired_days_by_factor(nights, totals, [factor], lag,
                                 include_incomplete=include_incomplete)[factor]  # fmt: skip


def paired_days_by_factor(
    nights: Sequence[NightSummary],
    totals: Mapping[date, Mapping[str, float]],
    factors: Sequence[str],
    lag: int,
    *,
    include_incomplete: bool = False,
) -> dict[str, list[tuple[date, float, int]]]:
    """`paired_days` for several factors at once (one intake matrix)."""
    usable = _usable(nights, include_incomplete)
    days = sorted(totals)
    intake = _intake_matrix(totals, days, list(factors))
    rows, cramps = _pairs(usable, days, lag)
    paired_days_ = [days[i] for i in rows.tolist()]
    counts = cramps.astype(int).tolist()
    return {
        factor: list(zip(paired_days_, intake[rows, j].tolist(), counts, strict=True))
        for j, factor in enumerate(factors)
    }


def _kinds(
    totals: Mapping[date, Mapping[str, float]], factor_kinds: Mapping[str, str]
) -> dict[str, str]:
    """The given factors' kinds, then any other logged factor (sorted) as 'amount'."""
    logged: set[str] = set().union(*totals.values())
    kinds = {**factor_kinds, **dict.fromkeys(sorted(logged - factor_kinds.keys()), "amount")}
    for factor, kind in kinds.items():
        if kind not in FACTOR_KINDS:
            raise ValueError(f"factor {factor!r}: kind must be one of {FACTOR_KINDS}, got {kind!r}")
    return kinds


def insights(
    nights: Sequence[NightSummary],
    totals: Mapping[date, Mapping[str, float]],
    factor_kinds: Mapping[str, str],
    *,
    lags: Sequence[int] = (0, 1),
    min_nights: int = 10,
    include_incomplete: bool = False,
    units: Mapping[str, str] | None = None,
) -> Insights:
    """Per factor (those in `factor_kinds`, then any other logged factor as 'amount') and lag:
    the nights behind it, rank correlation, high/low difference, BH q and a sentence.
    """
    kinds = _kinds(totals, factor_kinds)
    factors = list(kinds)
    units = units or {}
    usable = _usable(nights, include_incomplete)
    days = sorted(totals)
    intake = _intake_matrix(totals, days, factors)
    per_lag = {}
    for lag in lags:
        rows, y = _pairs(usable, days, lag)
        per_lag[lag] = _lag_results(factors, kinds, units, lag, intake[rows], y, min_nights)
    results = [per_lag[lag][f] for f in factors for lag in lags]
    with_data = [n for n in nights if n.has_data]
    return Insights(
        results=tuple(_with_q(results)),
        caveats=CAVEATS,
        notice=frequent_cramps_notice(nights),
        nights_used=len(usable),
        nights_incomplete_left_out=len(with_data) - len(usable),
        nights_without_data=len(nights) - len(with_data),
    )


# ---------------------------------------------------------------------------------------------------
# Doctor-visit notice


def _fmt_day(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def frequent_cramps_notice(nights: Iterable[NightSummary]) -> str | None:
    """A doctor-visit notice when 3+ of any 7 consecutive nights had cramps, naming the latest such week."""
    ords = np.array(sorted({n.night.toordinal() for n in nights if n.cramps > 0}), dtype=np.int64)
    k = NOTICE_CRAMP_NIGHTS
    if ords.size < k:
        return None
    spans = ords[k - 1 :] - ords[: ords.size - k + 1]
    hits = np.flatnonzero(spans <= NOTICE_WINDOW_NIGHTS - 1)
    if hits.size == 0:
        return None
    end = int(ords[hits[-1] + k - 1])
    start = end - (NOTICE_WINDOW_NIGHTS - 1)
    count = int(np.count_nonzero((ords >= start) & (ords <= end)))
    return (
        f"You had cramps on {count} of the {NOTICE_WINDOW_NIGHTS} nights from "
        f"{_fmt_day(date.fromordinal(start))} to {_fmt_day(date.fromordinal(end))}. "
        "Three or more nights with cramps in a week is the point where a doctor visit is advised: "
        "please see your doctor about your cramps, and bring this record."
    )
