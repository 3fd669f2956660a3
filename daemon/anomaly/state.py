"""A stream's anomaly statistics as checkpoint data (numpy only).

to_state() is a flat dict of numbers and arrays; stack_states() builds the same keys for many
streams at once, column-wise from the flat statistics arrays (checkpoints are built on the engine
loop, where a dict per stream cost ~100 ms at 10,000 streams); from_state() continues
bit-identically, and refuses, in one line, a state of another version, settings or signal set.
"""
from __future__ import annotations

import zlib

import numpy as np

from . import daily_profile, extremes
from .alerts import FORECAST_SIGNAL, NO_ALERT
from .scorer import ABOVE_STEPS, ANOMALOUS, COUNT, COUNTERS, EPISODE_DIRECTION, EPISODE_SIGNAL, LAST_ALERT_STEP

STATE_VERSION = 6              # 6: one copy of the extremes (extremes.py); 5: the daily profile as int16 quanta (4: one flat statistics array; 3: block sums)


def signals_code(settings) -> float:
    """The signal set as one number (a CRC of the names), so a state of another set is refused."""
    return float(zlib.crc32(",".join(settings.signals).encode()))


def to_state(anomaly) -> dict:
    """Snapshot as a flat dict of numbers and float arrays (copies)."""
    s = anomaly.settings
    state = {"version": STATE_VERSION, "long_window": s.long_window, "short_window": s.short_window,
             "signals": signals_code(s), "prior_residual_std": anomaly.prior_residual_std,
             "prior_weight_steps": anomaly.prior_weight_steps,
             "stats": np.frombuffer(anomaly.stats, np.float64, anomaly.offsets.saved).copy(), "count": anomaly.count,
             "anomalous": anomaly.anomalous, "above_steps": anomaly.above_steps,
             "last_alert_step": NO_ALERT if anomaly.last_alert_step is None else anomaly.last_alert_step,
             "episode_signal": anomaly.episode_signal, "episode_direction": anomaly.episode_direction}
    if anomaly.levels is not None:
        state.update(daily_profile.to_state(anomaly.levels, anomaly.stats, anomaly.offsets.profile_at))
    return state


def stack_states(anomalies: list) -> dict[str, np.ndarray]:
    """[to_state(a) for a in anomalies] stacked key by key (same keys and order, numbers as
    float64, arrays in their dtype), without a dict per stream. All share one layout()."""
    n, first = len(anomalies), anomalies[0]
    s, layout = first.settings, first.offsets
    stats = np.frombuffer(b"".join(a.stats for a in anomalies), np.float64).reshape(n, -1)
    counters = stats[:, layout.counters_at:layout.counters_at + COUNTERS]

    def column(values) -> np.ndarray:
        return np.fromiter(values, np.float64, n)
    state = {"version": np.full(n, float(STATE_VERSION)),
             "long_window": column(a.settings.long_window for a in anomalies),
             "short_window": np.full(n, float(s.short_window)),
             "signals": column(signals_code(a.settings) for a in anomalies),
             "prior_residual_std": column(a.prior_residual_std for a in anomalies),
             "prior_weight_steps": column(a.prior_weight_steps for a in anomalies),
             "stats": np.ascontiguousarray(stats[:, :layout.saved]),
             "count": counters[:, COUNT].copy(), "anomalous": counters[:, ANOMALOUS].copy(),
             "above_steps": counters[:, ABOVE_STEPS].copy(),
             "last_alert_step": np.where(np.isnan(counters[:, LAST_ALERT_STEP]), float(NO_ALERT),
                                         counters[:, LAST_ALERT_STEP]),
             "episode_signal": counters[:, EPISODE_SIGNAL].copy(),
             "episode_direction": counters[:, EPISODE_DIRECTION].copy()}
    if first.levels is not None:
        numbers = stats[:, layout.profile_at:layout.profile_at + daily_profile.FLOATS]
        state.update(daily_profile.stack_states([a.levels for a in anomalies], numbers))
    return state


