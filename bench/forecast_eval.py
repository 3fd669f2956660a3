"""Forecast evaluation (issue 16): `statecast train` with defaults on the first 60% of each
stream (time order), then NRMSE per horizon step on the remaining 40%, float32 and int8 step
models, next to persistence and seasonal-naive (for the periods train found in the data). The
forecast is what serve publishes: through the forecast guard train chose (results from before
commit "forecast guard on trained models" are of the model's forecast alone).

    nice -n 10 .venv/bin/python bench/forecast_eval.py [--horizon 5] [--sets nab,skab,smap,msl]
        [--per-set N] [--out bench/results/forecast_eval.json]

Streams: data/nab realKnownCause (7 files, real time axis); SKAB and a sample of SMAP/MSL from
/work/shared/data/devcorpus (development data: nothing from it is copied into the project).
train's defaults were chosen on nyc_taxi and machine_temperature (first 60%): figures on those two
are development figures. Results are appended per stream, so a partial run is still readable.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {"nab": os.path.join(ROOT, "data/nab/data/realKnownCause"),
        "skab": "/work/shared/data/devcorpus/data/skab", "smap": "/work/shared/data/devcorpus/data/smap",
        "msl": "/work/shared/data/devcorpus/data/msl"}
TRAIN_FRACTION = 0.6
MODES = ("float32", "int8", "int16x8")     # int16x8 since issue 15 (earlier results have no such key)


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "statecast.daemon", *args], capture_output=True, text=True)


def head_csv(csv: str, rows: int, work: str) -> str:
    """The training rows only, so int8 calibration never sees the evaluation part."""
    path = os.path.join(work, "train.csv")
    with open(csv) as source, open(path, "w") as target:
        for index, line in enumerate(source):
            if index > rows:
                break
            target.write(line)
    return path


def evaluate(csv: str, horizon: int, work: str, train_args: tuple[str, ...] = (),
             modes: tuple[str, ...] = MODES) -> dict:
    from statecast.convert.convert_skill import published_forecast, season_lags
    from statecast.convert.skill import horizon_errors
    from statecast.daemon.model.backends import select_backend
    from statecast.daemon.model.features import assemble_inputs
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.tools.series_csv import read_series

    series = read_series(csv)
    split = int(series.values.shape[0] * TRAIN_FRACTION)
    keras_path = os.path.join(work, "m.keras")
    trained = cli("train", "--csv", csv, "--rows", f":{split}", "--horizon", str(horizon), "--allow-no-skill",
                  "--out", keras_path, *train_args)
    if trained.returncode:
        return {"error": "train: " + trained.stderr.strip().splitlines()[-1]}
    meta = json.load(open(keras_path + ".json"))
    result = {"rows": int(series.values.shape[0]), "train_rows": split, "features": meta["features"],
              "window": meta["window"], "epochs": meta["epochs_run"], "shrinkage": meta.get("shrinkage"),
              "train_tail_skill": [s["skill"] for s in meta["skill"][0]["steps"]]}
    calibration = head_csv(csv, split, work)
    for mode in modes:
        out = os.path.join(work, mode)
        converted = cli("convert", keras_path, "--quantize", mode, "--calibration-csv", calibration, "--out", out)
        if converted.returncode:
            lines = converted.stderr.strip().splitlines()
            result[mode] = {"error": next((line for line in lines if "parity check failed" in line), lines[-1])}
            continue
        model = StepModel(out, backend=select_backend("auto"))
        x = assemble_inputs(series.timestamps, series.values, model.manifest.features, series.columns)
        forecast = published_forecast(model, x.astype(np.float32), series.values)     # with the guard train chose
        result[mode] = horizon_errors(forecast, series.values, split, series.values.shape[0], horizon, season_lags(meta))
    return result


def kept_folder(keep: str, key: str) -> str:
    """Where --keep puts one stream's trained and converted models (forecast_guard_eval reads them)."""
    return os.path.join(keep, key.replace("/", "__"))


