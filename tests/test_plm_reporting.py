"""Periodic limb movements where users see them: the replay summary, the retained MQTT state and
the dashboard's ingest of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from dashboards.ingest import Ingest
from dashboards.intake_log import IntakeLog, load_catalogue
from dashboards.store import Store
from dsp.config import PipelineConfig
from dsp.pipeline import Pipeline
from firmware_host.cli import main
from firmware_host.device.messages import ChannelStates
from hardware.synthetic_emg import SyntheticEMG, scenario

FS = 500.0
LEGS = ("left_calf", "right_calf")
ONSETS = (120.0, 145.0, 170.0, 195.0, 222.0)  # five movements 25-27 s apart, both legs


def plm_plan():
    events = [("movement", t, t + 2.0, None, {"level_uv": 25.0}) for t in ONSETS]
    return scenario(5, fs=FS, duration_s=300.0, channels=LEGS, events=events, floor_uv=3.0)


@pytest.fixture(scope="module")
def plm_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plm") / "night.npy"
    np.save(path, SyntheticEMG(plm_plan(), seed=5).render())
    return path


def test_replay_summary_reports_plm_per_channel_and_combined(
    plm_npy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "events.jsonl"
    assert main(["replay", str(plm_npy), "--fs", str(FS), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["type"] == "summary"
    for channel in ("ch0", "ch1"):
        assert summary["channels"][channel]["plm"] == 5
        assert summary["channels"][channel]["plm_per_hour"] == pytest.approx(
            5 / (300 / 3600), rel=0.05
        )
    combined = summary["plm"]["combined"]
    assert (combined["leg_movements"], combined["plm"], combined["plm_series"]) == (5, 5, 1)
    (series,) = summary["plm"]["series"]
    assert series["movements"] == 5 and series["channels"] == ["ch0", "ch1"]
    assert abs(series["start_s"] - ONSETS[0]) < 0.5
    assert "sleep" in summary["plm"]["scoring"]
    err = capsys.readouterr().err
    assert "ch0: 0 cramp(s)" in err and "5 PLM (" in err
    assert "legs together: 5 PLM in 1 series" in err and "per hour of good signal" in err


SESSION_START = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def scored_states() -> tuple[ChannelStates, list[bool]]:
    """The device's state after the PLM night went through the pipeline, and whether each
    block's figures were worth a state message."""
    pipeline = Pipeline(PipelineConfig(fs=FS, channels=LEGS))
    states = ChannelStates("bedroom", LEGS, SESSION_START, tz=UTC)
    changed = []
    for block in SyntheticEMG(plm_plan(), seed=5).blocks(10000):
        changed.append(states.set_limb_movements(pipeline.process(block).limb_movements))
    changed.append(states.set_limb_movements(pipeline.finish().limb_movements))
    return states, changed


def test_the_retained_state_carries_plm_counts_and_index() -> None:
    states, changed = scored_states()
    payload = json.loads(states.payload(300.0))
    assert payload["plm_tonight"] == 5 and payload["plm_series"] == 1
    assert payload["plm_per_hour"] == pytest.approx(60.0, rel=0.05)
    assert payload["channels"]["left_calf"]["plm"] == 5
    assert payload["channels"]["right_calf"]["plm_per_hour"] == pytest.approx(60.0, rel=0.05)
    # a state message is worth sending when a count changes, not on every block
    assert 1 <= sum(changed[1:]) <= 3
    assert not states.set_limb_movements(None)


def test_a_state_without_plm_figures_has_none_of_their_fields() -> None:
    payload = json.loads(ChannelStates("bedroom", LEGS, datetime.now(UTC)).payload(10.0))
    assert "plm_tonight" not in payload and "plm" not in payload["channels"]["left_calf"]


@pytest.fixture
def ingest(tmp_path: Path):
    store = Store(tmp_path / "dashboard.db")
    yield Ingest(store, IntakeLog(store, load_catalogue(store), UTC).from_mqtt)
    store.close()


def _state(**plm: object) -> dict:
    channel = {"state": "idle", "since": "2026-11-20T22:30:00.000Z", "since_s": 0.0, "good_s": 60.0}
    return {
        "schema": "crampwatch.state/1",
        "device": "bedroom",
        "session_start": "2026-11-20T22:30:00.000Z",
        "recorded_s": 60.0,
        "cramps_tonight": 0,
        "plm_tonight": 12,
        "plm_series": 2,
        "plm_per_hour": 11.5,
        **plm,
        "channels": {"left_calf": {**channel, "plm": 12, "plm_series": 2, "plm_per_hour": 11.5}},
    }


def _send(ingest: Ingest, payload: dict) -> bool:
    return ingest.handle("crampwatch/bedroom/state", json.dumps(payload).encode())


def test_the_dashboard_stores_a_state_with_plm_figures(ingest: Ingest) -> None:
    assert _send(ingest, _state())
    assert _send(ingest, _state(plm_per_hour=None))  # before any good signal
    stored = json.loads(ingest.store.query("SELECT state FROM device")[0]["state"])
    assert stored["plm_tonight"] == 12 and stored["channels"]["left_calf"]["plm"] == 12


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"plm_tonight": -1}, "'plm_tonight' is -1, outside 0..1e+06"),
        ({"plm_tonight": "many"}, "'plm_tonight' must be a number, not str"),
        ({"plm_per_hour": -2.0}, "'plm_per_hour' is -2, outside 0..10000"),
        ({"plm_series": 1.5}, "'plm_series' must be a whole number"),
    ],
)
def test_the_dashboard_refuses_bad_plm_figures(ingest: Ingest, change: dict, reason: str) -> None:
    assert not _send(ingest, _state(**change))
    refusal = ingest.store.query("SELECT reason FROM refusal")[0]["reason"]
    assert reason in refusal


def test_the_dashboard_shows_the_plm_figures_the_device_sends(tmp_path: Path) -> None:
    from dashboards.server import build

    states, _ = scored_states()
    sent = states.payload(300.0)
    process = build(tmp_path / "dashboard.db", broker=None, tz=UTC)
    try:
        assert process.ingest.handle("crampwatch/bedroom/state", sent)
        night = process.queries.night(SESSION_START.date())
        assert night.plms == json.loads(sent)["plm_tonight"] == 5
        assert night.plm_per_hour == json.loads(sent)["plm_per_hour"]
        assert night.fasciculations is None  # not measured by this device
    finally:
        process.close()
