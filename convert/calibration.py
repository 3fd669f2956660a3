"""Calibration data for full-integer quantization: the states the float step model really visits.

Zeros or random noise give the quantizer the wrong ranges (an LSTM cell state wanders far
outside [-1, 1] on real data), so we run the float32 step model over real sequences, several
in parallel from a cold start, and sample (x, states) at the steps it visits.
"""
from __future__ import annotations

import numpy as np

from statecast.daemon.model.scaling import IoScaling
from statecast.daemon.model.step_model import StepModel


def visited_states(model: StepModel, x_scaled: np.ndarray, lanes: int = 8, samples: int = 1024,
                   seed: int = 0) -> list[dict[str, np.ndarray]]:
    """x_scaled: (rows, features). Returns `samples` signature-input dicts of batch 1."""
    rows = x_scaled.shape[0]
    lanes = max(1, min(lanes, rows // 64 or 1))
    length = rows // lanes
    lane_inputs = x_scaled[: lanes * length].reshape(lanes, length, -1)   # (lanes, steps, features)
    states = model.zero_states(lanes)
    visited_x, visited_states_ = [], [[] for _ in states]
    for t in range(length):
        x_t = lane_inputs[:, t, :].astype(np.float32)                     # (lanes, features)
        visited_x.append(x_t)
        for store, state in zip(visited_states_, states):
            store.append(state)
        _, states = model.step(x_t, states)
    all_x = np.concatenate(visited_x)                                     # (steps*lanes, features)
    all_states = [np.concatenate(store) for store in visited_states_]
    pick = np.random.default_rng(seed).choice(all_x.shape[0], size=min(samples, all_x.shape[0]), replace=False)
    manifest = model.manifest
    return [{manifest.input: all_x[i:i + 1],
             **{pair.input: s[i:i + 1] for pair, s in zip(manifest.state, all_states)}} for i in pick]


def pooled_visited_states(model: StepModel, series_inputs: list[np.ndarray], samples: int = 1024,
                          min_per_series: int = 512) -> list[dict[str, np.ndarray]]:
    """Visited states pooled over several series, each x_raw (rows, features) in sensor units.

    One stream's states are not another's: calibrated on machine_temperature alone, models/default's
    int8 one-step output differed from float32's by 0.84 of the float output's spread, averaged over
    the 18 NAB development files; calibrated on all 18, by 0.26 (bench/int8_calibration.py). Each
    series is scaled on its own (online scaling starts afresh per stream, as in the daemon); the
    samples are split evenly, at least `min_per_series` each. min/max calibration fits the ranges to
    the extreme states drawn: with 64 per series, three draws of models/default-int8 scored up to
    3.3 NAB points apart on MSL; with 512, two draws stayed within 0.3 of float32 everywhere."""
    scaling = IoScaling(model.manifest)
    per_series = max(min_per_series, samples // max(1, len(series_inputs)))
    pooled = []
    for index, x_raw in enumerate(series_inputs):
        pooled += visited_states(model, scaling.sequence(x_raw)[0], samples=per_series, seed=index)
    return pooled
