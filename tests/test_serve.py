"""`statecast serve` end to end: real mosquitto, the real daemon as a subprocess, real paho clients."""
import json
import os
import shutil
import signal
import time

import pytest

from conftest import MACHINE_TEMPERATURE
from daemon_proc import DEFAULT_MODEL, ROOT, Collector, DaemonProcess, publish_all, publisher, write_config
from statecast.daemon.anomaly import AnomalySettings
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.service.runtime_setup import anomaly_factory_for
from statecast.daemon.tools.series_csv import read_series

SERIES = read_series(MACHINE_TEMPERATURE)


def rows(start, stop):
    return [(float(SERIES.timestamps[i]), float(SERIES.values[i, 0])) for i in range(start, stop)]


def reference(stream_rows):
    """What the daemon must publish for one stream: the same engine, in process."""
    model = StepModel(DEFAULT_MODEL)
    engine = Engine(model, anomaly_factory=anomaly_factory_for(model, AnomalySettings()))
    results = engine.process([Message("s", (v,), ts, ts) for ts, v in stream_rows])
    return [(r.forecast[:, 0].tolist(), r.anomaly_score) for r in results]


def last_stats(collector):
    stats = collector.json_on("statecast/stats")
    return stats[-1] if stats else {}


def forecasts_of(collector, stream):
    return [(m["forecast"], m["anomaly_score"]) for m in collector.json_on(f"statecast/forecast/{stream}")]


@pytest.fixture
def daemon_env(broker, tmp_path):
    """(config writer, started daemons, collector); everything is stopped afterwards."""
    started = []
    collector = Collector(broker.port)

    def start(name="cfg.toml", **kwargs):
        kwargs.setdefault("client_id", f"statecast-{tmp_path.name}")
        path = write_config(tmp_path / name, broker.port, str(tmp_path / "state"), **kwargs)
        daemon = DaemonProcess(path)
        started.append(daemon)
        daemon.wait_serving()
        return daemon

    yield start, collector
    for daemon in started:
        daemon.stop()
    collector.close()


def json_payload(ts, value):
    return json.dumps({"value": value, "ts": ts})


def test_every_payload_format_end_to_end(broker, daemon_env):
    start, collector = daemon_env
    # One message per step: this test is about payload formats, and its three interleaved streams
    # would otherwise be batched as they happen to arrive. On aarch64 the optimised float kernels
    # give a row one ulp apart in a batch of 3 than alone (CI's Pi job, row 31: 82.17543 vs
    # 82.17544), so the exact comparison with the one-stream reference would depend on timing.
    # Batching parity has its own tests and its stated bound (test_pi_guard).
    start(extra="[batching]\nmax_batch = 1")
    data = rows(0, 40)
    pub = publisher(broker.port)
    items = []
    for ts, value in data:
        items.append(("sensors/json1/temperature", json_payload(ts, value)))
        items.append(("sensors/senml1/temperature", json.dumps([{"bn": "dev1/", "n": "value", "v": value, "t": ts}])))
        items.append(("sensors/number1/temperature", repr(value)))
    publish_all(pub, items)
    for stream in ("json1", "senml1", "number1"):
        collector.wait_for(lambda: len(forecasts_of(collector, stream)) == len(data), what=f"{stream} forecasts")
    expected = reference(data)
    assert forecasts_of(collector, "json1") == expected
    assert forecasts_of(collector, "senml1") == expected
    # A bare number has no timestamp: the daemon stamps it on receipt; the model has no calendar
    # features, so the forecasts are the same.
    assert [f for f, _ in forecasts_of(collector, "number1")] == [f for f, _ in expected]
    message = collector.json_on("statecast/forecast/json1")[-1]
    assert message["stream"] == "json1" and message["ts"] == data[-1][0] and message["step"] == len(data)
    assert message["model"] == "machine_temperature-float32" and len(message["forecast"]) == 1
    pub.disconnect()


@pytest.mark.parametrize("max_batch", [1, 256])
def test_interleaved_streams_match_score_with_and_without_batching(broker, daemon_env, max_batch):
    start, collector = daemon_env
    start(extra=f"[batching]\nmax_batch = {max_batch}\nmax_wait_ms = 5", name=f"batch{max_batch}.toml")
    streams = [f"m{i}" for i in range(12)]
    per_stream = {s: rows(100 * k, 100 * k + 60) for k, s in enumerate(streams)}
    items = [(f"sensors/{s}/temperature", json_payload(*per_stream[s][i])) for i in range(60) for s in streams]
    pub = publisher(broker.port, client_id=f"pub-batch-{max_batch}")
    publish_all(pub, items)
    for s in streams:
        collector.wait_for(lambda: len(forecasts_of(collector, s)) == 60, what=f"forecasts of {s}")
    for s in streams:
        assert forecasts_of(collector, s) == reference(per_stream[s]), s
    pub.disconnect()


