"""Forecast guard: how much of a model's predicted change to publish, learnt per stream.

A model forecasts the change of a stream from its last value. On some streams that helps; on
others the model's output noise is larger than the stream's real steps (a generic model on a
smooth ramp whose steps are a thousandth of its spread), or the stream has left the regime the
model was trained on (a trained model after a failure or a level shift), and the forecast is
worse than repeating the last value. The guard keeps, for each stream and each output (horizon
step k, target), the least-squares factor a that best scales the model's past predicted changes
u (forecast for k steps ahead - the value it was made at) onto the changes that followed over
those k steps, v (both in units of the stream's running scale at prediction time for online
models, sensor units for fixed-scaling ones; exponentially weighted with `halflife_steps`):
a = clip(sum(u v) / sum(u u), 0, 1), and publishes last value + a x predicted change. a near 1:
the model as it is; a near 0: persistence. It depends only on the past. Until an output has
seen WARMUP_STEPS pairs, its a = 1.

Only the published forecast is guarded: the anomaly score keeps judging values against the
model's own forecast (or the daily profile), so the guard changes no alert.
State per stream: for H horizon steps and T targets (W = H*T outputs), 3W sums and the last H
predictions (H*W changes, H*T values and scales), the stream's own (StreamInfo.guard),
checkpointed column-wise like the other per-stream states. A checkpoint or a reload from a
model without a guard, or with another horizon or targets, starts the stream with a fresh one.
"""
from __future__ import annotations

import math
from array import array
from functools import lru_cache

import numpy as np

WARMUP_STEPS = 20


@lru_cache(maxsize=64)
def _guard_params(halflife_steps: float, horizon: int, targets: int) -> tuple[float, int, int]:
    """(keep, horizon, targets): one tuple shared by every stream of a model."""
    return 0.5 ** (1.0 / halflife_steps), horizon, targets


