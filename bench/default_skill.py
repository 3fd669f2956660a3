"""How the generic models (models/default, -int8, -int16x8) forecast, next to persistence (issue 16).

A generic model is trained on many series at once, so it has no single held-back tail. Two
honest places to measure it instead, step 1 (its horizon), NRMSE per file as in convert/skill.py:

- nab-dev: the last 20% of each of its 18 NAB training files, the part `train` used only for early
  stopping (`--validation-fraction 0.2`, no held-back tail). Close to in-sample. This is the report
  written into each manifest (`--manifest DIR`; `models/build_default.sh` runs it), so `serve`
  logs it at start.
- smap / msl / skab (`../shared/data/devcorpus`, development data, nothing copied): streams the
  model never saw, rows from 20% on (the online normalisation has settled by then).

Seasonal-naive is left out here: SMAP/MSL timestamps carry no calendar meaning, and the report
compares with the baseline every stream has. The forecasts are what `serve` publishes: the
daemon's engine over each file as one stream (its online scaling, and the forecast guard of a
model whose manifest has one).

    .venv/bin/python bench/default_skill.py [--models default,default-int8,default-int16x8]
        [--sources nab-dev,smap,msl,skab] [--out bench/results/default_skill.json]
    .venv/bin/python bench/default_skill.py --manifest models/default     # write its nab-dev report
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAB_FILES = sorted((ROOT / "data" / "nab" / "data").glob("*/*.csv"))
DEVCORPUS = ROOT.parent / "shared" / "data" / "devcorpus" / "data"
VALIDATION_FRACTION = 0.2          # build_default.sh's --validation-fraction: the nab-dev rows reported
UNSEEN_SKIP_FRACTION = 0.2         # on unseen streams, the first rows the online scaling settles on
TAIL_NAB = "validation part (last 20%, used for early stopping; no held-back tail) of its 18 NAB training files"


def published_forecasts(model, series: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Per series (stamps, values (rows, 1)), the forecast the daemon publishes after each row,
    (rows, horizon * targets), (rows, 1) for the generic models: the engine itself (online
    scaling, calendar, the forecast guard of a model that has one, as in serve and score), every
    series its own stream, stepped together in batches as serve would."""
    from statecast.daemon.engine.step_engine import Engine, EngineSettings
    from statecast.daemon.messages import Message
    columns = [(stamps.tolist(), values[:, 0].tolist()) for stamps, values in series]
    engine = Engine(model, EngineSettings(max_streams=len(series)))
    forecasts: list[list[list[float]]] = [[] for _ in series]
    for i in range(max(len(stamps) for stamps, _ in columns)):        # one round: row i of every series
        round_ = [Message(str(k), (values[i],), stamps[i], stamps[i])
                  for k, (stamps, values) in enumerate(columns) if i < len(stamps)]
        for result in engine.process(round_, now=0.0):
            forecasts[int(result.stream_id)].append(result.forecast.reshape(-1).tolist())
    for k, (stamps, _) in enumerate(columns):
        if len(forecasts[k]) != len(stamps):
            raise ValueError(f"series {k}: {len(stamps) - len(forecasts[k])} rows were not stepped")
    return [np.asarray(f, np.float64) for f in forecasts]


def increasing_rows(series):
    """The rows whose timestamp is later than every earlier one: what the daemon steps (it drops a
    repeated or older timestamp). A few NAB files repeat an hour at a clock change."""
    keep = np.concatenate([[True], series.timestamps[1:] > np.maximum.accumulate(series.timestamps)[:-1]])
    return series.timestamps[keep], series.values[keep]


def file_skill(name: str, forecast: np.ndarray, values: np.ndarray, start_fraction: float) -> dict:
    """Step-1 NRMSE of the model and of persistence on rows from start_fraction on."""
    from statecast.convert import skill
    rows = len(values)
    report = skill.horizon_errors(forecast, values, int(rows * start_fraction), rows, 1, {})
    step = report["steps"][0]
    return {"file": name, "origins": report["origins"],
            "nrmse_model": step["nrmse_model"], "nrmse_persistence": step["nrmse_persistence"],
            "skill": step["skill"]}


def summary(files: list[dict]) -> dict:
    skills = [f["skill"] for f in files]
    worst = min(files, key=lambda f: f["skill"])
    return {"files": len(files), "beats_persistence": sum(s > 0 for s in skills),
            "median_skill": round(float(np.median(skills)), 4), "skill_min": worst["skill"],
            "worst_file": worst["file"], "skill_max": max(skills)}


def source_files(source: str) -> tuple[list[Path], float]:
    if source == "nab-dev":
        return NAB_FILES, 1.0 - VALIDATION_FRACTION
    return sorted((DEVCORPUS / source).glob("*.csv")), UNSEEN_SKIP_FRACTION


def evaluate(model_dir: Path, source: str) -> dict:
    from statecast.daemon.model.step_model import StepModel
    model = StepModel(str(model_dir))
    paths, start = source_files(source)
    if not paths:
        raise SystemExit(f"default_skill: no CSV files for source {source!r} (devcorpus at {DEVCORPUS}?)")
    from statecast.daemon.tools.series_csv import read_series
    series = [increasing_rows(read_series(str(path), "timestamp", ("value",), None)) for path in paths]
    forecasts = published_forecasts(model, series)
    files = [file_skill(path.name, forecast, values, start)
             for path, forecast, (_, values) in zip(paths, forecasts, series)]
    return {"summary": summary(files), "files": files}


def skill_line(label: str, result: dict) -> str:
    s = result["summary"]
    return (f"{label} step-1 skill of the published forecast vs persistence on the {TAIL_NAB}: beats persistence on "
            f"{s['beats_persistence']} of {s['files']}, median {s['median_skill']:+.3f}, worst "
            f"{s['skill_min']:+.3f} ({s['worst_file']}); on streams it never saw: docs/forecasting.md")


def write_manifest(model_dir: Path) -> str:
    """The nab-dev report into model_dir/manifest.json's `skill` (serve logs its line at start)."""
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    result = evaluate(model_dir, "nab-dev")
    label = str(manifest.get("quantization", "float32"))
    line = skill_line(label, result)
    report = {**result["summary"], "has_skill": result["summary"]["beats_persistence"] == result["summary"]["files"],
              "tail": TAIL_NAB, "steps": 1, "per_file": result["files"]}
    manifest["skill"] = {"report": report, "line": line}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default,default-int8,default-int16x8",
                        help="directories under models/, or paths")
    parser.add_argument("--sources", default="nab-dev,smap,msl,skab")
    parser.add_argument("--manifest", action="append", default=[], metavar="DIR",
                        help="write the nab-dev report into DIR/manifest.json (repeatable) and stop")
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    logging.getLogger("statecast.gaps").setLevel(logging.ERROR)     # every file's gaps would be logged
    if args.manifest:
        for directory in args.manifest:
            print(f"{directory}: {write_manifest(Path(directory))}")
        return 0
    results = {}
    print("| model | source | files | beats persistence | median skill | worst (file) |")
    print("|---|---|---:|---:|---:|---|")
    for name in args.models.split(","):
        for source in args.sources.split(","):
            result = evaluate(ROOT / "models" / name, source)          # an absolute path stays as it is
            results[f"{name}|{source}"] = result
            s = result["summary"]
            print(f"| {name} | {source} | {s['files']} | {s['beats_persistence']} | {s['median_skill']:+.3f} | "
                  f"{s['skill_min']:+.3f} ({s['worst_file']}) |", flush=True)
    if args.out != "-":
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
