"""Between sensor units and model space, as the manifest describes it.

inputs   fixed:  x_model = (x - mean) / std, features in manifest order (values, then calendar)
         online: each stream's own running centre and scale (OnlineScaler), so one model serves
                 streams it has never seen, whatever their units and level
outputs  y = y_model * scale + offset, times the stream's running scale when online, plus, for
         residual models, the current value of each target: the model forecasts the change and
         the level is added back in float. That keeps the level (which spans the whole sensor
         range) out of the int8 path, where 8 bits of it would cost more than the model's error.
"""
from __future__ import annotations

import math
from array import array
from functools import lru_cache

import numpy as np

from .artifact import Manifest
from .features import calendar_features
from .forecast_guard import ForecastGuard

# Fixed-scaled inputs are held within this many standard deviations of the training mean. No
# reading comes near it (machine_temperature's std is ~12 degrees: a million of them is 12
# million degrees), but a value near float32's limit, 3.4e38, would otherwise reach the
# recurrent cell at ~1e37, overflow its sums to inf and NaN, and leave the stream's state NaN for
# good: every later forecast of that stream empty. Online-normalised inputs are clipped far
# tighter already (`clip`, 10 scales).
FIXED_INPUT_LIMIT = 1e6


@lru_cache(maxsize=64)
def _scaler_params(halflife_steps: float, clip: float, min_scale: float) -> tuple[float, float, float]:
    """(alpha, clip, min_scale): one tuple shared by every stream of a model."""
    return 1.0 - 0.5 ** (1.0 / halflife_steps), float(clip), float(min_scale)


