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
    argv = ["demo", "--nights", "2", "--hours", "1", "--port", str(free_port()),
            "--dir", str(tmp_path), "--tz", "Europe/Berlin", "--exit-when-done"]  # fmt: skip
    assert main(argv) == 0
    with Store(tmp_path / "dashboard.db") as store:
        sessions = store.query("SELECT device, recorded_s FROM session")
        assert len(sessions) == 2 and all(s["recorded_s"] == 3600.0 for s in sessions)
        assert {s["device"] for s in sessions} == {"demo-device"}
        notes = {e.note for e in store.intakes()}
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
