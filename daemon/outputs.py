"""JSON shapes of what the daemon publishes (fixed in docs/architecture.md)."""
from __future__ import annotations

import json
import math

from .engine import Forecast


def _num(value: float | None):
    """Full precision (repr round-trips), so a subscriber sees exactly what `statecast score` writes."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def forecast_message(result: Forecast, model_name: str, targets: tuple[str, ...]) -> str:
    body = {
        "stream": result.stream_id, "ts": result.ts,
        "value": _num(result.value[0]) if len(result.value) == 1 else [_num(v) for v in result.value],
        "forecast": [_num(v) for v in result.forecast[:, 0]],
        "anomaly_score": _num(result.anomaly_score),
        "expected": _num(result.expected),
        "model": model_name, "step": result.steps,
    }
    if len(targets) > 1:
        body["forecasts"] = {name: [_num(v) for v in result.forecast[:, j]] for j, name in enumerate(targets)}
    return json.dumps(body, separators=(",", ":"))


def alert_message(result: Forecast, model_name: str) -> str:
    return json.dumps({"stream": result.stream_id, "event": result.event, "ts": result.ts,
                       "score": _num(result.anomaly_score), "value": _num(result.value[0]),
                       "expected": _num(result.expected), "model": model_name}, separators=(",", ":"))
