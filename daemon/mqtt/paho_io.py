"""paho-mqtt 2.x internals the daemon overrides (pinned <3; tests/test_mqtt_link.py checks them
against a real broker), apart from the link facade in mqtt_link.py.

paho's socket I/O costs more than the daemon's own work per message: BufferedClient reads and
writes the socket in chunks, and BatchedWakeups wakes the network thread once per engine turn
instead of once per packet (docs/architecture.md says why). ReleaseOnCommitClient holds back a
QoS 2 publish's PUBREL until the engine loop has durably recorded the broker's PUBREC
(docs/reliability.md).
"""
from __future__ import annotations

import socket
import struct
import time
from collections import deque
from typing import Callable

import paho.mqtt.client as mqtt


READ_CHUNK = 65536       # bytes per recv(): many small packets per system call
WRITE_CHUNK = 65536      # queued packets joined into one send()


def _written_alone(packet: dict) -> bool:
    """Not joined with others: a packet paho has begun writing, and a QoS 2 PUBLISH. Joined QoS 2
    PUBLISHes halved exactly-once forecast throughput at the same CPU per message; why was not
    found (figures: docs/performance-history.md). QoS 0/1 publishes and acks showed no such effect."""
    return bool(packet["pos"]) or (packet["command"] & 0xF0 == mqtt.PUBLISH and packet["qos"] == 2)


class BufferedClient(mqtt.Client):
    """paho's Client, reading and writing the socket in 64 kB chunks.

    paho reads every packet with three or more recv() calls (the command byte, the length bytes,
    the body) and handles one packet per select(); it writes every packet with its own send().
    Each of those system calls releases the GIL, which the engine loop then takes, so at
    thousands of messages a second the two threads hand the GIL back and forth several times per
    message. Here recv() is served from a buffer filled by one system call and loop_read goes on
    until the buffer is empty, and the packets queued when paho comes to write are joined into
    one send(). One loop_read reads at most one chunk from the socket: under a flood of input the
    socket always has more, and a loop_read that refilled its buffer whenever it ran dry never
    returned, so paho's loop never came to write: no forecast went out, and what the engine
    published piled up in paho's queue (bench_memory at 10,000 streams on a slow machine: 20,000
    readings in, 0 forecasts out for 8 s and more, RSS 99-151 MB). The read buffer belongs to one
    connection: it is dropped with the socket (paho closes the socket before every reconnect)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_offset = 0
        self._chunk_taken = False               # this loop_read has already read from the socket

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_offset >= len(self._read_buffer):
            if self._chunk_taken:               # paho takes it as "nothing more now" and resumes later
                raise BlockingIOError
            chunk = super()._sock_recv(READ_CHUNK)         # raises BlockingIOError when nothing came
            self._chunk_taken = True
            if not chunk:
                return chunk                                # connection closed
            self._read_buffer, self._read_offset = chunk, 0
        start = self._read_offset
        self._read_offset = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start:self._read_offset]

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # select() cannot see bytes already in the buffer: handle them all before returning.
        self._chunk_taken = False
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
