"""Build the window function from a WindowSpec: the recurrent chain unrolled over W fixed steps.

Every direction of every layer applies the step model's own cell (step_graph.cell_step, gate
constants built once per layer) W times from a zero state: the forward half over x_0..x_W-1, the
backward half over x_W-1..x_0, its outputs put back in time order before the merge, as Keras'
Bidirectional does. Ops: the step model's (FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD, RELU) plus
UNPACK or STRIDED_SLICE (window -> steps, see unpack_steps_for), PACK (per-step outputs ->
window) and CONCATENATION (merge_mode concat). No WHILE, no TensorList, no Select TF ops.
"""
from __future__ import annotations

import tensorflow as tf

from .model_spec import RecurrentLayer
from .step_graph import INPUT_NAME, cell_gates, cell_step, dense
from .window_reader import WindowLayer, WindowSpec

OUTPUT_NAME = "window_output"


def unpack_steps_for(mode: str) -> bool:
    """How the window is cut into steps for a quantization mode. Full-integer int8 (the Edge TPU's
    mode) takes W STRIDED_SLICEs, which the Edge TPU runs and UNPACK it does not; the float
    modes take one UNPACK, which XNNPACK runs inside its partition. One window per invoke of
    the 2 x 64 LSTM over 64 steps cost 6-27% less in float32 over five interleaved runs on a
    shared 2-core x86 VM (dynamic: -10% to +14%, noise); 256 windows per invoke cost the same."""
    return mode != "int8"


def _direction(layer: RecurrentLayer, steps: list, backward: bool, fused_gates: bool) -> list:
    """Run one cell over the steps (each (batch, in)); returns each step's h in time order."""
    gates = cell_gates(layer, fused_gates)
    states = [None] * len(layer.state_names)                      # zero state, left out of the graph
    outputs = []
    for x_t in (reversed(steps) if backward else steps):
        states = cell_step(layer, gates, x_t, states)
        outputs.append(states[0])                                 # (batch, units)
    return outputs[::-1] if backward else outputs


def _merge(mode: str, forward, backward):
    if mode == "concat":
        return tf.concat([forward, backward], axis=-1)            # (batch, 2 * units)
    if mode == "sum":
        return forward + backward
    if mode == "ave":
        return (forward + backward) * 0.5                         # == Keras' (f + b) / 2, exactly
    return forward * backward                                     # mul


def _layer(layer: WindowLayer, steps: list, fused_gates: bool) -> list:
    """steps: W tensors (batch, in) -> W tensors (batch, width), or [one] without return_sequences."""
    forward = _direction(layer.forward, steps, backward=False, fused_gates=fused_gates)
    if layer.backward is None:
        return forward if layer.return_sequences else forward[-1:]
    backward = _direction(layer.backward, steps, backward=True, fused_gates=fused_gates)
    if not layer.return_sequences:                                # Keras: each half's last output;
        return [_merge(layer.merge_mode, forward[-1], backward[0])]   # the backward half ends at x_0
    return [_merge(layer.merge_mode, f, b) for f, b in zip(forward, backward)]


class WindowModule(tf.Module):
    """tf.Module whose `step` signature (the name quantize.to_tflite converts) runs one window."""

    def __init__(self, spec: WindowSpec, batch_size: int | None = None, fused_gates: bool = True,
                 unpack_steps: bool = True):
        super().__init__(name="statecast_window")
        self.spec = spec
        self.fused_gates = fused_gates                            # see step_graph.fused_gates_for(mode)
        self.unpack_steps = unpack_steps                          # see unpack_steps_for(mode)
        signature = [tf.TensorSpec((batch_size, spec.window, spec.n_features), tf.float32, name=INPUT_NAME)]
        self.step = tf.function(self._window, input_signature=signature)

    def _window(self, x):
        if self.unpack_steps:                                     # W x (batch, features)
            steps = tf.unstack(x, num=self.spec.window, axis=1)   # one UNPACK
        else:
            steps = [x[:, t, :] for t in range(self.spec.window)]     # W STRIDED_SLICEs
        for layer in self.spec.layers:
            steps = _layer(layer, steps, self.fused_gates)
        outputs = []
        for y in steps:
            for head in self.spec.heads:
                y = dense(head, y)
            outputs.append(y)                                     # (batch, outputs)
        if self.spec.per_step_output:
            return {OUTPUT_NAME: tf.stack(outputs, axis=1)}       # (batch, W, outputs)
        return {OUTPUT_NAME: outputs[0]}                          # (batch, outputs)


def window_numpy(spec: WindowSpec, x):
    """Run the float window graph eagerly: x (batch, W, features) in model space."""
    return WindowModule(spec).step(tf.constant(x, tf.float32))[OUTPUT_NAME].numpy()
