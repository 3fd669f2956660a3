"""The real daemon speaking sd_notify to a real AF_UNIX datagram socket, as under Type=notify.

READY=1 only after the broker acknowledged the subscriptions; WATCHDOG=1 from the engine loop
at half of WATCHDOG_USEC (and never from a stuck loop); one-line STATUS=; RELOADING=1 then
READY=1 on SIGHUP; STOPPING=1 and a final checkpoint on SIGTERM.
"""
import json
import os
import re
import signal
import statistics
import time
import uuid

import pytest

from broker import Mosquitto, free_port
from daemon_proc import Collector, DaemonProcess, publisher, write_config
from service_support import RUNTIME, NotifyListener, SubackGate, runtime_section
from statecast.daemon.state.checkpoint import restore
from statecast.daemon.state.stream_table import StreamTable

WATCHDOG_USEC = 400_000                  # -> a WATCHDOG=1 every 0.2 s
PING_SECONDS = WATCHDOG_USEC / 2 / 1e6


@pytest.fixture
def notify_socket(tmp_path):
    listeners = []

    def make(abstract: bool = False, **kwargs) -> NotifyListener:
        address = f"@statecast-test-{uuid.uuid4().hex[:12]}" if abstract else str(tmp_path / "notify.sock")
        listener = NotifyListener(address, watchdog_usec=WATCHDOG_USEC, **kwargs)
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.close()


