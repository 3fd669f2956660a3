"""Conversion report: per cell and quantization mode, size, parity, forecast error and step speed.

Converts every trained fixture (tests/fixtures/*.keras, 2 x 32 units) in the four quantization
modes with the real pipeline (parity + int8 drift figures come from the manifest it writes),
then times the step model on the device runtime and writes docs/conversion.md.

    .venv/bin/python bench/conversion_table.py [--no-shipped] [--out docs/conversion.md]

The 2 x 64 LSTM reference workload (models/build.sh's recipe until issue 16; the shipped
machine_temperature models are a GRU(64) since) is re-trained (cached under
$TMPDIR/statecast-bench; under a minute on 2 cores, early stopping) and added as "shipped".
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from statecast.convert import parity
from statecast.convert.convert_common import ConvertOptions, read_sidecar
from statecast.convert.pipeline import convert
from statecast.daemon.model.features import assemble_inputs
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.tools.series_csv import read_series

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV = os.path.join(ROOT, "data/nab/data/realKnownCause/machine_temperature_system_failure.csv")
FIXTURES = ("lstm", "gru", "gru_classic", "rnn_tanh", "rnn_relu")
MODES = ("float32", "float16", "dynamic", "int8")
SHIPPED_CACHE = os.path.join(tempfile.gettempdir(), "statecast-bench", "machine_temperature.keras")
# batch size -> invokes per repeat: many short (~2 ms) repeats, so the median shrugs off other work.
BATCHES = {1: 200, 256: 10}
REPEATS = 25
VERDICT = {True: "compatible", False: "not compatible"}


def shipped_model() -> str:
    """The 2x64 LSTM reference workload, trained with models/build.sh's recipe before issue 16 (cached)."""
    if not os.path.isfile(SHIPPED_CACHE):
        os.makedirs(os.path.dirname(SHIPPED_CACHE), exist_ok=True)
        subprocess.run([sys.executable, "-m", "statecast.daemon", "train", "--csv", CSV, "--rows", ":15000",
                        "--cell", "lstm", "--units", "64", "--layers", "2", "--window", "64", "--horizon", "1",
                        "--epochs", "30", "--seed", "0", "--out", SHIPPED_CACHE], check=True)
    return SHIPPED_CACHE


