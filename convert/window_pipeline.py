"""`statecast convert` for window models (issue 8): Keras file -> verified window artifact.

Same order and guarantees as pipeline.convert: read + validate, build the unrolled window graph,
convert (int8 calibrates on real windows of the calibration series), write into a staging
directory, check parity against Keras window by window, and only then move the artifact into
place (the last steps are convert_common.install_verified, shared with step models). Parity and
tolerances are the step models' (window_parity.py). Unlike a step model no float32 artifact is
built on the side: every window starts from a zero state, so calibration needs only scaled
windows, and Keras itself is the float reference.
"""
from __future__ import annotations

import os
from functools import partial

import numpy as np

from statecast.daemon.model.artifact import sha256_hex
from statecast.daemon.model.backends import select_backend
from statecast.daemon.model.window_model import WindowModel

from . import window_parity
from .convert_common import ConvertOptions, describe_io, install_verified, parity_series, staging_area
from .errors import ConversionError
from .quantize import SIGNATURE, to_tflite
from .step_graph import INPUT_NAME, fused_gates_for
from .window_graph import OUTPUT_NAME, WindowModule, unpack_steps_for
from .window_reader import WindowSpec, read_window_spec

CALIBRATION_WINDOWS = 512


def build_window_manifest(spec: WindowSpec, options: ConvertOptions, content: bytes, features, targets,
                          horizon: int, meta: dict) -> dict:
    per_step = spec.per_step_output
    layers = []
    for layer in spec.layers:
        item = {"name": layer.name, "cell": layer.forward.cell, "units": layer.forward.units,
                "activation": layer.forward.activation,
                "direction": "bidirectional" if layer.backward is not None else "forward",
                "merge_mode": layer.merge_mode, "return_sequences": layer.return_sequences}
        if layer.forward.cell == "gru":
            item["reset_after"] = layer.forward.reset_after
        layers.append(item)
    return {
        "format": "statecast-model/1", "name": options.name or os.path.basename(os.path.normpath(options.out_dir)),
        "kind": "window", "window": spec.window, "window_output": "per_step" if per_step else "per_window",
        "window_task": meta.get("window_task"),
        "signature": SIGNATURE, "input": INPUT_NAME, "output": OUTPUT_NAME, "state": [],
        "input_shape": [None, spec.window, spec.n_features],
        "output_shape": [None, spec.window, spec.n_outputs] if per_step else [None, spec.n_outputs],
        "cell": spec.cell, "layers": layers,
        "heads": [{"name": d.name, "units": int(d.kernel.shape[1]), "activation": d.activation} for d in spec.heads],
        "features": list(features), "n_features": spec.n_features, "targets": list(targets), "horizon": horizon,
        "output_layout": ("output[:, t] belongs to step t of the window (oldest first); " if per_step else
                          "one output per window, made at its last step; ")
                         + "within it, [k * n_targets + j] is target j, k+1 steps ahead",
        "input_scaling": {"mode": "fixed", "mean": spec.input_mean.tolist(), "std": spec.input_std.tolist()},
        "output_scaling": {"scale": spec.output_scale.tolist(), "offset": spec.output_offset.tolist()},
        "output_residual": bool(options.residual if options.residual is not None
                                else meta.get("output_residual", False)),
        "quantization": options.mode, "sha256": sha256_hex(content), "tflite_bytes": len(content),
        "source": {"file": os.path.basename(options.model_path)},
    }


def _calibration_windows(spec: WindowSpec, x_raw: np.ndarray, batch: int = 1,
                         count: int = CALIBRATION_WINDOWS) -> list[dict]:
    """Real windows spread over the whole calibration series, scaled, as signature inputs of
    `batch` windows. Every window starts from a zero state, so no visited states are needed."""
    windows = window_parity.sliding_windows(x_raw, spec.window)
    pick = np.linspace(0, len(windows) - 1, num=max(batch, min(count, len(windows)) // batch * batch)).astype(int)
    scaled = ((windows[pick] - spec.input_mean) / spec.input_std).astype(np.float32)   # (n, W, F)
    return [{INPUT_NAME: scaled[i:i + batch]} for i in range(0, len(scaled), batch)]


def convert_window(options: ConvertOptions, model, meta: dict) -> dict:
    """Run the whole window conversion; returns the manifest written. Raises ConversionError."""
    spec = read_window_spec(model, options.window)
    features, values, targets, horizon = describe_io(spec, options, meta)
    data = parity_series(options, meta, features, values, targets)
    if data is not None and data[0].shape[0] < spec.window + 1:
        raise ConversionError(f"{data[2]}: {data[0].shape[0]} rows is shorter than the window ({spec.window})")
    if options.mode == "int16x8":
        raise ConversionError("--quantize int16x8 is for step models; a window model takes int8, dynamic, "
                              "float16 or float32")
    if options.mode == "int8" and data is None:
        raise ConversionError("int8 quantization needs --calibration-csv (real windows to calibrate on)")
    backend = select_backend("auto")
    module = WindowModule(spec, batch_size=options.static_batch, fused_gates=fused_gates_for(options.mode),
                          unpack_steps=unpack_steps_for(options.mode))
    with staging_area(options.out_dir) as staging:
        representative = None
        if options.mode == "int8":
            samples = _calibration_windows(spec, data[0], options.static_batch or 1)
            representative = lambda: iter(samples)
        content = to_tflite(module, options.mode, representative)
        manifest = build_window_manifest(spec, options, content, features, targets, horizon, meta)
        parity_of = None if data is None else partial(window_parity.parity_section, model, data=data,
                                                      mode=options.mode)
        return install_verified(staging, content, manifest, options, partial(WindowModel, backend=backend),
                                parity_of)
