"""Edge TPU compatibility report for a converted model (the Edge TPU compiler is not available
here; this checks what the compiler checks first: op types, int8 tensors, static shapes)."""
from __future__ import annotations

import numpy as np

# Operations the Edge TPU can execute (Coral documentation, "Supported operations").
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXP", "FLOOR",
    "FULLY_CONNECTED", "GATHER", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAX_POOL_2D", "MAXIMUM",
    "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
# Quantize/dequantize at the model's float boundary run on the CPU before/after the Edge TPU part.
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


def edgetpu_report(interpreter, mode: str) -> dict:
    """Interpreter of the converted model -> report dict (stored in the manifest)."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    unsupported, float_ops = set(), set()
    for op in ops:
        name = op["op_name"]
        if name not in EDGETPU_OPS and name not in BOUNDARY_OPS:
            unsupported.add(name)
        if name in BOUNDARY_OPS:
            continue
        dtypes = {tensors[i]["dtype"] for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in tensors}
        if any(np.dtype(d) not in (np.int8, np.int32) for d in dtypes):
            float_ops.add(name)
    dynamic = sorted({t["name"] for t in tensors.values()
                      if len(t.get("shape_signature", [])) and int(np.min(t["shape_signature"])) < 0})
    full_int8 = mode == "int8" and not float_ops
    report = {
        "ops": sorted({op["op_name"] for op in ops}),
        "unsupported_ops": sorted(unsupported),
        "full_int8": full_int8,
        "float_ops": sorted(float_ops),
        "static_shapes": not dynamic,
        "dynamic_tensors": len(dynamic),
        "compiler_available": False,
    }
    report["compatible"] = bool(full_int8 and not unsupported and not dynamic)
    return report


def format_report(report: dict) -> str:
    verdict = "compatible" if report["compatible"] else "NOT compatible"
    reasons = []
    if report["unsupported_ops"]:
        reasons.append("unsupported ops: " + ", ".join(report["unsupported_ops"]))
    if not report["full_int8"]:
        reasons.append("not full int8" + (f" (float ops: {', '.join(report['float_ops'])})" if report["float_ops"] else ""))
    if not report["static_shapes"]:
        reasons.append(f"{report['dynamic_tensors']} tensors have a dynamic batch (convert with --static-batch N)")
    lines = [f"Edge TPU: {verdict} (ops: {', '.join(report['ops'])})"]
    lines += [f"  - {reason}" for reason in reasons]
    lines.append("  (edgetpu_compiler is not available here: this is a pre-check, not a compilation)")
    return "\n".join(lines)
