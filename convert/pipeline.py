"""`statecast convert`: Keras file -> verified step-model artifact directory.

Order: read + validate the Keras model, build the step graph, convert (int8 calibrates on the
states the float32 step model visits), write into a temporary directory, run parity against
Keras, and only then move the artifact into place, so a failure never leaves a partial one.
`convert` is the one place that sends a window model to window_pipeline.py; what both kinds
share is convert_common.py.
"""
from __future__ import annotations

import os
from functools import partial

import numpy as np

from statecast.daemon.model.artifact import sha256_hex
from statecast.daemon.model.backends import select_backend
from statecast.daemon.model.step_model import StepModel

from . import parity
from .calibration import pooled_visited_states
from .convert_common import (ConvertOptions, describe_io, install_verified, more_calibration_inputs, parity_series,
                             read_sidecar, staging_area, write_artifact)
from .errors import ConversionError
from .keras_reader import load_keras_model, read_model_spec
from .model_spec import ModelSpec
from .modes import FULL_INTEGER_MODES
from .quantize import SIGNATURE, to_tflite
from .step_graph import (INPUT_NAME, OUTPUT_NAME, StepModule, fused_gates_for, state_input_name,
                         state_output_name)
from .window_pipeline import convert_window
from .window_reader import is_window_model

PARITY_STEPS = 5_000

def build_manifest(spec: ModelSpec, options: ConvertOptions, content: bytes, features, targets, horizon,
                   meta: dict) -> dict:
    state = []
    for index, layer in enumerate(spec.recurrent):
        for part in layer.state_names:
            state.append({"input": state_input_name(index, part), "output": state_output_name(index, part),
                          "shape": [layer.units], "layer": index, "part": part})
    name = options.name or os.path.basename(os.path.normpath(options.out_dir))
    return {
        "format": "statecast-model/1", "name": name, "kind": "step",
        "signature": SIGNATURE, "input": INPUT_NAME, "output": OUTPUT_NAME, "state": state,
        "cell": spec.cell,
        "layers": [{"name": l.name, "cell": l.cell, "units": l.units, "activation": l.activation,
                    **({"reset_after": l.reset_after} if l.cell == "gru" else {})} for l in spec.recurrent],
        "heads": [{"name": d.name, "units": int(d.kernel.shape[1]), "activation": d.activation} for d in spec.heads],
        "features": list(features), "n_features": spec.n_features, "targets": list(targets), "horizon": horizon,
        "output_layout": "step-major: output[k * n_targets + j] is target j, k+1 steps ahead",
        "input_scaling": {**meta.get("input_scaling", {"mode": "fixed"}),
                          "mean": spec.input_mean.tolist(), "std": spec.input_std.tolist()},
        "output_scaling": {"scale": spec.output_scale.tolist(), "offset": spec.output_offset.tolist()},
        "output_residual": bool(options.residual if options.residual is not None
                                else meta.get("output_residual", False)),
        "quantization": options.mode, "sha256": sha256_hex(content), "tflite_bytes": len(content),
        "static_batch": options.static_batch,
        "source": {"file": os.path.basename(options.model_path)},
        # train's choice (daemon/model/forecast_guard.py): serve publishes the guarded forecast
        **({"forecast_guard": meta["forecast_guard"]} if meta.get("forecast_guard") else {}),
    }


def _residual_calibration(step_out: np.ndarray, truth: np.ndarray, n_targets: int, warmup: int) -> dict:
    residual = step_out[warmup:-1, :n_targets] - truth[warmup + 1:, :n_targets]
    return {"residual_mean": residual.mean(axis=0).tolist(), "residual_std": residual.std(axis=0).tolist(),
            "steps": int(residual.shape[0]), "warmup_steps": warmup}


