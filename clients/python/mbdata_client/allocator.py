"""Keeps freed batch buffers in the process heap (Linux, glibc).

A decoded batch is a few large buffers (hundreds of KiB to MiB). glibc serves each one
with a fresh mmap — or trims the heap after it is freed — so every batch is decoded into
new pages that the kernel must fault in and zero: on CIFAR-shaped batches of 256 that
halved the client's throughput. Raising glibc's mmap and trim thresholds lets the next
batch reuse the memory the previous one freed. The process's heap then keeps up to
256 MiB of free memory instead of returning it to the system.

Set MBDATA_TUNE_MALLOC=0 to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_batch_buffers() -> bool:
    """Applies the thresholds once per process; False where it does not apply."""
    global _done
    if _done:
        return True
    if os.environ.get("MBDATA_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, 64 << 20)
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    _done = True
    return True
