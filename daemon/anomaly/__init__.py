"""Per-stream anomaly scores and alerts (numpy/stdlib only): scorer.py and the daily profile."""
from .scorer import (BLOCK_SUM, BLOCK_SUM_SQ, PRIOR_WEIGHT_STEPS, STATE_VERSION, AnomalySettings, StreamAnomaly,
                     gaussian_tail, surprise_score)

__all__ = ["AnomalySettings", "StreamAnomaly", "STATE_VERSION", "PRIOR_WEIGHT_STEPS", "BLOCK_SUM", "BLOCK_SUM_SQ",
           "gaussian_tail", "surprise_score"]
