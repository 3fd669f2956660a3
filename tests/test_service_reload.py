"""SIGHUP against the real daemon: swap the model on one MQTT connection, keep or reset stream
state by the models' state shapes, and keep serving the old config when the new one is broken."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import FIXTURES, MACHINE_TEMPERATURE, ROOT
from daemon_proc import DEFAULT_MODEL, Collector, DaemonProcess, publish_all, publisher, write_config
from service_support import NotifyListener, runtime_section
from statecast.daemon.anomaly import AnomalySettings
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.service.runtime_setup import anomaly_factory_for
from statecast.daemon.tools.series_csv import read_series

INT8_MODEL = os.path.join(ROOT, "models", "machine_temperature-int8")
SERIES = read_series(MACHINE_TEMPERATURE)


def rows(start, stop):
    return [(float(SERIES.timestamps[i]), float(SERIES.values[i, 0])) for i in range(start, stop)]


def engine_for(directory):
    model = StepModel(directory)
    return Engine(model, anomaly_factory=anomaly_factory_for(model, AnomalySettings()))


def outputs(results):
    return [(r.forecast[:, 0].tolist(), r.anomaly_score, r.steps) for r in results]


def published(collector, stream):
    return [(m["forecast"], m["anomaly_score"], m["step"]) for m in collector.json_on(f"statecast/forecast/{stream}")]


@pytest.fixture(scope="module")
def gru_model(tmp_path_factory):
    """A step model with other state shapes (2 x 32 GRU) than the shipped 2 x 64 LSTM ones,
    converted once from the committed Keras fixture (needs TensorFlow: the convert extra)."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow (the convert extra) is not installed: cannot build a model of other shapes")
    out = tmp_path_factory.mktemp("gru") / "gru-test"
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "convert", os.path.join(FIXTURES, "gru.keras"),
                             "--quantize", "float32", "--calibration-csv", MACHINE_TEMPERATURE, "--name", "gru-test",
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return str(out)


class Served:
    """One daemon with a notify socket, a collector and a publisher; `reload(model=...)` rewrites
    the config and sends SIGHUP, returning once the daemon says READY=1 again."""

    def __init__(self, tmp_path, broker, model):
        self.tmp_path, self.broker = tmp_path, broker
        self.client_id = f"reload-{uuid.uuid4().hex[:8]}"
        self.notify = NotifyListener(str(tmp_path / "notify.sock"))
        self.collector = Collector(broker.port)
        self.pub = publisher(broker.port, client_id=f"pub-{self.client_id}")
        self.path = self.write(model)
        self.daemon = DaemonProcess(self.path, env=self.notify.env)
        self.notify.wait_for("READY=1")
        self.readies = 1

    def write(self, model, extra=""):
        return write_config(self.tmp_path / "cfg.toml", self.broker.port, str(self.tmp_path / "state"), model=model,
                            client_id=self.client_id, extra=extra + runtime_section())

    def reload(self, model=None, text=None) -> str:
        if text is not None:
            (self.tmp_path / "cfg.toml").write_text(text)
        else:
            self.write(model)
        self.daemon.process.send_signal(signal.SIGHUP)
        self.readies += 1
        self.notify.wait_for("READY=1", count=self.readies, timeout=30)
        return self.notify.statuses()[-1]

    def send(self, stream, data, expect_total):
        publish_all(self.pub, [(f"sensors/{stream}/temperature", json.dumps({"value": v, "ts": ts})) for ts, v in data])
        self.collector.wait_for(lambda: len(published(self.collector, stream)) == expect_total,
                                what=f"{expect_total} forecasts of {stream}")

    def stats(self):
        self.collector.wait_for(lambda: self.collector.json_on("statecast/stats"), what="stats")
        count = len(self.collector.json_on("statecast/stats"))
        self.collector.wait_for(lambda: len(self.collector.json_on("statecast/stats")) > count, what="fresh stats")
        return self.collector.json_on("statecast/stats")[-1]

    def close(self):
        code = self.daemon.stop()
        self.pub.disconnect()
        self.collector.close()
        self.notify.close()
        return code


