"""Decoded batches land in buffers that are reused once nothing refers to them any more.

A CIFAR-shaped batch of 256 is 790 KB. Allocating it afresh for every batch makes the
kernel fault in and zero new pages whenever the C library returns freed memory to the
system, which on the benchmark machine cost more than the decoding itself. A
`BufferPool` keeps a few buffers and hands one out again only when its reference count
says that no tensor view (numpy array, `torch.from_numpy` tensor, `Batch`) holds it:
a trainer that keeps batches simply gets new buffers, and nothing it holds is
overwritten.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["BufferPool"]

# References to a pooled buffer while `take` looks at it: the pool's list, the loop
# variable, and getrefcount's own argument.
_UNREFERENCED = 3


class BufferPool:
    """At most `capacity` reusable uint8 buffers; thread-safe."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """A writable uint8 array of exactly `size` bytes that nothing else refers to: a
        view of a free pooled buffer when one is large enough, else a new buffer (pooled
        when there is room, replacing a free buffer too small for it)."""
        with self._lock:
            too_small = None
            for index in range(len(self._buffers)):
                buffer = self._buffers[index]
                if sys.getrefcount(buffer) != _UNREFERENCED:
                    continue
                if buffer.nbytes >= size:
                    return buffer[:size]
                too_small = index
            fresh = np.empty(size, dtype=np.uint8)
            if too_small is not None:
                self._buffers[too_small] = fresh
            elif len(self._buffers) < self.capacity:
                self._buffers.append(fresh)
            return fresh[:size]

    def __len__(self) -> int:
        return len(self._buffers)
