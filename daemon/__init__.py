"""Device side of statecast. Never imports TensorFlow or Keras."""
