"""Backend: ai_edge_litert, the current LiteRT wheel (numpy 2, Python 3.10-3.14, aarch64)."""
from . import Backend


def load() -> Backend:
    from ai_edge_litert.interpreter import Interpreter, load_delegate
    return Backend("ai_edge_litert", Interpreter, load_delegate)
