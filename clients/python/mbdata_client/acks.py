"""Acks queued by `Batch.ack()`, sent together by a background thread within a bounded
window."""

from __future__ import annotations

import threading
from typing import Optional, Protocol

from .background import BackgroundQueue
from .errors import MBDataError

__all__ = ["AckQueue", "AckSender"]


class AckSender(Protocol):
    """Sends acks now (the Client's `ack` and `ack_leases`)."""

    def ack(self, cursor_id: str, epoch: int, batches: list[int]) -> dict: ...

    def ack_leases(self, cursor_id: str, leases: list[int]) -> dict: ...


class AckQueue(BackgroundQueue):
    """Acks queued by `Batch.ack()`, sent by one background thread: everything queued while
    a request is out goes in the next one (per cursor and epoch). `add` blocks while
    `window` acks are queued or being sent, so a trainer is never more than `window` acks
    ahead of the daemon."""

    #: Seconds the sender waits after the first queued ack so that more join its request;
    #: it stops waiting once half the window is queued, so that the other half can fill
    #: while the request is out. A fast consumer otherwise queued most of the window in
    #: the linger and then blocked until the daemon answered (22 times an epoch, 16% of a
    #: CIFAR epoch read locally, cProfile). A flush does not wait for it: the end of every
    #: stream flushes, and waiting out the linger there cost ~20 ms an epoch (10% of a
    #: 200k-sample CIFAR epoch read locally).
    LINGER = 0.02

    def __init__(self, sender: AckSender, window: int = 256):
        super().__init__(window, "mbdata-acks")
        self._sender = sender
        self._pending: dict[tuple[str, int, bool], list[int]] = {}
        self._count = 0  # acks in _pending
        self._send_now = threading.Event()  # set once _pending holds half the window, or by a flush

    def add(self, cursor: str, epoch: int, lease: Optional[int], batch: int) -> None:
        """Queues the ack of a batch (`lease` None) or of a share-mode lease, after waiting
        while the window is full; raises the error an earlier queued ack met, once."""

        def put() -> None:
            key = (cursor, int(epoch), lease is not None)
            self._pending.setdefault(key, []).append(int(lease) if lease is not None else int(batch))
            self._count += 1
            if self._count * 2 >= self.window:
                self._send_now.set()

        self._enqueue(put)

    def _waiting(self) -> int:
        return self._count

    def _before_take(self, full: bool) -> None:
        if not full:
            self._send_now.wait(self.LINGER)

    def _hurry(self) -> None:
        self._send_now.set()

    def _take(self) -> tuple[dict[tuple[str, int, bool], list[int]], int]:
        work, count, self._pending, self._count = self._pending, self._count, {}, 0
        self._send_now.clear()
        return work, count

    def _send(self, work: dict[tuple[str, int, bool], list[int]]) -> None:
        for (cursor, epoch, leases), items in work.items():
            if leases:
                self._ack_leases(cursor, items)
            else:
                self._sender.ack(cursor, epoch, items)

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
