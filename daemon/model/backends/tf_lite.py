"""Backend: tensorflow.lite, a last-resort fallback for workstations that have only TensorFlow.

Never selected on a device that has ai_edge_litert or tflite_runtime; imported by name so the
device-side package has no static dependency on TensorFlow.
"""
import importlib

from . import Backend


def load() -> Backend:
    tf = importlib.import_module("tensorflow")
    return Backend("tensorflow", tf.lite.Interpreter, tf.lite.experimental.load_delegate)
