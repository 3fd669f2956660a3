"""JSON shapes of what the daemon publishes (every field: docs/payloads.md).

Numbers: full precision by default (repr round-trips, so a subscriber sees exactly what
`statecast score` writes); `[output] precision = N` rounds values, forecasts, scores and
thresholds to N significant digits. Times: `ts` is epoch seconds (the input's own timestamp),
`time` the same instant in ISO 8601 UTC; `forecast_ts[k]` is the time forecast[k] is for: ts plus
k+1 of the stream's learned intervals (null until the stream has shown its interval).
"""
from __future__ import annotations

import json
import math
import re

from statecast.daemon.messages import Forecast
from statecast.daemon.timestamps import iso_time as _iso

TIME_DECIMALS = 3                     # forecast_ts in milliseconds: the learned interval is an average


def iso_time(ts) -> str | None:
    """ISO 8601 UTC of epoch seconds; None where there is no such date (not a finite year 1-9999)."""
    try:
        return _iso(float(ts))
    except (OverflowError, OSError, ValueError):
        return None


def _num(value: float | None, precision: int = 0):
    """A finite float (rounded to `precision` significant digits if > 0), else None."""
    if value is None or not math.isfinite(value):
        return None
    value = float(value)
    return float(f"{value:.{precision}g}") if precision else value


def _num_text(value, precision: int = 0) -> str:
    """_num as JSON text: float repr is exactly what json writes; non-finite and None are null."""
    number = _num(value, precision)
    return "null" if number is None else repr(number)


def forecast_times(ts: float, interval_seconds: float | None, horizon: int) -> list[float] | None:
    if not interval_seconds or interval_seconds <= 0:
        return None
    return [round(ts + k * interval_seconds, TIME_DECIMALS) for k in range(1, horizon + 1)]


_SAFE_ID = re.compile(r"[A-Za-z0-9._-]+")
_model_names: dict[str, str] = {}              # model name -> its JSON string literal


def forecast_message(result: Forecast, model_name: str, targets: tuple[str, ...],
                     interval_seconds: float | None = None, precision: int = 0) -> str:
    """One forecast as JSON. The common shape (one target, one value, a sanitised stream id, which
    needs no escaping) is written with one f-string: ~40% cheaper than a dict through the JSON
    encoder, and byte-identical to it (tests/test_payload.py compares the two)."""
    if len(targets) > 1 or len(result.value) != 1 or not _SAFE_ID.fullmatch(result.stream_id):
        return forecast_message_general(result, model_name, targets, interval_seconds, precision)
    name = _model_names.get(model_name) or _model_names.setdefault(model_name, json.dumps(model_name))
    path = ",".join(_num_text(v, precision) for v in result.forecast[:, 0].tolist())
    times = forecast_times(result.ts, interval_seconds, len(result.forecast))
    times_json = "null" if times is None else "[" + ",".join(map(repr, times)) + "]"
    moment = iso_time(result.ts)                   # [0-9:TZ.-] only: no escaping needed
    moment_json = "null" if moment is None else f'"{moment}"'
    return (f'{{"stream":"{result.stream_id}","ts":{_num_text(result.ts)},"time":{moment_json},'
            f'"value":{_num_text(result.value[0], precision)},"forecast":[{path}],"forecast_ts":{times_json},'
            f'"anomaly_score":{_num_text(result.anomaly_score, precision)},'
            f'"expected":{_num_text(result.expected, precision)},"model":{name},"step":{int(result.steps)}}}')


def forecast_message_general(result: Forecast, model_name: str, targets: tuple[str, ...],
                             interval_seconds: float | None = None, precision: int = 0) -> str:
    body = {
        "stream": result.stream_id, "ts": result.ts, "time": iso_time(result.ts),
        "value": (_num(result.value[0], precision) if len(result.value) == 1
                  else [_num(v, precision) for v in result.value]),
        "forecast": [_num(v, precision) for v in result.forecast[:, 0]],
        "forecast_ts": forecast_times(result.ts, interval_seconds, len(result.forecast)),
        "anomaly_score": _num(result.anomaly_score, precision),
        "expected": _num(result.expected, precision),
        "model": model_name, "step": result.steps,
    }
    if len(targets) > 1:
        body["forecasts"] = {name: [_num(v, precision) for v in result.forecast[:, j]]
                             for j, name in enumerate(targets)}
    return json.dumps(body, separators=(",", ":"))


def alert_message(result: Forecast, model_name: str, precision: int = 0) -> str:
    """An alert or clear event; every key of result.detail (threshold, direction, signal,
    episode_start, duration_seconds) is included, with episode_start's ISO time beside it."""
    body = {"stream": result.stream_id, "event": result.event, "ts": result.ts, "time": iso_time(result.ts),
            "score": _num(result.anomaly_score, precision), "value": _num(result.value[0], precision),
            "expected": _num(result.expected, precision), "model": model_name}
    for key, item in (result.detail or {}).items():
        if hasattr(item, "item"):                 # a numpy scalar
            item = item.item()
        if isinstance(item, float):
            item = item if key in ("episode_start", "duration_seconds") else _num(item, precision)
        body[key] = item
        if key == "episode_start" and item is not None:
            body["episode_start_time"] = iso_time(item)
    return json.dumps(body, separators=(",", ":"))
