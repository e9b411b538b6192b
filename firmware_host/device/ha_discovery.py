"""Home Assistant MQTT discovery for a crampwatch device.

Topics follow `<discovery_prefix>/<component>/<node_id>/<object_id>/config`; every entity
belongs to one device and takes its availability from the status topic. Published retained, and
again whenever Home Assistant announces `online` on `<discovery_prefix>/status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dsp import __version__
from firmware_host.device.messages import to_json
from messaging.topics import OFFLINE, ONLINE, Topics

DEFAULT_PREFIX = "homeassistant"


@dataclass(frozen=True)
class DiscoveryMessage:
    topic: str
    payload: bytes


def birth_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Where Home Assistant announces `online` when it (re)starts."""
    return f"{prefix}/status"


def discovery_messages(
    topics: Topics, channels: tuple[str, ...], prefix: str = DEFAULT_PREFIX
) -> list[DiscoveryMessage]:
    """The config messages for the device's entities (publish retained)."""
    node = f"crampwatch_{topics.device}"
    common = _common(topics, node)
    messages = []
    for channel in channels:
        label = channel.replace("_", " ")
        messages.append(
            _message(
                prefix,
                "binary_sensor",
                node,
                f"{channel}_cramp",
                {
                    **common,
                    "name": f"{label} cramp",
                    "unique_id": f"{node}_{channel}_cramp",
                    "state_topic": topics.state,
                    "value_template": (
                        f"{{{{ 'ON' if value_json.channels['{channel}'].state == 'cramp' "
                        "else 'OFF' }}"
                    ),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "icon": "mdi:human-handsdown",
                },
            )
        )
        messages.append(
            _message(
                prefix,
                "sensor",
                node,
                f"{channel}_envelope",
                {
                    **common,
                    "name": f"{label} EMG level",
                    "unique_id": f"{node}_{channel}_envelope",
                    "state_topic": topics.envelope,
                    "value_template": f"{{{{ value_json.channels['{channel}'].mean_uv }}}}",
                    "unit_of_measurement": "µV",
                    "state_class": "measurement",
                    "expire_after": 30,
                    "icon": "mdi:sine-wave",
                },
            )
        )
    messages.append(
        _message(
            prefix,
            "sensor",
            node,
            "cramps_tonight",
            {
                **common,
                "name": "cramps tonight",
                "unique_id": f"{node}_cramps_tonight",
                "state_topic": topics.state,
                "value_template": "{{ value_json.cramps_tonight }}",
                "state_class": "total",
                "icon": "mdi:counter",
            },
        )
    )
    messages.append(
        _message(
            prefix,
            "event",
            node,
            "cramp_event",
            {
                **common,
                "name": "cramp event",
                "unique_id": f"{node}_cramp_event",
                "state_topic": topics.event,
                "event_types": [
                    "cramp_started",
                    "cramp_ended",
                    "movement_started",
                    "movement_ended",
                ],
                "value_template": (
                    '{"event_type": "{{ value_json.kind }}_{{ value_json.phase }}", '
                    '"channel": "{{ value_json.channel }}", '
                    '"duration_s": {{ value_json.duration_s }}, '
                    '"event_id": "{{ value_json.event_id }}"}'
                ),
            },
        )
    )
    return messages


def _common(topics: Topics, node: str) -> dict[str, Any]:
    return {
        "availability_topic": topics.status,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": {
            "identifiers": [node],
            "name": f"crampwatch {topics.device}",
            "manufacturer": "crampwatch",
            "model": "calf-EMG cramp detector",
            "sw_version": __version__,
        },
    }


def _message(
    prefix: str, component: str, node: str, object_id: str, config: dict[str, Any]
) -> DiscoveryMessage:
    return DiscoveryMessage(f"{prefix}/{component}/{node}/{object_id}/config", to_json(config))
