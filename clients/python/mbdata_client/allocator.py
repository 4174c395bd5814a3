"""Keeps freed batch buffers in the process heap (Linux, glibc) — only when asked.

A decoded batch is a few large buffers (hundreds of KiB to MiB). glibc serves each one
with a fresh mmap — or trims the heap after it is freed — so every batch is decoded into
new pages that the kernel must fault in and zero: on CIFAR-shaped batches of 256 that
halved the client's throughput. Raising glibc's mmap and trim thresholds lets the next
batch reuse the memory the previous one freed. The process's heap then keeps up to
256 MiB of free memory instead of returning it to the system.

These are settings of the whole process — the trainer's own allocations too — so the
client leaves them alone unless told: `tune_allocator()`, `Client(..., tune_allocator=True)`,
or MBDATA_TUNE_ALLOCATOR=1 for every Client made without `tune_allocator=`.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

__all__ = ["ENVIRONMENT_VARIABLE", "requested", "tune_allocator"]

#: The environment variable that decides for a Client made without `tune_allocator=`.
ENVIRONMENT_VARIABLE = "MBDATA_TUNE_ALLOCATOR"
_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def requested(choice: Optional[bool]) -> bool:
    """Whether a Client made with `tune_allocator=choice` tunes the allocator: `choice`
    when given, else whether MBDATA_TUNE_ALLOCATOR is on (1, true, yes, on)."""
    if choice is not None:
        return bool(choice)
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"environment variable {ENVIRONMENT_VARIABLE}={value!r} is not one of {_ON + _OFF[1:]}")


def tune_allocator() -> bool:
    """Raises glibc's mmap threshold to 64 MiB and its trim threshold to 256 MiB, once per
    process, so that batch buffers are reused rather than mapped afresh; False where that
    does not apply (not Linux, or a C library without `mallopt`)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
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
