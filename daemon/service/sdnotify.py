"""sd_notify(3) without libsystemd: datagrams on $NOTIFY_SOCKET.

A no-op when the daemon is not started by systemd (NOTIFY_SOCKET unset). Sending never
raises: a failure returns False and is kept in `Notifier.last_error`, because losing a
status line must never take the engine down (a missed WATCHDOG=1 is what systemd is for).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

STATUS_MAX_CHARS = 200


class Notifier:
    """Sends sd_notify fields to the service manager over an AF_UNIX datagram socket."""

    def __init__(self, env: Mapping[str, str] = os.environ) -> None:
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self.last_error: OSError | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` as one datagram ("A=1\\nB=2"); True if the manager got it."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # never block the engine loop on a service manager that is slow to read
                sock.sendto(payload, socket.MSG_DONTWAIT, self._address)
        except OSError as error:
            self.last_error = error
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        fields = ["READY=1"]
        if status is not None:
            fields.append(_status_field(status))
        return self.notify(*fields)

    def reloading(self) -> bool:
        # systemd >= 253 (Type=notify-reload) wants MONOTONIC_USEC with RELOADING=1; 252 ignores it.
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(_status_field(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_interval_seconds(self) -> float | None:
        """Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None if not for this process."""
        if self._watchdog_pid and self._watchdog_pid != str(os.getpid()):
            return None
        try:
            watchdog_usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if watchdog_usec <= 0:
            return None
        return watchdog_usec / 2 / 1_000_000


class WatchdogPacer:
    """Sends WATCHDOG=1 at most once per interval; call `tick()` on every engine loop turn."""

    def __init__(self, notifier: Notifier, now: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._now = now
        self.interval_seconds = notifier.watchdog_interval_seconds() if notifier.enabled else None
        self._due = float("-inf")  # first tick pings at once

    def tick(self) -> bool:
        """True if a WATCHDOG=1 was sent (and delivered) on this call."""
        if self.interval_seconds is None:
            return False
        now = self._now()
        if now < self._due:
            return False
        self._due = now + self.interval_seconds
        return self._notifier.watchdog()


def _socket_address(raw: str) -> str | bytes | None:
    """'/run/systemd/notify' stays a path; '@name' is the abstract socket b'\\0name'."""
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode("utf-8")
    if raw.startswith("/"):
        return raw
    return None  # vsock: and other schemes of newer systemd are not ours to speak


def _status_field(text: str) -> str:
    one_line = " ".join(text.splitlines()).strip()
    return "STATUS=" + one_line[:STATUS_MAX_CHARS]