def test_batching_settings_do_not_change_forecasts(broker, tmp_path, request):
    """Same interleaved input through max_batch=1 and max_batch=512 daemons: identical output."""
    outputs = {}
    for max_batch in (1, 512):
        collector = Collector(broker.port, topics=("statecast/#", f"out{max_batch}/#"))
        path = write_config(tmp_path / f"b{max_batch}.toml", broker.port, str(tmp_path / f"state{max_batch}"),
                            client_id=f"statecast-batching-{max_batch}",
                            topic=f"batching{max_batch}/+/temperature",
                            extra=f"forecast_topic = \"out{max_batch}/{{stream}}\"\n"
                                  f"[batching]\nmax_batch = {max_batch}\nmax_wait_ms = 20")
        daemon = DaemonProcess(path)
        request.addfinalizer(daemon.stop)
        daemon.wait_serving()
        pub = publisher(broker.port, client_id=f"pub-b{max_batch}")
        items = [(f"batching{max_batch}/s{k}/temperature", json_payload(*rows(0, 80)[i]))
                 for i in range(80) for k in range(25)]
        publish_all(pub, items)
        collector.wait_for(lambda: sum(len(collector.json_on(f"out{max_batch}/s{k}")) for k in range(25)) == 2000,
                           what="2000 forecasts")
        collector.wait_for(lambda: last_stats(collector).get("forecasts_out") == 2000, what="stats")
        outputs[max_batch] = {k: [m["forecast"] for m in collector.json_on(f"out{max_batch}/s{k}")] for k in range(25)}
        mean_batch = last_stats(collector)["mean_batch_size"]
        if max_batch == 1:
            assert mean_batch == 1.0
        else:
            assert mean_batch > 1.0, "the batched daemon never batched"
        daemon.stop()
        pub.disconnect()
        collector.close()
    assert outputs[1] == outputs[512]


def test_restart_continues_exactly_from_checkpoint(broker, daemon_env):
    start, collector = daemon_env
    daemon = start()
    pub = publisher(broker.port, client_id="pub-restart")
    data = rows(1000, 1200)
    publish_all(pub, [("sensors/r1/temperature", json_payload(*row)) for row in data[:100]])
    collector.wait_for(lambda: len(forecasts_of(collector, "r1")) == 100, what="first 100")
    assert daemon.stop() == 0
    start(name="cfg-again.toml")
    publish_all(pub, [("sensors/r1/temperature", json_payload(*row)) for row in data[100:]])
    collector.wait_for(lambda: len(forecasts_of(collector, "r1")) == 200, what="all 200")
    assert forecasts_of(collector, "r1") == reference(data)
    steps = [m["step"] for m in collector.json_on("statecast/forecast/r1")]
    assert steps == list(range(1, 201))
    pub.disconnect()


def test_persistent_session_delivers_what_arrived_while_down(broker, daemon_env):
    start, collector = daemon_env
    daemon = start()
    assert daemon.stop() == 0                     # clean stop: the broker keeps the session
    pub = publisher(broker.port, client_id="pub-offline")
    data = rows(3000, 3050)
    publish_all(pub, [("sensors/p1/temperature", json_payload(*row)) for row in data])
    start(name="cfg-back.toml")
    collector.wait_for(lambda: len(forecasts_of(collector, "p1")) == 50, what="queued messages")
    assert forecasts_of(collector, "p1") == reference(data)
    pub.disconnect()


def test_status_topic_is_retained_online_then_offline(broker, daemon_env):
    start, collector = daemon_env
    daemon = start()
    collector.wait_for(lambda: b"online" in collector.payloads_on("statecast/status"), what="online")
    daemon.stop()
    collector.wait_for(lambda: collector.payloads_on("statecast/status")[-1:] == [b"offline"], what="offline")
    # Unclean end: the broker publishes the last will.
    daemon = start(name="cfg-kill.toml")
    collector.wait_for(lambda: collector.payloads_on("statecast/status")[-1:] == [b"online"], what="online again")
    daemon.stop(sig=signal.SIGKILL)
    collector.wait_for(lambda: collector.payloads_on("statecast/status")[-1:] == [b"offline"], what="last will")


