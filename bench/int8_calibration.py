"""Where the default model's int8 forecasts lose against float32 (issue 15): the calibration set
and the activation width, one conversion each, measured on the 18 NAB development files.

    nice -n 10 .venv/bin/python bench/int8_calibration.py [--keras models/default.keras]
        [--out bench/results/int8_calibration.json]

For each (calibration set, mode) the Keras model is converted by `statecast convert` exactly as a
user would, then run over every NAB development file (up to 4,000 rows, state carried) next to
models/default (float32). Reported per variant: RMS(quantized - float) of the one-step model
output (model space, before output scaling), over the float output's standard deviation, averaged
over the files; and the largest such figure of any file. The anomaly scores of the variants
(bench/anomaly_eval.py) are in docs/anomaly.md, "int8".
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from statecast.daemon.model.features import assemble_inputs      # noqa: E402
from statecast.daemon.model.scaling import IoScaling             # noqa: E402
from statecast.daemon.model.step_model import StepModel, run_sequence  # noqa: E402
from statecast.daemon.tools.series_csv import read_series        # noqa: E402

NAB_FILES = sorted(glob.glob(os.path.join(ROOT, "data/nab/data/*/*.csv")))
PARITY_FILE = os.path.join(ROOT, "data/nab/data/realKnownCause/machine_temperature_system_failure.csv")
CALIBRATION_SETS = {"machine_temperature": [PARITY_FILE],
                    "nab_dev_18": [PARITY_FILE] + [f for f in NAB_FILES if f != PARITY_FILE]}
MODES = ("int8", "int16x8")
ROWS = 4000


def convert(keras_path: str, mode: str, calibration: list[str], out_dir: str) -> None:
    args = [sys.executable, "-m", "statecast.daemon", "convert", keras_path, "--quantize", mode,
            "--keep-on-parity-failure", "--out", out_dir]
    for path in calibration:
        args += ["--calibration-csv", path]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"convert {mode} failed:\n{done.stderr[-2000:]}")


def model_outputs(model: StepModel, csv: str) -> np.ndarray:
    """(rows,) one-step outputs in model space, one stream from a cold state."""
    series = read_series(csv, "timestamp", ("value",))
    x_raw = assemble_inputs(series.timestamps, series.values, model.manifest.features, series.columns)
    x = IoScaling(model.manifest).sequence(x_raw[:ROWS].astype(np.float32))[0]
    return run_sequence(model, x)[:, 0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", default=os.path.join(ROOT, "models/default.keras"))
    parser.add_argument("--float-model", default=os.path.join(ROOT, "models/default"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench/results/int8_calibration.json"))
    args = parser.parse_args()
    float_model = StepModel(args.float_model)
    reference = {csv: model_outputs(float_model, csv) for csv in NAB_FILES}
    results = []
    with tempfile.TemporaryDirectory(prefix="statecast-int8-cal-") as work:
        for set_name, calibration in CALIBRATION_SETS.items():
            for mode in MODES:
                out_dir = os.path.join(work, f"{set_name}-{mode}")
                convert(args.keras, mode, calibration, out_dir)
                model = StepModel(out_dir)
                gaps = [float(np.sqrt(np.mean((model_outputs(model, csv) - ref) ** 2)) / max(np.std(ref), 1e-9))
                        for csv, ref in reference.items()]
                row = {"calibration": set_name, "files": len(calibration), "mode": mode,
                       "gap_over_spread_mean": round(float(np.mean(gaps)), 4),
                       "gap_over_spread_max": round(float(np.max(gaps)), 4)}
                results.append(row)
                print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"keras": os.path.relpath(args.keras, ROOT), "rows_per_file": ROWS, "results": results},
                  handle, indent=2)
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
