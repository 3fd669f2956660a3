"""The seams between the engine / checkpoint code and what they drive for each stream.

The engine calls a per-stream anomaly scorer (anomaly/scorer.py's StreamAnomaly) and, for
online-normalised models, a per-stream input scaler (model/scaling.py's OnlineScaler); the
checkpoint code saves both column-wise and rebuilds them. Both classes satisfy these protocols
structurally (they do not import this module); tests/test_layout.py checks that they do.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

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

    # the stream's forecast guard (model/forecast_guard.py: factor(), publish()) or None; typed
    # loosely because this leaf module imports nothing of the model
    guard: Any

    def observe(self, values) -> tuple[list[float], list[float], list[float]]:
        """(z for this input, centre after it, scale after it), one entry per value feature."""


ScorerFactory = Callable[[], StreamScorer]          # a fresh scorer for a new stream
ScorerRestore = Callable[[dict], StreamScorer]      # a scorer from its checkpointed state
ScalerRestore = Callable[[dict], StreamScaler]      # a scaler from its checkpointed state
