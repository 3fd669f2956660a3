"""The tests' broker: a real mosquitto on a free loopback port (same helper the demo uses)."""
from statecast.daemon.tools.local_broker import LocalMosquitto as Mosquitto, free_port, mosquitto_binary  # noqa: F401