def time_step_us(model: StepModel, batch: int, invokes: int) -> float:
    """Median wall time of one StepModel.step (set inputs, invoke, read outputs) at `batch`, in µs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, model.n_features)).astype(np.float32)      # (batch, features)
    states = model.zero_states(batch)
    for _ in range(50):                                                         # warm up
        _, states = model.step(x, states)
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(invokes):
            _, states = model.step(x, states)
        runs.append((time.perf_counter() - start) / invokes * 1e6)
    return float(np.median(runs))


def persistence_rmse(start: int, stop: int | None = None) -> float:
    """Baseline: the next value forecast as the current one (what a residual model starts from)."""
    values = read_series(CSV, "timestamp", ("value",)).values[start:stop, 0]
    return float(np.sqrt(np.mean(np.diff(values) ** 2)))


def held_out_rmse(model: StepModel, train_rows: str | None) -> tuple[float, int]:
    """One-step RMSE over the CSV rows the model was not trained on (state carried from row 0)."""
    series = read_series(CSV, "timestamp", ("value",))
    x_raw = assemble_inputs(series.timestamps, series.values, model.manifest.features, series.columns)
    start = int((train_rows or ":0").partition(":")[2] or 0)
    out = parity.run_step_model(model, x_raw.astype(np.float32))              # (rows, outputs)
    return parity.one_step_rmse(out, series.values[:, :1], 1, skip=start), start


def measure(name: str, keras_path: str, mode: str, work: str) -> dict:
    out_dir = os.path.join(work, f"{name}-{mode}")
    manifest = convert(ConvertOptions(model_path=keras_path, mode=mode, out_dir=out_dir, calibration_csv=CSV,
                                      keep_on_parity_failure=True))
    model = StepModel(out_dir)
    rmse, start = held_out_rmse(model, read_sidecar(keras_path).get("rows"))
    row = {"cell": name, "mode": mode, "manifest": manifest, "runtime": model.backend.name,
           "rmse_held_out": rmse, "held_out_from": start}
    if mode == "int8":   # the Edge TPU needs static shapes: pre-check a batch-1 build too
        row["edgetpu_static"] = convert(ConvertOptions(model_path=keras_path, mode=mode, out_dir=out_dir + "-b1",
                                                       calibration_csv=CSV, static_batch=1,
                                                       keep_on_parity_failure=True))["edgetpu"]
    for batch, invokes in BATCHES.items():
        row[f"us_{batch}"] = time_step_us(model, batch, invokes)
    print(f"{name:12s} {mode:8s} {manifest['tflite_bytes']:7d} B  err/range "
          f"{manifest['parity']['max_abs_error_over_range']:.2e}  pass {manifest['parity']['pass']}  "
          f"b1 {row['us_1']:.1f} µs  b256 {row['us_256']:.0f} µs", flush=True)
    return row


def table(rows: list[dict]) -> list[str]:
    lines = ["| cell | mode | bytes | max err / range | int8 RMSE ratio | pass | RMSE rows 0-5k | RMSE held-out "
             "| µs/invoke b1 | µs/invoke b256 | µs/stream-step b256 |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["manifest"]["parity"]
        ratio = f"{p['rmse_ratio']:.4f}" if "rmse_ratio" in p else "-"
        lines.append(f"| {r['cell']} | {r['mode']} | {r['manifest']['tflite_bytes']:,} | "
                     f"{p['max_abs_error_over_range']:.2e} | {ratio} | {'yes' if p['pass'] else '**NO**'} | "
                     f"{p['rmse_step']:.4f} | {r['rmse_held_out']:.4f} (from row {r['held_out_from']:,}) | "
                     f"{r['us_1']:.1f} | {r['us_256']:.0f} | {r['us_256'] / 256:.2f} |")
    return lines


def int8_sections(rows: list[dict]) -> list[str]:
    drift = ["| cell | period | mean abs int8-float, first 1k | last 1k | RMSE first 1k | last 1k "
             "| float RMSE first 1k | last 1k |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    tpu = ["| cell | ops | full int8 | static shapes | unsupported ops | pre-check | pre-check, `--static-batch 1` |",
           "|---|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["mode"] == "int8"):
        d, e = r["manifest"].get("drift"), r["manifest"]["edgetpu"]
        if d:
            drift.append(f"| {r['cell']} | {d['period']:,} | {d['mean_abs_vs_float_first']:.4f} | "
                         f"{d['mean_abs_vs_float_last']:.4f} | {d['rmse_first']:.4f} | {d['rmse_last']:.4f} | "
                         f"{d['float_rmse_first']:.4f} | {d['float_rmse_last']:.4f} |")
        tpu.append(f"| {r['cell']} | {', '.join(e['ops'])} | {e['full_int8']} | {e['static_shapes']} "
                   f"({e['dynamic_tensors']} dynamic tensors) | {', '.join(e['unsupported_ops']) or '-'} | "
                   f"{VERDICT[e['compatible']]} | {VERDICT[r['edgetpu_static']['compatible']]} |")
    return (["## int8 drift over a 50,000-step stream", "",
             "A real segment of the series (`period` rows) is tiled into 50,000 steps so the first and last "
             "1,000 steps see identical inputs and differ only in how much history the state carries. "
             "Mean |int8 - float| is in sensor units (°F); RMSE is the one-step forecast error within the window.",
             ""] + drift + ["", "## Edge TPU pre-check (int8)", "",
             "From `manifest[\"edgetpu\"]`: the checks the Edge TPU compiler makes first (op types, int8 "
             "tensors, static shapes). **The Edge TPU compiler (`edgetpu_compiler`) is not available in this "
             "environment, so no Edge TPU model was compiled**; these rows are a pre-check only. The "
             "benchmarked models keep a dynamic batch (the daemon batches streams), which the Edge TPU does not "
             "accept; the last column pre-checks the same model converted with `--static-batch 1`.", ""] + tpu)


def baseline(rows: list[dict]) -> str:
    starts = sorted({r["held_out_from"] for r in rows})
    held = ", ".join(f"from row {start:,}: {persistence_rmse(start):.4f}" for start in starts)
    return (f"Baseline for the RMSE columns, persistence (next value = current value): rows 0-5k "
            f"{persistence_rmse(0, 5000):.4f}; held-out {held}.")


def write_doc(rows: list[dict], path: str, command: str) -> None:
    r0 = rows[0]
    intro = [
        "# Conversion: size, parity and speed per cell and quantization mode", "",
        f"Generated by `{command}` (do not edit by hand). Series: NAB `machine_temperature_system_failure.csv` "
        "(22,695 rows, 5-minute samples). Cells: the trained test fixtures `tests/fixtures/*.keras` "
        "(2 recurrent layers x 32 units, trained on rows 0-8,000 by `statecast train`)"
        + ("; `shipped` is the 2 x 64 LSTM reference workload, trained with the recipe `models/build.sh` used until issue 16 (rows 0-15,000; the shipped machine_temperature models are a GRU(64) since)."
           if any(r["cell"] == "shipped" for r in rows) else "."), "",
        f"Machine: `{platform.processor() or platform.machine()}`, {os.cpu_count()} logical CPUs, "
        f"runtime `{r0['runtime']}` via `statecast.daemon.model.step_model.StepModel`, 1 interpreter thread; "
        f"load average at the end of the run {os.getloadavg()[0]:.2f} (timings on a shared machine).", "",
        "Columns:", "",
        "- **bytes**: size of `model.tflite`.",
        "- **max err / range**: max |step TFLite - Keras full sequence| over the first 5,000 rows, as a fraction "
        "of the Keras output range (both in sensor units). Tolerance: float32 <= 1e-5, float16 and dynamic <= 1e-2.",
        "- **int8 RMSE ratio**: one-step forecast RMSE of the int8 model / that of the float32 step model over the "
        "same rows. Tolerance: <= 1.05 (int8 is judged on forecast quality, not on matching Keras). An int8 "
        "conversion also runs the 50,000-step drift check below.",
        "- **pass**: the pipeline's verdict against that tolerance (`manifest[\"parity\"][\"pass\"]`).",
        "- **RMSE rows 0-5k**: one-step forecast RMSE (°F) against the true series over the parity rows "
        "(inside the training range). **RMSE held-out**: the same over the rows after the training range "
        "(state carried from row 0; this part holds the failures NAB labels).",
        f"- **µs/invoke**: median over {REPEATS} repeats ({BATCHES[1]} invokes at batch 1, {BATCHES[256]} at batch "
        "256) of the wall time of one `StepModel.step` (set inputs and states, invoke, read outputs), after a "
        "warm-up; **µs/stream-step** = µs/invoke at batch 256 / 256.", "",
    ]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(intro + table(rows) + ["", baseline(rows), ""] + int8_sections(rows)) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-shipped", action="store_true", help="leave out the 2x64 LSTM reference workload (re-trained once)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "conversion.md"))
    args = parser.parse_args()
    cells = [(name, os.path.join(ROOT, "tests", "fixtures", f"{name}.keras")) for name in FIXTURES]
    if not args.no_shipped:
        cells.append(("shipped", shipped_model()))
    with tempfile.TemporaryDirectory(prefix="statecast-conversion-table-") as work:
        rows = [measure(name, path, mode, work) for name, path in cells for mode in MODES]
    command = ".venv/bin/python bench/conversion_table.py" + (" --no-shipped" if args.no_shipped else "")
    write_doc(rows, args.out, command)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
