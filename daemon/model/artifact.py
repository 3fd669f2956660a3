"""Model artifact = directory with model.tflite + manifest.json (contract in docs/architecture.md).

Loading checks the manifest's required keys and the sha256 of the .tflite; a mismatch refuses
to start rather than run a model nobody vouched for.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
CALENDAR_FEATURES = ("tod_sin", "tod_cos", "dow_sin", "dow_cos")


class ArtifactError(Exception):
    """A model artifact that is missing, malformed or tampered with (one-line reason)."""


@dataclass(frozen=True)
class StatePair:
    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str                      # "step" (causal, one message per step) or "window"
    signature: str
    input: str
    output: str
    state: tuple[StatePair, ...]
    features: tuple[str, ...]      # model input order; calendar features are derived from ts
    targets: tuple[str, ...]
    horizon: int
    input_mean: tuple[float, ...]
    input_std: tuple[float, ...]
    output_scale: tuple[float, ...]
    output_offset: tuple[float, ...]
    online_normalization: bool     # per-stream running scaling instead of fixed mean/std
    output_residual: bool          # the model forecasts the change from the current value
    quantization: str
    sha256: str
    window: int = 0                # window models only
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def value_features(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f not in CALENDAR_FEATURES)

    @property
    def state_signature(self) -> tuple[tuple[int, ...], ...]:
        """What must match for a stream's state to survive a model swap."""
        return tuple(pair.shape for pair in self.state)


def _require(data: dict, key: str, kind: type, where: str):
    if key not in data:
        raise ArtifactError(f"{where}: manifest is missing '{key}'")
    value = data[key]
    if not isinstance(value, kind):
        raise ArtifactError(f"{where}: manifest key '{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def parse_manifest(data: dict, where: str) -> Manifest:
    state = []
    for index, item in enumerate(_require(data, "state", list, where)):
        if not isinstance(item, dict) or not {"input", "output", "shape"} <= item.keys():
            raise ArtifactError(f"{where}: manifest state[{index}] needs input, output and shape")
        state.append(StatePair(str(item["input"]), str(item["output"]), tuple(int(n) for n in item["shape"])))
    scaling = data.get("input_scaling", {})
    features = tuple(_require(data, "features", list, where))
    targets = tuple(data.get("targets", [features[0]] if features else []))
    out_scaling = data.get("output_scaling", {})
    n_out = len(targets)
    return Manifest(
        name=str(data.get("name", "model")), kind=str(data.get("kind", "step")),
        signature=_require(data, "signature", str, where), input=_require(data, "input", str, where),
        output=_require(data, "output", str, where), state=tuple(state), features=features, targets=targets,
        horizon=int(data.get("horizon", 1)),
        input_mean=tuple(float(v) for v in scaling.get("mean", [0.0] * len(features))),
        input_std=tuple(float(v) for v in scaling.get("std", [1.0] * len(features))),
        output_scale=tuple(float(v) for v in out_scaling.get("scale", [1.0] * n_out)),
        output_offset=tuple(float(v) for v in out_scaling.get("offset", [0.0] * n_out)),
        online_normalization=scaling.get("mode") == "online",
        output_residual=bool(data.get("output_residual", False)),
        quantization=str(data.get("quantization", "float32")), sha256=_require(data, "sha256", str, where),
        window=int(data.get("window", 0)), raw=data)


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _not_a_directory(directory: str) -> str:
    """Why `directory` is not an artifact, saying what to do about a model file given instead."""
    if os.path.isfile(directory):
        if directory.endswith((".keras", ".h5")):
            return (f"{directory}: a Keras model, not a step-model artifact; convert it first: "
                    f"statecast convert {directory} --out DIR, then use DIR as the model")
        if directory.endswith(".tflite"):
            return (f"{directory}: a .tflite file; the model is its directory (model.tflite + manifest.json "
                    "from statecast convert)")
        return f"{directory}: is a file; the model is an artifact directory (model.tflite + manifest.json)"
    return f"{directory}: model directory does not exist"


def load_artifact(directory: str) -> tuple[Manifest, bytes]:
    """Read and verify an artifact directory; returns the manifest and the .tflite bytes."""
    manifest_path = os.path.join(directory, MANIFEST_FILE)
    model_path = os.path.join(directory, MODEL_FILE)
    if not os.path.isdir(directory):
        raise ArtifactError(_not_a_directory(directory))
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            data = json.load(handle)
        with open(model_path, "rb") as handle:
            content = handle.read()
    except FileNotFoundError as error:
        raise ArtifactError(f"{directory}: missing {os.path.basename(error.filename)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{manifest_path}: manifest must be a JSON object")
    manifest = parse_manifest(data, manifest_path)
    actual = sha256_hex(content)
    if actual != manifest.sha256:
        raise ArtifactError(f"{model_path}: sha256 {actual[:16]}... does not match the manifest "
                            f"({manifest.sha256[:16]}...): refusing a modified or foreign model")
    return manifest, content
