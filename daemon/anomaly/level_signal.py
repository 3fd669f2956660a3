"""Level signal: a shift of the stream's recent level that the forecaster follows step by step.

A forecaster that predicts the next value adapts to a slow drift or a small level change within
a few steps, so its residuals never grow. This signal compares a short mean of the values
(time constant `level_window` steps) with a long mean and spread (time constant `long_window`):
z = (short mean - long mean) / long std. How unusual z is for this stream is judged against the
stream's own history of z (its long root mean square), with a margin: score = 1 - 2 Q(|z| /
(LEVEL_MARGIN * rms z)). The short mean is strongly autocorrelated, so its excursions come in
runs, and a stream with a daily cycle swings every day: only a departure of several times its
usual swing scores high. State: 5 floats.
"""
from __future__ import annotations

import math

from .surprise import gaussian_tail

SHORT, LONG, LONG_VAR, Z_SQ, SEEN = range(5)   # SEEN: values seen
LEVEL_MARGIN = 2.0          # |z| of 2 x 3 rms swings for the usual alert threshold (0.997)
MAX_Z = 1e6                 # bound |z| (a flat stream has a tiny spread)


class LevelSignal:
    name = "level"

    def size(self, settings) -> int:
        return 5

    def reset(self, stats, at: int, settings) -> None:
        for i in range(5):
            stats[at + i] = 0.0

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        if stats[at + SEEN] == 0.0:
            stats[at + SHORT] = stats[at + LONG] = actual
        short_keep, long_keep = 1.0 - 1.0 / settings.level_window, 1.0 - 1.0 / settings.long_window
        short = short_keep * stats[at + SHORT] + (1.0 - short_keep) * actual
        long, long_var, seen = stats[at + LONG], stats[at + LONG_VAR], stats[at + SEEN]
        shift = short - long
        # exponential averages started from zero: divide by their weight so far (bias correction)
        spread = math.sqrt(long_var / (1.0 - long_keep ** seen)) if seen > 0.0 else 0.0
        z = max(min(shift / spread, MAX_Z), -MAX_Z) if spread > 0.0 else 0.0
        score = 0.0
        settled = seen - settings.level_window                  # values since the long spread meant something
        if ready and settled > 0.0 and stats[at + Z_SQ] > 0.0:
            rms_z = math.sqrt(stats[at + Z_SQ] / (1.0 - long_keep ** settled))
            score = 1.0 - 2.0 * gaussian_tail(abs(z) / (LEVEL_MARGIN * rms_z))
        # learn: the long level and spread, and the usual size of z
        stats[at + SHORT] = short
        delta = actual - long
        stats[at + LONG] = long + (1.0 - long_keep) * delta
        stats[at + LONG_VAR] = long_keep * (long_var + (1.0 - long_keep) * delta * delta)
        if settled >= 0.0:
            stats[at + Z_SQ] = long_keep * stats[at + Z_SQ] + (1.0 - long_keep) * z * z
        stats[at + SEEN] += 1.0
        return score, (1 if shift > 0.0 else -1)
