"""`crampwatch demo`: broker, dashboard and a simulated device, end to end, on demo data."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from dashboards.store import Store
from firmware_host.cli import main
from firmware_host.demo.local_broker import free_port


def test_the_demo_fills_the_dashboard_through_the_broker(tmp_path: Path) -> None:
    # three days always hold a dialysis day (Monday, Wednesday or Friday)
    argv = ["demo", "--nights", "3", "--hours", "1", "--port", str(free_port()),
            "--dir", str(tmp_path), "--tz", "Europe/Berlin", "--exit-when-done"]  # fmt: skip
    assert main(argv) == 0
    with Store(tmp_path / "dashboard.db") as store:
        sessions = store.query("SELECT device, recorded_s, kind, session_id FROM session")
        nights = [s for s in sessions if s["kind"] == "night"]
        assert len(nights) == 3 and all(s["recorded_s"] == 3600.0 for s in nights)
        assert {s["device"] for s in sessions} == {"demo-device"}
        dialysis = [s for s in sessions if s["kind"] == "dialysis"]
        named = store.query("SELECT session_id, details FROM named_session")
        assert dialysis and {s["session_id"] for s in dialysis} == {n["session_id"] for n in named}
        for row in named:  # recorded by the device, details logged on the session topic
            assert json.loads(row["details"])["note"] == "demo: made-up session details"
        notes = {e.note for e in store.intakes()} | {r["note"] for r in store.labs()}
        assert notes and all(note.startswith("demo:") for note in notes)
        events = [json.loads(r["payload"]) for r in store.query("SELECT payload FROM event")]
        assert all(e["device"] == "demo-device" for e in events)
        assert store.counter("refused") == 0


def test_the_demo_removes_its_temporary_folder_when_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    argv = ["demo", "--nights", "1", "--hours", "0.1", "--port", str(free_port()),
            "--tz", "UTC", "--exit-when-done"]  # fmt: skip
    assert main(argv) == 0
    assert list(tmp_path.glob("crampwatch-demo-*")) == []


def test_terminal_options_without_terminal_are_refused_with_the_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--hours", "2", "--out", "night.jsonl", "--truth-out", "t.csv"]) == 2
    error = capsys.readouterr().err
    assert "--out, --truth-out" in error and "add --terminal" in error
