"""``python -m benchmarks.dashboard_pages``: response times of the dashboard's pages on a year of data.

A year of one device's data (365 nights, each with a session state message, some incomplete;
5,000 intake entries of a dozen factors; 2,000 cramp and movement events with their envelope
traces, cramps also `started`; marker presses and signal problems; three dialysis sessions a
week recorded as dialysis sessions, with their cramps, details and blood pressure readings, and
monthly lab results) goes in through the real paths: `Ingest.handle` for device messages and
MQTT intake and session details, `IntakeLog.add` and `DialysisLog` for the form, API and command
line. The SQLite file is built once and cached (``$CRAMPWATCH_BENCH_CACHE``, else
``<tmp>/crampwatch-bench``) while the data spec and the storing code stay the same; each run works
on a copy.

The dashboard (`dashboards.server.build` + `serve`: uvicorn, as `crampwatch dashboard` runs it)
serves the copy from its own process on a loopback port and httpx (one keep-alive connection)
times each page, body included: the first request to a freshly started server (cold, one server
per page), then rounds of every page in turn on one warm server (median, p95, max).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import importlib.metadata
import json
import os
import platform
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import httpx
import numpy as np

from dsp import __version__
from dsp.config import PipelineConfig
from dsp.events import iso_utc, stable_event_id

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_JSON = HERE / "results" / "dashboard.json"
CACHE_ENV = "CRAMPWATCH_BENCH_CACHE"
DATA_VERSION = 3  # bump when the generated data changes
STORING_CODE = ("store.py", "ingest.py", "intake.py", "intake_log.py", "catalogue.py",
                "dialysis.py", "dialysis_log.py", "named_sessions.py")  # fmt: skip
TARGET_MS = 100.0  # p95 of every page and API call
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0  # httpx's default 5 s would cut a slow page short
MQTT_PERSON = "alice"


# -- the year of data --------------------------------------------------------------------------


@dataclass(frozen=True)
class YearSpec:
    """What the cached database holds; every message follows from it."""

    first_night: str = "2025-11-01"
    nights: int = 365
    intake: int = 5000
    events: int = 2000
    cramp_share: float = 0.25  # of the events; the rest are movements
    incomplete_share: float = 0.1  # nights with a short recording or poor signal
    no_intake_share: float = 0.04  # days with nothing logged
    seed: int = 2025
    tz: str = "Europe/Berlin"
    device: str = "bed"
    channels: tuple[str, ...] = ("left_calf", "right_calf")
    dialysis_days: tuple[int, ...] = (0, 2, 4)  # Monday, Wednesday, Friday, 07:30-11:30
    session_events: int = 400  # in the dialysis sessions, besides `events`

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> date:
        return date.fromisoformat(self.first_night)

    def key(self) -> str:
        """A hash of the spec, the data version, and the code that validates and stores it."""
        digest = hashlib.sha256(json.dumps([asdict(self), DATA_VERSION]).encode())
        for name in STORING_CODE:
            digest.update((REPO_ROOT / "dashboards" / name).read_bytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Session:
    """One night's recording session."""

    night: date
    start: datetime  # aware, UTC
    recorded_s: float
    good_s: dict[str, float]


@dataclass(order=True)
class Message:
    """One message to feed in, in time order: a device topic, or intake (`topic` None)."""

    at: datetime
    order: int
    topic: str | None = field(compare=False)
    payload: Any = field(compare=False)
    source: str = field(default="mqtt", compare=False)


class IntakeFactor(NamedTuple):
    """A factor to log: its share of the entries, local hours (from, to), amount spellings."""

    name: str
    share: float
    hours: tuple[float, float]
    spellings: tuple[tuple[Any, str | None], ...]  # (amount, unit), either may be None


INTAKE_FACTORS = (
    IntakeFactor("water", 0.33, (6.5, 23.0), ((250, "mL"), ("0.5 L", None), ("1 cup", None), (330, "mL"))),
    IntakeFactor("caffeine", 0.14, (7.0, 16.0), ((95, "mg"), (63, "mg"), ("47 mg", None), (190, "mg"))),
    IntakeFactor("magnesium", 0.08, (20.0, 23.0), ((200, "mg"), (400, "mg"), ("0.3 g", None), (250, "mg"))),
    IntakeFactor("potassium", 0.08, (7.0, 21.0), ((420, "mg"), (99, "mg"), ("0.8 g", None))),
    IntakeFactor("exercise", 0.08, (9.0, 20.0), ((30, "min"), ("1 h", None), (45, "min"), (15, "min"))),
    IntakeFactor("alcohol", 0.06, (18.0, 23.5), (("1 drink", None), ("2 drinks", None), (14, "g"))),
    IntakeFactor("sodium", 0.06, (7.0, 21.0), ((390, "mg"), (800, "mg"), ("1.2 g", None))),
    IntakeFactor("calcium", 0.05, (7.0, 21.0), ((300, "mg"), (500, "mg"))),
    IntakeFactor("medication", 0.03, (7.0, 9.0), ((1, "dose"), (None, None))),
    IntakeFactor("diuretic", 0.03, (7.0, 9.0), ((20, "mg"), (40, "mg"))),
    IntakeFactor("dialysis", 0.03, (8.0, 14.0), ((2500, "mL"), (None, None), ("1.8 L", None))),
    IntakeFactor("pickle juice", 0.03, (20.0, 23.0), ((60, "mL"), (30, "mL"))),  # custom
)  # fmt: skip
INTAKE_SOURCES = ("form", "api", "cli", "mqtt")
INTAKE_SOURCE_SHARES = (0.4, 0.25, 0.1, 0.25)


