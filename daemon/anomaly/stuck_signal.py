"""Stuck signal: a sensor that repeats the same value far longer than this stream ever does.

A frozen reading is the one fault a forecaster's residual cannot see: the value is perfectly
predictable. The signal keeps the stream's long-run share of steps whose value did not change
(p, exponentially weighted over `long_window` steps, bias-corrected) and the length r of the
current run of unchanged values; the chance of such a run is p ** r, so the score is 1 - p ** r.
p is floored at `stuck_floor` (0.9: a smooth stream, p near 0, needs a run of ~55 steps to reach the
usual alert threshold 0.997), and a stream with few distinct levels needs a run far longer than its
usual ones. A run scores once, on the step its score first reaches the alert threshold: a frozen
reading is one event, and a score held near 1 for the rest of the run would only repeat it.
State: 5 floats.
"""
from __future__ import annotations

import math

LAST, RUN, UNCHANGED, SEEN, REPORTED = range(5)   # REPORTED: 1.0 once this run has scored


class StuckSignal:
    name = "stuck"

    def size(self, settings) -> int:
        return 5

    def reset(self, stats, at: int, settings) -> None:
        stats[at + LAST] = math.nan
        stats[at + RUN] = stats[at + UNCHANGED] = stats[at + SEEN] = stats[at + REPORTED] = 0.0

    def update(self, stats, at: int, actual: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        seen = stats[at + SEEN]
        unchanged = actual == stats[at + LAST]
        keep = 1.0 - 1.0 / settings.long_window
        score = 0.0
        if unchanged:
            stats[at + RUN] += 1.0
            if ready and seen > 0.0 and stats[at + REPORTED] == 0.0:
                share = stats[at + UNCHANGED] / (1.0 - keep ** seen)        # bias-corrected
                score = 1.0 - max(min(share, 1.0), settings.stuck_floor) ** stats[at + RUN]
                if score >= settings.threshold:
                    stats[at + REPORTED] = 1.0
                else:
                    score = 0.0
        else:
            stats[at + RUN] = stats[at + REPORTED] = 0.0
        if seen > 0.0 or not math.isnan(stats[at + LAST]):
            stats[at + UNCHANGED] = keep * stats[at + UNCHANGED] + (1.0 - keep) * float(unchanged)
            stats[at + SEEN] = seen + 1.0
        stats[at + LAST] = actual
        return score, 0
