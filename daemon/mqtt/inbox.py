"""The hand-over from paho's network thread to the engine loop: a bounded deque and an Event.

queue.Queue takes its lock and notifies a condition on every put and every get, a few
microseconds per message on each side of the GIL at thousands of messages a second. Here a
put is a deque append (atomic under the GIL) that sets the Event only if it is not already set,
and the engine loop takes a whole batch in one go. No wake-up is lost: before blocking, the loop
clears the Event and then looks at the deque once more, so an item appended before the clear is
seen there and one appended after it sets the Event again.
"""
from __future__ import annotations

import threading
from collections import deque


class Inbox:
    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: deque = deque()
        self._ready = threading.Event()

    def put(self, item) -> bool:
        """Network thread. False when full (the caller counts the drop)."""
        if len(self._items) >= self.maxsize:
            return False
        self._items.append(item)
        if not self._ready.is_set():
            self._ready.set()
        return True

    def wait(self, timeout: float) -> bool:
        """Engine loop: block until something is queued (True) or timeout seconds passed."""
        if self._items:
            return True
        self._ready.clear()
        if self._items:                 # appended just before the clear
            return True
        self._ready.wait(timeout)
        return bool(self._items)

    def take(self, limit: int) -> list:
        """Engine loop: up to limit items, oldest first."""
        items, popleft = [], self._items.popleft
        for _ in range(min(limit, len(self._items))):
            items.append(popleft())
        return items

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items
