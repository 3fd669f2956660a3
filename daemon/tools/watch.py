"""`statecast watch`: print what arrives on MQTT topics, one `topic payload` line per message.

For trying the daemon out without installing mosquitto-clients (`mosquitto_sub -v` does the
same). Stops after --count messages, after --seconds, or on Ctrl-C / SIGTERM.
"""
from __future__ import annotations

import signal
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def watch(topics: list[str], host: str = "127.0.0.1", port: int = 1883, count: int = 0,
          seconds: float = 0.0, out=None) -> int:
    """Returns how many messages were printed."""
    out = out or sys.stdout
    done = threading.Event()
    printed = [0]

    def on_message(_client, _userdata, message):
        if done.is_set():
            return
        out.write(f"{message.topic} {message.payload.decode('utf-8', 'replace')}\n")
        out.flush()
        printed[0] += 1
        if count and printed[0] >= count:
            done.set()

    def on_subscribe(*_):
        # A first line once the broker has the subscription: a script can wait for it before
        # publishing (`until [ -s out.txt ]`), so nothing published after it is missed.
        out.write(f"# subscribed to {' '.join(topics)}\n")
        out.flush()

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe([(topic, 1) for topic in topics])
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    client.connect(host, port)
    client.loop_start()
    try:
        done.wait(seconds or None)
    finally:
        client.disconnect()
        client.loop_stop()
    return printed[0]
