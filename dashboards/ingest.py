"""MQTT ingest: device and intake messages -> validated -> the store.

Nothing reaches a table unless it validates; a refused message is logged, counted and kept (in
a bounded table) with the reason, and ingest goes on. Storage is by id, so duplicates, replays
and out-of-order messages are harmless.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from dashboards.live_feed import LiveFeed
from dashboards.store import Store
from messaging.topics import (
    ENVELOPE_SCHEMA,
    EVENT_SCHEMA,
    MARKER_SCHEMA,
    QUALITY_SCHEMA,
    STATE_SCHEMA,
)

log = logging.getLogger("crampwatch.dashboard.ingest")

TOPIC = re.compile(r"^(?P<prefix>[A-Za-z0-9_-]+)/(?P<device>[A-Za-z0-9_-]{1,64})/(?P<leaf>[a-z]+)$")
DEVICE_LEAVES = ("event", "quality", "state", "status", "envelope", "marker")
MAX_PAYLOAD = 256 * 1024


class Refused(ValueError):
    """A message that does not validate; the text says why."""


def _object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise Refused(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} byte limit")
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise Refused("not a JSON object")
    return value


def _no_constant(name: str) -> None:
    raise Refused(f"{name} is not a number JSON allows")


def _field(payload: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:  # fmt: skip
    if name not in payload or payload[name] is None:
        if optional:
            return None
        raise Refused(f"missing field {name!r}")
    value = payload[name]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise Refused(f"{name!r} must not be true/false")
    if not isinstance(value, kind):
        raise Refused(f"{name!r} has the wrong type ({type(value).__name__})")
    if isinstance(value, float) and not math.isfinite(value):
        raise Refused(f"{name!r} is not a finite number")
    return value


def _time(payload: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    text = _field(payload, name, str, optional=optional)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"{name!r} is not an ISO 8601 time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise Refused(f"{name!r} has no time zone")
    return text


def _schema(payload: dict[str, Any], expected: str) -> None:
    if payload.get("schema") != expected:
        raise Refused(f"schema is {payload.get('schema')!r}, expected {expected!r}")


def _same_device(payload: dict[str, Any], device: str) -> None:
    if _field(payload, "device", str) != device:
        raise Refused(f"device {payload['device']!r} does not match the topic's {device!r}")


def validate_event(payload: dict[str, Any], device: str) -> dict[str, Any]:
    _schema(payload, EVENT_SCHEMA)
    _same_device(payload, device)
    number = (int, float)
    for name in ("event_id", "channel"):
        if not _field(payload, name, str) or len(payload[name]) > 128:
            raise Refused(f"{name!r} must be a non-empty string of at most 128 characters")
    if _field(payload, "kind", str) not in ("cramp", "movement"):
        raise Refused(f"kind {payload['kind']!r} is not cramp or movement")
    if _field(payload, "phase", str) not in ("started", "ended"):
        raise Refused(f"phase {payload['phase']!r} is not started or ended")
    _time(payload, "start")
    _time(payload, "end", optional=payload["phase"] == "started")
    if _field(payload, "duration_s", number) < 0:
        raise Refused("duration_s is negative")
    _field(payload, "start_s", number)
    for name in ("peak_uv", "mean_uv", "floor_uv", "area_uvs", "median_freq_hz", "end_s"):
        _field(payload, name, number, optional=True)
    _field(payload, "envelope", dict, optional=True)
    return payload


def validate_quality(payload: dict[str, Any], device: str) -> dict[str, Any]:
    _schema(payload, QUALITY_SCHEMA)
    _same_device(payload, device)
    _field(payload, "channel", str)
    _time(payload, "at")
    problems = _field(payload, "problems", list)
    if not all(isinstance(p, str) for p in problems):
        raise Refused("problems must be a list of strings")
    return payload


def validate_state(payload: dict[str, Any], device: str) -> dict[str, Any]:
    _schema(payload, STATE_SCHEMA)
    _same_device(payload, device)
    _time(payload, "session_start")
    if _field(payload, "recorded_s", (int, float)) < 0:
        raise Refused("recorded_s is negative")
    _field(payload, "cramps_tonight", int)
    _plm_figures(payload, "plm_tonight")
    channels = _field(payload, "channels", dict)
    if not channels:
        raise Refused("channels is empty")
    for name, channel in channels.items():
        if not isinstance(channel, dict):
            raise Refused(f"channel {name!r} is not an object")
        if _field(channel, "state", str) not in ("idle", "movement", "cramp", "signal_lost"):
            raise Refused(f"channel {name!r} has an unknown state {channel['state']!r}")
        _time(channel, "since")
        _field(channel, "good_s", (int, float))
        _plm_figures(channel, "plm")
    return payload


def _plm_figures(payload: dict[str, Any], count_key: str) -> None:
    """Periodic limb movement figures in a state message (optional: older devices lack them)."""
    for name in (count_key, "plm_series"):
        if _field(payload, name, int, optional=True) is not None and payload[name] < 0:
            raise Refused(f"{name} is negative")
    index = _field(payload, "plm_per_hour", (int, float), optional=True)
    if index is not None and index < 0:
        raise Refused("plm_per_hour is negative")


def validate_marker(payload: dict[str, Any], device: str) -> dict[str, Any]:
    _schema(payload, MARKER_SCHEMA)
    _same_device(payload, device)
    _time(payload, "at")
    if _field(payload, "source", str) not in ("button", "hold"):
        raise Refused(f"marker source {payload['source']!r} is not button or hold")
    return payload


def validate_envelope(payload: dict[str, Any], device: str) -> dict[str, Any]:
    _schema(payload, ENVELOPE_SCHEMA)
    _same_device(payload, device)
    _time(payload, "at")
    _field(payload, "channels", dict)
    return payload


class Ingest:
    """Routes one message to its validator and the store; never raises for bad input."""

    def __init__(
        self,
        store: Store,
        intake: Callable[[bytes, str], None],
        feed: LiveFeed | None = None,
        prefix: str = "crampwatch",
    ) -> None:
        self.store, self.intake, self.feed, self.prefix = store, intake, feed, prefix
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> bool:
        """Store a message; False (logged, counted, kept) when it is refused."""
        try:
            with self._lock:
                kind = self._route(topic, payload)
        except Refused as error:
            log.warning("refused a message on %s: %s", topic[:200], error)
            self.store.refuse(topic, str(error), payload)
            return False
        self.store.bump("stored")
        if self.feed is not None:
            self.feed.publish(kind)
        return True

    def _route(self, topic: str, payload: bytes) -> str:
        match = TOPIC.match(topic)
        if match is None or match["prefix"] != self.prefix:
            raise Refused(f"topic {topic[:80]!r} is not {self.prefix}/<device>/<kind>")
        device, leaf = match["device"], match["leaf"]
        if leaf == "intake":
            self.intake(payload, device)
        elif leaf == "status":
            status = payload.decode("utf-8", "replace")
            if status not in ("online", "offline"):
                raise Refused(f"status {status[:40]!r} is not online or offline")
            self.store.set_status(device, status)
        elif leaf == "event":
            self.store.add_event(validate_event(_object(payload), device))
        elif leaf == "quality":
            self.store.add_quality(validate_quality(_object(payload), device))
        elif leaf == "state":
            self.store.set_state(validate_state(_object(payload), device))
        elif leaf == "marker":
            self.store.add_marker(validate_marker(_object(payload), device))
        elif leaf == "envelope":
            self.store.set_envelope(validate_envelope(_object(payload), device))
        else:
            raise Refused(f"unknown message kind {leaf!r}")
        return leaf


class MqttIngest:
    """A persistent-session subscriber: QoS 1 messages sent while the dashboard was away are
    delivered when it reconnects; broker restarts are retried forever."""

    def __init__(self, ingest: Ingest, host: str, port: int, client_id: str) -> None:
        self.ingest, self.host, self.port = ingest, host, port
        self.connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=15)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 7 * 86400
        log.info("ingest: connecting to the MQTT broker at %s:%d", self.host, self.port)
        self.client.connect_async(
            self.host, self.port, keepalive=30, clean_start=False, properties=properties
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("ingest: the broker refused the connection: %s", reason_code)
            return
        prefix = self.ingest.prefix
        topics = [(f"{prefix}/+/{leaf}", 1) for leaf in (*DEVICE_LEAVES, "intake")]
        client.subscribe(topics)
        log.info("ingest: connected to %s:%d, subscribed to %s/+/...", self.host, self.port, prefix)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        log.warning("ingest: lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.ingest.handle(message.topic, message.payload)
        except Exception:  # a store failure must not kill the network thread
            log.exception("ingest: could not store a message on %s", message.topic)
