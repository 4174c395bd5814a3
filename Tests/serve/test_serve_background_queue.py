"""The queue machinery under the ack and submission queues (`BackgroundQueue`): its sender
thread is started again whenever it is gone, and a send's error reaches the consumer once."""

from __future__ import annotations

import threading

import pytest

from mbdata_client.background import BackgroundQueue


class ListQueue(BackgroundQueue):
    """Queues numbers; a send records them. `fail_before_take` makes that many sender
    threads die before taking work (an error outside the send), `fail_send` that many sends."""

    def __init__(self, window: int = 4) -> None:
        super().__init__(window, "test-queue")
        self.items: list[int] = []
        self.sent: list[int] = []
        self.fail_before_take = 0
        self.fail_send = 0

    def put(self, item: int) -> None:
        self._enqueue(lambda: self.items.append(item))

    def _waiting(self) -> int:
        return len(self.items)

    def _take(self):
        items, self.items = self.items, []
        return items, len(items)

    def _before_take(self, full: bool) -> None:
        if self.fail_before_take:
            self.fail_before_take -= 1
            raise RuntimeError("the sender thread dies here")

    def _send(self, work) -> None:
        if self.fail_send:
            self.fail_send -= 1
            raise OSError("send failed")
        self.sent.extend(work)


def flush_within(queue: BackgroundQueue, seconds: float) -> bool:
    """Whether `queue.flush()` returned within `seconds` (it waits forever for a lost sender)."""
    done = threading.Event()

    def flush() -> None:
        queue.flush()
        done.set()

    threading.Thread(target=flush, daemon=True).start()
    return done.wait(seconds)


def test_a_sender_thread_that_died_is_started_again_by_the_next_item(monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the planted death is expected
    queue = ListQueue()
    queue.fail_before_take = 1
    queue.put(1)
    dead = queue._thread
    dead.join(5)
    assert not dead.is_alive()
    queue.put(2)
    assert queue._thread is not dead
    assert flush_within(queue, 5), "the queued items were never sent"
    assert queue.sent == [1, 2]


def test_a_failed_send_is_raised_once_and_the_queue_goes_on():
    queue = ListQueue()
    queue.fail_send = 1
    queue.put(1)
    with pytest.raises(OSError, match="send failed"):
        queue.flush()
    queue.check()  # raised once only
    queue.put(2)
    queue.flush()
    assert queue.sent == [2]


def test_the_window_bounds_what_is_queued_or_being_sent():
    gate = threading.Event()
    queue = ListQueue(window=2)
    seen: list[int] = []
    send = queue._send

    def slow_send(work) -> None:
        seen.append(queue._waiting() + queue._in_flight)
        gate.wait(5)
        send(work)

    queue._send = slow_send
    for item in range(2):
        queue.put(item)
    third = threading.Thread(target=queue.put, args=(2,), daemon=True)
    third.start()
    third.join(0.3)
    assert third.is_alive(), "a third item was queued past a window of 2"
    gate.set()
    third.join(5)
    assert not third.is_alive()
    queue.flush()
    assert queue.sent == [0, 1, 2]
    assert max(seen) <= 2