def pipeline_block(spec: YearSpec) -> dict[str, Any]:
    """The event's `pipeline` block as the device sends it, from the default settings."""
    config = PipelineConfig(fs=1000.0, channels=spec.channels, device=spec.device)
    return {
        "software": f"crampwatch {__version__}",
        "settings_hash": config.settings_hash(),
        "settings": config.settings(),
    }


def plan_sessions(spec: YearSpec, rng: np.random.Generator) -> list[Session]:
    """One session a night, started 21:00-23:30 local; some short, some with poor signal."""
    sessions = []
    for i in range(spec.nights):
        night = spec.start + timedelta(days=i)
        local = datetime(night.year, night.month, night.day, 21, 0, tzinfo=spec.zone)
        start = (local + timedelta(minutes=float(rng.uniform(0, 150)))).astimezone(UTC)
        recorded = float(rng.uniform(6.5, 8.8)) * 3600
        good = {c: recorded - float(rng.uniform(0, 900)) for c in spec.channels}
        if rng.random() < spec.incomplete_share:
            if rng.random() < 0.5:  # woke and took it off
                recorded = float(rng.uniform(1.0, 3.8)) * 3600
                good = {c: recorded - float(rng.uniform(0, 300)) for c in spec.channels}
            else:  # an electrode came off for most of the night
                good = {c: float(rng.uniform(1.0, 3.5)) * 3600 for c in spec.channels}
        good = {c: round(max(0.0, v), 3) for c, v in good.items()}
        sessions.append(Session(night, start, round(recorded, 3), good))
    return sessions


def _local_time(
    day: date, hours: tuple[float, float], spec: YearSpec, rng: np.random.Generator
) -> datetime:
    """A random local moment within `hours` of `day`, to the millisecond."""
    seconds = float(rng.uniform(hours[0], hours[1])) * 3600
    moment = datetime(day.year, day.month, day.day, tzinfo=spec.zone) + timedelta(seconds=seconds)
    return moment.replace(microsecond=int(rng.integers(0, 1000)) * 1000)


def _intake_payload(
    factor: str, moment: datetime, amount: Any, unit: str | None, source: str
) -> dict[str, Any]:
    """An intake payload as its source sends it (MQTT with an offset, the others local time)."""
    payload: dict[str, Any] = {"factor": factor}
    if source == "mqtt":
        payload |= {"schema": "crampwatch.intake/1", "time": moment.isoformat()}
    else:
        payload["time"] = moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
    if amount is not None:
        payload["amount"] = amount
    if unit is not None:
        payload["unit"] = unit
    return payload


def plan_intake(spec: YearSpec, rng: np.random.Generator) -> list[Message]:
    """`spec.intake` entries over the year's days (a few days with nothing logged)."""
    days = [spec.start + timedelta(days=i) for i in range(spec.nights)]
    logged = [d for d in days if rng.random() >= spec.no_intake_share]
    shares = np.array([f.share for f in INTAKE_FACTORS])
    factors = rng.choice(len(INTAKE_FACTORS), size=spec.intake, p=shares / shares.sum())
    sources = rng.choice(len(INTAKE_SOURCES), size=spec.intake, p=INTAKE_SOURCE_SHARES)
    messages = []
    for n, (f, s) in enumerate(zip(factors.tolist(), sources.tolist(), strict=True)):
        name, _, hours, spellings = INTAKE_FACTORS[f]
        moment = _local_time(logged[int(rng.integers(len(logged)))], hours, spec, rng)
        amount, unit = spellings[int(rng.integers(len(spellings)))]
        source = INTAKE_SOURCES[s]
        payload = _intake_payload(name, moment, amount, unit, source)
        if rng.random() < 0.05:
            payload["note"] = "after a long walk" if name != "alcohol" else "<b>wedding</b>"
        topic = f"crampwatch/{MQTT_PERSON}/intake" if source == "mqtt" else None
        messages.append(Message(moment.astimezone(UTC), n, topic, payload, source))
    return messages


def envelope_trace(
    start_s: float, span_s: float, peak: float, floor: float, rng: np.random.Generator
) -> dict[str, Any]:
    """An envelope from 10 s before onset to 2 s after the end, at most 600 points."""
    t0, length = start_s - 10.0, span_s + 12.0
    dt = max(0.02, length / 600)
    n = min(600, int(length / dt) + 1)
    t = t0 + dt * np.arange(n)
    rise = np.clip(np.minimum(t - start_s, start_s + span_s - t) / 2.0, 0.0, 1.0)
    uv = floor * (1 + 0.3 * rng.random(n)) + peak * rise * (0.7 + 0.3 * rng.random(n))
    return {"t0_s": round(t0, 3), "dt_s": round(dt, 4), "uv": [round(v, 3) for v in uv.tolist()]}


