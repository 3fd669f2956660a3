"""`statecast train`: a streaming forecaster from a sensor CSV.

The model is trained sequence-to-sequence (a forecast at every step of each window), which is
exactly what the step model computes on a live stream. Input normalisation is a Keras
Normalization layer and output scaling a Rescaling layer, so the .keras file is self-contained
in sensor units and the converter moves both into the manifest.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from statecast.daemon.model.artifact import CALENDAR_FEATURES
from statecast.daemon.model.forecast_guard import guarded_sequence
from statecast.daemon.model.scaling import OnlineScaler

from . import train_skill
from .data_profile import DataProfile, choose_window, describe, profile_series
from .errors import ConversionError
from .train_data import load, prepare, window_training_sets

CELLS = ("lstm", "gru", "rnn", "bilstm")
WINDOW_CELLS = ("bilstm",)    # window models (issue 8): one forecast per window of the last W steps


@dataclass(frozen=True)
class TrainOptions:
    csv: str | tuple[str, ...]
    out: str
    cell: str = "lstm"
    units: int = 32
    layers: int = 1
    window: int | None = 64            # None: chosen from the data (one daily period, capped)
    horizon: int = 1
    time_column: str = "timestamp"
    value_columns: tuple[str, ...] = ("value",)
    rows: str | None = None
    calendar: bool | None = False      # None: on where a daily or weekly rhythm is found
    epochs: int = 30
    batch_size: int = 64
    validation_fraction: float = 0.2
    # The last rows of every series, never trained or validated on: the skill report's rows.
    # 0 reuses the validation part (and the report says so).
    holdout_fraction: float = 0.0
    shrinkage: bool = False            # fit per-step a in [0, 1] of the predicted change (train_skill)
    lr_schedule: bool = True           # halve the learning rate after 2 epochs without improvement
    progress: bool = False             # one line per epoch on stderr (progress.py)
    report_dir: str | None = None      # write a PNG of the held-back tail and loss curves (train_plots)
    patience: int = 4
    learning_rate: float = 1e-3
    seed: int = 0
    gru_reset_after: bool = True
    rnn_activation: str = "tanh"
    # Forecast the change from the current value; the daemon adds the level back in float. Better
    # conditioned for training and keeps int8 error proportional to the changes, not the range.
    residual: bool = True
    merge_mode: str = "concat"         # bilstm: how the two directions combine (concat|sum|ave|mul)
    # Per-stream running normalisation on the device (one model for streams it has never seen).
    online_normalization: bool = False
    halflife_steps: float = 1000.0
    # The forecast guard's half-life in messages (daemon/model/forecast_guard.py; None: no guard):
    # per stream, the share of each step's predicted change that held up lately is published.
    forecast_guard: float | None = None


# `statecast train`'s default guard half-life: chosen over 6 values by leave-one-source-out on
# models trained by forecast_eval (docs/forecasting.md, "The forecast guard on trained models").
DEFAULT_GUARD_HALFLIFE = 31.0


def build_model(options: TrainOptions, n_features: int, n_targets: int):
    import keras

    if options.cell in WINDOW_CELLS:
        return build_window_model(options, n_features, n_targets)
    layer_type = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[options.cell]
    extra = {"reset_after": options.gru_reset_after} if options.cell == "gru" else {}
    if options.cell == "rnn":
        extra = {"activation": options.rnn_activation}
    inputs = keras.Input((None, n_features), name="x")
    # Online-normalised models get z-scores from the device; fixed ones carry their Normalization.
    h = inputs if options.online_normalization else keras.layers.Normalization(name="input_scaling")(inputs)
    for index in range(options.layers):
        h = layer_type(options.units, return_sequences=True, name=f"{options.cell}_{index}", **extra)(h)
    h = keras.layers.Dense(options.horizon * n_targets, name="forecast_head")(h)
    return keras.Model(inputs, h, name=f"statecast_{options.cell}")


def build_window_model(options: TrainOptions, n_features: int, n_targets: int):
    """Bidirectional LSTM over a fixed window of the last W steps -> the next H values, made at
    the window's last step (a window model: `statecast convert` exports it unrolled over W)."""
    import keras

    inputs = keras.Input((options.window, n_features), name="x")
    h = keras.layers.Normalization(name="input_scaling")(inputs)
    for index in range(options.layers):
        last = index == options.layers - 1
        h = keras.layers.Bidirectional(keras.layers.LSTM(options.units, return_sequences=not last),
                                       merge_mode=options.merge_mode, name=f"bilstm_{index}")(h)
    h = keras.layers.Dense(options.horizon * n_targets, name="forecast_head")(h)
    return keras.Model(inputs, h, name="statecast_bilstm")




