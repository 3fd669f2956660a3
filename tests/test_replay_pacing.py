"""No silent loss (issue 18), with a real mosquitto, the real daemon and the real `statecast replay`.

1. Stock mosquitto settings (max_queued_messages 1000, max_inflight_messages 20) and replay's
   defaults: every published message gets a forecast, and nothing is counted missing or dropped.
2. Forced loss: a broker queue of 10 messages, the daemon paused (SIGSTOP) while an unpaced
   replay runs, so the broker drops most of it. The loss is in the daemon's log and stats within
   a second of the next message that reaches it, and the broker's $SYS counter is reported.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from broker import Mosquitto
from conftest import MACHINE_TEMPERATURE
from daemon_proc import Collector, DaemonProcess, publish_all, publisher, write_config
from statecast.daemon.tools.series_csv import read_series

SERIES = read_series(MACHINE_TEMPERATURE)
STREAM = "m1"
TOPIC = f"sensors/{STREAM}/temperature"


def stock_broker(extra: str = "") -> Mosquitto:
    """mosquitto with its own defaults (the helper's raised queue limits removed); $SYS every second."""
    server = Mosquitto()
    with open(server.config_path, "w") as handle:
        handle.write(f"listener {server.port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\n{extra}")
    return server.start()


def run_replay(port: int, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "statecast.daemon", "replay", "--csv", MACHINE_TEMPERATURE,
                           "--topic", "sensors/{stream}/temperature", "--stream-id", STREAM, "--port", str(port),
                           *options], capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture
def served(tmp_path):
    """(broker factory args) -> (broker, daemon, collector); all stopped afterwards."""
    made = []

    def start(broker_extra: str = ""):
        server = stock_broker(broker_extra)
        config = write_config(tmp_path / "cfg.toml", server.port, str(tmp_path / "state"))
        daemon = DaemonProcess(config)
        daemon.wait_serving()
        collector = Collector(server.port, topics=("statecast/#", "$SYS/broker/publish/messages/dropped"))
        made.append((server, daemon, collector))
        return server, daemon, collector

    yield start
    for server, daemon, collector in made:
        daemon.process.send_signal(signal.SIGCONT)
        daemon.stop()
        collector.close()
        server.cleanup()


def test_replay_defaults_into_stock_mosquitto_lose_nothing(served):
    server, daemon, collector = served()
    rows = 400                                      # 4 s at the default 100 msg/s
    run_replay(server.port, "--limit", str(rows))
    forecast_topic = f"statecast/forecast/{STREAM}"
    collector.wait_for(lambda: len(collector.json_on(forecast_topic)) >= rows, timeout=30, what="every forecast")
    stamps = [m["ts"] for m in collector.json_on(forecast_topic)]
    assert stamps == [float(t) for t in SERIES.timestamps[:rows]]
    collector.wait_for(lambda: collector.json_on("statecast/stats")[-1]["messages_in"] == rows, what="stats")
    stats = collector.json_on("statecast/stats")[-1]
    assert stats["missing_steps"] == 0 and stats["forecasts_out"] == rows
    assert collector.payloads_on("$SYS/broker/publish/messages/dropped")[-1] == b"0"
    assert stats["broker_dropped"] == 0                    # the daemon heard the $SYS counter
    doc = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "payloads.md")).read()
    undocumented = [key for key in stats if f"`{key}`" not in doc]
    assert undocumented == [], "stats fields missing from docs/payloads.md"


def test_forced_loss_shows_in_stats_and_log_within_a_second(served):
    server, daemon, collector = served("max_queued_messages 10\n")
    head = 300
    # broker_dropped counts from the first $SYS report the daemon hears: wait for it before the loss
    collector.wait_for(lambda: any(s.get("broker_dropped") is not None for s in collector.json_on("statecast/stats")),
                       timeout=10, what="the daemon's first $SYS dropped report")
    daemon.process.send_signal(signal.SIGSTOP)      # a daemon too slow for its publisher
    run_replay(server.port, "--rate", "0", "--limit", str(head))
    daemon.process.send_signal(signal.SIGCONT)
    forecast_topic = f"statecast/forecast/{STREAM}"
    # what the broker kept (20 in flight + 10 queued) arrives; the rest was dropped
    collector.wait_for(lambda: len(collector.json_on(forecast_topic)) >= 20, what="the kept messages")
    time.sleep(1.0)
    kept = len(collector.json_on(forecast_topic))
    assert kept < head

    pub = publisher(server.port, client_id="after-the-hole")
    sent_at = time.monotonic()
    publish_all(pub, [(TOPIC, json.dumps({"value": float(SERIES.values[i, 0]), "ts": float(SERIES.timestamps[i])}))
                      for i in range(head, head + 5)])
    pub.disconnect()
    missing = head - kept
    # The log line is written on the step after the hole: one engine turn away.
    while f"stream {STREAM}: {missing} step(s) missing" not in daemon.log():
        assert time.monotonic() - sent_at < 1.0, daemon.log()[-2000:]
        time.sleep(0.02)
    # Stats go out every stats_interval_seconds (1 s in this config) plus at most one idle loop turn.
    while not any(s["missing_steps"] == missing for s in collector.json_on("statecast/stats")):
        assert time.monotonic() - sent_at < 1.5, collector.json_on("statecast/stats")[-1]
        time.sleep(0.02)
    stats = collector.json_on("statecast/stats")[-1]
    assert stats["missing_steps_by_stream"] == {STREAM: missing}
    # The broker's own count, from $SYS (published every second here): the daemon warns and reports it.
    dropped = lambda: int(collector.payloads_on("$SYS/broker/publish/messages/dropped")[-1])  # noqa: E731
    collector.wait_for(lambda: dropped() >= missing, timeout=5, what="$SYS dropped count")
    collector.wait_for(lambda: (collector.json_on("statecast/stats")[-1]["broker_dropped"] or 0) >= missing,
                       timeout=5, what="broker_dropped in stats")
    assert "the broker dropped" in daemon.log()
