"""The daemon's paho client reads and writes the socket in chunks (paho_io.BufferedClient):
every packet must still arrive whole and in order when many arrive in one read, when a packet
spans two reads, when one packet is larger than a read, and after the connection is dropped and
made again (a stale buffer would be parsed as the start of the new connection); what it
publishes in bursts, joined into few writes, must reach subscribers whole and in order, also
when a clean DISCONNECT follows right behind. Real mosquitto."""
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from statecast.daemon.mqtt.paho_io import READ_CHUNK, BatchedWakeups, BufferedClient

TOPIC = "link-test/burst"


def _connect(client, broker) -> None:
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert connected.wait(10), "no CONNACK"


def _subscriber(broker, received: list, subscribed: threading.Event) -> BufferedClient:
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="link-test-sub")
    client.on_message = lambda _c, _u, message: received.append(bytes(message.payload))
    client.on_subscribe = lambda *_args: subscribed.set()
    _connect(client, broker)
    client.on_connect = lambda c, *_args: c.subscribe(TOPIC, qos=1)    # again after a reconnect
    client.subscribe(TOPIC, qos=1)
    assert subscribed.wait(10), "no SUBACK"
    return client


def _publish(broker, payloads: list[bytes]) -> None:
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="link-test-pub")
    publisher.max_inflight_messages_set(0)                  # a burst, not a trickle
    _connect(publisher, broker)
    infos = [publisher.publish(TOPIC, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()


def _wait_for(received: list, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _payloads(count: int, tag: str) -> list[bytes]:
    # Sizes 1 .. ~300 bytes, so packet boundaries fall everywhere within the chunks.
    return [f"{tag}:{i}:".encode() + b"x" * (i * 37 % 300) for i in range(count)]


def test_bursts_large_packets_and_reconnects_arrive_whole_and_in_order(broker):
    received, subscribed = [], threading.Event()
    subscriber = _subscriber(broker, received, subscribed)
    try:
        first = _payloads(4000, "a")                         # ~0.6 MB: many chunks' worth
        big = b"B" * (3 * READ_CHUNK + 123)                  # one packet across four reads
        _publish(broker, first + [big] + _payloads(50, "b"))
        _wait_for(received, 4051)
        assert received == first + [big] + _payloads(50, "b")

        subscribed.clear()
        subscriber.reconnect()                               # drops the socket and its buffer
        assert subscribed.wait(10), "no SUBACK after the reconnect"
        after = _payloads(1000, "c")
        _publish(broker, after)
        _wait_for(received, 4051 + 1000)
        assert received[4051:] == after
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


def test_one_read_takes_at_most_one_chunk_so_a_flood_cannot_starve_writes(broker):
    """paho writes only between reads. Under a flood the socket always has more to read, and a
    loop_read that refilled its buffer whenever it ran dry never returned: nothing the daemon
    published went out. One loop_read takes at most one chunk from the socket; the rest is read
    by the next ones, whole and in order (one packet spans four reads)."""
    import select
    received, subscribed = [], threading.Event()
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="link-test-flood")
    client.on_message = lambda _c, _u, message: received.append(bytes(message.payload))
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", broker.port)                # no network thread: this test turns paho's loop
    try:
        client.subscribe(TOPIC, qos=0)
        deadline = time.monotonic() + 10
        while not subscribed.is_set() and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        assert subscribed.is_set(), "no SUBACK"
        flood = _payloads(4000, "f") + [b"B" * (3 * READ_CHUNK + 123)] + _payloads(50, "g")   # ~0.8 MB
        _publish(broker, flood)
        time.sleep(0.5)                                      # the broker has written it to our socket
        assert select.select([client.socket()], [], [], 5)[0], "nothing to read"
        client.loop_read()
        first = sum(len(p) + len(TOPIC) + 4 for p in received)      # payload, topic, length fields
        assert 0 < first <= READ_CHUNK, f"one loop_read handled {first} bytes"
        deadline = time.monotonic() + 30
        while len(received) < len(flood) and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        assert received == flood
    finally:
        client.disconnect()


def test_held_wakeups_become_one_byte_on_release():
    """BatchedWakeups stands in for paho's socket-pair writer: while held, paho's per-packet wake
    bytes are skipped; release() writes exactly one, which is what gets the network thread out of
    select() (without it, held publishes would wait for paho's 1 s select timeout)."""
    import select
    import socket

    reader, writer = socket.socketpair()
    try:
        wakeups = BatchedWakeups(writer)
        wakeups.held = True
        assert [wakeups.send(b"x") for _ in range(3)] == [1, 1, 1]
        assert select.select([reader], [], [], 0)[0] == []          # nothing written while held
        wakeups.release()
        assert reader.recv(100) == b"0"                              # one byte for the whole burst
        wakeups.release()                                            # nothing skipped: nothing written
        assert select.select([reader], [], [], 0)[0] == []
        assert wakeups.send(b"y") == 1 and reader.recv(100) == b"y"  # not held: straight through
        assert wakeups.fileno() == writer.fileno()
    finally:
        reader.close()
        writer.close()


def test_published_bursts_are_joined_into_few_writes_and_arrive_whole_and_in_order(broker):
    received, subscribed = [], threading.Event()
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="link-test-plain-sub")
    subscriber.on_message = lambda _c, _u, message: received.append((message.qos, bytes(message.payload)))
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    _connect(subscriber, broker)
    subscriber.subscribe(TOPIC, qos=1)
    assert subscribed.wait(10), "no SUBACK"
    publisher = BufferedClient(CallbackAPIVersion.VERSION2, client_id="link-test-buffered-pub")
    publisher.max_inflight_messages_set(0)
    sends = []
    real_send = publisher._sock_send
    publisher._sock_send = lambda buf: sends.append(len(buf)) or real_send(buf)    # count system calls
    try:
        _connect(publisher, broker)
        # As the daemon's engine loop does: one wake-up of paho's network thread per burst, so the
        # burst is queued before paho writes (otherwise how much piles up is up to the scheduler).
        wakeups = publisher._sockpairW = BatchedWakeups(publisher._sockpairW)
        # QoS 1 burst below the broker's inflight window (1,000): mosquitto 2.0.11 reorders beyond it.
        qos0, qos1 = _payloads(3000, "q0"), _payloads(800, "q1") + [b"L" * (2 * READ_CHUNK)]
        wakeups.held = True
        infos = [publisher.publish(TOPIC, payload, qos=0) for payload in qos0]
        before = len(sends)
        wakeups.release()
        for info in infos:
            info.wait_for_publish(10)
        # Nothing comes back for QoS 0, so nothing else woke the network thread: the whole burst
        # (~0.6 MB) was queued when it wrote. For QoS 1 the PUBACKs wake it as the burst is being
        # queued, so how much each write carries is up to the scheduler.
        qos0_sends = len(sends) - before
        wakeups.held = True
        infos += [publisher.publish(TOPIC, payload, qos=1) for payload in qos1]
        wakeups.release()
        for info in infos:
            info.wait_for_publish(10)                        # QoS 0: written; QoS 1: PUBACK
        assert all(info.is_published() for info in infos)
        publisher.publish(TOPIC, b"last before DISCONNECT", qos=0)
        publisher.disconnect()                               # queued right behind it
        _wait_for(received, len(qos0) + len(qos1) + 1)
        # MQTT orders messages per QoS level, not across levels: compare each level's sequence.
        assert [p for q, p in received if q == 0] == qos0 + [b"last before DISCONNECT"]
        assert [p for q, p in received if q == 1] == qos1
        assert qos0_sends <= 30, f"{qos0_sends} send() calls for {len(qos0)} QoS 0 packets"
    finally:
        publisher.loop_stop()
        subscriber.disconnect()
        subscriber.loop_stop()
