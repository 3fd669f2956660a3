"""Level signal: a shift of the stream's recent level that the forecaster follows step by step.

A forecaster that predicts the next value adapts to a slow drift or a small level change within
a few steps, so its residuals never grow. This signal compares a short mean of the values
(time constant `level_window` steps) with a long mean and spread (time constant `long_window`):
z = (short mean - long mean) / long std. How unusual |z| is for this stream is judged against
the stream's own history of |z| (its long mean and spread), as the anomaly likelihood does for
residuals: score = 1 - Q((|z| - mean |z|) / std |z|). A stream with a daily cycle has a large
|z| every day, so only a departure from its usual swing scores high. State: 6 floats.
"""
from __future__ import annotations

import math

from .surprise import gaussian_tail

SHORT, LONG, LONG_VAR, Z_MEAN, Z_VAR, SEEN = range(6)
MAX_Z = 1e6                 # bound |z| (a flat stream has a tiny spread)
MIN_Z_STD = 0.05            # floor for the spread of |z| (a steady stream)


class LevelSignal:
    name = "level"

    def size(self, settings) -> int:
        return 6

    def reset(self, stats, at: int, settings) -> None:
        for i in range(6):
            stats[at + i] = 0.0

    def update(self, stats, at: int, actual: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        if stats[at + SEEN] == 0.0:
            stats[at + SHORT] = stats[at + LONG] = actual
        short_keep, long_keep = 1.0 - 1.0 / settings.level_window, 1.0 - 1.0 / settings.long_window
        short = short_keep * stats[at + SHORT] + (1.0 - short_keep) * actual
        long, long_var = stats[at + LONG], stats[at + LONG_VAR]
        spread = math.sqrt(long_var) if long_var > 0.0 else 0.0
        shift = short - long
        z = min(abs(shift) / spread, MAX_Z) if spread > 0.0 else (MAX_Z if shift != 0.0 else 0.0)
        score = 0.0
        if ready:
            z_std = max(math.sqrt(max(stats[at + Z_VAR], 0.0)), MIN_Z_STD)
            score = 1.0 - gaussian_tail((z - stats[at + Z_MEAN]) / z_std)
        # learn: the long level and spread, and the usual size of |z|
        stats[at + SHORT] = short
        delta = actual - long
        stats[at + LONG] = long + (1.0 - long_keep) * delta
        stats[at + LONG_VAR] = long_keep * (long_var + (1.0 - long_keep) * delta * delta)
        z_delta = z - stats[at + Z_MEAN]
        stats[at + Z_MEAN] += (1.0 - long_keep) * z_delta
        stats[at + Z_VAR] = long_keep * (stats[at + Z_VAR] + (1.0 - long_keep) * z_delta * z_delta)
        stats[at + SEEN] = 1.0
        return score, (1 if shift > 0.0 else -1)
