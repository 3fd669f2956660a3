"""Workstation side of statecast: training and Keras -> TFLite step-model conversion (needs TensorFlow)."""
