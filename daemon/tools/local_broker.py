"""A private mosquitto on a free loopback port (for the demo, benchmarks and tests)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class LocalMosquitto:
    def __init__(self, extra_config: str = "", port: int | None = None):
        self.port = port or free_port()
        self.directory = tempfile.mkdtemp(prefix="statecast-mosquitto-")
        self.config_path = os.path.join(self.directory, "mosquitto.conf")
        self.log_path = os.path.join(self.directory, "mosquitto.log")
        # max_queued_messages raised from mosquitto's default 1000: a persistent session must hold
        # what arrives while the daemon restarts. max_inflight_messages raised from 20: the daemon
        # acknowledges inputs after journaling them, and mosquitto 2.0.11 delivers QoS 1 messages
        # out of order once a client's inflight window is full (seen here: a timestamp-ordered
        # stream then looks like it went back in time).
        with open(self.config_path, "w") as handle:
            handle.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                         f"persistence false\nmax_queued_messages 100000\nmax_inflight_messages 1000\n"
                         f"{extra_config}\n")
        self.process: subprocess.Popen | None = None

    def start(self, timeout_seconds: float = 10.0) -> "LocalMosquitto":
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (`make test` installs Debian's mosquitto)")
        self.process = subprocess.Popen([binary, "-c", self.config_path], stdout=open(self.log_path, "w"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {open(self.log_path).read()[-500:]}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
