"""Range signal: a value beyond everything the stream has shown, by more than `spatial_tolerance`
of that range, scores 1 (NAB's HTM detector does the same). State: the lowest and highest value."""
from __future__ import annotations

import math

LOW, HIGH = 0, 1


class RangeSignal:
    name = "range"

    def size(self, settings) -> int:
        return 2

    def reset(self, stats, at: int, settings) -> None:
        stats[at + LOW] = stats[at + HIGH] = math.nan

    def update(self, stats, at: int, actual: float, ready: bool, settings) -> tuple[float, int]:
        low, high = stats[at + LOW], stats[at + HIGH]
        score, direction = 0.0, 0
        tolerance = settings.spatial_tolerance
        if ready and tolerance > 0.0 and high > low:
            margin = tolerance * (high - low)
            if actual > high + margin:
                score, direction = 1.0, 1
            elif actual < low - margin:
                score, direction = 1.0, -1
        if math.isfinite(actual):
            stats[at + LOW] = actual if math.isnan(low) else min(low, actual)
            stats[at + HIGH] = actual if math.isnan(high) else max(high, actual)
        return score, direction
