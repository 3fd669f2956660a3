"""Drift signal: a stream that keeps setting new records, when it seldom did before.

A slow drift (a valve rig's temperature creeping down, a disk filling) passes the stream's
extremes by a hair at a time: each new low is within the range signal's margin of the last, so
the range signal learns it step by step and never fires, and the forecast follows it. What gives
it away is how often the stream sets a record. An ordinary stream, n values in, sets a new
extreme in each direction with probability about 1/n a step; a drifting one sets them again and
again. So the signal counts, per direction, the records of about the last `drift_window` steps
(an exponentially weighted count), and a record scores 1 when that count reaches
`drift_records` and its rate is more than `drift_rate_ratio` times the stream's own usual rate of
records in that direction: the exponentially weighted mean over `drift_long_window` steps, from
before this step, divided by the weight it has gathered (1 - (1 - 1/drift_long_window)^n), so a
young stream's frequent records count at their true rate, not diluted by the steps it has not
lived yet. A stream that always trends (a counter, a charging battery) sets records all the time
and is no news, and nor is a young stream showing its range. A record is a value beyond the
stream's extremes, which the scorer keeps for every signal (extremes.py). State: 4 floats.
"""
from __future__ import annotations

import math

from . import extremes

# The EW record counts (~drift_window steps) and the long-run EW means of records per step (not
# yet divided by their weight).
RECENT_LOW, RECENT_HIGH, USUAL_LOW, USUAL_HIGH = range(4)


class DriftSignal:
    name = "drift"

    def size(self, settings) -> int:
        return 4

    def reset(self, stats, at: int, settings) -> None:
        for index in (RECENT_LOW, RECENT_HIGH, USUAL_LOW, USUAL_HIGH):
            stats[at + index] = 0.0

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        low, high, seen = stats[extremes.LOW], stats[extremes.HIGH], stats[extremes.SEEN]
        below, above = actual < low, actual > high            # both False for the first value (NaN)
        keep = 1.0 - 1.0 / settings.drift_window
        recent_low = stats[at + RECENT_LOW] = keep * stats[at + RECENT_LOW] + below
        recent_high = stats[at + RECENT_HIGH] = keep * stats[at + RECENT_HIGH] + above
        usual_low, usual_high = stats[at + USUAL_LOW], stats[at + USUAL_HIGH]
        long_keep = 1.0 - 1.0 / settings.drift_long_window
        stats[at + USUAL_LOW] = long_keep * usual_low + (1.0 - long_keep) * below
        stats[at + USUAL_HIGH] = long_keep * usual_high + (1.0 - long_keep) * above
        score, direction = 0.0, 0
        if ready and (below or above) and seen > 0.0:
            # bar on the recent count: drift_rate_ratio x the usual rate, over drift_window steps
            per_usual = settings.drift_rate_ratio * settings.drift_window / (1.0 - long_keep ** seen)
            if below and recent_low >= settings.drift_records and recent_low > per_usual * usual_low:
                score, direction = 1.0, -1
            elif above and recent_high >= settings.drift_records and recent_high > per_usual * usual_high:
                score, direction = 1.0, 1
        return score, direction
