"""How fast `statecast replay` publishes by default: a leaf module, so that the command line can
show these defaults in `serve`'s process without loading the replay tool (tools/replay.py)."""

# A tenth of the rate one stream into the daemon sustained on a 2-core x86 box with stock
# settings (docs/performance-history.md), leaving room for a Raspberry Pi and for other streams.
DEFAULT_RATE_HZ = 100.0
DEFAULT_WINDOW = 20            # unacknowledged QoS 1/2 publishes (mosquitto's max_inflight_messages)
