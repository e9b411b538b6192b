"""MQTT ingest: device and intake messages -> validated -> the store.

Nothing reaches a table unless it validates; a refused message is logged, counted and kept (in
a bounded table) with the reason, and ingest goes on. Storage is by id, so duplicates, replays
and out-of-order messages are harmless. Device times are stored in one canonical form (UTC,
milliseconds, `Z`) and must be plausible (`dashboards.validation`): an event ends after it
starts, lasts no longer than its detector allows, and is dated between 2020 and a day after it
arrived.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from dashboards.live_feed import LiveFeed
from dashboards.store import Store
from dashboards.validation import (
    MAX_MAGNITUDE,
    MAX_SESSION_S,
    Invalid,
    canonical,
    check_envelope_trace,
    device_time,
    number,
    strict_json,
)
from dsp.config import DetectorConfig
from messaging.outage import OutageLog
from messaging.sessions import NIGHT, check_session_id, check_session_kind
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
MAX_NAME = 128
MAX_CHANNELS = 64
# An event lasts at most its detector's max_event_s (the detector closes it there; a hop and the
# millisecond rounding may add a little), and never more than a day, whatever it claims.
DEFAULT_MAX_EVENT_S = DetectorConfig().max_event_s
EVENT_LIMIT_CAP_S = 86_400.0
EVENT_LIMIT_SLACK_S = 5.0
DURATION_TOLERANCE_S = 1.0
STATES = ("idle", "movement", "cramp", "signal_lost")

Refused = Invalid  # a message that does not validate; the text says why


def _object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise Refused(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} byte limit")
    value = strict_json(payload)
    if not isinstance(value, dict):
        raise Refused("not a JSON object")
    return value


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
    return value


def _text(payload: dict[str, Any], name: str, *, optional: bool = False, limit: int = MAX_NAME) -> str | None:  # fmt: skip
    value = _field(payload, name, str, optional=optional)
    if value is not None and not 0 < len(value) <= limit:
        raise Refused(f"{name!r} must be a non-empty string of at most {limit} characters")
    return value


def _number(payload: dict[str, Any], name: str, *, optional: bool = False, low: float = -MAX_MAGNITUDE, high: float = MAX_MAGNITUDE) -> float | None:  # fmt: skip
    if payload.get(name) is None:
        if optional:
            return None
        raise Refused(f"missing field {name!r}")
    return number(payload[name], name, low=low, high=high)


def _time(payload: dict[str, Any], name: str, received: datetime, *, optional: bool = False) -> datetime | None:  # fmt: skip
    """The field as a plausible device time; the payload is rewritten in the canonical form."""
    if payload.get(name) is None:
        if optional:
            return None
        raise Refused(f"missing field {name!r}")
    moment = device_time(payload[name], name, received)
    payload[name] = canonical(moment)
    return moment


def _schema(payload: dict[str, Any], expected: str) -> None:
    if payload.get("schema") != expected:
        raise Refused(f"schema is {repr(payload.get('schema'))[:60]}, expected {expected!r}")


def _same_device(payload: dict[str, Any], device: str) -> None:
    if _text(payload, "device") != device:
        raise Refused(f"device {payload['device']!r} does not match the topic's {device!r}")
    _session(payload)


def _session(payload: dict[str, Any]) -> None:
    """The session a device message belongs to (optional: older devices record nights only):
    `session_kind`, and `session_id`, which a named session must have."""
    kind = payload.get("session_kind")
    session_id = payload.get("session_id")
    try:
        if kind is not None:
            check_session_kind(kind)
        if session_id is not None:
            check_session_id(session_id)
    except ValueError as error:
        raise Refused(str(error)) from None
    if kind not in (None, NIGHT) and session_id is None:
        raise Refused(f"a {kind} session's message has no session_id")
    if kind in (None, NIGHT) and session_id is not None:
        raise Refused("a night's message has a session_id: only named sessions have one")


def max_event_s(payload: dict[str, Any]) -> float:
    """How long the event's detector lets an event last (its `pipeline` settings, else the
    default), capped at a day."""
    pipeline = payload.get("pipeline")
    settings = pipeline.get("settings") if isinstance(pipeline, dict) else None
    detector = settings.get("detector") if isinstance(settings, dict) else None
    claimed = detector.get("max_event_s") if isinstance(detector, dict) else None
    try:
        limit = number(claimed, "max_event_s", low=0.0) if claimed is not None else None
    except Invalid:
        limit = None
    return min(limit or DEFAULT_MAX_EVENT_S, EVENT_LIMIT_CAP_S) + EVENT_LIMIT_SLACK_S


def validate_event(payload: dict[str, Any], device: str, received: datetime) -> dict[str, Any]:
    _schema(payload, EVENT_SCHEMA)
    _same_device(payload, device)
    _text(payload, "event_id")
    _text(payload, "channel")
    if _field(payload, "kind", str) not in ("cramp", "movement"):
        raise Refused(f"kind {payload['kind'][:40]!r} is not cramp or movement")
    if _field(payload, "phase", str) not in ("started", "ended"):
        raise Refused(f"phase {payload['phase'][:40]!r} is not started or ended")
    ended = payload["phase"] == "ended"
    start = _time(payload, "start", received)
    end = _time(payload, "end", received, optional=not ended)
    limit = max_event_s(payload)
    duration = _number(payload, "duration_s", low=0.0, high=limit)
    if end is not None:
        assert start is not None
        if end < start:
            raise Refused(f"end {payload['end']} is before start {payload['start']}")
        span = (end - start).total_seconds()
        if abs(span - duration) > DURATION_TOLERANCE_S:
            raise Refused(f"duration_s {duration:g} does not match end - start ({span:.3f} s)")
    for name in ("start_s", "end_s"):
        _number(payload, name, optional=name == "end_s", low=-MAX_SESSION_S, high=MAX_SESSION_S)
    for name in ("peak_uv", "mean_uv", "floor_uv", "area_uvs", "median_freq_hz"):
        _number(payload, name, optional=True)
    _text(payload, "quality", optional=True, limit=200)
    _envelope_trace(payload)
    _field(payload, "pipeline", dict, optional=True)
    return payload


def _envelope_trace(payload: dict[str, Any]) -> None:
    trace = _field(payload, "envelope", dict, optional=True)
    if trace is not None:
        check_envelope_trace(trace)


def validate_quality(payload: dict[str, Any], device: str, received: datetime) -> dict[str, Any]:
    _schema(payload, QUALITY_SCHEMA)
    _same_device(payload, device)
    _text(payload, "channel")
    _time(payload, "at", received)
    _number(payload, "at_s", optional=True, low=-MAX_SESSION_S, high=MAX_SESSION_S)
    problems = _field(payload, "problems", list)
    if len(problems) > 32 or not all(isinstance(p, str) and len(p) <= 64 for p in problems):
        raise Refused("problems must be a list of at most 32 short strings")
    return payload


def validate_state(payload: dict[str, Any], device: str, received: datetime) -> dict[str, Any]:
    _schema(payload, STATE_SCHEMA)
    _same_device(payload, device)
    session_start = _time(payload, "session_start", received)
    assert session_start is not None
    # A session cannot have recorded more than the time since it started (plus the clock slack).
    elapsed_s = (received - session_start).total_seconds() + 86_400.0
    recorded_s = _number(payload, "recorded_s", low=0.0, high=min(MAX_SESSION_S, elapsed_s))
    assert recorded_s is not None
    for name in ("cramps_tonight", "cramps_session"):
        optional = name == "cramps_session"
        if _number(payload, name, low=0, high=1e6, optional=optional) is not None and (
            not isinstance(payload[name], int)
        ):
            raise Refused(f"{name!r} must be a whole number")
    _time(payload, "recording_start", received, optional=True)
    _plm_figures(payload, "plm_tonight")
    _fasciculation_figures(payload)
    channels = _field(payload, "channels", dict)
    if not channels:
        raise Refused("channels is empty")
    if len(channels) > MAX_CHANNELS:
        raise Refused(f"more than {MAX_CHANNELS} channels")
    for name, channel in channels.items():
        if not 0 < len(name) <= MAX_NAME:
            raise Refused(f"channel name {name[:40]!r} must be 1-{MAX_NAME} characters")
        if not isinstance(channel, dict):
            raise Refused(f"channel {name!r} is not an object")
        if _field(channel, "state", str) not in STATES:
            raise Refused(f"channel {name!r} has an unknown state {channel['state'][:40]!r}")
        _time(channel, "since", received)
        _number(channel, "since_s", optional=True, low=-MAX_SESSION_S, high=MAX_SESSION_S)
        _number(channel, "good_s", low=0.0, high=recorded_s + 1.0)
        _plm_figures(channel, "plm")
        _fasciculation_figures(channel)
    return payload


def _plm_figures(payload: dict[str, Any], count_key: str) -> None:
    """Periodic limb movement figures in a state message (optional: older devices lack them)."""
    for name in (count_key, "plm_series"):
        if _number(payload, name, optional=True, low=0, high=1e6) is not None and not isinstance(
            payload[name], int
        ):
            raise Refused(f"{name!r} must be a whole number")
    _number(payload, "plm_per_hour", optional=True, low=0.0, high=1e4)


def _fasciculation_figures(channel: dict[str, Any]) -> None:
    """A session's (or a channel's) fasciculation count and rate in a state message (optional:
    older devices lack them)."""
    count = _number(channel, "fasciculations", optional=True, low=0, high=1e7)
    if count is not None and not isinstance(channel["fasciculations"], int):
        raise Refused("'fasciculations' must be a whole number")
    _number(channel, "fasciculations_per_hour", optional=True, low=0.0, high=1e5)


def validate_marker(payload: dict[str, Any], device: str, received: datetime) -> dict[str, Any]:
    _schema(payload, MARKER_SCHEMA)
    _same_device(payload, device)
    _time(payload, "at", received)
    _number(payload, "at_s", optional=True, low=-MAX_SESSION_S, high=MAX_SESSION_S)
    if _field(payload, "source", str) not in ("button", "hold"):
        raise Refused(f"marker source {payload['source'][:40]!r} is not button or hold")
    return payload


def validate_envelope(payload: dict[str, Any], device: str, received: datetime) -> dict[str, Any]:
    _schema(payload, ENVELOPE_SCHEMA)
    _same_device(payload, device)
    _time(payload, "at", received)
    channels = _field(payload, "channels", dict)
    if len(channels) > MAX_CHANNELS:
        raise Refused(f"more than {MAX_CHANNELS} channels")
    for name, values in channels.items():
        if not isinstance(values, dict) or len(values) > 16:
            raise Refused(f"envelope channel {name[:40]!r} is not an object of figures")
        for key, value in values.items():
            if value is not None:
                number(value, f"{name}.{key}")
    return payload


VALIDATORS: dict[str, Callable[[dict[str, Any], str, datetime], dict[str, Any]]] = {
    "event": validate_event,
    "quality": validate_quality,
    "state": validate_state,
    "marker": validate_marker,
    "envelope": validate_envelope,
}


class Ingest:
    """Routes one message to its validator and the store; never raises for bad input."""

    def __init__(
        self,
        store: Store,
        intake: Callable[[bytes, str], None],
        feed: LiveFeed | None = None,
        prefix: str = "crampwatch",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        person_topics: dict[str, Callable[[bytes, str], None]] | None = None,
    ) -> None:
        self.store, self.intake, self.feed, self.prefix = store, intake, feed, prefix
        self.clock = clock
        # inbound topics of a person beside intake: a session's details, lab results
        self.person_topics = dict(person_topics or {})
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> bool:
        """Store a message; False (logged, counted, kept) when it is refused."""
        try:
            with self._lock:
                kind = self._route(topic, payload)
        except Invalid as error:
            log.warning("refused a message on %s: %s", topic[:200], error)
            self.store.refuse(topic, str(error), payload)
            return False
        except sqlite3.Error as error:  # the store, not the message: nothing to count it in
            log.error("ingest: could not store a message on %s: %s", topic[:200], error)
            return False
        except Exception as error:  # a message no check foresaw: refused, never fatal
            reason = f"could not be handled ({type(error).__name__}: {str(error)[:200]})"
            log.error("ingest: refused a message on %s: %s", topic[:200], reason)
            log.debug("ingest: the unforeseen failure", exc_info=True)
            self.store.refuse(topic, reason, payload)
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
        elif leaf in self.person_topics:
            self.person_topics[leaf](payload, device)
        elif leaf == "status":
            status = payload.decode("utf-8", "replace")
            if status not in ("online", "offline"):
                raise Refused(f"status {status[:40]!r} is not online or offline")
            self.store.set_status(device, status)
        elif leaf in VALIDATORS:
            message = VALIDATORS[leaf](_object(payload), device, self.clock())
            STORE_BY_KIND[leaf](self.store, message)
        else:
            raise Refused(f"unknown message kind {leaf[:40]!r}")
        return leaf


STORE_BY_KIND: dict[str, Callable[[Store, dict[str, Any]], Any]] = {
    "event": Store.add_event,
    "quality": Store.add_quality,
    "state": Store.set_state,
    "marker": Store.add_marker,
    "envelope": Store.set_envelope,
}


class MqttIngest:
    """A persistent-session subscriber: QoS 1 messages sent while the dashboard was away are
    delivered when it reconnects; broker restarts are retried forever. An unreachable broker is
    logged at once and then once a minute with the number of failed attempts (`OutageLog`)."""

    def __init__(self, ingest: Ingest, host: str, port: int, client_id: str) -> None:
        self.ingest, self.host, self.port = ingest, host, port
        self.connected = threading.Event()
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.link = OutageLog(log, address, who="ingest")
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=15)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 7 * 86400
        log.info("ingest: connecting to the MQTT broker at %s", self.link.address)
        self.client.connect_async(
            self.host, self.port, keepalive=30, clean_start=False, properties=properties
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.link.stopping()
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> bool:
        """Send a message (QoS 1, never retained: a device's command); False while the broker
        is not connected (the message is not kept)."""
        if not self.connected.is_set():
            return False
        return self.client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.link.failed(f"the broker refused the connection: {reason_code}")
            return
        prefix = self.ingest.prefix
        leaves = (*DEVICE_LEAVES, "intake", *self.ingest.person_topics)
        topics = [(f"{prefix}/+/{leaf}", 1) for leaf in leaves]
        client.subscribe(topics)
        self.link.connected()
        log.info("ingest: subscribed to %s/+/...", prefix)
        self.connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its `except OSError`, so the error at hand is the reason.
        error = sys.exc_info()[1]
        self.link.failed((str(error) or type(error).__name__) if error else "no answer")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.link.lost(str(reason_code))

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.ingest.handle(message.topic, message.payload)
        except Exception:  # a store failure must not kill the network thread
            log.exception("ingest: could not store a message on %s", message.topic)
