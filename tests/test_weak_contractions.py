"""Quiet standing against a weak cramp: what EMG can tell, said honestly.

Standing holds the calf in low-level tonic activity (a few per cent of a maximal voluntary
contraction, following postural sway); a cramp rarely is that weak. EMG alone cannot tell the
two apart, so without an MVC the detector does not pretend to; with a calibration that has one, a
sustained contraction below `detector.weak_mvc_percent` is a cramp of low confidence.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards.ingest import Ingest
from dashboards.intake_log import IntakeLog, load_catalogue
from dashboards.store import Store
from dsp.config import ChannelCalibration, DetectorConfig, PipelineConfig
from dsp.events import EVENT_FIELDS
from tests.dropouts import run_pipeline
from tests.signals import quiet_standing, with_bursts

FS = 1000.0
FLOOR_UV = 3.0
MVC_UV = 300.0  # a calf's maximal contraction, RMS at the electrodes (a few hundred uV)


def calibrated(**detector: object) -> PipelineConfig:
    calibration = (("ch0", ChannelCalibration(FLOOR_UV, MVC_UV)),)
    return PipelineConfig(fs=FS, calibration=calibration, detector=DetectorConfig(**detector))


@pytest.mark.parametrize("seed", range(4))
def test_two_minutes_of_quiet_standing_is_at_most_a_cramp_of_low_confidence(seed: int) -> None:
    x = quiet_standing(FS, 240, 60, 180, seed=seed, floor_uv=FLOOR_UV)
    for event in run_pipeline(calibrated(), x).events:
        assert event.kind == "movement" or event.confidence == "low"
        assert event.mvc_percent is not None and event.mvc_percent < 5.0


@pytest.mark.parametrize("seed", range(4))
def test_a_weak_cramp_well_above_standing_level_keeps_high_confidence(seed: int) -> None:
    x = with_bursts(FS, 120, [(40.0, 80.0, 28.0)], floor_uv=FLOOR_UV, seed=seed)  # ~9 % of MVC
    [cramp] = run_pipeline(calibrated(), x).ended("cramp")
    assert cramp.confidence == "high" and 7.0 < cramp.mvc_percent < 12.0


def test_without_an_mvc_the_confidence_is_not_claimed() -> None:
    x = quiet_standing(FS, 240, 60, 180, seed=1, floor_uv=FLOOR_UV)
    events = run_pipeline(PipelineConfig(fs=FS), x).ended()
    assert events and all(e.confidence is None and e.mvc_percent is None for e in events)


def test_thresholds_in_percent_of_mvc_leave_quiet_standing_out_altogether() -> None:
    x = quiet_standing(FS, 240, 60, 180, seed=2, floor_uv=FLOOR_UV)
    assert run_pipeline(calibrated(on_mvc_percent=10, off_mvc_percent=5), x).events == []


def test_the_event_payload_carries_confidence_and_mvc_percent_and_the_dashboard_takes_it(
    tmp_path: Path,
) -> None:
    x = quiet_standing(FS, 240, 60, 180, seed=0, floor_uv=FLOOR_UV)
    [event] = [e for e in run_pipeline(calibrated(), x).events if e.phase == "ended"]
    payload = event.to_dict()
    assert tuple(payload) == EVENT_FIELDS
    assert payload["schema"] == "crampwatch.event/1"
    assert payload["confidence"] == "low" and 0 < payload["mvc_percent"] < 5
    payload["device"] = "bedroom"
    session_start = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
    payload["start"] = (session_start + timedelta(seconds=payload["start_s"])).isoformat()
    payload["end"] = (session_start + timedelta(seconds=payload["end_s"])).isoformat()
    store = Store(tmp_path / "dashboard.db")
    try:
        ingest = Ingest(store, IntakeLog(store, load_catalogue(store), ZoneInfo("UTC")).from_mqtt)
        assert ingest.handle("crampwatch/bedroom/event", json.dumps(payload).encode())
        [row] = store.query("SELECT payload FROM event")
        assert json.loads(row["payload"])["confidence"] == "low"
    finally:
        store.close()
