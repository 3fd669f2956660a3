"""After training: forecasts in sensor units over whole series, the per-horizon shrinkage of the
predicted change, and the skill report on the held-back tail.

Shrinkage: a residual model forecasts last + change. On the validation part we fit, per output,
a in [0, 1] minimising sum (true change - a * predicted change)^2, i.e. we pull an over-confident
change towards persistence. a multiplies the output Rescaling's scale and offset, so the device
computes exactly the shrunk forecast at no cost.
"""
from __future__ import annotations

import numpy as np

from . import skill
from .train_data import Prepared


def sensor_forecast(model, p: Prepared, window: int | None = None) -> np.ndarray:
    """Model outputs (rows', H*T) in sensor units, state carried from row 0 as on the device.

    window: for a window model, the forecast made from each window of the last `window` rows
    (rows before the validation part, which are never evaluated, stay NaN)."""
    if window is None:
        out = np.asarray(model.predict(p.x[None], batch_size=1, verbose=0))[0]     # (rows', H*T)
    else:
        first = max(p.val_start - window + 1, 0)
        ends = np.arange(first + window - 1, p.x.shape[0])
        windows = np.stack([p.x[e - window + 1:e + 1] for e in ends])             # (n, W, F)
        out = np.full(p.y.shape, np.nan)
        out[ends] = np.asarray(model.predict(windows, batch_size=256, verbose=0))
    return p.base + out * p.unit_scale


def _last_values(p: Prepared, horizon: int) -> np.ndarray:
    return np.tile(p.values[: p.y.shape[0]], horizon)                              # (rows', H*T)


def fit_shrinkage(forecasts: list[np.ndarray], prepared: list[Prepared], horizon: int) -> np.ndarray:
    """-> (H*T,) factors in [0, 1], least squares on every series' validation part."""
    numerator, denominator = 0.0, 0.0
    for forecast, p in zip(forecasts, prepared):
        rows = slice(p.val_start, p.test_start)
        last = _last_values(p, horizon)[rows]
        truth = np.concatenate([p.values[k + 1:k + 1 + p.y.shape[0]] for k in range(horizon)], axis=1)[rows]
        predicted_change, true_change = forecast[rows] - last, truth - last
        numerator = numerator + (predicted_change * true_change).sum(axis=0)
        denominator = denominator + (predicted_change ** 2).sum(axis=0)
    return np.clip(numerator / np.maximum(denominator, 1e-12), 0.0, 1.0)


def shrink(forecast: np.ndarray, p: Prepared, factors: np.ndarray, horizon: int) -> np.ndarray:
    last = _last_values(p, horizon)
    return last + factors * (forecast - last)


def tail_report(forecast: np.ndarray, p: Prepared, horizon: int, season_lags: dict[str, int],
                reused_validation: bool) -> dict:
    rows = p.values.shape[0]
    report = skill.horizon_errors(forecast, p.values, p.test_start if not reused_validation else p.val_start,
                                  rows, horizon, season_lags)
    report["tail"] = ("validation part, reused: no separate held-back tail" if reused_validation
                      else "held-back tail, never trained or validated on")
    return report
