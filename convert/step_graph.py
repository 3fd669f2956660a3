"""Build the step function (one cell application) from a ModelSpec as a TF graph.

Only MatMul-with-constant (-> FULLY_CONNECTED), sigmoid (LOGISTIC), tanh, relu, mul and add are
used, so the TFLite converter emits builtin ops only: no WHILE, no TensorList, no Select TF ops.
Each gate gets its own pair of FULLY_CONNECTED ops (input and recurrent) so that full-integer
quantization gives every gate its own scale. GRU's (1 - z) is computed as sigmoid(-a_z) from
negated weights, which is exact and keeps SUB out of the graph.
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


def _pre(x, h, gate):
    """x W + b_in + h U (+ b_rec): two FULLY_CONNECTED ops and one ADD."""
    w, rec, b_in, b_rec = gate
    recurrent = tf.matmul(h, rec)
    if b_rec is not None:
        recurrent = recurrent + b_rec
    return (tf.matmul(x, w) + b_in) + recurrent


def _lstm(layer, x, h, c):
    i = tf.sigmoid(_pre(x, h, _gate(layer, 0)))                   # (batch, units)
    f = tf.sigmoid(_pre(x, h, _gate(layer, 1)))
    g = tf.tanh(_pre(x, h, _gate(layer, 2)))
    o = tf.sigmoid(_pre(x, h, _gate(layer, 3)))
    c_new = f * c + i * g
    return o * tf.tanh(c_new), c_new


def _gru(layer, x, h):
    z = tf.sigmoid(_pre(x, h, _gate(layer, 0)))
    one_minus_z = tf.sigmoid(_pre(x, h, _gate(layer, 0, negate=True)))   # 1 - sigmoid(a) == sigmoid(-a)
    r = tf.sigmoid(_pre(x, h, _gate(layer, 1)))
    w, rec, b_in, b_rec = _gate(layer, 2)
    if layer.reset_after:                                         # TF2 default: r applied after U h
        recurrent = tf.matmul(h, rec)
        if b_rec is not None:
            recurrent = recurrent + b_rec
        candidate = tf.tanh((tf.matmul(x, w) + b_in) + r * recurrent)
    else:                                                         # classic: U applied to (r * h)
        candidate = tf.tanh((tf.matmul(x, w) + b_in) + tf.matmul(r * h, rec))
    return z * h + one_minus_z * candidate


def _rnn(layer, x, h):
    pre = _pre(x, h, _gate(layer, 0))
    return tf.nn.relu(pre) if layer.activation == "relu" else tf.tanh(pre)


_ACTIVATIONS = {"linear": lambda t: t, "relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}


def _dense(layer: DenseLayer, x):
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
            h = flat.pop(0)                                       # (batch, units)
            if layer.cell == "lstm":
                c = flat.pop(0)
                h_new, c_new = _lstm(layer, layer_input, h, c)
                outputs[state_output_name(index, "c")] = tf.identity(c_new)
            elif layer.cell == "gru":
                h_new = _gru(layer, layer_input, h)
            else:
                h_new = _rnn(layer, layer_input, h)
            outputs[state_output_name(index, "h")] = tf.identity(h_new)
            layer_input = h_new
        y = layer_input
        for head in self.spec.heads:
            y = _dense(head, y)
        outputs[OUTPUT_NAME] = y                                  # (batch, horizon * targets)
        return outputs


def step_numpy(spec: ModelSpec, x: np.ndarray, states: list[np.ndarray]):
    """Run the float step graph eagerly (reference for calibration and parity)."""
    module = StepModule(spec)
    out = module.step(tf.constant(x, tf.float32), *[tf.constant(s, tf.float32) for s in states])
    return {k: v.numpy() for k, v in out.items()}
