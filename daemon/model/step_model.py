"""Runs a step-model artifact: one invoke advances a whole batch of streams by one step.

Interpreters are kept per batch-size bucket (powers of two up to max_batch), each allocated
once, so a batch never pays for resize + allocate; a batch is padded up to its bucket.
State tensors are paired by name from the manifest, never by position.
"""
from __future__ import annotations

import sys

import numpy as np

from .artifact import ArtifactError, load_artifact
from .backends import Backend, BackendError, select_backend
from .backends.kernels import op_resolver_kwargs, resolve_kernels


class StepModel:
    def __init__(self, directory: str, backend: Backend | None = None, max_batch: int = 1024,
                 num_threads: int = 1, delegates: list | None = None, kernels: str = "auto"):
        self.manifest, self._content = load_artifact(directory)
        self.directory = directory
        self.backend = backend or select_backend("auto")
        # A static-batch export (Edge TPU) runs at exactly that batch size: batches are padded or split.
        self.static_batch = self.manifest.raw.get("static_batch")
        self.max_batch = int(self.static_batch or max_batch)
        self._num_threads = num_threads
        self._delegates = delegates or []
        # "reference" or "optimized": see backends/kernels.py for why int8 defaults to reference.
        self.kernels = resolve_kernels(kernels, self.manifest.quantization, bool(self._delegates))
        try:
            self._resolver_kwargs = op_resolver_kwargs(self.backend.interpreter_class, self.kernels)
        except RuntimeError as error:
            raise BackendError(f"{directory}: {error}") from None
        self._buckets: dict[int, tuple] = {}             # bucket -> (interpreter, input and output indices)
        self._by_batch: dict[int, tuple] = {}            # batch size -> (bucket, *that bucket's entry)
        _, probe, _, probe_outputs = self._interpreter_for(1)
        self.state_sizes = [pair.shape for pair in self.manifest.state]
        self.output_width = int(probe.get_tensor(probe_outputs[0]).shape[-1])
        self.n_features = len(self.manifest.features)

    # --- interpreters -------------------------------------------------------------------
    def _make_interpreter(self, batch: int):
        kwargs = {"model_content": self._content, "num_threads": self._num_threads, **self._resolver_kwargs}
        if self._delegates:
            kwargs["experimental_delegates"] = self._delegates
        interpreter = self.backend.interpreter_class(**kwargs)
        # Signature name -> tensor index (same API in LiteRT, tflite_runtime and tf.lite). Using
        # indices directly avoids the signature runner's per-call overhead on the hot path.
        signature = interpreter._get_full_signature_list().get(self.manifest.signature)
        if signature is None:
            raise ArtifactError(f"{self.directory}: model has no signature '{self.manifest.signature}'")
        inputs, outputs = signature["inputs"], signature["outputs"]
        details = {d["index"]: d for d in interpreter.get_input_details()}
        for name in [self.manifest.input] + [p.input for p in self.manifest.state]:
            if name not in inputs:
                raise ArtifactError(f"{self.directory}: model signature has no input '{name}' "
                                    "(manifest and model disagree)")
            shape = list(details[inputs[name]]["shape"])
            if shape[0] != batch:
                shape[0] = batch
                interpreter.resize_tensor_input(inputs[name], shape, strict=False)
        for name in [self.manifest.output] + [p.output for p in self.manifest.state]:
            if name not in outputs:
                raise ArtifactError(f"{self.directory}: model signature has no output '{name}' "
                                    "(manifest and model disagree)")
        interpreter.allocate_tensors()
        # Tensor indices in step() order: x then the states in, y then the states out.
        input_indices = [inputs[self.manifest.input]] + [inputs[p.input] for p in self.manifest.state]
        output_indices = [outputs[self.manifest.output]] + [outputs[p.output] for p in self.manifest.state]
        return interpreter, input_indices, output_indices

    def _bucket(self, batch: int) -> int:
        if self.static_batch:
            return self.max_batch
        bucket = 1
        while bucket < batch:
            bucket *= 2
        return min(bucket, self.max_batch) if batch <= self.max_batch else batch

    def _interpreter_for(self, batch: int) -> tuple:
        """(bucket, interpreter, input indices, output indices) for a batch size; memoised per
        batch size, since it runs on every step."""
        entry = self._by_batch.get(batch)
        if entry is None:
            bucket = self._bucket(batch)
            if bucket not in self._buckets:
                self._buckets[bucket] = self._make_interpreter(bucket)
            entry = self._by_batch[batch] = (bucket, *self._buckets[bucket])
        return entry

    # --- stepping -----------------------------------------------------------------------
    def zero_states(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch,) + shape, np.float32) for shape in self.state_sizes]

    def step(self, x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """x: (batch, features) already scaled; states: per state tensor (batch, units), float32
        as zero_states, step and the stream table give them.

        Returns the model-space output (batch, horizon * targets) and the new states.
        Batches larger than max_batch are split.
        """
        batch = x.shape[0]
        if batch > self.max_batch:
            parts = [self.step(x[i:i + self.max_batch], [s[i:i + self.max_batch] for s in states])
                     for i in range(0, batch, self.max_batch)]
            y = np.concatenate([p[0] for p in parts])
            return y, [np.concatenate([p[1][k] for p in parts]) for k in range(len(states))]
        bucket, interpreter, input_indices, output_indices = self._interpreter_for(batch)
        # One message per invoke is the common case of a quiet daemon, so this path is kept to
        # one copy in and one copy out per tensor: set_tensor takes any layout (only the dtype
        # must match) and get_tensor already returns a fresh array.
        if batch == bucket:
            interpreter.set_tensor(input_indices[0], x if x.dtype == np.float32 else x.astype(np.float32))
            for index, state in zip(input_indices[1:], states):
                interpreter.set_tensor(index, state)
            interpreter.invoke()
            y, *new_states = [interpreter.get_tensor(index) for index in output_indices]
            return y, new_states
        for index, value in zip(input_indices, [x, *states]):
            _write_padded(interpreter, index, value)
        interpreter.invoke()
        y, *new_states = [interpreter.get_tensor(index)[:batch] for index in output_indices]
        return y, new_states

    def plain_interpreter(self):
        """An interpreter without default delegates (XNNPACK would fold the graph into one
        DELEGATE node): for reading the model's own op list and tensor types."""
        module = sys.modules.get(self.backend.interpreter_class.__module__)
        resolver = getattr(module, "OpResolverType", None)
        kwargs = {"model_content": self._content}
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = self.backend.interpreter_class(**kwargs)
        interpreter.allocate_tensors()
        return interpreter

    def loaded_ops(self) -> list[str]:
        """Op names as the running interpreter executes them: a "DELEGATE" node is part of the
        graph XNNPACK (or a configured delegate) took over (for `statecast bench`)."""
        _, interpreter, _, _ = self._interpreter_for(1)
        return [op["op_name"] for op in interpreter._get_ops_details()]

    def ops(self) -> list[str]:
        """Op names of the model graph (for reports and tests)."""
        return [op["op_name"] for op in self.plain_interpreter()._get_ops_details()]


def _write_padded(interpreter, index: int, value: np.ndarray) -> None:
    """Write (batch, ...) into the first rows of a bucket's input tensor and zeros after them,
    through a view of the tensor's buffer (no padded copy). The runtimes refuse invoke() while
    such a view is alive, so it lives only inside this call."""
    view = interpreter.tensor(index)()                                     # (bucket, ...)
    view[: len(value)] = value
    view[len(value):] = 0.0


def run_sequence(model: StepModel, x_scaled: np.ndarray, lanes_first: bool = False) -> np.ndarray:
    """Advance fresh state over a whole sequence, one step per row.

    x_scaled: (steps, features) -> (steps, output_width) in model space; or, with
    lanes_first, (lanes, steps, features) -> (lanes, steps, output_width), all lanes in one batch.
    """
    x = x_scaled if lanes_first else x_scaled[None]
    lanes, steps = x.shape[0], x.shape[1]
    states = model.zero_states(lanes)
    out = np.empty((lanes, steps, model.output_width), np.float32)
    for t in range(steps):
        out[:, t], states = model.step(x[:, t].astype(np.float32), states)
    return out if lanes_first else out[0]
