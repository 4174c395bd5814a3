"""Reading a stream ahead of its consumer on a thread of its own."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

__all__ = ["ahead"]


def ahead(items: Iterator, depth: int) -> Iterator:
    """Runs `items` on a thread of its own, at most `depth` items ahead of the consumer: a
    stream's socket reads, checksums and LZ4 decoding (which release the GIL) overlap
    the training step, and a lease loop asks for the next lease while the current batch
    is computed. The next item is started only when fewer than `depth` wait, so no more
    than `depth` are held beyond the consumer's. Exceptions reach the consumer in order;
    leaving the loop stops the thread before its next item. `depth` 0 runs `items` in
    the consumer's thread."""
    if depth <= 0:
        yield from items
        return
    handoff: queue.Queue = queue.Queue()
    room = threading.Semaphore(depth)
    stopped = threading.Event()
    done = object()

    def wait_for_room() -> bool:
        while not stopped.is_set():
            if room.acquire(timeout=0.1):
                return True
        return False

    def produce() -> None:
        try:
            iterator = iter(items)
            while wait_for_room():
                try:
                    item = next(iterator)
                except StopIteration:
                    handoff.put((done, None))
                    return
                handoff.put((item, None))
        except BaseException as error:
            handoff.put((done, error))

    thread = threading.Thread(target=produce, name="mbdata-stream", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            room.release()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
