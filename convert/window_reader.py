"""Read a Keras model into a WindowSpec: its recurrent chain unrolled over a fixed window (issue 8).

A model with a Bidirectional layer sees the future of its input, so it cannot advance one step
per message; it becomes a *window model* instead: fixed W steps in, outputs per step or one per
window. Accepted chain: [InputLayer] [Normalization] (LSTM|GRU|SimpleRNN|Bidirectional(one of
them)){1,3} [Dropout...] Dense* [Rescaling], Bidirectional with merge_mode concat, sum, ave or mul.
The layer walk and the per-layer checks are keras_reader's (walk_layers, with the
Bidirectional-aware reader below as its recurrent hook), so both converters refuse alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConversionError
from .keras_reader import _RECURRENT, _WHY_NOT, _recurrent_layer, walk_layers
from .model_spec import DenseLayer, RecurrentLayer

MERGE_MODES = ("concat", "sum", "ave", "mul")
MAX_WINDOW = 1024        # the graph is unrolled: W steps x layers x directions of cell ops


@dataclass(frozen=True)
class WindowLayer:
    name: str
    forward: RecurrentLayer
    backward: RecurrentLayer | None      # Bidirectional: the half that reads the window last step first
    merge_mode: str | None               # concat | sum | ave | mul (Bidirectional only)
    return_sequences: bool

    @property
    def width(self) -> int:
        if self.backward is not None and self.merge_mode == "concat":
            return self.forward.units + self.backward.units
        return self.forward.units


@dataclass(frozen=True)
class WindowSpec:
    n_features: int
    window: int
    layers: tuple[WindowLayer, ...]
    heads: tuple[DenseLayer, ...]
    input_mean: np.ndarray               # x_model = (x - input_mean) / input_std
    input_std: np.ndarray
    output_scale: np.ndarray             # y = y_model * output_scale + output_offset
    output_offset: np.ndarray

    @property
    def per_step_output(self) -> bool:
        return self.layers[-1].return_sequences

    @property
    def n_outputs(self) -> int:
        return int(self.heads[-1].kernel.shape[1]) if self.heads else self.layers[-1].width

    @property
    def cell(self) -> str:
        kinds = {("bi" if l.backward is not None else "") + l.forward.cell for l in self.layers}
        return kinds.pop() if len(kinds) == 1 else "mixed"


def is_window_model(model) -> bool:
    return any(type(layer).__name__ == "Bidirectional" for layer in model.layers)


def window_length(model, window: int | None) -> int:
    """W: the model's fixed input length, else --window; a conflict or neither is an error."""
    fixed = model.inputs[0].shape[1]
    if fixed is not None:
        if window and window != fixed:
            raise ConversionError(f"--window {window}: model '{model.name}' has a fixed input of {fixed} steps")
        window = int(fixed)
    if not window:
        bidirectional = next((l for l in model.layers if type(l).__name__ == "Bidirectional"), None)
        where = f"layer '{bidirectional.name}' (Bidirectional): " if bidirectional else ""
        raise ConversionError(f"{where}{_WHY_NOT['Bidirectional']}; the model's input length is not fixed, "
                              "so give the window with --window W")
    if not 1 <= window <= MAX_WINDOW:
        raise ConversionError(f"window {window}: expected 1 to {MAX_WINDOW} steps")
    return int(window)


def _window_layer(layer, n_in: int) -> WindowLayer:
    if type(layer).__name__ != "Bidirectional":
        return_sequences = bool(layer.get_config().get("return_sequences", False))
        return WindowLayer(layer.name, _recurrent_layer(layer, n_in), None, None, return_sequences)
    merge = layer.get_config().get("merge_mode")
    if merge not in MERGE_MODES:
        raise ConversionError(f"layer '{layer.name}' (Bidirectional): merge_mode {merge!r} is not supported "
                              f"(expected one of {', '.join(MERGE_MODES)})")
    for half in (layer.forward_layer, layer.backward_layer):
        if type(half).__name__ not in _RECURRENT:
            raise ConversionError(f"layer '{layer.name}' (Bidirectional): wraps {type(half).__name__}; "
                                  "only LSTM, GRU and SimpleRNN are supported")
    forward = _recurrent_layer(layer.forward_layer, n_in)
    backward = _recurrent_layer(layer.backward_layer, n_in, backward_half=True)
    if merge != "concat" and forward.units != backward.units:
        raise ConversionError(f"layer '{layer.name}': merge_mode '{merge}' needs halves of equal units "
                              f"({forward.units} vs {backward.units})")
    return_sequences = bool(layer.forward_layer.get_config().get("return_sequences", False))
    return WindowLayer(layer.name, forward, backward, merge, return_sequences)


def _window_step(layer, n_in: int) -> tuple[WindowLayer, int, bool]:
    spec = _window_layer(layer, n_in)
    return spec, spec.width, spec.return_sequences


def read_window_spec(model, window: int | None = None) -> WindowSpec:
    """Validate a loaded Keras model and extract its weights into a WindowSpec."""
    chain = walk_layers(model, (*_RECURRENT, "Bidirectional"), _window_step, "window-model")
    return WindowSpec(n_features=chain.n_features, window=window_length(model, window), layers=chain.recurrent,
                      heads=chain.heads, input_mean=chain.input_mean, input_std=chain.input_std,
                      output_scale=chain.output_scale, output_offset=chain.output_offset)
