"""Stuck signal: a sensor that repeats the same value longer than this stream ever has.

A frozen reading is the one fault a forecaster's residual cannot see: the value is perfectly
predictable. What is normal differs by stream: a noisy analogue reading never repeats a value, a
quantised or slow one repeats it for dozens of steps. So the signal learns, like the range signal
does for values, the longest run of unchanged values the stream has shown, and a run that
outlasts it scores 1: a run of r unchanged steps (r repeats of the value before) scores once r
reaches (1 + stuck_margin) x the longest run so far and either
- is at least stuck_min_steps long, or
- (with stuck_rare_decades > 0) is at least RARE_RUN_FLOOR long and one the stream's own rate of
  repeats makes improbable: p^r < 10^-stuck_rare_decades, with p = (repeats + 1) / (values + 2)
  over the values before this one (the count of values is the one the scorer keeps with the
  stream's extremes, extremes.py).
The minimum keeps a stream that has not repeated a value yet from alerting on its first few
repeats. The second way lets a stream that seldom repeats a value (a noisy analogue reading)
alert on a short frozen run, while one that repeats values all the time (a quantised channel)
needs a long one: one fixed minimum cannot serve both (on the development data a minimum of 48
kept SMAP's quantised channels quiet and missed MSL's frozen readings of 24 to 45 steps).
A run that has scored scores no more (a frozen reading is one event) and, once it ends, counts
towards the longest run like any other: the stream has now shown it. Only the past and this
value count; the runs before `min_steps` (the scorer's warm-up) are learnt but never scored. Nor
is a stream's first run, the one still going since its first value: a stream that has never
changed has shown no run to outlast (SMAP and MSL have channels that hold one value from their
first reading past the warm-up; they alerted the moment it ended). LONGEST is -1 until the first
change. The cost: a sensor frozen from its very first reading is not caught by this signal.
State: 4 floats, 5 with stuck_rare_decades > 0 (the count of repeats).
"""
from __future__ import annotations

import math

from . import extremes

LAST, RUN, LONGEST, REPORTED = range(4)   # REPORTED: 1.0 once this run has scored
REPEATS = 4                                # with stuck_rare_decades > 0: repeats among the values seen
NO_RUN_YET = -1.0                          # LONGEST before the stream's first change of value
RARE_RUN_FLOOR = 12                        # an improbable run still needs this many repeats (the rate is an estimate)
LOG10 = math.log(10.0)


class StuckSignal:
    name = "stuck"

    def size(self, settings) -> int:
        return 5 if settings.stuck_rare_decades > 0 else 4

    def reset(self, stats, at: int, settings) -> None:
        stats[at + LAST] = math.nan
        stats[at + RUN] = stats[at + REPORTED] = 0.0
        stats[at + LONGEST] = NO_RUN_YET
        if settings.stuck_rare_decades > 0:
            stats[at + REPEATS] = 0.0

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        counting = settings.stuck_rare_decades > 0
        score = 0.0
        if actual == stats[at + LAST]:
            run = stats[at + RUN] = stats[at + RUN] + 1.0
            longest = stats[at + LONGEST]
            if (ready and stats[at + REPORTED] == 0.0 and longest != NO_RUN_YET
                    and run >= (1.0 + settings.stuck_margin) * longest
                    and (run >= settings.stuck_min_steps or (counting and self._rare(stats, at, run, settings)))):
                stats[at + REPORTED], score = 1.0, 1.0
            if counting:
                stats[at + REPEATS] += 1.0
        elif not math.isnan(stats[at + LAST]):          # a change of value (not the first value)
            stats[at + LONGEST] = max(stats[at + LONGEST], stats[at + RUN])
            stats[at + RUN] = stats[at + REPORTED] = 0.0
        stats[at + LAST] = actual
        return score, 0

    @staticmethod
    def _rare(stats, at: int, run: float, settings) -> bool:
        """Is a run this long improbable at the stream's rate of repeats (before this value)?"""
        if run < RARE_RUN_FLOOR:
            return False
        repeat_rate = (stats[at + REPEATS] + 1.0) / (stats[extremes.SEEN] + 2.0)
        return run * math.log(repeat_rate) < -settings.stuck_rare_decades * LOG10