def from_state(cls, settings, data: dict):
    """Raises ValueError (one line) for a state of another version, settings or signal set. A
    version-5 state is read too (upgraded_from_5)."""
    version = data.get("version")                    # a float64 when read from a checkpoint
    if version not in (STATE_VERSION, 5):
        raise ValueError(f"anomaly state version {version if version is None else int(version)}, "
                         f"expected {STATE_VERSION}")
    for key in ("long_window", "short_window"):
        if int(data[key]) != getattr(settings, key):
            raise ValueError(f"anomaly state was built with {key}={data[key]}, "
                             f"settings say {key}={getattr(settings, key)}")
    if float(data["signals"]) != signals_code(settings):
        raise ValueError(f"anomaly state was built with other signals than {', '.join(settings.signals) or 'none'}")
    if daily_profile.in_state(data) != settings.daily_profile:
        raise ValueError(f"anomaly state {'has' if daily_profile.in_state(data) else 'lacks'} a daily "
                         f"profile, settings say daily_profile={settings.daily_profile}")
    self = cls(settings, float(data["prior_residual_std"]), float(data["prior_weight_steps"]))
    stats = np.asarray(data["stats"], np.float64)
    if version == 5:
        stats = upgraded_from_5(settings, self.offsets, stats, float(data["count"]))
    saved = self.offsets.saved
    if stats.shape != (saved,):
        raise ValueError(f"anomaly state has {stats.size} statistics, expected {saved} "
                         f"(a signal's settings changed its state, e.g. stuck_rare_decades on or off)")
    np.frombuffer(self.stats, np.float64, saved)[:] = stats
    if settings.daily_profile:
        daily_profile.restore(self.levels, self.stats, self.offsets.profile_at, data)
    last = int(data["last_alert_step"])
    self.set_counters(int(data["count"]), bool(data["anomalous"]), int(data["above_steps"]),
                      None if last == NO_ALERT else last, int(data.get("episode_signal", FORECAST_SIGNAL)),
                      int(data.get("episode_direction", 0)))
    return self


# Version 5's slots per signal (the signals that had their own copy of the extremes or of the
# count of values): range LOW, HIGH, SEEN; drift LOW, HIGH, SEEN before its own four; novel its
# three before SEEN; stuck its four, then (stuck_rare_decades > 0) VALUES before REPEATS.
_V5_EXTRA = {"range": 3, "drift": 3, "novel": 1}


def upgraded_from_5(settings, layout, stats: np.ndarray, count: float) -> np.ndarray:
    """A version-5 statistics array (before one copy of the extremes: every signal that needed
    them kept its own) in this version's layout, for the same settings. Nothing is lost: the
    extremes come from the range or the drift signal (without either, no signal reads them), and
    the count of values is the count of residuals, which every signal saw."""
    rare = settings.stuck_rare_decades > 0
    old_sizes = [signal.size(settings) + _V5_EXTRA.get(signal.name, 0) + (signal.name == "stuck" and rare)
                 for signal, _ in layout.signals]
    head = layout.signals_at - extremes.FLOATS                 # running sums, alert floats, rings
    if stats.shape != (head + sum(old_sizes) + (layout.saved - layout.profile_at),):
        raise ValueError(f"anomaly state (version 5) has {stats.size} statistics, expected "
                         f"{head + sum(old_sizes) + layout.saved - layout.profile_at}")
    out = np.empty(layout.saved)
    out[extremes.LOW] = out[extremes.HIGH] = np.nan
    out[extremes.SEEN] = count
    out[extremes.FLOATS:layout.signals_at] = stats[:head]
    old_at = head
    for (signal, at), old_size in zip(layout.signals, old_sizes):
        old = stats[old_at:old_at + old_size]
        if signal.name in ("range", "drift"):
            out[extremes.LOW], out[extremes.HIGH] = old[0], old[1]
            old = old[3:]
        elif signal.name == "novel":
            old = old[:3]
        elif signal.name == "stuck" and rare:
            old = np.delete(old, 4)                           # VALUES
        out[at:at + signal.size(settings)] = old
        old_at += old_size
    out[layout.profile_at:] = stats[old_at:]
    return out
