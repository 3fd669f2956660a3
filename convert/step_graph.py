"""Build the step function (one cell application) from a ModelSpec as a TF graph.

Only MatMul-with-constant (-> FULLY_CONNECTED), split, sigmoid (LOGISTIC), tanh, relu, mul and add
are used, so the TFLite converter emits builtin ops only: no WHILE, no TensorList, no Select TF ops.
Two gate layouts (fused_gates_for picks one per quantization mode): in the float modes each
layer has one FULLY_CONNECTED for x and one for h over all gates, split back into gates (SPLIT);
for full-integer int8 each gate gets its own pair of FULLY_CONNECTED ops (input and recurrent) so
that quantization gives every gate its own scale. GRU's (1 - z) is computed as sigmoid(-a_z) from
negated weights, which is exact and keeps SUB out of the graph. cell_gates/cell_step are shared
with the window model (window_graph.py), which unrolls the same cells over W steps.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .model_spec import DenseLayer, ModelSpec, RecurrentLayer
from .modes import FULL_INTEGER_MODES

INPUT_NAME = "x"
OUTPUT_NAME = "forecast"


def state_input_name(layer: int, part: str) -> str:
    return f"state_in_{layer}_{part}"


def state_output_name(layer: int, part: str) -> str:
    return f"state_out_{layer}_{part}"


def fused_gates_for(mode: str) -> bool:
    """The gate layout for a quantization mode. Full-integer int8 keeps a pair of
    FULLY_CONNECTED ops per gate, so that every gate's pre-activation gets its own quantization
    scale (int16x8 too); the float modes (float32, float16, dynamic-range) use one pair per layer."""
    return mode not in FULL_INTEGER_MODES


def _gate_layout(layer: RecurrentLayer) -> dict[str, tuple[int, bool]]:
    """Gate name -> (index in Keras' packed kernels, negated)."""
    if layer.cell == "lstm":
        return {"i": (0, False), "f": (1, False), "g": (2, False), "o": (3, False)}
    if layer.cell == "gru":        # 1 - sigmoid(a) == sigmoid(-a): negated z weights, no SUB op
        return {"z": (0, False), "not_z": (0, True), "r": (1, False), "h": (2, False)}
    return {"h": (0, False)}


def _gate_arrays(layer: RecurrentLayer, index: int, negate: bool):
    """Gate `index` split out of Keras' packed kernels: (W, U, b_in, b_rec) as numpy arrays;
    b_rec is None unless the layer has a second, recurrent bias (GRU reset_after)."""
    u = layer.units
    cols = slice(index * u, (index + 1) * u)
    sign = np.float32(-1.0 if negate else 1.0)
    w = sign * layer.kernel[:, cols]                              # (in, units)
    rec = sign * layer.recurrent_kernel[:, cols]                  # (units, units)
    if layer.bias is None:
        return w, rec, np.zeros(u, np.float32), None
    bias = layer.bias
    if bias.ndim == 2:                                            # GRU reset_after: (2, 3u)
        return w, rec, sign * bias[0, cols], sign * bias[1, cols]
    return w, rec, sign * bias[cols], None


def _constant(array):
    return None if array is None else tf.constant(array)


def _recurrent_term(h, rec, b_rec):
    """h U (+ b_rec); h None is a zero state (the first step of a window model), whose product
    is left out rather than computed. None when nothing remains."""
    if h is None:
        return b_rec
    return tf.matmul(h, rec) if b_rec is None else tf.matmul(h, rec) + b_rec


def _add(a, b):
    return a if b is None else a + b


class PerGateGates:
    """Each gate its own pair of FULLY_CONNECTED ops (input and recurrent) and ADD: full-integer
    quantization then gives every gate's pre-activation its own scale."""

    def __init__(self, layer: RecurrentLayer):
        self._gates = {name: tuple(_constant(a) for a in _gate_arrays(layer, index, negate))
                       for name, (index, negate) in _gate_layout(layer).items()}

    def terms(self, x, h) -> "_PerGateTerms":
        return _PerGateTerms(self._gates, x, h)

    def recurrent_kernel(self, name: str):
        return self._gates[name][1]


class _PerGateTerms:
    """The pre-activation terms of one cell application, built per gate on demand."""

    def __init__(self, gates: dict, x, h):
        self._gates, self._x, self._h = gates, x, h

    def input_term(self, name: str):                              # x W + b_in
        w, _, b_in, _ = self._gates[name]
        return tf.matmul(self._x, w) + b_in

    def recurrent_term(self, name: str):                          # h U (+ b_rec), None for a zero h
        _, rec, _, b_rec = self._gates[name]
        return _recurrent_term(self._h, rec, b_rec)

    def pre(self, name: str):                                     # x W + b_in + h U (+ b_rec)
        return _add(self.input_term(name), self.recurrent_term(name))


class FusedGates:
    """One FULLY_CONNECTED for x and one for h over all of a layer's gates, split back into
    gates. Every output column is the same dot product as PerGateGates' (float32 results are
    identical); the graph has 2 FCs per layer instead of 8 (LSTM), and dynamic-range quantization
    quantizes x and h once per layer instead of once per gate. What it saved per stream-step:
    docs/performance-history.md (float32 at batch 1,024 is arithmetic-bound and did not move)."""

    def __init__(self, layer: RecurrentLayer):
        layout = _gate_layout(layer)
        arrays = {name: _gate_arrays(layer, index, negate) for name, (index, negate) in layout.items()}
        self._names = list(layout)
        # Classic GRU (reset_after=False) applies U_h to r * h, so it stays out of the fused U.
        classic_gru = layer.cell == "gru" and not layer.reset_after
        self._recurrent_names = [n for n in self._names if not (classic_gru and n == "h")]
        self._w = tf.constant(np.concatenate([arrays[n][0] for n in self._names], axis=1))
        self._b_in = tf.constant(np.concatenate([arrays[n][2] for n in self._names]))
        self._rec = tf.constant(np.concatenate([arrays[n][1] for n in self._recurrent_names], axis=1))
        b_rec = [arrays[n][3] for n in self._recurrent_names]
        self._b_rec = None if b_rec[0] is None else tf.constant(np.concatenate(b_rec))
        self._kernels = {n: tf.constant(arrays[n][1]) for n in self._names if n not in self._recurrent_names}
        # LSTM and SimpleRNN: every gate is x W + h U, so the two products are added before the
        # split (one ADD); GRU's candidate needs its recurrent term on its own.
        self._additive = layer.cell != "gru"

    def terms(self, x, h) -> "_FusedTerms":
        inputs = tf.matmul(x, self._w) + self._b_in               # (batch, gates * units)
        recurrent = _recurrent_term(h, self._rec, self._b_rec)    # (batch, fused gates * units)
        if self._additive:
            return _FusedTerms(_split(_add(inputs, recurrent), self._names), None, None)
        recurrent_parts = None if recurrent is None else _split(recurrent, self._recurrent_names)
        return _FusedTerms(None, _split(inputs, self._names), recurrent_parts)

    def recurrent_kernel(self, name: str):
        return self._kernels[name]


def _split(tensor, names: list[str]) -> dict:
    if len(names) == 1:                                           # SimpleRNN: nothing to split
        return {names[0]: tensor}
    return dict(zip(names, tf.split(tensor, len(names), axis=-1)))


class _FusedTerms:
    """The pre-activation terms of one cell application, from the fused products."""

    def __init__(self, summed: dict | None, inputs: dict | None, recurrent: dict | None):
        self._summed, self._inputs, self._recurrent = summed, inputs, recurrent

    def input_term(self, name: str):
        return self._inputs[name]

    def recurrent_term(self, name: str):
        return None if self._recurrent is None else self._recurrent[name]

    def pre(self, name: str):
        if self._summed is not None:
            return self._summed[name]
        return _add(self.input_term(name), self.recurrent_term(name))


def cell_gates(layer: RecurrentLayer, fused: bool = True):
    """The layer's gate constants, built once per graph: the step model applies them once, an
    unrolled window model reuses the same constants at every step of both directions."""
    return FusedGates(layer) if fused else PerGateGates(layer)


def _lstm(terms, c):
    i = tf.sigmoid(terms.pre("i"))                                # (batch, units)
    g = tf.tanh(terms.pre("g"))
    o = tf.sigmoid(terms.pre("o"))
    if c is None:                                                 # zero state: f * c vanishes
        c_new = i * g
    else:
        f = tf.sigmoid(terms.pre("f"))
        c_new = f * c + i * g
    return o * tf.tanh(c_new), c_new


def _gru(layer, gates, terms, h):
    one_minus_z = tf.sigmoid(terms.pre("not_z"))
    r = tf.sigmoid(terms.pre("r"))
    pre = terms.input_term("h")
    if layer.reset_after:                                         # TF2 default: r applied after U h
        recurrent = terms.recurrent_term("h")
        candidate = tf.tanh(pre if recurrent is None else pre + r * recurrent)
    else:                                                         # classic: U applied to (r * h)
        candidate = tf.tanh(pre if h is None else pre + tf.matmul(r * h, gates.recurrent_kernel("h")))
    if h is None:                                                 # zero state: z * h vanishes
        return one_minus_z * candidate
    z = tf.sigmoid(terms.pre("z"))
    return z * h + one_minus_z * candidate


def _rnn(layer, terms):
    pre = terms.pre("h")
    return tf.nn.relu(pre) if layer.activation == "relu" else tf.tanh(pre)


def cell_step(layer: RecurrentLayer, gates, x, states: list) -> list:
    """One application of the cell. x (batch, in); states in layer.state_names order ([h] or
    [h, c]), each (batch, units). Returns the new states in the same order; h is the output."""
    terms = gates.terms(x, states[0])
    if layer.cell == "lstm":
        return list(_lstm(terms, states[1]))
    if layer.cell == "gru":
        return [_gru(layer, gates, terms, states[0])]
    return [_rnn(layer, terms)]


_ACTIVATIONS = {"linear": lambda t: t, "relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}


def dense(layer: DenseLayer, x):
    y = tf.matmul(x, tf.constant(layer.kernel))
    if layer.bias is not None:
        y = y + tf.constant(layer.bias)
    return _ACTIVATIONS[layer.activation](y)


class StepModule(tf.Module):
    """tf.Module whose `step` signature is the artifact's serving_default."""

    def __init__(self, spec: ModelSpec, batch_size: int | None = None, fused_gates: bool = True):
        super().__init__(name="statecast_step")
        self.spec = spec
        self.fused_gates = fused_gates                            # see fused_gates_for(mode)
        specs = [tf.TensorSpec((batch_size, spec.n_features), tf.float32, name=INPUT_NAME)]
        for index, layer in enumerate(spec.recurrent):
            for part in layer.state_names:
                specs.append(tf.TensorSpec((batch_size, layer.units), tf.float32,
                                           name=state_input_name(index, part)))
        self.input_names = [s.name for s in specs]
        self.step = tf.function(self._step, input_signature=specs)

    def _step(self, x, *states):
        outputs = {}
        flat = list(states)
        layer_input = x                                           # (batch, features)
        for index, layer in enumerate(self.spec.recurrent):
            gates = cell_gates(layer, self.fused_gates)
            new = cell_step(layer, gates, layer_input, [flat.pop(0) for _ in layer.state_names])
            for part, value in zip(layer.state_names, new):       # each (batch, units)
                outputs[state_output_name(index, part)] = tf.identity(value)
            layer_input = new[0]
        y = layer_input
        for head in self.spec.heads:
            y = dense(head, y)
        outputs[OUTPUT_NAME] = y                                  # (batch, horizon * targets)
        return outputs
