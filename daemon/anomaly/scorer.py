"""Per-stream anomaly score from forecast residuals (numpy/stdlib only).

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
   2,016 to 2,078 for long_window 2000), where an exact sliding window would need every score.
4. Optionally, a value outside everything the stream has shown, by more than `spatial_tolerance`
   of that range, scores 1 (NAB's HTM detector does the same).
5. Optionally (`daily_profile`, needs the message time), the expected value is the stream's own
   daily profile instead of the model's forecast whenever the profile has lately predicted the
   stream better (daily_profile.py): a daily pattern the model cannot hold still counts.
The published anomaly score is L (so the paper's alert rule L >= 1 - epsilon is threshold
1 - epsilon). Cost: O(1) per step; the window's totals are re-summed (exactly rounded, fsum)
from the K block sums whenever a block finishes, so rounding error cannot build up over time.
Memory per stream: 2 * K + short_window + 8 float64 (~660 bytes by default, in one flat array
with the running sums) instead of a long_window ring (16 kB), which is what lets one process
keep 10,000s of streams.

Alerts: "alert" when the score has been >= threshold for debounce_steps consecutive steps, the
stream is not already alerting and more than refractory_steps have passed since the last alert;
"clear" when it drops below clear_threshold. For refractory_steps after an alert the published
score is held at or below clear_threshold (the alert already said it), so one event is one
high score, which is what NAB rewards and what a dashboard wants. The RNN state and these
statistics keep updating throughout. Non-finite residuals are skipped (no state change, no
score). The engine passes each message's timestamp as ts (for the daily profile).
"""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .daily_profile import DailyProfile

PRIOR_WEIGHT_STEPS = 20.0      # the prior scale counts as this many residuals (fixed-scale models)
SCALE_CLIP_Z = 5.0             # residuals beyond 5 scales update the scale as if at 5 scales
SCALE_FLOOR_FRACTION = 1e-3    # scale never drops below this fraction of the prior std (if weighted)
SURPRISE_CAP_DECADES = 20.0    # -log10 tail probability that maps to raw score 1
MIN_LONG_STD = 1e-3            # floor for sigma of raw scores (flat streams)
BLOCKS = 32                    # the reference window is summed in ~this many blocks
NO_ALERT = -1                  # last_alert_step in a saved state: no alert yet
STATE_VERSION = 3              # 3: block sums instead of the raw-score ring (2)


@dataclass(frozen=True)
class AnomalySettings:
    threshold: float = 0.99        # score at or above which a step counts towards an alert
    clear_threshold: float = 0.9   # score below which an active alert clears
    debounce_steps: int = 1        # consecutive steps at/above threshold needed to alert
    refractory_steps: int = 0      # steps after an alert: no new alert, published score held
    long_window: int = 2000        # steps of raw scores in the reference window (rounded up to blocks)
    short_window: int = 10         # steps averaged for the current level
    min_steps: int = 100           # residuals seen before a score is reported
    scale_window: int = 500        # time constant (steps) of the residual scale estimate
    spatial_tolerance: float = 0.0  # > 0: a value beyond the seen range by this fraction of it scores 1
    daily_profile: bool = False    # compare with the stream's daily profile when that predicts better

    def __post_init__(self):
        checks = {
            "threshold": 0.0 < self.threshold <= 1.0,
            "clear_threshold": 0.0 <= self.clear_threshold <= self.threshold,
            "debounce_steps": self.debounce_steps >= 1,
            "refractory_steps": self.refractory_steps >= 0,
            "short_window": self.short_window >= 1,
            "min_steps": self.min_steps >= 2,
            "long_window": self.long_window >= max(self.short_window, self.min_steps),
            "scale_window": self.scale_window >= 1,
            "spatial_tolerance": 0.0 <= self.spatial_tolerance <= 10.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"anomaly setting {key}={getattr(self, key)!r} is out of range")

    @cached_property                   # read every step; fields are frozen
    def block_steps(self) -> int:
        """B: raw scores summed per block of the reference window."""
        return math.ceil(self.long_window / BLOCKS)

    @cached_property
    def blocks(self) -> int:
        """K: finished blocks in the reference window (K * B >= long_window)."""
        return math.ceil(self.long_window / self.block_steps)


