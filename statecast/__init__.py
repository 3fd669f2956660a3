"""statecast: recurrent forecasters as TFLite step models on live sensor streams.

`statecast.daemon` runs on the device (LiteRT, paho-mqtt, numpy only);
`statecast.convert` runs on a workstation (TensorFlow) and builds model artifacts.
"""
__version__ = "0.1.0"