def _profile(series_list, options: TrainOptions) -> tuple[DataProfile, list[dict]]:
    """Profile each series' training part; a period counts only where every series has it."""
    profiles = []
    for series in series_list:
        rows = int((series.values.shape[0] - options.horizon) * (1 - options.holdout_fraction
                                                                   - options.validation_fraction))
        profiles.append(profile_series(series.timestamps[:rows], series.values[:rows, 0]))
    first = profiles[0]
    periods = tuple(p if not p.found or all(q.found for other in profiles for q in other.periods if q.name == p.name)
                    else dataclasses.replace(p, found=False, reason=f"not in every series ({p.reason})")
                    for p in first.periods)
    profile = dataclasses.replace(first, periods=periods)
    return profile, [{"choice": "data", "reason": line} for line in describe(profile)]


def _decide(options: TrainOptions, profile: DataProfile, choices: list[dict]) -> tuple[tuple[str, ...], int]:
    if options.calendar is None:
        calendar = profile.calendar_features()
        reason = ("from the periods found: " + ", ".join(p.name for p in profile.found())) if calendar else \
            "no daily or weekly period found"
    else:
        calendar = CALENDAR_FEATURES if options.calendar else ()
        reason = "--calendar given" if options.calendar else "--no-calendar given (or the Python default)"
    choices.append({"choice": "calendar", "value": list(calendar), "reason": reason})
    window, reason = choose_window(profile) if options.window is None else (options.window, "--window given")
    choices.append({"choice": "window", "value": window, "reason": reason})
    choices.append({"choice": "forecast_guard", "value": guard_halflife(options), "reason": _guard_reason(options)})
    return tuple(options.value_columns) + tuple(calendar), window


def guard_halflife(options: TrainOptions) -> float | None:
    """The guard the model is served with: none for window models (their engine publishes the
    window's forecast as it is)."""
    return None if options.cell in WINDOW_CELLS else options.forecast_guard


def _guard_reason(options: TrainOptions) -> str:
    if options.forecast_guard is None:
        return "--no-forecast-guard given (or the Python default): serve publishes the model's forecast as it is"
    if options.cell in WINDOW_CELLS:
        return "off: window models publish the window's forecast as it is"
    return (f"half-life {options.forecast_guard:g} messages: per stream and horizon step, serve publishes the "
            "share of the predicted change that held up lately (persistence where the stream left the model's "
            "regime); the skill report is of that forecast")


def _fit(model, options: TrainOptions, sets) -> dict:
    import keras

    x_train, y_train, x_val, y_val = sets
    callbacks = [keras.callbacks.EarlyStopping(patience=options.patience, restore_best_weights=True)]
    if options.lr_schedule:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=1e-5))
    if options.progress:
        from .progress import progress_callback
        callbacks.append(progress_callback(options.epochs))
    model.compile(optimizer=keras.optimizers.Adam(options.learning_rate), loss="mse")
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=options.epochs,
                        batch_size=options.batch_size, verbose=0, shuffle=True, callbacks=callbacks)
    return history.history


def _with_output_scaling(model, scale: np.ndarray, offset: np.ndarray):
    """Fold the target scaling into the model as an output Rescaling layer (sensor units out)."""
    import keras

    outputs = keras.layers.Rescaling(scale=scale.tolist(), offset=offset.tolist(), name="output_scaling")(model.output)
    return keras.Model(model.input, outputs, name=model.name)


def _check(options: TrainOptions) -> None:
    if options.cell not in CELLS:
        raise ConversionError(f"--cell {options.cell}: expected one of {', '.join(CELLS)}")
    if not 1 <= options.layers <= 3:
        raise ConversionError(f"--layers {options.layers}: expected 1 to 3")
    if options.cell in WINDOW_CELLS and options.online_normalization:
        raise ConversionError(f"--cell {options.cell}: window models use fixed input scaling (no online normalisation)")
    if options.shrinkage and not options.residual:
        raise ConversionError("--shrinkage needs a residual model (it pulls the predicted change towards 0)")
    if options.forecast_guard is not None and not (math.isfinite(options.forecast_guard) and options.forecast_guard > 0):
        raise ConversionError(f"--forecast-guard {options.forecast_guard:g}: expected a half-life > 0 messages "
                              "(--no-forecast-guard turns it off)")


