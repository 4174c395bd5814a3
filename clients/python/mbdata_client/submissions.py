"""Submissions queued by `Batch.submit(outputs, wait=False)`, sent in order by a background
thread within a bounded window, so that the next batch is leased and computed while the
daemon commits the last one's outputs."""

from __future__ import annotations

from collections import deque
from typing import Callable

from .background import BackgroundQueue

__all__ = ["SubmissionQueue"]

Submission = tuple[Callable[[], dict], Callable[[dict], None]]


class SubmissionQueue(BackgroundQueue):
    """Each queued submission is a `send()` that returns the daemon's answer, handed to its
    `done`; one background thread sends them in the order queued, one at a time, on a
    keep-alive connection of its own beside the consumer's. `add` blocks while `window`
    submissions are queued or being sent. The submissions after one that met an error are
    still sent: each batch's outputs commit or are refused on their own."""

    def __init__(self, window: int = 0):
        super().__init__(window, "mbdata-submissions")
        self._queue: deque[Submission] = deque()

    def add(self, send: Callable[[], dict], done: Callable[[dict], None]) -> None:
        """Queues `send` (its answer goes to `done`), after waiting while the window is full;
        raises the error an earlier submission met, once."""
        self._enqueue(lambda: self._queue.append((send, done)))

    def _waiting(self) -> int:
        return len(self._queue)

    def _take(self) -> tuple[Submission, int]:
        return self._queue.popleft(), 1

    def _send(self, work: Submission) -> None:
        send, done = work
        done(send())
