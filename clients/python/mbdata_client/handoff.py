"""Handing a DataLoader worker's batches to the training process without copying them.

A DataLoader worker's items reach the training process through a pipe. A torch tensor
crosses it by moving its storage into a new shared-memory segment (a copy) and passing
that segment's descriptor through a helper connection, once per tensor; a numpy array is
pickled by value. On CIFAR batches that capped 2 and 4 workers at a quarter of the
throughput of none. Here a worker decodes each batch straight into a segment of its own
(`SegmentPool`, memfd-backed) and an item (`HandoffItem`) pickles as that segment's
address — worker pid, descriptor, tensor layout — which the training process maps
(`/proc/<pid>/fd/<fd>`, the worker stays alive until its items are consumed) into torch
tensors over the same pages.

A segment is reused only when nothing refers to it on either side: in the worker, its
reference count (as `buffers.BufferPool`); in the training process, an "in use" word at
the segment's start, set when an item is pickled and cleared when the last tensor mapped
from it is freed (a `weakref.finalize` on the array the tensors view). A trainer that
keeps items therefore makes the worker allocate new segments, never overwrite them.

Linux only (memfd and /proc); `supported()` says whether this process can use it, and the
adapter pickles plain tensors otherwise.
"""

from __future__ import annotations

import itertools
import math
import mmap
import os
import sys
import threading
import weakref
from collections import OrderedDict
from typing import Any, Optional

import numpy as np

__all__ = ["HandoffItem", "SegmentPool", "supported"]

#: Bytes before a segment's data: the "in use" word, padded to a cache line.
_HEADER = 64
#: Segments are sized in multiples of this, so that a batch a little larger than the one
#: before (a variable-length field) still fits.
_GRANULE = 1 << 16
#: Segments the training process keeps mapped after their items are freed, so that a
#: worker's reused segment is not mapped (and its pages faulted in) again for every batch:
#: at most this many, of at most `_MAPPED_BYTES_KEPT` together (the newest always), and
#: none of a worker that has exited (a kept mapping keeps the segment's memory alive).
_MAPPINGS_KEPT = 16
_MAPPED_BYTES_KEPT = 256 << 20
# References to a segment's data array while `take` looks at it: the segment's own and
# getrefcount's argument.
_UNREFERENCED = 2


def supported() -> bool:
    """Whether segments can be made and mapped by another process of the same user."""
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd") and os.environ.get("MBDATA_WORKER_SHM", "1") != "0"


