"""Acks queued by `Batch.ack(wait=False)`, sent together by a background thread."""

from __future__ import annotations

import threading
import time
from typing import Optional, Protocol

__all__ = ["AckQueue", "AckSender"]


class AckSender(Protocol):
    """Sends acks now (the Client's `ack` and `ack_leases`)."""

    def ack(self, cursor_id: str, epoch: int, batches: list[int]) -> dict: ...

    def ack_leases(self, cursor_id: str, leases: list[int]) -> dict: ...


class AckQueue:
    """Acks queued by `Batch.ack(wait=False)`, sent by one background thread: everything
    queued while a request is out goes in the next one (per cursor and epoch). The thread
    ends after 5 idle seconds; the next `add` starts another."""

    #: Seconds the sender waits after the first queued ack so that more join its request.
    LINGER = 0.02

    def __init__(self, sender: AckSender):
        self._sender = sender
        self._condition = threading.Condition()
        self._pending: dict[tuple[str, int, bool], list[int]] = {}
        self._sending = False
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None

    def add(self, cursor: str, epoch: int, lease: Optional[int], batch: int) -> None:
        """Queues the ack of a batch (`lease` None) or of a share-mode lease; raises the
        error an earlier queued ack met, once."""
        with self._condition:
            self._raise_error()
            key = (cursor, int(epoch), lease is not None)
            self._pending.setdefault(key, []).append(int(lease) if lease is not None else int(batch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mbdata-acks", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def flush(self) -> None:
        """Waits until every queued ack is sent; raises the first error one met, once."""
        with self._condition:
            while self._pending or self._sending:
                self._condition.wait()
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending:
                    if not self._condition.wait(timeout=5.0):
                        return  # idle: the next add() starts a new thread
            time.sleep(self.LINGER)
            with self._condition:
                work, self._pending = self._pending, {}
                self._sending = True
            try:
                for (cursor, epoch, leases), items in work.items():
                    if leases:
                        self._sender.ack_leases(cursor, items)
                    else:
                        self._sender.ack(cursor, epoch, items)
            except BaseException as error:  # surfaced by the next add() or flush()
                with self._condition:
                    self._error = self._error or error
            finally:
                with self._condition:
                    self._sending = False
                    self._condition.notify_all()