def gaussian_tail(z: float) -> float:
    """Q(z) = P(N(0,1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def surprise_score(z: float) -> float:
    """Bounded raw score in [0, 1] of a normalised residual: capped two-sided surprise in decades."""
    tail = math.erfc(min(abs(z), 30.0) / math.sqrt(2.0))  # 2 Q(|z|), > 0 up to |z| = 30
    return min(1.0, -math.log10(tail) / SURPRISE_CAP_DECADES) if tail < 1.0 else 0.0


# Where each running sum lives in StreamAnomaly.stats (one flat float64 array per stream);
# the raw-score ring starts at RECENT, the block ring (sums, then sums of squares) after it.
SCALE_SUM_SQ, SCALE_WEIGHT, BLOCK_SUM, BLOCK_SUM_SQ, WINDOW_SUM, WINDOW_SUM_SQ, LOW, HIGH, RECENT = range(9)


class StreamAnomaly:
    """One stream's residual statistics, likelihood and alert state.

    With 10,000s of streams per process every per-stream object and boxed number shows in the
    resident set, so the running sums, the raw-score ring and the block ring share one flat
    array.array (reads give plain floats, so the arithmetic is the same as on attributes), and
    the counters are slots."""

    __slots__ = ("settings", "prior_residual_std", "prior_weight_steps", "stats", "count", "profile",
                 "anomalous", "above_steps", "last_alert_step")

    def __init__(self, settings: AnomalySettings, prior_residual_std: float,
                 prior_weight_steps: float = PRIOR_WEIGHT_STEPS):
        if not (math.isfinite(prior_residual_std) and prior_residual_std > 0.0):
            raise ValueError(f"prior_residual_std must be finite and > 0, got {prior_residual_std!r}")
        if not (math.isfinite(prior_weight_steps) and prior_weight_steps >= 0.0):
            raise ValueError(f"prior_weight_steps must be finite and >= 0, got {prior_weight_steps!r}")
        self.settings = settings
        self.prior_residual_std = float(prior_residual_std)
        self.prior_weight_steps = float(prior_weight_steps)
        # Repetition allocates exactly this many items (array("d", bytes) over-allocates by ~9%).
        self.stats = array("d", [0.0]) * (RECENT + settings.short_window + 2 * settings.blocks)
        self.stats[SCALE_SUM_SQ] = self.prior_weight_steps * self.prior_residual_std ** 2
        self.stats[SCALE_WEIGHT] = self.prior_weight_steps
        self.stats[LOW] = self.stats[HIGH] = math.nan   # range of the values seen (spatial check)
        self.count = 0           # residuals seen
        self.profile = DailyProfile(settings.scale_window) if settings.daily_profile else None
        self.anomalous = False
        self.above_steps = 0     # consecutive steps with score >= threshold
        self.last_alert_step: int | None = None

    @property
    def recent(self) -> np.ndarray:
        """The ring of the last short_window raw scores (a view into stats)."""
        return np.frombuffer(self.stats, np.float64, self.settings.short_window, 8 * RECENT)

    @property
    def blocks(self) -> np.ndarray:
        """(2, K): the ring of finished blocks' sums and sums of squares (a view into stats)."""
        k = self.settings.blocks
        return np.frombuffer(self.stats, np.float64, 2 * k, 8 * self._blocks_at).reshape(2, k)

    @property
    def _blocks_at(self) -> int:
        return RECENT + self.settings.short_window

    @property
    def scale(self) -> float:
        # The floor is relative to the prior; without one (online models) the stream's units are unknown.
        floor = SCALE_FLOOR_FRACTION * self.prior_residual_std if self.prior_weight_steps > 0.0 else 0.0
        sum_sq, weight = self.stats[SCALE_SUM_SQ], self.stats[SCALE_WEIGHT]
        if weight <= 0.0 or sum_sq <= 0.0:
            return self.prior_residual_std
        return max(math.sqrt(sum_sq / weight), floor)

    def update(self, actual: float, expected: float, ts: float | None = None) -> tuple[float | None, str | None]:
        """Score this step's residual; returns (score or None before min_steps, event or None).
        ts (epoch seconds) is only needed by the daily profile; without it the model's forecast is used."""
        actual, expected = float(actual), float(expected)
        residual = actual - expected
        if not math.isfinite(residual):
            return None, None
        if self.profile is not None and ts is not None and math.isfinite(ts):
            chosen = self.profile.expected(ts, expected)
            self.profile.observe(ts, actual, expected)
            residual = actual - chosen
        s = self.settings
        fresh = self.stats[SCALE_SUM_SQ] <= 0.0              # no prior and only zero residuals so far
        scale = abs(residual) if fresh and residual != 0.0 else self.scale
        raw = 0.0 if fresh else surprise_score(residual / scale)
        ready = self.count >= s.min_steps
        if ready:
            mu_long, sigma_long = self._window_stats()
        spatial = self._spatial(actual) if ready else False
        self._track_range(actual)
        self._update_scale(residual * residual if fresh else min(residual * residual, (SCALE_CLIP_Z * scale) ** 2))
        self._push(raw)
        if not ready:
            return None, None
        filled = min(self.count, s.short_window)           # the ring fills from slot 0
        # fsum over a slice: ~0.4 µs, where ndarray.mean() on ten values costs ~3.6 µs per message
        level = (math.fsum(self.stats[RECENT:RECENT + filled]) / filled - mu_long) / sigma_long
        likelihood = 1.0 if spatial else 1.0 - gaussian_tail(level)
        event = self._advance_alert(likelihood)
        return self._published(likelihood, event), event

    def _spatial(self, actual: float) -> bool:
        """Whether actual lies beyond the range seen so far by more than spatial_tolerance of it."""
        tolerance = self.settings.spatial_tolerance
        outside = False
        low, high = self.stats[LOW], self.stats[HIGH]
        if tolerance > 0.0 and high > low:
            margin = tolerance * (high - low)
            outside = actual > high + margin or actual < low - margin
        return outside

    def window_size(self) -> int:
        """Raw scores in the reference window now: the finished blocks in the ring + the partial one."""
        s = self.settings
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
        keep = 1.0 - 1.0 / self.settings.scale_window
        stats = self.stats
        stats[SCALE_SUM_SQ] = keep * stats[SCALE_SUM_SQ] + clipped_sq
        stats[SCALE_WEIGHT] = keep * stats[SCALE_WEIGHT] + 1.0

    def _push(self, raw: float) -> None:
        s, stats = self.settings, self.stats
        stats[RECENT + self.count % s.short_window] = raw
        self.count += 1
        pushed = self.count - s.min_steps // 2
        if pushed <= 0:                                       # learning period: the scale settles
            return
        stats[BLOCK_SUM] += raw
        stats[BLOCK_SUM_SQ] += raw * raw
        if pushed % s.block_steps == 0:                       # block finished: it replaces the oldest
            slot = self._blocks_at + (pushed // s.block_steps - 1) % s.blocks
            stats[slot], stats[slot + s.blocks] = stats[BLOCK_SUM], stats[BLOCK_SUM_SQ]
            stats[BLOCK_SUM] = stats[BLOCK_SUM_SQ] = 0.0
            self._sum_window()

    def _sum_window(self) -> None:
        # Exactly rounded sums of the K block sums: no error carried from one block to the next.
        at, k = self._blocks_at, self.settings.blocks
        self.stats[WINDOW_SUM] = math.fsum(self.stats[at:at + k])
        self.stats[WINDOW_SUM_SQ] = math.fsum(self.stats[at + k:at + 2 * k])

    def _track_range(self, actual: float) -> None:
        if not math.isfinite(actual):
            return
        stats = self.stats
        low, high = stats[LOW], stats[HIGH]
        stats[LOW] = actual if math.isnan(low) else min(low, actual)
        stats[HIGH] = actual if math.isnan(high) else max(high, actual)

    def _advance_alert(self, score: float) -> str | None:
        s = self.settings
        step = self.count
        if self.anomalous:
            if score < s.clear_threshold:
                self.anomalous = False
                self.above_steps = 0
                return "clear"
            return None
        self.above_steps = self.above_steps + 1 if score >= s.threshold else 0
        refractory = self.last_alert_step is not None and step - self.last_alert_step <= s.refractory_steps
        if self.above_steps >= s.debounce_steps and not refractory:
            self.anomalous = True
            self.last_alert_step = step
            return "alert"
        return None

    def _published(self, score: float, event: str | None) -> float:
        """The score, held at or below clear_threshold for refractory_steps after an alert."""
        s = self.settings
        if event == "alert" or s.refractory_steps == 0 or self.last_alert_step is None:
            return score
        if self.count - self.last_alert_step <= s.refractory_steps:
            return min(score, s.clear_threshold)
        return score

    def to_state(self) -> dict:
        """Snapshot as a flat dict of numbers and float arrays (copies): the checkpoint stacks each
        key across streams into one array. from_state() continues bit-identically."""
        state = {"version": STATE_VERSION, "long_window": self.settings.long_window,
                 "short_window": self.settings.short_window, "prior_residual_std": self.prior_residual_std,
                 "prior_weight_steps": self.prior_weight_steps, "scale_sum_sq": self.stats[SCALE_SUM_SQ],
                 "scale_weight": self.stats[SCALE_WEIGHT], "recent": self.recent.copy(), "blocks": self.blocks.copy(),
                 "block_sum": self.stats[BLOCK_SUM], "block_sum_sq": self.stats[BLOCK_SUM_SQ], "count": self.count,
                 "low": self.stats[LOW], "high": self.stats[HIGH], "anomalous": self.anomalous,
                 "above_steps": self.above_steps,
                 "last_alert_step": NO_ALERT if self.last_alert_step is None else self.last_alert_step}
        if self.profile is not None:
            state.update(self.profile.to_state())
        return state

    def layout(self) -> tuple:
        """What fixes the keys and shapes of to_state(): states of equal layout stack together."""
        return self.settings.short_window, self.settings.blocks, self.profile is not None

    @staticmethod
    def stack_states(anomalies: list["StreamAnomaly"]) -> dict[str, np.ndarray]:
        """[a.to_state() for a in anomalies] stacked key by key (same keys and order, numbers as
        float64, arrays in their dtype; a test compares the bytes with stacking to_state() dicts),
        without a dict per stream: the flat stats arrays are joined into one matrix and sliced.
        Checkpoints are built on the engine loop, where a to_state() dict per stream cost ~100 ms
        at 10,000 streams. All anomalies must share one layout()."""
        n = len(anomalies)
        first = anomalies[0]
        short, k, at = first.settings.short_window, first.settings.blocks, first._blocks_at
        stats = np.frombuffer(b"".join(a.stats for a in anomalies), np.float64).reshape(n, -1)

        def column(values) -> np.ndarray:
            return np.fromiter(values, np.float64, n)
        state = {"version": np.full(n, float(STATE_VERSION)),
                 "long_window": column(a.settings.long_window for a in anomalies),
                 "short_window": np.full(n, float(short)),
                 "prior_residual_std": column(a.prior_residual_std for a in anomalies),
                 "prior_weight_steps": column(a.prior_weight_steps for a in anomalies),
                 "scale_sum_sq": stats[:, SCALE_SUM_SQ], "scale_weight": stats[:, SCALE_WEIGHT],
                 "recent": stats[:, RECENT:at], "blocks": stats[:, at:at + 2 * k].reshape(n, 2, k),
                 "block_sum": stats[:, BLOCK_SUM], "block_sum_sq": stats[:, BLOCK_SUM_SQ],
                 "count": column(a.count for a in anomalies), "low": stats[:, LOW], "high": stats[:, HIGH],
                 "anomalous": column(a.anomalous for a in anomalies),
                 "above_steps": column(a.above_steps for a in anomalies),
                 "last_alert_step": column(NO_ALERT if a.last_alert_step is None else a.last_alert_step
                                           for a in anomalies)}
        if first.profile is not None:
            state.update(DailyProfile.stack_states([a.profile for a in anomalies]))
        return state

    @classmethod
    def from_state(cls, settings: AnomalySettings, data: dict) -> "StreamAnomaly":
        """Raises ValueError (one line) for a state of another version or other settings."""
        version = data.get("version")                    # a float64 when read from a checkpoint
        if version != STATE_VERSION:
            raise ValueError(f"anomaly state version {version if version is None else int(version)}, "
                             f"expected {STATE_VERSION}")
        for key in ("long_window", "short_window"):
            if int(data[key]) != getattr(settings, key):
                raise ValueError(f"anomaly state was built with {key}={data[key]}, "
                                 f"settings say {key}={getattr(settings, key)}")
        if DailyProfile.in_state(data) != settings.daily_profile:
            raise ValueError(f"anomaly state {'has' if DailyProfile.in_state(data) else 'lacks'} a daily "
                             f"profile, settings say daily_profile={settings.daily_profile}")
        self = cls(settings, float(data["prior_residual_std"]), float(data["prior_weight_steps"]))
        if settings.daily_profile:
            self.profile = DailyProfile.from_state(settings.scale_window, data)
        stats = self.stats
        stats[SCALE_SUM_SQ], stats[SCALE_WEIGHT] = float(data["scale_sum_sq"]), float(data["scale_weight"])
        self.recent[:] = _exact_shape(data["recent"], self.recent.shape, "recent")
        self.blocks[:] = _exact_shape(data["blocks"], self.blocks.shape, "blocks")
        stats[BLOCK_SUM], stats[BLOCK_SUM_SQ] = float(data["block_sum"]), float(data["block_sum_sq"])
        self._sum_window()
        self.count = int(data["count"])
        stats[LOW], stats[HIGH] = float(data["low"]), float(data["high"])
        self.anomalous, self.above_steps = bool(data["anomalous"]), int(data["above_steps"])
        last = int(data["last_alert_step"])
        self.last_alert_step = None if last == NO_ALERT else last
        return self


def _exact_shape(values, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.shape != shape:
        raise ValueError(f"anomaly state {name} has shape {array.shape}, expected {shape}")
    return array
