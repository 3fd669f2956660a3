"""Which TFLite kernels a step model runs on, and why integer models default to the reference ones.

The runtimes offer three kernel paths for the same graph:
- "optimized": the default op resolver. XNNPACK takes what it supports; the builtin optimised
  kernels (ruy/gemmlowp, NEON or SSE/AVX) the rest. Fastest, but integer requantisation and
  accumulation order differ by CPU, so an int8 model gives different numbers on a Pi's aarch64 than
  on x86 (measured: forecasts up to 1.44 sensor units, anomaly scores up to 0.18) and the recurrent
  state feeds each difference back into the next step.
- "reference": OpResolverType.BUILTIN_REF, the portable C++ reference kernels. Integer arithmetic
  in one fixed order with one rounding rule, so the same bits on every architecture: the alerts a
  Pi raises are the ones evaluated on x86. Slower per step (see docs/raspberry-pi.md).
- "auto" (the default): "reference" for integer-quantised models (int8, int16x8, dynamic), "optimized" for
  float models, whose cross-architecture differences stay at float rounding (~1e-5 of the range).
  With a delegate (Edge TPU) the accelerator does the work, so "auto" leaves the resolver alone.
"""
from __future__ import annotations

import sys

KERNEL_CHOICES = ("auto", "reference", "optimized")
INTEGER_QUANTIZATIONS = ("int8", "int16x8", "dynamic")


def resolve_kernels(requested: str, quantization: str, has_delegate: bool = False) -> str:
    """"auto" -> "reference" or "optimized" for this model; an explicit choice is kept."""
    if requested not in KERNEL_CHOICES:
        raise ValueError(f"unknown kernels '{requested}' (expected one of {', '.join(KERNEL_CHOICES)})")
    if requested != "auto":
        return requested
    if has_delegate:
        return "optimized"
    return "reference" if quantization in INTEGER_QUANTIZATIONS else "optimized"


def op_resolver_kwargs(interpreter_class, kernels: str) -> dict:
    """Interpreter keyword arguments selecting `kernels` ("reference" or "optimized").

    Raises RuntimeError when the reference kernels are asked for and the runtime has no
    OpResolverType (never silently falls back to kernels whose numbers differ by CPU)."""
    if kernels == "optimized":
        return {}
    module = sys.modules.get(interpreter_class.__module__)
    resolver = getattr(module, "OpResolverType", None)
    if resolver is None:
        raise RuntimeError(f"{interpreter_class.__module__} has no OpResolverType: cannot select the "
                           "reference kernels (set [runtime] kernels = \"optimized\" to run without them)")
    return {"experimental_op_resolver_type": resolver.BUILTIN_REF}
