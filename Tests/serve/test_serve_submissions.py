"""The queue behind `batch.submit(outputs, wait=False)` alone: submissions are sent in the
order queued, at most `window` are queued or in flight, an error is raised once by the next
call while the submissions after it are still sent, and `flush` waits for every answer."""

from __future__ import annotations

import threading

import pytest

from mbdata_client.submissions import SubmissionQueue

WAIT = 10.0


class Blocked:
    """Sends that wait for `release`; records their order and the answers handed back."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.sent: list[int] = []
        self.answers: list[dict] = []

    def send(self, index: int, error: BaseException | None = None):
        def send() -> dict:
            self.started.release()
            assert self.release.wait(WAIT)
            self.sent.append(index)
            if error is not None:
                raise error
            return {"batch": index}

        return send


def test_submissions_are_sent_in_order_and_flush_waits_for_their_answers():
    queue, sends = SubmissionQueue(window=8), Blocked()
    for index in range(5):
        queue.add(sends.send(index), sends.answers.append)
    assert sends.started.acquire(timeout=WAIT)
    assert sends.answers == []
    sends.release.set()
    queue.flush()
    assert sends.sent == [0, 1, 2, 3, 4]
    assert sends.answers == [{"batch": index} for index in range(5)]


def test_add_blocks_while_the_window_is_full():
    queue, sends = SubmissionQueue(window=2), Blocked()
    queue.add(sends.send(0), sends.answers.append)
    queue.add(sends.send(1), sends.answers.append)
    assert sends.started.acquire(timeout=WAIT)  # 0 in flight, 1 queued: the window is full
    third_added = threading.Event()

    def add_third() -> None:
        queue.add(sends.send(2), sends.answers.append)
        third_added.set()

    adder = threading.Thread(target=add_third)
    adder.start()
    assert not third_added.wait(0.3), "a third submission was queued beside two unanswered ones"
    sends.release.set()
    assert third_added.wait(WAIT)
    adder.join(WAIT)
    queue.flush()
    assert sends.sent == [0, 1, 2]


def test_an_error_is_raised_once_and_the_submissions_after_it_are_still_sent():
    queue, sends = SubmissionQueue(window=4), Blocked()
    refusal = RuntimeError("refused")
    queue.add(sends.send(0, refusal), sends.answers.append)
    queue.add(sends.send(1), sends.answers.append)
    sends.release.set()
    with pytest.raises(RuntimeError) as raised:
        queue.flush()
    assert raised.value is refusal
    queue.flush()  # raised once
    queue.check()
    assert sends.sent == [0, 1] and sends.answers == [{"batch": 1}]


def test_the_error_reaches_the_next_add_and_check():
    queue, sends = SubmissionQueue(window=1), Blocked()
    sends.release.set()
    queue.add(sends.send(0, RuntimeError("refused")), sends.answers.append)
    with pytest.raises(RuntimeError):
        queue.add(sends.send(1), sends.answers.append)  # waits for 0's answer: the window is 1
    queue.add(sends.send(2), sends.answers.append)
    queue.flush()
    assert sends.sent == [0, 2]


def test_ahead_holds_at_most_depth_items_beyond_the_consumers():
    from mbdata_client.prefetch import ahead

    started = []
    lock = threading.Lock()

    def items():
        for index in range(20):
            with lock:
                started.append(index)
            yield index

    consumed = []
    for item in ahead(items(), 2):
        consumed.append(item)
        if item == 5:
            # The producer had room for two items beyond this one: it may have started 6 and 7, never 8.
            deadline = threading.Event()
            deadline.wait(0.3)
            with lock:
                assert max(started) <= 7, started
    assert consumed == list(range(20))
