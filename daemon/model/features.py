"""Derived input features. Calendar features come from the message timestamp, so the device
computes them exactly as training did."""
from __future__ import annotations

import numpy as np

SECONDS_PER_DAY = 86400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
# 1970-01-01 was a Thursday; shift so that the weekly phase starts on Monday 00:00 UTC.
_MONDAY_OFFSET_SECONDS = 3 * SECONDS_PER_DAY


def calendar_features(timestamps: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(rows,) epoch seconds -> (rows, len(names)) for names among tod_sin/tod_cos/dow_sin/dow_cos."""
    t = np.asarray(timestamps, np.float64)
    day_phase = 2 * np.pi * (t % SECONDS_PER_DAY) / SECONDS_PER_DAY
    week_phase = 2 * np.pi * ((t + _MONDAY_OFFSET_SECONDS) % SECONDS_PER_WEEK) / SECONDS_PER_WEEK
    table = {"tod_sin": np.sin(day_phase), "tod_cos": np.cos(day_phase),
             "dow_sin": np.sin(week_phase), "dow_cos": np.cos(week_phase)}
    return np.stack([table[name] for name in names], axis=-1) if names else np.zeros((len(t), 0))


def assemble_inputs(timestamps: np.ndarray, values: np.ndarray, features: tuple[str, ...],
                    value_columns: tuple[str, ...]) -> np.ndarray:
    """Build (rows, features) in the manifest's feature order from values and timestamps."""
    columns = []
    calendar = [f for f in features if f not in value_columns]
    derived = calendar_features(timestamps, tuple(calendar)) if calendar else None
    for name in features:
        if name in value_columns:
            columns.append(values[:, value_columns.index(name)])
        else:
            columns.append(derived[:, calendar.index(name)])
    return np.stack(columns, axis=-1)
