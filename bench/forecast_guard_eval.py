"""The forecast guard on models `statecast train` made (issue 16): what serve publishes with and
without a guard, NRMSE per horizon step on the part of each stream the model never saw.

Reads the models `bench/forecast_eval.py --keep DIR` kept (trained with defaults on the first 60%
of each stream, converted to float32 and int8) and runs each through the daemon's engine over
the whole file, as one stream, once per guard setting (`off`, or a half-life in steps written
into a copy of the manifest). Rows the daemon would drop (a repeated timestamp) are dropped
here too. Errors on the remaining 40%, next to persistence and seasonal-naive (the periods train
found), as in forecast_eval.

    nice -n 10 .venv/bin/python bench/forecast_guard_eval.py --keep DIR --streams A.json[,B.json]
        [--guards off,31,62,125] [--modes float32,int8] [--out bench/results/forecast_guard_eval.json]

(--streams: forecast_eval's results files; their streams are the ones evaluated.)
    .venv/bin/python bench/forecast_guard_eval.py --table [--out ...]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from default_skill import increasing_rows, published_forecasts  # noqa: E402
from forecast_eval import ROOT, SETS, TRAIN_FRACTION, kept_folder, table_header, _row  # noqa: E402

SOURCES = ("nab", "skab", "smap", "msl")


def source_of(key: str) -> str:
    return "nab" if key.startswith("data/nab") else key.split("/")[1]


def csv_of(key: str) -> str:
    return os.path.join(ROOT, key) if key.startswith("data/") else os.path.join(os.path.dirname(SETS["skab"]),
                                                                                 key[len("devcorpus/"):])


def with_guard(model_dir: str, guard: str, work: str) -> str:
    """A copy of the artifact whose manifest has the guard `guard` ("off" or a half-life)."""
    copy = os.path.join(work, f"guard-{guard}")
    shutil.copytree(model_dir, copy)
    path = os.path.join(copy, "manifest.json")
    manifest = json.load(open(path))
    manifest.pop("forecast_guard", None)
    if guard != "off":
        manifest["forecast_guard"] = {"halflife_steps": float(guard)}
    json.dump(manifest, open(path, "w"))
    return copy


def evaluate(key: str, keep: str, guards: list[str], modes: list[str], trained: dict) -> dict:
    """trained: forecast_eval's result for this stream (why a conversion is missing)."""
    from statecast.convert.convert_skill import season_lags
    from statecast.convert.skill import horizon_errors
    from statecast.daemon.model.backends import select_backend
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.tools.series_csv import read_series

    folder = kept_folder(keep, key)
    meta = json.load(open(os.path.join(folder, "m.keras.json")))
    horizon = int(meta["horizon"])
    series = read_series(csv_of(key))
    stamps, values = increasing_rows(series)
    rows = len(stamps)
    split = int(rows * TRAIN_FRACTION)
    result = {"rows": rows, "dropped_rows": len(series.timestamps) - rows, "features": meta["features"]}
    for mode in modes:
        model_dir = os.path.join(folder, mode)
        if not os.path.isdir(model_dir):
            result[mode] = {"error": trained.get(mode, {}).get("error", "not converted")}
            continue
        result[mode] = {}
        with tempfile.TemporaryDirectory() as work:
            for guard in guards:
                model = StepModel(with_guard(model_dir, guard, work), backend=select_backend("auto"))
                forecast = published_forecasts(model, [(stamps, values)])[0]
                result[mode][guard] = horizon_errors(forecast, values, split, rows, horizon, season_lags(meta))
    return result


def worst_vs_persistence(report: dict) -> float:
    """model NRMSE / persistence NRMSE - 1 at the worst horizon step (negative: better); NaN where
    persistence is exact (a flat truth) and the model is not: no ratio, reported apart by MAE."""
    ratios = [s["nrmse_model"] / s["nrmse_persistence"] - 1 if s["nrmse_persistence"] > 0 else
              (0.0 if s["nrmse_model"] == 0 else float("nan")) for s in report["steps"]]
    return float("nan") if any(np.isnan(ratios)) else max(ratios)


def worst_skill(report: dict) -> float:
    return min(s["skill"] for s in report["steps"])