@pytest.fixture
def daemons():
    started = []

    def start(config_path, env) -> DaemonProcess:
        daemon = DaemonProcess(config_path, env=env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(sig=signal.SIGKILL if daemon.process.poll() is None and "stuck" in daemon.config_path else
                    signal.SIGTERM)


def config(tmp_path, port, name="cfg.toml", extra=""):
    return write_config(tmp_path / name, port, str(tmp_path / "state"), client_id=f"notify-{uuid.uuid4().hex[:8]}",
                        extra=extra + runtime_section())


def reading(ts, value=70.0):
    return json.dumps({"value": value, "ts": ts})


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_only_once_the_broker_acknowledged_the_subscription(tmp_path, broker, notify_socket, daemons, abstract):
    gate = SubackGate(broker.port)
    collector = Collector(broker.port)
    pub = publisher(broker.port, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    # The moment READY=1 arrives, publish: with a fresh session nothing is queued for the daemon,
    # so a forecast for this message proves the subscription was in place when READY was sent.
    notify = notify_socket(abstract, on_ready=lambda _d: pub.publish("sensors/ready/temperature", reading(1.0), qos=1))
    daemon = daemons(config(tmp_path, gate.port), notify.env)
    try:
        assert gate.held.wait(30), "the daemon never subscribed"
        time.sleep(1.0)                                  # connected, SUBACK held back: not ready
        assert "connected to" in daemon.log()
        assert notify.times_of("READY=1") == []
        assert len(notify.times_of("WATCHDOG=1")) >= 3, "the loop must ping while it waits"
        assert any(s.startswith("waiting for subscription acknowledgement") for s in notify.statuses())
        released_at = time.monotonic()
        gate.release()
        ready_at = notify.wait_for("READY=1")
        assert ready_at >= released_at
        collector.wait_for(lambda: collector.json_on("statecast/forecast/ready"), timeout=10,
                           what="a forecast for the message published at READY")
        log = daemon.log()
        assert log.index("subscribed: sensors/+/temperature (granted QoS 1)") < log.index("serving:")
    finally:
        pub.disconnect()
        collector.close()
        gate.close()


def test_no_ready_while_the_broker_is_down_then_ready_when_it_comes(tmp_path, notify_socket, daemons):
    port = free_port()                                   # nothing listens here yet
    notify = notify_socket()
    daemon = daemons(config(tmp_path, port), notify.env)
    first_ping = notify.wait_for("WATCHDOG=1")          # models loaded, connecting
    time.sleep(2.0)
    assert daemon.process.poll() is None
    assert notify.times_of("READY=1") == []
    assert len([t for t in notify.times_of("WATCHDOG=1") if t > first_ping]) >= 5
    assert any("waiting for the broker" in s and "cannot connect" in s for s in notify.statuses()), notify.statuses()
    server = Mosquitto(port=port).start()
    try:
        notify.wait_for("READY=1", timeout=15)          # paho retries every 1-2 s (reconnect_*_seconds)
    finally:
        daemon.stop()
        server.cleanup()


def test_watchdog_cadence_status_and_stop(tmp_path, broker, notify_socket, daemons):
    notify = notify_socket()
    daemon = daemons(config(tmp_path, broker.port), notify.env)
    ready_at = notify.wait_for("READY=1")
    if RUNTIME:
        assert f"({RUNTIME})" in daemon.log().split("serving:")[1].splitlines()[0]
    pub = publisher(broker.port, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    # ~2.5 s of traffic (40 msg/s): the loop is busy and idle in turns, the pings must not care.
    for step in range(100):
        pub.publish("sensors/wd/temperature", reading(1000.0 + step, 70.0 + step % 7), qos=1)
        time.sleep(0.025)
    time.sleep(0.5)
    pings = [t for t in notify.times_of("WATCHDOG=1") if t > ready_at]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    window = pings[-1] - pings[0]
    print(f"watchdog: {len(pings)} pings over {window:.2f} s, gap median {statistics.median(gaps):.3f} s, "
          f"min {min(gaps):.3f} s, max {max(gaps):.3f} s (interval {PING_SECONDS} s)")
    assert window > 2.5
    # never more often than half WATCHDOG_USEC (less 10 %: these are arrival times, with jitter)
    assert min(gaps) >= PING_SECONDS * 0.9
    assert statistics.median(gaps) <= PING_SECONDS * 1.3
    assert max(gaps) < WATCHDOG_USEC / 1e6                  # never late enough to trip the watchdog
    assert len(pings) >= 0.75 * window / PING_SECONDS

    # STATUS= is one line, refreshed (stats_interval_seconds = 1 here), and names streams, rate, errors.
    notify.wait_for("STATUS=", count=len(notify.times_of("STATUS=")) + 2, timeout=5)
    running = [s for s in notify.statuses() if re.match(r"\d+ streams, [0-9.]+ msg/s, ", s)]
    assert running and "1 streams" in running[-1] and "last error: none" in running[-1]
    assert any(float(re.match(r"\d+ streams, ([0-9.]+) msg/s", s).group(1)) > 10 for s in running), running
    assert all("\n" not in s for s in notify.statuses())

    sent_stop = time.monotonic()
    assert daemon.stop() == 0
    stopping_at = notify.wait_for("STOPPING=1", timeout=5)
    assert stopping_at >= sent_stop
    assert not [t for t in notify.times_of("WATCHDOG=1") if t > stopping_at + 0.05]
    table = StreamTable(_model_state_shapes(), 100)
    count, source = restore(str(tmp_path / "state" / "temperature.ckpt"), table, _model_sha())
    assert count == 1 and table.get("wd").steps == 100, source
    pub.disconnect()


def _model_sha():
    from daemon_proc import DEFAULT_MODEL
    return json.load(open(os.path.join(DEFAULT_MODEL, "manifest.json")))["sha256"]


def _model_state_shapes():
    from daemon_proc import DEFAULT_MODEL
    return [tuple(pair["shape"]) for pair in json.load(open(os.path.join(DEFAULT_MODEL, "manifest.json")))["state"]]


def test_sighup_sends_reloading_then_ready_on_one_connection(tmp_path, broker, notify_socket, daemons):
    notify = notify_socket()
    daemon = daemons(config(tmp_path, broker.port), notify.env)
    notify.wait_for("READY=1")
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.process.send_signal(signal.SIGHUP)
    reloading_at = notify.wait_for("RELOADING=1", timeout=10)
    ready_again_at = notify.wait_for("READY=1", count=2, timeout=10)
    assert reloading_at <= ready_again_at
    reloading = next(d for d in notify.datagrams() if "RELOADING=1" in d.split("\n"))
    usec = int(re.search(r"MONOTONIC_USEC=(\d+)", reloading).group(1))
    assert before <= usec <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert any(s.startswith("reloaded: temperature: machine_temperature-float32") for s in notify.statuses())
    assert daemon.log().count("connected to 127.0.0.1") == 1
    assert daemon.stop() == 0


def test_a_stuck_engine_stops_pinging_and_sigabrt_shows_where(tmp_path, broker, notify_socket, daemons):
    """A checkpoint write that hangs (here: its temporary file is a FIFO nobody reads, like a dead
    SD card or NFS server) wedges the checkpoint writer's thread. Once that round has been in
    flight for half the watchdog timeout the loop's pings must stop, so systemd's watchdog fires;
    its SIGABRT makes faulthandler print every thread's stack, the stuck write among them, to the
    journal."""
    notify = notify_socket()
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "temperature.ckpt.tmp")
    daemon = daemons(config(tmp_path, broker.port, name="stuck.toml"), notify.env)
    ready_at = notify.wait_for("READY=1")
    time.sleep(2.5)                                          # first checkpoint is due 1 s after READY
    pings = notify.times_of("WATCHDOG=1")
    assert pings and pings[-1] < ready_at + 1.5, "a stuck loop kept pinging"
    assert time.monotonic() - pings[-1] > WATCHDOG_USEC / 1e6
    daemon.process.send_signal(signal.SIGABRT)               # what WatchdogSignal= sends
    daemon.process.wait(timeout=10)
    assert daemon.process.returncode == -signal.SIGABRT
    log = daemon.log()
    assert "Fatal Python error: Aborted" in log
    assert re.search(r'File ".*checkpoint\.py", line \d+ in write_atomic', log), log[-3000:]
