"""serve logs each model's skill line at start (issue 16): read from the manifest, so a user sees
in the journal whether the forecasts beat persistence on data the model never trained on."""
import json
import os

from daemon_proc import DEFAULT_MODEL, DaemonProcess, write_config


def test_serve_logs_the_skill_line_of_its_model(broker, tmp_path):
    manifest = json.load(open(os.path.join(DEFAULT_MODEL, "manifest.json")))
    line = manifest["skill"]["line"]
    assert "held-back rows" in line and manifest["skill"]["report"]["has_skill"]
    daemon = DaemonProcess(write_config(tmp_path / "d.toml", broker.port, str(tmp_path / "state")))
    daemon.wait_serving()
    log = daemon.log()
    assert f"model {manifest['name']}: {line}" in log, log[-2000:]
    assert daemon.stop() == 0
