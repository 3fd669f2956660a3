"""The device side runs every artifact with ai_edge_litert alone: TensorFlow is never imported."""
import glob
import os
import subprocess
import sys

from conftest import ROOT

PROBE = r"""
import sys, numpy as np
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel, run_sequence
for directory in sys.argv[1:]:
    model = StepModel(directory)
    assert model.backend.name == "ai_edge_litert", model.backend.name
    out = run_sequence(model, np.zeros((10, model.n_features), np.float32))
    assert out.shape == (10, model.output_width) and np.isfinite(out).all()
    engine = Engine(model)
    results = engine.process([Message("s", tuple([1.0] * len(model.manifest.value_features)), 1.0, 1.0)])
    assert len(results) == 1
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
assert not leaked, leaked
print("ok", len(sys.argv) - 1)
"""


def test_shipped_models_run_without_tensorflow():
    artifacts = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(ROOT, "models", "*", "manifest.json")))
    assert artifacts, "no shipped models found"
    result = subprocess.run([sys.executable, "-c", PROBE, *artifacts], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"ok {len(artifacts)}"


def test_daemon_package_has_no_tensorflow_import():
    """Static check as well: no module under daemon/ imports TensorFlow or Keras by name."""
    offenders = []
    for path in glob.glob(os.path.join(ROOT, "daemon", "**", "*.py"), recursive=True):
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                    name in stripped.split()[1].split(".")[0] for name in ("tensorflow", "keras")):
                offenders.append(f"{path}:{number}")
    assert not offenders, offenders
