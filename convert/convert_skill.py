"""The skill report of a converted model (what runs on the device, e.g. int8) on the rows
`statecast train` held back: the same rows and baselines as train's own report."""
from __future__ import annotations

import os

import numpy as np

from statecast.daemon.model.features import assemble_inputs
from statecast.daemon.model.forecast_guard import guarded_sequence
from statecast.daemon.model.scaling import IoScaling
from statecast.daemon.tools.series_csv import SeriesError, read_series

from . import parity, skill
from .errors import ConversionError


def season_lags(meta: dict) -> dict[str, int]:
    periods = meta.get("data_profile", {}).get("periods", [])
    return {p["name"]: p["lag_samples"] for p in periods if p.get("found")}


def published_forecast(step_model, x_raw: np.ndarray, values: np.ndarray) -> np.ndarray:
    """What serve publishes over one stream: the step model's forecast, through the model's
    forecast guard if its manifest has one."""
    forecast = parity.run_step_model(step_model, x_raw)
    guard = step_model.manifest.raw.get("forecast_guard")
    if guard is None:
        return forecast
    scaling = IoScaling(step_model.manifest)
    scales = scaling.sequence(x_raw)[2]
    target_scales = None if scales is None else scales[:, scaling.base_index[: values.shape[1]]]
    return guarded_sequence(float(guard["halflife_steps"]), forecast, values, target_scales)


def converted_skill(step_model, meta: dict, features, targets, horizon: int) -> dict:
    """-> {"report": per-step figures, "line": one line, "train_line": train's own line}."""
    csv = meta["csvs"][0]
    try:
        series = read_series(csv, meta.get("time_column", "timestamp"), tuple(meta["value_columns"]), meta.get("rows"))
    except SeriesError as error:
        raise ConversionError(f"skill report: {error}") from None
    x_raw = assemble_inputs(series.timestamps, series.values, tuple(features), series.columns).astype(np.float32)
    values = series.values[:, [series.columns.index(t) for t in targets]]                # (rows, T)
    forecast = published_forecast(step_model, x_raw, values)                              # (rows, H*T)
    split = meta["splits"][0]
    reused = split["test_start"] >= split["rows"] - horizon
    start = split["val_start"] if reused else split["test_start"]
    report = skill.horizon_errors(forecast, values, start, values.shape[0], horizon, season_lags(meta))
    report["tail"] = ("validation part, reused" if reused else "held-back tail, never trained or validated on") + \
        f" of {os.path.basename(csv)}"
    label = f"{step_model.manifest.quantization}"
    train_report = (meta.get("skill") or [None])[0]
    return {"report": report, "line": skill.skill_line(report, label),
            "train_line": skill.skill_line(train_report, "keras") if train_report else None}
