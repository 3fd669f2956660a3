"""Per-stream anomaly score from forecast residuals and per-stream signals (numpy/stdlib only).

Each step, for residual r = actual - expected:
1. z = r / scale, where scale is an exponentially weighted RMS of past residuals (time constant
   `scale_window` steps). The model's prior residual std seeds it as `prior_weight_steps`
   pseudo-observations (0 for online-normalised models, whose calibration residuals are in
   another stream's units: the scale then starts from the stream's own first non-zero residual).
   Updates are clipped at SCALE_CLIP_Z * scale so one outlier cannot blow the scale up.
2. raw = min(1, -log10(2 Q(|z|)) / SURPRISE_CAP_DECADES): the two-sided Gaussian surprise in
   decades, bounded (a 9.3-sigma residual is 1).
3. The anomaly likelihood of Ahmad et al. 2017: with mu, sigma the mean and std of the raw
   scores in the reference window *before* this step and m the mean of the last `short_window`
   raw scores including this one, L = 1 - Q((m - mu) / sigma). Raw scores of the first
   min_steps // 2 steps (while the residual scale settles) stay out of the reference window.
   The reference window is kept as block sums, not as the scores themselves: scores are summed
   in blocks of B = ceil(long_window / BLOCKS) steps, a ring keeps (sum, sum of squares) of the
   last K = ceil(long_window / B) finished blocks, and the window is those K blocks plus the
   block being filled. Until the ring is full that is every score so far; after that, the last
   K*B to K*B + B - 1 scores (long_window rounded up to whole blocks, plus the partial block:
   2,000 to 2,124 for long_window 2000), where an exact sliding window would need every score.
4. The signals named in `signals` (signals.py: e.g. a value beyond the seen range, a level
   shift) each score the value too; the published score is the largest, and an alert names the
   signal that gave it.
5. Optionally (`daily_profile`, needs the message time), the expected value is the stream's own
   daily profile instead of the model's forecast whenever the profile has lately predicted the
   stream better (daily_profile.py): a daily pattern the model cannot hold still counts. A value
   far beyond the stream's range (with the range signal on) is judged but not learnt by the
   profile (a glitch).
Alerts, clears and the published score: alerts.py. Cost: O(1) per step; the window's totals are
re-summed (exactly rounded, fsum) from the K block sums whenever a block finishes, so rounding
error cannot build up over time. Memory per stream: one flat float64 array (the stream's
extremes, which the signals share, the running sums, the alert's floats, the raw-score ring, the
block ring, every signal's state, the daily profile's numbers and the counters: 76 floats, 608
bytes, with models/default's settings) and
the profile's int16 levels (576 bytes) instead of a long_window ring (16 kB), which is what lets
one process keep 10,000s of streams. Non-finite residuals are skipped (no state change, no score).
"""
from __future__ import annotations

import math
from array import array
from functools import lru_cache

import numpy as np

from . import alerts
from . import daily_profile, extremes
from .alerts import FORECAST_SIGNAL
from .settings import AnomalySettings
from .signals import SIGNALS
from .surprise import gaussian_tail, surprise_score

PRIOR_WEIGHT_STEPS = 20.0      # the prior scale counts as this many residuals (fixed-scale models)
SCALE_CLIP_Z = 5.0             # residuals beyond 5 scales update the scale as if at 5 scales
SCALE_FLOOR_FRACTION = 1e-3    # scale never drops below this fraction of the prior std (if weighted)
MIN_LONG_STD = 1e-3            # floor for sigma of raw scores (flat streams)

# StreamAnomaly.stats begins with the stream's extremes (extremes.py: every signal reads them),
# then each running sum; the alert's floats follow, then the raw-score ring, the block ring (sums,
# then sums of squares), the signals' slices, the daily profile's four numbers and the counters
# (Layout).
SCALE_SUM_SQ, SCALE_WEIGHT, BLOCK_SUM, BLOCK_SUM_SQ, WINDOW_SUM, WINDOW_SUM_SQ = range(extremes.FLOATS, extremes.FLOATS + 6)
ALERT_AT = WINDOW_SUM_SQ + 1
RECENT = ALERT_AT + alerts.ALERT_FLOATS
# The counters, after everything else (Layout.counters_at): residuals seen, alerting (0/1),
# consecutive steps at or above the threshold, the step of the last alert (NaN: none yet, so
# that `step - last <= refractory_steps` is false), and the signal (index; -1 the forecast) and
# direction of the current episode. float64 holds each exactly.
COUNT, ANOMALOUS, ABOVE_STEPS, LAST_ALERT_STEP, EPISODE_SIGNAL, EPISODE_DIRECTION = range(6)
COUNTERS = 6


