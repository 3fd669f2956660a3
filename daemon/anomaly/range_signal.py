"""Range signal: a value beyond everything the stream has shown, by more than `spatial_tolerance`
of that range, scores 1 (NAB's HTM detector does the same). It reads the stream's extremes,
which the scorer keeps for every signal (extremes.py); it has no state of its own.

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

The extremes move by at most extremes.EXTEND_WIDTHS range widths a step once the stream is
scored, so one glitch reading leaves the range a few widths wider instead of blinding this
signal; a real shift scores 1 while the range grows towards it, within the same episode.
"""
from __future__ import annotations

from . import extremes


class RangeSignal:
    name = "range"

    def size(self, settings) -> int:
        return 0

    def reset(self, stats, at: int, settings) -> None:
        pass

    def update(self, stats, at: int, actual: float, noise: float, ready: bool, settings) -> tuple[float, int]:
        low, high, seen = stats[extremes.LOW], stats[extremes.HIGH], stats[extremes.SEEN]
        tolerance = settings.spatial_tolerance
        if ready and tolerance > 0.0 and high > low:
            margin = (tolerance * (high - low) * max(1.0, settings.range_warmup_steps / seen)
                      + settings.range_noise_scales * noise)
            if actual > high + margin:
                return 1.0, 1
            if actual < low - margin:
                return 1.0, -1
        return 0.0, 0
