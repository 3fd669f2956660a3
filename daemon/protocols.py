"""The seams between the engine / checkpoint code and what they drive for each stream.

The engine calls a per-stream anomaly scorer (anomaly/scorer.py's StreamAnomaly), for
online-normalised models a per-stream input scaler (model/scaling.py's OnlineScaler) and, for
models with a forecast guard, a per-stream guard (model/forecast_guard.py's ForecastGuard); the
checkpoint code saves them column-wise and rebuilds them. The classes satisfy these protocols
structurally (they do not import this module); tests/test_layout.py checks that they do.
"""
from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StackableState(Protocol):
    """Saved in a checkpoint (state/checkpoint.py stack_by_layout): streams of one layout() are
    stacked column-wise by their type's stack_states, and rebuilt one by one from a dict."""

    def to_state(self) -> dict: ...

    def layout(self) -> tuple: ...

    @staticmethod
    def stack_states(items: list) -> dict[str, np.ndarray]: ...


@runtime_checkable
class StreamScorer(StackableState, Protocol):
    """One stream's anomaly scorer."""

    def update(self, actual: float, expected: float, ts: float | None = None) -> tuple[float | None, str | None]:
        """(score or None while warming up, "alert" / "clear" / None)."""

    def detail(self, event: str, ts: float | None) -> dict:
        """What an alert or clear event says about itself (threshold, direction, signal, ...)."""


@runtime_checkable
class StreamScaler(StackableState, Protocol):
    """One stream's online input normaliser."""

    def observe(self, values) -> tuple[list[float], list[float], list[float]]:
        """(z for this input, centre after it, scale after it), one entry per value feature."""


@runtime_checkable
class StreamGuard(StackableState, Protocol):
    """One stream's forecast guard: how much of the model's predicted change to publish."""

    def observe(self, values) -> None:
        """New values of the targets: learn from how earlier predictions came out."""

    def factors(self) -> list[float]:
        """The share of the predicted change published now, per output (horizon step, target)."""

    def publish(self, values, forecast, scales) -> list[float]:
        """The model's forecast made at the targets' `values` -> the forecast to publish."""


ScorerFactory = Callable[[], StreamScorer]          # a fresh scorer for a new stream
ScorerRestore = Callable[[dict], StreamScorer]      # a scorer from its checkpointed state
ScalerRestore = Callable[[dict], StreamScaler]      # a scaler from its checkpointed state
GuardRestore = Callable[[dict], StreamGuard]     # a forecast guard from its checkpointed state
