"""Novelty signal: a value inside the stream's range, in a part of it the stream has never visited.

The range signal sees a value beyond every extreme. A valve rig's pressure settling between two
levels it has known, or a reading crossing a band it never crossed, stays inside the range and
goes unseen there (NAB's CAD OSE, which flags quantised values and pairs of them it has not seen,
leads on SKAB's valve rig). So once the stream's warm-up is over (`range_warmup_steps` values)
this signal divides the range it showed into BINS equal bins, remembers which it has visited (one
bit each), and scores 1 on a value in a bin never visited that lies more than
`novelty_noise_scales` x the stream's residual scale (its ordinary step-to-step noise) from every
visited bin: a step of noise into a fresh bin is not news. Values outside the bins are the range
signal's, and are not scored here.

The warm-up's values were not binned (keeping them would cost their storage), so until the
stream has shown 2 x `range_warmup_steps` values the signal only learns which bins it visits. A
warm-up that never moved sets no bins (nor one that moved by less than BINS x the smallest
float): they are set at the first change after it that gives bins of non-zero width.

State: 3 floats. LOW and HIGH follow the stream's extremes through the warm-up (without the
bound on a step that extremes.py puts on the scored stream's) and are then the bins' fixed
edges; VISITED holds the visited bins as an integer below 2**BINS, exact in a float64 (0: no bins
yet; the extremes' two bins count as visited when they are set). The count of values seen is the
one the scorer keeps with the stream's extremes.
"""
from __future__ import annotations

import math

from . import extremes

LOW, HIGH, VISITED = range(3)
BINS = 32                        # 2**32 is far inside float64's exact integers (2**53)


class NoveltySignal:
    name = "novel"

    def size(self, settings) -> int:
        return 3

    def reset(self, stats, at: int, settings) -> None:
        stats[at + LOW] = stats[at + HIGH] = math.nan
        stats[at + VISITED] = 0.0

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        if not math.isfinite(actual):
            return 0.0, 0
        seen = stats[extremes.SEEN]                    # values before this one
        low, high = stats[at + LOW], stats[at + HIGH]
        if stats[at + VISITED] == 0.0:                 # no bins yet: the warm-up learns their edges
            low = stats[at + LOW] = actual if math.isnan(low) else min(low, actual)
            high = stats[at + HIGH] = actual if math.isnan(high) else max(high, actual)
            # A flat warm-up goes on, and so does one too narrow to split (bins of 0 width: a
            # range below 32 subnormal steps made the bin index divide by zero) or too wide.
            if seen >= settings.range_warmup_steps and 0.0 < (high - low) / BINS < math.inf:
                stats[at + VISITED] = float(1 | 1 << (BINS - 1))        # the extremes' bins
            return 0.0, 0
        if not low <= actual < high:                   # outside the bins (tested first: a value far
            return 0.0, 0                              # beyond a tiny range would overflow the index)
        width = (high - low) / BINS
        index = math.floor((actual - low) / width)
        if index >= BINS:                              # rounding, just below the top edge
            return 0.0, 0
        visited = int(stats[at + VISITED])
        stats[at + VISITED] = float(visited | 1 << index)
        if not ready or visited >> index & 1 or seen < 2 * settings.range_warmup_steps:
            return 0.0, 0
        distance, direction = _nearest_visited(visited, low, width, actual)
        if distance <= settings.novelty_noise_scales * noise:
            return 0.0, 0
        return 1.0, direction


def _nearest_visited(visited: int, low: float, width: float, actual: float) -> tuple[float, int]:
    """How far `actual` lies from the nearest visited bin, and on which side of it (+1: above)."""
    nearest, direction = math.inf, 0
    for index in range(BINS):
        if visited >> index & 1:
            below = low + index * width - actual                  # > 0: actual is below this bin
            distance, side = (below, -1) if below > 0 else (actual - (low + (index + 1) * width), 1)
            if distance < nearest:
                nearest, direction = distance, side
    return nearest, direction
