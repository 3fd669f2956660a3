"""A causal step model and a BiLSTM window model serving the same stream at once, through the
real daemon: a forecast every message, a window output every `window_stride` messages, and the
window ring buffers survive a restart."""
import json

import pytest

from conftest import MACHINE_TEMPERATURE
from daemon_proc import Collector, DaemonProcess, publish_all, publisher, write_config
from statecast.convert.convert_common import ConvertOptions
from statecast.convert.pipeline import convert
from statecast.convert.train import TrainOptions, train
from statecast.daemon.engine.step_engine import EngineSettings
from statecast.daemon.engine.window_engine import WindowEngine
from statecast.daemon.messages import Message
from statecast.daemon.model.window_model import WindowModel
from statecast.daemon.tools.series_csv import read_series

WINDOW, STRIDE = 16, 4


@pytest.fixture(scope="module")
def window_artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-window")
    model = str(root / "bilstm.keras")
    train(TrainOptions(csv=MACHINE_TEMPERATURE, out=model, cell="bilstm", units=8, window=WINDOW, rows=":2000",
                       epochs=1, seed=1))
    out = str(root / "window-float32")
    convert(ConvertOptions(model_path=model, mode="float32", out_dir=out, calibration_csv=MACHINE_TEMPERATURE))
    return out


def test_causal_and_window_models_on_one_stream_survive_a_restart(broker, tmp_path, window_artifact):
    series = read_series(MACHINE_TEMPERATURE)
    rows = [(float(series.timestamps[i]), float(series.values[i, 0])) for i in range(3000, 3040)]
    collector = Collector(broker.port, topics=("statecast/forecast/w1", "statecast/window/w1"))
    path = write_config(tmp_path / "w.toml", broker.port, str(tmp_path / "state"), client_id="statecast-window",
                        stream_extra=f'window_model = "{window_artifact}"\nwindow_stride = {STRIDE}')
    pub = publisher(broker.port, client_id="pub-window")
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    publish_all(pub, [("sensors/w1/temperature", json.dumps({"value": v, "ts": ts})) for ts, v in rows[:22]])
    collector.wait_for(lambda: len(collector.json_on("statecast/forecast/w1")) == 22, what="22 forecasts")
    assert daemon.stop() == 0                           # checkpoints both tables
    daemon = DaemonProcess(path)
    daemon.wait_serving()
    assert "restored 1 window buffers" in daemon.log()
    publish_all(pub, [("sensors/w1/temperature", json.dumps({"value": v, "ts": ts})) for ts, v in rows[22:]])
    collector.wait_for(lambda: len(collector.json_on("statecast/forecast/w1")) == 40, what="40 forecasts")
    reference = WindowEngine(WindowModel(window_artifact), EngineSettings(), STRIDE)
    expected = [r for r in reference.process([Message("w1", (v,), ts, ts) for ts, v in rows]) if r.output is not None]
    collector.wait_for(lambda: len(collector.json_on("statecast/window/w1")) == len(expected), what="window outputs")
    got = collector.json_on("statecast/window/w1")
    assert [m["ts"] for m in got] == [r.ts for r in expected]          # every STRIDE messages once W are seen
    assert [m["output"] for m in got] == [r.output[..., 0].tolist() for r in expected]
    assert len(expected) == 1 + (40 - WINDOW) // STRIDE
    daemon.stop()
    pub.disconnect()
    collector.close()
