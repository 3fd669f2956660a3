"""The daemon's MQTT connection (paho-mqtt 2.x, CallbackAPIVersion.VERSION2).

Persistent session (fixed client id, clean_start=False + session expiry on MQTT 5,
clean_session=False on 3.1.1), automatic reconnect with backoff, a bounded outgoing queue while
disconnected, and a retained status topic with a matching last will. The network thread only
hands raw messages to `on_message`; everything else happens in the engine loop.

paho's socket I/O costs more than the daemon's own work per message: BufferedClient reads and
writes the socket in chunks, and BatchedWakeups wakes the network thread once per engine turn
instead of once per packet (docs/architecture.md says why). Both override paho 2.x internals
(pinned <3); tests/test_mqtt_link.py checks them against a real broker.

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
import struct
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("statecast.mqtt")


READ_CHUNK = 65536       # bytes per recv(): many small packets per system call
WRITE_CHUNK = 65536      # queued packets joined into one send()


def _written_alone(packet: dict) -> bool:
    """Not joined with others: a packet paho has begun writing, and a QoS 2 PUBLISH. Joined QoS 2
    PUBLISHes cut exactly-once forecasts from 3,160-3,460 to 1,650-2,090 msg/s (QoS 1 inputs,
    1,000 streams, bench_patches `base+fq2`, two runs each), at the same CPU per message; why was
    not found. QoS 0/1 publishes and acks showed no such effect."""
    return bool(packet["pos"]) or (packet["command"] & 0xF0 == mqtt.PUBLISH and packet["qos"] == 2)


class BufferedClient(mqtt.Client):
    """paho's Client, reading and writing the socket in 64 kB chunks.

    paho reads every packet with three or more recv() calls (the command byte, the length bytes,
    the body) and handles one packet per select(); it writes every packet with its own send().
    Each of those system calls releases the GIL, which the engine loop then takes, so at
    thousands of messages a second the two threads hand the GIL back and forth several times per
    message. Here recv() is served from a buffer filled by one system call and loop_read goes on
    until the buffer is empty, and the packets queued when paho comes to write are joined into
    one send(). The read buffer belongs to one connection: it is dropped with the socket (paho
    closes the socket before every reconnect)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_offset = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_offset >= len(self._read_buffer):
            chunk = super()._sock_recv(READ_CHUNK)         # raises BlockingIOError when nothing came
            if not chunk:
                return chunk                                # connection closed
            self._read_buffer, self._read_offset = chunk, 0
        start = self._read_offset
        self._read_offset = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start:self._read_offset]

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # select() cannot see bytes already in the buffer: handle them all before returning.
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTT_ERR_SUCCESS and self._sock is not None and self._read_offset < len(self._read_buffer):
            rc = super().loop_read(max_packets)
        return rc

    def loop_write(self) -> mqtt.MQTTErrorCode:
        self._coalesce_queued_packets()
        return super().loop_write()

    def _coalesce_queued_packets(self) -> None:
        """Join the packets waiting in paho's queue into runs of up to WRITE_CHUNK bytes, so paho
        writes each run with one send() instead of one per packet. Only the network thread takes
        from the front of the deque (other threads append at the back), so this cannot race with
        them, and packets queued meanwhile stay behind. Joining stops at a DISCONNECT (paho closes
        the socket after writing it). A joined QoS 0 PUBLISH is marked published here, when its
        bytes go to the socket writer, as paho would after writing it."""
        queue = self._out_packet
        if len(queue) < 2:
            return
        taken = []
        while queue and queue[0]["command"] & 0xF0 != mqtt.DISCONNECT:
            taken.append(queue.popleft())
        runs, run, size = [], [], 0
        for packet in taken:
            if run and (_written_alone(packet) or _written_alone(run[0]) or size + packet["to_process"] > WRITE_CHUNK):
                runs.append(run)
                run, size = [], 0
            run.append(packet)
            size += packet["to_process"]
        if run:
            runs.append(run)
        for run in reversed(runs):
            queue.appendleft(run[0] if len(run) == 1 else self._joined(run))

    @staticmethod
    def _joined(packets: list) -> dict:
        for packet in packets:
            if packet["command"] & 0xF0 == mqtt.PUBLISH and packet["qos"] == 0 and packet["info"] is not None:
                packet["info"]._set_as_published()
        data = b"".join(bytes(p["packet"]) for p in packets)
        return {"command": 0, "mid": 0, "qos": 0, "pos": 0, "to_process": len(data), "packet": data, "info": None}

    def _sock_close(self) -> None:
        # loop_read leaves the buffer empty unless a read failed part-way through it; what is left
        # then belongs to the dropped connection and must not be parsed as the next one's start.
        self._read_buffer, self._read_offset = b"", 0
        super()._sock_close()


