"""Reading a stream ahead of its consumer on a thread of its own."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

__all__ = ["ahead"]


def ahead(items: Iterator, depth: int) -> Iterator:
    """Runs `items` on a thread of its own, up to `depth` items ahead of the consumer: a
    stream's socket reads, checksums and LZ4 decoding (which release the GIL) overlap
    the training step. Exceptions reach the consumer in order; leaving the loop stops
    the thread at its next item. `depth` 0 runs `items` in the consumer's thread."""
    if depth <= 0:
        yield from items
        return
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()
    done = object()

    def offer(entry: tuple) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((done, None))
        except BaseException as error:
            offer((done, error))

    thread = threading.Thread(target=produce, name="mbdata-stream", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stopped.set()
