"""Compare score CSVs from two architectures (tests/pi/score_models.py output) and check the bound.

  python tests/pi/parity.py X86_DIR ARM_DIR [--table FILE]

Prints one markdown row per model and kernel path; exits 1 when a checked pair breaks its bound.
Checked: every file whose kernel path is "auto" (what a user gets by default). Reported only:
"optimized" (the fast kernels a user chooses knowingly; the figures behind the default).

Bounds (why):
- integer models (int8) on the reference kernels: forecasts and alert events identical, anomaly
  scores within SCORE_ULPS_BOUND. The interpreter's integer arithmetic is the same by construction
  (BUILTIN_REF: one accumulation order, one rounding rule), so the forecast bits agree; the anomaly
  score is numpy float64 arithmetic after it (erfc, log, exp), whose SIMD builds may differ by an
  ulp between architectures, hence a few ulps of slack on the score and none on the forecast.
- float models (XNNPACK on a real Pi, builtin kernels under qemu): forecasts within
  FLOAT_FORECAST_BOUND of the series' value range (float32 rounding through a contracting
  recurrence: measured ~1.5e-7 of the range, issue 17), scores within FLOAT_SCORE_BOUND, and the
  alert events identical on the fixed CSV (the claim that matters to a user).
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import sys

SCORE_ULPS_BOUND = 1e-12          # absolute, on scores in [0, 1]: ~4,500 float64 ulps at 1.0
FLOAT_FORECAST_BOUND = 1e-5       # relative to the value range of the scored rows
FLOAT_SCORE_BOUND = 1e-3          # absolute; alerts must still be identical


def read(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(text: str) -> float:
    return float(text) if text else math.nan


def compare(x86: list[dict], arm: list[dict]) -> dict:
    """Figures for one model/kernel pair: max forecast and score differences, rows differing,
    alert steps on each side."""
    if len(x86) != len(arm):
        raise ValueError(f"row counts differ: x86 {len(x86)}, aarch64 {len(arm)}")
    forecast_diff = score_diff = 0.0
    differing = 0
    for a, b in zip(x86, arm):
        fa, fb = _float(a["forecast_1"]), _float(b["forecast_1"])
        sa, sb = _float(a["anomaly_score"]), _float(b["anomaly_score"])
        if math.isnan(sa) != math.isnan(sb):
            score_diff = math.inf
        elif not math.isnan(sa):
            score_diff = max(score_diff, abs(sa - sb))
        forecast_diff = max(forecast_diff, abs(fa - fb))
        differing += a["forecast_1"] != b["forecast_1"] or a["anomaly_score"] != b["anomaly_score"]
    alerts = [[int(r["step"]) for r in rows if r["event"] == "alert"] for rows in (x86, arm)]
    forecasts = [_float(r["forecast_1"]) for r in x86]
    return {"rows": len(x86), "forecast_diff": forecast_diff, "score_diff": score_diff, "differing": differing,
            "alerts_x86": alerts[0], "alerts_arm": alerts[1],
            "events_equal": [r["event"] for r in x86] == [r["event"] for r in arm],
            "range": max(forecasts) - min(forecasts)}


def violations(figures: dict, integer_model: bool) -> list[str]:
    """Reasons the pair breaks its bound (empty when it holds)."""
    reasons = []
    if not figures["events_equal"]:
        reasons.append(f"alert events differ (x86 {figures['alerts_x86']}, aarch64 {figures['alerts_arm']})")
    if integer_model:
        if figures["forecast_diff"] != 0.0:
            reasons.append(f"forecasts differ by {figures['forecast_diff']:.3g} (bound: identical)")
        if figures["score_diff"] > SCORE_ULPS_BOUND:
            reasons.append(f"scores differ by {figures['score_diff']:.3g} (bound {SCORE_ULPS_BOUND:g})")
    else:
        if figures["forecast_diff"] > FLOAT_FORECAST_BOUND * figures["range"]:
            reasons.append(f"forecasts differ by {figures['forecast_diff']:.3g} "
                           f"(bound {FLOAT_FORECAST_BOUND:g} x range {figures['range']:.4g})")
        if figures["score_diff"] > FLOAT_SCORE_BOUND:
            reasons.append(f"scores differ by {figures['score_diff']:.3g} (bound {FLOAT_SCORE_BOUND:g})")
    return reasons


def integer_model(name: str) -> bool:
    """The shipped model's manifest says int8, int16x8 or dynamic (integer arithmetic inside)."""
    import json
    manifest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", name, "manifest.json")
    with open(manifest, encoding="utf-8") as handle:
        return json.load(handle).get("quantization") in ("int8", "int16x8", "dynamic")


def table_row(model: str, kernels: str, figures: dict) -> str:
    n_x86, n_arm = len(figures["alerts_x86"]), len(figures["alerts_arm"])
    return (f"| {model} | {kernels} | {figures['forecast_diff']:.3g} | {figures['score_diff']:.3g} | "
            f"{figures['differing']:,} / {figures['rows']:,} | {n_x86} / {n_arm} | "
            f"{'yes' if figures['events_equal'] else 'no'} |")


HEADER = ("| model | kernels | max abs forecast diff | max abs score diff | rows differing | alerts x86 / aarch64 "
          "| alert events identical |\n|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("x86")
    parser.add_argument("arm")
    parser.add_argument("--table", help="also write the markdown table here")
    args = parser.parse_args(argv)
    rows, failures = [HEADER], []
    paths = sorted(glob.glob(os.path.join(args.x86, "*.csv")))
    if not paths:
        print(f"parity: no score CSVs in {args.x86}", file=sys.stderr)
        return 1
    for path in paths:
        model, kernels = os.path.basename(path)[:-len(".csv")].rsplit(".", 1)
        x86 = read(path)
        arm_path = os.path.join(args.arm, os.path.basename(path))
        if not os.path.exists(arm_path):
            failures.append(f"{model} {kernels}: no aarch64 result {arm_path}")
            continue
        figures = compare(x86, read(arm_path))
        used = {r["kernels"] for r in x86}
        rows.append(table_row(model, "/".join(sorted(used)) + (" (default)" if kernels == "auto" else ""), figures))
        if kernels == "auto":
            failures += [f"{model} {kernels}: {reason}" for reason in violations(figures, integer_model(model))]
    print("\n".join(rows))
    if args.table:
        with open(args.table, "w", encoding="utf-8") as handle:
            handle.write("\n".join(rows) + "\n")
    for failure in failures:
        print(f"parity FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