def event_payload(
    spec: YearSpec,
    session: Session,
    kind: str,
    start_s: float,
    duration_s: float,
    rng: np.random.Generator,
    pipeline: dict[str, Any],
) -> dict[str, Any]:
    """An `ended` event message with every field the device sends."""
    channel = spec.channels[int(rng.integers(len(spec.channels)))]
    peak = float(rng.uniform(80, 400) if kind == "cramp" else rng.uniform(20, 150))
    floor = float(rng.uniform(1.5, 4.0))
    end_s = start_s + duration_s
    return {
        "schema": "crampwatch.event/1",
        "event_id": stable_event_id(spec.device, channel, iso_utc(session.start), start_s, "bench"),
        "device": spec.device, "channel": channel, "kind": kind, "phase": "ended",
        "start": iso_utc(session.start + timedelta(seconds=start_s)),
        "end": iso_utc(session.start + timedelta(seconds=end_s)),
        "start_s": round(start_s, 3), "end_s": round(end_s, 3), "duration_s": round(duration_s, 3),
        "peak_uv": round(peak, 3), "mean_uv": round(peak * 0.6, 3), "floor_uv": round(floor, 3),
        "area_uvs": round(peak * 0.6 * duration_s, 3),
        "median_freq_hz": round(float(rng.uniform(60, 110)), 2), "quality": "good",
        "envelope": envelope_trace(start_s, duration_s, peak, floor, rng),
        "pipeline": pipeline,
    }  # fmt: skip


