"""The moving parts of the end-to-end benchmarks: a private mosquitto, the system under test (the
real daemon as a subprocess, or the echo baseline), publisher processes and a receiver process.

Every client runs in its own process (multiprocessing, spawn), so no two share a GIL. Counters
are shared memory: publishers add to `sent`, the receiver to `received`; a closed-loop publisher
keeps at most `window` messages in flight end to end (published but not yet answered), so it
runs "as fast as the system sustains" without building an unbounded backlog anywhere.

Each published payload is `{"value": v, "ts": <time.time() at publish>}`; the daemon echoes `ts`
in its forecast (it is the input's timestamp), so the receiver's `time.time() - ts` is the
publish -> forecast latency on one clock.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench_common import CSV

CTX = multiprocessing.get_context("spawn")
INPUT_FILTER = "sensors/+/temperature"
ECHO_PREFIX = "echo/"


def stream_ids(count: int) -> list[str]:
    return [f"s{i:06d}" for i in range(count)]


def sensor_values(rows: int = 4096) -> list[float]:
    from statecast.daemon.tools.series_csv import read_series
    return [float(v) for v in read_series(CSV, "timestamp", ("value",)).values[:rows, 0]]


def _client(name: str, protocol=mqtt.MQTTv311, client_class=mqtt.Client) -> mqtt.Client:
    return client_class(CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                        protocol=protocol)


def _nodelay(client: mqtt.Client) -> None:
    """paho leaves Nagle's algorithm on: small publishes wait for the previous segment's ACK."""
    if os.environ.get("STATECAST_BENCH_NAGLE") != "1":
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- processes ----------------------------------------------------------------------------
def publisher_main(port: int, qos: int, ids: list[str], index: int, sent, received, lost, window: int,
                   rate_hz: float, start, stop, ready) -> None:
    """Closed loop (rate_hz 0): keep at most `window` messages in flight over all publishers.
    Open loop (rate_hz > 0): message i at start + i / rate_hz (one publisher)."""
    values = sensor_values()
    client = _client(f"pub{index}")
    client.max_inflight_messages_set(1000)       # the load generator must not be the bottleneck
    client.connect("127.0.0.1", port)
    _nodelay(client)
    client.loop_start()
    topics = [f"sensors/{sid}/temperature" for sid in ids]
    n, i = len(topics), 0
    ready.set()
    start.wait()
    began = time.monotonic()
    while not stop.is_set():
        if rate_hz > 0:
            due = int((time.monotonic() - began) * rate_hz) + 1
            burst = due - i
            if burst <= 0:
                time.sleep(min(0.0005, (i + 1 - (time.monotonic() - began) * rate_hz) / rate_hz))
                continue
        else:
            in_flight = sum(sent) - received.value - lost.value
            burst = min(64, window - in_flight)
            if burst <= 0:
                time.sleep(0.0002)
                continue
        for _ in range(burst):
            last = client.publish(topics[i % n], f'{{"value":{values[i % 4096]!r},"ts":{time.time()!r}}}', qos=qos)
            i += 1
        sent[index] = i
    if i:
        try:                                     # hand over what paho still holds before disconnecting
            last.wait_for_publish(timeout=5)
        except (RuntimeError, ValueError):
            pass
    client.disconnect()
    client.loop_stop()


def _subscribe_and_loop(client: mqtt.Client, port: int, topic_filter: str, qos: int, ready) -> None:
    """Subscribe on every (re)connect, set `ready` on the SUBACK, connect with TCP_NODELAY and
    start paho's network thread."""
    client.on_connect = lambda c, *a: c.subscribe(topic_filter, qos)
    client.on_subscribe = lambda *a: ready.set()
    client.connect("127.0.0.1", port)
    _nodelay(client)
    client.loop_start()


def receiver_main(port: int, topic_filter: str, qos: int, received, stop, ready, conn) -> None:
    """Counts every output message and keeps (ts, latency) pairs; sends them back at the end."""
    stamps, latencies = array("d"), array("d")

    def on_message(_client, _userdata, message):
        now = time.time()
        received.value += 1
        ts = json.loads(message.payload)["ts"]
        stamps.append(ts)
        latencies.append(now - ts)

    client = _client("receiver")
    client.on_message = on_message
    _subscribe_and_loop(client, port, topic_filter, qos, ready)
    stop.wait()
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()
    conn.send((stamps.tobytes(), latencies.tobytes()))
    conn.close()


def echo_main(port: int, qos: int, stop, ready, protocol: str = "5", buffered: bool = False) -> None:
    """The ceiling: receive each reading, decode its JSON, publish an echo (MQTT 5 like serve's
    default, or 3.1.1). buffered: on the daemon's own paho client (paho_io.BufferedClient,
    chunked socket reads and writes) instead of stock paho, so the two share their MQTT plumbing."""
    client_class = mqtt.Client
    if buffered:
        from statecast.daemon.mqtt.paho_io import BufferedClient as client_class
    client = _client("echo", mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311, client_class)

    def on_message(c, _userdata, message):
        body = json.loads(message.payload)
        stream = message.topic.split("/")[1]
        c.publish(ECHO_PREFIX + stream, json.dumps({"stream": stream, "ts": body["ts"], "value": body["value"]},
                                                   separators=(",", ":")), qos=qos)

    client.on_message = on_message
    _subscribe_and_loop(client, port, INPUT_FILTER, qos, ready)
    stop.wait()
    client.disconnect()
    client.loop_stop()