BAD_INPUTS = [
    ("sensors/bad/temperature", b'{"value": 1.0', "bad_json"),
    ("sensors/bad/temperature", b'{"temperature": 1.0}', "missing_field"),
    ("sensors/bad/temperature", b'{"value": "warm"}', "non_numeric"),
    ("sensors/bad/temperature", b'{"value": NaN}', "non_finite"),
    ("sensors/bad/temperature", b'{"value": Infinity}', "non_finite"),
    ("sensors/bad/temperature", b'{"value": 1e400}', "non_finite"),
    ("sensors/bad/temperature", b'{"value": 1e300}', "out_of_range"),    # finite, but not in float32
    ("sensors/bad/temperature", b"x" * 70_000, "oversize"),
    ("sensors/bad/temperature", b"", "empty"),
    ("sensors/bad/temperature", b"\xff\xfe\x00", "not_utf8"),
    ("sensors/../temperature", b'{"value": 1.0}', "bad_stream_id"),
]


def test_bad_input_is_dropped_counted_and_leaves_state_alone(broker, daemon_env):
    start, collector = daemon_env
    daemon = start()
    pub = publisher(broker.port, client_id="pub-bad")
    data = rows(500, 520)
    publish_all(pub, [("sensors/bad/temperature", json_payload(*row)) for row in data[:10]])
    collector.wait_for(lambda: len(forecasts_of(collector, "bad")) == 10, what="good rows")
    publish_all(pub, [(topic, payload) for topic, payload, _ in BAD_INPUTS])
    # an older timestamp than the stream has seen must not step it either
    publish_all(pub, [("sensors/bad/temperature", json_payload(*data[3]))])
    publish_all(pub, [("sensors/bad/temperature", json_payload(*row)) for row in data[10:]])
    collector.wait_for(lambda: len(forecasts_of(collector, "bad")) == 20, what="rows after the bad ones")
    assert forecasts_of(collector, "bad") == reference(data)
    expected_reasons = {reason for _, _, reason in BAD_INPUTS} | {"duplicate_or_old_timestamp"}
    collector.wait_for(lambda: expected_reasons <= set(last_stats(collector).get("rejected", {})),
                       what="every reason counted")
    rejected = last_stats(collector)["rejected"]
    assert rejected["non_finite"] == 3 and rejected["duplicate_or_old_timestamp"] == 1
    assert daemon.process.poll() is None, "daemon died on bad input"
    log = daemon.log()
    assert "dropped message on 'sensors/bad/temperature'" in log and "sensors/../temperature" in log
    pub.disconnect()


def test_values_at_float32s_edges_never_stop_the_daemon(broker, daemon_env):
    """models/default (daily profile, novelty signal) on a stream that steps between 0 and 5e-324,
    with a payload of 1e300 in the middle. Each stopped the daemon before: the subnormal range made
    the novelty signal's bins 0 wide (ZeroDivisionError), and 1e300, finite to Python, overflowed
    the daily profile (OverflowError). Now every reading is forecast and scored, and 1e300 is
    dropped as out_of_range."""
    start, collector = daemon_env
    daemon = start(model=os.path.join(ROOT, "models", "default"))
    pub = publisher(broker.port, client_id="pub-edges")
    data = [(ts, 5e-324 if i % 2 else 0.0) for i, (ts, _) in enumerate(rows(0, 400))]
    publish_all(pub, [("sensors/edges/temperature", json_payload(*row)) for row in data[:300]])
    publish_all(pub, [("sensors/edges/temperature", json_payload(data[299][0] + 1.0, 1e300))])
    publish_all(pub, [("sensors/edges/temperature", json_payload(*row)) for row in data[300:]])
    collector.wait_for(lambda: len(forecasts_of(collector, "edges")) == 400 or daemon.process.poll() is not None,
                       what="every reading forecast")
    assert daemon.process.poll() is None, daemon.log()[-2000:]
    scores = [score for _, score in forecasts_of(collector, "edges")]
    assert len(scores) == 400 and all(0.0 <= score <= 1.0 for score in scores[101:])
    collector.wait_for(lambda: last_stats(collector).get("rejected", {}).get("out_of_range") == 1,
                       what="1e300 counted as out_of_range")
    pub.disconnect()


def run_serve(config_path):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "statecast.daemon", "serve", "--config", config_path],
                          capture_output=True, text=True, timeout=60)


