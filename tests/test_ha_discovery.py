"""Home Assistant MQTT discovery: every key one Home Assistant 2024.3 accepts, templates that render
to what the entities expect, and the whole path through a real Mosquitto."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import numpy as np
import pytest

from firmware_host.cli import main
from firmware_host.device.ha_discovery import (
    EVENT_TYPES,
    DeviceInfo,
    birth_topic,
    discovery_messages,
    label,
)
from firmware_host.device.messages import ChannelStates, night_of
from hardware.synthetic_emg import SyntheticEMG, scenario
from messaging.topics import Topics
from tests.broker import Collector, Mosquitto

# What Home Assistant 2024.3's MQTT integration accepts in a discovery payload, per component
# (homeassistant/components/mqtt: mixins.py MQTT_ENTITY_COMMON_SCHEMA and the availability
# schemas, config.py MQTT_RO_SCHEMA, sensor.py, binary_sensor.py, event.py, discovery.py
# MQTT_ORIGIN_INFO_SCHEMA). Their discovery schemas drop unknown keys silently, so a misspelt key
# would simply do nothing: hence this check.
COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "payload_available", "payload_not_available", "device", "origin", "enabled_by_default",
    "entity_category", "icon", "json_attributes_topic", "json_attributes_template", "object_id",
    "unique_id", "qos", "encoding", "state_topic", "value_template",
}  # fmt: skip
COMPONENT_KEYS = {
    "sensor": {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "name",
        "suggested_display_precision", "state_class", "unit_of_measurement",
    },
    "binary_sensor": {
        "device_class", "expire_after", "force_update", "name", "off_delay", "payload_off",
        "payload_on",
    },
    "event": {"device_class", "name", "event_types"},
}  # fmt: skip
DEVICE_KEYS = {
    "identifiers", "connections", "manufacturer", "model", "name", "hw_version", "sw_version",
    "via_device", "suggested_area", "configuration_url",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
            "event": {"state_topic", "event_types"}}  # fmt: skip
STATE_CLASSES = {"measurement", "total", "total_increasing"}
UNITS = {"duration": {"d", "h", "min", "s", "ms"}, "data_size": {"kB", "MB", "GB", "MiB", "GiB"}}
BINARY_DEVICE_CLASSES = {"problem"}
ATTRIBUTES_BLOCKED = {  # mixins.py MQTT_ATTRIBUTES_BLOCKED, sensor.py: dropped without a word
    "assumed_state", "available", "context_recent_time", "device_class", "device_info",
    "entity_category", "entity_picture", "entity_registry_enabled_default",
    "extra_state_attributes", "force_update", "icon", "name", "should_poll", "state",
    "supported_features", "unique_id", "unit_of_measurement", "last_reset", "state_class",
}  # fmt: skip
TOPIC = re.compile(
    r"^homeassistant/(binary_sensor|sensor|event)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$"
)
CHANNELS = ("left_calf", "right_calf")
DEVICE = DeviceInfo("MCP3008 10-bit, front-end gain 1000", "http://pi.local:8000/")


def configs(device: DeviceInfo = DEVICE) -> dict[str, dict[str, Any]]:
    messages = discovery_messages(Topics("bedroom"), CHANNELS, device=device)
    return {m.topic: json.loads(m.payload) for m in messages}


def component(topic: str) -> str:
    return topic.split("/")[1]


def by_object(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {topic.split("/")[3]: config for topic, config in items.items()}


def render(template: str, payload: dict[str, Any]) -> str:
    """As Home Assistant renders a value template: Jinja2 with `value_json`; strict, so that a
    wrong name fails here."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=payload, value=json.dumps(payload))


def test_every_key_is_one_home_assistant_accepts_with_valid_values() -> None:
    for topic, config in configs().items():
        kind = component(topic)
        assert TOPIC.match(topic)
        assert set(config) <= COMMON_KEYS | COMPONENT_KEYS[kind], topic
        assert REQUIRED[kind] <= set(config), topic
        assert set(config["device"]) <= DEVICE_KEYS and config["device"]["identifiers"]
        assert set(config["origin"]) <= ORIGIN_KEYS and config["origin"]["name"] == "crampwatch"
        assert config["qos"] in (0, 1, 2)
        assert config.get("entity_category", "diagnostic") in ("config", "diagnostic")
        assert config.get("state_class", "measurement") in STATE_CLASSES
        precision = config.get("suggested_display_precision", 0)
        assert isinstance(precision, int) and precision >= 0
        if kind == "sensor" and config.get("device_class"):
            assert config["unit_of_measurement"] in UNITS[config["device_class"]], topic
        if kind == "binary_sensor" and "device_class" in config:
            assert config["device_class"] in BINARY_DEVICE_CLASSES
        assert config["name"][0].isupper(), config["name"]
        assert "last_reset_value_template" not in config or config["state_class"] == "total"


