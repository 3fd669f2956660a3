"""Run the real daemon as a subprocess and watch its MQTT output with a real paho client."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "machine_temperature-float32")


def write_config(path, port: int, state_dir: str, model: str = DEFAULT_MODEL, topic: str = "sensors/+/temperature",
                 extra: str = "", stream_extra: str = "", client_id: str = "statecast-test") -> str:
    with open(path, "w") as handle:
        handle.write(f"""
[broker]
host = "127.0.0.1"
port = {port}
client_id = "{client_id}"
reconnect_min_seconds = 1
reconnect_max_seconds = 2

[[streams]]
topic = "{topic}"
model = "{model}"
name = "temperature"
{stream_extra}

[state]
directory = "{state_dir}"
checkpoint_interval_seconds = 1

[output]
stats_interval_seconds = 1
{extra}
""")
    return str(path)


class Collector:
    """Subscribes before anything is published and keeps every message, in order."""

    def __init__(self, port: int, topics=("statecast/#",), qos: int = 1):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collector-{os.getpid()}-{id(self)}")
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self._keep(m)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe([(t, qos) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "collector could not subscribe"

    def _keep(self, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, message.retain))

    def json_on(self, topic: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p, _ in self.messages if t == topic]

    def payloads_on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def publisher(port: int, client_id: str = "test-publisher") -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, items, qos: int = 1) -> None:
    last = None
    for topic, payload in items:
        last = client.publish(topic, payload, qos=qos)
    if last is not None:
        last.wait_for_publish(timeout=30)


RUNNING: list["DaemonProcess"] = []     # stopped by conftest's autouse fixture after every test


class DaemonProcess:
    def __init__(self, config_path: str, env: dict | None = None):
        self.config_path = config_path
        self.log_path = config_path + ".log"
        # the log file is appended to across restarts; this process's part starts here
        self._log_start = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.process = subprocess.Popen([sys.executable, "-m", "statecast.daemon", "serve", "--config", config_path],
                                        stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        RUNNING.append(self)

    def log(self) -> str:
        """This process's own log lines."""
        with open(self.log_path) as handle:
            handle.seek(self._log_start)
            return handle.read()

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "serving:" in self.log():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}: {self.log()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"daemon not serving: {self.log()[-2000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
