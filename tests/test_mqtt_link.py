"""The device's MQTT link against a real Mosquitto: status, outbox delivery, outages."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

import pytest

from firmware_host.device.ha_discovery import birth_topic, discovery_messages
from firmware_host.device.mqtt_link import BIRTH_FLOOD, MqttLink
from firmware_host.device.outbox import Outbox
from messaging.broker import BrokerSettings, parse_broker
from messaging.topics import Topics
from tests.broker import Collector, Mosquitto, free_port


def _link(broker_port: int, outbox: Outbox, **kwargs) -> MqttLink:
    return MqttLink(
        BrokerSettings(host="127.0.0.1", port=broker_port, keepalive_s=5),
        Topics("bedroom"),
        outbox,
        **kwargs,
    )


def _events(n: int, outbox: Outbox, start: int = 0) -> None:
    for i in range(start, start + n):
        payload = json.dumps({"event_id": f"e{i}"}).encode()
        outbox.put("crampwatch/bedroom/event", payload, kind="event")


def test_online_on_connect_and_every_outbox_message_is_delivered_and_marked_sent(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto)
    with Outbox(tmp_path / "outbox.db") as outbox:
        _events(50, outbox)
        link = _link(mosquitto.port, outbox)
        link.start()
        assert link.connected.wait(10)
        assert collector.wait_for(lambda: len(collector.on("/event")) >= 50)
        assert collector.wait_for(lambda: outbox.counts().unsent == 0)
        assert collector.on("/status")[0] == b"online"
        ids = [p["event_id"] for p in collector.json_on("/event")]
        assert ids == [f"e{i}" for i in range(50)]
        link.stop()
    assert collector.wait_for(lambda: collector.on("/status")[-1:] == [b"offline"])
    collector.close()


def test_a_late_subscriber_sees_the_retained_status(mosquitto: Mosquitto, tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        link = _link(mosquitto.port, outbox)
        link.start()
        assert link.connected.wait(10)
        late = Collector(mosquitto, "crampwatch/#")
        assert late.wait_for(lambda: late.on("/status") == [b"online"])
        assert late.messages[0][2]  # retained
        link.stop()
        late.close()


def test_events_written_while_the_broker_is_down_arrive_when_it_is_back(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Collector(mosquitto, "crampwatch/#")
    with Outbox(tmp_path / "outbox.db") as outbox, caplog.at_level(logging.INFO):
        link = _link(mosquitto.port, outbox)
        link.start()
        assert link.connected.wait(10)
        _events(5, outbox)
        link.kick()
        assert collector.wait_for(lambda: outbox.counts().unsent == 0)
        mosquitto.stop()
        assert collector.wait_for(lambda: not link.connected.is_set(), 10)
        _events(20, outbox, start=5)
        link.kick()
        assert outbox.counts().unsent == 20
        mosquitto.start()
        assert collector.wait_for(lambda: outbox.counts().unsent == 0, 40)
        assert collector.wait_for(
            lambda: len({p["event_id"] for p in collector.json_on("/event")}) == 25, 20
        )
        link.stop()
    assert "lost the MQTT broker" in caplog.text
    assert "connected to the MQTT broker at 127.0.0.1" in caplog.text and "(again)" in caplog.text
    collector.close()


def test_an_unreachable_broker_at_start_is_retried_and_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    with Outbox(tmp_path / "outbox.db") as outbox, caplog.at_level(logging.WARNING):
        link = _link(port, outbox)
        link.start()
        _events(3, outbox)
        broker_dir = tmp_path / "late-broker"
        broker_dir.mkdir()
        assert not link.connected.wait(1.5)
        assert "cannot reach the MQTT broker" in caplog.text
        broker = Mosquitto(broker_dir, port=port)
        broker.start()
        try:
            assert link.connected.wait(40)
            collector = Collector(broker)
            assert collector.wait_for(lambda: outbox.counts().unsent == 0, 20)
            collector.close()
            link.stop()
        finally:
            broker.stop()


def _discovery_link(port: int, outbox: Outbox, interval_s: float) -> MqttLink:
    topics = Topics("bedroom")
    return _link(
        port,
        outbox,
        discovery=lambda: discovery_messages(topics, ("left_calf",)),
        discovery_birth_topic=birth_topic(),
        discovery_interval_s=interval_s,
    )


def test_discovery_is_published_retained_and_again_when_home_assistant_comes_online(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, "homeassistant/+/+/+/config")
    per_send = len(discovery_messages(Topics("bedroom"), ("left_calf",)))
    with Outbox(tmp_path / "outbox.db") as outbox:
        link = _discovery_link(mosquitto.port, outbox, interval_s=0.2)
        link.start()
        assert link.connected.wait(10)
        assert collector.wait_for(lambda: len(collector.messages) == per_send)
        collector.client.publish("homeassistant/status", "online", qos=1)
        assert collector.wait_for(lambda: len(collector.messages) == 2 * per_send)
        assert (link.discovery_requests, link.discovery_resends) == (1, 1)
        link.stop()
    collector.close()


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_flood_of_birth_messages_is_coalesced_into_few_resends_in_bounded_memory(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """30,000 `online` messages (the attack of issue 10) through a real broker."""
    collector = Collector(mosquitto, "homeassistant/+/+/+/config")
    per_send = len(discovery_messages(Topics("bedroom"), ("left_calf",)))
    flood = 30_000
    with Outbox(tmp_path / "outbox.db") as outbox, caplog.at_level(logging.INFO):
        link = _discovery_link(mosquitto.port, outbox, interval_s=2.0)
        link.start()
        assert link.connected.wait(10)
        assert collector.wait_for(lambda: len(collector.messages) == per_send)
        before = _rss_kb()
        started = time.monotonic()
        subprocess.run(
            ["mosquitto_pub", "-p", str(mosquitto.port), "-t", "homeassistant/status", "-l"],
            input=("online\n" * flood).encode(), check=True, timeout=60,
        )  # fmt: skip
        time.sleep(2.5)  # past the interval: the last request gets its re-send
        elapsed = time.monotonic() - started
        grown_kb = _rss_kb() - before
        # The device stopped listening: the broker kept the rest of the flood to itself.
        assert BIRTH_FLOOD < link.discovery_requests < flood // 2
        resends = link.discovery_resends
        assert 1 <= resends <= 2 + elapsed / 2.0
        assert collector.wait_for(lambda: len(collector.messages) == per_send * (1 + resends))
        assert grown_kb < 20_000, f"grew {grown_kb} KB"
        assert "is flooded" in caplog.text
        # It listens again after the interval: a lone announcement is answered.
        time.sleep(1.0)
        asked = link.discovery_requests
        collector.client.publish("homeassistant/status", "online", qos=1)
        assert collector.wait_for(lambda: link.discovery_requests == asked + 1, 10)
        assert collector.wait_for(lambda: link.discovery_resends == resends + 1, 10)
        link.stop()
    collector.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("localhost", ("localhost", 1883)), ("pi.local:1884", ("pi.local", 1884))],
)
def test_broker_addresses_parse_with_a_default_port(text: str, expected: tuple) -> None:
    assert parse_broker(text) == expected


@pytest.mark.parametrize("text", ["", ":1883", "host:port", "host:70000"])
def test_bad_broker_addresses_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="broker"):
        parse_broker(text)
