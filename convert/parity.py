"""The conversion contract as numbers: Keras full sequence vs the step TFLite, step by step.

All comparisons are in sensor units (after the manifest's output scaling). Error tolerances
are fractions of the output range seen over the run; int8 is judged on forecast RMSE against
the true series relative to the float model, plus a long-stream drift check.
"""
from __future__ import annotations

import numpy as np

from statecast.daemon.model.scaling import IoScaling
from statecast.daemon.model.step_model import StepModel, run_sequence

from .modes import FULL_INTEGER_MODES

# Max |step - keras| as a fraction of the output range, per mode. float32 differs from Keras only
# by op order / fused kernels (~1e-7 relative); float16 and int8-weight (dynamic) rounding of the
# weights is ~1e-3 relative per weight, which stays well below 1% of the range at the output.
RANGE_TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "dynamic": 1e-2}
# int8: forecast RMSE against the truth may be at most 5% worse than the float model's.
INT8_RMSE_RATIO = 1.05
# int8 gate, per horizon step k (int8_gate): the RMS of int8 - float forecasts may be at most this
# fraction of the spread (std) of the true k-step change, i.e. of what a forecaster adds to the
# last value. The shipped default-int8 measures 0.36 at step 1 (online scaling, calendar inputs):
# 0.5 passes it while refusing an int8 model that drops or doubles the float's predicted change
# wherever that change is a real part of the forecast.
INT8_CHANGE_BOUND = 0.5
# ... and int8 skill vs persistence (1 - RMSE / persistence RMSE) may fall at most this much below
# the float model's: a constant "no change" int8 model has skill 0, so it is refused wherever the
# float model has skill above the margin. default-int8 loses 0.04 at step 1 (rmse_ratio 1.033).
INT8_SKILL_MARGIN = 0.05
DRIFT_STEPS = 50_000
DRIFT_WINDOW = 1_000


def keras_full_sequence(model, x_raw: np.ndarray) -> np.ndarray:
    """Run the Keras model over the whole sequence at once: (steps, features) -> (steps, outputs).

    Recurrent layers are rebuilt with return_sequences=True (same weights), so every step's
    output is available; other layers (Normalization, Dense, Rescaling) apply per step as they are.
    """
    import keras

    inputs = keras.Input((None, x_raw.shape[-1]))
    h = inputs
    rebuilt = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "Dropout", "GaussianNoise", "GaussianDropout", "SpatialDropout1D"):
            continue
        if kind in ("LSTM", "GRU", "SimpleRNN"):
            config = {**layer.get_config(), "return_sequences": True, "stateful": False,
                      "name": layer.name + "_fullseq"}
            twin = type(layer).from_config(config)
            h = twin(h)
            rebuilt.append((twin, layer.get_weights()))
        else:
            h = layer(h)
    for twin, weights in rebuilt:
        twin.set_weights(weights)
    full = keras.Model(inputs, h)
    # predict() runs a compiled graph; calling the model eagerly steps the RNN loop in Python (~100x slower).
    return np.asarray(full.predict(x_raw[None].astype(np.float32), batch_size=1, verbose=0))[0]


def run_step_model(model: StepModel, x_raw: np.ndarray) -> np.ndarray:
    """The step model over a whole sequence, outputs in sensor units (as the engine computes them)."""
    scaling = IoScaling(model.manifest)
    x_model, centres, scales = scaling.sequence(x_raw)
    return scaling.outputs(run_sequence(model, x_model), x_raw[:, : scaling.n_values], centres, scales)


def keras_absolute(model, step_model: StepModel, x_raw: np.ndarray) -> np.ndarray:
    """Keras full-sequence outputs in sensor units, through the same output scaling as the engine.

    The Keras file holds the fixed input Normalization and output Rescaling itself; for online
    models the per-stream scaling happens outside it, as on the device."""
    scaling = IoScaling(step_model.manifest)
    if not scaling.online:
        out = keras_full_sequence(model, x_raw)
        return out + x_raw[:, scaling.base_index] if scaling.residual else out
    x_model, centres, scales = scaling.sequence(x_raw)
    out = keras_full_sequence(model, x_model)                  # Rescaling inside: y*scale+offset
    unscaled = (out - scaling.out_offset) / scaling.out_scale  # back to raw model outputs
    return scaling.outputs(unscaled, x_raw[:, : scaling.n_values], centres, scales)


