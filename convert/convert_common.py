"""What step and window conversion share (pipeline.py dispatches to one or the other; neither
imports the other): the options, the model's inputs and outputs read from options + training
metadata, the parity series, and the end of every conversion: write the artifact into a staging
directory, check it, and only then move it into place.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from statecast.daemon.model.artifact import CALENDAR_FEATURES, MANIFEST_FILE, MODEL_FILE
from statecast.daemon.model.features import assemble_inputs
from statecast.daemon.tools.series_csv import SeriesError, read_series

from .edgetpu_report import edgetpu_report
from .errors import ConversionError
from .model_spec import ModelSpec
from .report import parity_failure_text

SIDECAR_SUFFIX = ".json"      # `statecast train` writes M.keras.json beside M.keras


@dataclass(frozen=True)
class ConvertOptions:
    model_path: str
    mode: str
    out_dir: str
    calibration_csv: str | None = None
    more_calibration_csvs: tuple[str, ...] = ()   # int8, int16x8: further series to calibrate on
    time_column: str = "timestamp"
    features: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    horizon: int | None = None
    name: str | None = None
    static_batch: int | None = None
    keep_on_parity_failure: bool = False
    residual: bool | None = None      # None: from training metadata, else False
    window: int | None = None         # window models (issue 8): W when the Keras input length is not fixed


def read_sidecar(model_path: str) -> dict:
    path = model_path + SIDECAR_SUFFIX
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ConversionError(f"{path}: unreadable training metadata ({error})") from None


def describe_io(spec: ModelSpec, options: ConvertOptions, meta: dict):
    features = tuple(options.features or meta.get("features") or
                     (("value",) if spec.n_features == 1 else tuple(f"f{i}" for i in range(spec.n_features))))
    if len(features) != spec.n_features:
        raise ConversionError(f"--features names {len(features)} features but the model takes {spec.n_features}")
    values = tuple(f for f in features if f not in CALENDAR_FEATURES)
    if features[: len(values)] != values:
        raise ConversionError("--features: list value features first, then calendar features "
                              f"({', '.join(CALENDAR_FEATURES)})")
    targets = tuple(options.targets or meta.get("targets") or values[:1])
    if spec.n_outputs % len(targets):
        raise ConversionError(f"model has {spec.n_outputs} outputs, not a multiple of {len(targets)} targets")
    horizon = options.horizon or meta.get("horizon") or spec.n_outputs // len(targets)
    if horizon * len(targets) != spec.n_outputs:
        raise ConversionError(f"horizon {horizon} x {len(targets)} targets != {spec.n_outputs} model outputs")
    return features, values, targets, int(horizon)


def parity_series(options: ConvertOptions, meta: dict, features, values, targets):
    """(x_raw (rows, features), truth (rows, targets), label) from the calibration CSV or training CSV."""
    csv_path = options.calibration_csv or meta.get("csv")
    if not csv_path:
        return None
    time_column = options.time_column if options.calibration_csv else meta.get("time_column", "timestamp")
    series, x_raw = _series_inputs(csv_path, time_column, tuple(dict.fromkeys(values + targets)), features)
    truth = series.values[:, [series.columns.index(t) for t in targets]]
    return x_raw, truth, os.path.basename(csv_path)


def more_calibration_inputs(options: ConvertOptions, meta: dict, features, values) -> list[np.ndarray]:
    """x_raw of every further calibration series: the --calibration-csv files after the first, else
    the other training CSVs `statecast train` recorded (those still on disk)."""
    if options.calibration_csv:
        paths, time_column = list(options.more_calibration_csvs), options.time_column
    else:
        paths = [p for p in meta.get("csvs", []) if p != meta.get("csv") and os.path.isfile(p)]
        time_column = meta.get("time_column", "timestamp")
    return [_series_inputs(path, time_column, tuple(values), features)[1] for path in paths]


def _series_inputs(csv_path: str, time_column: str, columns: tuple[str, ...], features):
    """(series, x_raw (rows, features) float32) of one CSV; a bad file is a ConversionError."""
    try:
        series = read_series(csv_path, time_column, columns)
    except SeriesError as error:
        raise ConversionError(str(error)) from None
    return series, assemble_inputs(series.timestamps, series.values, features, series.columns).astype(np.float32)


def write_artifact(directory: str, content: bytes, manifest: dict) -> None:
    with open(os.path.join(directory, MODEL_FILE), "wb") as handle:
        handle.write(content)
    write_manifest(directory, manifest)


def write_manifest(directory: str, manifest: dict) -> None:
    with open(os.path.join(directory, MANIFEST_FILE), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=False)
        handle.write("\n")


@contextmanager
def staging_area(out_dir: str):
    """A temporary directory beside out_dir (same filesystem, so the final move is a rename),
    removed afterwards whatever happened: a failed conversion leaves no partial artifact."""
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".statecast-convert-", dir=parent)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: str, out_dir: str) -> None:
    if os.path.exists(out_dir):
        old = out_dir.rstrip("/") + ".old-" + str(os.getpid())
        os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def install_verified(staging: str, content: bytes, manifest: dict, options: ConvertOptions,
                     open_artifact: Callable[[str], Any], parity_of: Callable[[Any], dict] | None) -> dict:
    """The end of every conversion (step and window): write the artifact in the staging area, add
    its Edge TPU report and, with parity data, its parity section (`parity_of(opened artifact)`),
    and move it to options.out_dir only if parity passed (or keep_on_parity_failure), so a failed
    check leaves no artifact. `open_artifact(directory)` opens the written model. Returns the
    manifest written."""
    final_dir = os.path.join(staging, "artifact")
    os.makedirs(final_dir)
    write_artifact(final_dir, content, manifest)
    artifact = open_artifact(final_dir)
    manifest["edgetpu"] = edgetpu_report(artifact.plain_interpreter(), options.mode)
    if parity_of is not None:
        manifest.update(parity_of(artifact))
    write_manifest(final_dir, manifest)
    figures = manifest.get("parity")
    if parity_of is not None and not figures["pass"] and not options.keep_on_parity_failure:
        raise ConversionError(parity_failure_text(manifest, _headline(figures)))
    _move_into_place(final_dir, options.out_dir)
    return manifest


def _headline(figures: dict) -> str:
    """The figure the tolerance is on: window parity names it `measure`; step parity checks
    rmse_ratio for int8 and max_abs_error_over_range otherwise."""
    measure = figures.get("measure") or ("rmse_ratio" if "rmse_ratio" in figures else "max_abs_error_over_range")
    return f"{measure} {figures[measure]:.4g}"