def table(results: dict, mode: str = "float32") -> str:
    guards = sorted({g for r in results.values() for g in r.get(mode, {}) if g != "error"},
                    key=lambda g: (g != "off", float(g) if g != "off" else 0.0))
    lines = ["| stream | " + " | ".join(f"guard {g}: vs persistence / skill (worst step)" for g in guards) + " |",
             "|---|" + "---|" * len(guards)]
    for key, r in results.items():
        cells = [f"{worst_vs_persistence(r[mode][g]):+.1%} / {worst_skill(r[mode][g]):+.3f}"
                 if g in r.get(mode, {}) else "-" for g in guards]
        lines.append(f"| {key.split('/')[-1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def forecast_eval_table(results: dict, guard: str) -> str:
    """forecast_eval's table (float32, int8, baselines) of what serve publishes with `guard`."""
    lines = [table_header()]
    for key, r in results.items():
        view = {"features": r["features"]}
        for mode in ("float32", "int8"):
            cell = r.get(mode, {})
            view[mode] = {"steps": cell[guard]["steps"]} if guard in cell else {"error": cell.get("error", "?")}
        lines.append(_row(key.split("/")[-1] if key.startswith("data/") else key[len("devcorpus/"):], view))
    return "\n".join(lines)


def per_source(results: dict, mode: str, guard: str) -> dict[str, list[float]]:
    """{source: [worst-step model / persistence - 1 per stream]} for one guard setting."""
    out: dict[str, list[float]] = {}
    for key, r in results.items():
        report = r.get(mode, {}).get(guard)
        ratio = worst_vs_persistence(report) if report and "steps" in report else float("nan")
        if not np.isnan(ratio):
            out.setdefault(source_of(key), []).append(ratio)
    return out


def loso(results: dict, mode: str = "float32") -> str:
    """Leave one source out: the half-life whose worst stream (vs persistence, worst step) over
    the other three sources is best (ties: the lower mean), reported on the source left out."""
    guards = sorted({g for r in results.values() for g in r.get(mode, {}) if g not in ("off", "error")}, key=float)
    table_of = {g: per_source(results, mode, g) for g in guards + ["off"]}
    lines = ["| left out | streams | chosen half-life (on the other three) | worst stream, no guard | "
             "worst stream, chosen guard | mean, no guard | mean, chosen guard |", "|---|---:|---:|---|---|---|---|"]
    for source in SOURCES:
        def fit(g):
            others = [v for s, vs in table_of[g].items() if s != source for v in vs]
            return (max(others), float(np.mean(others)))
        chosen = min(guards, key=fit)
        off, on = table_of["off"].get(source, []), table_of[chosen].get(source, [])
        if not on:
            continue
        lines.append(f"| {source} | {len(on)} | {chosen} | {max(off):+.1%} | {max(on):+.1%} | "
                     f"{np.mean(off):+.1%} | {np.mean(on):+.1%} |")
    pooled = ["| half-life | worst stream (all sources) | mean |", "|---:|---|---|"]
    for g in ["off"] + guards:
        values = [v for vs in table_of[g].values() for v in vs]
        pooled.append(f"| {g} | {max(values):+.1%} | {np.mean(values):+.1%} |")
    return "\n".join(lines) + "\n\n" + "\n".join(pooled)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", default="", help="forecast_eval --keep folder")
    parser.add_argument("--streams", default="", help="forecast_eval results files (comma-separated)")
    parser.add_argument("--guards", default="off,31,62,125")
    parser.add_argument("--modes", default="float32,int8")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "forecast_guard_eval.json"))
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--forecast-table", default="", metavar="GUARD",
                        help="print forecast_eval's table of --out for one guard setting")
    parser.add_argument("--loso", action="store_true", help="print the leave-one-source-out choice of --out "
                                                              "(comma-separated files are merged)")
    args = parser.parse_args()
    if args.forecast_table or args.loso or args.table:       # reports of --out (files merged)
        results = {k: v for path in args.out.split(",") for k, v in json.load(open(path)).items()}
        if args.forecast_table:
            print(forecast_eval_table(results, args.forecast_table))
        else:
            report = loso if args.loso else table
            for mode in args.modes.split(","):
                print(f"\n{mode}\n\n{report(results, mode)}")
        return
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    trained = {key: r for path in args.streams.split(",") for key, r in json.load(open(path)).items()
               if "error" not in r}
    for key in trained:
        if key in results:
            continue
        results[key] = evaluate(key, args.keep, args.guards.split(","), args.modes.split(","), trained[key])
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
        print(key, {g: f"{worst_vs_persistence(r):+.1%}" for g, r in results[key].get("float32", {}).items()
                    if isinstance(r, dict) and "steps" in r}, flush=True)


if __name__ == "__main__":
    main()
