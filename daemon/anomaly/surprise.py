"""Gaussian tail and the bounded surprise of a normalised residual (stdlib only)."""
from __future__ import annotations

import math

SURPRISE_CAP_DECADES = 20.0    # -log10 tail probability that maps to raw score 1


def gaussian_tail(z: float) -> float:
    """Q(z) = P(N(0,1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def surprise_score(z: float) -> float:
    """Bounded raw score in [0, 1] of a normalised residual: capped two-sided surprise in decades."""
    tail = math.erfc(min(abs(z), 30.0) / math.sqrt(2.0))  # 2 Q(|z|), > 0 up to |z| = 30
    return min(1.0, -math.log10(tail) / SURPRISE_CAP_DECADES) if tail < 1.0 else 0.0
