"""Per-stream state, stored as one array per state tensor (struct of arrays).

A stream owns a slot; gathering a batch is one fancy-index per state tensor and scattering
the new states is one assignment, so per-stream cost stays out of Python loops. The table is
bounded: it grows by doubling up to max_streams, evicts idle streams first and otherwise
refuses new ones, so a flood of new ids cannot push out established streams.
"""
from __future__ import annotations

import math
from array import array as float_array
from typing import Any

import numpy as np

from statecast.daemon.protocols import GuardRestore, ScalerRestore, StreamGuard, StreamScaler, StreamScorer


# A stream's numbers, NUMBERS float64 per slot in the table's `numbers` column: the timestamp of
# its last step (NaN: none yet), its steps, the wall-clock seconds of its last accepted message,
# the seconds between its last two messages (NaN: none yet), and the interval it has been
# learned to keep and how many regular intervals that was learned from (gaps.py; NaN, 0: none
# yet). In a column, not as attributes: each would be a boxed float or int per stream (~32
# bytes; 10,000 streams: ~1 MB for the three that change with every message), and the learned
# interval an object per stream.
LAST_TS, STEPS, LAST_SEEN, LAST_INTERVAL, LEARNED_INTERVAL, INTERVALS = range(6)
NUMBERS = 6
_EMPTY_NUMBERS = float_array("d", [math.nan, 0.0, 0.0, math.nan, math.nan, 0.0])


class _Number:
    """A StreamInfo field kept in its table's `numbers` column (optional: NaN reads as None)."""

    def __init__(self, index: int, kind: type = float, optional: bool = False):
        self.index, self.kind, self.optional = index, kind, optional

    def __get__(self, info, owner=None):
        if info is None:
            return self
        value = info.numbers[info.slot * NUMBERS + self.index]
        return None if self.optional and math.isnan(value) else self.kind(value)

    def __set__(self, info, value) -> None:
        info.numbers[info.slot * NUMBERS + self.index] = math.nan if value is None else value


class StreamInfo:
    """Everything about one stream except its recurrent state arrays (slots: no per-stream __dict__)."""

    last_ts = _Number(LAST_TS, optional=True)               # None before the first step
    steps = _Number(STEPS, int)
    last_seen = _Number(LAST_SEEN)                          # wall-clock seconds of the last accepted message
    last_interval = _Number(LAST_INTERVAL, optional=True)   # seconds between the last two messages
    learned_interval = _Number(LEARNED_INTERVAL, optional=True)   # gaps.py; None before the second message
    intervals = _Number(INTERVALS, int)                     # regular intervals it was learned from (gaps.py)

    __slots__ = ("stream_id", "slot", "numbers", "scaler", "anomaly", "guard", "extra", "gap_log")

    def __init__(self, stream_id: str, slot: int, numbers: float_array):
        self.stream_id, self.slot, self.numbers = stream_id, slot, numbers   # numbers: the table's column
        self.scaler: StreamScaler | None = None        # online input normaliser (models that ask for it)
        self.anomaly: StreamScorer | None = None       # anomaly scorer (when anomaly scoring is on)
        self.guard: StreamGuard | None = None          # forecast guard (models whose manifest has one)
        self.extra: dict | None = None                 # window ring buffers etc. (window engines only)
        self.gap_log: Any = None                       # gaps.GapLog: missing steps, once it had a gap

    def take_over(self, other: "StreamInfo") -> None:
        """Everything of `other` (a stream of another table) but its id and slot."""
        at, there = self.slot * NUMBERS, other.slot * NUMBERS
        self.numbers[at:at + NUMBERS] = other.numbers[there:there + NUMBERS]
        self.scaler, self.anomaly, self.guard = other.scaler, other.anomaly, other.guard
        self.extra, self.gap_log = other.extra, other.gap_log


