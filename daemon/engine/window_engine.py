"""Window models on streams (issue 8): a ring of each stream's last W inputs, and one batched
invoke for the streams that are due.

A stream is due at its W-th message after a (re)start and then every `stride` messages. Its ring
lives in the stream table's state array (one (W, n_features) float32 row: the raw features,
before scaling), its write count, step timestamps and last run in StreamInfo.extra as plain
numbers, so checkpoint.save/restore carry it across a restart as they carry recurrent state.
Admission (duplicates, gaps, table bounds, idle eviction) is the causal Engine's, so a causal
model and a window model serving the same stream agree on which messages count.

Results: one per admitted message; `output` is set only when that message completed a due
window. A per-window forecaster (manifest "window_task": "forecast") also gets anomaly scores:
each value is compared with the forecast the last run made for it, if the run's horizon covers it.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from statecast.daemon.messages import Message
from statecast.daemon.model.features import calendar_features
from statecast.daemon.model.window_model import WindowModel
from statecast.daemon.protocols import ScorerFactory
from statecast.daemon.state.stream_table import StreamInfo, StreamTable
from .step_engine import Engine, EngineSettings

RING_COUNT, RING_TS, RAN_AT = "ring_count", "ring_ts", "ran_at"


@dataclass
class WindowResult:
    stream_id: str
    ts: float
    value: tuple[float, ...]
    output: np.ndarray | None        # sensor units: (horizon, targets) per window, (W, horizon, targets) per step
    window_ts: tuple[float, ...] | None   # the window's step timestamps, oldest first (with output)
    anomaly_score: float | None
    expected: float | None           # what the last run forecast for this value
    event: str | None                # "alert" | "clear" | None
    steps: int
    token: Any = None


class RingTable(StreamTable):
    """StreamTable whose per-stream state is the input ring; new and reset streams start empty."""

    def __init__(self, window: int, n_features: int, max_streams: int, forecast_width: int = 0):
        super().__init__([(window, n_features)], max_streams, forecast_width=forecast_width)
        self.window = window

    def _clear(self, info: StreamInfo) -> None:
        info.extra = {RING_COUNT: 0, RING_TS: [0.0] * self.window, RAN_AT: None}

    def add(self, stream_id: str, now: float, idle_seconds: float = 0.0) -> StreamInfo | None:
        info = super().add(stream_id, now, idle_seconds)
        if info is not None:
            self._clear(info)
        return info

    def reset_state(self, info: StreamInfo) -> None:
        super().reset_state(info)
        self._clear(info)


class WindowEngine(Engine):
    def __init__(self, model: WindowModel, settings: EngineSettings = EngineSettings(), stride: int = 1,
                 anomaly_factory: ScorerFactory | None = None):
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride {stride!r}: expected an integer >= 1 (messages between runs)")
        super().__init__(model, settings, anomaly_factory)
        m = model.manifest
        if self.scaling.online:
            raise ValueError(f"{m.name}: window models take fixed input scaling, not online normalisation")
        if self.horizon != m.horizon:
            raise ValueError(f"horizon {self.horizon}: a window model has its own horizon ({m.horizon})")
        self.forecaster = m.raw.get("window_task") == "forecast" and not model.per_step
        if anomaly_factory is not None and not self.forecaster:
            raise ValueError(f"{m.name}: anomaly scores need a per-window forecaster (window_task 'forecast')")
        self.window, self.stride, self.per_step = model.window, stride, model.per_step
        # Per-step (reconstruction) models score nothing against their outputs: no forecast column.
        self.table = RingTable(self.window, len(m.features), settings.max_streams,
                               forecast_width=0 if self.per_step else self.horizon * self._n_targets)

    def _round(self, messages: list[Message], now: float) -> list[WindowResult]:
        started = time.perf_counter()
        admitted, infos, stamps, raw, scores, slots = self._admit_round(messages, now)
        if not admitted:
            return []
        counts = np.asarray([info.extra[RING_COUNT] for info in infos], np.int64)
        self.table.arrays[0][slots, counts % self.window] = self._features(raw, stamps)
        for info, ts, count in zip(infos, stamps.tolist(), counts.tolist()):
            info.extra[RING_TS][count % self.window] = ts
            info.extra[RING_COUNT] = count + 1
            info.last_ts = ts
            self.table.touch(info, now)
            info.steps += 1
        counts += 1
        due = np.flatnonzero((counts >= self.window) & ((counts - self.window) % self.stride == 0))
        outputs = self._run(slots[due], counts[due]) if due.size else None
        by_row = {int(row): k for k, row in enumerate(due)}
        results = []
        for row, (message, info, ts) in enumerate(admitted):
            output, window_ts = None, None
            if row in by_row:
                output = outputs[by_row[row]]
                info.extra[RAN_AT] = int(counts[row])
                if not self.per_step:
                    self.table.forecasts[info.slot] = output
                window_ts = self._window_ts(info)
                output = output.reshape(output.shape[:-1] + (-1, self._n_targets))
            score, expected, event = scores[row]
            results.append(WindowResult(info.stream_id, ts, message.values, output, window_ts, score,
                                        expected, event, info.steps, message.token))
        if due.size:
            self._count(int(due.size), time.perf_counter() - started)
        return results

    def _features(self, raw: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """(batch, values) + (batch,) epoch s -> (batch, features) in sensor units, manifest order."""
        if not self.scaling.calendar:
            return raw
        return np.concatenate([raw, calendar_features(stamps, self.scaling.calendar).astype(np.float32)], axis=-1)

    def _run(self, slots: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """One invoke over the due streams' windows -> outputs in sensor units, (due, [W,] k)."""
        positions = (counts[:, None] - self.window + np.arange(self.window)) % self.window  # oldest first
        windows = self.table.arrays[0][slots[:, None], positions]                           # (due, W, F)
        x = self.scaling.standardise(windows)
        y = self.model.run(x)                                   # float32 already
        values = windows[..., : self.scaling.n_values]
        return self.scaling.outputs(y, values if self.per_step else values[:, -1])

    def _window_ts(self, info: StreamInfo) -> tuple[float, ...]:
        start = info.extra[RING_COUNT] % self.window
        ring = info.extra[RING_TS]
        return tuple(ring[start:] + ring[:start])

    def _score(self, info: StreamInfo, message: Message):
        """Residual of this value against the last run's forecast for it, if its horizon reaches."""
        ran_at = info.extra.get(RAN_AT)
        if ran_at is None:
            return None, None, None
        ahead = info.extra[RING_COUNT] + 1 - ran_at               # this value is `ahead` steps after the window
        if not 1 <= ahead <= self.horizon:
            return None, None, None
        expected = self.table.forecast_at(info, (ahead - 1) * self._n_targets)
        if expected is None:
            return None, None, None
        if self.anomaly_factory is None:
            return None, expected, None
        if info.anomaly is None:
            info.anomaly = self.anomaly_factory()
        ts = message.ts if message.ts is not None else message.received     # the daily profile's clock
        score, event = info.anomaly.update(float(message.values[self._target_at[0]]), expected, ts)
        return score, expected, event


def window_message(result: WindowResult, model_name: str, targets: tuple[str, ...]) -> str:
    """JSON for the window topic (results with an output only): the window's outputs for the first
    target, per step (W lists of H values, oldest step first) or per window (H values)."""
    def num(value):
        return float(value) if value is not None and math.isfinite(value) else None
    first = result.output[..., 0]                                 # (H,) or (W, H)
    body = {"stream": result.stream_id, "ts": result.ts, "window_start_ts": result.window_ts[0],
            "window": len(result.window_ts), "model": model_name, "step": result.steps,
            "output": [[num(v) for v in row] for row in first] if first.ndim == 2 else [num(v) for v in first],
            "anomaly_score": num(result.anomaly_score), "expected": num(result.expected)}
    if len(targets) > 1:
        body["outputs"] = {name: result.output[..., j].tolist() for j, name in enumerate(targets)}
    return json.dumps(body, separators=(",", ":"))