# --- the system under test ----------------------------------------------------------------
@dataclass
class DaemonOptions:
    model: str
    qos: int = 0
    max_batch: int = 256
    max_wait_ms: float = 0.0                     # the shipped default
    max_streams: int = 10_000
    stats_interval_seconds: float = 1.0
    checkpoint_interval_seconds: float = 30.0
    anomaly: bool = True
    anomaly_long_window: int | None = None       # None: the default (2000)
    anomaly_daily_profile: bool | None = None    # None: the model's setting
    protocol: str = "5"
    extra_state: str = ""                         # more [state] lines, e.g. "journal = false\n"
    extra_broker: str = ""                        # more [broker] lines
    forecast_qos: int | None = None               # None: the input QoS
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "statecast.daemon", "serve"])
    env: dict = field(default_factory=dict)


def with_retries(fn, *args, attempts: int = 3, **kwargs):
    """fn(*args, **kwargs), repeated when the process under test died under it; the number of
    discarded attempts is recorded in the result."""
    for attempt in range(attempts):
        try:
            result = fn(*args, **kwargs)
        except SUTDied as error:
            print(f"bench: {error}; repeating ({attempt + 1}/{attempts})", file=sys.stderr, flush=True)
            continue
        if isinstance(result, dict):
            result["discarded_attempts"] = attempt
        return result
    raise RuntimeError(f"{getattr(fn, '__name__', fn)}: the process under test died in {attempts} attempts")


def write_daemon_config(directory: str, port: int, options: DaemonOptions) -> str:
    path = os.path.join(directory, "statecast.toml")
    with open(path, "w") as handle:
        handle.write(f"""[broker]
host = "127.0.0.1"
port = {port}
client_id = "statecast-bench-{uuid.uuid4().hex[:8]}"
protocol = "{options.protocol}"
{options.extra_broker}
[[streams]]
topic = "{INPUT_FILTER}"
model = "{options.model}"
name = "bench"
qos = {options.qos}

[batching]
max_batch = {options.max_batch}
max_wait_ms = {options.max_wait_ms}

[state]
directory = "{directory}/state"
max_streams = {options.max_streams}
checkpoint_interval_seconds = {options.checkpoint_interval_seconds}
{options.extra_state}
[anomaly]
enabled = {"true" if options.anomaly else "false"}
{f"long_window = {options.anomaly_long_window}" if options.anomaly_long_window else ""}
{"" if options.anomaly_daily_profile is None else f"daily_profile = {str(options.anomaly_daily_profile).lower()}"}

[output]
stats_interval_seconds = {options.stats_interval_seconds}
forecast_qos = {options.qos if options.forecast_qos is None else options.forecast_qos}
""")
    return path


class NotifyListener:
    """The service manager's end of NOTIFY_SOCKET: records when READY=1 arrives, and keeps reading
    (the daemon sends STATUS= every few seconds; an unread socket fills after ~10 datagrams and
    the daemon's blocking send then stalls its engine loop)."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.ready_at: float | None = None
        self.datagrams = 0
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.datagrams += 1
            if self.ready_at is None and b"READY=1" in data.split(b"\n"):
                self.ready_at = time.monotonic()
                self._ready.set()

    def wait_ready(self, process: subprocess.Popen, timeout_seconds: float) -> float:
        deadline = time.monotonic() + timeout_seconds
        while not self._ready.wait(0.05):
            if process.poll() is not None:
                raise RuntimeError(f"daemon exited with {process.returncode} before READY=1")
            if time.monotonic() > deadline:
                raise RuntimeError("daemon did not send READY=1 in time")
        return self.ready_at

    def close(self) -> None:
        self._closed.set()
        self._thread.join(1.0)
        self.sock.close()


class SUTDied(RuntimeError):
    """The process under test exited during a run (this machine is shared: other sessions' clean-ups
    have been seen to kill it); the run is discarded and repeated."""


class DaemonSUT:
    """`statecast serve` as a subprocess with its own config, state directory and notify socket."""

    kind = "daemon"

    def __init__(self, port: int, options: DaemonOptions):
        self.directory = tempfile.mkdtemp(prefix="statecast-bench-")
        self.options = options
        self.config_path = write_daemon_config(self.directory, port, options)
        self.log_path = os.path.join(self.directory, "daemon.log")
        self.notify = NotifyListener(self.directory)
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    def start(self, timeout_seconds: float = 120.0) -> "DaemonSUT":
        started = time.monotonic()
        env = {**os.environ, "NOTIFY_SOCKET": self.notify.path, **self.options.env}
        self.process = subprocess.Popen(self.options.command + ["--config", self.config_path],
                                        stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT, env=env)
        self.startup_seconds = self.notify.wait_ready(self.process, timeout_seconds) - started
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise SUTDied(f"daemon exited with {self.process.returncode} during the run (log {self.log_path})")

    def stop(self, timeout_seconds: float = 60.0) -> int:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.notify.close()
        return self.process.returncode if self.process else 0

    def kill(self) -> None:
        """SIGKILL if still running (a run that skips the final checkpoint), close the notify socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.notify.close()

    def log(self) -> str:
        with open(self.log_path) as handle:
            return handle.read()

    def cleanup(self) -> None:
        """Remove the config, state (checkpoints of up to 100 MB) and log, unless
        STATECAST_BENCH_KEEP=1."""
        if os.environ.get("STATECAST_BENCH_KEEP") != "1":
            shutil.rmtree(self.directory, ignore_errors=True)


