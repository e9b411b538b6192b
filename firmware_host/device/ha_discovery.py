"""Home Assistant MQTT discovery for a crampwatch device.

Topics follow `<discovery_prefix>/<component>/<node_id>/<object_id>/config`; every entity belongs to
one device (with `origin`, `hw_version` and, when set, the dashboard as `configuration_url`), takes
its availability from the status topic, and subscribes with QoS 1 to what the device sends with
QoS 1. Published retained, and again (rate-limited, see `MqttLink`) when Home Assistant announces
`online` on `<discovery_prefix>/status`. Every key is one Home Assistant 2024.3 accepts for the
component (tests/test_ha_discovery.py checks them against its schemas).

Entities, per channel: the cramp in progress (unknown while the signal is lost), the EMG level
(mean over the last state message, about a minute), a live EMG level (every second; disabled by
default, as it writes a row per second to Home Assistant's recorder) and, as diagnostics, the
channel's state, a signal problem and its good-signal time. For the device: tonight's cramps (a
count that starts again at 12:00 local time: `total_increasing`, so Home Assistant's statistics
take a drop to 0 as a reset, never as a negative), cramp events, and as diagnostics a storage
problem (outbox in memory, recording paused) and the free space where nights are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsp import __version__
from firmware_host.device.messages import to_json
from messaging.topics import OFFLINE, ONLINE, Topics

DEFAULT_PREFIX = "homeassistant"
DIAGNOSTIC = "diagnostic"
EVENT_TYPES = ("cramp_started", "cramp_ended", "movement_ended")  # movements are sent when ended


@dataclass(frozen=True)
class DiscoveryMessage:
    topic: str
    payload: bytes


@dataclass(frozen=True)
class DeviceInfo:
    """What Home Assistant shows about the device besides its entities."""

    hw_version: str | None = None  # the converter and front end, e.g. "MCP3008 10-bit, gain 1000"
    configuration_url: str | None = None  # the dashboard


def birth_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Where Home Assistant announces `online` when it (re)starts."""
    return f"{prefix}/status"


def label(channel: str) -> str:
    """`left_calf` -> `Left calf`."""
    text = channel.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def discovery_messages(
    topics: Topics,
    channels: tuple[str, ...],
    prefix: str = DEFAULT_PREFIX,
    device: DeviceInfo | None = None,
) -> list[DiscoveryMessage]:
    """The config messages for the device's entities (publish retained)."""
    node = f"crampwatch_{topics.device}"
    common = _common(topics, node, device or DeviceInfo())
    entities: list[tuple[str, str, dict[str, Any]]] = []
    for channel in channels:
        entities += _channel_entities(topics, channel)
    entities += _device_entities(topics)
    return [
        DiscoveryMessage(
            f"{prefix}/{component}/{node}/{object_id}/config",
            to_json({**common, "unique_id": f"{node}_{object_id}", **config}),
        )
        for component, object_id, config in entities
    ]


