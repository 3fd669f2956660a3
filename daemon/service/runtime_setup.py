"""Opening models and per-stream anomaly scorers from settings (shared by serve and score)."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from statecast.daemon.model.artifact import ArtifactError
from statecast.daemon.model.backends import select_backend
from statecast.daemon.model.backends.edgetpu import load_edgetpu_delegate
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.protocols import ScorerFactory

if TYPE_CHECKING:
    from statecast.daemon.anomaly import AnomalySettings


def open_model(directory: str, backend_name: str = "auto", num_threads: int = 1, delegate: str | None = None,
               edgetpu_device: str | None = None, max_batch: int = 1024, kernels: str = "auto") -> StepModel:
    backend = select_backend(backend_name)
    delegates = [load_edgetpu_delegate(backend, edgetpu_device)] if delegate == "edgetpu" else []
    model = StepModel(directory, backend=backend, max_batch=max_batch, num_threads=num_threads, delegates=delegates,
                      kernels=kernels)
    if model.manifest.kind != "step":
        raise ArtifactError(f"{directory}: a {model.manifest.kind} model, not a step model "
                            "(configure a window model as the stream's window_model)")
    return model


def manifest_anomaly_settings(model: StepModel):
    """The model's own tuned AnomalySettings (manifest "anomaly": {"settings": {...}}), over the
    built-in defaults; the built-in defaults when the manifest has none."""
    from statecast.daemon.anomaly import AnomalySettings
    tuned = model.manifest.raw.get("anomaly", {}).get("settings", {})
    known = {f.name for f in dataclasses.fields(AnomalySettings)}
    unknown = sorted(set(tuned) - known)
    if unknown:
        raise ArtifactError(f"{model.directory}: manifest anomaly.settings has unknown key(s) {', '.join(unknown)}")
    try:
        return AnomalySettings(**tuned)
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"{model.directory}: manifest anomaly.settings: {error}") from None


def anomaly_factory_for(model: StepModel, settings: AnomalySettings | None = None) -> ScorerFactory:
    """Factory of per-stream anomaly scorers, primed with the model's residual calibration.

    settings None: the model's tuned settings from its manifest (see manifest_anomaly_settings).
    A model with online normalisation serves streams in any units, so its calibration residual
    std (in the calibration series' units) is no prior for them: the scale starts from each
    stream's own residuals instead."""
    from statecast.daemon.anomaly import PRIOR_WEIGHT_STEPS, StreamAnomaly
    settings = settings or manifest_anomaly_settings(model)
    calibration = model.manifest.raw.get("anomaly", {})
    prior = float((calibration.get("residual_std") or [1.0])[0]) or 1.0
    weight = 0.0 if model.manifest.online_normalization else PRIOR_WEIGHT_STEPS
    return lambda: StreamAnomaly(settings, prior, weight)
