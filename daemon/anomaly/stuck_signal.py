"""Stuck signal: a sensor that repeats the same value longer than this stream ever has.

A frozen reading is the one fault a forecaster's residual cannot see: the value is perfectly
predictable. What is normal differs by stream: a noisy analogue reading never repeats a value, a
quantised or slow one repeats it for dozens of steps. So the signal learns, like the range signal
does for values, the longest run of unchanged values the stream has shown, and a run that
outlasts it scores 1: a run of r unchanged steps (r repeats of the value before) scores once r
reaches max(stuck_min_steps, (1 + stuck_margin) x the longest run so far). The minimum keeps a
stream that has not repeated a value yet from alerting on its first few repeats. A run that has
scored scores no more (a frozen reading is one event) and, once it ends, counts towards the
longest run like any other: the stream has now shown it. Only the past and this value count;
the runs before `min_steps` (the scorer's warm-up) are learnt but never scored. Nor is a stream's
first run, the one still going since its first value: a stream that has never changed has shown
no run to outlast (SMAP and MSL have channels that hold one value from their first reading past
the warm-up; they alerted the moment it ended). LONGEST is -1 until the first change. The cost:
a sensor frozen from its very first reading is not caught by this signal.
State: 4 floats.
"""
from __future__ import annotations

import math

LAST, RUN, LONGEST, REPORTED = range(4)   # REPORTED: 1.0 once this run has scored
NO_RUN_YET = -1.0                          # LONGEST before the stream's first change of value


class StuckSignal:
    name = "stuck"

    def size(self, settings) -> int:
        return 4

    def reset(self, stats, at: int, settings) -> None:
        stats[at + LAST] = math.nan
        stats[at + RUN] = stats[at + REPORTED] = 0.0
        stats[at + LONGEST] = NO_RUN_YET

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        score = 0.0
        if actual == stats[at + LAST]:
            run = stats[at + RUN] = stats[at + RUN] + 1.0
            bound = max(float(settings.stuck_min_steps), (1.0 + settings.stuck_margin) * stats[at + LONGEST])
            if ready and stats[at + REPORTED] == 0.0 and run >= bound and stats[at + LONGEST] != NO_RUN_YET:
                stats[at + REPORTED], score = 1.0, 1.0
        elif not math.isnan(stats[at + LAST]):          # a change of value (not the first value)
            stats[at + LONGEST] = max(stats[at + LONGEST], stats[at + RUN])
            stats[at + RUN] = stats[at + REPORTED] = 0.0
        stats[at + LAST] = actual
        return score, 0
