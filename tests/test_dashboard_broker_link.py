"""The dashboard says when it cannot reach its broker: at once, then one coalesced line per
interval with the number of failed attempts, that it is back, and nothing on a clean stop; the
device page shows the link."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from dashboards.server import build
from messaging.outage import OutageLog
from tests.broker import Mosquitto, free_port

LOGGER = "crampwatch.dashboard.ingest"


def test_failures_are_logged_once_then_coalesced_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    link = OutageLog(logging.getLogger("test.link"), "pi.lan:1883", who="ingest",
                     interval_s=60.0, clock=lambda: now[0])  # fmt: skip
    with caplog.at_level(logging.INFO, logger="test.link"):
        for second in range(0, 150, 2):  # an attempt every 2 s for 150 s: 75 attempts
            now[0] = float(second)
            link.failed("Connection refused")
        now[0] = 151.0
        link.connected()
        link.stopping()
        link.lost("Normal disconnection")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "ingest: cannot reach the MQTT broker at pi.lan:1883 (Connection refused); retrying "
        "until it answers"
    )
    assert lines[1].startswith("ingest: still cannot reach the MQTT broker at pi.lan:1883: 30 more")
    assert lines[2].startswith("ingest: still cannot reach the MQTT broker at pi.lan:1883: 30 more")
    assert lines[3] == (
        "ingest: connected to the MQTT broker at pi.lan:1883 after 75 failed attempt(s) over 151 s"
    )
    assert len(lines) == 4  # 75 attempts, 3 lines; the asked-for disconnection says nothing
    assert link.status()["connected"] is False


@pytest.mark.slow
def test_the_dashboard_says_at_once_that_its_broker_is_unreachable_and_when_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here yet
    caplog.set_level(logging.INFO, logger=LOGGER)
    process = build(tmp_path / "d.db", broker=("127.0.0.1", port), tz=ZoneInfo("UTC"))
    client = TestClient(process.app, base_url="http://127.0.0.1")

    def lines(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if text in r.getMessage()]

    deadline = time.monotonic() + 5
    while not lines("cannot reach") and time.monotonic() < deadline:
        time.sleep(0.05)
    first = lines("cannot reach")
    assert first and f"127.0.0.1:{port}" in first[0] and "retrying" in first[0]
    time.sleep(4)  # more attempts (paho waits 1, 2, 4 s between them): no more lines
    assert len(lines("cannot reach")) == 1
    link = client.get("/api/status").json()["broker"]
    assert link["connected"] is False and link["failed_attempts"] >= 2
    assert "Not connected to the MQTT broker at 127.0.0.1:" in client.get("/status").text

    broker = Mosquitto(tmp_path, port=port)
    broker.start()
    try:
        assert process.mqtt is not None and process.mqtt.connected.wait(30)
        assert lines("after") and "failed attempt(s)" in lines("after")[0]
        assert client.get("/api/status").json()["broker"]["connected"] is True
        assert "Connected to the MQTT broker at" in client.get("/status").text
        process.close()
        time.sleep(0.5)
        assert not lines("lost the broker") and not lines("lost the MQTT broker")
    finally:
        broker.stop()