class _Segment:
    """One memfd-backed shared mapping: an "in use" word, then the data. `key` names it
    for the training process's mapping cache (unique: a pid can be reused)."""

    _serials = itertools.count()

    def __init__(self, size: int):
        self.key = (os.getpid(), os.urandom(8), next(self._serials))
        self.capacity = -(-size // _GRANULE) * _GRANULE
        self.fd = os.memfd_create("mbdata-batch", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, _HEADER + self.capacity)
        self.map = mmap.mmap(self.fd, _HEADER + self.capacity)
        self.in_use = np.frombuffer(self.map, dtype=np.uint64, count=1)
        self.data = np.frombuffer(self.map, dtype=np.uint8, offset=_HEADER)
        self.address = self.data.ctypes.data

    def close(self) -> None:
        """Unmaps and closes the segment; only once nothing views its data."""
        del self.in_use, self.data
        self.map.close()
        os.close(self.fd)


class SegmentPool:
    """Decoded-batch buffers in shared memory, for a client in a DataLoader worker (it
    stands in for the client's `BufferPool`: same `take`); thread-safe."""

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """A writable uint8 array of `size` bytes in a segment no one refers to."""
        with self._lock:
            for index, segment in enumerate(self._segments):
                if segment.in_use[0] or sys.getrefcount(segment.data) != _UNREFERENCED:
                    continue
                if segment.capacity >= size:
                    return segment.data[:size]
                segment.close()
                self._segments[index] = _Segment(size)
                return self._segments[index].data[:size]
            self._segments.append(_Segment(size))
            return self._segments[-1].data[:size]

    def _segment_of(self, array: np.ndarray) -> Optional[_Segment]:
        """The segment `array` lies in (a view of a `take` result), or None."""
        with self._lock:
            for segment in self._segments:
                if array.base is segment.data:
                    return segment
        return None

    def item(self, arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> dict[str, Any]:
        """An item of `arrays` as torch tensors (`torch.from_numpy` views) plus `extra`
        (picklable values such as provenance) that crosses to another process as its
        segment's address when every array views one `take` result (a plain dict of the
        same otherwise)."""
        import torch

        tensors = {name: torch.from_numpy(array) for name, array in arrays.items()}
        segments = {id(segment): segment for segment in map(self._segment_of, arrays.values())}
        if len(segments) != 1 or None in segments.values() or not all(a.flags.c_contiguous for a in arrays.values()):
            return {**tensors, **extra}
        (segment,) = segments.values()
        layout = [(name, a.dtype.str, a.shape, a.ctypes.data - segment.address, a.nbytes) for name, a in arrays.items()]
        return HandoffItem({**tensors, **extra}, (os.getpid(), segment, layout, sorted(extra)))


class HandoffItem(dict):
    """A dict of torch tensors in a worker's segment (plus picklable extras) that pickles
    as the segment's address; unpickled, a plain dict of tensors over the mapped pages."""

    def __init__(self, values: dict, handoff: Any = None):
        super().__init__(values)
        self._handoff = handoff

    def __copy__(self) -> "HandoffItem":
        # DataLoader's default_convert copies mappings: the copy must hand off the same way.
        return HandoffItem(self, self._handoff)

    def __reduce__(self):
        if self._handoff is None:
            return dict, (dict(self),)
        pid, segment, layout, extra = self._handoff
        segment.in_use[0] = 1
        return _mapped_item, (pid, segment.fd, segment.key, segment.capacity, layout, {name: self[name] for name in extra})


_mappings: "OrderedDict[tuple, tuple[mmap.mmap, np.ndarray]]" = OrderedDict()
_mappings_lock = threading.Lock()


def _mapped(pid: int, fd: int, key: tuple, capacity: int) -> tuple[mmap.mmap, np.ndarray]:
    """A worker's segment mapped into this process → (mapping, its "in use" word)."""
    with _mappings_lock:
        if key in _mappings:
            _mappings.move_to_end(key)
            return _mappings[key]
    descriptor = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    try:
        if os.fstat(descriptor).st_size != _HEADER + capacity:
            raise OSError(f"/proc/{pid}/fd/{fd} is not the worker's {capacity}-byte batch segment")
        mapping = mmap.mmap(descriptor, _HEADER + capacity, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
    finally:
        os.close(descriptor)
    entry = (mapping, np.frombuffer(mapping, dtype=np.uint64, count=1))
    with _mappings_lock:
        for old in [old for old in _mappings if not os.path.exists(f"/proc/{old[0]}")]:
            del _mappings[old]
        _mappings[key] = entry
        while len(_mappings) > 1 and (
            len(_mappings) > _MAPPINGS_KEPT or sum(len(m) for m, _ in _mappings.values()) > _MAPPED_BYTES_KEPT
        ):
            _mappings.popitem(last=False)
    return entry


def _release(in_use: np.ndarray) -> None:
    in_use[0] = 0


def _mapped_item(pid: int, fd: int, key: tuple, capacity: int, layout: list, extra: dict) -> dict:
    """The training process's side: the segment mapped, its tensors as torch tensors."""
    import torch

    mapping, in_use = _mapped(pid, fd, key, capacity)
    data = np.frombuffer(mapping, dtype=np.uint8, offset=_HEADER)
    weakref.finalize(data, _release, in_use)
    item: dict[str, Any] = {}
    for name, dtype, shape, offset, size in layout:
        if not 0 <= offset <= offset + size <= capacity or math.prod(shape) * np.dtype(dtype).itemsize != size:
            raise ValueError(f"tensor {name!r} of a worker's batch lies outside its segment")
        item[name] = torch.from_numpy(data[offset : offset + size].view(dtype).reshape(shape))
    item.update(extra)
    return item
