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
from statecast.daemon.series_csv import SeriesError, read_series

from .errors import ConversionError

CELLS = ("lstm", "gru", "rnn")


@dataclass(frozen=True)
class TrainOptions:
    csv: str
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

    layer_type = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}[options.cell]
    extra = {"reset_after": options.gru_reset_after} if options.cell == "gru" else {}
    if options.cell == "rnn":
        extra = {"activation": options.rnn_activation}
    inputs = keras.Input((None, n_features), name="x")
    h = keras.layers.Normalization(name="input_scaling")(inputs)
    for index in range(options.layers):
        h = layer_type(options.units, return_sequences=True, name=f"{options.cell}_{index}", **extra)(h)
    h = keras.layers.Dense(options.horizon * n_targets, name="forecast_head")(h)
    return keras.Model(inputs, h, name=f"statecast_{options.cell}")


def train(options: TrainOptions) -> dict:
    if options.cell not in CELLS:
        raise ConversionError(f"--cell {options.cell}: expected one of {', '.join(CELLS)}")
    if not 1 <= options.layers <= 3:
        raise ConversionError(f"--layers {options.layers}: expected 1 to 3")
    try:
        series = read_series(options.csv, options.time_column, options.value_columns, options.rows)
    except SeriesError as error:
        raise ConversionError(str(error)) from None
    if series.values.shape[0] < options.window * 4:
        raise ConversionError(f"{options.csv}: {series.values.shape[0]} rows is too few for window {options.window}")
    import keras

    keras.utils.set_random_seed(options.seed)
    features = tuple(options.value_columns) + (CALENDAR_FEATURES if options.calendar else ())
    x_all = assemble_inputs(series.timestamps, series.values, features, series.columns).astype(np.float32)
    targets_raw = series.values.astype(np.float32)                       # (rows, T)
    y_all = future_targets(targets_raw, options.horizon)                 # (rows - H, H*T)
    if options.residual:
        y_all = y_all - np.tile(targets_raw[: y_all.shape[0]], options.horizon)
    x_all = x_all[: y_all.shape[0]]
    split = int(x_all.shape[0] * (1 - options.validation_fraction))
    offset = y_all[:split].mean(axis=0)
    scale = y_all[:split].std(axis=0) + 1e-6
    y_scaled = (y_all - offset) / scale                                   # train in scaled target units

    model = build_model(options, len(features), len(options.value_columns))
    model.get_layer("input_scaling").adapt(x_all[None, :split])
    stride = max(1, options.window // 8)
    x_train, y_train = make_windows(x_all[:split], y_scaled[:split], options.window, stride)
    x_val, y_val = make_windows(x_all[split:], y_scaled[split:], options.window, options.window)
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
        "csv": os.path.abspath(options.csv), "time_column": options.time_column,
        "value_columns": list(options.value_columns), "features": list(features),
        "targets": list(options.value_columns), "horizon": options.horizon, "window": options.window,
        "output_residual": options.residual,
        "rows": options.rows, "cell": options.cell, "units": options.units, "layers": options.layers,
        "epochs_run": len(history.history["loss"]),
        "val_loss_scaled": float(min(history.history["val_loss"])),
    }
    with open(options.out + ".json", "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)
    return meta
