"""Missing steps: a stream whose readings stop arriving at their usual interval lost some.

Each stream learns its interval from its own payload timestamps (readings without a `ts` use the
receive time, whose jitter says nothing about loss, and are not judged). An interval of at least
GAP_FACTOR learned intervals counts round(gap / interval) - 1 missing steps. The count goes to
the stream's GapLog (StreamInfo.gap_log), to this process's total (`stats.missing_steps`) and to
the log: the first gap of a stream is logged at once, later ones at most once per
LOG_INTERVAL_SECONDS per stream, with what was counted in between. A broker that drops
messages, a sensor that skips readings and a publisher that outran its broker all show up here,
on the step that follows the hole.
"""
from __future__ import annotations

import logging
import time

from statecast.daemon.timestamps import iso_time

log = logging.getLogger("statecast.gaps")

GAP_FACTOR = 1.75             # an interval this many learned intervals long has a step missing
                              # (one lost step doubles it; +-30% timing jitter stays below)
LEARNING_RATE = 0.1           # how fast the learned interval follows a slowly drifting cadence
                              # (a running mean over the first 1 / LEARNING_RATE intervals)
LOG_INTERVAL_SECONDS = 60.0   # at most one missing-steps line per stream per minute


class Totals:
    """Missing steps seen by this process (survives stream eviction and reloads)."""
    missing_steps = 0
    streams_with_gaps = 0


# Regular intervals counted (beyond it the learning rate is LEARNING_RATE anyway).
INTERVALS_CAP = round(1 / LEARNING_RATE)


class GapLog:
    """A stream's missing steps and their log lines, from its first gap on (most streams have none)."""
    __slots__ = ("missing_steps", "unlogged", "logged_at", "last_gap_ts")

    def __init__(self):
        self.missing_steps = 0
        self.unlogged = 0            # missing steps counted since the last log line
        self.logged_at = None        # monotonic time of the last log line (None: never logged)
        self.last_gap_ts = None      # epoch s of the step after the latest hole


def _learn(info, interval_seconds: float) -> int:
    """One new interval (s, > 0) of a stream with a learned interval -> how many steps it skipped
    (0 for a regular one); a regular or faster interval updates what is learned."""
    learned = info.learned_interval
    if interval_seconds >= GAP_FACTOR * learned:
        return max(int(round(interval_seconds / learned)) - 1, 1)
    if interval_seconds < learned / GAP_FACTOR:
        info.learned_interval = interval_seconds         # a faster cadence (or a first interval that was a gap)
        info.intervals = 1
    else:
        intervals = min(info.intervals + 1, INTERVALS_CAP)
        info.intervals = intervals
        rate = max(LEARNING_RATE, 1.0 / intervals)
        info.learned_interval = learned + rate * (interval_seconds - learned)
    return 0


def observe_step(info, ts: float, has_own_ts: bool, now: float | None = None) -> int:
    """Called for every admitted step with an earlier one (engine._admit, before last_interval is
    updated): learns the stream's interval and counts, logs and totals missing steps."""
    interval = ts - info.last_ts
    if not has_own_ts or interval <= 0:
        return 0
    if info.learned_interval is None:
        # a stream restored from a checkpoint starts from its last known interval
        info.learned_interval, info.intervals = info.last_interval or interval, 1
        if info.last_interval is None:
            return 0
    missing = _learn(info, interval)
    if missing:
        _count(info, missing, ts, interval, time.monotonic() if now is None else now)
    return missing


def _count(info, missing: int, ts: float, interval: float, now: float) -> None:
    if info.gap_log is None:
        info.gap_log = GapLog()
        Totals.streams_with_gaps += 1
    gaps = info.gap_log
    gaps.missing_steps += missing
    gaps.unlogged += missing
    gaps.last_gap_ts = ts
    Totals.missing_steps += missing
    if gaps.logged_at is not None and now - gaps.logged_at < LOG_INTERVAL_SECONDS:
        _held[info.stream_id] = info              # flush_held() reports it when the minute is up
        return
    since = "" if gaps.logged_at is None else f" ({gaps.unlogged} since the last line)"
    log.warning("stream %s: %d step(s) missing before %s (a %.0f s gap; its interval is %.0f s); "
                "%d missing in total%s", info.stream_id, missing, iso_time(ts), interval,
                info.learned_interval, gaps.missing_steps, since)
    gaps.logged_at, gaps.unlogged = now, 0
    _held.pop(info.stream_id, None)


_held: dict = {}              # stream id -> StreamInfo with missing steps not logged yet


def flush_held(now: float | None = None, force: bool = False) -> None:
    """Engine loop, every turn (and with force at shutdown): log what the per-minute limit held
    back, for each stream whose minute is up, so a hole is never left out of the log."""
    if not _held:
        return
    now = time.monotonic() if now is None else now
    for stream_id, info in list(_held.items()):
        gaps = info.gap_log
        if not force and now - gaps.logged_at < LOG_INTERVAL_SECONDS:
            continue
        log.warning("stream %s: %d more step(s) missing since the last line, the latest before %s; %d missing "
                    "in total", stream_id, gaps.unlogged, iso_time(gaps.last_gap_ts), gaps.missing_steps)
        gaps.logged_at, gaps.unlogged = now, 0
        del _held[stream_id]


def top_streams(tables, limit: int = 10) -> dict[str, int]:
    """The live streams with the most missing steps: {stream id: count}, largest first."""
    if not Totals.streams_with_gaps:              # the common case costs no walk over the tables
        return {}
    counts = [(info.gap_log.missing_steps, info.stream_id) for table in tables
              for info in table.streams.values() if info.gap_log is not None]
    counts.sort(reverse=True)
    return {stream_id: count for count, stream_id in counts[:limit]}


def learned_interval(info) -> float | None:
    """The stream's learned interval (s), else its last one; None before its second message."""
    learned = info.learned_interval
    return learned if learned is not None else info.last_interval
