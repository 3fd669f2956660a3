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

from .engine import Message
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
    def __init__(self, routes: list[Route], max_payload_bytes: int, shard_index: int = 0, shard_count: int = 1):
        self.routes = routes
        self.max_payload_bytes = max_payload_bytes
        self.shard_index, self.shard_count = shard_index, shard_count
        self.rejected: Counter = Counter()
        self.other_shard = 0

    def route(self, topic: str, payload: bytes, token=None) -> tuple[Route, Message] | None:
        """token: what acknowledges this input later ((mid, qos) under manual acknowledgement)."""
        for route in self.routes:
            pattern = match_filter(route.topic_filter)
            if topic_matches_sub(pattern, topic):
                break
        else:
            return self._reject("topic_not_matched", topic, "matches no configured stream filter")
        raw_id = stream_id_from_topic(pattern, topic, route.wildcard_index)
        stream_id = sanitize_stream_id(raw_id) if raw_id is not None else None
        if stream_id is None:
            return self._reject("bad_stream_id", topic, "no usable stream id in topic")
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
        log.warning("dropped message on %r: %s (%s)", topic[:200], detail, reason)
        return None
