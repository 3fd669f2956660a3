"""The anomaly settings: one frozen, validated structure (numpy/stdlib only).

A model's manifest carries tuned values (`anomaly.settings`); the config's [anomaly] table sets
keys on top. One set of per-key ranges (RANGES) for both: the config reads its keys with these
bounds (daemon/config.py, operator-grade errors) and a manifest's values are checked against the
same ones here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property

BLOCKS = 16                    # the reference window is summed in ~this many blocks (16 x 2 float64 a stream)

# One set of per-key ranges, name -> (lo, hi, lo_open, hi_open) (None: unbounded on that side),
# in the order they are checked. daemon/config.py reads [anomaly] with exactly these bounds.
RANGES = {
    "threshold": (0.0, 1.0, True, True),
    "clear_threshold": (0.0, 1.0, False, True),
    "debounce_steps": (1, 1000, False, False),
    "refractory_steps": (0, None, False, False),
    "short_window": (1, None, False, False),
    "min_steps": (2, None, False, False),               # the residual statistics need two samples
    "long_window": (10, 100_000, False, False),
    "scale_window": (1, 1_000_000, False, False),
    "spatial_tolerance": (0.0, 10.0, False, False),
    "range_warmup_steps": (0, 1_000_000, False, False),
    "range_noise_scales": (0.0, 100.0, False, False),
    "novelty_noise_scales": (0.0, 100.0, False, False),
    "stuck_min_steps": (1, 1_000_000, False, False),
    "stuck_margin": (0.0, 100.0, False, False),
    "stuck_rare_decades": (0.0, 300.0, False, False),
    "level_window": (2, 100_000, False, False),
    "drift_window": (1, 100_000, False, False),
    "drift_records": (0.0, 100_000.0, True, False),
    "drift_rate_ratio": (0.0, 1_000_000.0, False, False),
    "drift_long_window": (1, 1_000_000, False, False),
    "cooldown_seconds": (0.0, None, False, False),
    "max_alerts_per_hour": (0.0, None, False, False),
}


def in_range(value, lo, hi, lo_open, hi_open) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    return above and below


@dataclass(frozen=True)
class AnomalySettings:
    threshold: float = 0.99        # score at or above which a step counts towards an alert
    clear_threshold: float = 0.9   # score below which an active alert clears
    debounce_steps: int = 1        # consecutive steps at/above threshold needed to alert
    refractory_steps: int = 0      # steps after an alert: no new alert, published score held
    long_window: int = 2000        # steps of raw scores in the reference window (rounded up to blocks)
    short_window: int = 10         # steps averaged for the current level
    min_steps: int = 100           # residuals seen before a score is reported
    scale_window: int = 500        # time constant (steps) of the residual scale estimate
    spatial_tolerance: float = 0.0  # > 0: a value beyond the seen range by this fraction of it scores 1
    daily_profile: bool = False    # compare with the stream's daily profile when that predicts better
    profile_either: bool = False   # ... or with whichever of profile and forecast is nearer the value
    # Signals besides the forecast residual, by name (daemon/anomaly/signals.py); each is one module.
    signals: tuple[str, ...] = ("range",)
    # A hold (refractory_steps) ends early when one of these signals fires: a new extreme during the
    # hold is a new event, not the old one going on.
    hold_breakers: tuple[str, ...] = ()
    range_warmup_steps: int = 0    # range signal: tolerance widened x range_warmup_steps / n over the first n values
    range_noise_scales: float = 0.0  # range signal: the margin adds this many residual scales (noise)
    novelty_noise_scales: float = 2.0  # novelty signal: an unvisited bin this many residual scales from any visited one
    stuck_min_steps: int = 12      # stuck signal: a run of unchanged values scores once this long at least ...
    stuck_margin: float = 0.25     # ... and (1 + this) x the longest run the stream has shown
    stuck_rare_decades: float = 0.0  # > 0: a shorter run scores too when its chance at the stream's repeat rate is < 10^-this
    level_window: int = 50         # level signal: time constant (steps) of the short mean
    drift_window: int = 200        # drift signal: a stream's records are counted over ~this many steps (EW) ...
    drift_records: float = 5.0     # ... and a record scores once that count reaches this ...
    drift_rate_ratio: float = 5.0  # ... and is this many times the stream's usual rate of records ...
    drift_long_window: int = 2000  # ... over ~this many steps (EW)
    cooldown_seconds: float = 0.0  # no new alert within this many seconds (message time) of the last
    max_alerts_per_hour: float = 0.0  # > 0: at most this many alerts per hour per stream (token bucket)

    def __post_init__(self):
        # tuples, also when given lists (TOML arrays, JSON manifests)
        object.__setattr__(self, "signals", tuple(self.signals))
        object.__setattr__(self, "hold_breakers", tuple(self.hold_breakers))
        from .signals import SIGNALS
        checks = {name: in_range(getattr(self, name), *bounds) for name, bounds in RANGES.items()}
        # Across keys, on the merged settings (a manifest's tuned values with the config's keys on
        # top). The config's [anomaly] table is stricter within itself (clear_threshold < threshold,
        # short_window < long_window) and says so with the key names.
        checks["clear_threshold"] &= self.clear_threshold <= self.threshold
        checks["long_window"] &= max(self.short_window, self.min_steps) <= self.long_window
        checks["signals"] = all(name in SIGNALS for name in self.signals) and len(set(self.signals)) == len(self.signals)
        checks["hold_breakers"] = all(name in self.signals for name in self.hold_breakers)
        for key, ok in checks.items():
            if not ok:
                hint = f" (known signals: {', '.join(SIGNALS)})" if key in ("signals", "hold_breakers") else ""
                raise ValueError(f"anomaly setting {key}={getattr(self, key)!r} is out of range{hint}")

    # Equality and hash over one tuple of the fields, built once. Every new stream looks its
    # settings up (scorer.kind_of: a hash, and an __eq__ when an equal copy is cached), and the
    # generated methods build a tuple of all fields per call; a freed tuple of 20 goes to a
    # CPython 3.11 free list that later tuples do not take from (up to 2,000 of them, 400 kB,
    # until a full gc). @dataclass keeps methods the class defines.
    @cached_property
    def _fields(self) -> tuple:
        return tuple(getattr(self, field.name) for field in fields(self))

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields == other._fields

    def __hash__(self) -> int:
        return hash(self._fields)

    @cached_property                   # read every step; fields are frozen
    def block_steps(self) -> int:
        """B: raw scores summed per block of the reference window."""
        return math.ceil(self.long_window / BLOCKS)

    @cached_property
    def blocks(self) -> int:
        """K: finished blocks in the reference window (K * B >= long_window)."""
        return math.ceil(self.long_window / self.block_steps)
