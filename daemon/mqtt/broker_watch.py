"""The broker's own count of messages it dropped ($SYS), where it publishes one.

mosquitto (2.0.11 here) publishes `$SYS/broker/publish/messages/dropped` every `sys_interval`
seconds (10 by default): messages it threw away because a client's queue was full
(max_queued_messages) or, for QoS 0, because the client was offline. It counts every client, not
only this daemon, so a rise is a warning with advice, and the daemon's own evidence of loss is the
missing-step count (gaps.py). Brokers without the topic (or an ACL that refuses it) are simply not
watched: nothing arrives, `broker_dropped` stays null.
"""
from __future__ import annotations

import logging

log = logging.getLogger("statecast.broker")

DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"


class BrokerWatch:
    def __init__(self, link):
        self.link = link
        self.first: int | None = None              # the counter when this daemon first saw it
        self.last: int | None = None
        self._subscribed_on = 0                    # link.connects when we last subscribed

    @property
    def dropped_since_start(self) -> int | None:
        return None if self.first is None else self.last - self.first

    def poll(self) -> None:
        """Engine loop, every turn: (re)subscribe after each new connection (QoS 0, not part of
        the link's own subscriptions, so a broker refusing it cannot hold up READY=1)."""
        connects = self.link.connects
        if connects != self._subscribed_on and self.link.connected.is_set():
            self._subscribed_on = connects
            self.link.client.subscribe(DROPPED_TOPIC, qos=0)

    def handles(self, topic: str) -> bool:
        return topic == DROPPED_TOPIC

    def on_message(self, payload: bytes) -> None:
        """Network thread: one counter value (an integer as text)."""
        try:
            value = int(payload.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return
        if self.first is None or (self.last is not None and value < self.last):   # first value, or broker restarted
            self.first = value - (self.dropped_since_start or 0)
            self.last = value
            return
        if value > self.last:
            log.warning("the broker dropped %d message(s) since its last report (%d since this daemon started; "
                        "all clients, %s): a subscriber fell behind by more than its queue holds, or was offline "
                        "for QoS 0. Raise mosquitto's max_queued_messages (the README walk-through's "
                        "mosquitto.conf) or slow the publisher (statecast replay --rate)",
                        value - self.last, value - self.first, DROPPED_TOPIC)
        self.last = value
