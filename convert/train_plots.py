"""`statecast train --report-dir D`: one PNG with the held-back tail (actual vs the forecast made
1 and H steps earlier, next to persistence and seasonal-naive) and the loss curves.
matplotlib is the optional `plot` extra; nothing on the device needs it."""
from __future__ import annotations

import os

import numpy as np

from .errors import ConversionError

MAX_POINTS = 600              # the last rows of the tail: enough to see single steps


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConversionError("--report-dir needs matplotlib: pip install 'statecast[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _tail_panel(axis, values, forecast, start, step, n_targets, season_lags, horizon):
    """Forecasts made `step` rows before each target time, aligned to the target time."""
    rows = forecast.shape[0] + step                   # forecasts exist for origins < rows - H
    targets = np.arange(max(start + step, rows - MAX_POINTS), rows)                  # target rows
    origins = targets - step
    axis.plot(targets, values[targets, 0], color="black", lw=1.2, label="actual")
    axis.plot(targets, forecast[origins, (step - 1) * n_targets], color="tab:blue", lw=1, label="model")
    axis.plot(targets, values[origins, 0], color="tab:gray", lw=0.8, ls="--", label="persistence")
    for name, lag in season_lags.items():
        axis.plot(targets, values[targets - lag, 0], lw=0.8, ls=":", label=f"seasonal-naive ({name})")
    axis.set_title(f"held-back tail: forecast made {step} step(s) ahead")
    axis.legend(loc="upper left", fontsize=7)


def write_training_report(directory: str, name: str, values: np.ndarray, forecast: np.ndarray, start: int,
                          horizon: int, season_lags: dict[str, int], history: dict) -> str:
    """values (rows, T), forecast (rows - H, H*T) in sensor units; -> the PNG's path."""
    plt = _pyplot()
    steps = sorted({1, horizon})
    figure, axes = plt.subplots(len(steps) + 1, 1, figsize=(11, 3.2 * (len(steps) + 1)))
    for axis, step in zip(axes, steps):
        _tail_panel(axis, values, forecast, start, step, values.shape[1], season_lags, horizon)
    loss_axis = axes[-1]
    loss_axis.plot(history["loss"], label="training loss")
    loss_axis.plot(history["val_loss"], label="validation loss")
    loss_axis.set_yscale("log")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_title("loss (MSE, scaled target units)")
    loss_axis.legend(fontsize=7)
    figure.tight_layout()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}-training-report.png")
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
