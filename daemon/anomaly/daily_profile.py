"""A stream's daily profile: a second opinion on what a value should be (numpy/stdlib only).

Many sensor streams repeat a daily shape (occupancy, traffic, heating schedules) that a small RNN
cannot hold in its state for streams it has never seen. The profile keeps, per 5-minute slot of
the UTC day, an exponentially weighted level of the values seen in that slot. The anomaly score
then compares each value with whichever of the model's forecast and the profile has had the
lower squared error lately (exponential window of `window_steps`), so a stream that follows a
daily pattern is judged against its own yesterday, and any other stream against the model.
A glitch (a value more than SKIP_BEYOND_WIDTHS range widths beyond everything the stream has
shown, as the range signal has learnt it) is judged but not learnt: one reading would otherwise
coarsen the quantum for good and decide for days which predictor is chosen.

State: the levels, one int16 array.array per stream (288 x 2 bytes), and four float64 numbers in
the stream's flat statistics array (FLOATS slots from `at`, placed by the scorer's Layout): an
anchor (the stream's first value), the quantum as a power of two, and two running errors. A level
is anchor + q x quantum. The quantum is the smallest power of two that keeps every level within
32,767 quanta of the anchor, so it grows (and the levels are rounded to it) only as the profile
meets values farther from the anchor: a level is then within 1.5 quanta of what a float would
hold (half a quantum from its last rounding, up to one more from a coarsening), and a quantum is
at most 1/16,384 of the farthest level from the anchor. That is finer than the residual scale any
score depends on, and halves the profile of a float32 array (1,152 bytes a stream; 10,000 streams
save 5.8 MB). Functions, not an object per stream: with 10,000s of streams an object, an ndarray
header and two boxed floats would cost ~180 bytes more.
"""
from __future__ import annotations

import math
from array import array

import numpy as np

SLOT_SECONDS = 300                     # 288 slots per day
SLOTS = 86_400 // SLOT_SECONDS
LEVEL_WEIGHT = 0.5                     # weight of today's value in a slot's level (~2-day memory)
EMPTY = -32_768                        # a slot that has seen no value
Q_MAX = 32_767
# In the statistics array, from `at`: the anchor (NaN before the first value), log2 of the
# quantum, and the EW squared errors of the model's forecasts and of the profile.
ANCHOR, SHIFT, MODEL_SQ, PROFILE_SQ = range(4)
FLOATS = 4
FIRST_SHIFT = -40                      # the quantum before the profile has seen a spread (2**-40)
# A value more than this many range widths beyond the range signal's range (once that covers
# min_steps values) is judged but not learnt. On the 147 development files 5 and 10 gave the same
# figures (SMAP 5 false-positive rows fewer than learning everything), 20 three rows more than 10,
# 30 none of the gain, and 3 took 2.8 off nab-dev (docs/anomaly.md).
SKIP_BEYOND_WIDTHS = 10.0


