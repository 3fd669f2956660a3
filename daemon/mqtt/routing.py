"""From an incoming MQTT message to a validated engine Message (runs on the network thread).

Only typed, validated readings get past here; every rejection has a counted reason and a
one-line warning naming the topic. Nothing here touches stream state.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from statecast.daemon.messages import Message
from .payload import PayloadError, decode_payload
from .topics import sanitize_stream_id, stream_id_from_topic

log = logging.getLogger("statecast.routing")


def shard_of(stream_id: str, shard_count: int) -> int:
    """Stable across processes and machines (unlike hash()), so every daemon agrees."""
    return zlib.crc32(stream_id.encode("utf-8")) % shard_count


def match_filter(subscription: str) -> str:
    """The filter topics are matched against: a shared subscription `$share/group/f` matches `f`."""
    if subscription.startswith("$share/"):
        return subscription.split("/", 2)[2]
    return subscription


@dataclass
class Route:
    name: str                 # the [[streams]] entry
    topic_filter: str
    wildcard_index: int
    payload_format: str
    fields: tuple[str, ...]


class Router:
    # Topics seen before skip filter matching and id sanitising (two paho matcher walks and a
    # regex per message; docs/performance-history.md). Bounded: cleared when it reaches this size.
    CACHE_SIZE = 100_000

    def __init__(self, routes: list[Route], max_payload_bytes: int, shard_index: int = 0, shard_count: int = 1):
        self.routes = routes
        self.max_payload_bytes = max_payload_bytes
        self.shard_index, self.shard_count = shard_index, shard_count
        self.rejected: Counter = Counter()
        self.warnings = RejectionLog()            # rate-limited warning lines
        self.other_shard = 0

    @property
    def routes(self) -> list[Route]:
        return self._routes

    @routes.setter
    def routes(self, routes: list[Route]) -> None:       # a reload may change the filters
        self._routes = routes
        # topic -> stream id, one dict per route in route order (a topic is cached under the first
        # route it matches): a (route, id) tuple per topic would cost 64 bytes per stream.
        self._ids_by_route: list[dict[str, str]] = [{} for _ in routes]

    def _resolve(self, topic: str) -> tuple[Route, str] | str:
        """(route, stream id) for a topic, or the rejection reason."""
        for route, ids in zip(self._routes, self._ids_by_route):
            stream_id = ids.get(topic)
            if stream_id is not None:
                return route, stream_id
        for index, route in enumerate(self._routes):
            pattern = match_filter(route.topic_filter)
            if topic_matches_sub(pattern, topic):
                break
        else:
            return "topic_not_matched"
        raw_id = stream_id_from_topic(pattern, topic, route.wildcard_index)
        stream_id = sanitize_stream_id(raw_id) if raw_id is not None else None
        if stream_id is None:
            return "bad_stream_id"
        if sum(map(len, self._ids_by_route)) >= self.CACHE_SIZE:
            for ids in self._ids_by_route:
                ids.clear()
        self._ids_by_route[index][topic] = stream_id
        return route, stream_id

    def route(self, topic: str, payload: bytes, token=None) -> tuple[Route, Message] | None:
        """token: what acknowledges this input later ((mid, qos) under manual acknowledgement)."""
        resolved = self._resolve(topic)
        if resolved == "topic_not_matched":
            return self._reject(resolved, topic, "matches no configured stream filter")
        if resolved == "bad_stream_id":
            return self._reject(resolved, topic, "no usable stream id in topic")
        route, stream_id = resolved
        if self.shard_count > 1 and shard_of(stream_id, self.shard_count) != self.shard_index:
            self.other_shard += 1                   # another daemon's stream: not an error
            return None
        try:
            reading = decode_payload(payload, route.payload_format, route.fields, self.max_payload_bytes)
        except PayloadError as error:
            return self._reject(error.reason, topic, str(error))
        return route, Message(stream_id, reading.values, reading.ts, time.time(), token)

    def _reject(self, reason: str, topic: str, detail: str) -> None:
        self.rejected[reason] += 1
        self.warnings.warn(topic, detail, reason)
        return None


class RejectionLog:
    """One warning per topic per WARN_INTERVAL_SECONDS; the next one says how many were held back.
    A sensor sending garbage ten times a second must not bury the rest of the log. Bounded: the
    topics' table is cleared when it reaches MAX_TOPICS (they then warn once more at most)."""
    WARN_INTERVAL_SECONDS = 60.0
    MAX_TOPICS = 10_000

    def __init__(self, now=time.monotonic):
        self._now = now
        self._topics: dict[str, list] = {}          # topic -> [last warning time, held back since]

    def warn(self, topic: str, detail: str, reason: str) -> None:
        now = self._now()
        entry = self._topics.get(topic)
        if entry is not None and now - entry[0] < self.WARN_INTERVAL_SECONDS:
            entry[1] += 1
            return
        held = entry[1] if entry is not None else 0
        if len(self._topics) >= self.MAX_TOPICS:
            self._topics.clear()
        self._topics[topic] = [now, 0]
        more = (f"; {held} more dropped on this topic in the last {now - entry[0]:.0f} s (counts: stats.rejected)"
                if held else "")
        log.warning("dropped message on %r: %s (%s)%s", topic[:200], detail, reason, more)
