"""Per-stream anomaly scores and alerts: the forecast residual's likelihood (scorer.py), the
signals beside it (signals.py and one module per signal; the stream's extremes they share,
extremes.py), the daily profile, alert episodes (alerts.py) and the checkpoint layout
(state.py). numpy/stdlib only."""
from .scorer import (BLOCK_SUM, BLOCK_SUM_SQ, PRIOR_WEIGHT_STEPS, RECENT, StreamAnomaly)
from .settings import AnomalySettings
from .state import STATE_VERSION
from .surprise import gaussian_tail, surprise_score

__all__ = ["AnomalySettings", "StreamAnomaly", "STATE_VERSION", "PRIOR_WEIGHT_STEPS", "BLOCK_SUM", "BLOCK_SUM_SQ",
           "RECENT", "gaussian_tail", "surprise_score"]
