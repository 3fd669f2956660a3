"""What crosses from the network side to the engine and back: one validated reading in
(`Message`), one step's result out (`Forecast`). Its own module, so mqtt/ does not import the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Message:
    """One validated reading for one stream (all a network callback may hand over)."""
    stream_id: str
    values: tuple[float, ...]       # the model's value features, in manifest order
    ts: float | None                # payload timestamp (epoch s), else the receive time is used
    received: float                 # wall-clock receive time (epoch s)
    token: Any = None               # opaque (e.g. MQTT ack handle), passed through to the result


@dataclass
class Forecast:
    stream_id: str
    ts: float
    value: tuple[float, ...]
    forecast: np.ndarray            # (horizon, targets) sensor units, next step first
    anomaly_score: float | None
    expected: float | None          # what the previous step forecast for this value
    event: str | None               # "alert" | "clear" | None
    steps: int
    token: Any = None
    detail: dict | None = None      # alert/clear details: threshold, direction, signal, episode_start, duration_seconds
