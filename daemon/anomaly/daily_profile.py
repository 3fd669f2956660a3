"""A stream's daily profile: a second opinion on what a value should be (numpy/stdlib only).

Many sensor streams repeat a daily shape (occupancy, traffic, heating schedules) that a small RNN
cannot hold in its state for streams it has never seen. The profile keeps, per 5-minute slot of
the UTC day, an exponentially weighted level of the values seen in that slot. The anomaly score
then compares each value with whichever of the model's forecast and the profile has had the
lower squared error lately (exponential window of `window_steps`), so a stream that follows a
daily pattern is judged against its own yesterday, and any other stream against the model.

State: the levels, one float32 array.array per stream (288 x 4 bytes), and two float64 running
errors in the stream's flat statistics array (FLOATS slots from `at`, placed by the scorer's
Layout). Functions, not an object per stream: with 10,000s of streams an object, an ndarray
header and two boxed floats each cost ~180 bytes more. float32 holds a sensor reading to ~7
digits, far finer than the residual scale any score depends on (the NAB evaluation scored the
same with float64 levels).
"""
from __future__ import annotations

import math
from array import array

import numpy as np

SLOT_SECONDS = 300                     # 288 slots per day
SLOTS = 86_400 // SLOT_SECONDS
LEVEL_WEIGHT = 0.5                     # weight of today's value in a slot's level (~2-day memory)
MODEL_SQ, PROFILE_SQ = 0, 1            # EW squared errors of the model's forecasts and of the profile
FLOATS = 2


def slot_of(ts: float) -> int:
    return int((ts % 86_400.0) // SLOT_SECONDS)


def new_levels() -> array:
    """(SLOTS,) float32, NaN until a slot has seen a value."""
    return array("f", [math.nan]) * SLOTS


def reset(stats, at: int) -> None:
    stats[at + MODEL_SQ] = stats[at + PROFILE_SQ] = 0.0


def expected(levels, stats, at: int, ts: float, model_expected: float, either: bool = False,
             actual: float = math.nan) -> float:
    """The value to compare with at time ts: the profile's level if it has lately been the
    better predictor (and has one for this slot), else the model's forecast. either: whichever
    of the two is nearer to the actual value (a value is surprising only if neither the model
    nor the stream's yesterday expected it; a schedule that changes from one day to the next
    is then no anomaly while the model follows it)."""
    level = levels[slot_of(ts)]
    if not math.isfinite(level):
        return model_expected
    if either:
        return level if abs(actual - level) < abs(actual - model_expected) else model_expected
    return level if stats[at + PROFILE_SQ] < stats[at + MODEL_SQ] else model_expected


def observe(levels, stats, at: int, window_steps: float, ts: float, actual: float, model_expected: float) -> None:
    keep = 1.0 - 1.0 / window_steps
    slot = slot_of(ts)
    level = levels[slot]
    profile_expected = level if math.isfinite(level) else model_expected
    stats[at + MODEL_SQ] = keep * stats[at + MODEL_SQ] + (actual - model_expected) ** 2
    stats[at + PROFILE_SQ] = keep * stats[at + PROFILE_SQ] + (actual - profile_expected) ** 2
    levels[slot] = actual if not math.isfinite(level) else (1 - LEVEL_WEIGHT) * level + LEVEL_WEIGHT * actual


def to_state(levels, stats, at: int) -> dict:
    """Flat keys, merged into the anomaly state (the checkpoint stacks them across streams)."""
    return {"profile_levels": np.array(levels, np.float32), "profile_model_sq": stats[at + MODEL_SQ],
            "profile_profile_sq": stats[at + PROFILE_SQ]}


def stack_states(levels: list, errors: np.ndarray) -> dict[str, np.ndarray]:
    """[to_state(...) for each stream] stacked key by key; errors: (streams, FLOATS) float64."""
    return {"profile_levels": np.frombuffer(b"".join(levels), np.float32).reshape(len(levels), SLOTS),
            "profile_model_sq": errors[:, MODEL_SQ].copy(), "profile_profile_sq": errors[:, PROFILE_SQ].copy()}


def in_state(data: dict) -> bool:
    return "profile_levels" in data


def restore(levels, stats, at: int, data: dict) -> None:
    """A saved profile into a stream's levels and statistics; ValueError (one line) if it does not fit."""
    saved = np.asarray(data["profile_levels"], np.float32)
    if saved.shape != (SLOTS,):
        raise ValueError(f"daily profile state has {saved.size} slots, expected {SLOTS}")
    np.frombuffer(levels, np.float32)[:] = saved
    stats[at + MODEL_SQ], stats[at + PROFILE_SQ] = float(data["profile_model_sq"]), float(data["profile_profile_sq"])