def _evaluate(final, prepared, options: TrainOptions, profile: DataProfile, scale, offset, window: int,
              history: dict):
    """Shrinkage (if on) and the skill report per series. Returns (model to save, evaluation dict)."""
    window_arg = window if options.cell in WINDOW_CELLS else None
    forecasts = [train_skill.sensor_forecast(final, p, window_arg) for p in prepared]
    lags, reused = profile.season_lags(), options.holdout_fraction <= 0
    evaluation: dict = {}
    if options.shrinkage:
        factors = train_skill.fit_shrinkage(forecasts, prepared, options.horizon)       # (H*T,)
        unshrunk = [train_skill.tail_report(f, p, options.horizon, lags, reused) for f, p in zip(forecasts, prepared)]
        evaluation["shrinkage"] = {"factors": [round(float(a), 4) for a in factors],
                                   "skill_min_without": [r["skill_min"] for r in unshrunk]}
        forecasts = [train_skill.shrink(f, p, factors, options.horizon) for f, p in zip(forecasts, prepared)]
        final = _with_output_scaling(_without_output_scaling(final), scale * factors, offset * factors)
    halflife = guard_halflife(options)
    if halflife is not None:                       # what serve publishes (daemon/model/forecast_guard.py)
        n_targets = len(options.value_columns)
        forecasts = [guarded_sequence(halflife, f, p.values,
                                      p.unit_scale[:, :n_targets] if options.online_normalization else None)
                     for f, p in zip(forecasts, prepared)]
    evaluation["skill"] = [train_skill.tail_report(f, p, options.horizon, lags, reused)
                           for f, p in zip(forecasts, prepared)]
    if options.report_dir:
        from .train_plots import write_training_report
        name = os.path.splitext(os.path.basename(options.out))[0]
        evaluation["report_png"] = write_training_report(
            options.report_dir, name, prepared[0].values, forecasts[0], evaluation["skill"][0]["first_row"],
            options.horizon, lags, history)
    return final, evaluation


def _without_output_scaling(final):
    import keras

    return keras.Model(final.input, final.get_layer("output_scaling").input, name=final.name)


def train(options: TrainOptions) -> dict:
    _check(options)
    csvs = (options.csv,) if isinstance(options.csv, str) else tuple(options.csv)
    series_list = [load(csv, options) for csv in csvs]
    profile, choices = _profile(series_list, options)
    features, window = _decide(options, profile, choices)
    prepared = [prepare(s, csv, options, features, window) for s, csv in zip(series_list, csvs)]
    import keras

    keras.utils.set_random_seed(options.seed)
    y_train_all = np.concatenate([p.y[:p.val_start] for p in prepared])
    offset, scale = y_train_all.mean(axis=0), y_train_all.std(axis=0) + 1e-6
    model = build_model(dataclasses.replace(options, window=window), len(features),
                        len(options.value_columns))
    if not options.online_normalization:
        model.get_layer("input_scaling").adapt(np.concatenate([p.x[:p.val_start] for p in prepared])[None])
    window_model = options.cell in WINDOW_CELLS
    history = _fit(model, options, window_training_sets(prepared, offset, scale, window, window_model))
    final, evaluation = _evaluate(_with_output_scaling(model, scale, offset), prepared, options, profile,
                                  scale, offset, window, history)
    os.makedirs(os.path.dirname(os.path.abspath(options.out)) or ".", exist_ok=True)
    final.save(options.out)
    meta = {
        "csv": os.path.abspath(csvs[0]), "csvs": [os.path.abspath(c) for c in csvs],
        "time_column": options.time_column,
        "value_columns": list(options.value_columns), "features": list(features),
        "targets": list(options.value_columns), "horizon": options.horizon, "window": window,
        "output_residual": options.residual,
        "rows": options.rows, "cell": options.cell, "units": options.units, "layers": options.layers,
        **({"window_task": "forecast", "window_output": "per_window", "merge_mode": options.merge_mode}
           if window_model else {}),
        "epochs_run": len(history["loss"]),
        "val_loss_scaled": float(min(history["val_loss"])),
        "history": {k: [round(float(v), 6) for v in vs] for k, vs in history.items()},
        "data_profile": profile.to_json(), "choices": choices,
        "splits": [{"val_start": p.val_start, "test_start": p.test_start, "rows": int(p.values.shape[0])}
                   for p in prepared],
        **evaluation,
    }
    if guard_halflife(options) is not None:
        meta["forecast_guard"] = {"halflife_steps": guard_halflife(options)}
    if options.online_normalization:
        meta["input_scaling"] = {"mode": "online", "halflife_steps": options.halflife_steps,
                                 "clip": OnlineScaler.DEFAULT_CLIP, "min_scale": OnlineScaler.DEFAULT_MIN_SCALE}
    with open(options.out + ".json", "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)
    return meta
