"""Human-readable conversion report (what `statecast convert` prints)."""
from __future__ import annotations

from .modes import FULL_INTEGER_MODES


def format_conversion(manifest: dict, out_dir: str) -> str:
    layers = " -> ".join(("bi" if l.get("direction") == "bidirectional" else "") + f"{l['cell']}({l['units']})"
                         for l in manifest["layers"])
    kind = manifest.get("kind", "step")                       # window models: issue 8
    what = f"window model (W={manifest['window']}, {manifest['window_output']})" if kind == "window" else "step model"
    unit = "windows" if kind == "window" else "steps"
    lines = [f"wrote {out_dir}: {manifest['quantization']} {what}, {manifest['tflite_bytes']:,} bytes, "
             f"{layers}, {len(manifest['features'])} features, horizon {manifest['horizon']}"]
    parity = manifest.get("parity")
    if parity:
        verdict = "PASS" if parity["pass"] else "FAIL"
        lines.append(f"parity vs Keras over {parity['steps']} {unit} of {parity.get('series', '?')}: {verdict} "
                     f"(max |err| {parity['max_abs_error']:.3g} = {parity['max_abs_error_over_range']:.2e} of range; "
                     + (f"RMSE keras {parity['rmse_keras']:.4g}, step {parity['rmse_step']:.4g}"
                        if "rmse_keras" in parity else "no target series")
                     + (f", ratio {parity['rmse_ratio']:.4f}" if "rmse_ratio" in parity else "")
                     + f"; tolerance {parity['tolerance']})")
    else:
        lines.append("parity: not measured (no calibration CSV and no training metadata)")
    if manifest.get("skill"):                     # issue 16: the converted model on train's held-back tail
        lines.append(manifest["skill"]["line"])
        if manifest["skill"].get("train_line"):
            lines.append(manifest["skill"]["train_line"])
    drift = manifest.get("drift")
    if drift:
        mode = manifest.get("quantization", "int8")
        lines.append(f"{mode} drift over {drift['steps']:,} steps: |{mode} - float| first {drift['window']} steps "
                     f"{drift['mean_abs_vs_float_first']:.4g}, last {drift['mean_abs_vs_float_last']:.4g}; "
                     f"RMSE first {drift['rmse_first']:.4g}, last {drift['rmse_last']:.4g}")
    if "edgetpu" in manifest:
        lines.append(edgetpu_line(manifest["edgetpu"], manifest.get("quantization", "")))
    return "\n".join(lines)


def parity_lines(manifest: dict) -> list[str]:
    """The parity report, one figure per line (what a failed gate prints in full)."""
    figures = manifest.get("parity") or {}
    shown = [(name, value) for name, value in figures.items() if name not in ("pass", "tolerance")]
    lines = [f"parity report ({manifest.get('quantization', '?')}, tolerance {figures.get('tolerance', '?')}):"]
    lines += [f"  {name}: {value:.6g}" if isinstance(value, float) else f"  {name}: {value}" for name, value in shown]
    drift = manifest.get("drift")
    if drift:
        lines.append("  int8 drift: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in drift.items()))
    return lines


def next_steps(mode: str) -> list[str]:
    """What to try after a failed parity gate, most likely to help first."""
    steps = []
    if mode in FULL_INTEGER_MODES:
        steps += ["quantize less: " + ("--quantize int16x8 (int16 activations, int8 weights: the same size, "
                                       "CPU only), " if mode == "int8" else "") +
                  "--quantize dynamic (int8 weights, float activations: small, CPU only) or "
                  "--quantize float16 / float32 (exact; not for the Edge TPU)",
                  "calibrate on more, and more varied, data: --calibration-csv (repeat it for several streams) "
                  "with a longer history that covers the value range the sensor really sees (the states "
                  "int8 ranges are fitted to)"]
    else:
        steps += ["check that the model converts as trained: --quantize float32 should pass with ~1e-6 of range"]
    steps += ["keep the artifact anyway and judge it yourself: --keep-on-parity-failure "
              "(the manifest records the failed figures)",
              "a smaller or retrained model (fewer units or layers) often quantizes better"]
    return ["next steps:"] + [f"  - {step}" for step in steps]


def parity_failure_text(manifest: dict, headline: str) -> str:
    """The ConversionError text of a failed gate: reason, the whole report, what to do next."""
    figures = manifest["parity"]
    return "\n".join([f"parity check failed ({figures['tolerance']}, got {headline}); no artifact written",
                      *parity_lines(manifest), *next_steps(manifest.get("quantization", ""))])


def edgetpu_line(report: dict, mode: str) -> str:
    """The Edge TPU pre-check as one line: the verdict and, if not, what would make it compatible."""
    if report["compatible"]:
        return "Edge TPU pre-check: compatible (full int8, static shapes, supported ops; compile with edgetpu_compiler)"
    needs = []
    if report["unsupported_ops"]:
        needs.append("ops it cannot run: " + ", ".join(report["unsupported_ops"]))
    if mode != "int8":
        needs.append("--quantize int8")
    elif not report["full_int8"]:
        needs.append("float ops left: " + ", ".join(report["float_ops"]))
    if not report["static_shapes"]:
        needs.append("--static-batch N")
    return f"Edge TPU pre-check: not for the Edge TPU as converted (needs {'; '.join(needs)}); fine on a CPU"
