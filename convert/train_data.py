"""From a CSV to training arrays, and back from model outputs to forecasts in sensor units.

Rows are split in time order: training | validation (early stopping, learning-rate schedule,
shrinkage fit) | held-back tail (the skill report; the model never sees it while training).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from statecast.daemon.model.features import assemble_inputs
from statecast.daemon.model.scaling import OnlineScaler
from statecast.daemon.tools.series_csv import Series, SeriesError, read_series

from .errors import ConversionError


@dataclass(frozen=True)
class Prepared:
    """One series ready to train on; rows' = rows - horizon (the last rows have no full target)."""
    values: np.ndarray        # (rows, T) sensor units
    x: np.ndarray             # (rows', F) model inputs before the model's own input scaling
    y: np.ndarray             # (rows', H*T) training targets before the output scaling
    base: np.ndarray          # (rows', H*T) forecast = base + model output * unit_scale
    unit_scale: np.ndarray    # (rows', H*T)
    val_start: int
    test_start: int


def make_windows(x: np.ndarray, y: np.ndarray, window: int, stride: int):
    """(rows, F), (rows, O) -> (n, window, F), (n, window, O), windows starting every `stride` rows."""
    starts = np.arange(0, x.shape[0] - window + 1, stride)
    return np.stack([x[s:s + window] for s in starts]), np.stack([y[s:s + window] for s in starts])


def future_targets(values: np.ndarray, horizon: int) -> np.ndarray:
    """(rows, T) -> (rows - horizon, horizon * T): row t holds values t+1..t+horizon, step-major."""
    rows = values.shape[0] - horizon
    return np.concatenate([values[k + 1:k + 1 + rows] for k in range(horizon)], axis=1)


def load(csv: str, options) -> Series:
    try:
        return read_series(csv, options.time_column, options.value_columns, options.rows)
    except SeriesError as error:
        raise ConversionError(str(error)) from None


def split_points(rows: int, options) -> tuple[int, int]:
    """-> (val_start, test_start) in rows'; with holdout_fraction 0 the tail is the validation part."""
    test_start = int(rows * (1 - options.holdout_fraction))
    val_start = int(rows * (1 - options.holdout_fraction - options.validation_fraction))
    return val_start, test_start


def _online_targets(values: np.ndarray, y: np.ndarray, x: np.ndarray, options):
    """Online normalisation exactly as the device computes it: z inputs, targets in running scales."""
    scaler = OnlineScaler(values.shape[1], options.halflife_steps)
    z, centres, scales = (np.asarray(c) for c in zip(*(scaler.observe(row) for row in values.tolist())))
    x[:, : values.shape[1]] = z
    rows = y.shape[0]
    base = np.tile(values[:rows], options.horizon) if options.residual else np.tile(centres[:rows], options.horizon)
    unit_scale = np.tile(scales[:rows], options.horizon)
    # Like the inputs, targets are bounded at +-clip scales: a stream that starts flat has a
    # floor-sized scale, and its first change would otherwise be a target of thousands that
    # dominates the squared loss of every other series.
    y = np.clip((y - base) / unit_scale, -OnlineScaler.DEFAULT_CLIP, OnlineScaler.DEFAULT_CLIP)
    return y, base, unit_scale


def prepare(series: Series, csv: str, options, features: tuple[str, ...], window: int) -> Prepared:
    values = series.values.astype(np.float64)                            # (rows, T)
    x = assemble_inputs(series.timestamps, series.values, features, series.columns).astype(np.float32)
    y = future_targets(values, options.horizon)                          # (rows', H*T)
    val_start, test_start = split_points(y.shape[0], options)
    if min(val_start, test_start - val_start) < window:
        raise ConversionError(f"{csv}: {values.shape[0]} rows leave fewer than window {window} rows for "
                              "training or validation (use more rows or a shorter --window)")
    if options.online_normalization:
        y, base, unit_scale = _online_targets(values, y, x, options)
    else:
        base = np.tile(values[: y.shape[0]], options.horizon) if options.residual else np.zeros_like(y)
        unit_scale = np.ones_like(y)
        y = y - base
    return Prepared(values, x[: y.shape[0]], y.astype(np.float32), base, unit_scale, val_start, test_start)


def window_training_sets(prepared: list[Prepared], offset, scale, window: int, window_model: bool):
    """Scaled training and validation windows of every series, concatenated."""
    # A window model learns one target per window (its last step's), so it gets every window.
    stride = 1 if window_model else max(1, window // 8)
    val_stride = max(1, window // 8) if window_model else window
    train_parts, val_parts = [], []
    for p in prepared:
        y_scaled = (p.y - offset) / scale                                 # train in scaled target units
        train_parts.append(make_windows(p.x[:p.val_start], y_scaled[:p.val_start], window, stride))
        val_parts.append(make_windows(p.x[p.val_start:p.test_start], y_scaled[p.val_start:p.test_start],
                                      window, val_stride))
    x_train, y_train = (np.concatenate(part) for part in zip(*train_parts))
    x_val, y_val = (np.concatenate(part) for part in zip(*val_parts))
    if window_model:
        y_train, y_val = y_train[:, -1], y_val[:, -1]                     # (n, H*T)
    return x_train, y_train, x_val, y_val
