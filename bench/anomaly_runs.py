"""Forecasts once per model, the anomaly stage replayed in-process for any settings.

1. `statecast score` (the real CLI, a subprocess per file, 2 at a time) writes each file's
   forecasts once per model into a cache keyed by the model's manifest sha256:
   <work>/<sha12>/<source>/<name>.csv, plus <name>.npz (value, forecast_1, anomaly_score and
   the parsed timestamps) so later runs skip CSV parsing. A file is rescored only when missing.
2. replay() runs the anomaly stage over those columns: expected for row i = the forecast_1 that
   the engine wrote at the last accepted row before it, or the row's own `expected` cell where
   score writes one (a model with a forecast guard publishes a guarded forecast_1 but scores
   against its own forecast), in repr precision, so the replay is exact (exactness() checks it
   against the CLI's own anomaly_score); for the persistence baseline, that row's value. Same
   post-processing, same settings.

scorer_factory() is the ONE place that builds a per-stream scorer from (model dir, settings
dict) (resolved_settings() and is_alert() sit beside it); everything else only calls
scorer.update(actual, expected, ts) -> (score|None, event|None).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_WORK_DIR = Path("/tmp/statecast-anomaly")


# --- the one seam to the daemon's anomaly API -------------------------------------------------

@lru_cache(maxsize=8)
def _model(model_dir: str):
    from statecast.daemon.service.runtime_setup import open_model
    return open_model(model_dir)


def resolved_settings(model_dir, settings: dict | None = None) -> dict:
    """The settings a scorer runs with: the built-in defaults, then the model manifest's
    anomaly.settings, then `settings` (keys of the daemon's AnomalySettings)."""
    from statecast.daemon.service.runtime_setup import manifest_anomaly_settings
    base = dataclasses.asdict(manifest_anomaly_settings(_model(str(model_dir))))
    unknown = sorted(set(settings or {}) - set(base))
    if unknown:
        raise ValueError(f"unknown anomaly setting(s) {', '.join(unknown)}")
    return {**base, **(settings or {})}


def scorer_factory(model_dir, settings: dict | None = None):
    """Zero-argument factory of per-stream scorers for this model and settings dict (over the
    manifest's settings). The lead's new daemon/anomaly/ API changes only this function."""
    from statecast.daemon.anomaly import AnomalySettings
    from statecast.daemon.service.runtime_setup import anomaly_factory_for
    model = _model(str(model_dir))
    return anomaly_factory_for(model, AnomalySettings(**resolved_settings(model_dir, settings)))


def is_alert(event) -> bool:
    """Whether an event returned by scorer.update() is an alert (the other half of the seam)."""
    return event == "alert"


# --- forecasts once per model ----------------------------------------------------------------

def model_key(model_dir) -> str:
    """First 12 hex digits of the sha256 of the model's manifest.json (which pins the .tflite)."""
    return hashlib.sha256(Path(model_dir, "manifest.json").read_bytes()).hexdigest()[:12]


def cache_paths(work_dir, model_dir, file_key: str) -> tuple[Path, Path]:
    base = Path(work_dir) / model_key(model_dir) / file_key
    return base, base.with_name(base.name + ".npz")


def score_file_cli(model_dir, csv_path, out_path) -> None:
    """One file through `statecast score`, exactly as a user runs it; atomic into the cache."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + f".{os.getpid()}.part")
    command = [sys.executable, "-m", "statecast.daemon", "score", "--model", str(model_dir),
               "--csv", str(csv_path), "--out", str(partial)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    partial.replace(out_path)


def parse_scored(csv_path, npz_path) -> None:
    """A `statecast score` CSV -> npz of value, forecast_1, anomaly_score (NaN where empty) and
    stamps (epoch seconds, the engine's own parser)."""
    import csv
    from statecast.daemon.tools.series_csv import parse_timestamp
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))

    def column(name):
        return np.array([float(r[name]) if r[name] != "" else np.nan for r in rows], np.float64)
    stamps = np.array([parse_timestamp(r["timestamp"]) for r in rows], np.float64)
    partial = Path(str(npz_path) + f".{os.getpid()}.part.npz")
    extra = {"expected": column("expected")} if rows and "expected" in rows[0] else {}
    np.savez(partial, value=column("value"), forecast_1=column("forecast_1"),
             anomaly_score=column("anomaly_score"), stamps=stamps, **extra)
    partial.replace(npz_path)


