"""The models the benchmarks compare (workstation side: imports TensorFlow).

- The 2x64 LSTM step artifacts in float32, dynamic and int8, converted with `statecast convert`
  from the 2x64 LSTM reference workload, trained with the recipe models/build.sh used until issue 16
  (the shipped machine_temperature models are a GRU(64) since; cached; same
  architecture and data, so the same cost per step). Converting here rather than timing the
  shipped artifacts measures the graph the converter emits now (the shipped ones were converted
  before the float modes' gates were fused).
- The window alternative: the same Keras weights as a TFLite model over the last 64 steps,
  (batch, 64, 1) -> forecast. Keras 3 LSTMs do not convert to builtin ops, so the window graph
  is the one `statecast convert` builds for window models (convert/window_graph.WindowModule:
  the step graph's own cell functions unrolled 64 times from a zero state), in float32, dynamic
  and int8, converted with the project's TFLiteConverter path; the window is cut into steps by
  one UNPACK in every mode (the converter's int8 takes STRIDED_SLICEs, for the Edge TPU).

Everything lands in $STATECAST_BENCH_CACHE (default /tmp/statecast-bench), keyed by the sha256
of the Keras file and of the graph builders (convert/step_graph.py, window_graph.py and this
file), and is rebuilt only when missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from bench_common import CACHE, CSV, GRAPH_BUILDERS, files_digest

KERAS_PATH = os.path.join(CACHE, "machine_temperature.keras")     # same file bench/conversion_table.py caches
WINDOW = 64
MODES = ("float32", "dynamic", "int8")
WINDOW_CALIBRATION_SAMPLES = 512


def keras_model_path() -> str:
    """The 2x64 LSTM reference workload: models/build.sh's recipe before issue 16 (about a minute; cached)."""
    if not os.path.isfile(KERAS_PATH):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "statecast.daemon", "train", "--csv", CSV, "--rows", ":15000",
                        "--cell", "lstm", "--units", "64", "--layers", "2", "--window", "64", "--horizon", "1",
                        "--epochs", "30", "--seed", "0", "--out", KERAS_PATH], check=True)
    return KERAS_PATH


def _keras_key() -> str:
    """The Keras weights and the code that turns them into a graph: a change to either rebuilds."""
    return files_digest((keras_model_path(), *GRAPH_BUILDERS, os.path.abspath(__file__)))


def step_artifact(mode: str) -> str:
    """The step artifact in `mode`, converted from the cached Keras copy (cached)."""
    out = os.path.join(CACHE, f"step-{mode}-{_keras_key()}")
    if not os.path.isfile(os.path.join(out, "manifest.json")):
        subprocess.run([sys.executable, "-m", "statecast.daemon", "convert", keras_model_path(), "--quantize",
                        mode, "--calibration-csv", CSV, "--name", f"machine_temperature-{mode}", "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
    return out


# --- the window model ----------------------------------------------------------------------
def window_spec(model):
    """The Keras model read as a window model over the last WINDOW steps (the reader `statecast
    convert` uses for window models), forecasting from the last step only: the trained model
    emits a forecast per step, and a daemon re-running the window needs just the newest."""
    from dataclasses import replace

    from statecast.convert.window_reader import read_window_spec

    spec = read_window_spec(model, WINDOW)
    last = replace(spec.layers[-1], return_sequences=False)
    return replace(spec, layers=spec.layers[:-1] + (last,))


def scaled_series(spec) -> np.ndarray:
    from statecast.daemon.tools.series_csv import read_series
    values = read_series(CSV, "timestamp", ("value",)).values.astype(np.float32)   # (rows, 1)
    return (values - spec.input_mean) / spec.input_std


def window_tflite(mode: str) -> str:
    """Path of the window .tflite in `mode` (built and cached on first use)."""
    path = os.path.join(CACHE, f"window{WINDOW}-{mode}-{_keras_key()}.tflite")
    if os.path.isfile(path):
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from statecast.convert.keras_reader import load_keras_model
    from statecast.convert.quantize import to_tflite
    from statecast.convert.step_graph import fused_gates_for
    from statecast.convert.window_graph import WindowModule

    spec = window_spec(load_keras_model(keras_model_path()))
    representative = None
    if mode == "int8":
        x = scaled_series(spec)
        starts = np.random.default_rng(0).choice(x.shape[0] - WINDOW, WINDOW_CALIBRATION_SAMPLES, replace=False)
        samples = [{"x": x[s:s + WINDOW][None].astype(np.float32)} for s in starts]     # (1, W, 1)
        representative = lambda: iter(samples)                                         # noqa: E731
    # One UNPACK in every mode: the strongest CPU alternative. `statecast convert` keeps W
    # STRIDED_SLICEs in int8 for the Edge TPU (window_graph.unpack_steps_for), which cost 4-7%
    # more per one-window invoke here.
    module = WindowModule(spec, fused_gates=fused_gates_for(mode), unpack_steps=True)
    content = to_tflite(module, mode, representative)
    with open(path + ".tmp", "wb") as handle:
        handle.write(content)
    os.replace(path + ".tmp", path)
    return path


def window_parity(mode: str, windows: int = 200) -> dict:
    """The window TFLite against Keras on real windows (sensor units): it computes the same thing."""
    from ai_edge_litert.interpreter import Interpreter

    from statecast.convert.keras_reader import load_keras_model

    model = load_keras_model(keras_model_path())
    spec = window_spec(model)
    x = scaled_series(spec)
    raw = x * spec.input_std + spec.input_mean
    starts = np.linspace(0, x.shape[0] - WINDOW - 1, windows).astype(int)
    batch_raw = np.stack([raw[s:s + WINDOW] for s in starts]).astype(np.float32)       # (n, W, 1)
    keras_last = np.asarray(model.predict(batch_raw, verbose=0))[:, -1, 0]              # change, sensor units
    interpreter = Interpreter(model_path=window_tflite(mode), num_threads=1)
    interpreter.allocate_tensors()
    x_index, y_index = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    ours = []
    for s in starts:
        interpreter.set_tensor(x_index, x[s:s + WINDOW][None].astype(np.float32))
        interpreter.invoke()
        ours.append(float(interpreter.get_tensor(y_index)[0, 0]))
    ours = np.asarray(ours) * spec.output_scale[0] + spec.output_offset[0]
    error = np.abs(ours - keras_last)
    return {"mode": mode, "windows": windows, "max_abs_error": float(error.max()),
            "keras_output_range": float(np.ptp(keras_last)), "tflite_bytes": os.path.getsize(window_tflite(mode))}


def manifest(directory: str) -> dict:
    with open(os.path.join(directory, "manifest.json")) as handle:
        return json.load(handle)