def slot_of(ts: float) -> int:
    return int((ts % 86_400.0) // SLOT_SECONDS)


def new_levels() -> array:
    return array("h", [EMPTY]) * SLOTS


def reset(stats, at: int) -> None:
    stats[at + ANCHOR] = math.nan
    stats[at + SHIFT] = float(FIRST_SHIFT)
    stats[at + MODEL_SQ] = stats[at + PROFILE_SQ] = 0.0


def level_at(levels, stats, at: int, slot: int) -> float:
    """The slot's level in sensor units; NaN if the slot has seen no value."""
    q = levels[slot]
    return math.nan if q == EMPTY else stats[at + ANCHOR] + math.ldexp(q, int(stats[at + SHIFT]))


def observe(levels, stats, at: int, window_steps: float, ts: float, actual: float, model_expected: float,
            either: bool = False, learn: bool = True) -> float:
    """The value to compare `actual` with at time ts, judged before it is learnt: the profile's
    level if it has lately been the better predictor (and has one for this slot), else the
    model's forecast. either: whichever of the two is nearer to the actual value (a value is
    surprising only if neither the model nor the stream's yesterday expected it; a schedule that
    changes from one day to the next is then no anomaly while the model follows it). Then, if
    `learn`, the profile learns `actual`: its slot's level and both running errors. The scorer
    passes learn=False for a value far beyond anything the stream has shown (a 65535 from a
    sensor bus): learnt, it coarsened the quantum for good and swamped both running errors, so
    for days the worse predictor was chosen, and the glitch's time of day alerted 8 and more days on."""
    slot = slot_of(ts)
    level = level_at(levels, stats, at, slot)
    if math.isnan(level):                      # the slot's first value: it becomes the level
        chosen = profile_expected = model_expected
        new_level = actual
    else:
        profile_expected = level
        if either:
            chosen = level if abs(actual - level) < abs(actual - model_expected) else model_expected
        else:
            chosen = level if stats[at + PROFILE_SQ] < stats[at + MODEL_SQ] else model_expected
        new_level = (1 - LEVEL_WEIGHT) * level + LEVEL_WEIGHT * actual
    if not learn:
        return chosen
    keep = 1.0 - 1.0 / window_steps
    stats[at + MODEL_SQ] = keep * stats[at + MODEL_SQ] + (actual - model_expected) ** 2
    stats[at + PROFILE_SQ] = keep * stats[at + PROFILE_SQ] + (actual - profile_expected) ** 2
    if math.isnan(stats[at + ANCHOR]):
        stats[at + ANCHOR] = actual
    _store(levels, stats, at, slot, new_level)
    return chosen


def _store(levels, stats, at: int, slot: int, level: float) -> None:
    offset = level - stats[at + ANCHOR]
    if not math.isfinite(offset):              # beyond float range from the anchor: keep the old level
        return
    shift = int(stats[at + SHIFT])
    q = round(math.ldexp(offset, -shift))
    if abs(q) > Q_MAX:                           # coarser quantum: every level is rounded to it
        grow = max(math.frexp(offset)[1] - 15 - shift, 1)       # 2**15 > Q_MAX quanta of the new size
        while abs(round(math.ldexp(offset, -(shift + grow)))) > Q_MAX:
            grow += 1
        for i, old in enumerate(levels):
            if old != EMPTY:
                levels[i] = round(math.ldexp(old, -grow))
        shift += grow
        stats[at + SHIFT] = float(shift)
        q = round(math.ldexp(offset, -shift))
    levels[slot] = q


def to_state(levels, stats, at: int) -> dict:
    """Flat keys, merged into the anomaly state (the checkpoint stacks them across streams)."""
    return {"profile_levels": np.array(levels, np.int16), "profile_anchor": stats[at + ANCHOR],
            "profile_shift": stats[at + SHIFT], "profile_model_sq": stats[at + MODEL_SQ],
            "profile_profile_sq": stats[at + PROFILE_SQ]}


def stack_states(levels: list, numbers: np.ndarray) -> dict[str, np.ndarray]:
    """[to_state(...) for each stream] stacked key by key; numbers: (streams, FLOATS) float64."""
    return {"profile_levels": np.frombuffer(b"".join(levels), np.int16).reshape(len(levels), SLOTS),
            "profile_anchor": numbers[:, ANCHOR].copy(), "profile_shift": numbers[:, SHIFT].copy(),
            "profile_model_sq": numbers[:, MODEL_SQ].copy(), "profile_profile_sq": numbers[:, PROFILE_SQ].copy()}


def in_state(data: dict) -> bool:
    return "profile_levels" in data


def restore(levels, stats, at: int, data: dict) -> None:
    """A saved profile into a stream's levels and statistics; ValueError (one line) if it does not fit."""
    saved = np.asarray(data["profile_levels"])
    if saved.shape != (SLOTS,) or saved.dtype != np.int16 or "profile_shift" not in data:
        raise ValueError(f"daily profile state has {saved.size} {saved.dtype} slots, expected {SLOTS} int16")
    np.frombuffer(levels, np.int16)[:] = saved
    for key, index in (("anchor", ANCHOR), ("shift", SHIFT), ("model_sq", MODEL_SQ), ("profile_sq", PROFILE_SQ)):
        stats[at + index] = float(data[f"profile_{key}"])