def one_step_rmse(forecast: np.ndarray, truth: np.ndarray, n_targets: int, skip: int = 0) -> float:
    """RMSE of the next-step forecast (first n_targets outputs) made at t against truth at t+1."""
    predicted = forecast[skip:-1, :n_targets]
    actual = truth[skip + 1:, :n_targets]
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def parity_figures(keras_out: np.ndarray, step_out: np.ndarray, truth: np.ndarray, mode: str,
                   float_rmse: float | None, n_targets: int) -> dict:
    error = np.abs(step_out - keras_out)
    output_range = float(np.ptp(keras_out)) or 1.0
    keras_rmse = one_step_rmse(keras_out, truth, n_targets)
    step_rmse = one_step_rmse(step_out, truth, n_targets)
    figures = {
        "steps": int(keras_out.shape[0]), "mode": mode,
        "max_abs_error": float(error.max()), "output_range": output_range,
        "max_abs_error_over_range": float(error.max() / output_range),
        "rmse_keras": keras_rmse, "rmse_step": step_rmse,
    }
    if mode in FULL_INTEGER_MODES:
        reference = float_rmse if float_rmse is not None else keras_rmse
        figures["rmse_ratio"] = step_rmse / reference if reference > 0 else 1.0
        figures["tolerance"] = f"rmse_ratio <= {INT8_RMSE_RATIO}"
        figures["pass"] = figures["rmse_ratio"] <= INT8_RMSE_RATIO
    else:
        figures["tolerance"] = f"max_abs_error_over_range <= {RANGE_TOLERANCE[mode]:g}"
        figures["pass"] = figures["max_abs_error_over_range"] <= RANGE_TOLERANCE[mode]
    return figures


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a ** 2)))


def int8_gate(int8_out: np.ndarray, float_out: np.ndarray, truth: np.ndarray, n_targets: int) -> dict:
    """int8_out, float_out (steps, H*T) step-major in sensor units; truth (steps, T) -> per-step
    figures and the verdict. Fails with the steps and figures that broke a bound."""
    horizon = int8_out.shape[1] // n_targets
    steps, failures = [], []
    for k in range(1, horizon + 1):
        block = slice((k - 1) * n_targets, k * n_targets)
        last, actual = truth[:-k], truth[k:]                                  # (n, T)
        change_spread = float(np.std(actual - last)) or 1.0
        persistence = _rms(actual - last) or 1.0
        q, f = int8_out[:-k, block], float_out[:-k, block]
        figures = {"step": k, "diff_over_change_spread": _rms(q - f) / change_spread,
                   "skill_float": 1 - _rms(f - actual) / persistence, "skill_int8": 1 - _rms(q - actual) / persistence}
        steps.append({key: round(v, 5) if isinstance(v, float) else v for key, v in figures.items()})
        if figures["diff_over_change_spread"] > INT8_CHANGE_BOUND:
            failures.append(f"step {k}: RMS |int8 - float| is {figures['diff_over_change_spread']:.2f} x the spread "
                            f"of the true change (> {INT8_CHANGE_BOUND})")
        if figures["skill_int8"] < figures["skill_float"] - INT8_SKILL_MARGIN:
            failures.append(f"step {k}: int8 skill vs persistence {figures['skill_int8']:+.3f} < float "
                            f"{figures['skill_float']:+.3f} - {INT8_SKILL_MARGIN}")
    return {"steps": steps, "pass": not failures, "failures": failures,
            "bounds": f"RMS |int8 - float| <= {INT8_CHANGE_BOUND} x std of the true k-step change and "
                      f"int8 skill >= float skill - {INT8_SKILL_MARGIN}, every step k"}


def drift_stream(x_raw: np.ndarray, truth: np.ndarray, steps: int = DRIFT_STEPS, window: int = DRIFT_WINDOW):
    """Tile a real segment into a `steps`-long stream whose last `window` rows repeat its first.

    The period P divides steps - window, so the first and last windows see identical inputs and
    differ only in how much history the state carries.
    """
    usable = x_raw.shape[0]
    period = max(p for p in range(window + 1, min(usable, steps - window) + 1) if (steps - window) % p == 0)
    reps = -(-steps // period)
    return np.tile(x_raw[:period], (reps, 1))[:steps], np.tile(truth[:period], (reps, 1))[:steps], period


def drift_figures(int8_model: StepModel, float_model: StepModel, x_raw: np.ndarray, truth: np.ndarray,
                  n_targets: int) -> dict:
    """LSTM cell state is unbounded: check that int8 error does not grow over a 50,000-step stream."""
    x_long, truth_long, period = drift_stream(x_raw, truth)
    q = run_step_model(int8_model, x_long)
    f = run_step_model(float_model, x_long)
    w = DRIFT_WINDOW
    first = slice(0, w)
    last = slice(len(x_long) - w, len(x_long))
    # rmse inside each window: forecast at t vs truth at t+1, both within the window
    def window_rmse(pred, sl):
        return one_step_rmse(pred[sl], truth_long[sl], n_targets)
    figures = {
        "steps": len(x_long), "period": period, "window": w,
        "rmse_first": window_rmse(q, first), "rmse_last": window_rmse(q, last),
        "float_rmse_first": window_rmse(f, first), "float_rmse_last": window_rmse(f, last),
        "mean_abs_vs_float_first": float(np.mean(np.abs(q[first] - f[first]))),
        "mean_abs_vs_float_last": float(np.mean(np.abs(q[last] - f[last]))),
    }
    return figures
