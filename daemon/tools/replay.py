"""`statecast replay`: publish a CSV as a live sensor stream (JSON {"value", "ts"} per row).

Paced by default, so that it never outruns a stock broker: mosquitto keeps at most
max_queued_messages (1000) per subscriber and drops the rest, and a subscriber that is slower
than the publisher (a daemon journaling every step, a Pi) falls behind by the difference. Two
brakes: a rate (DEFAULT_RATE_HZ, or the data's own timing sped up by a factor) and, at QoS 1/2,
a bounded window of publishes the broker has not acknowledged yet (a slow or stalled broker stops
the replay instead of filling paho's memory). `--rate 0` removes the first brake only.
"""
from __future__ import annotations

import json
import time
from collections import deque

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..replay_pacing import DEFAULT_RATE_HZ, DEFAULT_WINDOW
from .series_csv import read_series

ACK_TIMEOUT_SECONDS = 30.0


class ReplayError(Exception):
    """The broker stopped acknowledging (one line for the user)."""


def replay(csv_path: str, topic: str, host: str = "127.0.0.1", port: int = 1883, rate_hz: float = DEFAULT_RATE_HZ,
           speedup: float = 0.0, qos: int = 1, limit: int = 0, time_column: str = "timestamp",
           value_columns: tuple[str, ...] = ("value",), stream_id: str = "replay",
           window: int = DEFAULT_WINDOW) -> int:
    """Publish the rows; returns how many went out (all acknowledged by the broker at QoS 1/2)."""
    series = read_series(csv_path, time_column, value_columns)
    topic = topic.replace("{stream}", stream_id)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"statecast-replay-{stream_id}"[:60])
    client.max_inflight_messages_set(max(window, 1))
    client.connect(host, port)
    client.loop_start()
    try:
        rows = len(series.timestamps) if not limit else min(limit, len(series.timestamps))
        started, first_ts = time.monotonic(), series.timestamps[0]
        unacked: deque = deque()
        for i in range(rows):
            if speedup > 0:
                _sleep_until(started + (series.timestamps[i] - first_ts) / speedup)
            elif rate_hz > 0:
                _sleep_until(started + i / rate_hz)
            info = client.publish(topic, _body(series, i, value_columns), qos=qos)
            if qos == 0:                 # nothing to wait for; paho writes it when it can
                continue
            unacked.append(info)
            while len(unacked) > window:
                _wait_acked(unacked.popleft())
        while unacked:
            _wait_acked(unacked.popleft())
        if qos == 0 and rows:            # QoS 0: let paho write what it queued before disconnecting
            info.wait_for_publish(timeout=ACK_TIMEOUT_SECONDS)
    finally:
        client.disconnect()
        client.loop_stop()
    return rows


def _body(series, i: int, value_columns: tuple[str, ...]) -> str:
    values = series.values[i]
    body = {"ts": float(series.timestamps[i])}
    if len(value_columns) == 1:
        body["value"] = float(values[0])
    else:
        body.update({name: float(v) for name, v in zip(value_columns, values)})
    return json.dumps(body)


def _wait_acked(info) -> None:
    info.wait_for_publish(timeout=ACK_TIMEOUT_SECONDS)
    if not info.is_published():
        raise ReplayError(f"the broker did not acknowledge a message within {ACK_TIMEOUT_SECONDS:.0f} s")


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
