"""The device's link to the broker (paho-mqtt 2.x).

QoS 1 messages (events, quality, state) go through the durable outbox: a sender thread publishes
the oldest unsent ones only while connected, a few at a time, and marks each sent when the broker
acknowledges it. After a reconnect (or a restart) everything unsent goes out again, in order.
The status topic is `online` (retained) on every connect and `offline` as the last will and on a
clean stop. Envelope summaries are QoS 0, sent only while connected, with a message expiry.

Home Assistant's `online` on its status topic asks for discovery again. Requests are only counted
where they arrive (paho's network thread); the sender thread re-sends at most once every
`discovery_interval_s`: the first request at once, any that come during the interval coalesced into
one re-send at its end. A flood of them costs a counter increment each, never memory, and more
than `BIRTH_FLOOD` in one interval makes the link stop listening to the topic until the interval
ends (the broker then stops sending them; the last request is still honoured). The sender
thread also lets the outbox try a failed disk again (`Outbox.maintain`), off the detection loop.

With `on_command`, the link subscribes to the device's command topic (start and end a named
session) and hands every message on it to `on_command(payload, retained)`, which checks it
(`firmware_host.device.session_control`); nothing it raises reaches paho's thread.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_host.device.ha_discovery import DiscoveryMessage
from firmware_host.device.outbox import Outbox, OutboxMessage
from hardware.log_coalescing import repeated
from messaging.broker import BrokerSettings
from messaging.topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("crampwatch.mqtt")
BIRTH_FLOOD = 20  # Home Assistant announces itself once per start, not dozens of times a minute


class MqttLink:
    """Connects in the background (reconnecting forever) and drains the outbox while connected."""

    def __init__(
        self,
        settings: BrokerSettings,
        topics: Topics,
        outbox: Outbox,
        *,
        discovery: Callable[[], list[DiscoveryMessage]] | None = None,
        discovery_birth_topic: str | None = None,
        envelope_expiry_s: int = 10,
        max_in_flight: int = 20,
        discovery_interval_s: float = 30.0,
        on_command: Callable[[bytes, bool], object] | None = None,
    ) -> None:
        self.settings, self.topics, self.outbox = settings, topics, outbox
        self.on_command = on_command
        self.discovery = discovery
        self.discovery_birth_topic = discovery_birth_topic
        self.discovery_interval_s = discovery_interval_s
        self.discovery_requests = 0  # `online` messages seen on the birth topic
        self.discovery_resends = 0  # re-sends they caused (rate-limited)
        self._discovery_wanted = False
        self._discovery_next_at = 0.0
        self._births_in_window = 0
        self._birth_window_ends = 0.0
        self._listen_again_at: float | None = None  # not subscribed to the birth topic until
        self._outbox_epoch = outbox.epoch
        self.envelope_expiry_s = envelope_expiry_s
        self.max_in_flight = max_in_flight
        self.connected = threading.Event()
        self._wake = threading.Condition()
        self._in_flight: dict[int, int] = {}  # mid -> outbox id
        self._early_acks: set[int] = set()
        self._last_sent_id = 0
        self._generation = 0  # connections so far: a publish from an older one is not resumed
        self._stopping = False
        self._was_connected = False
        self.published_ok = 0
        self.client = self._client()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; an unreachable broker is retried, never fatal."""
        log.info("connecting to the MQTT broker at %s", self.settings.address)
        self.client.connect_async(
            self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s
        )
        self.client.loop_start()
        self._sender.start()

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Wait (a little) for unsent messages, publish `offline`, disconnect."""
        deadline = time.monotonic() + flush_timeout_s
        while time.monotonic() < deadline:
            if self.connected.is_set() and self.outbox.counts().unsent == 0:
                break
            self.kick()
            time.sleep(0.05)
        unsent = self.outbox.counts().unsent
        if unsent:
            log.warning("%d message(s) not yet delivered stay in the outbox for next time", unsent)
        if self.discovery_requests:
            log.info(
                "Home Assistant asked for discovery %d time(s); sent again %d time(s) (at most "
                "once every %g s)",
                self.discovery_requests,
                self.discovery_resends,
                self.discovery_interval_s,
            )
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self.connected.is_set():
            info = self.client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=max(0.5, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        self._sender.join(timeout=2.0)

    def kick(self) -> None:
        """Something new is in the outbox."""
        with self._wake:
            self._wake.notify_all()

    def publish_live(self, topic: str, payload: bytes) -> bool:
        """QoS 0, not stored: sent only while connected (envelope summaries)."""
        if not self.connected.is_set():
            return False
        properties = None
        if self.settings.mqtt_v5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = self.envelope_expiry_s
        info = self.client.publish(topic, payload, qos=0, properties=properties)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"crampwatch-{self.topics.device}",
            protocol=mqtt.MQTTv5 if s.mqtt_v5 else mqtt.MQTTv311,
        )
        if log.isEnabledFor(logging.DEBUG):
            client.enable_logger(logging.getLogger("crampwatch.mqtt.paho"))
        client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(0)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls or s.ca_file:
            client.tls_set(
                ca_certs=s.ca_file,
                certfile=s.cert_file,
                keyfile=s.key_file,
                cert_reqs=ssl.CERT_NONE if s.tls_insecure else ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(s.tls_insecure)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error(
                "the broker at %s refused the connection: %s (check the username, password "
                "and TLS settings)",
                self.settings.address,
                reason_code,
            )
            return
        log.info(
            "connected to the MQTT broker at %s%s",
            self.settings.address,
            " (again)" if self._was_connected else "",
        )
        self._was_connected = True
        client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        if self.discovery is not None:
            self._publish_discovery()
            self._discovery_next_at = time.monotonic() + self.discovery_interval_s
            if self.discovery_birth_topic and self._listen_again_at is None:
                client.subscribe(self.discovery_birth_topic, qos=0)
        if self.on_command is not None:
            client.subscribe(self.topics.command, qos=1)
        with self._wake:
            self._in_flight.clear()
            self._early_acks.clear()
            self._last_sent_id = 0  # resend everything unsent, in order
            self._generation += 1
            self.connected.set()
            self._wake.notify_all()

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning(
            "cannot reach the MQTT broker at %s; retrying, and keeping every event in the "
            "outbox meanwhile (%d waiting)",
            self.settings.address,
            self.outbox.counts().unsent,
            extra=repeated("broker unreachable"),
        )

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self.connected.is_set()
        with self._wake:
            self.connected.clear()
            self._in_flight.clear()
        if was and not self._stopping:
            log.warning(
                "lost the MQTT broker at %s (%s); detecting and recording go on, events wait "
                "in the outbox",
                self.settings.address,
                reason_code,
            )

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("the broker refused message %d: %s; it stays in the outbox", mid, reason_code)
            with self._wake:
                self._in_flight.pop(mid, None)
            return
        with self._wake:
            message_id = self._in_flight.pop(mid, None)
            if message_id is None:
                self._early_acks.add(mid)
                return
            self._wake.notify_all()
        self.outbox.mark_sent(message_id)
        self.published_ok += 1

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self.topics.command and self.on_command is not None:
            try:
                self.on_command(bytes(message.payload), bool(message.retain))
            except Exception:  # a command must never stop the device
                log.exception("a command on %s could not be handled", message.topic)
            return
        if message.topic == self.discovery_birth_topic and message.payload == b"online":
            with self._wake:
                self.discovery_requests += 1
                self._discovery_wanted = True
                self._count_birth(client)
                self._wake.notify_all()

    def _count_birth(self, client: mqtt.Client) -> None:
        """Called with `_wake` held: a flood of births stops the subscription for a while."""
        now = time.monotonic()
        if now >= self._birth_window_ends:
            self._births_in_window, self._birth_window_ends = 0, now + self.discovery_interval_s
        self._births_in_window += 1
        if self._births_in_window == BIRTH_FLOOD + 1 and self._listen_again_at is None:
            self._listen_again_at = self._birth_window_ends
            client.unsubscribe(self.discovery_birth_topic)
            log.warning(
                "%s is flooded (more than %d messages in %g s): not listening to it for a while; "
                "discovery is sent again at most once every %g s",
                self.discovery_birth_topic,
                BIRTH_FLOOD,
                self.discovery_interval_s,
                self.discovery_interval_s,
            )

    def _listen_again(self) -> None:
        """Called with `_wake` held, on the sender thread: subscribe to the birth topic again."""
        if self._listen_again_at is None or time.monotonic() < self._listen_again_at:
            return
        self._listen_again_at = None
        if self.connected.is_set() and self.discovery_birth_topic:
            self.client.subscribe(self.discovery_birth_topic, qos=0)

    def _publish_discovery(self) -> None:
        assert self.discovery is not None
        for item in self.discovery():
            self.client.publish(item.topic, item.payload, qos=1, retain=True)

    def _discovery_due(self) -> bool:
        return (
            self._discovery_wanted
            and self.connected.is_set()
            and time.monotonic() >= self._discovery_next_at
        )

    def _resend_discovery(self) -> None:
        with self._wake:
            if not self._discovery_due():
                return
            self._discovery_wanted = False
            self._discovery_next_at = time.monotonic() + self.discovery_interval_s
            self.discovery_resends += 1
        log.info(
            "Home Assistant is back: sending discovery again (%d request(s) so far)",
            self.discovery_requests,
        )
        self._publish_discovery()

    # -- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._wake:
                self._look_after_outbox()
                self._listen_again()
                while not (self._stopping or self._can_send() or self._discovery_due()):
                    self._wake.wait(timeout=self._wait_s())
                    self._look_after_outbox()
                    self._listen_again()
                if self._stopping:
                    return
                room = self.max_in_flight - len(self._in_flight)
                after, generation = self._last_sent_id, self._generation
            self._resend_discovery()
            if room <= 0:
                continue
            for message in self.outbox.unsent(after_id=after, limit=room):
                if not self._publish_stored(message, generation):
                    break

    def _wait_s(self) -> float:
        if self._discovery_wanted and self.connected.is_set():
            return min(1.0, max(0.01, self._discovery_next_at - time.monotonic()))
        return 1.0

    def _look_after_outbox(self) -> None:
        """Called with `_wake` held: let a failed outbox try its disk again; when older unsent
        messages became readable, send from the start."""
        self.outbox.maintain()
        if self.outbox.epoch != self._outbox_epoch:
            self._outbox_epoch = self.outbox.epoch
            self._last_sent_id = 0

    def _can_send(self) -> bool:
        return (
            self.connected.is_set()
            and len(self._in_flight) < self.max_in_flight
            and (self._has_unsent_after(self._last_sent_id))
        )

    def _has_unsent_after(self, after: int) -> bool:
        return bool(self.outbox.unsent(after_id=after, limit=1))

    def _publish_stored(self, message: OutboxMessage, generation: int) -> bool:
        if not self.connected.is_set() or generation != self._generation:
            return False
        message_id = message.id
        info = self.client.publish(
            message.topic, message.payload, qos=message.qos, retain=message.retain
        )
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        acked_already = False
        with self._wake:
            if generation != self._generation:
                return False
            self._last_sent_id = max(self._last_sent_id, message_id)
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                acked_already = True
            else:
                self._in_flight[info.mid] = message_id
        if acked_already:
            self.outbox.mark_sent(message_id)
            self.published_ok += 1
        return True