class Layout:
    """Offsets into a stream's flat statistics array for one AnomalySettings (shared by streams)."""

    def __init__(self, settings: AnomalySettings):
        self.blocks_at = RECENT + settings.short_window
        at = self.blocks_at + 2 * settings.blocks
        self.signals = []                                   # [(signal, offset)]
        for name in settings.signals:
            signal = SIGNALS[name]
            self.signals.append((signal, at))
            at += signal.size(settings)
        self.signals_at = self.blocks_at + 2 * settings.blocks
        # The checkpoint's `stats` are the first `saved` floats; the profile's numbers are saved
        # under their own keys (daily_profile.to_state).
        # The counters are saved under their own keys too (state.py).
        self.saved = self.profile_at = at
        self.counters_at = at + (daily_profile.FLOATS if settings.daily_profile else 0)
        self.size = self.counters_at + COUNTERS
        # With the range signal on, the daily profile keeps values far beyond the stream's
        # extremes (before this step's update) out of what it learns.
        self.skips_beyond_range = "range" in settings.signals
        self.breakers = frozenset(i for i, (signal, _) in enumerate(self.signals)
                                  if signal.name in settings.hold_breakers)


@lru_cache(maxsize=64)
def layout_of(settings: AnomalySettings) -> Layout:
    return Layout(settings)


class _Counter:
    """A StreamAnomaly counter, read (and for `count` written) in its statistics array."""

    def __init__(self, index: int, kind: type, optional: bool = False, settable: bool = False):
        self.index, self.kind, self.optional, self.settable = index, kind, optional, settable

    def __get__(self, anomaly, owner=None):
        if anomaly is None:
            return self
        value = anomaly.stats[anomaly.kind.offsets.counters_at + self.index]
        return None if self.optional and math.isnan(value) else self.kind(value)

    def __set__(self, anomaly, value) -> None:
        if not self.settable:
            raise AttributeError("read-only: the scorer sets its counters itself")
        anomaly.stats[anomaly.kind.offsets.counters_at + self.index] = float(value)


class Kind:
    """What every stream of one scorer factory shares: settings, layout and prior."""

    __slots__ = ("settings", "offsets", "prior_residual_std", "prior_weight_steps")

    def __init__(self, settings: AnomalySettings, prior_residual_std: float, prior_weight_steps: float):
        self.settings, self.offsets = settings, layout_of(settings)
        self.prior_residual_std, self.prior_weight_steps = prior_residual_std, prior_weight_steps


@lru_cache(maxsize=64)
def kind_of(settings: AnomalySettings, prior_residual_std: float, prior_weight_steps: float) -> Kind:
    return Kind(settings, prior_residual_std, prior_weight_steps)


