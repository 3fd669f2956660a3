"""Score every shipped step model over the first N rows of a fixed CSV, once per kernel path.

Runs the same on x86 (the host) and aarch64 (inside the Pi root filesystem), so the two sets of
CSVs can be compared row by row (tests/pi/parity.py). One file per model and kernel path:
<out>/<model>.<kernels>.csv with step, forecast_1, anomaly_score, event — the engine's own
results, exactly what `statecast score` and the daemon compute, plus the alert events that
`statecast score` does not write.

Usage: python tests/pi/score_models.py OUT_DIR [--rows N] [--kernels auto,optimized] [--csv F]
(PI_SCORE_ROWS: default rows, 2500: alerts on every shipped model, ~1.5 minutes under qemu)
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CSV = os.path.join(REPO, "data/nab/data/realKnownCause/machine_temperature_system_failure.csv")
MODELS = ("default", "default-int8", "default-int16x8", "machine_temperature-float32", "machine_temperature-int8")


def score_model(model_dir: str, kernels: str, series, out_path: str) -> int:
    from statecast.daemon.engine.step_engine import Engine, EngineSettings
    from statecast.daemon.messages import Message
    from statecast.daemon.service.runtime_setup import anomaly_factory_for, open_model
    model = open_model(model_dir, kernels=kernels)
    engine = Engine(model, EngineSettings(), anomaly_factory_for(model))
    with open(out_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "forecast_1", "anomaly_score", "event", "kernels"])
        for step, (row, ts) in enumerate(zip(series.values, series.timestamps)):
            message = Message("csv", tuple(float(v) for v in row), float(ts), float(ts))
            for result in engine.process([message], now=float(ts)):
                score = "" if result.anomaly_score is None else repr(float(result.anomaly_score))
                writer.writerow([step, repr(float(result.forecast[0, 0])), score, result.event or "", model.kernels])
    return len(series.values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=int(os.environ.get("PI_SCORE_ROWS", "2500")))
    parser.add_argument("--kernels", default="auto,optimized")
    parser.add_argument("--csv", default=DEFAULT_CSV)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    from statecast.daemon.tools.series_csv import read_series
    os.makedirs(args.out, exist_ok=True)
    series = read_series(args.csv, "timestamp", ("value",), rows=f":{args.rows}")
    for name in args.models.split(","):
        for kernels in args.kernels.split(","):
            if kernels == "optimized" and not name.endswith("int8"):
                continue                     # a float model's "auto" already is "optimized"
            started = time.perf_counter()
            rows = score_model(os.path.join(REPO, "models", name), kernels, series,
                               os.path.join(args.out, f"{name}.{kernels}.csv"))
            print(f"{platform.machine()} {name} kernels={kernels}: {rows} rows in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
