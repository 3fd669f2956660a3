"""Read a Keras model file (.keras or legacy .h5) into a ModelSpec, refusing what cannot stream.

Accepted chain: [InputLayer] [Normalization] (LSTM|GRU|SimpleRNN){1,3} [Dropout...] Dense* [Rescaling].
Every refusal names the layer and the reason, in one line. The layer walk (walk_layers) is shared
with window_reader, which passes its own reader for recurrent (and Bidirectional) layers.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .errors import ConversionError
from .model_spec import DenseLayer, ModelSpec, RecurrentLayer

_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
_RECURRENT = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}
_HEAD_ACTIVATIONS = {"linear", "relu", "tanh", "sigmoid"}
_PASS_THROUGH = {"InputLayer", "Dropout", "GaussianNoise", "GaussianDropout", "SpatialDropout1D"}
_WHY_NOT = {
    "Bidirectional": "bidirectional layers see the future of the sequence and cannot advance one step "
                     "per message (export a window model instead)",
    "Masking": "masking is not supported: the step model advances on every message",
    "Conv1D": "convolutions over time are not causal step cells",
    "Attention": "attention looks across the whole window and has no per-step state",
    "MultiHeadAttention": "attention looks across the whole window and has no per-step state",
    "Flatten": "flattening the time axis ties the model to a fixed window",
    "TimeDistributed": "TimeDistributed wrappers are not supported (a plain Dense already applies per step)",
    "Lambda": "Lambda layers hold arbitrary code that cannot be converted",
}


def sniff_format(path: str) -> str:
    """Return "keras" or "h5" from the file's magic bytes, or raise with a clear reason."""
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK"):
        return "keras"
    if head == _H5_MAGIC:
        return "h5"
    raise ConversionError(f"{path}: not a Keras model (expected a .keras zip archive or an HDF5 .h5 file)")


def load_keras_model(path: str):
    """Load a Keras model without compiling it; every failure becomes one ConversionError line."""
    kind = sniff_format(path)
    if kind == "keras" and not zipfile.is_zipfile(path):
        raise ConversionError(f"{path}: truncated or corrupt .keras archive")
    import keras  # heavy import, only on the workstation path

    try:
        custom = _legacy_rnn_classes(keras) if kind == "h5" else None
        return keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=custom)
    except Exception as error:  # Keras raises many types for a bad file; all mean "cannot read it"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConversionError(f"{path}: cannot load Keras model ({type(error).__name__}: {reason[:200]})") from None


def _legacy_rnn_classes(keras) -> dict:
    """Keras 2 (tf_keras) configs carry `time_major`, which Keras 3 rejects. Batch-major (the only
    kind Keras 2 saves from a Sequential/functional model by default) loads unchanged; a
    time-major layer is refused by name."""
    def legacy(base):
        class Legacy(base):
            def __init__(self, *args, time_major=False, **kwargs):
                if time_major:
                    raise ValueError(f"layer '{kwargs.get('name')}': time_major=True is not supported")
                super().__init__(*args, **kwargs)
        Legacy.__name__ = base.__name__
        return Legacy
    return {name: legacy(getattr(keras.layers, name)) for name in ("LSTM", "GRU", "SimpleRNN")}


def _check_linear_chain(model, layers) -> None:
    # Merges (Add, Concatenate, multi-input models) are what break a chain. A layer may have
    # several inbound nodes without that (Keras 3 rebuilds a loaded Sequential once more).
    for layer in layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        if any(len(node.input_tensors) > 1 for node in nodes):
            raise ConversionError(f"layer '{layer.name}' ({type(layer).__name__}): merges several inputs; "
                                  "only a single chain of layers streams")


def _recurrent_layer(layer, n_in: int, backward_half: bool = False) -> RecurrentLayer:
    """backward_half: the reversed half of a Bidirectional layer (window models only, issue 8)."""
    kind = _RECURRENT[type(layer).__name__]
    cfg = layer.get_config()
    name = layer.name
    if cfg.get("go_backwards") and not backward_half:
        raise ConversionError(f"layer '{name}': go_backwards=True reads the sequence in reverse, which is not causal")
    activation = cfg.get("activation", "tanh")
    allowed = {"tanh", "relu"} if kind == "rnn" else {"tanh"}
    if activation not in allowed:
        raise ConversionError(f"layer '{name}': activation '{activation}' is not supported "
                              f"(expected {' or '.join(sorted(allowed))})")
    if kind != "rnn" and cfg.get("recurrent_activation", "sigmoid") != "sigmoid":
        raise ConversionError(f"layer '{name}': recurrent_activation '{cfg.get('recurrent_activation')}' "
                              "is not supported (expected sigmoid)")
    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    kernel, recurrent_kernel = weights[0], weights[1]
    bias = weights[2] if cfg.get("use_bias", True) else None
    if kernel.shape[0] != n_in:
        raise ConversionError(f"layer '{name}': expects {kernel.shape[0]} inputs but receives {n_in}")
    return RecurrentLayer(name=name, cell=kind, units=int(cfg["units"]), activation=activation,
                          kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                          reset_after=bool(cfg.get("reset_after", True)))


def _dense_layer(layer, n_in: int) -> DenseLayer:
    cfg = layer.get_config()
    activation = cfg.get("activation", "linear")
    if activation not in _HEAD_ACTIVATIONS:
        raise ConversionError(f"layer '{layer.name}': Dense activation '{activation}' is not supported "
                              f"(expected one of {', '.join(sorted(_HEAD_ACTIVATIONS))})")
    weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
    if weights[0].shape[0] != n_in:
        raise ConversionError(f"layer '{layer.name}': expects {weights[0].shape[0]} inputs but receives {n_in}")
    return DenseLayer(name=layer.name, kernel=weights[0],
                      bias=weights[1] if cfg.get("use_bias", True) else None, activation=activation)


