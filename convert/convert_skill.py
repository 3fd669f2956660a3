"""The skill report of a converted model (what runs on the device, e.g. int8) on the rows
`statecast train` held back: the same rows and baselines as train's own report."""
from __future__ import annotations

import os

import numpy as np

from statecast.daemon.model.features import assemble_inputs
from statecast.daemon.tools.series_csv import SeriesError, read_series

from . import parity, skill
from .errors import ConversionError


def season_lags(meta: dict) -> dict[str, int]:
    periods = meta.get("data_profile", {}).get("periods", [])
    return {p["name"]: p["lag_samples"] for p in periods if p.get("found")}


def converted_skill(step_model, meta: dict, features, targets, horizon: int) -> dict:
    """-> {"report": per-step figures, "line": one line, "train_line": train's own line}."""
    csv = meta["csvs"][0]
    try:
        series = read_series(csv, meta.get("time_column", "timestamp"), tuple(meta["value_columns"]), meta.get("rows"))
    except SeriesError as error:
        raise ConversionError(f"skill report: {error}") from None
    x_raw = assemble_inputs(series.timestamps, series.values, tuple(features), series.columns).astype(np.float32)
    values = series.values[:, [series.columns.index(t) for t in targets]]                # (rows, T)
    forecast = parity.run_step_model(step_model, x_raw)                                   # (rows, H*T)
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