def ensure_scored(model_dir, files, work_dir=DEFAULT_WORK_DIR, jobs: int = 2) -> dict[str, Path]:
    """{file key: npz path} for every file, running the CLI only where the cache lacks it."""
    def one(data_file):
        csv_path, npz_path = cache_paths(work_dir, model_dir, data_file.key)
        if not npz_path.exists():
            if not csv_path.exists():
                score_file_cli(model_dir, data_file.path, csv_path)
            parse_scored(csv_path, npz_path)
        return data_file.key, npz_path
    order = sorted(files, key=lambda f: -f.path.stat().st_size)   # largest first: workers end together
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = dict(pool.map(one, order))
    return {f.key: done[f.key] for f in files}


@lru_cache(maxsize=512)
def load_scored(npz_path: str) -> dict[str, np.ndarray]:
    with np.load(npz_path) as data:
        return {k: data[k] for k in data.files}


# --- the anomaly stage, replayed ---------------------------------------------------------------

def replay_steps(values: list, expected_of: list, own: bool, stamps: list, factory):
    """The anomaly stage over one file's rows as `statecast score` steps it: yields (row, score,
    event) for each row stepped. A row whose timestamp is not after the last accepted one is not
    stepped (the engine drops it; score writes empty cells there). The expected value is the
    row's own cell when `own` (a guarded model's expected column), else the last accepted row's
    (its one-step forecast, or its value for persistence). The one loop both replays share."""
    scorer, previous = factory(), 0
    for i in range(1, len(values)):
        if stamps[i] <= stamps[previous]:
            continue
        score, event = scorer.update(values[i], expected_of[i if own else previous], stamps[i])
        yield i, score, event
        previous = i


def replay(scored: dict, factory, persistence: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(scores, alerts) per row as `statecast score` computes them: scores NaN where undefined,
    alerts True on rows whose step emitted an "alert" event. A row whose timestamp is not after
    the last accepted one is not stepped (the engine drops it) and has no score.
    persistence: expected = the last accepted row's value instead of its forecast."""
    values = scored["value"].tolist()
    own = not persistence and "expected" in scored          # the row's own expected cell
    expected_of = values if persistence else (scored["expected"] if own else scored["forecast_1"]).tolist()
    n = len(values)
    scores, alerts = [np.nan] * n, np.zeros(n, bool)
    for i, score, event in replay_steps(values, expected_of, own, scored["stamps"].tolist(), factory):
        scores[i] = np.nan if score is None else score
        if event is not None and is_alert(event):
            alerts[i] = True
    return np.array(scores, np.float64), alerts


def exactness(scored: dict, factory) -> float:
    """Largest |replayed - CLI| anomaly score with the model's manifest settings (0.0 = exact);
    inf if the undefined rows differ."""
    replayed, _ = replay(scored, factory)
    cli = scored["anomaly_score"]
    if not np.array_equal(np.isnan(replayed), np.isnan(cli)):
        return float("inf")
    both = ~np.isnan(cli)
    return float(np.max(np.abs(replayed[both] - cli[both]), initial=0.0))


def check_fresh(model_dir, data_files, cached: dict[str, Path], scratch_dir) -> dict[str, float]:
    """Run the CLI now (current code) on a few files and compare with the cache and the replay:
    {"forecast": largest |fresh - cached| forecast_1 (0.0: the cache is current; the cache is
    keyed by the manifest only, so a change of the forecast code needs a rescore), "replay":
    largest |replayed - fresh CLI| anomaly score with the manifest settings (0.0: exact)}."""
    worst = {"forecast": 0.0, "replay": 0.0}
    for data_file in data_files:
        csv_path = Path(scratch_dir) / model_key(model_dir) / data_file.key
        score_file_cli(model_dir, data_file.path, csv_path)
        npz_path = csv_path.with_name(csv_path.name + ".npz")
        parse_scored(csv_path, npz_path)
        with np.load(npz_path) as data:                  # not load_scored: scratch paths are reused
            fresh = {k: data[k] for k in data.files}
        old = load_scored(str(cached[data_file.key]))
        same_shape = fresh["forecast_1"].shape == old["forecast_1"].shape
        gap = np.nanmax(np.abs(fresh["forecast_1"] - old["forecast_1"]), initial=0.0) if same_shape else np.inf
        worst["forecast"] = max(worst["forecast"], float(gap))
        worst["replay"] = max(worst["replay"], exactness(fresh, scorer_factory(model_dir)))
    return worst