class OnlineScaler:
    """One stream's exponentially weighted mean and variance per value feature.

    z_t uses the statistics *before* x_t (the score depends only on the past); the output scale
    uses them after. Variance is bias-corrected for the first steps; the scale never falls below
    a floor so a flat line does not divide by zero.

    After WINSOR_AFTER_STEPS values the update is winsorised: a value beyond WINSOR_SCALES scales
    moves the statistics as one at WINSOR_SCALES scales would. One glitch reading (a 65535 from a
    sensor bus in an 85-degree stream: ~6,600 scales) then moves the mean by alpha x 100 scales and
    multiplies the variance by (1 - alpha)(1 + alpha x 100**2): the scale 5.4-fold at
    models/default's half-life of 250 steps, where learning the glitch whole made it 360-fold, and
    with it every forecast's predicted change, for ~1,000 steps. A real level shift still gets
    through: each step past the bound multiplies the variance by that factor again, so the scale
    reaches a shift of 1,000 scales in a few steps; meanwhile it errs small, which makes a residual
    model's forecast persistence-like rather than wild. A stream whose variance is still exactly 0
    (every value so far the same) has no scale to measure a change in: its first change is learnt
    whole.

    With 10,000s of streams per process each object and boxed number shows in the resident set,
    so a stream keeps two references: the model's shared parameters and one flat float64
    array.array [mean x n, var x n, count] (reads give plain floats; a count as a float64 is
    exact to 2**53 steps). Two lists of boxed floats and three more slots cost ~260 bytes more.
    """

    __slots__ = ("params", "state")
    DEFAULT_CLIP = 10.0
    DEFAULT_MIN_SCALE = 1e-3
    # The first values set the scale the bound is measured in: until a few have been seen it rests
    # on a handful of differences, and bounding against it would hold a normal stream's first real
    # changes back. 16 values estimate a spread to ~+-18% (1/sqrt(2 x 15)). 8 and 32 give the same
    # scores and alerts on all 147 development files.
    WINSOR_AFTER_STEPS = 16
    # Far beyond the model's own clip (10): steps of 10-100 scales are real on bursty and step-like
    # streams, and learning them as 10 cost anomaly windows there (nab-dev 61.2 -> 55.1). At 100
    # no file's score moves the user's way, at 50 and 200 one SMAP row (int8), at 30 nab-dev loses
    # a window; docs/anomaly.md, "One glitch reading and the online scaler".
    WINSOR_SCALES = 100.0

    def __init__(self, n_values: int, halflife_steps: float, clip: float = DEFAULT_CLIP,
                 min_scale: float = DEFAULT_MIN_SCALE):
        self.params = _scaler_params(float(halflife_steps), float(clip), float(min_scale))
        self.state = array("d", [0.0]) * (2 * n_values + 1)

    @property
    def n_values(self) -> int:
        return len(self.state) // 2

    @property
    def mean(self) -> list[float]:
        return self.state[: self.n_values].tolist()

    @property
    def var(self) -> list[float]:
        n = self.n_values
        return self.state[n: 2 * n].tolist()

    @property
    def count(self) -> int:
        return int(self.state[-1])

    def _scale(self, k: int) -> float:
        state, count = self.state, self.state[-1]
        if count == 0:
            return 1.0
        alpha, _, min_scale = self.params
        correction = 1.0 - (1.0 - alpha) ** count
        spread = math.sqrt(state[len(state) // 2 + k] / correction) if correction > 0 else 0.0
        return max(spread, min_scale * (1.0 + abs(state[k])))

    def observe(self, values) -> tuple[list[float], list[float], list[float]]:
        """-> (z for this input, centre after it, scale after it), one entry per value feature."""
        state, n = self.state, len(self.state) // 2
        alpha, clip, _ = self.params
        first = state[-1] == 0
        winsorise = state[-1] >= self.WINSOR_AFTER_STEPS
        z = []
        for k, x in enumerate(values):       # feature k reads and writes only its own mean and var
            if first:
                z.append(0.0)
                state[k] = float(x)
                continue
            scale = self._scale(k)                             # before this value
            diff = x - state[k]
            z.append(max(-clip, min(clip, diff / scale)))
            if winsorise and state[n + k] > 0.0:
                bound = self.WINSOR_SCALES * scale
                diff = max(-bound, min(bound, diff))
            state[k] += alpha * diff
            state[n + k] = (1.0 - alpha) * (state[n + k] + alpha * diff * diff)
        state[-1] += 1.0
        return z, state[:n].tolist(), [self._scale(k) for k in range(len(values))]

    def to_state(self) -> dict:
        """Numbers and float64 arrays (the checkpoint stacks each key across streams); exact."""
        return {"mean": np.array(self.mean, np.float64), "var": np.array(self.var, np.float64), "count": self.count}

    def layout(self) -> tuple:
        """What fixes the keys and shapes of to_state(): states of equal layout stack together."""
        return (self.n_values,)

    @staticmethod
    def stack_states(scalers: list["OnlineScaler"]) -> dict[str, np.ndarray]:
        """[s.to_state() for s in scalers] stacked key by key (see StreamAnomaly.stack_states)."""
        n = len(scalers)
        flat = np.frombuffer(b"".join(s.state for s in scalers), np.float64).reshape(n, -1)
        width = flat.shape[1] // 2
        return {"mean": flat[:, :width].copy(), "var": flat[:, width: 2 * width].copy(), "count": flat[:, -1].copy()}

    @classmethod
    def from_state(cls, data: dict, halflife_steps: float, clip: float, min_scale: float) -> "OnlineScaler":
        mean, var = np.asarray(data["mean"], np.float64).tolist(), np.asarray(data["var"], np.float64).tolist()
        if len(mean) != len(var):
            raise ValueError(f"online scaler state has {len(mean)} means but {len(var)} variances")
        scaler = cls(len(mean), halflife_steps, clip, min_scale)
        scaler.state = array("d", [*mean, *var, float(int(data["count"]))])
        return scaler


class IoScaling:
    def __init__(self, manifest: Manifest):
        values = manifest.value_features
        self.n_values = len(values)
        self.calendar = tuple(f for f in manifest.features if f not in values)
        self.mean = np.asarray(manifest.input_mean, np.float32)
        self.std = np.asarray(manifest.input_std, np.float32)
        width = manifest.horizon * len(manifest.targets)
        # output scaling is stored per output (horizon * targets) or per target (tiled here)
        self.out_scale = _per_output(manifest.output_scale, width)
        self.out_offset = _per_output(manifest.output_offset, width)
        self.residual = manifest.output_residual
        self.online = manifest.online_normalization
        online = manifest.raw.get("input_scaling", {})
        self.halflife_steps = float(online.get("halflife_steps", 1000.0))
        self.clip = float(online.get("clip", 10.0))
        self.min_scale = float(online.get("min_scale", 1e-3))
        guard = manifest.raw.get("forecast_guard")
        if guard is not None and not (isinstance(guard, dict) and "halflife_steps" in guard):
            raise ValueError("manifest forecast_guard must be a table with halflife_steps")
        self.guard_halflife_steps = None if guard is None else float(guard["halflife_steps"])
        if guard is not None and not set(manifest.targets) <= set(values):
            raise ValueError("forecast_guard needs every target among the model's inputs (it scales the "
                             "change from each target's last value)")
        self.horizon, self.n_targets = manifest.horizon, len(manifest.targets)
        # index of each target among the value features, repeated per horizon step (step-major)
        target_at = [values.index(t) if t in values else 0 for t in manifest.targets]
        self.base_index = np.tile(np.asarray(target_at, np.intp), manifest.horizon)

    def new_scaler(self) -> OnlineScaler:
        return OnlineScaler(self.n_values, self.halflife_steps, self.clip, self.min_scale)

    def restore_scaler(self, data: dict) -> OnlineScaler:
        return OnlineScaler.from_state(data, self.halflife_steps, self.clip, self.min_scale)

    # --- the forecast guard (forecast_guard.py), for models whose manifest asks for one ---------
    def new_guard(self) -> ForecastGuard:
        return ForecastGuard(self.guard_halflife_steps, self.horizon, self.n_targets)

    def restore_guard(self, data: dict) -> ForecastGuard:
        return ForecastGuard.from_state(self.guard_halflife_steps, data, self.horizon, self.n_targets)

    def adopt_guard(self, guard: ForecastGuard | None) -> ForecastGuard | None:
        """A stream's guard made for another model (a reload keeps the stream table when the state
        shapes match) -> this model's: None for a model without a guard or with other outputs,
        its learnt sums kept with this model's half-life from now on otherwise (a stream without
        one starts fresh at its next message)."""
        if self.guard_halflife_steps is None or guard is None or \
                guard.layout() != (self.horizon, self.n_targets):
            return None
        guard.params = self.new_guard().params
        return guard

    def inputs(self, values: np.ndarray, timestamps: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """(batch, values) sensor units (+ online z) and (batch,) epoch seconds -> (batch, features)."""
        features = values.astype(np.float32)
        if self.calendar:
            calendar = calendar_features(timestamps, self.calendar).astype(np.float32)
            features = np.concatenate([features, calendar], axis=-1)
        scaled = self.standardise(features)
        if z is not None:
            scaled[:, : self.n_values] = z
        return scaled

    def standardise(self, features: np.ndarray) -> np.ndarray:
        """(x - mean) / std in float32, held within FIXED_INPUT_LIMIT (an overflow to inf included)."""
        with np.errstate(over="ignore"):
            scaled = ((features - self.mean) / self.std).astype(np.float32, copy=False)
        return np.clip(scaled, -FIXED_INPUT_LIMIT, FIXED_INPUT_LIMIT, out=scaled)

    def outputs(self, y_model: np.ndarray, values: np.ndarray, centres: np.ndarray | None = None,
                scales: np.ndarray | None = None) -> np.ndarray:
        """(batch, horizon*targets) model space -> sensor units, given the values just seen."""
        y = y_model * self.out_scale + self.out_offset
        if scales is not None:                                  # online: back to the stream's units
            y = y * scales[..., self.base_index]
            if not self.residual:
                y = y + centres[..., self.base_index]
        if self.residual:
            y = y + values[..., self.base_index]
        return y

    def sequence(self, x_raw: np.ndarray):
        """A whole sequence (steps, features) -> (x_model, centres, scales) as the engine computes them
        for one stream (centres/scales None for fixed scaling)."""
        values = x_raw[:, : self.n_values]
        if not self.online:
            return self.standardise(x_raw), None, None
        scaler = self.new_scaler()
        z, centres, scales = zip(*(scaler.observe(row.tolist()) for row in values))
        x_model = self.standardise(x_raw)
        x_model[:, : self.n_values] = np.asarray(z, np.float32)
        return x_model, np.asarray(centres, np.float32), np.asarray(scales, np.float32)


def _per_output(values: tuple[float, ...], width: int) -> np.ndarray:
    array = np.asarray(values, np.float32)
    return array if array.size == width else np.tile(array, width // max(array.size, 1))
