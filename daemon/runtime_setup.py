"""Opening models and per-stream anomaly scorers from settings (shared by serve and score)."""
from __future__ import annotations

from .backends import select_backend
from .backends.edgetpu import load_edgetpu_delegate
from .step_model import StepModel


def open_model(directory: str, backend_name: str = "auto", num_threads: int = 1, delegate: str | None = None,
               edgetpu_device: str | None = None, max_batch: int = 1024) -> StepModel:
    backend = select_backend(backend_name)
    delegates = [load_edgetpu_delegate(backend, edgetpu_device)] if delegate == "edgetpu" else []
    return StepModel(directory, backend=backend, max_batch=max_batch, num_threads=num_threads, delegates=delegates)


def anomaly_factory_for(model: StepModel, settings=None):
    """Factory of per-stream anomaly scorers, primed with the model's residual calibration."""
    from .anomaly import AnomalySettings, StreamAnomaly
    settings = settings or AnomalySettings()
    calibration = model.manifest.raw.get("anomaly", {})
    prior = float((calibration.get("residual_std") or [1.0])[0]) or 1.0
    return lambda: StreamAnomaly(settings, prior)