class ForecastGuard:
    """One stream's guard. All its numbers live in one flat float64 array (about 180 bytes for
    one output: 10,000 streams' guards are ~2 MB, where a list per field was ~8 MB):

        [xy (W) | xx (W) | seen (W) | H prediction slots, newest first: changes (W), values (T),
         scales (T)]

    An empty slot (no prediction made there yet) is NaN. What all streams of a model share, the
    per-step weight and the layout, is one tuple (`params`): a boxed float and two more slots per
    stream cost 40 bytes."""

    __slots__ = ("params", "state")

    def __init__(self, halflife_steps: float, horizon: int = 1, targets: int = 1):
        if not (math.isfinite(halflife_steps) and halflife_steps > 0):
            raise ValueError(f"forecast guard halflife_steps must be finite and > 0, got {halflife_steps!r}")
        self.params = _guard_params(float(halflife_steps), int(horizon), int(targets))
        width = horizon * targets
        self.state = array("d", [0.0] * (3 * width) + [math.nan] * (horizon * (width + 2 * targets)))

    @property
    def keep(self) -> float:
        """Weight of the past per step (0.5 ** (1 / halflife_steps))."""
        return self.params[0]

    @property
    def horizon(self) -> int:
        return self.params[1]

    @property
    def targets(self) -> int:
        return self.params[2]

    @property
    def seen(self) -> list[int]:
        """Pairs learnt from, per output."""
        width = self.horizon * self.targets
        return [int(n) for n in self.state[2 * width: 3 * width]]

    def observe(self, values) -> None:
        """New values of the targets: learn from how each earlier prediction's output for this
        step came out (the prediction made k steps ago, its horizon step k)."""
        state, (keep, horizon, targets) = self.state, self.params
        width = horizon * targets
        slot = width + 2 * targets
        for k in range(horizon):
            at = 3 * width + k * slot                       # the prediction made k + 1 steps ago
            for t in range(targets):
                j = k * targets + t                         # its output for horizon step k + 1
                change, last, scale, value = state[at + j], state[at + width + t], \
                    state[at + width + targets + t], values[t]
                if math.isfinite(change) and scale > 0 and math.isfinite(value):
                    u, v = change / scale, (value - last) / scale
                    state[j] = keep * state[j] + u * v
                    state[width + j] = keep * state[width + j] + u * u
                    state[2 * width + j] += 1.0

    def factors(self) -> list[float]:
        """The share of the predicted change published now, per output (step-major)."""
        state, width = self.state, self.horizon * self.targets
        return [1.0 if state[2 * width + j] < WARMUP_STEPS or state[width + j] <= 0.0 else
                min(max(state[j] / state[width + j], 0.0), 1.0) for j in range(width)]

    def publish(self, values, forecast, scales) -> list[float]:
        """The model's forecast (W,) made at the targets' `values` (T,), with the stream's scale
        per target (T,; 1 for fixed scaling) -> the forecast to publish; remembers the prediction."""
        state, (_, horizon, targets) = self.state, self.params
        width = horizon * targets
        slot, first = width + 2 * targets, 3 * width
        if horizon > 1:                                # the older predictions move one slot on
            state[first + slot:] = state[first: len(state) - slot]
        changes = [f - values[j % targets] for j, f in enumerate(forecast)]
        state[first: first + slot] = array("d", [*changes, *values, *scales])
        return [values[j % targets] + a * change for j, (a, change) in enumerate(zip(self.factors(), changes))]

    # --- checkpoint (protocols.StackableState) ----------------------------------------------
    def to_state(self) -> dict:
        return {key: column[0] for key, column in self.stack_states([self]).items()}

    def layout(self) -> tuple:
        return (self.horizon, self.targets)

    @staticmethod
    def stack_states(guards: list["ForecastGuard"]) -> dict[str, np.ndarray]:
        """Guards of one layout, column-wise; predictions not made yet are NaN."""
        horizon, targets = guards[0].horizon, guards[0].targets
        width = horizon * targets
        flat = np.frombuffer(b"".join(g.state.tobytes() for g in guards), np.float64).reshape(len(guards), -1)
        slots = flat[:, 3 * width:].reshape(len(guards), horizon, width + 2 * targets)
        return {"xy": flat[:, :width].copy(), "xx": flat[:, width: 2 * width].copy(),
                "seen": flat[:, 2 * width: 3 * width].copy(), "change": slots[:, :, :width].copy(),
                "last": slots[:, :, width: width + targets].copy(), "scale": slots[:, :, width + targets:].copy()}

    @classmethod
    def from_state(cls, halflife_steps: float, data: dict, horizon: int = 1, targets: int = 1) -> "ForecastGuard":
        """A guard of this layout from to_state(); ValueError if the state has another layout.
        Also reads the 6 floats (`values`: xy, xx, change, scale, last, seen) of a one-output guard
        as commits 1c1d77e..47604cf kept it (inside the online scaler's state until 40bc311)."""
        if "values" in data:
            data = _one_output_state(data["values"])
        width = horizon * targets
        columns = {key: np.asarray(data[key], np.float64) for key in ("xy", "xx", "seen", "change", "last", "scale")}
        expected = {"xy": (width,), "xx": (width,), "seen": (width,), "change": (horizon, width),
                    "last": (horizon, targets), "scale": (horizon, targets)}
        for key, shape in expected.items():
            if columns[key].shape != shape:
                raise ValueError(f"forecast guard state {key} has shape {columns[key].shape}, expected {shape}")
        slots = np.concatenate([columns["change"], columns["last"], columns["scale"]], axis=1)
        guard = cls(halflife_steps, horizon, targets)
        guard.state = array("d", np.concatenate([columns["xy"], columns["xx"], columns["seen"],
                                                 slots.reshape(-1)]).tolist())
        return guard


def _one_output_state(values) -> dict:
    values = np.asarray(values, np.float64)
    if values.shape != (6,):
        raise ValueError(f"forecast guard state has shape {values.shape}, expected (6,)")
    xy, xx, change, scale, last, seen = values.tolist()
    return {"xy": [xy], "xx": [xx], "seen": [seen], "change": [[change]], "last": [[last]], "scale": [[scale]]}


def guarded_sequence(halflife_steps: float, forecast: np.ndarray, values: np.ndarray,
                     scales: np.ndarray | None = None) -> np.ndarray:
    """One stream's model forecasts (rows, H*T) made at each row of `values` (rows, T; at least as
    many rows), with its scale per target (rows, T; None: fixed scaling) -> what the engine
    publishes with a guard: the same observe / publish per row (train's and convert's skill
    reports use it, so they report what serve sends)."""
    rows, width = forecast.shape
    targets = values.shape[1]
    guard = ForecastGuard(halflife_steps, width // targets, targets)
    published = np.empty_like(forecast)
    ones = [1.0] * targets
    for row, (row_values, row_forecast) in enumerate(zip(values[:rows].tolist(), forecast.tolist())):
        guard.observe(row_values)
        published[row] = guard.publish(row_values, row_forecast, ones if scales is None else scales[row].tolist())
    return published
