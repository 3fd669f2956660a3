"""`statecast train`: a streaming forecaster from a sensor CSV.

The model is trained sequence-to-sequence (a forecast at every step of each window), which is
exactly what the step model computes on a live stream. Input normalisation is a Keras
Normalization layer and output scaling a Rescaling layer, so the .keras file is self-contained
in sensor units and the converter moves both into the manifest.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from statecast.daemon.artifact import CALENDAR_FEATURES
from statecast.daemon.features import assemble_inputs
from statecast.daemon.scaling import OnlineScaler
from statecast.daemon.series_csv import SeriesError, read_series

from .errors import ConversionError

CELLS = ("lstm", "gru", "rnn", "bilstm")
WINDOW_CELLS = ("bilstm",)    # window models (issue 8): one forecast per window of the last W steps


@dataclass(frozen=True)
class TrainOptions:
    csv: str | tuple[str, ...]
    out: str
    cell: str = "lstm"
    units: int = 32
    layers: int = 1
    window: int = 64
    horizon: int = 1
    time_column: str = "timestamp"
    value_columns: tuple[str, ...] = ("value",)
    rows: str | None = None
    calendar: bool = False
    epochs: int = 30
    batch_size: int = 64
    validation_fraction: float = 0.2
    patience: int = 4
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


def make_windows(x: np.ndarray, y: np.ndarray, window: int, stride: int):
    """(rows, F), (rows, O) -> (n, window, F), (n, window, O), windows starting every `stride` rows."""
    starts = np.arange(0, x.shape[0] - window + 1, stride)
    return np.stack([x[s:s + window] for s in starts]), np.stack([y[s:s + window] for s in starts])


def future_targets(values: np.ndarray, horizon: int) -> np.ndarray:
    """(rows, T) -> (rows - horizon, horizon * T): row t holds values t+1..t+horizon, step-major."""
    rows = values.shape[0] - horizon
    return np.concatenate([values[k + 1:k + 1 + rows] for k in range(horizon)], axis=1)


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


def _prepare(csv: str, options: TrainOptions, features: tuple[str, ...]):
    """One CSV -> (inputs (rows, F), targets (rows, H*T)) before the model's own scaling."""
    try:
        series = read_series(csv, options.time_column, options.value_columns, options.rows)
    except SeriesError as error:
        raise ConversionError(str(error)) from None
    if series.values.shape[0] < options.window * 4:
        raise ConversionError(f"{csv}: {series.values.shape[0]} rows is too few for window {options.window}")
    x = assemble_inputs(series.timestamps, series.values, features, series.columns).astype(np.float32)
    values = series.values.astype(np.float64)                            # (rows, T)
    y = future_targets(values, options.horizon)                          # (rows - H, H*T)
    base = np.zeros_like(y)
    if options.residual:
        base = np.tile(values[: y.shape[0]], options.horizon)
    if options.online_normalization:                                     # exactly what the device computes
        scaler = OnlineScaler(values.shape[1], options.halflife_steps)
        z, centres, scales = (np.asarray(c) for c in zip(*(scaler.observe(row) for row in values.tolist())))
        x[:, : values.shape[1]] = z
        if not options.residual:
            base = np.tile(centres[: y.shape[0]], options.horizon)
        y = (y - base) / np.tile(scales[: y.shape[0]], options.horizon)
        # Like the inputs, targets are bounded at +-clip scales: a stream that starts flat has a
        # floor-sized scale, and its first change would otherwise be a target of thousands that
        # dominates the squared loss of every other series.
        y = np.clip(y, -OnlineScaler.DEFAULT_CLIP, OnlineScaler.DEFAULT_CLIP)
    else:
        y = y - base
    return x[: y.shape[0]], y.astype(np.float32)


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


def train(options: TrainOptions) -> dict:
    if options.cell not in CELLS:
        raise ConversionError(f"--cell {options.cell}: expected one of {', '.join(CELLS)}")
    if not 1 <= options.layers <= 3:
        raise ConversionError(f"--layers {options.layers}: expected 1 to 3")
    if options.cell in WINDOW_CELLS and options.online_normalization:
        raise ConversionError(f"--cell {options.cell}: window models use fixed input scaling (no online normalisation)")
    csvs = (options.csv,) if isinstance(options.csv, str) else tuple(options.csv)
    features = tuple(options.value_columns) + (CALENDAR_FEATURES if options.calendar else ())
    prepared = [_prepare(csv, options, features) for csv in csvs]
    import keras

    keras.utils.set_random_seed(options.seed)
    # Time-ordered split per series: the last part of every series validates.
    splits = [int(x.shape[0] * (1 - options.validation_fraction)) for x, _ in prepared]
    y_train_all = np.concatenate([y[:k] for (_, y), k in zip(prepared, splits)])
    offset, scale = y_train_all.mean(axis=0), y_train_all.std(axis=0) + 1e-6
    model = build_model(options, len(features), len(options.value_columns))
    if not options.online_normalization:
        model.get_layer("input_scaling").adapt(np.concatenate([x[:k] for (x, _), k in zip(prepared, splits)])[None])
    window_model = options.cell in WINDOW_CELLS
    # A window model learns one target per window (its last step's), so it gets every window.
    stride = 1 if window_model else max(1, options.window // 8)
    val_stride = max(1, options.window // 8) if window_model else options.window
    train_parts, val_parts = [], []
    for (x, y), k in zip(prepared, splits):
        y_scaled = (y - offset) / scale                                  # train in scaled target units
        train_parts.append(make_windows(x[:k], y_scaled[:k], options.window, stride))
        val_parts.append(make_windows(x[k:], y_scaled[k:], options.window, val_stride))
    x_train, y_train = (np.concatenate(p) for p in zip(*train_parts))
    x_val, y_val = (np.concatenate(p) for p in zip(*val_parts))
    if window_model:
        y_train, y_val = y_train[:, -1], y_val[:, -1]                  # (n, H*T)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=options.epochs,
                        batch_size=options.batch_size, verbose=0, shuffle=True,
                        callbacks=[keras.callbacks.EarlyStopping(patience=options.patience,
                                                                 restore_best_weights=True)])
    # Fold the target scaling into the model as an output Rescaling layer (sensor units out).
    outputs = keras.layers.Rescaling(scale=scale.tolist(), offset=offset.tolist(), name="output_scaling")(model.output)
    final = keras.Model(model.input, outputs, name=model.name)
    os.makedirs(os.path.dirname(os.path.abspath(options.out)) or ".", exist_ok=True)
    final.save(options.out)
    meta = {
        "csv": os.path.abspath(csvs[0]), "csvs": [os.path.abspath(c) for c in csvs],
        "time_column": options.time_column,
        "value_columns": list(options.value_columns), "features": list(features),
        "targets": list(options.value_columns), "horizon": options.horizon, "window": options.window,
        "output_residual": options.residual,
        "rows": options.rows, "cell": options.cell, "units": options.units, "layers": options.layers,
        **({"window_task": "forecast", "window_output": "per_window", "merge_mode": options.merge_mode}
           if window_model else {}),
        "epochs_run": len(history.history["loss"]),
        "val_loss_scaled": float(min(history.history["val_loss"])),
    }
    if options.online_normalization:
        meta["input_scaling"] = {"mode": "online", "halflife_steps": options.halflife_steps,
                                 "clip": OnlineScaler.DEFAULT_CLIP, "min_scale": OnlineScaler.DEFAULT_MIN_SCALE}
    with open(options.out + ".json", "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)
    return meta
