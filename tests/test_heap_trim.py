"""heap_trim: an idle engine loop hands a burst's freed heap pages back to the kernel."""
import pytest

from statecast.daemon.service.heap_trim import HeapTrimmer

FREED_MB = 64


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_idle_trim_returns_freed_heap_pages():
    trimmer = HeapTrimmer(interval_seconds=3600.0)
    if not trimmer.available:
        pytest.skip("this C library has no malloc_trim")
    # 1,000-byte objects come from malloc's heap, not from mmap; one kept past them pins the heap's
    # top, so free() alone cannot give their pages back: the burst's high-water mark stays resident.
    burst = [bytes(1000) + bytes([i % 256]) for i in range(FREED_MB * 1024)]
    pin = bytes(1000) + b"pin"
    del burst
    before = rss_mb()
    trimmer.idle()
    after = rss_mb()
    # At least half of what was freed: the other half covers pages still shared with live objects.
    assert before - after >= FREED_MB / 2, (before, after)
    assert trimmer.trims == 1
    assert pin.endswith(b"pin")


def test_at_most_one_trim_per_interval():
    clock = [100.0]
    trimmer = HeapTrimmer(interval_seconds=1.0, now=lambda: clock[0])
    if not trimmer.available:
        pytest.skip("this C library has no malloc_trim")
    trimmer.idle()
    clock[0] += 0.5
    trimmer.idle()
    assert trimmer.trims == 1
    clock[0] += 0.6
    trimmer.idle()
    assert trimmer.trims == 2