class StreamAnomaly:
    """One stream's residual statistics, signals, likelihood and alert state.

    With 10,000s of streams per process every per-stream object and boxed number shows in the
    resident set, so the running sums, the rings, the alert's floats, the signals' state, the
    daily profile's numbers and the counters share one flat array.array (reads give plain
    floats), the profile's levels are one int16 array.array, and what all streams of a factory
    share is one Kind."""

    __slots__ = ("kind", "stats", "levels")

    count = _Counter(COUNT, int, settable=True)           # residuals seen
    anomalous = _Counter(ANOMALOUS, bool)
    above_steps = _Counter(ABOVE_STEPS, int)
    last_alert_step = _Counter(LAST_ALERT_STEP, int, optional=True)   # None before the first alert
    episode_signal = _Counter(EPISODE_SIGNAL, int)
    episode_direction = _Counter(EPISODE_DIRECTION, int)

    def __init__(self, settings: AnomalySettings, prior_residual_std: float,
                 prior_weight_steps: float = PRIOR_WEIGHT_STEPS):
        if not (math.isfinite(prior_residual_std) and prior_residual_std > 0.0):
            raise ValueError(f"prior_residual_std must be finite and > 0, got {prior_residual_std!r}")
        if not (math.isfinite(prior_weight_steps) and prior_weight_steps >= 0.0):
            raise ValueError(f"prior_weight_steps must be finite and >= 0, got {prior_weight_steps!r}")
        self.kind = kind_of(settings, float(prior_residual_std), float(prior_weight_steps))
        layout = self.kind.offsets
        # Repetition allocates exactly this many items (array("d", bytes) over-allocates by ~9%).
        self.stats = array("d", [0.0]) * layout.size
        self.stats[SCALE_SUM_SQ] = self.prior_weight_steps * self.prior_residual_std ** 2
        self.stats[SCALE_WEIGHT] = self.prior_weight_steps
        extremes.reset(self.stats)
        alerts.reset_alert_floats(self.stats, ALERT_AT)
        for signal, at in layout.signals:
            signal.reset(self.stats, at, settings)
        counters = layout.counters_at
        self.stats[counters + LAST_ALERT_STEP] = math.nan
        self.stats[counters + EPISODE_SIGNAL] = float(FORECAST_SIGNAL)
        self.levels = None       # the daily profile's levels (daily_profile.py), when it has one
        if settings.daily_profile:
            self.levels = daily_profile.new_levels()
            daily_profile.reset(self.stats, layout.profile_at)

    # What every stream of its factory shares, read through the Kind.
    settings = property(lambda self: self.kind.settings)
    offsets = property(lambda self: self.kind.offsets)
    prior_residual_std = property(lambda self: self.kind.prior_residual_std)
    prior_weight_steps = property(lambda self: self.kind.prior_weight_steps)

    def set_counters(self, count: int, anomalous: bool, above_steps: int, last_alert_step: int | None,
                     episode_signal: int, episode_direction: int) -> None:
        """All counters at once (a restore from a checkpoint)."""
        at = self.kind.offsets.counters_at
        self.stats[at:at + COUNTERS] = array("d", (
            float(count), float(anomalous), float(above_steps),
            math.nan if last_alert_step is None else float(last_alert_step),
            float(episode_signal), float(episode_direction)))

    @property
    def recent(self) -> np.ndarray:
        """The ring of the last short_window raw scores (a view into stats)."""
        return np.frombuffer(self.stats, np.float64, self.settings.short_window, 8 * RECENT)

    @property
    def blocks(self) -> np.ndarray:
        """(2, K): the ring of finished blocks' sums and sums of squares (a view into stats)."""
        k = self.settings.blocks
        return np.frombuffer(self.stats, np.float64, 2 * k, 8 * self.offsets.blocks_at).reshape(2, k)

    @property
    def scale(self) -> float:
        # The floor is relative to the prior; without one (online models) the stream's units are unknown.
        floor = SCALE_FLOOR_FRACTION * self.kind.prior_residual_std if self.kind.prior_weight_steps > 0.0 else 0.0
        sum_sq, weight = self.stats[SCALE_SUM_SQ], self.stats[SCALE_WEIGHT]
        if weight <= 0.0 or sum_sq <= 0.0:
            return self.kind.prior_residual_std
        return max(math.sqrt(sum_sq / weight), floor)

    def update(self, actual: float, expected: float, ts: float | None = None) -> tuple[float | None, str | None]:
        """Score this step's residual; returns (score or None before min_steps, event or None).
        ts (epoch seconds) is needed by the daily profile, the cooldown and the hourly cap; without
        it the model's forecast is used and neither time limit applies."""
        actual, expected = float(actual), float(expected)
        residual = actual - expected
        if not math.isfinite(residual):
            return None, None
        s, layout = self.kind.settings, self.kind.offsets
        if self.levels is not None and ts is not None and math.isfinite(ts):
            learn = not layout.skips_beyond_range or not extremes.far_beyond(
                self.stats, actual, daily_profile.SKIP_BEYOND_WIDTHS, s.min_steps)
            residual = actual - daily_profile.observe(self.levels, self.stats, layout.profile_at, s.scale_window,
                                                      ts, actual, expected, either=s.profile_either, learn=learn)
        fresh = self.stats[SCALE_SUM_SQ] <= 0.0              # no prior and only zero residuals so far
        noise = 0.0 if fresh else self.scale                 # the past's residual scale, for the signals
        scale = noise if not fresh else (abs(residual) if residual != 0.0 else self.scale)
        raw = 0.0 if fresh else surprise_score(residual / scale)
        count = self.stats[layout.counters_at + COUNT]
        ready = count >= s.min_steps
        if ready:
            mu_long, sigma_long = self._window_stats()
        signal_scores = [signal.update(self.stats, at, actual, noise, ready, s) for signal, at in layout.signals]
        extremes.learn(self.stats, actual, ready)          # after the signals: they read the past's
        self._update_scale(residual * residual if fresh else min(residual * residual, (SCALE_CLIP_Z * scale) ** 2))
        self._push(raw)
        if not ready:
            return None, None
        filled = int(min(count + 1, s.short_window))       # the ring fills from slot 0; _push counted this one
        # fsum over a slice: cheaper than ndarray.mean() on ten values (docs/performance-history.md)
        level = (math.fsum(self.stats[RECENT:RECENT + filled]) / filled - mu_long) / sigma_long
        score, source, direction = 1.0 - gaussian_tail(level), FORECAST_SIGNAL, (1 if residual > 0 else -1)
        for index, (signal_score, signal_direction) in enumerate(signal_scores):
            if signal_score >= score and signal_score > 0.0:
                score, source, direction = signal_score, index, signal_direction
        return self._advance(score, source, direction, ts)

    def _advance(self, score: float, source: int, direction: int, ts: float | None) -> tuple[float, str | None]:
        """Alert state and the published score for this step's score (alerts.py)."""
        s, layout, stats = self.kind.settings, self.kind.offsets, self.stats
        at = layout.counters_at
        step = stats[at + COUNT]
        held = step - stats[at + LAST_ALERT_STEP] <= s.refractory_steps       # false before any alert (NaN)
        breaks = held and source in layout.breakers and score >= s.threshold
        event = None
        if stats[at + ANOMALOUS]:
            if score < s.clear_threshold:
                stats[at + ANOMALOUS], stats[at + ABOVE_STEPS], event = 0.0, 0.0, "clear"
        else:
            above = stats[at + ABOVE_STEPS] + 1.0 if score >= s.threshold else 0.0
            stats[at + ABOVE_STEPS] = above
            if (above >= s.debounce_steps and (breaks or not held)
                    and alerts.time_allows(s, stats, ALERT_AT, ts)):
                stats[at + ANOMALOUS], stats[at + LAST_ALERT_STEP], event = 1.0, step, "alert"
                stats[at + EPISODE_SIGNAL], stats[at + EPISODE_DIRECTION] = float(source), float(direction)
                stats[ALERT_AT + alerts.EPISODE_START] = math.nan if ts is None else ts
                return score, event
        if held and not breaks and s.refractory_steps > 0:
            return min(score, s.clear_threshold), event
        return score, event

    def detail(self, event: str, ts: float | None) -> dict:
        """What this step's alert or clear says about itself: threshold, direction, signal,
        episode start and, on a clear, its duration."""
        source = self.episode_signal
        name = "forecast" if source == FORECAST_SIGNAL else self.kind.offsets.signals[source][0].name
        return alerts.detail(self.kind.settings, self.stats, ALERT_AT, event, ts, name, self.episode_direction)

    def window_size(self) -> int:
        """Raw scores in the reference window now: the finished blocks in the ring + the partial one."""
        s = self.kind.settings
        pushed = max(self.count - s.min_steps // 2, 0)
        return min(pushed // s.block_steps, s.blocks) * s.block_steps + pushed % s.block_steps

    def _window_stats(self) -> tuple[float, float]:
        """Mean and (floored) sample std of the raw scores in the reference window."""
        n = self.window_size()
        stats = self.stats
        total = stats[WINDOW_SUM] + stats[BLOCK_SUM]
        if n < 2:
            return (total / n if n else 0.0), 1.0
        mean = total / n
        var = max(stats[WINDOW_SUM_SQ] + stats[BLOCK_SUM_SQ] - n * mean * mean, 0.0) / (n - 1)
        return mean, max(math.sqrt(var), MIN_LONG_STD)

    def _update_scale(self, clipped_sq: float) -> None:
        keep = 1.0 - 1.0 / self.kind.settings.scale_window
        stats = self.stats
        stats[SCALE_SUM_SQ] = keep * stats[SCALE_SUM_SQ] + clipped_sq
        stats[SCALE_WEIGHT] = keep * stats[SCALE_WEIGHT] + 1.0

    def _push(self, raw: float) -> None:
        s, stats = self.kind.settings, self.stats
        at = self.kind.offsets.counters_at + COUNT
        count = int(stats[at])
        stats[RECENT + count % s.short_window] = raw
        stats[at] = count + 1.0
        pushed = count + 1 - s.min_steps // 2
        if pushed <= 0:                                       # learning period: the scale settles
            return
        stats[BLOCK_SUM] += raw
        stats[BLOCK_SUM_SQ] += raw * raw
        if pushed % s.block_steps == 0:                       # block finished: it replaces the oldest
            slot = self.kind.offsets.blocks_at + (pushed // s.block_steps - 1) % s.blocks
            stats[slot], stats[slot + s.blocks] = stats[BLOCK_SUM], stats[BLOCK_SUM_SQ]
            stats[BLOCK_SUM] = stats[BLOCK_SUM_SQ] = 0.0
            self._sum_window()

    def _sum_window(self) -> None:
        # Exactly rounded sums of the K block sums: no error carried from one block to the next.
        at, k = self.kind.offsets.blocks_at, self.kind.settings.blocks
        self.stats[WINDOW_SUM] = math.fsum(self.stats[at:at + k])
        self.stats[WINDOW_SUM_SQ] = math.fsum(self.stats[at + k:at + 2 * k])

    # checkpoint layout: state.py
    def to_state(self) -> dict:
        from .state import to_state
        return to_state(self)

    def layout(self) -> tuple:
        """What fixes the keys and shapes of to_state(): states of equal layout stack together."""
        s = self.kind.settings
        return self.kind.offsets.size, s.short_window, s.blocks, self.levels is not None

    @staticmethod
    def stack_states(anomalies: list["StreamAnomaly"]) -> dict[str, np.ndarray]:
        from .state import stack_states
        return stack_states(anomalies)

    @classmethod
    def from_state(cls, settings: AnomalySettings, data: dict) -> "StreamAnomaly":
        from .state import from_state
        return from_state(cls, settings, data)