class StreamTable:
    def __init__(self, state_shapes: list[tuple[int, ...]], max_streams: int, initial_capacity: int = 64,
                 forecast_width: int = 0):
        self.state_shapes = [tuple(s) for s in state_shapes]
        self.max_streams = max_streams
        capacity = max(1, min(initial_capacity, max_streams))
        self.arrays = [np.zeros((capacity,) + s, np.float32) for s in self.state_shapes]
        # Per slot, the forecast made at the stream's last step ((horizon * targets,) sensor units;
        # NaN: none yet), which its next value is scored against. A column here rather than an
        # array per stream: 10,000 streams' ndarray views cost ~1 MB of objects.
        self.forecasts = np.full((capacity, forecast_width), np.nan, np.float32)
        self.numbers = _EMPTY_NUMBERS * capacity            # StreamInfo's numbers, NUMBERS per slot
        # least recently seen first: idle eviction looks at the front only. A plain dict keeps
        # insertion order, and touch() re-inserts: an OrderedDict's linked list costs ~66 bytes a
        # stream more (10,000 streams: 0.66 MB).
        self.streams: dict[str, StreamInfo] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self.evicted = 0
        self.refused = 0
        self.resets = 0
        # How to rebuild a stream's online normaliser from a checkpoint (set by the engine of an
        # online-normalised model; None otherwise).
        self.scaler_restore: ScalerRestore | None = None
        # Likewise a stream's forecast guard (models with one).
        self.guard_restore: GuardRestore | None = None

    def __len__(self) -> int:
        return len(self.streams)

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self.streams

    def get(self, stream_id: str) -> StreamInfo | None:
        return self.streams.get(stream_id)

    def _grow(self) -> bool:
        capacity = self.arrays[0].shape[0]
        if capacity >= self.max_streams:
            return False
        new_capacity = min(capacity * 2, self.max_streams)
        self.arrays = [np.concatenate([a, np.zeros((new_capacity - capacity,) + a.shape[1:], np.float32)])
                       for a in self.arrays]
        self.forecasts = np.concatenate([self.forecasts, np.full((new_capacity - capacity, self.forecasts.shape[1]),
                                                                 np.nan, np.float32)])
        self.numbers.extend(_EMPTY_NUMBERS * (new_capacity - capacity))   # the same array: infos keep it
        self._free.extend(range(new_capacity - 1, capacity - 1, -1))
        return True

    def add(self, stream_id: str, now: float, idle_seconds: float = 0.0) -> StreamInfo | None:
        """New stream with zero state; None (counted) when full and no stream is idle enough to evict."""
        if not self._free and not self._grow():
            if not (idle_seconds > 0 and self.evict_idle(now, idle_seconds, limit=1)):
                self.refused += 1
                return None
        slot = self._free.pop()
        for array in self.arrays:
            array[slot] = 0.0
        self.forecasts[slot] = np.nan
        self.numbers[slot * NUMBERS: (slot + 1) * NUMBERS] = _EMPTY_NUMBERS
        info = StreamInfo(stream_id, slot, self.numbers)
        info.last_seen = now
        self.streams[stream_id] = info
        return info

    def remove(self, stream_id: str) -> None:
        info = self.streams.pop(stream_id)
        self._free.append(info.slot)

    def touch(self, info: StreamInfo, now: float) -> None:
        """Mark a stream as just seen (keeps the least-recently-seen order)."""
        info.last_seen = now
        streams = self.streams
        del streams[info.stream_id]
        streams[info.stream_id] = info

    def evict_idle(self, now: float, idle_seconds: float, limit: int | None = None) -> int:
        """Drop streams not seen for idle_seconds, oldest first; returns how many. One pass from
        the least recently seen (the dict also skips the slots of streams touched since it last
        resized: at most about as many as it holds)."""
        if idle_seconds <= 0:
            return 0
        expired = []
        for stream_id, info in self.streams.items():       # least recently seen first: one pass
            if (limit is not None and len(expired) >= limit) or now - info.last_seen < idle_seconds:
                break
            expired.append(stream_id)
        for stream_id in expired:
            self.remove(stream_id)
        self.evicted += len(expired)
        return len(expired)

    def reset_state(self, info: StreamInfo) -> None:
        for array in self.arrays:
            array[info.slot] = 0.0
        self.forecasts[info.slot] = np.nan
        self.resets += 1

    def forecast_at(self, info: StreamInfo, index: int) -> float | None:
        """Element `index` of the forecast made at the stream's last step; None if there is none."""
        if index >= self.forecasts.shape[1]:
            return None
        value = float(self.forecasts[info.slot, index])
        return None if value != value else value          # NaN: no forecast yet

    def gather(self, slots: np.ndarray) -> list[np.ndarray]:
        """The slots' states, each (batch, units), as the input of one step: use them before the
        next scatter, because a single slot's are views of the table (a round of one message, the
        common case, then pays only for the copies into the interpreter)."""
        if len(slots) == 1:
            slot = int(slots[0])
            return [array[slot:slot + 1] for array in self.arrays]
        # take() copies the same rows as array[slots], with less fixed cost
        return [array.take(slots, axis=0) for array in self.arrays]

    def scatter(self, slots: np.ndarray, states: list[np.ndarray]) -> None:
        if len(slots) == 1:          # one message: assigning a row is ~3x cheaper than fancy indexing
            slot = int(slots[0])
            for array, new in zip(self.arrays, states):
                array[slot] = new[0]
            return
        for array, new in zip(self.arrays, states):
            array[slots] = new

    def state_of(self, stream_id: str) -> list[np.ndarray]:
        slot = self.streams[stream_id].slot
        return [array[slot].copy() for array in self.arrays]