def streams(sets: list[str], per_set: int) -> list[str]:
    chosen = []
    for name in sets:
        files = sorted(glob.glob(os.path.join(SETS[name], "*.csv")))
        step = max(1, len(files) // per_set) if name != "nab" else 1
        chosen += files[::step][: per_set if name != "nab" else None]
    return chosen


def _ratio(a: float, b: float) -> float:
    """a / b, where a flat truth (b = 0) counts as equal if a is 0 too."""
    return a / b if b > 0 else (1.0 if a == 0 else float("inf"))


def _refusal(error: str) -> str:
    """The gate that refused a conversion, short enough for a table cell."""
    if "int8 gate" in error:
        return "refused by the int8 gate"
    return "refused: " + error.split("parity check failed (")[-1].split(")")[0]


def _row(key: str, r: dict) -> str:
    if "error" in r or "error" in r.get("float32", {}):
        return f"| {key} | {r.get('error') or r['float32']['error']} |"
    f = r["float32"]["steps"]
    q = r["int8"]["steps"] if "steps" in r.get("int8", {}) else None
    first, last = f[0], f[-1]
    seasons = [k[len("nrmse_"):] for k in first if k.startswith("nrmse_seasonal")]
    def season(s):
        return min(s[f"nrmse_{n}"] for n in seasons) if seasons else float("nan")
    calendar = ",".join(sorted({x[:3] for x in r["features"][1:]})) or "off"
    vs_persistence = max(_ratio(s["nrmse_model"], s["nrmse_persistence"]) - 1 for s in f)
    int8 = (f"{q[0]['nrmse_model']:.3f} / {q[-1]['nrmse_model']:.3f} | "
            f"{max(_ratio(a['nrmse_model'], b['nrmse_model']) - 1 for a, b in zip(q, f)):+.1%}") if q else \
        f"{_refusal(r['int8'].get('error', '?'))} | -"
    w = r.get("int16x8", {}).get("steps")
    int16 = (f"{max(_ratio(a['nrmse_model'], b['nrmse_model']) - 1 for a, b in zip(w, f)):+.1%}" if w else
             _refusal(r["int16x8"].get("error", "?")) if "int16x8" in r else "not run")
    return (f"| {key} | {calendar} | {first['nrmse_model']:.3f} / {last['nrmse_model']:.3f} | {int8} | {int16} | "
            f"{first['nrmse_persistence']:.3f} / {last['nrmse_persistence']:.3f} | "
            f"{season(first):.3f} / {season(last):.3f} | {min(s['skill'] for s in f):+.3f} | {vs_persistence:+.1%} |")


def table_header() -> str:
    return ("| stream | calendar | float32 NRMSE step 1 / H | int8 step 1 / H | int8 vs float32 (worst step) | "
            "int16x8 vs float32 (worst step) | persistence 1 / H | seasonal-naive 1 / H | "
            "skill vs best baseline (worst step) | float32 vs persistence (worst step) |\n"
            "|---|---|---|---|---|---|---|---|---|---|")


def table(results: dict) -> str:
    return "\n".join([table_header()] + [_row(k, r) for k, r in results.items()])


def shipped(first_row: int = 15000) -> str:
    """Shipped models on machine_temperature rows first_row.. (unseen by machine_temperature-*;
    default* trained on every NAB development file, so in-sample for them)."""
    from statecast.convert.convert_skill import published_forecast
    from statecast.convert.skill import horizon_errors
    from statecast.daemon.model.backends import select_backend
    from statecast.daemon.model.features import assemble_inputs
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.tools.series_csv import read_series

    series = read_series(os.path.join(SETS["nab"], "machine_temperature_system_failure.csv"))
    lines = ["| model | rows | NRMSE model | persistence | skill | RMSE model | RMSE persistence |", "|---|---|---|---|---|---|---|"]
    for name in ("machine_temperature-float32", "machine_temperature-int8", "default", "default-int8",
                 "default-int16x8"):
        model = StepModel(os.path.join(ROOT, "models", name), backend=select_backend("auto"))
        x = assemble_inputs(series.timestamps, series.values, model.manifest.features, series.columns)
        forecast = published_forecast(model, x.astype(np.float32), series.values)
        step = horizon_errors(forecast, series.values, first_row, series.values.shape[0], 1, {})
        s, spread = step["steps"][0], series.values[first_row:, 0].std()
        lines.append(f"| {name} | {first_row}.. | {s['nrmse_model']:.4f} | {s['nrmse_persistence']:.4f} | "
                     f"{s['skill']:+.3f} | {s['nrmse_model'] * spread:.4f} | {s['nrmse_persistence'] * spread:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--sets", default="nab,skab,smap,msl")
    parser.add_argument("--per-set", type=int, default=5, help="files per devcorpus set (spread over the list)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "forecast_eval.json"))
    parser.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    parser.add_argument("--train-args", default="", help="extra train flags (a variant of the defaults)")
    parser.add_argument("--shipped", action="store_true", help="shipped models on machine_temperature rows 15000..")
    parser.add_argument("--only", default="", help="comma-separated substrings: evaluate only the streams matching one")
    parser.add_argument("--modes", default=",".join(MODES), help="conversions to evaluate (comma-separated)")
    parser.add_argument("--keep", default="", help="keep each stream's trained and converted models under this folder")
    args = parser.parse_args()
    if args.table:
        print(table(json.load(open(args.out))))
        return
    if args.shipped:
        print(shipped())
        return
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    for csv in streams(args.sets.split(","), args.per_set):
        if args.only and not any(part in csv for part in args.only.split(",")):
            continue
        key = os.path.relpath(csv, ROOT) if csv.startswith(ROOT) else "devcorpus/" + os.path.relpath(csv, os.path.dirname(SETS["skab"]))
        if key in results:
            continue
        if args.keep:
            os.makedirs(kept_folder(args.keep, key), exist_ok=True)
        with contextlib.nullcontext(kept_folder(args.keep, key)) if args.keep else tempfile.TemporaryDirectory() as work:
            results[key] = evaluate(csv, args.horizon, work, tuple(args.train_args.split()), tuple(args.modes.split(",")))
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
        print(key, json.dumps({k: v for k, v in results[key].items() if k not in MODES}), flush=True)


if __name__ == "__main__":
    main()
