"""The network thread -> engine loop hand-over (daemon/mqtt/inbox.py): nothing lost, order kept, bounded."""
import threading
import time

from statecast.daemon.mqtt.inbox import Inbox


def test_every_item_arrives_once_in_order_across_threads():
    # A producer that sometimes pauses (so the consumer really blocks in wait) and sometimes
    # floods. A lost wake-up leaves the consumer in wait until its 5 s timeout although items
    # are queued: the producer never pauses for more than 10 ms, so any wait of 2 s or longer
    # is one. A lost or repeated item fails the equality.
    inbox, count, received, longest_wait = Inbox(maxsize=1_000_000), 50_000, [], 0.0

    def produce():
        for i in range(count):
            assert inbox.put(i)
            if i % 5_000 == 0:
                time.sleep(0.01)

    producer = threading.Thread(target=produce)
    started = time.monotonic()
    producer.start()
    while len(received) < count and time.monotonic() - started < 60:
        waited = time.monotonic()
        if inbox.wait(5.0):
            received.extend(inbox.take(256))
        longest_wait = max(longest_wait, time.monotonic() - waited)
    producer.join()
    assert longest_wait < 2.0, f"a wake-up was lost: wait blocked {longest_wait:.1f} s with items queued"
    assert received == list(range(count))
    assert inbox.empty() and not inbox.wait(0.0)


def test_full_inbox_refuses_and_take_respects_the_limit():
    inbox = Inbox(maxsize=3)
    assert [inbox.put(i) for i in range(5)] == [True, True, True, False, False]
    assert inbox.qsize() == 3
    assert inbox.take(2) == [0, 1]
    assert inbox.put(9)
    assert inbox.take(10) == [2, 9]


def test_wait_times_out_when_nothing_comes():
    inbox = Inbox(maxsize=10)
    started = time.monotonic()
    assert inbox.wait(0.05) is False
    assert time.monotonic() - started >= 0.04     # it blocked, rather than spinning