def started_payload(ended: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """The cramp's `started` message, 10 s into it: no end yet, the envelope so far."""
    start_s = ended["start_s"]
    trace = envelope_trace(start_s, 10.0, ended["peak_uv"], ended["floor_uv"], rng)
    return {**ended, "phase": "started", "end": None, "end_s": None, "duration_s": 10.0,
            "envelope": trace}  # fmt: skip


class Counter:
    """Message numbers, so that messages at the same moment keep their planned order."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        self.value += 1
        return self.value


def _device_message(
    spec: YearSpec, at: datetime, leaf: str, payload: dict[str, Any], number: int
) -> Message:
    return Message(at, number, f"crampwatch/{spec.device}/{leaf}", payload)


def _event_night_weights(spec: YearSpec) -> np.ndarray:
    """Cramps come in seasons: more in summer, fewer in winter."""
    i = np.arange(spec.nights)
    weights = 1.0 + 0.7 * np.sin(2 * np.pi * (i - 150) / 365.0)
    return weights / weights.sum()


def plan_events(
    spec: YearSpec, sessions: list[Session], rng: np.random.Generator, number: Counter
) -> tuple[list[Message], list[int]]:
    """Events (cramps `started` and `ended`, movements `ended`) and marker presses; cramps a night."""
    pipeline = pipeline_block(spec)
    n_cramps = round(spec.events * spec.cramp_share)
    cramp_nights = rng.choice(spec.nights, size=n_cramps, p=_event_night_weights(spec))
    movement_nights = rng.integers(0, spec.nights, size=spec.events - n_cramps)
    cramps = [0] * spec.nights
    messages = []
    planned = [("cramp", int(n)) for n in cramp_nights] + [
        ("movement", int(n)) for n in movement_nights
    ]
    for kind, night in planned:
        session = sessions[night]
        duration = (
            float(min(600.0, 10.0 + rng.exponential(60.0)))
            if kind == "cramp"
            else float(rng.uniform(0.5, 10.0))
        )
        start_s = float(rng.uniform(300.0, max(301.0, session.recorded_s - duration - 30.0)))
        ended = event_payload(spec, session, kind, start_s, duration, rng, pipeline)
        onset = session.start + timedelta(seconds=start_s)
        if kind == "cramp":
            cramps[night] += 1
            at = onset + timedelta(seconds=10)
            messages.append(
                _device_message(spec, at, "event", started_payload(ended, rng), number())
            )
            if rng.random() < 0.6:
                after = float(rng.uniform(15, 90))  # woken by it, pressed the button
                press = onset + timedelta(seconds=after)
                marker = {"schema": "crampwatch.marker/1", "device": spec.device,
                          "at": iso_utc(press), "at_s": round(start_s + after, 3),
                          "source": "button"}  # fmt: skip
                messages.append(_device_message(spec, press, "marker", marker, number()))
        end = onset + timedelta(seconds=duration)
        messages.append(_device_message(spec, end, "event", ended, number()))
    return messages, cramps


def state_payload(spec: YearSpec, session: Session, cramps: int) -> dict[str, Any]:
    """The session's last state message: recorded and good seconds, cramps that night."""
    since = iso_utc(session.start)
    channels = {c: {"state": "idle", "since": since, "since_s": 0.0, "good_s": session.good_s[c]}
                for c in spec.channels}  # fmt: skip
    return {"schema": "crampwatch.state/1", "device": spec.device, "session_start": since,
            "recorded_s": session.recorded_s, "cramps_tonight": cramps, "channels": channels}  # fmt: skip


def quality_payloads(spec: YearSpec, session: Session) -> list[tuple[datetime, dict[str, Any]]]:
    """An electrode off at the end of each channel's good signal, when it came off early."""
    out = []
    for channel, good in session.good_s.items():
        if good >= session.recorded_s - 1200:
            continue
        for at_s, problems in ((good, ["electrode_off"]), (session.recorded_s, [])):
            at = session.start + timedelta(seconds=at_s)
            out.append((at, {"schema": "crampwatch.quality/1", "device": spec.device,
                             "channel": channel, "at": iso_utc(at), "at_s": round(at_s, 3),
                             "good": not problems, "problems": problems}))  # fmt: skip
    return out


def plan_dialysis(
    spec: YearSpec, rng: np.random.Generator, number: Counter
) -> tuple[list[Message], list[str]]:
    """Three dialysis sessions a week: each recorded as a dialysis session (its events carry
    the session, its last state too), its details (half over MQTT, half through the API) and,
    once a month, lab results; returns the messages and the session ids."""
    pipeline = pipeline_block(spec)
    messages: list[Message] = []
    ids: list[str] = []
    days = [spec.start + timedelta(days=i) for i in range(spec.nights)]
    days = [d for d in days if d.weekday() in spec.dialysis_days]
    post = 70.0
    for n, day in enumerate(days):
        local = datetime(day.year, day.month, day.day, 7, 30, tzinfo=spec.zone)
        start = local.astimezone(UTC)
        session_id = f"dialysis-{start:%Y%m%dT%H%M%SZ}"
        ids.append(session_id)
        tag = {"session_kind": "dialysis", "session_id": session_id}
        recorded = 4 * 3600.0
        good = {c: recorded - float(rng.uniform(0, 600)) for c in spec.channels}
        session = Session(day, start, recorded, good)
        gain = float(np.clip(rng.normal(2.2, 0.8), 0.5, 4.5))
        pre, post = round(post + gain, 1), round(70.0 + float(rng.normal(0, 0.3)), 1)
        uf = round((pre - post) * 1000 + 200, -1)
        for _ in range(rng.poisson(spec.session_events / len(days))):
            kind = "cramp" if rng.random() < 0.4 else "movement"
            duration = float(min(600.0, 10.0 + rng.exponential(40.0))) if kind == "cramp" else (
                float(rng.uniform(0.5, 10.0)))  # fmt: skip
            start_s = float(rng.uniform(300.0, recorded - duration - 60.0))
            ended = {**event_payload(spec, session, kind, start_s, duration, rng, pipeline), **tag}
            end = start + timedelta(seconds=start_s + duration)
            messages.append(_device_message(spec, end, "event", ended, number()))
        state = {**state_payload(spec, session, 0), **tag, "cramps_session": 0}
        messages.append(_device_message(spec, start + timedelta(seconds=recorded), "state", state,
                                        number()))  # fmt: skip
        readings = [{"time": (local + timedelta(minutes=m)).isoformat(),
                     "systolic": round(145 - 6 * gain * m / 240 + float(rng.normal(0, 5))),
                     "diastolic": round(80 - 3 * gain * m / 240 + float(rng.normal(0, 3))),
                     "uf_removed_ml": round(uf * m / 240, -1)} for m in range(0, 241, 30)]  # fmt: skip
        details = {"schema": "crampwatch.session/1", "session_id": session_id,
                   "start": local.isoformat(), "end": (local + timedelta(hours=4)).isoformat(),
                   "pre_weight_kg": pre, "post_weight_kg": post, "uf_volume_ml": uf,
                   "dialysate_sodium_mmol_l": float(rng.choice([136, 138, 140])),
                   "blood_pressure": readings, "ended_early": bool(rng.random() < 0.05)}  # fmt: skip
        done = local + timedelta(hours=5)
        if n % 2:
            messages.append(Message(done, number(), f"crampwatch/{MQTT_PERSON}/session", details))
        else:
            messages.append(Message(done, number(), None, details, "details"))
        if n % 13 == 0:
            for analyte, value in (("calcium", f"{rng.uniform(2.0, 2.5):.2f} mmol/L"),
                                   ("phosphorus", f"{rng.uniform(3.5, 6.5):.1f} mg/dL"),
                                   ("potassium", f"{rng.uniform(4.0, 6.0):.1f} mmol/L"),
                                   ("magnesium", f"{rng.uniform(0.7, 1.1):.2f} mmol/L")):  # fmt: skip
                lab = {"analyte": analyte, "value": value, "time": local.isoformat()}
                messages.append(Message(local, number(), None, lab, "lab"))
    return messages, ids


def plan_messages(spec: YearSpec) -> tuple[list[Message], dict[str, Any]]:
    """Every message of the year in time order, and what they add up to."""
    rng = np.random.default_rng(spec.seed)
    number = Counter()
    sessions = plan_sessions(spec, rng)
    messages, cramps = plan_events(spec, sessions, rng, number)
    for session, count in zip(sessions, cramps, strict=True):
        end = session.start + timedelta(seconds=session.recorded_s)
        for at, quality in quality_payloads(spec, session):
            messages.append(_device_message(spec, at, "quality", quality, number()))
        messages.append(
            _device_message(spec, end, "state", state_payload(spec, session, count), number())
        )
    messages += plan_intake(spec, rng)
    dialysis, session_ids = plan_dialysis(spec, np.random.default_rng(spec.seed + 1), number)
    messages += dialysis
    messages.sort()
    busiest = max(range(spec.nights), key=lambda i: (cramps[i], -i))
    incomplete = sum(max(s.good_s.values()) < 240 * 60 for s in sessions)
    summary = {
        "busiest_night": sessions[busiest].night.isoformat(),
        "busiest_night_cramps": cramps[busiest],
        "incomplete_nights_planned": incomplete,
        "cramp_nights_planned": sum(c > 0 for c in cramps),
        "dialysis_sessions": len(session_ids),
        "a_session": session_ids[len(session_ids) // 2],
    }
    return messages, summary


# -- building and caching the database ---------------------------------------------------------


def feed(process: Any, message: Message) -> None:
    """One message through the real path; an error if it was refused."""
    if message.topic is not None:
        if not process.ingest.handle(message.topic, json.dumps(message.payload).encode()):
            raise RuntimeError(f"ingest refused a message on {message.topic}: {message.payload}")
        return
    if message.source == "details":
        process.sessions.log(message.payload, "api")
        return
    if message.source == "lab":
        process.sessions.add_lab(message.payload, "api")
        return
    _, new = process.intake.add(message.payload, message.source)
    if not new:
        raise RuntimeError(f"intake entry stored twice: {message.payload}")


def table_counts(store: Any) -> dict[str, int]:
    """Rows per table, and what ingest counted."""
    tables = ("session", "event", "intake", "marker", "quality", "custom_factor", "refusal",
              "named_session", "lab_result")  # fmt: skip
    counts = {t: int(store.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in tables}
    counts["event_ended"] = int(
        store.query("SELECT COUNT(*) FROM event WHERE phase = 'ended'")[0][0]
    )
    counts["cramps_ended"] = int(
        store.query("SELECT COUNT(*) FROM event WHERE phase = 'ended' AND kind = 'cramp'")[0][0]
    )
    counts["factors"] = int(store.query("SELECT COUNT(DISTINCT factor) FROM intake")[0][0])
    in_sessions = "phase = 'ended' AND payload LIKE '%\"session_kind\": \"dialysis\"%'"
    counts["session_events"] = int(
        store.query(f"SELECT COUNT(*) FROM event WHERE {in_sessions}")[0][0]
    )
    counts["session_cramps"] = int(
        store.query(f"SELECT COUNT(*) FROM event WHERE kind = 'cramp' AND {in_sessions}")[0][0]
    )
    counts["ingest_stored"], counts["ingest_refused"] = (
        store.counter("stored"),
        store.counter("refused"),
    )
    return counts


def check_counts(spec: YearSpec, counts: dict[str, int]) -> None:
    """The database holds exactly what was planned, nothing refused."""
    n_cramps = round(spec.events * spec.cramp_share)
    night_events = counts["event_ended"] - counts["session_events"]
    expected = {"session": spec.nights + counts["named_session"], "intake": spec.intake,
                "ingest_refused": 0}  # fmt: skip
    expected_nights = {"event_ended": spec.events, "cramps_ended": n_cramps}
    found_nights = {"event_ended": night_events,
                    "cramps_ended": counts["cramps_ended"] - counts["session_cramps"]}  # fmt: skip
    wrong = {k: (found_nights[k], v) for k, v in expected_nights.items() if found_nights[k] != v}
    wrong |= {k: (counts[k], v) for k, v in expected.items() if counts[k] != v}
    if not counts["named_session"] or not counts["lab_result"]:
        wrong["named_session"] = (counts["named_session"], "> 0")
    if wrong:
        raise RuntimeError(
            f"the database does not hold what was planned (found, expected): {wrong}"
        )


def build_database(spec: YearSpec, path: Path) -> dict[str, Any]:
    """Feed the year into a new SQLite file at `path`; what it holds and how long it took."""
    from dashboards.server import build

    started = time.perf_counter()
    messages, summary = plan_messages(spec)
    planned_s = time.perf_counter() - started
    process = build(path, broker=None, tz=spec.zone)
    try:
        started = time.perf_counter()
        for message in messages:
            feed(process, message)
        ingest_s = time.perf_counter() - started
        counts = table_counts(process.store)
    finally:
        process.close()
    check_counts(spec, counts)
    return {**summary, "messages": len(messages), "counts": counts,
            "plan_s": round(planned_s, 2), "ingest_s": round(ingest_s, 2)}  # fmt: skip


def cache_dir() -> Path:
    """$CRAMPWATCH_BENCH_CACHE, else <tmp>/crampwatch-bench."""
    explicit = os.environ.get(CACHE_ENV)
    return Path(explicit) if explicit else Path(tempfile.gettempdir()) / "crampwatch-bench"


def ensure_database(spec: YearSpec, rebuild: bool = False) -> tuple[Path, dict[str, Any]]:
    """The cached database for `spec` (built when missing, stale or asked), and its description."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"dashboard-year-{spec.key()}.db"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists() and not rebuild:
        return path, {**json.loads(meta_path.read_text()), "built_now": False}
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        info = build_database(spec, partial)
        os.replace(partial, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
    meta_path.write_text(json.dumps(info, indent=2) + "\n")
    return path, {**info, "built_now": True}


# -- the server --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running dashboard process."""

    url: str
    pid: int
    ready_s: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, child: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until the server accepts connections (no HTTP request is sent)."""
    started = time.perf_counter()
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if child.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {child.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"the dashboard did not listen within {READY_TIMEOUT_S:g} s")


@contextlib.contextmanager
def running_server(db: Path, tz: str) -> Iterator[Server]:
    """`dashboards.server.build` + `serve` (uvicorn) on `db` in a child process, loopback only."""
    port = free_port()
    log = db.parent / "server.log"
    command = [sys.executable, "-m", "benchmarks.dashboard_pages", "--serve", str(db),
               "--port", str(port), "--tz", tz]  # fmt: skip
    with log.open("wb") as output:
        child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        ready_s = wait_listening(port, child, log)
        yield Server(f"http://127.0.0.1:{port}", child.pid, ready_s)
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def serve_main(db: Path, port: int, tz: str) -> int:
    """The child: what `crampwatch dashboard --broker none` runs."""
    from dashboards.server import build, serve

    process = build(db, broker=None, tz=ZoneInfo(tz))
    try:
        serve(process, "127.0.0.1", port)
    finally:
        process.close()
    return 0


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM), where /proc has it."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One request the dashboard answers."""

    key: str
    label: str
    path: str


@dataclass
class Timing:
    """A page's cold request and its warm repeats."""

    page: Page
    cold_ms: float | None = None
    warm_ms: list[float] = field(default_factory=list)
    fresh_ms: list[float] = field(default_factory=list)  # each right after new data arrived
    size_bytes: int = 0

    def stats(self) -> dict[str, float]:
        """Median, p95 (interpolated), max, min and mean of the warm requests, in ms."""
        if not self.warm_ms:
            return {}
        warm = np.array(self.warm_ms)
        return {
            "median_ms": float(np.median(warm)),
            "p95_ms": float(np.percentile(warm, 95)),
            "max_ms": float(warm.max()),
            "min_ms": float(warm.min()),
            "mean_ms": float(warm.mean()),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.page),
            "cold_ms": _round(self.cold_ms),
            "requests": len(self.warm_ms),
            **{k: round(v, 2) for k, v in self.stats().items()},
            "size_bytes": self.size_bytes,
            "warm_ms": [round(v, 2) for v in self.warm_ms],
            "fresh_median_ms": _round(float(np.median(self.fresh_ms))) if self.fresh_ms else None,
            "fresh_p95_ms": _round(float(np.percentile(self.fresh_ms, 95)))
            if self.fresh_ms
            else None,
            "fresh_ms": [round(v, 2) for v in self.fresh_ms],
        }

    @property
    def worst_ms(self) -> float:
        return max([self.cold_ms or 0.0, *self.warm_ms])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def pages(spec: YearSpec, night: str, cramp: str, session: str) -> list[Page]:
    """Every page and the API calls behind them, the longest ranges they allow (a year)."""
    first, last = spec.first_night, (spec.start + timedelta(days=spec.nights - 1)).isoformat()
    year = f"first={first}&last={last}"
    return [
        Page("overview", "overview (HTML)", "/"),
        Page("nights", "nights, last 8 weeks (HTML)", "/nights"),
        Page("nights_year", "nights, a year (HTML)", f"/nights?{year}"),
        Page(
            "nights_overlay",
            "nights, a year + magnesium (HTML)",
            f"/nights?{year}&factor=magnesium",
        ),
        Page("night", "one night (HTML)", f"/nights/{night}"),
        Page("event", "one cramp (HTML)", f"/events/{cramp}"),
        Page("intake", "intake (HTML)", "/intake"),
        Page("insights", "insights (HTML)", "/insights"),
        Page("report", "report, last 28 nights (HTML)", "/report"),
        Page("report_year", "report, a year (HTML)", f"/report?{year}"),
        Page("status", "device (HTML)", "/status"),
        Page("sessions", "sessions, last 12 weeks (HTML)", "/sessions"),
        Page("sessions_year", "sessions, a year (HTML)", f"/sessions?{year}"),
        Page("session", "one dialysis session (HTML)", f"/sessions/{session}"),
        Page("api_nights", "nights (API)", "/api/nights"),
        Page("api_night", "one night (API)", f"/api/nights/{night}"),
        Page("api_insights", "insights (API)", "/api/insights"),
        Page("api_events", "one night's events (API)", f"/api/events?night={night}"),
        Page("api_event", "one event (API)", f"/api/events/{cramp}"),
        Page("api_intake", "all intake (API)", "/api/intake"),
        Page("api_check", "intake check (API)", "/api/intake/check?factor=water&amount=1%20glass"),
        Page("api_factors", "factors (API)", "/api/factors"),
        Page("api_labels", "answers (API)", "/api/labels"),
        Page("api_truth", "truth export (API)", f"/api/nights/{night}/truth.csv"),
        Page("api_status", "status (API)", "/api/status"),
        Page("api_sessions", "sessions, a year (API)", f"/api/sessions?from={first}&to={last}"),
        Page("api_session", "one session (API)", f"/api/sessions/{session}"),
        Page("api_session_insights", "sessions' analysis (API)", "/api/sessions/insights"),
        Page("api_labs", "lab results (API)", "/api/labs"),
    ]


def strongest_cramp(db: Path) -> str:
    """The id of the year's strongest cramp (its page has the longest trace)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as connection:
        row = connection.execute(
            "SELECT event_id FROM event WHERE kind = 'cramp' AND phase = 'ended'"
            " ORDER BY duration_s DESC LIMIT 1"
        ).fetchone()
    return str(row[0])


def client_for(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S)


def timed_get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    """Milliseconds from sending the request to having the whole body."""
    started = time.perf_counter()
    response = client.get(path)
    return (time.perf_counter() - started) * 1000, response


def check_response(page: Page, response: httpx.Response, spec: YearSpec) -> None:
    """A 200 with what the page should hold for a year of data."""
    if response.status_code != 200:
        raise RuntimeError(f"{page.path}: HTTP {response.status_code}: {response.text[:300]}")
    if not page.key.startswith("api_"):
        if "text/html" not in response.headers.get("content-type", "") or len(response.text) < 1000:
            raise RuntimeError(f"{page.path}: not a full HTML page")
        return
    if page.key == "api_truth":
        if not response.text.startswith("#"):
            raise RuntimeError(f"{page.path}: not the truth CSV")
        return
    body = response.json()
    if page.key == "api_nights" and (
        len(body) != spec.nights or not all(n["has_data"] for n in body)
    ):
        raise RuntimeError(f"{page.path}: {len(body)} nights, expected {spec.nights} with data")
    if page.key == "api_insights" and not any(r["status"] == "ok" for r in body["results"]):
        raise RuntimeError(f"{page.path}: no tested factor")
    if page.key == "api_events" and not body["events"]:
        raise RuntimeError(f"{page.path}: no events")
    if page.key == "api_sessions" and len(body) < 150:
        raise RuntimeError(f"{page.path}: {len(body)} sessions, expected a year's (156)")
    if page.key == "api_session_insights" and not any(r["status"] == "ok" for r in body["results"]):
        raise RuntimeError(f"{page.path}: no tested factor")


def measure_cold(db: Path, spec: YearSpec, timings: list[Timing]) -> list[float]:
    """Each page's first request to a freshly started server; the servers' start-up times."""
    ready = []
    for timing in timings:
        with running_server(db, spec.tz) as server, client_for(server) as client:
            ready.append(round(server.ready_s, 2))
            timing.cold_ms, response = timed_get(client, timing.page.path)
            check_response(timing.page, response, spec)
        _log(f"cold {timing.page.path}: {timing.cold_ms:.0f} ms")
    return ready


def measure_warm(db: Path, spec: YearSpec, timings: list[Timing], repeats: int) -> float | None:
    """Rounds of every page in turn on one warm server (one untimed request each first)."""
    with running_server(db, spec.tz) as server, client_for(server) as client:
        for timing in timings:
            _, response = timed_get(client, timing.page.path)
            check_response(timing.page, response, spec)
            timing.size_bytes = len(response.content)
        for i in range(repeats):
            for timing in timings:
                ms, response = timed_get(client, timing.page.path)
                if response.status_code != 200:
                    raise RuntimeError(f"{timing.page.path}: HTTP {response.status_code}")
                timing.warm_ms.append(ms)
            if (i + 1) % 5 == 0 or i + 1 == repeats:
                _log(f"warm round {i + 1}/{repeats}")
        return peak_rss_mb(server.pid)


def measure_fresh(db: Path, spec: YearSpec, timings: list[Timing], repeats: int) -> None:
    """Rounds of every page, each request right after an intake entry was added (untimed), so
    that nothing computed for an earlier request can be reused: what the first look at a page
    after new data costs."""
    with running_server(db, spec.tz) as server, client_for(server) as client:
        for i in range(repeats):
            for timing in timings:
                entry = {"factor": "water", "amount": 250, "unit": "mL",
                         "time": f"{spec.first_night}T12:00:00", "note": f"bench {i} {timing.page.key}"}  # fmt: skip
                added = client.post("/api/intake", json=entry)
                if added.status_code != 201:
                    raise RuntimeError(f"adding an intake entry failed: {added.text[:200]}")
                ms, response = timed_get(client, timing.page.path)
                if response.status_code != 200:
                    raise RuntimeError(f"{timing.page.path}: HTTP {response.status_code}")
                timing.fresh_ms.append(ms)
        _log(f"after-a-change rounds: {repeats}")


def profile_page(db: Path, spec: YearSpec, path: str, top: int = 30) -> None:
    """cProfile of one page's endpoint, called in this thread (no HTTP), after a warm-up call."""
    import inspect

    from starlette.requests import Request

    from dashboards.server import build

    process = build(db, broker=None, tz=spec.zone)
    url = httpx.URL(path)
    routes = [r for r in process.app.routes if getattr(r, "path", None) == url.path]
    if not routes:
        raise SystemExit(f"no route {url.path} (path parameters are not supported here)")
    endpoint = routes[0].endpoint
    kwargs: dict[str, Any] = dict(url.params)
    if "request" in inspect.signature(endpoint).parameters:
        scope = {"type": "http", "method": "GET", "path": url.path, "headers": [],
                 "query_string": url.query, "app": process.app}  # fmt: skip
        kwargs["request"] = Request(scope)
    try:
        endpoint(**kwargs)
        profiler = cProfile.Profile()
        profiler.enable()
        endpoint(**kwargs)
        profiler.disable()
    finally:
        process.close()
    print(f"\ncProfile of {path} (endpoint called directly), by cumulative time:", file=sys.stderr)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(top)


# -- report ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def markdown_table(timings: list[Timing]) -> str:
    lines = [
        "| page | request | cold (ms) | median (ms) | p95 (ms) | after new data: median / p95 (ms) | size (KB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in timings:
        d = t.stats()
        fresh = t.as_dict()
        lines.append(
            f"| {t.page.label} | `{t.page.path}` | {_ms(t.cold_ms)} | {_ms(d.get('median_ms'))} "
            f"| {_ms(d.get('p95_ms'))} | {_ms(fresh['fresh_median_ms'])} / "
            f"{_ms(fresh['fresh_p95_ms'])} | {t.size_bytes / 1024:.0f} |"
        )
    return "\n".join(lines) + "\n"


def notes(
    spec: YearSpec, data: dict[str, Any], context: dict[str, Any], timings: list[Timing]
) -> str:
    """What was measured, on what, and whether the target was met."""
    counts = data["counts"]
    n_cramps = counts["cramps_ended"] - counts["session_cramps"]  # the nights'
    n_events = counts["event_ended"] - counts["session_events"]
    worst = max(timings, key=lambda t: t.stats().get("p95_ms", 0.0))
    verdict = "met" if worst.stats().get("p95_ms", 0.0) < TARGET_MS else "MISSED"
    lines = [
        f"- data: {spec.nights} nights from {spec.first_night} ({spec.tz}), one session each, "
        f"{data['incomplete_nights_planned']} incomplete; {counts['intake']} intake entries of "
        f"{counts['factors']} factors; {n_events} events ({n_cramps} cramps, "
        f"started + ended, on {data['cramp_nights_planned']} nights; "
        f"{n_events - n_cramps} movements) with envelope traces; "
        f"{counts['marker']} marker presses, {counts['quality']} quality changes; "
        f"{data['dialysis_sessions']} dialysis sessions with {counts['session_events']} events "
        f"({counts['session_cramps']} cramps), details and blood pressure, "
        f"{counts['lab_result']} lab results; fed through Ingest.handle / IntakeLog.add / "
        f"DialysisLog into SQLite ({context['db_mb']:.1f} MB)",
        "- server: `dashboards.server.build` + `serve` (uvicorn) in its own process on "
        "127.0.0.1; httpx, one keep-alive connection, time to the whole body; cold = the first "
        "request to a freshly started server (one per page); then "
        f"{context['repeats']} rounds of every page in turn on one warm server after one "
        "untimed request each; 'after new data': rounds in which each request follows an "
        "intake entry added through the API (nothing computed earlier can be reused); p95 "
        "interpolated",
        f"- target: p95 of every page and API call under {TARGET_MS:.0f} ms: {verdict} "
        f"(slowest p95: `{worst.page.path}`, {worst.stats().get('p95_ms', 0.0):.0f} ms); "
        "server peak RSS "
        f"{context['server_peak_rss_mb'] or 0:.0f} MB",
        f"- machine: {context['cpus']} CPUs, load {context['load_before']} before, "
        f"{context['load_after']} after",
    ]
    return "\n".join(lines) + "\n"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    packages = (
        "crampwatch",
        "fastapi",
        "starlette",
        "uvicorn",
        "jinja2",
        "httpx",
        "numpy",
        "scipy",
    )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "packages": {name: _version(name) for name in packages},
    }


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dashboard_pages",
        description="Response times of every dashboard page and API call on a year of data, "
        "served by uvicorn on loopback.",
    )
    parser.add_argument("--repeat", type=int, default=20, help="warm requests per page (20)")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    parser.add_argument(
        "--fresh", type=int, default=10,
        help="rounds of requests each right after new data (10; 0 skips them)",
    )  # fmt: skip
    parser.add_argument("--no-cold", action="store_true", help="skip the cold (first) requests")
    parser.add_argument(
        "--profile", metavar="PATH", help="also print a cProfile of one page, e.g. /insights"
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the server child
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tz", default=YearSpec.tz, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve is not None:
        return serve_main(args.serve, args.port, args.tz)
    spec = YearSpec()
    _log("preparing the year of data ...")
    cached, data = ensure_database(spec, args.rebuild)
    verb = "built" if data["built_now"] else "reusing"
    _log(f"{verb} {cached} ({data['messages']} messages, ingest {data['ingest_s']} s)")
    timings = [
        Timing(page)
        for page in pages(spec, data["busiest_night"], strongest_cramp(cached), data["a_session"])
    ]
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="crampwatch-dash-") as work:
        db = Path(work) / "dashboard.db"
        shutil.copyfile(cached, db)
        ready = [] if args.no_cold else measure_cold(db, spec, timings)
        peak = measure_warm(db, spec, timings, args.repeat)
        if args.fresh:
            measure_fresh(db, spec, timings, args.fresh)
        if args.profile:
            profile_page(db, spec, args.profile)
    context = {"repeats": args.repeat, "cpus": os.cpu_count(), "load_before": load_before,
               "load_after": _load(), "server_ready_s": ready, "server_peak_rss_mb": peak,
               "db_mb": cached.stat().st_size / 1e6}  # fmt: skip
    text = markdown_table(timings) + "\n" + notes(spec, data, context, timings)
    print(text)
    document = {
        "schema": "crampwatch.bench.dashboard/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {"repeat": args.repeat, "target_ms": TARGET_MS},
        "data": {**asdict(spec), "key": spec.key(), "path": str(cached), **data},
        "context": context,
        "environment": environment(),
        "rows": [t.as_dict() for t in timings],
        "all_under_target": all(t.stats().get("p95_ms", 0.0) < TARGET_MS for t in timings),
        "markdown": text,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
