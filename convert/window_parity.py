"""The window-model conversion contract as numbers: Keras vs the window TFLite, window by window.

The windows are consecutive (stride 1) windows of a real series, compared in sensor units.
Tolerances are the step models' (parity.py): float32 <= 1e-5 of the output range, float16 and
dynamic <= 1e-2; int8 is judged on forecast RMSE against the truth relative to the float (Keras)
model (<= 1.05) when the model is a forecaster (training metadata "window_task": "forecast", one output
per window), else on its output error: RMS |int8 - keras| <= INT8_RMS_TOLERANCE of the range.
"""
from __future__ import annotations

import numpy as np

from statecast.daemon.model.scaling import IoScaling
from statecast.daemon.model.window_model import WindowModel

from .parity import INT8_RMSE_RATIO, RANGE_TOLERANCE

PARITY_WINDOWS = 2_000
# int8 without a target series: RMS |int8 - keras| over the windows, as a fraction of the output
# range (a mean-square criterion like the RMSE ratio, not a max that one window decides). Measured
# on NAB machine_temperature windows (W 16, 8 units): trained forecasters 0.01-0.1%; untrained
# seeded stacks, whose output range is narrow, 1.7-2.4% (max 7-13%).
INT8_RMS_TOLERANCE = 0.05


def sliding_windows(x: np.ndarray, window: int) -> np.ndarray:
    """(rows, F) -> (rows - window + 1, window, F): window i holds rows i .. i + window - 1."""
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)      # (n, F, window)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def scale_windows(model: WindowModel, windows: np.ndarray) -> np.ndarray:
    m = model.manifest
    return ((windows - np.asarray(m.input_mean, np.float32)) / np.asarray(m.input_std, np.float32)).astype(np.float32)


def _levels(model: WindowModel, windows: np.ndarray) -> np.ndarray:
    """The values the outputs are relative to: each step's (per step) or the last step's."""
    values = windows[..., : len(model.manifest.value_features)]
    return values if model.per_step else values[:, -1]


def run_window_model(model: WindowModel, windows: np.ndarray, batch: int = 256) -> np.ndarray:
    """Raw windows (n, W, F) -> outputs in sensor units, as the window engine computes them."""
    scaling = IoScaling(model.manifest)
    y = np.concatenate([model.run(scale_windows(model, windows[i:i + batch]))
                        for i in range(0, len(windows), batch)])
    return scaling.outputs(y, _levels(model, windows))


def keras_windows(keras_model, reference: WindowModel, windows: np.ndarray) -> np.ndarray:
    """Keras on the same windows, in sensor units (residual models get the level added back)."""
    out = np.asarray(keras_model.predict(windows, batch_size=256, verbose=0))
    scaling = IoScaling(reference.manifest)
    if scaling.residual:
        out = out + _levels(reference, windows)[..., scaling.base_index]
    return out


def _rmse(forecast: np.ndarray, truth: np.ndarray, n_targets: int) -> float:
    return float(np.sqrt(np.mean((forecast[:, :n_targets] - truth) ** 2)))


def parity_section(keras_model, model: WindowModel, data, mode: str) -> dict:
    """Figures (manifest "parity") and, for forecasters, the residual calibration ("anomaly")."""
    x_raw, truth_series, label = data
    m = model.manifest
    n_targets = len(m.targets)
    forecaster = m.raw.get("window_task") == "forecast" and not model.per_step
    count = min(PARITY_WINDOWS, len(x_raw) - model.window + (0 if forecaster else 1))
    windows = sliding_windows(x_raw, model.window)[:count]
    truth = truth_series[model.window: model.window + count] if forecaster else None   # next step of each
    keras_out = keras_windows(keras_model, model, windows)
    out = run_window_model(model, windows)
    error = np.abs(out - keras_out)
    output_range = float(np.ptp(keras_out)) or 1.0
    figures = {"windows": int(count), "steps": int(count), "window": model.window, "mode": mode,
               "max_abs_error": float(error.max()), "output_range": output_range,
               "max_abs_error_over_range": float(error.max() / output_range),
               "rms_error_over_range": float(np.sqrt(np.mean(error ** 2)) / output_range), "series": label}
    section = {"parity": figures}
    if forecaster:
        figures["rmse_keras"] = _rmse(keras_out, truth, n_targets)
        figures["rmse_step"] = _rmse(out, truth, n_targets)
        residual = out[:, :n_targets] - truth
        section["anomaly"] = {"residual_mean": residual.mean(axis=0).tolist(),
                              "residual_std": residual.std(axis=0).tolist(), "steps": int(count),
                              "warmup_steps": 0}
    if mode == "int8" and forecaster:
        reference = figures["rmse_keras"]                         # the float model
        figures["rmse_ratio"] = figures["rmse_step"] / reference if reference > 0 else 1.0
        measure, limit = "rmse_ratio", INT8_RMSE_RATIO
    elif mode == "int8":
        measure, limit = "rms_error_over_range", INT8_RMS_TOLERANCE
    else:
        measure, limit = "max_abs_error_over_range", RANGE_TOLERANCE[mode]
    figures["tolerance"] = f"{measure} <= {limit:g}"
    figures["measure"] = measure
    figures["pass"] = figures[measure] <= limit
    return section