def convert(options: ConvertOptions) -> dict:
    """Run the whole conversion; returns the manifest written. Raises ConversionError."""
    meta = read_sidecar(options.model_path)
    model = load_keras_model(options.model_path)
    if options.window or is_window_model(model):      # issue 8: Bidirectional -> window model
        return convert_window(options, model, meta)
    spec = read_model_spec(model)
    features, values, targets, horizon = describe_io(spec, options, meta)
    data = parity_series(options, meta, features, values, targets)
    if options.mode in FULL_INTEGER_MODES and data is None:
        raise ConversionError(f"{options.mode} quantization needs --calibration-csv (real sequences to calibrate "
                              "states on)")
    backend = select_backend("auto")
    with staging_area(options.out_dir) as staging:
        # The float32 artifact is always built: it is the int8 calibration source and drift reference.
        float_dir = os.path.join(staging, "float32")
        os.makedirs(float_dir)
        float_content = to_tflite(_step_module(spec, options, "float32"), "float32")
        write_artifact(float_dir, float_content, build_manifest(spec, options, float_content, features,
                                                                 targets, horizon, meta))
        float_model = StepModel(float_dir, backend=backend)
        representative = None
        if options.mode in FULL_INTEGER_MODES:
            series = [data[0]] + more_calibration_inputs(options, meta, features, values)
            samples = pooled_visited_states(float_model, series)
            representative = lambda: iter(samples)
        content = float_content if options.mode == "float32" else \
            to_tflite(_step_module(spec, options, options.mode), options.mode, representative)
        manifest = build_manifest(spec, options, content, features, targets, horizon, meta)
        parity_of = None if data is None else partial(_parity_section, model, float_model=float_model, data=data,
                                                      mode=options.mode, n_targets=len(targets))
        parity_of = _with_skill_report(parity_of, meta, features, targets, horizon)
        return install_verified(staging, content, manifest, options, partial(StepModel, backend=backend), parity_of)


def _step_module(spec: ModelSpec, options: ConvertOptions, mode: str) -> StepModule:
    """The step graph for `mode`: int8 keeps a FULLY_CONNECTED pair per gate, float modes fuse them."""
    return StepModule(spec, batch_size=options.static_batch, fused_gates=fused_gates_for(mode))


def _parity_section(model, step_model: StepModel, float_model: StepModel, data, mode: str, n_targets: int) -> dict:
    x_raw, truth, label = data
    x_raw, truth = x_raw[:PARITY_STEPS], truth[:PARITY_STEPS]
    keras_out = parity.keras_absolute(model, step_model, x_raw)
    step_out = parity.run_step_model(step_model, x_raw)
    float_rmse = None
    if mode in FULL_INTEGER_MODES:
        float_out = parity.run_step_model(float_model, x_raw)
        float_rmse = parity.one_step_rmse(float_out, truth, n_targets)
    figures = parity.parity_figures(keras_out, step_out, truth, mode, float_rmse, n_targets)
    figures["series"] = label
    if mode in FULL_INTEGER_MODES:
        _apply_int8_gate(figures, step_out, float_out, truth, n_targets)
    section = {"parity": figures,
               "anomaly": _residual_calibration(step_out, truth, n_targets, warmup=min(100, len(truth) // 10))}
    if mode in FULL_INTEGER_MODES and len(data[0]) > parity.DRIFT_WINDOW * 2:
        section["drift"] = parity.drift_figures(step_model, float_model, data[0], data[1], n_targets)
    return section


def _apply_int8_gate(figures: dict, int8_out: np.ndarray, float_out: np.ndarray, truth: np.ndarray,
                     n_targets: int) -> None:
    """Issue 16: the int8 forecast must stay near the float one and keep its skill (parity.int8_gate);
    a failure names the steps and figures in the tolerance the conversion error prints."""
    gate = parity.int8_gate(int8_out, float_out, truth, n_targets)
    figures["int8_gate"] = gate
    if not gate["pass"]:
        figures["pass"] = False
        figures["tolerance"] = "int8 gate: " + "; ".join(gate["failures"])


def _with_skill_report(parity_of, meta: dict, features, targets, horizon: int):
    """Issue 16: after parity, the converted model's own skill on train's held-back tail (the rows
    train never fitted on, from the sidecar), and train's choices, go into the manifest."""
    if parity_of is None or "splits" not in meta:
        return parity_of

    def both(artifact) -> dict:
        section = parity_of(artifact)
        from .convert_skill import converted_skill
        section["training"] = {key: meta[key] for key in ("choices", "data_profile", "shrinkage", "window", "rows")
                               if key in meta}
        section["skill"] = converted_skill(artifact, meta, features, targets, horizon)
        return section
    return both