@pytest.fixture
def served(tmp_path, broker):
    instances = []

    def start(model):
        instance = Served(tmp_path, broker, model)
        instances.append(instance)
        return instance

    yield start
    for instance in instances:
        instance.close()


def test_same_shapes_keep_state_on_the_same_connection(served, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    s = served(str(model))
    data = rows(2000, 2080)
    s.send("keep", data[:40], 40)
    status = s.reload(model=INT8_MODEL)                          # 2 x 64 LSTM both: same state shapes
    assert status.startswith("reloaded: temperature: machine_temperature-int8"), status
    s.send("keep", data[40:], 80)

    before, after = engine_for(DEFAULT_MODEL), engine_for(INT8_MODEL)
    expected = outputs(before.process([Message("s", (v,), ts, ts) for ts, v in data[:40]]))
    after.table = before.table                                   # what the daemon does on reload
    expected += outputs(after.process([Message("s", (v,), ts, ts) for ts, v in data[40:]]))
    assert published(s.collector, "keep") == expected
    assert [m["step"] for m in s.collector.json_on("statecast/forecast/keep")] == list(range(1, 81))
    models = [m["model"] for m in s.collector.json_on("statecast/forecast/keep")]
    assert models == ["machine_temperature-float32"] * 40 + ["machine_temperature-int8"] * 40
    stats = s.stats()
    assert stats["connects"] == 1 and stats["reloads"] == 1 and stats["reload_resets"] == 0
    log = s.daemon.log()
    assert log.count("connected to 127.0.0.1") == 1 and "disconnected" not in log


def test_other_shapes_reset_the_streams_and_count_them(served, gru_model):
    s = served(DEFAULT_MODEL)
    data = rows(4000, 4060)
    s.send("a", data[:30], 30)
    s.send("b", data[:30], 30)
    status = s.reload(model=gru_model)
    assert status.startswith("reloaded: temperature: gru-test"), status
    s.send("a", data[30:], 60)
    fresh = engine_for(gru_model)
    assert published(s.collector, "a")[30:] == outputs(fresh.process([Message("s", (v,), ts, ts) for ts, v in data[30:]]))
    stats = s.stats()
    assert stats["reload_resets"] == 2 and stats["connects"] == 1 and stats["streams_live"] == 1
    assert "state shapes changed" in s.daemon.log() and "2 streams start fresh" in s.daemon.log()


def test_broken_config_or_tampered_model_keeps_the_running_one(served, tmp_path):
    s = served(DEFAULT_MODEL)
    data = rows(6000, 6060)
    s.send("c", data[:20], 20)
    good_config = (tmp_path / "cfg.toml").read_text()

    status = s.reload(text=good_config + "\n[broker\nport = 1\n")
    assert status.startswith("reload failed, still serving the previous config:") and "invalid TOML" in status
    s.send("c", data[20:40], 40)

    tampered = tmp_path / "tampered"
    shutil.copytree(INT8_MODEL, tampered)
    blob = bytearray((tampered / "model.tflite").read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (tampered / "model.tflite").write_bytes(bytes(blob))
    status = s.reload(model=str(tampered))
    assert status.startswith("reload failed, still serving the previous config:") and "sha256" in status
    s.send("c", data[40:], 60)

    expected = outputs(engine_for(DEFAULT_MODEL).process([Message("s", (v,), ts, ts) for ts, v in data]))
    assert published(s.collector, "c") == expected
    assert {m["model"] for m in s.collector.json_on("statecast/forecast/c")} == {"machine_temperature-float32"}
    stats = s.stats()
    assert stats["reload_failures"] == 2 and stats["reloads"] == 0 and stats["connects"] == 1
    assert "sha256" in stats["last_error"]
    assert s.daemon.log().count("reload failed, keeping the running config and models") == 2
    assert s.daemon.process.poll() is None
