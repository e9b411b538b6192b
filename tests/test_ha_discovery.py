"""Home Assistant MQTT discovery: topic format and the keys Home Assistant needs."""

from __future__ import annotations

import json
import re

from firmware_host.device.ha_discovery import birth_topic, discovery_messages
from messaging.topics import Topics

TOPIC = re.compile(
    r"^homeassistant/(binary_sensor|sensor|event)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$"
)


def _configs() -> dict[str, dict]:
    messages = discovery_messages(Topics("bedroom"), ("left_calf", "right_calf"))
    return {m.topic: json.loads(m.payload) for m in messages}


def test_every_entity_follows_the_discovery_topic_format_with_unique_ids() -> None:
    configs = _configs()
    assert all(TOPIC.match(topic) for topic in configs)
    ids = [c["unique_id"] for c in configs.values()]
    assert len(set(ids)) == len(ids) == 2 * 2 + 2


def test_every_entity_has_state_topic_device_and_availability_from_the_status_topic() -> None:
    for config in _configs().values():
        assert config["state_topic"].startswith("crampwatch/bedroom/")
        assert config["availability_topic"] == "crampwatch/bedroom/status"
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online",
            "offline",
        )
        assert config["device"]["identifiers"] == ["crampwatch_bedroom"]
        assert {"name", "manufacturer", "model", "sw_version"} <= set(config["device"])
        assert config["name"] and config["unique_id"].startswith("crampwatch_bedroom_")


def test_a_binary_sensor_per_channel_level_sensors_a_count_and_a_cramp_event() -> None:
    configs = _configs()
    kinds = sorted(topic.split("/")[1] for topic in configs)
    assert kinds == ["binary_sensor"] * 2 + ["event"] + ["sensor"] * 3
    cramp = configs["homeassistant/binary_sensor/crampwatch_bedroom/left_calf_cramp/config"]
    assert cramp["state_topic"] == "crampwatch/bedroom/state"
    assert "left_calf" in cramp["value_template"] and "cramp" in cramp["value_template"]
    event = configs["homeassistant/event/crampwatch_bedroom/cramp_event/config"]
    assert event["state_topic"] == "crampwatch/bedroom/event"
    assert {"cramp_started", "cramp_ended"} <= set(event["event_types"])
    level = configs["homeassistant/sensor/crampwatch_bedroom/right_calf_envelope/config"]
    assert level["unit_of_measurement"] == "µV" and level["state_class"] == "measurement"
    count = configs["homeassistant/sensor/crampwatch_bedroom/cramps_tonight/config"]
    assert count["value_template"] == "{{ value_json.cramps_tonight }}"


def test_home_assistant_announces_itself_on_its_status_topic() -> None:
    assert birth_topic() == "homeassistant/status"