def test_bad_config_or_tampered_model_stops_startup(broker, tmp_path):
    bad_key = write_config(tmp_path / "a.toml", broker.port, str(tmp_path / "s"), extra="colour = 'blue'")
    result = run_serve(bad_key)
    assert result.returncode == 2 and "output.colour" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    tampered = tmp_path / "tampered"
    shutil.copytree(DEFAULT_MODEL, tampered)
    blob = bytearray((tampered / "model.tflite").read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (tampered / "model.tflite").write_bytes(bytes(blob))
    result = run_serve(write_config(tmp_path / "b.toml", broker.port, str(tmp_path / "s"), model=str(tampered)))
    assert result.returncode == 2 and "sha256" in result.stderr and "Traceback" not in result.stderr

    result = run_serve(write_config(tmp_path / "c.toml", broker.port, str(tmp_path / "s"),
                                    model=str(tmp_path / "missing")))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_check_config_validates_without_connecting(tmp_path):
    import subprocess
    import sys
    path = write_config(tmp_path / "ok.toml", 1, str(tmp_path / "s"))        # nothing listens on port 1
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "serve", "--config", path, "--check-config"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "OK" in result.stdout


def test_serve_and_score_give_the_same_forecasts(broker, daemon_env, tmp_path):
    """`statecast score` over a CSV and `statecast serve` over MQTT for the same rows agree exactly."""
    import csv
    import subprocess
    import sys
    start, collector = daemon_env
    start(name="cfg-score.toml")
    lines = open(MACHINE_TEMPERATURE).read().splitlines()
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("\n".join(lines[:1] + lines[2001:2301]) + "\n")
    scored = tmp_path / "scored.csv"
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "score", "--model", DEFAULT_MODEL,
                             "--csv", str(csv_path), "--out", str(scored)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    offline = [(float(r["forecast_1"]), float(r["anomaly_score"]) if r["anomaly_score"] else None)
               for r in csv.DictReader(open(scored))]
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "replay", "--csv", str(csv_path),
                             "--topic", "sensors/{stream}/temperature", "--stream-id", "scored1",
                             "--port", str(broker.port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    collector.wait_for(lambda: len(forecasts_of(collector, "scored1")) == 300, what="300 forecasts")
    online = [(f[0], score) for f, score in forecasts_of(collector, "scored1")]
    assert online == offline


def test_home_assistant_discovery_is_published_retained_per_new_stream(broker, daemon_env):
    start, collector = daemon_env
    start(name="cfg-ha.toml", extra="[homeassistant]\nenabled = true\n")
    pub = publisher(broker.port, client_id="pub-ha")
    publish_all(pub, [("sensors/Hall.Temp/temperature", json_payload(*row)) for row in rows(0, 3)])
    collector.wait_for(lambda: len(forecasts_of(collector, "Hall.Temp")) == 3, what="forecasts")
    late = Collector(broker.port, topics=("homeassistant/#",))          # retained: a late subscriber sees them
    late.wait_for(lambda: len(late.messages) == 2, what="two retained discovery configs")
    configs = {topic: json.loads(payload) for topic, payload, retained in late.messages if retained}
    assert len(configs) == 2
    sensor = next(c for t, c in configs.items() if "/sensor/" in t)
    alert = next(c for t, c in configs.items() if "/binary_sensor/" in t)
    assert sensor["state_topic"] == "statecast/forecast/Hall.Temp"
    assert alert["state_topic"] == "statecast/alert/Hall.Temp"
    assert sensor["availability_topic"] == alert["availability_topic"] == "statecast/status"
    late.close()
    pub.disconnect()


def test_forecasts_keep_flowing_while_a_checkpoint_write_hangs(broker, tmp_path):
    """The engine loop only takes the checkpoint's snapshot; a thread of its own writes the files.
    Here the write hangs for good (its temporary file is a FIFO nobody reads, like a dead SD card):
    every reading published after the round came due still gets its forecast. When the loop wrote
    checkpoints itself, it stopped forecasting at the first one."""
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "temperature.ckpt.tmp")
    collector = Collector(broker.port, topics=("statecast/forecast/#",))
    daemon = DaemonProcess(write_config(tmp_path / "hang.toml", broker.port, str(state), client_id="statecast-hang"))
    pub = publisher(broker.port, client_id="pub-hang")
    try:
        daemon.wait_serving()
        time.sleep(2.0)                             # checkpoint_interval_seconds = 1: a round is due, and hangs
        publish_all(pub, [("sensors/h/temperature", json_payload(ts, v)) for ts, v in rows(0, 50)])
        collector.wait_for(lambda: len(collector.json_on("statecast/forecast/h")) == 50, timeout=20,
                           what="a forecast for each of the 50 readings")
        assert daemon.process.poll() is None
        assert not (state / "temperature.ckpt").exists()        # the round is still stuck in its write
    finally:
        daemon.stop(signal.SIGKILL)
        pub.disconnect()
        pub.loop_stop()
        collector.close()
