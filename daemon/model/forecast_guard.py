"""Forecast guard: how much of a generic model's predicted change to publish, learnt per stream.

A generic model (models/default) forecasts the next change of streams it has never seen. On some
it helps; on others its output noise is larger than the stream's real steps (a smooth ramp whose
steps are a thousandth of its spread), and its forecast is several times worse than repeating
the last value. The guard keeps, for each stream, the least-squares factor a that best scales
the model's past predicted changes u onto the changes that followed, v (both in units of the
stream's running scale at prediction time, exponentially weighted with `halflife_steps`):
a = clip(sum(u v) / sum(u u), 0, 1), and publishes last value + a x predicted change. a near 1:
the model as it is; a near 0: persistence. It depends only on the past. Until WARMUP_STEPS
pairs have been seen, a = 1.

Only the published forecast is guarded: the anomaly score keeps judging values against the
model's own forecast (or the daily profile), so the guard changes no alert.
State: 6 floats per stream, the stream's own (StreamInfo.guard), checkpointed column-wise like
the other per-stream states (a checkpoint or a reload from a model without a guard starts the
stream with a fresh one).
"""
from __future__ import annotations

import math

import numpy as np

WARMUP_STEPS = 20


class ForecastGuard:
    __slots__ = ("keep", "xy", "xx", "change", "scale", "last", "seen")

    def __init__(self, halflife_steps: float):
        if not (math.isfinite(halflife_steps) and halflife_steps > 0):
            raise ValueError(f"forecast guard halflife_steps must be finite and > 0, got {halflife_steps!r}")
        self.keep = 0.5 ** (1.0 / halflife_steps)
        self.xy = self.xx = 0.0
        self.change = self.scale = self.last = math.nan    # the last prediction: change, scale, value
        self.seen = 0

    def observe(self, value: float) -> None:
        """A new value: learn from how the change the model predicted for it came out."""
        if math.isfinite(self.change) and self.scale > 0 and math.isfinite(value):
            u, v = self.change / self.scale, (value - self.last) / self.scale
            self.xy = self.keep * self.xy + u * v
            self.xx = self.keep * self.xx + u * u
            self.seen += 1

    def factor(self) -> float:
        if self.seen < WARMUP_STEPS or self.xx <= 0.0:
            return 1.0
        return min(max(self.xy / self.xx, 0.0), 1.0)

    def publish(self, value: float, forecast: float, scale: float) -> float:
        """The model's forecast made at `value` -> the forecast to publish; remembers the prediction."""
        change = forecast - value
        self.change, self.scale, self.last = change, scale, value
        return value + self.factor() * change

    # --- checkpoint (protocols.StackableState) ----------------------------------------------
    FIELDS = ("xy", "xx", "change", "scale", "last", "seen")

    def to_state(self) -> dict:
        return {"values": self.to_array()}

    def layout(self) -> tuple:
        return ()

    @staticmethod
    def stack_states(guards: list["ForecastGuard"]) -> dict[str, np.ndarray]:
        return {"values": np.stack([g.to_array() for g in guards])}

    @classmethod
    def from_state(cls, halflife_steps: float, data: dict) -> "ForecastGuard":
        return cls.from_array(halflife_steps, data["values"])

    def to_array(self) -> np.ndarray:
        return np.array([getattr(self, name) for name in self.FIELDS], np.float64)

    @classmethod
    def from_array(cls, halflife_steps: float, data) -> "ForecastGuard":
        """From to_array()'s 6 floats (also how a checkpoint of commit 1c1d77e..40bc311 kept the
        guard: inside the online scaler's state, key "guard")."""
        values = np.asarray(data, np.float64)
        if values.shape != (6,):
            raise ValueError(f"forecast guard state has shape {values.shape}, expected (6,)")
        guard = cls(halflife_steps)
        guard.xy, guard.xx, guard.change, guard.scale, guard.last = (float(v) for v in values[:5])
        guard.seen = int(values[5])
        return guard
