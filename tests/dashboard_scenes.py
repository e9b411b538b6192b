"""Two weeks of a patient's dashboard data, sent through the real ingest and intake paths: cramps
on one and on both calves, many brief movements, marker presses (one during a cramp, one with
nothing detected), an electrode that came off, a night without a recording, a night with too
little signal, a night recorded without cramps, PLMS counts on the later nights (in the state
message the device's own `ChannelStates` writes), and intake."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dashboards.server import DashboardProcess
from dsp.limb_movements import LimbMovementRules, LimbMovementSummary, PlmFigures
from firmware_host.device.messages import ChannelStates

DEVICE = "bedroom"
CHANNELS = ("left_calf", "right_calf")
NIGHTS = 14
NO_DATA_BACK = 4  # nights before the last: no recording
INCOMPLETE_BACK = 6  # too little good signal
CALM_BACK = 2  # recorded, no cramps
PLMS_FROM_BACK = 3  # the device reports PLMS from this night on (None before)
LOST_S = 300.0  # signal lost per calf on a full night


def plms_tonight(back: int) -> int:
    """The PLM count the device reports for the night `back` nights before the last."""
    return 20 + back


def plm_summary(plms: int, scored_s: float) -> LimbMovementSummary:
    """PLM figures as the device's scorer gives them (both calves, and combined)."""
    figures = PlmFigures(leg_movements=plms + 5, candidates=plms + 2, plm=plms, plm_series=2,
                         scored_s=scored_s)  # fmt: skip
    return LimbMovementSummary({c: figures for c in CHANNELS}, figures, (), LimbMovementRules())


def state_payload(session: datetime, tz: tzinfo, recorded_s: float, good_s: float,
                  plms: int | None) -> dict[str, Any]:  # fmt: skip
    """The retained state message the device sends, built by the device's own `ChannelStates`:
    both calves lose the signal so that `good_s` of `recorded_s` is good."""
    states = ChannelStates(DEVICE, CHANNELS, session.astimezone(UTC), tz=tz)
    lost_from = min(good_s, 1000.0)
    for channel in CHANNELS:
        states.change(channel, "signal_lost", lost_from)
        if lost_from + recorded_s - good_s < recorded_s:
            states.change(channel, "idle", lost_from + recorded_s - good_s)
    if plms is not None:
        states.set_limb_movements(plm_summary(plms, good_s))
    return json.loads(states.payload(recorded_s))


@dataclass
class Scene:
    """What was sent, for the tests to check against."""

    last_night: date
    tz: tzinfo
    cramps: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> event payload
    markers: dict[str, str] = field(default_factory=dict)  # name -> time (ISO)

    def night(self, back: int) -> date:
        return self.last_night - timedelta(days=back)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _trace(start_s: float, duration_s: float, peak: float) -> dict[str, Any]:
    """An envelope from 10 s before onset to 5 s after the end (at most 600 points); its
    highest point is a little below `peak` (the peak is measured at the full rate)."""
    dt = max(0.02, (duration_s + 15.0) / 600)
    n = min(600, int((duration_s + 15.0) / dt))
    values = []
    for i in range(n):
        t = start_s - 10.0 + i * dt
        inside = start_s <= t <= start_s + duration_s
        values.append(
            round(3.0 + (0.85 * peak * (0.9 + 0.1 * ((i * 7) % 10) / 10) if inside else 0), 2)
        )
    return {"t0_s": round(start_s - 10.0, 3), "dt_s": round(dt, 4), "uv": values}