def test_unique_ids_availability_device_and_qos_follow_the_device() -> None:
    items = configs()
    ids = [c["unique_id"] for c in items.values()]
    assert len(set(ids)) == len(ids) == 6 * len(CHANNELS) + 5
    for config in items.values():
        assert config["unique_id"].startswith("crampwatch_bedroom_")
        assert config["availability_topic"] == "crampwatch/bedroom/status"
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online",
            "offline",
        )
        device = config["device"]
        assert device["identifiers"] == ["crampwatch_bedroom"]
        assert device["hw_version"] == "MCP3008 10-bit, front-end gain 1000"
        assert device["configuration_url"] == "http://pi.local:8000/"
        # What the device sends with QoS 1 is subscribed with QoS 1 (the live level is QoS 0).
        wanted = 0 if config["state_topic"].endswith("/envelope") else 1
        assert config["qos"] == wanted
    bare = configs(DeviceInfo())
    assert not {"hw_version", "configuration_url"} & set(next(iter(bare.values()))["device"])


def test_the_entities_a_home_assistant_user_gets() -> None:
    items = by_object(configs())
    assert {o: c["name"] for o, c in items.items() if not o.startswith("right")} == {
        "left_calf_cramp": "Left calf cramp",
        "left_calf_level": "Left calf EMG level",
        "left_calf_envelope": "Left calf EMG level live",
        "left_calf_state": "Left calf channel state",
        "left_calf_signal_problem": "Left calf signal",
        "left_calf_good_signal": "Left calf good signal",
        "cramps_tonight": "Cramps tonight",
        "session": "Session",
        "cramp_event": "Cramp event",
        "storage_problem": "Storage",
        "recording_free": "Recording disk free",
    }
    diagnostic = {o for o, c in items.items() if c.get("entity_category") == "diagnostic"}
    assert diagnostic == {
        *(f"{c}_{k}" for c in CHANNELS for k in ("state", "signal_problem", "good_signal")),
        "storage_problem", "recording_free",
    }  # fmt: skip
    assert items["cramps_tonight"]["state_class"] == "total_increasing"
    assert items["left_calf_envelope"]["enabled_by_default"] is False  # 1 row a second: opt-in
    assert items["left_calf_level"]["suggested_display_precision"] == 1
    assert items["left_calf_level"]["state_topic"] == "crampwatch/bedroom/state"
    assert items["cramp_event"]["event_types"] == ["cramp_started", "cramp_ended", "movement_ended"]
    assert label("right-calf_medial") == "Right calf medial"


def state_payload(
    states: list[tuple[str, str, float]], problems: dict[str, tuple[str, ...]], storage: dict
) -> dict[str, Any]:
    channel_states = ChannelStates(
        "bedroom", CHANNELS, datetime(2026, 11, 21, 22, 0, tzinfo=UTC), storage=lambda: storage
    )
    for channel, state, at_s in states:
        channel_states.change(channel, state, at_s)
    for channel, found in problems.items():
        channel_states.quality(channel, found)
    channel_states.add_envelope(np.array([[4.0, 6.0], [6.0, np.nan]]))
    return json.loads(channel_states.payload(7200.0))


def test_templates_render_what_the_entities_expect() -> None:
    items = by_object(configs())
    storage = {
        "outbox": {"storage": "memory", "unsent": 3, "dropped": 0, "problem": "disk full"},
        "recording": {"state": "recording", "free_mb": 812.5},
    }
    payload = state_payload(
        [("left_calf", "cramp", 100.0), ("right_calf", "signal_lost", 3600.0)],
        {"right_calf": ("electrode_off",)},
        storage,
    )

    def value(object_id: str) -> str:
        return render(items[object_id]["value_template"], payload).strip()

    def attributes(object_id: str) -> dict:
        return json.loads(render(items[object_id]["json_attributes_template"], payload))

    assert value("left_calf_cramp") == "ON"
    assert value("right_calf_cramp") == "None"  # unknown while the signal is lost, not "off"
    assert value("left_calf_signal_problem") == "OFF"
    assert value("right_calf_signal_problem") == "ON"
    assert attributes("right_calf_signal_problem") == {"problems": ["electrode_off"]}
    assert attributes("left_calf_cramp")["channel_state"] == "cramp"
    for object_id, config in items.items():  # no attribute Home Assistant would drop
        if "json_attributes_template" in config:
            assert not set(attributes(object_id)) & ATTRIBUTES_BLOCKED, object_id
    assert value("left_calf_state") == "cramp" and value("right_calf_state") == "signal_lost"
    assert float(value("left_calf_level")) == 5.0 and float(value("right_calf_level")) == 6.0
    assert float(value("left_calf_good_signal")) == 2.0
    assert float(value("right_calf_good_signal")) == 1.0
    assert value("cramps_tonight") == "1"
    assert attributes("cramps_tonight")["night"] == "2026-11-21"
    assert value("session") == "night" and attributes("session")["session_id"] is None
    dialysis = {**payload, "session_kind": "dialysis", "session_id": "d-1", "cramps_session": 2}
    assert render(items["session"]["value_template"], dialysis).strip() == "dialysis"
    assert (
        json.loads(render(items["session"]["json_attributes_template"], dialysis))["cramps_session"]
        == 2
    )
    assert render(items["session"]["value_template"], {}).strip() == "night"  # an older device
    assert value("storage_problem") == "ON" and attributes("storage_problem") == storage
    assert float(value("recording_free")) == 812.5
    payload["storage"]["outbox"]["storage"] = "disk"
    assert render(items["storage_problem"]["value_template"], payload).strip() == "OFF"
    payload.pop("storage")  # a device with MQTT only, nothing stored
    assert value("recording_free") == "None" and value("storage_problem") == "OFF"
    event = {"kind": "movement", "phase": "ended", "channel": "left_calf", "start": "x",
             "duration_s": 3.2, "peak_uv": 40.0, "event_id": "e1"}  # fmt: skip
    fired = json.loads(render(items["cramp_event"]["value_template"], event))
    assert fired["event_type"] == "movement_ended" and fired["event_type"] in EVENT_TYPES
    live = {"channels": {"left_calf": {"mean_uv": 4.25}}}
    assert render(items["left_calf_envelope"]["value_template"], live) == "4.25"


