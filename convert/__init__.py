"""Workstation side of statecast: training and Keras -> TFLite step-model conversion (needs TensorFlow)."""
import os

# TensorFlow's C++ start-up banners drown the one-line reports the CLI prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
