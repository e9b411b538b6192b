"""Dialysis sessions on top of two weeks of nights (`tests.dashboard_scenes`): three mornings a
week (Mon, Wed, Fri, 07:30-11:30 local, inside the night's 18:00-12:00 window), recorded by the
device as dialysis sessions (the state its own `ChannelStates` writes, cut where the session
starts), with cramps that come more often with a faster ultrafiltration, details logged through
the API's path (weights, ultrafiltration, dialysate sodium, blood pressure with a dip), a session
that ended early, and monthly labs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dashboards.server import DashboardProcess
from firmware_host.device.messages import ChannelStates
from firmware_host.device.session_control import SessionTag
from tests.dashboard_scenes import CHANNELS, DEVICE, event, send

SESSION_DAYS = (0, 2, 4)  # Monday, Wednesday, Friday
SESSION_START = time(7, 30)
SESSION_HOURS = 4.0
DRY_WEIGHT = 70.0
GAINS_KG = (1.4, 3.4, 2.2, 3.9, 1.1, 3.0, 2.6, 1.7, 3.6, 2.0)  # weight gained before each session


@dataclass
class SessionScene:
    session_id: str
    start: datetime
    gain_kg: float
    uf_rate: float
    cramps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=SESSION_HOURS)


def session_state(start: datetime, tz: tzinfo, tag: SessionTag, recorded_s: float,
                  cramps: int) -> dict[str, Any]:  # fmt: skip
    """The dialysis session's last state as the device sends it (a recording cut at the start)."""
    states = ChannelStates(DEVICE, CHANNELS, start.astimezone(UTC) - timedelta(minutes=5), tz=tz)
    states.begin(300.0, tag)
    for k in range(cramps):
        states.change(CHANNELS[k % 2], "cramp", 300.0 + 3600 + 1800 * k)
        states.change(CHANNELS[k % 2], "idle", 300.0 + 3660 + 1800 * k)
    return json.loads(states.payload(300.0 + recorded_s))


def readings(start: datetime, dip: float) -> list[dict[str, Any]]:
    """Blood pressure every hour, falling by `dip` mmHg towards the end, with the volume so far."""
    out = []
    for hour in range(5):
        systolic = 142 - dip * hour / 4
        out.append({"time": (start + timedelta(hours=hour)).isoformat(), "systolic": systolic,
                    "diastolic": systolic - 58, "uf_removed_ml": f"{hour * 0.55:.2f} L"})  # fmt: skip
    return out


def dialysis_weeks(
    process: DashboardProcess, first: date, last: date, tz: tzinfo
) -> list[SessionScene]:
    """Sessions on the dialysis days from `first` to `last`, each as the device and the patient
    send it; cramps: one per 2.5 mL/kg/h of ultrafiltration rate above 7."""
    scenes = []
    day, n = first, 0
    while day <= last:
        if day.weekday() in SESSION_DAYS:
            start = datetime.combine(day, SESSION_START, tzinfo=tz)
            gain = GAINS_KG[n % len(GAINS_KG)]
            uf_ml = round(gain * 1000)
            rate = uf_ml / DRY_WEIGHT / SESSION_HOURS
            count = max(0, int((rate - 7.0) / 2.5 + 0.5))
            tag = SessionTag("dialysis", f"dialysis-{day.isoformat()}")
            scene = SessionScene(tag.session_id or "", start, gain, rate)
            for k in range(count):
                cramp = event(start, CHANNELS[k % 2], "cramp", 3600 + 1800 * k, 45.0 + 10 * k,
                              140.0 + 15 * k, f"{tag.session_id}-c{k}")  # fmt: skip
                cramp.update(tag.fields())
                send(process, "event", cramp)
                scene.cramps.append(cramp)
            send(process, "state", session_state(start, tz, tag, SESSION_HOURS * 3600 + 600,
                                                 count))  # fmt: skip
            ended_early = n == 3
            details = {
                "session_id": tag.session_id, "start": start.isoformat(),
                "end": (start + timedelta(hours=SESSION_HOURS)).isoformat(),
                "pre_weight_kg": round(DRY_WEIGHT + gain, 1), "post_weight_kg": DRY_WEIGHT,
                "uf_volume_ml": uf_ml, "dialysate_sodium_mmol_l": 138 if n % 2 else 140,
                "blood_pressure": readings(start, dip=12 * gain),
                "ended_early": ended_early,
                "ended_early_reason": "cramps" if ended_early else None,
            }  # fmt: skip
            process.sessions.log(details, "api")
            scenes.append(scene)
            n += 1
        day += timedelta(days=1)
    for month_day, calcium, phosphorus in ((first, "8.9 mg/dL", "5.8 mg/dL"),
                                           (first + timedelta(days=9), "2.05 mmol/L", "1.9 mmol/L")):  # fmt: skip
        moment = datetime.combine(month_day, time(7, 0), tzinfo=tz).isoformat()
        process.sessions.add_lab({"analyte": "calcium", "value": calcium, "time": moment}, "api")
        process.sessions.add_lab({"analyte": "phosphorus", "value": phosphorus, "time": moment},
                                 "api")  # fmt: skip
    return scenes
