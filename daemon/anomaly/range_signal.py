"""Range signal: a value beyond everything the stream has shown, by more than `spatial_tolerance`
of that range, scores 1 (NAB's HTM detector does the same). State: the lowest and highest value
and how many values they cover.

A young stream has not yet shown its range: of n values seen, the next one is a new maximum with
probability 1/(n + 1) even when nothing is wrong. So for the first `range_warmup_steps` values the
tolerance is widened in proportion (tolerance x range_warmup_steps / n): a new extreme must be
the more extreme the less the stream has shown.

A value can also pass the extreme by no more than the stream's ordinary step-to-step noise: a
noisy or coarsely quantised stream brushes past its extremes by a hair now and then (on SKAB's
sensors, 97 of the range signal's 228 alerts fell outside the labelled windows, nearly all before
one). So the margin adds `range_noise_scales` x the stream's residual scale (the forecast's
running RMS error, from before this step): a new extreme must clear the range's tolerance *and*
the noise.

A new extreme moves the range's end by at most EXTEND_WIDTHS range widths per step once the
stream is scored: one glitch reading (a 65535 from a sensor bus in a 70-110 degree stream) then
leaves the range a few widths wider, where learning it whole left the signal blind up to 65535
for good. A real shift still gets there: the range grows (1 + EXTEND_WIDTHS)-fold a step while
the stream keeps beyond it, and scores 1 meanwhile, within the same episode.
"""
from __future__ import annotations

import math

LOW, HIGH, SEEN = 0, 1, 2
# On the 147 development files 3 and 6 give the same figures as no bound; 1 and 1.5 take 0.2 off
# nab-dev: few real values land more than a range width past the extreme (docs/anomaly.md).
EXTEND_WIDTHS = 3.0


class RangeSignal:
    name = "range"

    def size(self, settings) -> int:
        return 3

    def reset(self, stats, at: int, settings) -> None:
        reset_extremes(stats, at)

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        low, high, seen = stats[at + LOW], stats[at + HIGH], stats[at + SEEN]
        score, direction = 0.0, 0
        tolerance = settings.spatial_tolerance
        if ready and tolerance > 0.0 and high > low:
            margin = (tolerance * (high - low) * max(1.0, settings.range_warmup_steps / seen)
                      + settings.range_noise_scales * noise)
            if actual > high + margin:
                score, direction = 1.0, 1
            elif actual < low - margin:
                score, direction = 1.0, -1
        if math.isfinite(actual):
            learn_extremes(stats, at, actual, ready)
        return score, direction


def reset_extremes(stats, at: int) -> None:
    """No values yet: LOW, HIGH and SEEN from `at`."""
    stats[at + LOW] = stats[at + HIGH] = math.nan
    stats[at + SEEN] = 0.0


def learn_extremes(stats, at: int, actual: float, ready: bool) -> None:
    """Learn a finite value into LOW, HIGH and SEEN from `at`: once `ready`, a new extreme moves
    the range's end by at most EXTEND_WIDTHS range widths."""
    low, high = stats[at + LOW], stats[at + HIGH]
    learnt = actual
    if ready and high > low:
        reach = EXTEND_WIDTHS * (high - low)
        learnt = min(max(actual, low - reach), high + reach)
    stats[at + LOW] = actual if math.isnan(low) else min(low, learnt)
    stats[at + HIGH] = actual if math.isnan(high) else max(high, learnt)
    stats[at + SEEN] += 1.0


def far_beyond(stats, at: int, value: float, widths: float, seen_at_least: float) -> bool:
    """Whether `value` lies more than `widths` range widths beyond the range learnt so far, once
    that range covers `seen_at_least` values (before then, and for a flat range, never). The
    daily profile asks this to keep a glitch out of what it learns (daily_profile.py)."""
    low, high = stats[at + LOW], stats[at + HIGH]
    if not (high > low and stats[at + SEEN] >= seen_at_least):
        return False
    reach = widths * (high - low)
    return value > high + reach or value < low - reach
