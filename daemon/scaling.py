"""Between sensor units and model space, as the manifest describes it.

inputs:  x_model = (x - mean) / std, features in manifest order (values, then calendar)
outputs: y = y_model * scale + offset, plus, for residual models, the current value of each
         target: the model forecasts the change, and the level is added back in float. That
         keeps the level (which spans the whole sensor range) out of the int8 path, where 8 bits
         of it would cost more than the model's own error.
"""
from __future__ import annotations

import numpy as np

from .artifact import Manifest
from .features import calendar_features


class IoScaling:
    def __init__(self, manifest: Manifest):
        values = manifest.value_features
        self.calendar = tuple(f for f in manifest.features if f not in values)
        self.mean = np.asarray(manifest.input_mean, np.float32)
        self.std = np.asarray(manifest.input_std, np.float32)
        horizon = manifest.horizon
        width = horizon * len(manifest.targets)
        # output scaling is stored per output (horizon * targets) or per target (tiled here)
        self.out_scale = _per_output(manifest.output_scale, width)
        self.out_offset = _per_output(manifest.output_offset, width)
        self.residual = manifest.output_residual
        # index of each target among the value features, repeated per horizon step (step-major)
        target_at = [values.index(t) if t in values else 0 for t in manifest.targets]
        self.base_index = np.tile(np.asarray(target_at, np.intp), horizon)

    def inputs(self, values: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
        """(batch, values) sensor units + (batch,) epoch seconds -> (batch, features) model space."""
        features = values.astype(np.float32)
        if self.calendar:
            calendar = calendar_features(timestamps, self.calendar).astype(np.float32)
            features = np.concatenate([features, calendar], axis=-1)
        return (features - self.mean) / self.std

    def outputs(self, y_model: np.ndarray, values: np.ndarray) -> np.ndarray:
        """(batch, horizon*targets) model space -> sensor units, given the values just seen."""
        y = y_model * self.out_scale + self.out_offset
        if self.residual:
            y = y + values[..., self.base_index]
        return y


def _per_output(values: tuple[float, ...], width: int) -> np.ndarray:
    array = np.asarray(values, np.float32)
    return array if array.size == width else np.tile(array, width // max(array.size, 1))
