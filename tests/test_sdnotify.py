"""sd_notify against real AF_UNIX datagram sockets (a path in tmp_path and an abstract name)."""

import os
import re
import socket
import time
import uuid

import pytest

from statecast.daemon.service.sdnotify import STATUS_MAX_CHARS, Notifier, WatchdogPacer


class Manager:
    """The service manager's end: a bound datagram socket and what arrived on it."""

    def __init__(self, notify_socket: str) -> None:
        address = "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket
        self.env_value = notify_socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(2.0)

    def receive(self) -> bytes:
        return self.sock.recv(4096)

    def pending(self) -> list[bytes]:
        self.sock.setblocking(False)
        datagrams = []
        try:
            while True:
                datagrams.append(self.sock.recv(4096))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(2.0)
        return datagrams

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def path_manager(tmp_path):
    path = str(tmp_path / "notify")
    assert len(path) < 108, "sun_path limit"
    manager = Manager(path)
    yield manager
    manager.close()


@pytest.fixture
def abstract_manager():
    manager = Manager(f"@statecast-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    yield manager
    manager.close()


def test_notify_sends_exact_bytes_on_a_socket_path(path_manager):
    notifier = Notifier({"NOTIFY_SOCKET": path_manager.env_value})
    assert notifier.enabled
    assert notifier.notify("READY=1", "STATUS=serving 3 streams") is True
    assert path_manager.receive() == b"READY=1\nSTATUS=serving 3 streams"


def test_notify_sends_exact_bytes_on_an_abstract_socket(abstract_manager):
    notifier = Notifier({"NOTIFY_SOCKET": abstract_manager.env_value})
    assert notifier.ready("serving 2 streams") is True
    assert abstract_manager.receive() == b"READY=1\nSTATUS=serving 2 streams"
    assert notifier.stopping() is True
    assert abstract_manager.receive() == b"STOPPING=1"


def test_each_helper_sends_its_field(path_manager):
    notifier = Notifier({"NOTIFY_SOCKET": path_manager.env_value})
    assert notifier.ready()
    assert path_manager.receive() == b"READY=1"
    assert notifier.watchdog()
    assert path_manager.receive() == b"WATCHDOG=1"
    assert notifier.status("checkpoint written")
    assert path_manager.receive() == b"STATUS=checkpoint written"

    before_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=(\d+)", path_manager.receive())
    assert match is not None
    assert before_usec <= int(match.group(1)) <= after_usec


def test_status_is_one_line_and_capped(path_manager):
    notifier = Notifier({"NOTIFY_SOCKET": path_manager.env_value})
    notifier.status("broker lost\nretrying in 5 s\r\n")
    assert path_manager.receive() == b"STATUS=broker lost retrying in 5 s"
    notifier.status("x" * 1000)
    assert path_manager.receive() == b"STATUS=" + b"x" * STATUS_MAX_CHARS


def test_absent_notify_socket_is_a_no_op():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    assert notifier.ready("x") is False
    assert notifier.watchdog() is False
    assert notifier.last_error is None
    assert WatchdogPacer(notifier, now=lambda: 0.0).tick() is False


def test_unreachable_socket_returns_false_and_keeps_the_error(tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.enabled
    assert notifier.notify("READY=1") is False
    assert isinstance(notifier.last_error, OSError)


@pytest.mark.parametrize(
    ("env", "expected_seconds"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "thirty"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env, expected_seconds):
    assert Notifier(env).watchdog_interval_seconds() == expected_seconds


def test_pacer_sends_at_most_once_per_interval(path_manager):
    # Fake monotonic clock: the one seam here; the datagrams are real.
    clock = {"now": 1000.0}
    notifier = Notifier({"NOTIFY_SOCKET": path_manager.env_value, "WATCHDOG_USEC": "10000000"})
    pacer = WatchdogPacer(notifier, now=lambda: clock["now"])
    assert pacer.interval_seconds == 5.0

    sent_at = []
    for step in range(0, 1301):  # 13 s of engine-loop turns, every 10 ms
        clock["now"] = 1000.0 + step / 100
        if pacer.tick():
            sent_at.append(round(clock["now"] - 1000.0, 2))

    assert sent_at == [0.0, 5.0, 10.0]
    assert path_manager.pending() == [b"WATCHDOG=1"] * 3


def test_pacer_is_idle_without_a_watchdog(path_manager):
    notifier = Notifier({"NOTIFY_SOCKET": path_manager.env_value})
    pacer = WatchdogPacer(notifier, now=lambda: 0.0)
    assert pacer.interval_seconds is None
    assert not any(pacer.tick() for _ in range(10))
    assert path_manager.pending() == []
