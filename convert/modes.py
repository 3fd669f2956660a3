"""The quantization modes `statecast convert --quantize` knows."""

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")

# Full-integer modes: every activation is an integer, so they need calibration data. int8 is what
# the Edge TPU runs; int16x8 (int16 activations, int8 weights) is for CPUs: the same weight size,
# 256 times finer steps in the recurrent state and gates (docs/anomaly.md, "int8").
FULL_INTEGER_MODES = ("int8", "int16x8")