class EchoSUT:
    def cleanup(self) -> None:
        pass

    def __init__(self, port: int, qos: int, protocol: str = "5", buffered: bool = False):
        self.kind = "echo_buffered" if buffered else "echo"
        self.stop_event, self.ready = CTX.Event(), CTX.Event()
        self.process = CTX.Process(target=echo_main, args=(port, qos, self.stop_event, self.ready, protocol, buffered),
                                   daemon=True)
        self.startup_seconds: float | None = None

    def start(self) -> "EchoSUT":
        started = time.monotonic()
        self.process.start()
        if not self.ready.wait(30):
            raise RuntimeError("echo client did not subscribe")
        self.startup_seconds = time.monotonic() - started
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if not self.process.is_alive():
            raise SUTDied(f"echo client exited with {self.process.exitcode} during the run")

    def stop(self) -> int:
        self.stop_event.set()
        self.process.join(10)
        return self.process.exitcode or 0


# --- load ---------------------------------------------------------------------------------
class Load:
    """Publishers + one receiver around a running system under test."""

    def __init__(self, port: int, output_filter: str, qos: int, streams: int, publishers: int = 1,
                 window: int = 2000, rate_hz: float = 0.0):
        self.sent = CTX.RawArray("q", publishers)
        self.received = CTX.RawValue("q", 0)
        self.lost = CTX.RawValue("q", 0)
        self.start_event, self.stop_publishers, self.stop_receiver = CTX.Event(), CTX.Event(), CTX.Event()
        receiver_ready = CTX.Event()
        self.parent_conn, child_conn = CTX.Pipe(duplex=False)
        self.receiver = CTX.Process(target=receiver_main, daemon=True,
                                    args=(port, output_filter, qos, self.received, self.stop_receiver,
                                          receiver_ready, child_conn))
        self.receiver.start()
        if not receiver_ready.wait(30):
            raise RuntimeError("receiver did not subscribe")
        ids = stream_ids(streams)
        self.publishers = []
        for k in range(publishers):
            ready = CTX.Event()
            process = CTX.Process(target=publisher_main, daemon=True,
                                  args=(port, qos, ids[k::publishers], k, self.sent, self.received, self.lost,
                                        window, rate_hz / publishers, self.start_event, self.stop_publishers, ready))
            process.start()
            self.publishers.append((process, ready))
        for process, ready in self.publishers:
            if not ready.wait(30):
                raise RuntimeError("publisher did not connect")
        self._watch = None

    def go(self) -> float:
        self.started = time.monotonic()
        self.start_event.set()
        self._stall_stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_stalls, daemon=True)
        self._watch.start()
        return self.started

    def _watch_stalls(self) -> None:
        """A closed loop stalls if answers go missing (QoS 0 drops, rejections): count them as lost."""
        last, since = -1, time.monotonic()
        while not self._stall_stop.wait(0.1):
            received = self.received.value
            if received != last:
                last, since = received, time.monotonic()
            elif time.monotonic() - since > 1.0:
                missing = sum(self.sent) - received - self.lost.value
                if missing > 0:
                    self.lost.value += missing
                since = time.monotonic()

    def total_sent(self) -> int:
        return int(sum(self.sent))

    def finish(self, drain_seconds: float = 2.0) -> tuple:
        """Stop publishing, let answers drain, stop the receiver; returns (stamps, latencies)."""
        import numpy as np
        self.stop_publishers.set()
        for process, _ in self.publishers:
            process.join(10)
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline and self.received.value + self.lost.value < self.total_sent():
            time.sleep(0.05)
        if self._watch is not None:
            self._stall_stop.set()
        self.stop_receiver.set()
        stamps, latencies = self.parent_conn.recv()
        self.receiver.join(10)
        return np.frombuffer(stamps, np.float64), np.frombuffer(latencies, np.float64)


class StatsWatcher:
    """Keeps the daemon's latest statecast/stats document."""

    def __init__(self, port: int):
        self.latest: dict = {}
        self.client = _client("stats")
        self.client.on_message = lambda c, u, m: self.latest.update(json.loads(m.payload))
        self.client.on_connect = lambda c, *a: c.subscribe("statecast/stats", 0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