def _normalization(layer, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    cfg = layer.get_config()
    if cfg.get("invert"):
        raise ConversionError(f"layer '{layer.name}': an inverting Normalization is only supported as output scaling")
    mean = np.broadcast_to(np.asarray(layer.mean, np.float32).reshape(-1), (n_features,)).copy()
    variance = np.broadcast_to(np.asarray(layer.variance, np.float32).reshape(-1), (n_features,))
    # Keras divides by max(sqrt(variance), epsilon); keep exactly that.
    std = np.maximum(np.sqrt(variance), 1e-7).astype(np.float32)
    return mean, std


def _rescaling(layer, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    cfg = layer.get_config()
    scale = np.broadcast_to(np.asarray(cfg.get("scale", 1.0), np.float32).reshape(-1), (n_out,)).copy()
    offset = np.broadcast_to(np.asarray(cfg.get("offset", 0.0), np.float32).reshape(-1), (n_out,)).copy()
    return scale, offset


# The hook a converter passes to walk_layers for its recurrent layers: (layer, n_in) -> (its spec,
# its output width, whether it emits one output per step). Only this part differs between the
# step converter and the window converter; the walk and its refusals are shared.
RecurrentHook = Callable[[Any, int], tuple[Any, int, bool]]


@dataclass(frozen=True)
class LayerChain:
    """A validated chain: input scaling, the hook's recurrent specs, Dense heads, output scaling."""
    n_features: int
    input_mean: np.ndarray
    input_std: np.ndarray
    recurrent: tuple
    heads: tuple[DenseLayer, ...]
    output_scale: np.ndarray
    output_offset: np.ndarray
    per_step_output: bool             # the last recurrent layer emits one output per step


def _input_features(model) -> int:
    input_shape = model.inputs[0].shape if getattr(model, "inputs", None) else None
    if input_shape is None or len(input_shape) != 3:
        raise ConversionError(f"model '{model.name}': input must be (batch, time, features), got {input_shape}")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(f"model '{model.name}': exactly one input and one output are supported")
    return int(input_shape[-1])


def walk_layers(model, recurrent_kinds: tuple[str, ...], read_recurrent: RecurrentHook,
                converter: str) -> LayerChain:
    """Validate [Normalization] recurrent{1,3} Dense* [Rescaling] (pass-through layers anywhere);
    layers of `recurrent_kinds` are read by `read_recurrent`. `converter` names it in refusals."""
    n_features = _input_features(model)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    mean, std = np.zeros(n_features, np.float32), np.ones(n_features, np.float32)
    recurrent, heads = [], []
    output_scaling, per_step_output, width = None, False, n_features
    for position, layer in enumerate(layers):
        kind = type(layer).__name__
        where = f"layer '{layer.name}' ({kind})"
        if output_scaling is not None:
            raise ConversionError(f"{where}: nothing may follow the output Rescaling layer")
        if kind in _PASS_THROUGH:
            continue                                   # identity at inference time
        if kind == "Normalization":
            if position != 0:
                raise ConversionError(f"{where}: Normalization is only supported as the first layer")
            mean, std = _normalization(layer, n_features)
        elif kind in recurrent_kinds:
            if heads:
                raise ConversionError(f"{where}: a recurrent layer after a Dense head is not supported")
            if recurrent and not per_step_output:
                raise ConversionError(f"{where}: the previous recurrent layer has return_sequences=False, "
                                      "so this layer does not see one input per step")
            spec, width, per_step_output = read_recurrent(layer, width)
            recurrent.append(spec)
        elif kind == "Dense":
            if not recurrent:
                raise ConversionError(f"{where}: a Dense layer before the recurrent layers is not supported")
            heads.append(_dense_layer(layer, width))
            width = heads[-1].kernel.shape[1]
        elif kind == "Rescaling":
            if not recurrent:
                raise ConversionError(f"{where}: Rescaling is only supported as the last layer (output scaling)")
            output_scaling = _rescaling(layer, width)
        else:
            reason = _WHY_NOT.get(kind, f"this layer type is not supported by the {converter} converter")
            raise ConversionError(f"{where}: {reason}")

    _check_linear_chain(model, layers)     # after the per-layer checks, which name the exact problem
    if not 1 <= len(recurrent) <= 3:
        raise ConversionError(f"model '{model.name}': needs 1 to 3 recurrent layers ({', '.join(recurrent_kinds)}), "
                              f"found {len(recurrent)}")
    scale, offset = output_scaling or (np.ones(width, np.float32), np.zeros(width, np.float32))
    return LayerChain(n_features=n_features, input_mean=mean, input_std=std, recurrent=tuple(recurrent),
                      heads=tuple(heads), output_scale=scale, output_offset=offset, per_step_output=per_step_output)


def _step_layer(layer, n_in: int) -> tuple[RecurrentLayer, int, bool]:
    spec = _recurrent_layer(layer, n_in)
    return spec, spec.units, bool(layer.get_config().get("return_sequences", False))


def read_model_spec(model) -> ModelSpec:
    """Validate a loaded Keras model and extract its weights into a ModelSpec."""
    chain = walk_layers(model, tuple(_RECURRENT), _step_layer, "step-model")
    return ModelSpec(n_features=chain.n_features, recurrent=chain.recurrent, heads=chain.heads,
                     input_mean=chain.input_mean, input_std=chain.input_std, output_scale=chain.output_scale,
                     output_offset=chain.output_offset, per_step_output=chain.per_step_output)
