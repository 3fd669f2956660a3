"""Alerts as a subscriber gets them: the real daemon on models/default (its shipped anomaly
settings, online normalisation, calendar inputs, daily profile) over a real mosquitto.

- An injected fault (one reading 4 degrees off in a room-temperature series) gives exactly one
  alert and one clear on the alert topic, saying why (threshold, direction, signal, episode).
- serve gives exactly what `statecast score` gives for the same rows: forecast and score row by
  row, and the same alerts on the same rows.
- kill -9 just after the fault's alert went out, QoS 2 inputs and alerts: the restarted daemon
  neither loses the alert nor sends it twice, and the clear still comes.
"""
import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_proc import Collector, DaemonProcess, publish_all, publisher, write_config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import fault_catalogue  # noqa: E402

MODEL = str(ROOT / "models" / "default")
DAYS = 4                                          # Monday to Thursday: no weekend schedule change
FAULT_ROW = 3 * fault_catalogue.STEPS_PER_DAY + 144   # Thursday 12:00


@pytest.fixture(scope="module")
def rows():
    stamps, clean = fault_catalogue.room_temperature(seed=3, days=DAYS)
    values = fault_catalogue.inject(clean, "spike", at=FAULT_ROW)
    return [(float(t), float(v)) for t, v in zip(stamps, values)]


@pytest.fixture(scope="module")
def scored(rows, tmp_path_factory):
    """`statecast score` over the same rows: {row: (forecast_1, score or None, alert event)}."""
    work = tmp_path_factory.mktemp("score")
    series, out = work / "room.csv", work / "scored.csv"
    series.write_text("timestamp,value\n" + "".join(f"{t!r},{v!r}\n" for t, v in rows))
    done = subprocess.run([sys.executable, "-m", "statecast.daemon", "score", "--model", MODEL, "--csv", str(series),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return [(float(r["forecast_1"]), float(r["anomaly_score"]) if r["anomaly_score"] else None, r["alert"])
            for r in csv.DictReader(open(out))]


def start_daemon(broker, tmp_path, extra_stream: str = "", extra_output: str = "") -> DaemonProcess:
    path = write_config(tmp_path / "alerts.toml", broker.port, str(tmp_path / "state"), model=MODEL,
                        client_id="statecast-alerts", stream_extra=extra_stream, extra=extra_output)
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    return daemon


def publish(broker, rows, qos: int, client_id: str) -> None:
    client = publisher(broker.port, client_id=client_id)
    publish_all(client, [("sensors/room1/temperature", json.dumps({"value": v, "ts": t})) for t, v in rows], qos=qos)
    client.loop_stop()
    client.disconnect()


def test_a_fault_gives_one_alert_one_clear_and_serve_equals_score(broker, tmp_path, rows, scored):
    collector = Collector(broker.port)
    daemon = start_daemon(broker, tmp_path)
    try:
        publish(broker, rows, qos=1, client_id="alerts-publisher")
        collector.wait_for(lambda: len(collector.json_on("statecast/forecast/room1")) == len(rows),
                           timeout=120, what="a forecast per row")
    finally:
        daemon.stop()
    forecasts = collector.json_on("statecast/forecast/room1")
    assert [(m["forecast"][0], m["anomaly_score"]) for m in forecasts] == [(f, s) for f, s, _ in scored]
    events = collector.json_on("statecast/alert/room1")
    assert [e["event"] for e in events] == ["alert", "clear"]
    by_ts = {m["ts"]: i for i, m in enumerate(forecasts)}
    assert [(by_ts[e["ts"]], e["event"]) for e in events] == [(i, a) for i, (_, _, a) in enumerate(scored) if a]
    alert, clear = events
    assert by_ts[alert["ts"]] == FAULT_ROW and alert["direction"] == "high"
    assert alert["threshold"] == pytest.approx(0.997) and alert["signal"] and alert["episode_start"] == alert["ts"]
    assert clear["episode_start"] == alert["ts"] and clear["duration_seconds"] == clear["ts"] - alert["ts"] > 0


def test_kill_during_the_fault_neither_loses_nor_repeats_the_alert(broker, tmp_path, rows, scored):
    collector = Collector(broker.port, topics=("statecast/alert/#", "statecast/forecast/#"), qos=2)
    daemon = start_daemon(broker, tmp_path, extra_stream="qos = 2", extra_output="alert_qos = 2\nforecast_qos = 2\n")
    publish(broker, rows[:FAULT_ROW + 1], qos=2, client_id="alerts-publisher-1")
    collector.wait_for(lambda: collector.json_on("statecast/alert/room1"), timeout=120, what="the fault's alert")
    daemon.process.send_signal(signal.SIGKILL)          # the fault is still going on (no clear yet)
    daemon.process.wait()
    daemon = DaemonProcess(daemon.config_path)
    daemon.wait_serving()
    try:
        publish(broker, rows[FAULT_ROW + 1:], qos=2, client_id="alerts-publisher-2")
        collector.wait_for(lambda: len({m["ts"] for m in collector.json_on("statecast/forecast/room1")}) == len(rows),
                           timeout=120, what="a forecast per row")
        collector.wait_for(lambda: len(collector.json_on("statecast/alert/room1")) >= 2, timeout=30, what="the clear")
    finally:
        daemon.stop()
    events = [(e["event"], e["ts"]) for e in collector.json_on("statecast/alert/room1")]
    expected = [(a, rows[i][0]) for i, (_, _, a) in enumerate(scored) if a]
    assert events == expected
