"""`statecast replay`: publish a CSV as a live sensor stream (JSON {"value", "ts"} per row)."""
from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .series_csv import read_series


def replay(csv_path: str, topic: str, host: str = "127.0.0.1", port: int = 1883, rate_hz: float = 0.0,
           speedup: float = 0.0, qos: int = 1, limit: int = 0, time_column: str = "timestamp",
           value_columns: tuple[str, ...] = ("value",), stream_id: str = "replay") -> int:
    series = read_series(csv_path, time_column, value_columns)
    topic = topic.replace("{stream}", stream_id)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"statecast-replay-{stream_id}"[:60])
    client.max_inflight_messages_set(100)
    client.connect(host, port)
    client.loop_start()
    rows = len(series.timestamps) if not limit else min(limit, len(series.timestamps))
    started, first_ts = time.monotonic(), series.timestamps[0]
    last = None
    for i in range(rows):
        if rate_hz > 0:
            _sleep_until(started + i / rate_hz)
        elif speedup > 0:
            _sleep_until(started + (series.timestamps[i] - first_ts) / speedup)
        values = series.values[i]
        body = {"ts": float(series.timestamps[i])}
        if len(value_columns) == 1:
            body["value"] = float(values[0])
        else:
            body.update({name: float(v) for name, v in zip(value_columns, values)})
        last = client.publish(topic, json.dumps(body), qos=qos)
    if last is not None:
        last.wait_for_publish(timeout=30)
    client.disconnect()
    client.loop_stop()
    return rows


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
