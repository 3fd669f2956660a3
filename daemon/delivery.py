"""Acknowledge QoS 1/2 inputs only once what they caused is safe.

The order per engine batch: step -> journal append (durable) -> publish forecasts and alerts ->
when the broker has acknowledged every QoS > 0 publish of the batch, acknowledge the batch's
inputs. A crash anywhere before the input acknowledgement makes the broker redeliver the input;
the journal replay has already restored its step, and the recovered forecast is published again.
So nothing is lost and nothing is stepped twice; the one thing that can happen twice is a
forecast whose PUBACK and input acknowledgement were both still in flight at the crash
(at-least-once delivery, with identical duplicates that carry the same stream, ts and step).
"""
from __future__ import annotations

from collections import deque


def acknowledged(info) -> bool:
    """Has the broker acknowledged this publish? paho's is_published() raises for a message that
    was queued while disconnected (rc NO_CONN) even after it went out and was acknowledged on
    reconnect, so read the flag paho sets on PUBACK; a message paho refused (queue full) never
    will be, and does not hold up the inputs behind it."""
    try:
        return info.is_published()
    except ValueError:                          # MQTT_ERR_QUEUE_SIZE: dropped, counted by the link
        return True
    except RuntimeError:                        # MQTT_ERR_NO_CONN: queued, sent after reconnect
        return bool(getattr(info, "_published", False))


class Delivery:
    def __init__(self, ack):
        self._ack = ack                        # callable(mid, qos): sends PUBACK/PUBREC for an input
        self._waiting: deque = deque()         # (publish infos, input tokens) in batch order
        self.acked = 0

    def settle(self, publishes: list, tokens: list, on_settled=None) -> None:
        """One engine batch: its QoS > 0 publishes (paho MQTTMessageInfo), its inputs' tokens, and
        what to call once the broker has acknowledged the publishes (journal's settled marker)."""
        tokens = [t for t in tokens if t is not None]
        if not tokens and on_settled is None:
            return
        self._waiting.append((publishes, tokens, on_settled))
        self.poll()

    def poll(self) -> None:
        """Acknowledge, in order, every batch whose publishes the broker has acknowledged."""
        while self._waiting and all(acknowledged(info) for info in self._waiting[0][0]):
            _, tokens, on_settled = self._waiting.popleft()
            if on_settled is not None:
                on_settled()
            for mid, qos in tokens:
                self._ack(mid, qos)
            self.acked += len(tokens)

    @property
    def outstanding(self) -> int:
        return len(self._waiting)
