"""Per-stream anomaly score from forecast residuals (numpy/stdlib only).

Each step, for residual r = actual - expected:
1. z = r / scale, where scale is an exponentially weighted RMS of past residuals (time constant
   `scale_window` steps) seeded with the model's prior residual std as PRIOR_WEIGHT_STEPS
   pseudo-observations, so a noisier stream is judged against its own noise. Updates are
   clipped at SCALE_CLIP_Z * scale so one outlier cannot blow the scale up.
2. raw = min(1, -log10(2 Q(|z|)) / SURPRISE_CAP_DECADES): the two-sided Gaussian surprise in
   decades, bounded. On Gaussian residuals raw is small (mean ~0.02) and a 10-sigma residual
   is 1, so one spike moves a short-window mean by many long-window standard deviations.
3. The anomaly likelihood of Ahmad et al. 2017: with mu, sigma the mean and std of the raw
   scores in the last `long_window` steps *before* this one and m the mean of the last
   `short_window` raw scores including this one, L = 1 - Q((m - mu) / sigma).
The published anomaly score is L itself (not NAB-HTM's log scaling), so the default alert
threshold 0.99 means a short-window level 2.33 long-window stds above the mean (on simulated
Gaussian residuals: no alert in 200,000 steps; a single 8-sigma residual alerts). The score
depends only on past residuals and the current one. Cost: O(1) per step (running sums,
recomputed exactly once per lap of the ring); memory: one long_window float64 ring.

Alerts: "alert" when the score has been >= threshold for debounce_steps consecutive steps and
more than refractory_steps have passed since the last alert; "clear" when it drops below
clear_threshold. Non-finite residuals are skipped (no state change, no score).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PRIOR_WEIGHT_STEPS = 20.0      # the prior scale counts as this many residuals
SCALE_CLIP_Z = 5.0             # residuals beyond 5 scales update the scale as if at 5 scales
SCALE_FLOOR_FRACTION = 1e-3    # scale never drops below this fraction of the prior std
SURPRISE_CAP_DECADES = 20.0    # -log10 tail probability that maps to raw score 1
MIN_LONG_STD = 1e-3            # floor for sigma of raw scores (flat streams)
STATE_VERSION = 1


@dataclass(frozen=True)
class AnomalySettings:
    threshold: float = 0.99        # score at or above which a step counts towards an alert
    clear_threshold: float = 0.9   # score below which an active alert clears
    debounce_steps: int = 1        # consecutive steps at/above threshold needed to alert
    refractory_steps: int = 0      # steps after an alert during which no new alert starts
    long_window: int = 2000        # steps of raw scores in the reference distribution
    short_window: int = 10         # steps averaged for the current level
    min_steps: int = 100           # residuals seen before a score is reported
    scale_window: int = 500        # time constant (steps) of the residual scale estimate

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
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"anomaly setting {key}={getattr(self, key)!r} is out of range")


def gaussian_tail(z: float) -> float:
    """Q(z) = P(N(0,1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def surprise_score(z: float) -> float:
    """Bounded raw score in [0, 1] of a normalised residual: capped two-sided surprise in decades."""
    tail = math.erfc(min(abs(z), 30.0) / math.sqrt(2.0))  # 2 Q(|z|), > 0 up to |z| = 30
    return min(1.0, -math.log10(tail) / SURPRISE_CAP_DECADES) if tail < 1.0 else 0.0


class StreamAnomaly:
    """One stream's residual statistics, likelihood and alert state."""

    def __init__(self, settings: AnomalySettings, prior_residual_std: float):
        if not (math.isfinite(prior_residual_std) and prior_residual_std > 0.0):
            raise ValueError(f"prior_residual_std must be finite and > 0, got {prior_residual_std!r}")
        self.settings = settings
        self.prior_residual_std = float(prior_residual_std)
        self.scale_sum_sq = PRIOR_WEIGHT_STEPS * self.prior_residual_std ** 2
        self.scale_weight = PRIOR_WEIGHT_STEPS
        self.raw = np.zeros(settings.long_window, np.float64)  # ring of raw scores
        self.index = 0           # next slot to write
        self.count = 0           # residuals seen
        self.raw_sum = 0.0       # running sums over the filled part of the ring
        self.raw_sum_sq = 0.0
        self.anomalous = False
        self.above_steps = 0     # consecutive steps with score >= threshold
        self.last_alert_step: int | None = None

    @property
    def scale(self) -> float:
        floor = SCALE_FLOOR_FRACTION * self.prior_residual_std
        return max(math.sqrt(self.scale_sum_sq / self.scale_weight), floor)

    def update(self, actual: float, expected: float) -> tuple[float | None, str | None]:
        """Score this step's residual; returns (score or None before min_steps, event or None)."""
        residual = float(actual) - float(expected)
        if not math.isfinite(residual):
            return None, None
        scale = self.scale
        z = residual / scale
        raw = surprise_score(z)
        ready = self.count >= self.settings.min_steps
        if ready:
            mu_long, sigma_long = self._long_stats()
        self._update_scale(min(residual * residual, (SCALE_CLIP_Z * scale) ** 2))
        self._push(raw)
        if not ready:
            return None, None
        level = (self._short_mean() - mu_long) / sigma_long
        score = 1.0 - gaussian_tail(level)
        return score, self._advance_alert(score)

    def _long_stats(self) -> tuple[float, float]:
        n = min(self.count, self.settings.long_window)
        mean = self.raw_sum / n
        var = max(self.raw_sum_sq - n * mean * mean, 0.0) / (n - 1)
        return mean, max(math.sqrt(var), MIN_LONG_STD)

    def _update_scale(self, clipped_sq: float) -> None:
        keep = 1.0 - 1.0 / self.settings.scale_window
        self.scale_sum_sq = keep * self.scale_sum_sq + clipped_sq
        self.scale_weight = keep * self.scale_weight + 1.0

    def _push(self, raw: float) -> None:
        old = self.raw[self.index]  # 0.0 while the ring is filling
        self.raw[self.index] = raw
        self.raw_sum += raw - old
        self.raw_sum_sq += raw * raw - old * old
        self.index = (self.index + 1) % self.settings.long_window
        self.count += 1
        if self.index == 0:  # once per lap: drop accumulated rounding error
            self.raw_sum = float(self.raw.sum())
            self.raw_sum_sq = float(np.dot(self.raw, self.raw))

    def _short_mean(self) -> float:
        k = min(self.settings.short_window, self.count)
        return float(self.raw.take(range(self.index - k, self.index), mode="wrap").mean())

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

    def to_state(self) -> dict:
        """JSON-serialisable snapshot; from_state() continues bit-identically."""
        return {"version": STATE_VERSION, "prior_residual_std": self.prior_residual_std,
                "scale_sum_sq": self.scale_sum_sq, "scale_weight": self.scale_weight,
                "raw": self.raw.tolist(), "index": self.index, "count": self.count,
                "raw_sum": self.raw_sum, "raw_sum_sq": self.raw_sum_sq,
                "anomalous": self.anomalous, "above_steps": self.above_steps,
                "last_alert_step": self.last_alert_step}

    @classmethod
    def from_state(cls, settings: AnomalySettings, data: dict) -> "StreamAnomaly":
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"anomaly state version {data.get('version')!r}, expected {STATE_VERSION}")
        if len(data["raw"]) != settings.long_window:
            raise ValueError(f"anomaly state has a ring of {len(data['raw'])} steps, "
                             f"settings say long_window={settings.long_window}")
        self = cls(settings, float(data["prior_residual_std"]))
        self.scale_sum_sq = float(data["scale_sum_sq"])
        self.scale_weight = float(data["scale_weight"])
        self.raw = np.asarray(data["raw"], np.float64).copy()
        self.index, self.count = int(data["index"]), int(data["count"])
        self.raw_sum, self.raw_sum_sq = float(data["raw_sum"]), float(data["raw_sum_sq"])
        self.anomalous, self.above_steps = bool(data["anomalous"]), int(data["above_steps"])
        last = data["last_alert_step"]
        self.last_alert_step = None if last is None else int(last)
        return self
