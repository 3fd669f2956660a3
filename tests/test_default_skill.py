"""The generic models' forecast skill report (issue 16): each of models/default* carries one in its
manifest, `serve` logs its line, and the figures are what the shipped weights actually give."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import default_skill  # noqa: E402

GENERIC_MODELS = ("default", "default-int8", "default-int16x8")


@pytest.mark.parametrize("name", GENERIC_MODELS)
def test_each_generic_model_carries_a_skill_line_that_says_where_it_was_measured(name):
    skill = json.loads((ROOT / "models" / name / "manifest.json").read_text())["skill"]
    assert "18 NAB training files" in skill["line"] and "no held-back tail" in skill["line"]
    report = skill["report"]
    assert report["files"] == len(report["per_file"]) == 18
    assert report["beats_persistence"] == sum(f["skill"] > 0 for f in report["per_file"])
    assert report["has_skill"] is (report["beats_persistence"] == 18)


def test_the_float_models_report_is_what_its_weights_give():
    """Recomputed from models/default's .tflite: a model rebuilt without re-running
    bench/default_skill.py --manifest would carry another model's figures and fail here."""
    shipped = json.loads((ROOT / "models" / "default" / "manifest.json").read_text())["skill"]["report"]
    again = default_skill.evaluate(ROOT / "models" / "default", "nab-dev")
    assert again["files"] == shipped["per_file"]
    assert again["summary"]["median_skill"] == shipped["median_skill"]


def test_serve_logs_the_default_models_skill_line(broker, tmp_path):
    """What a user of models/default sees in the journal at start: the measured line, not
    "no skill report in its manifest"."""
    from daemon_proc import DaemonProcess, write_config
    manifest = json.loads((ROOT / "models" / "default" / "manifest.json").read_text())
    daemon = DaemonProcess(write_config(tmp_path / "d.toml", broker.port, str(tmp_path / "state"),
                                        model=str(ROOT / "models" / "default")))
    daemon.wait_serving()
    log = daemon.log()
    assert f"model default: {manifest['skill']['line']}" in log, log[-2000:]
    assert daemon.stop() == 0
