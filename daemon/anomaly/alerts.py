"""Alert episodes of one stream: when a score opens an alert, when it clears, what the score
published meanwhile is, and what an alert or clear says about itself (stdlib only).

- alert: the score has been >= threshold for debounce_steps consecutive steps, the stream is not
  already alerting, and none of these holds it back: the hold (refractory_steps after the last
  alert; a signal in hold_breakers firing ends it early), the cooldown (cooldown_seconds of
  message time since the last alert), the cap (max_alerts_per_hour, a token bucket refilled with
  message time).
- clear: an alerting stream's score drops below clear_threshold. One alert and one clear make an
  episode; the clear says how long it lasted.
- While a hold lasts, the published score is held at or below clear_threshold (the alert already
  said it), so one event is one high score, which is what NAB rewards and what a dashboard wants.
The stream's statistics and the RNN state keep updating throughout.
"""
from __future__ import annotations

import math

# Where the alert's floats live in the stream's flat statistics array (offsets from ALERT_AT).
# EPISODE_START is the time of the last alert too (an episode starts with its alert).
EPISODE_START, TOKENS, TOKENS_TS = range(3)
ALERT_FLOATS = 3
FORECAST_SIGNAL = -1          # signal index of the forecast residual itself
NO_ALERT = -1                 # last_alert_step in a saved state: no alert yet


def reset_alert_floats(stats, at: int) -> None:
    for i in range(ALERT_FLOATS):
        stats[at + i] = math.nan


def time_allows(settings, stats, at: int, ts: float | None) -> bool:
    """Cooldown and hourly cap (message time); takes a token when an alert may go out."""
    if ts is None or not math.isfinite(ts):
        return True
    last = stats[at + EPISODE_START]                # the last alert's time
    if settings.cooldown_seconds > 0.0 and math.isfinite(last) and ts - last < settings.cooldown_seconds:
        return False
    cap = settings.max_alerts_per_hour
    if cap <= 0.0:
        return True
    full = max(cap, 1.0)                            # 0.25 per hour: one alert, then one per 4 hours
    tokens, since = stats[at + TOKENS], stats[at + TOKENS_TS]
    tokens = full if math.isnan(tokens) else min(full, tokens + max(ts - since, 0.0) * cap / 3600.0)
    stats[at + TOKENS_TS] = ts
    if tokens < 1.0:
        stats[at + TOKENS] = tokens
        return False
    stats[at + TOKENS] = tokens - 1.0
    return True


def detail(settings, stats, at: int, event: str, ts: float | None, signal: str, direction: int) -> dict:
    """What an alert or clear event says about itself (published with it)."""
    start = stats[at + EPISODE_START]
    info = {"threshold": settings.threshold if event == "alert" else settings.clear_threshold,
            "direction": {1: "high", -1: "low"}.get(direction),
            "signal": signal, "episode_start": start if math.isfinite(start) else None}
    if event == "clear":
        info["duration_seconds"] = ts - start if ts is not None and math.isfinite(start) else None
    return info
