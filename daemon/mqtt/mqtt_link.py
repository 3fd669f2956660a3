"""The daemon's MQTT connection (paho-mqtt 2.x, CallbackAPIVersion.VERSION2).

Persistent session (fixed client id, clean_start=False + session expiry on MQTT 5,
clean_session=False on 3.1.1), automatic reconnect with backoff, a bounded outgoing queue while
disconnected, and a retained status topic with a matching last will. The network thread only
hands raw messages to `on_message`; everything else happens in the engine loop.

The client underneath is paho_io.py's: chunked socket I/O, one wake-up of the network thread
per engine turn and held PUBRELs, overrides of paho 2.x internals kept apart from this facade.

With manual acknowledgements (the journal is on), QoS 2 publishes are exactly-once across a
crash: the PUBREL that lets the broker deliver a message is held back until the engine loop has
durably recorded the broker's PUBREC (`release`), and a restarted daemon sends the PUBRELs it
had recorded but not seen completed (`resume_releases`) before anything else. See
docs/reliability.md for why each step is needed.
"""
from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
from contextlib import contextmanager
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .paho_io import BatchedWakeups, BufferedClient, ReleaseOnCommitClient

log = logging.getLogger("statecast.mqtt")


class MqttLink:
    def __init__(self, broker, status_topic: str, subscriptions: list[tuple[str, int]],
                 on_message: Callable[[mqtt.MQTTMessage], None], manual_ack: bool = False,
                 on_pubrec_held: Callable[[], None] | None = None):
        self.broker = broker
        # manual_ack: QoS 1/2 inputs are acknowledged by the engine loop (delivery.Delivery) once
        # their step is journaled and their forecasts are acknowledged, not when they arrive.
        self.manual_ack = manual_ack
        self.status_topic = status_topic
        self.subscriptions = subscriptions
        self.subscribed = threading.Event()       # set once the broker acknowledged every filter
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.connects = 0
        self.publish_refused = 0
        self._on_message = on_message
        self._on_pubrec_held = on_pubrec_held
        self._pending_subscribe: int | None = None
        self._wakeups: BatchedWakeups | None = None
        self.mqtt5 = broker.protocol == "5"
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        b = self.broker
        client_class = ReleaseOnCommitClient if self.manual_ack else BufferedClient
        client = client_class(CallbackAPIVersion.VERSION2, client_id=b.client_id,
                             protocol=mqtt.MQTTv5 if self.mqtt5 else mqtt.MQTTv311,
                             clean_session=None if self.mqtt5 else bool(b.clean_start),
                             manual_ack=self.manual_ack)
        if b.username:
            client.username_pw_set(b.username, b.password)
        if b.tls:
            client.tls_set(ca_certs=b.ca_file, certfile=b.cert_file, keyfile=b.key_file,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            client.tls_insecure_set(False)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=max(1, int(b.reconnect_min_seconds)),
                                   max_delay=max(1, int(b.reconnect_max_seconds)))
        # paho's default 0 means an unbounded queue while the broker is away: bound it.
        client.max_queued_messages_set(b.max_queued_messages)
        client.max_inflight_messages_set(b.max_inflight_messages)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        client.on_message = lambda _c, _u, message: self._on_message(message)
        if isinstance(client, ReleaseOnCommitClient):
            client.on_pubrec_held = self._on_pubrec_held
        return client

    def start(self) -> None:
        b = self.broker
        properties = None
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = int(b.session_expiry_seconds)
        # connect_async + loop_start: the first connection also retries with backoff.
        kwargs = {"clean_start": bool(b.clean_start), "properties": properties} if self.mqtt5 else {}
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive_seconds, **kwargs)
        self.client.loop_start()
        # loop_start created the socket pair; paho 2.x writes to it through this attribute only.
        self._wakeups = self.client._sockpairW = BatchedWakeups(self.client._sockpairW)

    @contextmanager
    def one_wakeup(self):
        """Publishes and acks inside this block wake paho's network thread once, at the end."""
        wakeups = self._wakeups
        if wakeups is None:
            yield
            return
        wakeups.held = True
        try:
            yield
        finally:
            wakeups.release()

    def _handle_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"connect refused: {reason_code}"
            log.error("broker %s:%s refused the connection: %s", self.broker.host, self.broker.port, reason_code)
            return
        self.connects += 1
        self.connected.set()
        self.last_error = None                  # stats say what is wrong now, not before the reconnect
        raw = client.socket()
        if raw is not None and hasattr(raw, "setsockopt"):
            # paho leaves Nagle on: small forecasts then wait for the previous ACK (the latency
            # it cost: docs/performance-history.md, TCP_NODELAY)
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        log.info("connected to %s:%s (session present: %s)", self.broker.host, self.broker.port,
                 getattr(flags, "session_present", "?"))
        result, mid = client.subscribe([(topic, qos) for topic, qos in self.subscriptions])
        self._pending_subscribe = mid
        client.publish(self.status_topic, "online", qos=1, retain=True)

    def _handle_connect_fail(self, _client, _userdata) -> None:
        # paho calls this inside its `except OSError:`, so the cause is the exception being handled
        error = sys.exc_info()[1]
        cause = (getattr(error, "strerror", None) or str(error) or type(error).__name__) if error else "unknown cause"
        self.last_error = f"cannot connect to {self.broker.host}:{self.broker.port}: {cause}"
        log.warning("cannot connect to broker %s:%s (%s); next attempt in %d s", self.broker.host,
                    self.broker.port, cause, self._next_delay_seconds())

    def _next_delay_seconds(self) -> int:
        """The wait before paho's next connection attempt (its backoff: min, doubling, up to max)."""
        current = getattr(self.client, "_reconnect_delay", None)
        low, high = self.client._reconnect_min_delay, self.client._reconnect_max_delay
        return low if current is None else min(current * 2, high)

    def _handle_subscribe(self, _client, _userdata, mid, reason_codes, _properties) -> None:
        """SUBACK: `subscribed` (what READY=1 waits for) is set only if every filter was granted."""
        if mid != self._pending_subscribe:
            return
        refused = [f"{topic}: {code}" for (topic, _), code in zip(self.subscriptions, reason_codes) if code.is_failure]
        if refused:
            self.last_error = f"subscription refused: {'; '.join(refused)}"
            log.error("broker refused subscription(s): %s", "; ".join(refused))
            return
        log.info("subscribed: %s", ", ".join(f"{topic} (granted QoS {int(code.value)})"
                                            for (topic, _), code in zip(self.subscriptions, reason_codes)))
        self.subscribed.set()

    def _handle_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        if reason_code != 0:
            self.last_error = f"disconnected: {reason_code}"
            log.warning("disconnected from broker %s:%s (%s); reconnecting in %d s", self.broker.host,
                        self.broker.port, reason_code, self._next_delay_seconds())

    def publish(self, topic: str, payload: str | bytes, qos: int = 0, retain: bool = False):
        """Queue a message. Returns paho's MQTTMessageInfo for a QoS > 0 message that paho accepted
        (is_published() turns true on the broker's acknowledgement), else None."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.publish_refused += 1          # outgoing queue full while the broker is away
            return None
        return info if qos > 0 else None

    def ack(self, mid: int, qos: int) -> None:
        self.client.ack(mid, qos)

    def pubrec_held(self, mid: int) -> bool:
        """Has the broker received this QoS 2 publish (PUBREC) while its PUBREL is held?"""
        return mid in getattr(self.client, "pubrec_received", ())

    def take_pubrecs(self) -> list[int]:
        """QoS 2 packet ids whose PUBREC arrived since the last call (held PUBRELs)."""
        arrivals = getattr(self.client, "pubrec_arrivals", None)
        taken = []
        while arrivals:
            taken.append(arrivals.popleft())
        return taken

    def release(self, mids) -> None:
        if mids:
            self.client.release(mids)

    def resume_releases(self, mids) -> list:
        return self.client.resume_releases(mids) if mids else []

    def stop(self) -> None:
        """Clean stop: say `offline` ourselves (the will is only for unclean ends), then disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