def test_home_assistant_announces_itself_on_its_status_topic() -> None:
    assert birth_topic() == "homeassistant/status"


@pytest.fixture(scope="module")
def short_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = scenario(5, fs=1000.0, duration_s=300.0, channels=("ch0", "ch1"),
                    events=[("cramp", 60.0, 90.0, "ch0"), ("movement", 150.0, 153.0),
                            ("cramp", 200.0, 230.0, "ch1")])  # fmt: skip
    path = tmp_path_factory.mktemp("ha") / "night.npy"
    np.save(path, SyntheticEMG(plan, seed=5).render().astype(np.float32))
    return path


def test_through_a_real_broker_every_entity_reads_the_devices_messages(
    short_night: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    collector = Collector(mosquitto, ["homeassistant/#", "crampwatch/#"])
    config = tmp_path / "c.toml"
    config.write_text('[homeassistant]\ndashboard_url = "http://pi.local:8000/"\n')
    argv = ["run", "--play", str(short_night), "--signal-fs", "1000", "--signal-units", "uV",
            "--speed", "0", "--broker", mosquitto.address, "--outbox", str(tmp_path / "o.db"),
            "--device", "bedroom",
            "--record-dir", str(tmp_path / "nights"), "--config", str(config)]  # fmt: skip
    assert main(argv) == 0
    assert collector.wait_for(lambda: collector.on("/status")[-1:] == [b"offline"], 20)
    found = {t: json.loads(p) for t, p, _ in collector.messages if t.endswith("/config")}
    assert len(found) == 6 * 2 + 5
    retained = {t for t, _, r in collector.messages if t.endswith("/config") and not r}
    assert retained == set(found)  # published retained (a live subscriber sees retain=False)
    device = next(iter(found.values()))["device"]
    assert device["configuration_url"] == "http://pi.local:8000/"
    assert device["hw_version"] == "recording playback (night.npy)"
    state = collector.json_on("/state")[-1]
    items = by_object(found)
    assert render(items["ch0_cramp"]["value_template"], state).strip() == "OFF"
    assert render(items["ch0_state"]["value_template"], state).strip() == "idle"
    assert float(render(items["ch0_level"]["value_template"], state)) > 0
    assert float(render(items["ch1_good_signal"]["value_template"], state)) == pytest.approx(
        300 / 3600, abs=0.002
    )
    assert float(render(items["recording_free"]["value_template"], state)) > 0
    assert render(items["storage_problem"]["value_template"], state).strip() == "OFF"
    assert render(items["session"]["value_template"], state).strip() == "night"
    events = collector.json_on("/event")
    start = datetime.fromisoformat(state["session_start"].replace("Z", "+00:00"))
    tonight = [
        e for e in events if e["kind"] == "cramp" and e["phase"] == "started"
        and night_of(start + timedelta(seconds=e["start_s"])).isoformat() == state["night"]
    ]  # fmt: skip
    assert render(items["cramps_tonight"]["value_template"], state) == str(len(tonight))
    fired = [
        json.loads(render(items["cramp_event"]["value_template"], e))["event_type"] for e in events
    ]
    assert set(fired) <= set(EVENT_TYPES) and "cramp_started" in fired and "movement_ended" in fired
    collector.close()