def _channel_entities(topics: Topics, channel: str) -> list[tuple[str, str, dict[str, Any]]]:
    name = label(channel)
    this = f"value_json.channels['{channel}']"
    return [
        (
            "binary_sensor",
            f"{channel}_cramp",
            {
                "name": f"{name} cramp",
                "state_topic": topics.state,
                "qos": 1,
                # "None" makes it unknown: no signal is not "no cramp".
                "value_template": (
                    f"{{% set c = {this} %}}"
                    "{{ 'None' if c.state == 'signal_lost' else "
                    "('ON' if c.state == 'cramp' else 'OFF') }}"
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": topics.state,
                # Not `state`: Home Assistant drops attributes of that name.
                "json_attributes_template": (
                    f"{{% set c = {this} %}}"
                    "{{ {'channel_state': c.state, 'since': c.since, 'good_s': c.good_s} | tojson }}"
                ),
                "icon": "mdi:human-handsdown",
            },
        ),
        (
            "sensor",
            f"{channel}_level",
            {
                "name": f"{name} EMG level",
                "state_topic": topics.state,
                "qos": 1,
                "value_template": f"{{{{ {this}.level_uv }}}}",
                "unit_of_measurement": "µV",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "icon": "mdi:sine-wave",
            },
        ),
        (
            "sensor",
            f"{channel}_envelope",
            {
                "name": f"{name} EMG level live",
                "state_topic": topics.envelope,
                "qos": 0,
                "value_template": f"{{{{ {this}.mean_uv }}}}",
                "unit_of_measurement": "µV",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "expire_after": 30,
                "enabled_by_default": False,
                "icon": "mdi:sine-wave",
            },
        ),
        (
            "sensor",
            f"{channel}_state",
            {
                "name": f"{name} channel state",
                "state_topic": topics.state,
                "qos": 1,
                "value_template": f"{{{{ {this}.state }}}}",
                "entity_category": DIAGNOSTIC,
                "icon": "mdi:state-machine",
            },
        ),
        (
            "binary_sensor",
            f"{channel}_signal_problem",
            {
                "name": f"{name} signal",
                "state_topic": topics.state,
                "qos": 1,
                "device_class": "problem",
                "value_template": (
                    f"{{% set c = {this} %}}"
                    "{{ 'ON' if c.state == 'signal_lost' or c.problems else 'OFF' }}"
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": topics.state,
                "json_attributes_template": f"{{{{ {{'problems': {this}.problems}} | tojson }}}}",
                "entity_category": DIAGNOSTIC,
            },
        ),
        (
            "sensor",
            f"{channel}_good_signal",
            {
                "name": f"{name} good signal",
                "state_topic": topics.state,
                "qos": 1,
                "value_template": f"{{{{ ({this}.good_s / 3600) | round(3) }}}}",
                "device_class": "duration",
                "unit_of_measurement": "h",
                "suggested_display_precision": 1,
                "entity_category": DIAGNOSTIC,
            },
        ),
    ]


def _device_entities(topics: Topics) -> list[tuple[str, str, dict[str, Any]]]:
    storage = "value_json.storage"
    return [
        (
            "sensor",
            "cramps_tonight",
            {
                "name": "Cramps tonight",
                "state_topic": topics.state,
                "qos": 1,
                "value_template": "{{ value_json.cramps_tonight }}",
                "state_class": "total_increasing",
                "json_attributes_topic": topics.state,
                "json_attributes_template": (
                    "{{ {'night': value_json.night, 'session_start': value_json.session_start}"
                    " | tojson }}"
                ),
                "icon": "mdi:counter",
            },
        ),
        (
            "sensor",
            "session",
            {
                "name": "Session",
                "state_topic": topics.state,
                "qos": 1,
                "value_template": "{{ value_json.session_kind | default('night') }}",
                "json_attributes_topic": topics.state,
                "json_attributes_template": (
                    "{{ {'session_id': value_json.session_id | default(None), "
                    "'cramps_session': value_json.cramps_session | default(None), "
                    "'session_start': value_json.session_start} | tojson }}"
                ),
                "icon": "mdi:seat-recline-extra",
            },
        ),
        (
            "event",
            "cramp_event",
            {
                "name": "Cramp event",
                "state_topic": topics.event,
                "qos": 1,
                "event_types": list(EVENT_TYPES),
                "value_template": (
                    "{{ {'event_type': value_json.kind ~ '_' ~ value_json.phase, "
                    "'channel': value_json.channel, 'start': value_json.start, "
                    "'duration_s': value_json.duration_s, 'peak_uv': value_json.peak_uv, "
                    "'event_id': value_json.event_id} | tojson }}"
                ),
                "icon": "mdi:alert-circle-outline",
            },
        ),
        (
            "binary_sensor",
            "storage_problem",
            {
                "name": "Storage",
                "state_topic": topics.state,
                "qos": 1,
                "device_class": "problem",
                "value_template": (
                    f"{{% set s = {storage} | default({{}}) %}}"
                    "{{ 'ON' if (s.outbox is defined and s.outbox.storage != 'disk') or "
                    "(s.recording is defined and s.recording.state not in "
                    "['recording', 'off']) else 'OFF' }}"
                ),
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": topics.state,
                "json_attributes_template": f"{{{{ {storage} | default({{}}) | tojson }}}}",
                "entity_category": DIAGNOSTIC,
            },
        ),
        (
            "sensor",
            "recording_free",
            {
                "name": "Recording disk free",
                "state_topic": topics.state,
                "qos": 1,
                "value_template": (
                    f"{{{{ {storage}.recording.free_mb if {storage} is defined and "
                    f"{storage}.recording is defined else 'None' }}}}"
                ),
                "device_class": "data_size",
                "unit_of_measurement": "MB",
                "state_class": "measurement",
                "suggested_display_precision": 0,
                "entity_category": DIAGNOSTIC,
            },
        ),
    ]


def _common(topics: Topics, node: str, device: DeviceInfo) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [node],
        "name": f"crampwatch {topics.device}",
        "manufacturer": "crampwatch",
        "model": "calf-EMG cramp detector",
        "sw_version": __version__,
    }
    if device.hw_version:
        block["hw_version"] = device.hw_version
    if device.configuration_url:
        block["configuration_url"] = device.configuration_url
    return {
        "availability_topic": topics.status,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": block,
        "origin": {"name": "crampwatch", "sw_version": __version__},
    }
