"""`statecast score`: the daemon's engine run offline over a CSV, one row = one message.

Output: timestamp, the value column(s), forecast_1..H, anomaly_score and alert (the "alert" or
"clear" event serve would publish on that row). A row serve would not step (a timestamp not newer
than the last) gets empty cells, exactly as serve publishes nothing for it. A model with a
forecast guard (model/forecast_guard.py: models/default, train's default) publishes guarded
forecasts but scores each value against its own forecast, so for it an `expected` column (that
forecast, as in the MQTT payload) comes before anomaly_score.
"""
from __future__ import annotations

import csv
import math

from statecast.daemon.engine.step_engine import Engine, EngineSettings
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.protocols import ScorerFactory
from .series_csv import SeriesError, read_series

STREAM_ID = "csv"
CHUNK_ROWS = 4096               # rows per engine call: memory stays flat on long files


def score_csv(model: StepModel, csv_path: str, out_path: str, time_column: str = "timestamp",
              engine_settings: EngineSettings = EngineSettings(), anomaly_factory: ScorerFactory | None = None,
              value_columns: tuple[str, ...] | None = None) -> int:
    """Write timestamp,value,forecast_1..H,[expected,]anomaly_score,alert; returns the number of rows written.
    value_columns: the CSV's columns for the model's value features (default: the same names)."""
    value_columns = value_columns or model.manifest.value_features
    if len(value_columns) != len(model.manifest.value_features):
        raise SeriesError(f"--value-columns names {len(value_columns)} column(s) but model {model.manifest.name} "
                          f"takes {len(model.manifest.value_features)} ({', '.join(model.manifest.value_features)})")
    series = read_series(csv_path, time_column, value_columns)
    engine = Engine(model, engine_settings, anomaly_factory)
    horizon = engine.horizon
    # The row index travels as the message's token, so each result lands on its own row.
    messages = [Message(STREAM_ID, tuple(float(v) for v in row), float(ts), float(ts), token=i)
                for i, (row, ts) in enumerate(zip(series.values, series.timestamps))]
    by_row = {}
    for start in range(0, len(messages), CHUNK_ROWS):
        for result in engine.process(messages[start:start + CHUNK_ROWS], now=messages[start].received):
            by_row[result.token] = result
    guarded = engine.scaling.guard_halflife_steps is not None
    with open(out_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", *value_columns, *[f"forecast_{k}" for k in range(1, horizon + 1)],
                         *(["expected"] if guarded else []), "anomaly_score", "alert"])
        for i, (raw_ts, row) in enumerate(zip(series.raw_timestamps, series.values)):
            result = by_row.get(i)
            forecasts = [_fmt(v) for v in result.forecast[:, 0]] if result else [""] * horizon
            if guarded:
                forecasts.append("" if result is None or result.expected is None else _fmt(result.expected))
            score = "" if result is None or result.anomaly_score is None else _fmt(result.anomaly_score)
            event = (result.event or "") if result else ""
            writer.writerow([raw_ts, *[_fmt(v) for v in row], *forecasts, score, event])
    return len(messages)


def _fmt(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""
