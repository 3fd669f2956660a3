"""StepModule -> .tflite bytes in one of four quantization modes.

Every mode converts from a SavedModel with a `serving_default` signature: full-integer
calibration needs one ("model has 0 Signatures" otherwise), and using the same path for all
modes keeps the tensor names identical across them.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from .errors import ConversionError
from .modes import FULL_INTEGER_MODES, MODES
from .step_graph import StepModule

SIGNATURE = "serving_default"


def to_tflite(module: StepModule, mode: str,
              representative: Callable[[], Iterable[dict[str, np.ndarray]]] | None = None) -> bytes:
    """Convert the module's step signature; `representative` yields dicts of signature inputs (int8, int16x8)."""
    if mode not in MODES:
        raise ConversionError(f"unknown quantization mode '{mode}' (expected one of {', '.join(MODES)})")
    if mode in FULL_INTEGER_MODES and representative is None:
        raise ConversionError(f"{mode} quantization needs calibration data (--calibration-csv)")
    with tempfile.TemporaryDirectory(prefix="statecast-savedmodel-") as saved_dir:
        tf.saved_model.save(module, saved_dir, signatures={SIGNATURE: module.step.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_dir, signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if mode == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif mode == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif mode in FULL_INTEGER_MODES:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if mode == "int8" else
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            # Float interface (QUANTIZE/DEQUANTIZE at the edges): the daemon keeps states in float32
            # so checkpoints are portable across quantization modes.
            converter.inference_input_type = tf.float32
            converter.inference_output_type = tf.float32
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return converter.convert()
