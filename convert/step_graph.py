"""Build the step function (one cell application) from a ModelSpec as a TF graph.

Only MatMul-with-constant (-> FULLY_CONNECTED), sigmoid (LOGISTIC), tanh, relu, mul and add are
used, so the TFLite converter emits builtin ops only: no WHILE, no TensorList, no Select TF ops.
Each gate gets its own pair of FULLY_CONNECTED ops (input and recurrent) so that full-integer
quantization gives every gate its own scale. GRU's (1 - z) is computed as sigmoid(-a_z) from
negated weights, which is exact and keeps SUB out of the graph. cell_gates/cell_step are shared
with the window model (window_graph.py), which unrolls the same cells over W steps.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .model_spec import DenseLayer, ModelSpec, RecurrentLayer

INPUT_NAME = "x"
OUTPUT_NAME = "forecast"


def state_input_name(layer: int, part: str) -> str:
    return f"state_in_{layer}_{part}"


def state_output_name(layer: int, part: str) -> str:
    return f"state_out_{layer}_{part}"


def _gate(layer: RecurrentLayer, index: int, negate: bool = False):
    """Split gate `index` out of Keras' packed kernels; returns (W, U, b_in, b_rec) as constants."""
    u = layer.units
    cols = slice(index * u, (index + 1) * u)
    sign = -1.0 if negate else 1.0
    w = tf.constant(sign * layer.kernel[:, cols])                 # (in, units)
    rec = tf.constant(sign * layer.recurrent_kernel[:, cols])     # (units, units)
    if layer.bias is None:
        zero = np.zeros(u, np.float32)
        return w, rec, tf.constant(zero), None
    bias = layer.bias
    if bias.ndim == 2:                                            # GRU reset_after: (2, 3u)
        return w, rec, tf.constant(sign * bias[0, cols]), tf.constant(sign * bias[1, cols])
    return w, rec, tf.constant(sign * bias[cols]), None


def _recurrent_term(h, rec, b_rec):
    """h U (+ b_rec); h None is a zero state (the first step of a window model), whose product
    is left out rather than computed. None when nothing remains."""
    if h is None:
        return b_rec
    return tf.matmul(h, rec) if b_rec is None else tf.matmul(h, rec) + b_rec


def _pre(x, h, gate):
    """x W + b_in + h U (+ b_rec): two FULLY_CONNECTED ops and one ADD."""
    w, rec, b_in, b_rec = gate
    recurrent = _recurrent_term(h, rec, b_rec)
    pre = tf.matmul(x, w) + b_in
    return pre if recurrent is None else pre + recurrent


def cell_gates(layer: RecurrentLayer) -> dict[str, tuple]:
    """The layer's gate constants, built once per graph: the step model applies them once, an
    unrolled window model reuses the same constants at every step of both directions."""
    if layer.cell == "lstm":
        return {"i": _gate(layer, 0), "f": _gate(layer, 1), "g": _gate(layer, 2), "o": _gate(layer, 3)}
    if layer.cell == "gru":        # 1 - sigmoid(a) == sigmoid(-a): negated z weights, no SUB op
        return {"z": _gate(layer, 0), "not_z": _gate(layer, 0, negate=True), "r": _gate(layer, 1),
                "h": _gate(layer, 2)}
    return {"h": _gate(layer, 0)}


def _lstm(gates, x, h, c):
    i = tf.sigmoid(_pre(x, h, gates["i"]))                        # (batch, units)
    g = tf.tanh(_pre(x, h, gates["g"]))
    o = tf.sigmoid(_pre(x, h, gates["o"]))
    if c is None:                                                 # zero state: f * c vanishes
        c_new = i * g
    else:
        f = tf.sigmoid(_pre(x, h, gates["f"]))
        c_new = f * c + i * g
    return o * tf.tanh(c_new), c_new


def _gru(layer, gates, x, h):
    one_minus_z = tf.sigmoid(_pre(x, h, gates["not_z"]))
    r = tf.sigmoid(_pre(x, h, gates["r"]))
    w, rec, b_in, b_rec = gates["h"]
    pre = tf.matmul(x, w) + b_in
    if layer.reset_after:                                         # TF2 default: r applied after U h
        recurrent = _recurrent_term(h, rec, b_rec)
        candidate = tf.tanh(pre if recurrent is None else pre + r * recurrent)
    else:                                                         # classic: U applied to (r * h)
        candidate = tf.tanh(pre if h is None else pre + tf.matmul(r * h, rec))
    if h is None:                                                 # zero state: z * h vanishes
        return one_minus_z * candidate
    z = tf.sigmoid(_pre(x, h, gates["z"]))
    return z * h + one_minus_z * candidate


def _rnn(layer, gates, x, h):
    pre = _pre(x, h, gates["h"])
    return tf.nn.relu(pre) if layer.activation == "relu" else tf.tanh(pre)


def cell_step(layer: RecurrentLayer, gates: dict, x, states: list) -> list:
    """One application of the cell. x (batch, in); states in layer.state_names order ([h] or
    [h, c]), each (batch, units). Returns the new states in the same order; h is the output."""
    if layer.cell == "lstm":
        return list(_lstm(gates, x, states[0], states[1]))
    if layer.cell == "gru":
        return [_gru(layer, gates, x, states[0])]
    return [_rnn(layer, gates, x, states[0])]


_ACTIVATIONS = {"linear": lambda t: t, "relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}


def dense(layer: DenseLayer, x):
    y = tf.matmul(x, tf.constant(layer.kernel))
    if layer.bias is not None:
        y = y + tf.constant(layer.bias)
    return _ACTIVATIONS[layer.activation](y)


class StepModule(tf.Module):
    """tf.Module whose `step` signature is the artifact's serving_default."""

    def __init__(self, spec: ModelSpec, batch_size: int | None = None):
        super().__init__(name="statecast_step")
        self.spec = spec
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
            new = cell_step(layer, cell_gates(layer), layer_input, [flat.pop(0) for _ in layer.state_names])
            for part, value in zip(layer.state_names, new):       # each (batch, units)
                outputs[state_output_name(index, part)] = tf.identity(value)
            layer_input = new[0]
        y = layer_input
        for head in self.spec.heads:
            y = dense(head, y)
        outputs[OUTPUT_NAME] = y                                  # (batch, horizon * targets)
        return outputs
