"""The whole product on one machine, with demo data: a private Mosquitto broker, the dashboard,
and a simulated device that plays a few weeks of synthetic nights at high speed.

Each night is a seeded synthetic two-calf night, rendered and run through the same pipeline as
the device (two worker processes), newest night first; its events, quality changes and session
totals go out through the device's durable outbox and MQTT link, as on a real night. Intake for
every day is published on the MQTT intake topic. Everything is labelled as demo data: how many
cramps a night has is drawn from the made-up intake (more with alcohol, fewer with magnesium)
so that the insights page has something to show, which real data need not.

Three mornings a week (Monday, Wednesday, Friday, 07:30) over twice as many days as there are
nights (so that the analysis across sessions has enough of them: 12 sessions for the default two
weeks of nights) the device records a dialysis session of about four hours, as a device started
with `--session dialysis` does; the session's details
(weights, ultrafiltration, dialysate sodium, blood pressure every half hour, an early end) go out
on the person's session topic and lab results once a month on the lab topic, phosphate binders
with meals in the intake. A session's cramps are drawn from its made-up ultrafiltration rate
(more when it is faster), again so that the analysis has something to show.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from dashboards.dialysis import DETAILS_SCHEMA, LAB_SCHEMA
from dashboards.dialysis_log import logged_session_id
from dsp.config import PipelineConfig, ScalingConfig
from dsp.pipeline import Pipeline, PipelineOutput
from firmware_host.demo.local_broker import Mosquitto
from firmware_host.device.daemon import Publisher
from firmware_host.device.messages import to_json
from firmware_host.device.mqtt_link import MqttLink
from firmware_host.device.outbox import Outbox
from firmware_host.device.session_control import SessionControl
from hardware.synthetic_emg import SyntheticEMG, plan_night
from messaging.broker import BrokerSettings
from messaging.sessions import DIALYSIS, NIGHT
from messaging.topics import Topics

log = logging.getLogger("crampwatch.demo")
DEVICE = "demo-device"
PERSON = "demo-person"
FS = 1000.0
NIGHT_HOURS = 7.5
SESSION_HOURS = 4.0
SESSION_DAYS = (0, 2, 4)  # Monday, Wednesday, Friday
BLOCK = 65536


@dataclass(frozen=True)
class DemoNight:
    """A recording to play: a night, or a dialysis session (`kind`, `session_id`)."""

    night: date
    seed: int
    cramps: int
    start: datetime  # session start, UTC
    hours: float = NIGHT_HOURS
    kind: str = NIGHT
    session_id: str | None = None


def demo_days(
    nights: int, tz: ZoneInfo, hours: float = NIGHT_HOURS, seed: int = 1
) -> tuple[list[DemoNight], list[dict]]:
    """The nights to play (newest first) and the intake entries of their days."""
    rng = np.random.default_rng(seed)
    today = datetime.now(tz).date()
    plans, entries = [], []
    for back in range(nights, 0, -1):
        day = today - timedelta(days=back)
        magnesium = rng.random() < 0.5
        alcohol_g = float(rng.choice([0, 0, 0, 10, 20, 30]))
        water_ml = float(rng.integers(6, 12)) * 250
        caffeine_mg = float(rng.choice([0, 95, 95, 190]))
        exercise_min = float(rng.choice([0, 0, 20, 45, 60]))
        rate = max(0.1, 1.2 - 0.7 * magnesium + 0.04 * alcohol_g + 0.005 * exercise_min)
        cramps = int(min(4, rng.poisson(rate), hours))  # short nights: fewer fit
        midnight = datetime.combine(day, datetime.min.time(), tz)
        start = midnight + timedelta(hours=22, minutes=30)
        plans.append(DemoNight(day, 1000 + back, cramps, start.astimezone(UTC), hours))
        at = partial(_hours_after, midnight)
        entries.append(_entry(at(8), "water", water_ml, "mL", "demo: glasses through the day"))
        if caffeine_mg:
            entries.append(_entry(at(9), "caffeine", caffeine_mg, "mg", "demo: coffee"))
        if magnesium:
            entries.append(_entry(at(20), "magnesium", 300.0, "mg", "demo: supplement"))
        if alcohol_g:
            entries.append(_entry(at(19.5), "alcohol", alcohol_g, "g", "demo: wine"))
        if exercise_min:
            entries.append(_entry(at(17), "exercise", exercise_min, "min", "demo: walk"))
    return plans[::-1], entries


def demo_sessions(
    days: int, tz: ZoneInfo, hours: float = SESSION_HOURS, seed: int = 2
) -> tuple[list[DemoNight], list[dict], list[dict], list[dict]]:
    """The dialysis sessions of the `days` before today (three a week, `hours` long at most),
    their details, the monthly lab results and the phosphate binders taken with meals."""
    rng = np.random.default_rng(seed)
    today = datetime.now(tz).date()
    sessions: list[DemoNight] = []
    details: list[dict] = []
    labs: list[dict] = []
    binders: list[dict] = []
    dry_weight = 70.0
    post = dry_weight
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        midnight = datetime.combine(day, datetime.min.time(), tz)
        for hour in (8.0, 12.5, 19.0):
            binders.append(_entry(midnight + timedelta(hours=hour), "phosphate_binder", 1.0,
                                  "dose", "demo: binder with a meal"))  # fmt: skip
        if day.weekday() not in SESSION_DAYS:
            continue
        start = midnight + timedelta(hours=7.5)
        gain = float(np.clip(rng.normal(2.6 if day.weekday() == 0 else 2.0, 0.8), 0.6, 4.5))
        pre = round(post + gain, 1)
        ended_early = bool(rng.random() < 0.15)
        length = min(hours, SESSION_HOURS) * (0.875 if ended_early else 1.0)
        post = round(dry_weight + float(rng.normal(0.0, 0.3)), 1)
        uf_ml = round(max(0.0, pre - post) * 1000 + float(rng.normal(200, 80)), -1)
        # the rate of a full session (a demo shortened with --hours keeps its figures)
        rate = uf_ml / post / (SESSION_HOURS * (0.875 if ended_early else 1.0))
        cramps = int(min(3, rng.poisson(max(0.05, 0.45 * (rate - 6.0)))))
        session_id = logged_session_id(DIALYSIS, start)
        sessions.append(DemoNight(day, 5000 + back, cramps, start.astimezone(UTC), length,
                                  DIALYSIS, session_id))  # fmt: skip
        dip = float(np.clip(6.0 * rate + rng.normal(0, 6), 0.0, 60.0))
        readings = [
            {"time": (start + timedelta(minutes=m)).isoformat(),
             "systolic": round(146 - dip * m / (length * 60) + float(rng.normal(0, 4))),
             "diastolic": round(82 - dip * m / (length * 60) / 2 + float(rng.normal(0, 3))),
             "pulse": round(72 + dip * m / (length * 60) / 3),
             "uf_removed_ml": round(uf_ml * m / (length * 60), -1)}
            for m in range(0, int(length * 60) + 1, 30)
        ]  # fmt: skip
        details.append({
            "schema": DETAILS_SCHEMA, "session_id": session_id, "session_kind": DIALYSIS,
            "start": start.isoformat(), "end": (start + timedelta(hours=length)).isoformat(),
            "pre_weight_kg": pre, "post_weight_kg": post, "uf_volume_ml": uf_ml,
            "dialysate_sodium_mmol_l": float(rng.choice([136, 138, 140])),
            "blood_pressure": readings, "ended_early": ended_early,
            "ended_early_reason": "cramps" if ended_early and cramps else (
                "low blood pressure" if ended_early else None),
            "note": "demo: made-up session details",
        })  # fmt: skip
        if len(sessions) % 12 == 1:  # about once a month, before the session
            taken = (start - timedelta(minutes=15)).isoformat()
            for analyte, value in (("calcium", f"{rng.uniform(2.05, 2.4):.2f} mmol/L"),
                                   ("phosphorus", f"{rng.uniform(4.2, 6.4):.1f} mg/dL"),
                                   ("potassium", f"{rng.uniform(4.3, 5.8):.1f} mmol/L"),
                                   ("magnesium", f"{rng.uniform(0.8, 1.1):.2f} mmol/L")):  # fmt: skip
                labs.append({"schema": LAB_SCHEMA, "time": taken, "analyte": analyte,
                             "value": value, "note": "demo: made-up lab result"})  # fmt: skip
    return sessions, details, labs, binders


def _hours_after(moment: datetime, hours: float) -> datetime:
    return moment + timedelta(hours=hours)


def _entry(moment: datetime, factor: str, amount: float, unit: str, note: str) -> dict:
    return {
        "schema": "crampwatch.intake/1",
        "time": moment.astimezone(UTC).isoformat(),
        "factor": factor,
        "amount": amount,
        "unit": unit,
        "note": note,
    }


def run_night(night: DemoNight) -> tuple[DemoNight, list[PipelineOutput], float, tuple[str, ...]]:
    """Render one night and run it through the pipeline (in a worker process); the outputs come
    back without their envelope hops (live views only, not kept for past nights)."""
    chair = night.kind != NIGHT  # sitting in the dialysis chair: no PLM series, no walks
    plan = plan_night(
        night.seed, duration_s=night.hours * 3600.0, fs=FS, n_cramps=night.cramps,
        channels=("left_calf", "right_calf"),
        **({"n_plm_series": 0, "n_walks": 0, "electrode_off": False} if chair else {}),
    )  # fmt: skip
    config = PipelineConfig(
        fs=FS, channels=plan.channels, device=DEVICE,
        scaling=ScalingConfig(units="uV", rails=plan.rails_uv),
    )  # fmt: skip
    pipeline = Pipeline(config, source_id=f"demo-{night.night}", session_start=night.start)
    outputs = []
    for block in SyntheticEMG(plan, seed=night.seed).blocks(BLOCK):
        output = pipeline.process(block)
        if output.records:
            outputs.append(replace(output, envelope=np.empty((0, len(plan.channels)))))
    outputs.append(replace(pipeline.finish(), envelope=np.empty((0, len(plan.channels)))))
    return night, outputs, pipeline.duration_s, plan.channels


class DemoDevice:
    """Publishes demo intake and nights through the device's outbox and MQTT link."""

    def __init__(self, broker: Mosquitto, directory: Path) -> None:
        self.outbox = Outbox(directory / "device-outbox.db")
        self.topics = Topics(DEVICE)
        self.link = MqttLink(
            BrokerSettings(host="127.0.0.1", port=broker.port, client_id="crampwatch-demo"),
            self.topics, self.outbox,
        )  # fmt: skip
        self.link.start()

    def publish_intake(self, entries: list[dict], leaf: str = "intake") -> None:
        """Entries on the person's `leaf` topic: intake, session (details) or lab."""
        for entry in entries:
            self.outbox.put(f"crampwatch/{PERSON}/{leaf}", to_json(entry), kind=leaf)
        self.link.kick()

    def publish_night(self, result: tuple[DemoNight, list[PipelineOutput], float, tuple]) -> None:
        night, outputs, duration_s, channels = result
        config = PipelineConfig(fs=FS, channels=channels, device=DEVICE)
        session = SessionControl(night.kind, session_id=night.session_id)
        publisher = Publisher(self.link, config, 0.02, night.start, 1.0, session=session)
        for output in outputs:
            at_s = max((getattr(r, "at_s", 0.0) for r in output.records), default=0.0)
            publisher.publish(output, at_s)
        publisher.close_session(duration_s)

    def wait_until_sent(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.outbox.counts().unsent == 0:
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        self.link.stop()
        self.outbox.close()


def play(device: DemoDevice, nights: list[DemoNight]) -> None:
    """Recordings newest first, as they are computed (a worker process per core, up to four)."""
    with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for done, result in enumerate(pool.map(run_night, nights), start=1):
            device.publish_night(result)
            what = "night" if result[0].kind == NIGHT else f"{result[0].kind} session"
            log.info("demo: %s of %s sent (%d of %d)", what, result[0].night, done, len(nights))


@dataclass
class DemoStack:
    """Broker, dashboard (ingest + web server in threads) and the demo device."""

    directory: Path
    port: int
    nights: int
    tz: ZoneInfo
    hours: float = NIGHT_HOURS

    def run(self, *, exit_when_done: bool = False, ready: threading.Event | None = None) -> None:
        import uvicorn

        from dashboards.server import build

        broker_dir = self.directory / "broker"
        broker_dir.mkdir(parents=True, exist_ok=True)
        broker = Mosquitto(broker_dir)
        broker.start()
        process = build(
            self.directory / "dashboard.db", broker=("127.0.0.1", broker.port), tz=self.tz,
            demo=True, client_id="crampwatch-demo-dashboard", listen=("127.0.0.1", self.port),
        )  # fmt: skip
        server = uvicorn.Server(
            uvicorn.Config(process.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
        thread.start()
        device = DemoDevice(broker, self.directory)
        try:
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(
                        f"the dashboard could not listen on 127.0.0.1:{self.port} (in use?); "
                        "give another --port"
                    )
                time.sleep(0.05)
            print(
                f"\ncrampwatch demo: open http://127.0.0.1:{self.port}/ (demo data)\n", flush=True
            )
            if ready is not None:
                ready.set()
            nights, entries = demo_days(self.nights, self.tz, self.hours)
            sessions, details, labs, binders = demo_sessions(2 * self.nights, self.tz, self.hours)
            device.publish_intake(entries + binders)
            device.publish_intake(labs, "lab")
            recordings = sorted(nights + sessions, key=lambda r: r.start, reverse=True)
            play(device, recordings)
            device.publish_intake(details, "session")
            device.wait_until_sent()
            _wait_for_ingest(process.store)
            print(
                f"crampwatch demo: {len(nights)} nights, {len(sessions)} dialysis sessions and "
                f"{len(entries) + len(binders)} intake entries sent; the dashboard keeps running "
                "(Ctrl-C stops it)",
                flush=True,
            )
            if not exit_when_done:
                thread.join()
        finally:
            device.close()
            server.should_exit = True
            thread.join(timeout=5)
            process.close()
            broker.stop()


def _wait_for_ingest(store, quiet_s: float = 1.0, timeout_s: float = 30.0) -> None:
    """Until the dashboard has stored what the broker holds for it (nothing new for a while)."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        stored = store.counter("stored")
        if stored != last:
            last, since = stored, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)
