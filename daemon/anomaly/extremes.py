"""A stream's extremes: its lowest and highest value and how many values it has shown.

The range, drift, stuck and novelty signals all ask this of the stream's past, so the scorer
keeps one copy of it, in the first FLOATS slots of the stream's statistics array: signals read
it from there (as it stood before this value: the scorer learns the value after every signal has
scored it), and the daily profile asks far_beyond() of it. When each signal kept its own copy,
10,000 streams held the same numbers three times over (40 bytes a stream; docs/anomaly.md,
"Footprint").

Once the stream is scored (`ready`), a new extreme moves the range's end by at most
EXTEND_WIDTHS range widths a step: one glitch reading (a 65535 from a sensor bus in a 70-110
degree stream) then leaves the range a few widths wider, where learning it whole left the range
signal blind up to 65535 for good. A real shift still gets there: the range grows
(1 + EXTEND_WIDTHS)-fold a step while the stream keeps beyond it.
"""
from __future__ import annotations

import math

LOW, HIGH, SEEN = range(3)       # indices in the statistics array; SEEN: finite values learnt
FLOATS = 3
# On the 147 development files 3 and 6 give the same figures as no bound; 1 and 1.5 take 0.2 off
# nab-dev: few real values land more than a range width past the extreme (docs/anomaly.md).
EXTEND_WIDTHS = 3.0


def reset(stats) -> None:
    """No values yet."""
    stats[LOW] = stats[HIGH] = math.nan
    stats[SEEN] = 0.0


def learn(stats, actual: float, ready: bool) -> None:
    """Learn a finite value: once `ready`, a new extreme moves the range's end by at most
    EXTEND_WIDTHS range widths."""
    low, high = stats[LOW], stats[HIGH]
    learnt = actual
    if ready and high > low:
        reach = EXTEND_WIDTHS * (high - low)
        learnt = min(max(actual, low - reach), high + reach)
    stats[LOW] = actual if math.isnan(low) else min(low, learnt)
    stats[HIGH] = actual if math.isnan(high) else max(high, learnt)
    stats[SEEN] += 1.0


def far_beyond(stats, value: float, widths: float, seen_at_least: float) -> bool:
    """Whether `value` lies more than `widths` range widths beyond the range learnt so far, once
    that range covers `seen_at_least` values (before then, and for a flat range, never). The
    daily profile asks this to keep a glitch out of what it learns (daily_profile.py)."""
    low, high = stats[LOW], stats[HIGH]
    if not (high > low and stats[SEEN] >= seen_at_least):
        return False
    reach = widths * (high - low)
    return value > high + reach or value < low - reach