def event(session: datetime, channel: str, kind: str, offset_s: float, duration_s: float,
          peak: float, name: str) -> dict[str, Any]:  # fmt: skip
    start = session + timedelta(seconds=offset_s)
    return {
        "schema": "crampwatch.event/1", "event_id": f"{name}-{channel}", "device": DEVICE,
        "channel": channel, "kind": kind, "phase": "ended", "start": _iso(start),
        "end": _iso(start + timedelta(seconds=duration_s)), "start_s": offset_s,
        "end_s": offset_s + duration_s, "duration_s": duration_s, "peak_uv": peak,
        "mean_uv": peak * 0.6, "floor_uv": 3.0, "area_uvs": peak * 0.6 * duration_s,
        "median_freq_hz": 85.0, "quality": "good",
        "envelope": _trace(offset_s, duration_s, peak) if kind == "cramp" else None,
        "pipeline": {"software": "crampwatch test"},
    }  # fmt: skip


def send(process: DashboardProcess, leaf: str, payload: dict[str, Any]) -> None:
    topic = f"crampwatch/{DEVICE}/{leaf}"
    assert process.ingest.handle(topic, json.dumps(payload).encode()), (leaf, payload)


def two_weeks(process: DashboardProcess, last_night: date, tz: tzinfo) -> Scene:
    scene = Scene(last_night, tz)
    for back in range(NIGHTS - 1, -1, -1):
        night = scene.night(back)
        session = datetime.combine(night, time(22, 30), tzinfo=tz)
        if back == NO_DATA_BACK:
            continue
        recorded = 7.5 * 3600
        good = 2 * 3600 if back == INCOMPLETE_BACK else recorded - LOST_S
        for k in range(24):  # brief movements, alternating calves
            channel = CHANNELS[k % 2]
            send(process, "event", event(session, channel, "movement", 600 + k * 1000, 2 + k % 3,
                                         40.0, f"n{back}m{k}"))  # fmt: skip
        if back not in (CALM_BACK,):
            for k in range(1 + back % 3):
                onset = 3600 + k * 5000 + back * 60
                cramp = event(session, CHANNELS[k % 2], "cramp", onset, 30 + 20 * k, 120.0 + 10 * k,
                              f"n{back}c{k}")  # fmt: skip
                send(process, "event", cramp)
        plms = plms_tonight(back) if back <= PLMS_FROM_BACK else None
        send(process, "state", state_payload(session, tz, recorded, good, plms))
        day = datetime.combine(night, time(9, 0), tzinfo=tz)
        process.intake.add({"factor": "water", "amount": 1500 + 250 * (back % 3), "unit": "mL",
                            "time": day.isoformat()}, "api")  # fmt: skip
        if back % 2 == 0:
            process.intake.add({"factor": "magnesium", "amount": "300 mg",
                                "time": (day + timedelta(hours=11)).isoformat()}, "api")  # fmt: skip
    _last_night_details(process, scene)
    return scene


def _last_night_details(process: DashboardProcess, scene: Scene) -> None:
    """Last night: a cramp on both calves at once, a long one on the left, presses, a problem."""
    session = datetime.combine(scene.last_night, time(22, 30), tzinfo=scene.tz)
    both_left = event(session, "left_calf", "cramp", 4 * 3600, 60.0, 180.0, "both")
    both_right = event(session, "right_calf", "cramp", 4 * 3600 + 20, 45.0, 150.0, "both")
    long_left = event(session, "left_calf", "cramp", 7 * 3600, 480.0, 260.0, "long")
    for payload in (both_left, both_right, long_left):
        send(process, "event", payload)
    scene.cramps.update(both_left=both_left, both_right=both_right, long_left=long_left)
    for name, offset in (("during", 4 * 3600 + 70), ("missed", 5.5 * 3600)):
        at = _iso(session + timedelta(seconds=offset))
        send(process, "marker", {"schema": "crampwatch.marker/1", "device": DEVICE, "at": at,
                                 "at_s": offset, "source": "button"})  # fmt: skip
        scene.markers[name] = at
    off = session + timedelta(hours=5)
    for at, problems in ((off, ["electrode_off"]), (off + timedelta(minutes=20), [])):
        send(process, "quality", {"schema": "crampwatch.quality/1", "device": DEVICE,
                                  "channel": "right_calf", "at": _iso(at), "at_s": 0.0,
                                  "good": not problems, "problems": problems})  # fmt: skip
