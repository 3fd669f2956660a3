"""TFLite runtime backends, one small module each behind one interface.

`auto` tries ai_edge_litert (current LiteRT, numpy 2), then tflite_runtime (2.14, numpy < 2),
then tensorflow.lite as a last resort on a workstation. Each module imports its runtime only
when it is selected, so the device never pays for (or needs) the others.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

BACKEND_MODULES = {
    "ai_edge_litert": "statecast.daemon.model.backends.litert",
    "tflite_runtime": "statecast.daemon.model.backends.tflite_runtime",
    "tensorflow": "statecast.daemon.model.backends.tf_lite",
}
AUTO_ORDER = ("ai_edge_litert", "tflite_runtime", "tensorflow")


class BackendError(Exception):
    """No usable TFLite runtime, or a delegate that cannot be loaded."""


@dataclass(frozen=True)
class Backend:
    name: str
    interpreter_class: Callable[..., Any]
    load_delegate: Callable[..., Any] | None


def select_backend(name: str = "auto") -> Backend:
    """Return the named backend, or the first importable one for "auto"."""
    names = AUTO_ORDER if name == "auto" else (name,)
    reasons = []
    for candidate in names:
        if candidate not in BACKEND_MODULES:
            raise BackendError(f"unknown runtime '{candidate}' (expected auto or one of {', '.join(AUTO_ORDER)})")
        try:
            return importlib.import_module(BACKEND_MODULES[candidate]).load()
        except ImportError as error:
            reasons.append(f"{candidate}: {str(error).splitlines()[0]}")
    raise BackendError("no TFLite runtime could be imported (" + "; ".join(reasons) + ")")
