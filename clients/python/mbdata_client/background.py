"""The machinery shared by the ack and submission queues: work queued by the consumer's
thread, sent by one background thread, within a bounded window, with the first error kept
for the consumer's next call."""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

__all__ = ["BackgroundQueue"]


class BackgroundQueue:
    """A queue drained by one background thread. Subclasses say how many items are queued
    (`_waiting`), take them for one send (`_take`, under the lock) and send them (`_send`,
    outside it). `_enqueue` blocks while `window` items are queued or being sent. An error
    a send met is raised, once, by the next `_enqueue`, `check` or `flush`. The thread
    ends after 5 idle seconds; the next `_enqueue` starts another (also in a forked child,
    where the parent's thread does not run)."""

    def __init__(self, window: int, thread_name: str):
        self.window = window
        self._thread_name = thread_name
        self._condition = threading.Condition()
        self._in_flight = 0  # items taken by the send under way
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._thread_pid = 0  # the process that started _thread

    def _waiting(self) -> int:
        """Items queued and not yet taken (called under the lock)."""
        raise NotImplementedError

    def _take(self) -> tuple[Any, int]:
        """(the work of one send, how many items it holds), removed from the queue (called
        under the lock)."""
        raise NotImplementedError

    def _send(self, work: Any) -> None:
        """Sends `work` (called outside the lock, on the background thread)."""
        raise NotImplementedError

    def _before_take(self, full: bool) -> None:
        """Called outside the lock once work is waiting, before it is taken; `full` says
        the window is full."""

    def _hurry(self) -> None:
        """Called when a caller waits for everything queued (`flush`): a sender that waits
        for more work before sending (`_before_take`) should send now."""

    def _enqueue(self, put) -> None:
        """Calls `put()` under the lock once the window has room; raises the error an
        earlier send met, once."""
        with self._condition:
            self._raise_error()
            while self._waiting() + self._in_flight >= max(1, self.window) and self._error is None:
                self._condition.wait()
            self._raise_error()
            idle = not self._waiting()
            put()
            # None yet, idled out, died of an error outside its send, or a forked child's.
            if self._thread is None or self._thread_pid != os.getpid() or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
                self._thread_pid = os.getpid()
                self._thread.start()
            elif idle:  # only a thread waiting for work waits for this
                self._condition.notify_all()

    def flush(self) -> None:
        """Waits until everything queued is sent; raises the first error a send met, once."""
        with self._condition:
            while self._waiting() or self._in_flight:
                self._hurry()
                self._condition.wait()
            self._raise_error()

    def check(self) -> None:
        """Raises the error a send met, once; does not wait."""
        if self._error is None:  # called for every batch: no lock while nothing failed
            return
        with self._condition:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._waiting():
                    if not self._condition.wait(timeout=5.0) and not self._waiting():
                        # Idle. Cleared under the lock, so that an _enqueue() never counts
                        # on a thread that is on its way out.
                        self._thread = None
                        return
                full = self._waiting() + self._in_flight >= self.window
            self._before_take(full)
            with self._condition:
                work, count = self._take()
                self._in_flight = count
            try:
                self._send(work)
            except BaseException as error:  # surfaced by the next _enqueue(), check() or flush()
                with self._condition:
                    self._error = self._error or error
            finally:
                with self._condition:
                    self._in_flight = 0
                    self._condition.notify_all()
