"""Acks queued by `Batch.ack()`, sent together by a background thread within a bounded
window."""

from __future__ import annotations

import threading
import time
from typing import Optional, Protocol

from .errors import MBDataError

__all__ = ["AckQueue", "AckSender"]


class AckSender(Protocol):
    """Sends acks now (the Client's `ack` and `ack_leases`)."""

    def ack(self, cursor_id: str, epoch: int, batches: list[int]) -> dict: ...

    def ack_leases(self, cursor_id: str, leases: list[int]) -> dict: ...


class AckQueue:
    """Acks queued by `Batch.ack()`, sent by one background thread: everything queued while
    a request is out goes in the next one (per cursor and epoch). `add` blocks while
    `window` acks are queued or being sent, so a trainer is never more than `window` acks
    ahead of the daemon. The thread ends after 5 idle seconds; the next `add` starts
    another."""

    #: Seconds the sender waits after the first queued ack so that more join its request.
    LINGER = 0.02

    def __init__(self, sender: AckSender, window: int = 64):
        self._sender = sender
        self.window = window
        self._condition = threading.Condition()
        self._pending: dict[tuple[str, int, bool], list[int]] = {}
        self._queued = 0  # acks pending or in the request being sent
        self._sending = False
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None

    def add(self, cursor: str, epoch: int, lease: Optional[int], batch: int) -> None:
        """Queues the ack of a batch (`lease` None) or of a share-mode lease, after waiting
        while the window is full; raises the error an earlier queued ack met, once."""
        with self._condition:
            self._raise_error()
            while self._queued >= max(1, self.window) and self._error is None:
                self._condition.wait()
            self._raise_error()
            key = (cursor, int(epoch), lease is not None)
            self._pending.setdefault(key, []).append(int(lease) if lease is not None else int(batch))
            self._queued += 1
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

    def check(self) -> None:
        """Raises the error a queued ack met, once; does not wait."""
        with self._condition:
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
                full = self._queued >= self.window
            if not full:
                time.sleep(self.LINGER)
            with self._condition:
                work, self._pending = self._pending, {}
                sent = sum(len(items) for items in work.values())
                self._sending = True
            try:
                for (cursor, epoch, leases), items in work.items():
                    if leases:
                        self._ack_leases(cursor, items)
                    else:
                        self._sender.ack(cursor, epoch, items)
            except BaseException as error:  # surfaced by the next add(), check() or flush()
                with self._condition:
                    self._error = self._error or error
            finally:
                with self._condition:
                    self._sending = False
                    self._queued -= sent
                    self._condition.notify_all()

    def _ack_leases(self, cursor: str, leases: list[int]) -> None:
        """Acks share-mode leases together; when the daemon refuses the request because one
        expired (it then acks none of them), acks each alone, so that only the expired
        ones' batches go back to the group, and raises the first refusal."""
        try:
            self._sender.ack_leases(cursor, leases)
            return
        except MBDataError as error:
            if error.code != "lease_expired" or len(leases) == 1:
                raise
        refusal: Optional[MBDataError] = None
        for lease in leases:
            try:
                self._sender.ack_leases(cursor, [lease])
            except MBDataError as error:
                if error.code != "lease_expired":
                    raise
                refusal = refusal or error
        if refusal is not None:
            raise refusal
