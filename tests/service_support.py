"""Shared by the tests/test_service_*.py files: the service manager's end of NOTIFY_SOCKET, an
MQTT proxy that can hold back SUBACKs, and the runtime the daemon under test should use."""
from __future__ import annotations

import os
import socket
import threading
import time

from broker import free_port

# `make test-tflite-runtime` sets this so every daemon these tests start runs that runtime.
RUNTIME = os.environ.get("STATECAST_RUNTIME", "")


def runtime_section() -> str:
    return f'\n[runtime]\nbackend = "{RUNTIME}"\n' if RUNTIME else ""


class NotifyListener:
    """A bound AF_UNIX datagram socket, as systemd's; keeps (monotonic seconds, datagram) pairs.

    `address` is a path, or "@name" for an abstract socket; `env` is what the daemon needs.
    `on_ready(datagram)` runs on the receiving thread the moment a READY=1 arrives.
    """

    def __init__(self, address: str, watchdog_usec: int | None = None, on_ready=None):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.env = {"NOTIFY_SOCKET": address}
        if watchdog_usec is not None:
            self.env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.received: list[tuple[float, str]] = []
        self.on_ready = on_ready
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while self._running:
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((time.monotonic(), data))
            if self.on_ready is not None and "READY=1" in data.split("\n"):
                self.on_ready(data)

    def datagrams(self) -> list[str]:
        with self._lock:
            return [data for _, data in self.received]

    def times_of(self, field: str) -> list[float]:
        """Arrival times of datagrams with the line `field` ("READY=1"), or any value of "STATUS="."""
        def has(data: str) -> bool:
            return any(line == field or (field.endswith("=") and line.startswith(field)) for line in data.split("\n"))
        with self._lock:
            return [at for at, data in self.received if has(data)]

    def statuses(self) -> list[str]:
        return [line[len("STATUS="):] for data in self.datagrams() for line in data.split("\n")
                if line.startswith("STATUS=")]

    def wait_for(self, field: str, count: int = 1, timeout: float = 30.0) -> float:
        """Monotonic time at which the count-th datagram with `field` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            times = self.times_of(field)
            if len(times) >= count:
                return times[count - 1]
            time.sleep(0.02)
        raise AssertionError(f"no {field} (x{count}) within {timeout} s; got {self.datagrams()[-10:]}")

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self.sock.close()


def _read_packet(sock: socket.socket) -> bytes | None:
    """One whole MQTT control packet (fixed header + remaining length varint + body), or None at EOF."""
    def exactly(n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    header = exactly(1)
    if header is None:
        return None
    length, shift, raw = 0, 0, b""
    while True:
        byte = exactly(1)
        if byte is None:
            return None
        raw += byte
        length |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            break
    body = exactly(length) if length else b""
    return None if body is None else header + raw + body


class SubackGate:
    """A TCP proxy to a real broker that holds every SUBACK (packet type 9) until `release()`."""

    def __init__(self, broker_port: int):
        self.broker_port = broker_port
        self.port = free_port()
        self.released = threading.Event()
        self.held = threading.Event()                # a SUBACK reached the gate
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        self._running = True
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            for source, target, gate in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=(source, target, gate), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, target: socket.socket, gate: bool) -> None:
        try:
            while True:
                packet = _read_packet(source) if gate else source.recv(65536)
                if not packet:
                    break
                if gate and packet[0] >> 4 == 9:
                    self.held.set()
                    self.released.wait()
                target.sendall(packet)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self._running = False
        self.released.set()
        self.server.close()
