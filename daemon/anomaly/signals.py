"""Per-stream signals besides the forecast residual: the interface and the registry.

A signal keeps its per-stream state in a slice of the stream's flat statistics array (one
array per stream keeps 10,000s of streams small), is called once per step with the value, and
returns a score in [0, 1] and a direction (+1 high, -1 low, 0 none). It must depend only on the
past and this value. It may read the stream's extremes and its count of values (extremes.py:
the first slots of the same array, as they were before this value; the scorer learns the value
into them after every signal has scored it). It is also told the stream's residual scale (`noise`: the running RMS of
the forecast's one-step errors before this step, in the stream's units; 0.0 while none is
known), so that a signal can tell a departure from the stream's ordinary step-to-step noise.
The scorer publishes the largest of the forecast likelihood and the signals' scores, and names
the signal that gave it. Adding a signal: one module with a class like the ones below, one line
in SIGNALS, its name in the settings' `signals`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .drift_signal import DriftSignal
from .level_signal import LevelSignal
from .novelty_signal import NoveltySignal
from .range_signal import RangeSignal
from .stuck_signal import StuckSignal

if TYPE_CHECKING:                                   # pragma: no cover
    from array import array

    from .settings import AnomalySettings


class Signal(Protocol):
    name: str

    def size(self, settings: "AnomalySettings") -> int:
        """float64 slots of per-stream state."""

    def reset(self, stats: "array", at: int, settings: "AnomalySettings") -> None:
        """Initial state of a new stream in stats[at:at + size]."""

    def update(self, stats: "array", at: int, actual: float, noise: float, ready: bool,
               settings: "AnomalySettings") -> tuple[float, int]:
        """Score this value against the stream's past (0.0 while not ready), then learn from it."""


SIGNALS: dict[str, Signal] = {
    "range": RangeSignal(),
    "level": LevelSignal(),
    "stuck": StuckSignal(),
    "novel": NoveltySignal(),
    "drift": DriftSignal(),
}
