"""Runs a window-model artifact: one invoke maps a batch of windows (batch, W, features) to
outputs (batch, W, k) per step or (batch, k) per window (issue 8).

A window model is a step model without state tensors whose input carries a time axis, so the
interpreter buckets, padding and batch splitting are StepModel's; this class checks the
manifest's window contract and names the call.
"""
from __future__ import annotations

import numpy as np

from .artifact import ArtifactError
from .backends import Backend, select_backend
from .backends.edgetpu import load_edgetpu_delegate
from .step_model import StepModel

WINDOW_OUTPUTS = ("per_step", "per_window")


class WindowModel(StepModel):
    def __init__(self, directory: str, backend: Backend | None = None, max_batch: int = 256,
                 num_threads: int = 1, delegates: list | None = None):
        super().__init__(directory, backend=backend, max_batch=max_batch, num_threads=num_threads,
                         delegates=delegates)
        m = self.manifest
        if m.kind != "window":
            raise ArtifactError(f"{directory}: a {m.kind} model, not a window model (manifest kind)")
        if m.window < 1 or m.state:
            raise ArtifactError(f"{directory}: window model needs \"window\" >= 1 and no state tensors")
        self.window = m.window
        self.window_output = str(m.raw.get("window_output", "per_window"))
        if self.window_output not in WINDOW_OUTPUTS:
            raise ArtifactError(f"{directory}: window_output '{self.window_output}' is not one of "
                                f"{', '.join(WINDOW_OUTPUTS)}")
        shape = self.plain_interpreter().get_input_details()[0]["shape"]
        if tuple(shape[1:]) != (self.window, self.n_features):
            raise ArtifactError(f"{directory}: model input is {tuple(shape)}, manifest says "
                                f"(batch, {self.window}, {self.n_features})")

    @property
    def per_step(self) -> bool:
        return self.window_output == "per_step"

    def run(self, x: np.ndarray) -> np.ndarray:
        """x: (batch, W, features), already scaled -> model-space outputs, (batch, W, k) or (batch, k)."""
        return self.step(x, [])[0]


def open_window_model(directory: str, backend_name: str = "auto", num_threads: int = 1,
                      delegate: str | None = None, edgetpu_device: str | None = None,
                      max_batch: int = 256) -> WindowModel:
    """As runtime_setup.open_model, for window artifacts."""
    backend = select_backend(backend_name)
    delegates = [load_edgetpu_delegate(backend, edgetpu_device)] if delegate == "edgetpu" else []
    return WindowModel(directory, backend=backend, max_batch=max_batch, num_threads=num_threads,
                       delegates=delegates)
