"""Plain-numpy description of a streamable recurrent model, independent of Keras.

The Keras reader fills it in; the step-graph builder and the manifest read it. Weights keep
Keras' layouts (kernel (in, gates*units), gate order LSTM i,f,c,o and GRU z,r,h).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RecurrentLayer:
    name: str
    cell: str                  # "lstm" | "gru" | "rnn"
    units: int
    activation: str            # "tanh" (all) or "relu" (rnn only)
    kernel: np.ndarray         # (in, gates*units)
    recurrent_kernel: np.ndarray  # (units, gates*units)
    bias: np.ndarray | None    # (gates*units,) or GRU reset_after (2, 3*units)
    reset_after: bool = True   # GRU only

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.cell == "lstm" else ("h",)


@dataclass(frozen=True)
class DenseLayer:
    name: str
    kernel: np.ndarray         # (in, out)
    bias: np.ndarray | None    # (out,)
    activation: str            # linear | relu | tanh | sigmoid


@dataclass(frozen=True)
class ModelSpec:
    n_features: int
    recurrent: tuple[RecurrentLayer, ...]
    heads: tuple[DenseLayer, ...]
    # x_model = (x - input_mean) / input_std ; y = y_model * output_scale + output_offset
    input_mean: np.ndarray
    input_std: np.ndarray
    output_scale: np.ndarray
    output_offset: np.ndarray
    # True when the Keras model emits one output per step (last recurrent layer
    # return_sequences=True); the step model is the same either way.
    per_step_output: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_outputs(self) -> int:
        if self.heads:
            return int(self.heads[-1].kernel.shape[1])
        return self.recurrent[-1].units

    @property
    def cell(self) -> str:
        kinds = {layer.cell for layer in self.recurrent}
        return kinds.pop() if len(kinds) == 1 else "mixed"
