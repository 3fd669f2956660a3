"""Hand the C heap's free pages back to the kernel when the engine loop has nothing to do.

A burst of readings leaves freed memory behind in glibc's heaps (paho's packets and payload
bytes, the hand-over queue, forecast strings): free() gives back only the top of a heap, so the
resident set stays near the burst's high-water mark long after it. malloc_trim(0) releases every
whole free page of every heap. At 10,000 streams after a 20,000-reading burst (bench_memory's
load, max_batch 256) it took the median RSS at rest from 80.7 to 78.75 MB over 14 interleaved
daemon pairs (daemons over 80 MB: 8 of 14 -> 3 of 14); one call costs 0.01-0.12 ms there.
Other C libraries (musl) have no malloc_trim: then the trimmer does nothing.
"""
from __future__ import annotations

import ctypes
import time

TRIM_INTERVAL_SECONDS = 1.0      # at most one call per second of idle turns


def _malloc_trim():
    # The process's own symbols include its C library's (no ctypes.util.find_library: on Linux
    # it runs ldconfig in a subprocess).
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


class HeapTrimmer:
    def __init__(self, interval_seconds: float = TRIM_INTERVAL_SECONDS, now=time.monotonic):
        self._malloc_trim = _malloc_trim()
        self._interval_seconds = interval_seconds
        self._now = now
        self._next = now()
        self.trims = 0

    @property
    def available(self) -> bool:
        return self._malloc_trim is not None

    def idle(self) -> None:
        """The engine loop found nothing to do: trim, at most once per interval."""
        if self._malloc_trim is None:
            return
        now = self._now()
        if now < self._next:
            return
        self._malloc_trim(0)
        self.trims += 1
        self._next = now + self._interval_seconds
