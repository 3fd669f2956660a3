"""Human-readable conversion report (what `statecast convert` prints)."""
from __future__ import annotations

from .edgetpu_report import format_report


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
        lines.append(f"int8 drift over {drift['steps']:,} steps: |int8 - float| first {drift['window']} steps "
                     f"{drift['mean_abs_vs_float_first']:.4g}, last {drift['mean_abs_vs_float_last']:.4g}; "
                     f"RMSE first {drift['rmse_first']:.4g}, last {drift['rmse_last']:.4g}")
    if "edgetpu" in manifest:
        lines.append(format_report(manifest["edgetpu"]))
    return "\n".join(lines)