class ReleaseOnCommitClient(BufferedClient):
    """paho's Client, except that a QoS 2 publish's PUBREL waits for release(mid).

    MQTT's QoS 2 is exactly-once only while the sender remembers where each message is: the
    broker delivers a message when it receives the PUBREL, and after that a PUBLISH with the same
    packet id is a new message. A daemon that crashes after paho sent the PUBREL but before it
    recorded that fact would publish the forecast again after the restart, and it would be
    delivered twice. So the PUBREC is recorded first (journal) and only then is the PUBREL sent.
    paho has no hook for this; overriding its PUBREC handler is the smallest change (paho 2.x).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pubrec_received: set[int] = set()     # PUBREC in, PUBREL held back
        self.pubrec_arrivals: deque[int] = deque() # the same mids in arrival order, for the engine loop
        self._release_on_pubrec: set[int] = set()  # released while a reconnect re-sent the PUBLISH
        # Called (network thread) when a PUBREC is held: the engine loop must turn to release it,
        # or a subscriber waiting for the forecast waits for the loop's idle timeout.
        self.on_pubrec_held: Callable[[], None] | None = None

    def _handle_pubrec(self) -> mqtt.MQTTErrorCode:
        mid, = struct.unpack("!H", bytes(self._in_packet["packet"][:2]))
        self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received PUBREC (Mid: %d)", mid)
        with self._out_message_mutex:
            message = self._out_messages.get(mid)
            if message is None or message.qos != 2:
                return mqtt.MQTT_ERR_SUCCESS
            if mid in self._release_on_pubrec:
                self._release_on_pubrec.discard(mid)
                return self._send_pubrel_now(message)
            # The state stays "waiting for PUBREC": a reconnect before the release re-sends the
            # PUBLISH (DUP), which the broker recognises by its packet id and does not deliver twice.
            self.pubrec_received.add(mid)
            self.pubrec_arrivals.append(mid)
        if self.on_pubrec_held is not None:
            self.on_pubrec_held()
        return mqtt.MQTT_ERR_SUCCESS

    def _send_pubrel_now(self, message) -> mqtt.MQTTErrorCode:
        message.state = mqtt.mqtt_ms_wait_for_pubcomp
        message.timestamp = time.monotonic()
        return self._send_pubrel(message.mid)

    def release(self, mids) -> None:
        """The PUBRECs of these publishes are durably recorded: let the broker deliver them."""
        with self._out_message_mutex:
            for mid in mids:
                message = self._out_messages.get(mid)
                if message is None:
                    continue
                if mid in self.pubrec_received and message.state == mqtt.mqtt_ms_wait_for_pubrec:
                    self._send_pubrel_now(message)
                else:       # a reconnect is re-sending the PUBLISH: PUBREL on its PUBREC
                    self._release_on_pubrec.add(mid)
                self.pubrec_received.discard(mid)

    def resume_releases(self, mids) -> list[mqtt.MQTTMessageInfo]:
        """Before connecting: PUBRELs recorded by a previous process and not known to have
        completed. paho sends a PUBREL for every message in this state when the (persistent)
        session is resumed, and new packet ids continue after these."""
        infos = []
        with self._out_message_mutex:
            for mid in mids:
                message = mqtt.MQTTMessage(mid, b"")
                message.qos, message.state = 2, mqtt.mqtt_ms_wait_for_pubcomp
                self._out_messages[mid] = message
                infos.append(message.info)
            if mids:
                self._last_mid = max(mids)
                # On reconnect paho re-sends a PUBREL only for messages within its inflight
                # window; one outside would be sent as a PUBLISH of this empty placeholder.
                if self._max_inflight_messages:
                    self._max_inflight_messages = max(self._max_inflight_messages, len(mids) + 1)
        return infos


class BatchedWakeups:
    """Stands in for paho's socket-pair writer (client._sockpairW).

    paho writes a byte to it for every packet another thread queues (publish, ack), to wake its
    network thread out of select(); each is a system call that releases the GIL. While `held`,
    those bytes are skipped and one is written on release(): the network thread's next select()
    returns and it writes every queued packet. A packet the network thread itself queues meanwhile
    needs no wake-up (it is not in select()), but it is covered by the same byte."""

    def __init__(self, writer: socket.socket):
        self._writer = writer
        self.held = False
        self._skipped = False

    def send(self, data: bytes) -> int:
        if self.held:
            self._skipped = True
            return len(data)
        return self._writer.send(data)

    def release(self) -> None:
        self.held = False
        if self._skipped:
            self._skipped = False
            try:
                self._writer.send(b"0")
            except OSError:                     # full: the network thread is awake anyway; closed: stopping
                pass

    def __getattr__(self, name):                # close(), fileno(), ... go to the real socket
        return getattr(self._writer, name)


def acknowledged(info) -> bool:
    """Is this publish complete (PUBACK for QoS 1, PUBCOMP for QoS 2)? paho's is_published()
    raises for a message that was queued while disconnected (rc NO_CONN) even after it went out
    and was acknowledged on reconnect, so read the flag paho sets on completion; a message paho
    refused (queue full) never will be, and does not hold up the inputs behind it."""
    try:
        return info.is_published()
    except ValueError:                          # MQTT_ERR_QUEUE_SIZE: dropped, counted by the link
        return True
    except RuntimeError:                        # MQTT_ERR_NO_CONN: queued, sent after reconnect
        return bool(getattr(info, "_published", False))


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
            # paho leaves Nagle on: small forecasts then wait for the previous ACK (p50 at
            # 100 msg/s went from 10.7 to 4.2 ms with this: docs/benchmarks.md, section 6)
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
