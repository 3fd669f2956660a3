"""What the engine loop reports about itself: the stats message and systemd's one-line STATUS=."""
from __future__ import annotations

import time

from statecast.daemon.engine.gaps import Totals, top_streams

STATUS_INTERVAL_SECONDS = 5.0          # STATUS= refresh (sooner if the stats interval is shorter)


def daemon_stats(daemon) -> dict:
    """The `statecast/stats` document: counters summed over every [[streams]] entry."""
    pipelines = daemon.pipelines.values()
    engines = [p.engine.counters for p in pipelines]
    rejected = dict(daemon.router.rejected)
    for counters in engines:
        for reason, count in counters.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + count
    if daemon.dropped_queue_full:
        rejected["queue_full"] = daemon.dropped_queue_full
    batches = sum(c.batches for c in engines)
    forecasts = sum(c.forecasts_out for c in engines)
    return {
        "messages_in": sum(c.messages_in for c in engines),
        "forecasts_out": forecasts,
        "rejected": rejected, "other_shard": daemon.router.other_shard,
        "shard": f"{daemon.router.shard_index}/{daemon.router.shard_count}",
        "streams_live": sum(len(p.engine.table) for p in pipelines),
        "evicted": sum(p.engine.table.evicted for p in pipelines),
        "gap_resets": sum(c.gap_resets for c in engines),
        # steps lost before they reached the engine (timestamp gaps; gaps.py), and what the
        # broker says it dropped (all clients; broker_watch.py; null: the broker does not say)
        "missing_steps": Totals.missing_steps,
        "missing_steps_by_stream": top_streams(p.engine.table for p in pipelines),
        "broker_dropped": daemon.broker_watch.dropped_since_start,
        "reload_resets": daemon.reload_resets, "reloads": daemon.reloads, "reload_failures": daemon.reload_failures,
        "batches": batches,
        "mean_batch_size": forecasts / batches if batches else 0.0,
        "mean_step_ms": 1000 * sum(c.step_seconds_total for c in engines) / batches if batches else 0.0,
        "checkpoint_errors": daemon.checkpoint_errors, "queue_depth": daemon.inbox.qsize(),
        "journal_errors": sum(p.journal_errors for p in daemon.pipelines.values()),
        "republished": daemon.republished, "acked": daemon.delivery.acked,
        "awaiting_ack": daemon.delivery.outstanding, "publish_refused": daemon.link.publish_refused,
        "connected": daemon.link.connected.is_set(), "connects": daemon.link.connects,
        "last_error": daemon.last_error or daemon.link.last_error,
    }


class StatusLine:
    """Builds `STATUS=` text: streams, messages per second since the last line, last error."""

    def __init__(self, stats_interval_seconds: float, now=time.monotonic):
        self.interval_seconds = min(STATUS_INTERVAL_SECONDS, stats_interval_seconds or STATUS_INTERVAL_SECONDS)
        self._now = now
        self._last_at = now()
        self._last_messages = 0
        self.due = self._last_at + self.interval_seconds

    def text(self, stats: dict) -> str:
        now = self._now()
        elapsed = max(now - self._last_at, 1e-9)
        rate = (stats["messages_in"] - self._last_messages) / elapsed
        self._last_at, self._last_messages = now, stats["messages_in"]
        self.due = now + self.interval_seconds
        link = "" if stats["connected"] else "broker disconnected, "
        return (f"{stats['streams_live']} streams, {rate:.1f} msg/s, {stats['messages_in']} msgs in, "
                f"shard {stats['shard']}, {link}last error: {stats['last_error'] or 'none'}")
