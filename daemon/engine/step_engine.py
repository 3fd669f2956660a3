"""The engine: advances many streams one step per message with one interpreter invoke per round.

The same code serves `statecast serve` (messages from MQTT) and `statecast score` (rows of a
CSV), so what the daemon publishes and what score writes cannot drift apart.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from statecast.daemon.messages import Forecast, Message
from statecast.daemon.model.scaling import IoScaling
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.protocols import ScorerFactory
from statecast.daemon.state.stream_table import StreamInfo, StreamTable
from .gaps import observe_step


@dataclass(frozen=True)
class EngineSettings:
    max_streams: int = 10_000
    idle_eviction_seconds: float = 86_400.0
    max_gap_seconds: float = 0.0          # 0: no gap policy
    gap_policy: str = "reset"             # "reset" | "continue"
    horizon: int = 0                      # 0: the model's own horizon


@dataclass
class EngineCounters:
    messages_in: int = 0
    forecasts_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    gap_resets: int = 0
    batches: int = 0
    batch_sizes: Counter = field(default_factory=Counter)
    step_seconds_total: float = 0.0


class Engine:
    def __init__(self, model: StepModel, settings: EngineSettings = EngineSettings(),
                 anomaly_factory: ScorerFactory | None = None):
        self.model = model
        self.settings = settings
        m = model.manifest
        self.horizon = settings.horizon or m.horizon
        self.table = StreamTable(model.state_sizes, settings.max_streams,
                                 forecast_width=self.horizon * len(m.targets))
        self.counters = EngineCounters()
        self.anomaly_factory = anomaly_factory
        self._value_names = m.value_features
        self._n_targets = len(m.targets)
        self._target_at = [self._value_names.index(t) if t in self._value_names else 0 for t in m.targets]
        self.scaling = IoScaling(m)
        if self.scaling.online:
            self.table.scaler_restore = self.scaling.restore_scaler
        if self.scaling.guard_halflife_steps is not None:
            self.table.guard_restore = self.scaling.restore_guard
        # Beyond the model's own horizon, roll out autoregressively: only possible when the model's
        # inputs are exactly its targets (plus calendar features we can compute ahead).
        self._can_rollout = m.horizon == 1 and tuple(m.targets) == self._value_names
        if self.horizon > m.horizon and not self._can_rollout:
            raise ValueError(f"horizon {self.horizon} exceeds the model's {m.horizon} and the model "
                             "cannot be rolled out (its inputs are not its targets)")

    # --- public -------------------------------------------------------------------------
    def process(self, messages: list[Message], now: float | None = None) -> list[Forecast]:
        """Advance each message's stream by one step; messages of one stream keep their order."""
        now = time.time() if now is None else now
        results: list[Forecast] = []
        pending = list(messages)
        while pending:
            round_, deferred, seen = [], [], set()
            for message in pending:                     # at most one step per stream per invoke
                (deferred if message.stream_id in seen else round_).append(message)
                seen.add(message.stream_id)
            results.extend(self._round(round_, now))
            pending = deferred
        return results

    def keep_streams(self, table: StreamTable) -> None:
        """Serve the streams of an engine of the same state shapes (a reload): their forecast
        guards become this model's (scaling.adopt_guard), and so does the way the table rebuilds
        a stream's scaler and guard from a checkpoint (a later shard takeover restores with it)."""
        table.scaler_restore, table.guard_restore = self.table.scaler_restore, self.table.guard_restore
        self.table = table
        for info in table.streams.values():
            if info.guard is not None:
                info.guard = self.scaling.adopt_guard(info.guard)

    # --- one invoke ---------------------------------------------------------------------
    def _admit(self, message: Message, now: float) -> tuple[StreamInfo, float] | None:
        self.counters.messages_in += 1
        if len(message.values) != len(self._value_names):
            self.counters.rejected["wrong_feature_count"] += 1
            return None
        info = self.table.get(message.stream_id)
        if info is None:
            info = self.table.add(message.stream_id, now, self.settings.idle_eviction_seconds)
            if info is None:
                self.counters.rejected["stream_table_full"] += 1
                return None
        ts = message.ts if message.ts is not None else message.received
        if info.last_ts is not None:
            if ts <= info.last_ts:                       # duplicate or out of order: never step twice
                self.counters.rejected["duplicate_or_old_timestamp"] += 1
                return None
            gap = ts - info.last_ts
            observe_step(info, ts, message.ts is not None)       # missing steps (gaps.py)
            if self.settings.max_gap_seconds > 0 and gap > self.settings.max_gap_seconds:
                self.counters.gap_resets += 1
                if self.settings.gap_policy == "reset":
                    self.table.reset_state(info)
            info.last_interval = gap
        return info, ts

    def _admit_round(self, messages: list[Message], now: float):
        """Admit one round's messages and score each against its previous forecast.
        -> (admitted [(message, info, ts)], infos, stamps (batch,), raw (batch, values), scores, slots)."""
        admitted = [(m, *a) for m in messages if (a := self._admit(m, now)) is not None]
        infos = [info for _, info, _ in admitted]
        stamps = np.asarray([ts for _, _, ts in admitted], np.float64)
        raw = np.asarray([m.values for m, _, _ in admitted], np.float32)           # (batch, values)
        scores = [self._score(info, m) for m, info, _ in admitted]
        slots = np.asarray([info.slot for info in infos], np.intp)
        return admitted, infos, stamps, raw, scores, slots

    def _round(self, messages: list[Message], now: float) -> list[Forecast]:
        started = time.perf_counter()
        admitted, infos, stamps, raw, scores, slots = self._admit_round(messages, now)
        if not admitted:
            return []
        z, centres, scales = self._online_stats(infos, raw)
        x = self.scaling.inputs(raw, stamps, z)                                    # (batch, features)
        y, states = self.model.step(x, self.table.gather(slots))
        self.table.scatter(slots, states)
        model_forecast = self.scaling.outputs(y, raw, centres, scales)             # (batch, H*T) sensor units
        forecast, factors = model_forecast, None
        if self.scaling.guard_halflife_steps is not None:                          # forecast_guard.py
            forecast, factors = self._guard(infos, raw, model_forecast, scales)
        if self.horizon > self.model.manifest.horizon:
            forecast = self._rollout(forecast, states, stamps, infos, centres, scales, factors)
        forecast = forecast[:, : self.horizon * self._n_targets]
        self.table.forecasts[slots] = forecast
        if factors is not None:
            # The next value is scored against the model's own forecast: a guard changes what is
            # published, never an anomaly score.
            self.table.forecasts[slots, : self._n_targets] = model_forecast[:, : self._n_targets]
        results = []
        for row, (message, info, ts) in enumerate(admitted):
            info.last_ts = ts
            self.table.touch(info, now)
            info.steps += 1
            score, expected, event = scores[row]
            detail = info.anomaly.detail(event, ts) if event is not None else None
            results.append(Forecast(info.stream_id, ts, message.values,
                                    forecast[row].reshape(self.horizon, self._n_targets), score, expected,
                                    event, info.steps, message.token, detail))
        self._count(len(admitted), time.perf_counter() - started)
        return results

    def _online_stats(self, infos, raw: np.ndarray):
        """Per-stream running normalisation (online models only): z, centres, scales (batch, values)."""
        if not self.scaling.online:
            return None, None, None
        rows = []
        for info, values in zip(infos, raw.tolist()):
            if info.scaler is None:
                info.scaler = self.scaling.new_scaler()
            rows.append(info.scaler.observe(values))
        z, centres, scales = (np.asarray(column, np.float32) for column in zip(*rows))
        return z, centres, scales

    def _guard(self, infos, raw: np.ndarray, forecast: np.ndarray, scales: np.ndarray | None):
        """The published forecast of guarded models: per stream and output, the target's last value
        + its guard's factor x the model's predicted change. -> (forecast, factors), (batch, H*T)."""
        values = raw[:, self._target_at].tolist()                                  # (batch, T)
        target_scales = (scales[:, self._target_at].tolist() if scales is not None
                         else [[1.0] * self._n_targets] * len(infos))             # fixed scaling: units
        published, factors = [], []
        for info, row_values, row_forecast, row_scales in zip(infos, values, forecast.tolist(), target_scales):
            if info.guard is None:
                info.guard = self.scaling.new_guard()
            guard = info.guard
            guard.observe(row_values)                   # how its earlier predictions came out
            factors.append(guard.factors())
            published.append(guard.publish(row_values, row_forecast, row_scales))
        return np.asarray(published, forecast.dtype), np.asarray(factors, np.float32)

    def _score(self, info: StreamInfo, message: Message):
        """Residual of this value against the forecast made for it one step earlier."""
        expected = self.table.forecast_at(info, 0)
        if expected is None:
            return None, None, None
        actual = float(message.values[self._target_at[0]])
        if self.anomaly_factory is None:
            return None, expected, None
        if info.anomaly is None:
            info.anomaly = self.anomaly_factory()
        ts = message.ts if message.ts is not None else message.received    # the daily profile's clock
        score, event = info.anomaly.update(actual, expected, ts)
        return score, expected, event

    def _rollout(self, first: np.ndarray, states: list[np.ndarray], stamps: np.ndarray, infos,
                 centres: np.ndarray | None, scales: np.ndarray | None,
                 factors: np.ndarray | None = None) -> np.ndarray:
        """Autoregressive H-step path from a copy of the new states (the streams' state is untouched).
        Online models keep the stream's current centre and scale along the path; guarded models
        keep each step's change times the stream's guard factor, as for the first step."""
        path = [first]
        intervals = np.asarray([info.last_interval or 0.0 for info in infos], np.float64)
        states = [s.copy() for s in states]
        for k in range(1, self.horizon):
            previous = path[-1].astype(np.float32)                   # (batch, 1): inputs == targets
            z = None
            if scales is not None:
                z = np.clip((previous - centres) / scales, -self.scaling.clip, self.scaling.clip)
            y, states = self.model.step(self.scaling.inputs(previous, stamps + k * intervals, z), states)
            step = self.scaling.outputs(y, previous, centres, scales)
            if factors is not None:
                step = previous + factors * (step - previous)
            path.append(step)
        return np.concatenate(path, axis=1)

    def _count(self, batch: int, seconds: float) -> None:
        self.counters.batches += 1
        self.counters.batch_sizes[batch] += 1
        self.counters.forecasts_out += batch
        self.counters.step_seconds_total += seconds

    def evict_idle(self, now: float) -> int:
        return self.table.evict_idle(now, self.settings.idle_eviction_seconds)
