"""LZ4 frame decoding through the system's liblz4 (ctypes), skipping LZ4's own checksums.

Every batch message carries the xxh64 of its frame, which the client checks; decoding
the frame then need not compute LZ4's content checksum as well. python-lz4 cannot skip
it, and on a 790 KB CIFAR batch its decoder took 0.36 ms where liblz4 with
`skipChecksums` (liblz4 ≥ 1.9.4) and xxh64 together took 0.16 ms. `decompress_into`
decodes straight into a buffer the caller owns (a pooled one, see `buffers`), so no
memory is allocated per batch; `decompress` into a new `bytes` object.

Both are None when liblz4 ≥ 1.9.4 is not found (or MBDATA_NATIVE_LZ4=0); the client then
decodes with python-lz4, which verifies the content checksum itself.

`decompress_block` decodes one block of a frame (`frames` parses the frame itself, so
that stored blocks need no decoder at all); None under the same conditions.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Callable, Optional

import numpy as np

_VERSION = 100  # LZ4F_VERSION


class _DecompressOptions(ctypes.Structure):
    _fields_ = [
        ("stableDst", ctypes.c_uint),
        ("skipChecksums", ctypes.c_uint),
        ("reserved1", ctypes.c_uint),
        ("reserved0", ctypes.c_uint),
    ]


def _library() -> Optional[ctypes.CDLL]:
    if os.environ.get("MBDATA_NATIVE_LZ4", "1") == "0":
        return None
    try:
        library = ctypes.CDLL(ctypes.util.find_library("lz4") or "liblz4.so.1")
        if library.LZ4_versionNumber() < 10904:  # skipChecksums arrived in 1.9.4
            return None
    except (OSError, AttributeError):
        return None
    return library


def _block_decoder(library: Optional[ctypes.CDLL]) -> Optional[Callable[[int, int, int, int, int, int], int]]:
    if library is None:
        return None
    decode_with_prefix = library.LZ4_decompress_safe_usingDict
    decode_with_prefix.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    decode_with_prefix.restype = ctypes.c_int

    def decompress_block(source: int, size: int, output: int, capacity: int, prefix: int, prefix_size: int) -> int:
        """Decodes the LZ4 block of `size` bytes at address `source` into at most
        `capacity` bytes at `output`, the `prefix_size` bytes at `prefix` serving as the
        earlier output a linked block may refer to (0 for an independent block); the
        number of bytes written. ValueError when the block is malformed or does not fit:
        liblz4's safe decoder never reads or writes outside the ranges given."""
        written = decode_with_prefix(source, output, size, capacity, prefix, prefix_size)
        if written < 0:
            raise ValueError(f"malformed LZ4 block ({size} bytes, at most {capacity} decoded)")
        return written

    return decompress_block


def _load(library: Optional[ctypes.CDLL]) -> tuple[Optional[Callable[[bytes, int], bytes]], Optional[Callable[[object, np.ndarray], None]]]:
    if library is None:
        return None, None
    create = library.LZ4F_createDecompressionContext
    create.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint]
    create.restype = ctypes.c_size_t
    free = library.LZ4F_freeDecompressionContext
    free.argtypes = [ctypes.c_void_p]
    free.restype = ctypes.c_size_t
    decode_frame = library.LZ4F_decompress
    decode_frame.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(_DecompressOptions),
    ]
    decode_frame.restype = ctypes.c_size_t
    is_error = library.LZ4F_isError
    is_error.argtypes = [ctypes.c_size_t]
    error_name = library.LZ4F_getErrorName
    error_name.argtypes = [ctypes.c_size_t]
    error_name.restype = ctypes.c_char_p
    new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
    new_bytes.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
    new_bytes.restype = ctypes.py_object
    bytes_address = ctypes.pythonapi.PyBytes_AsString
    bytes_address.argtypes = [ctypes.py_object]
    bytes_address.restype = ctypes.c_void_p
    options = _DecompressOptions(stableDst=1, skipChecksums=1)

    def decode(frame_address: int, frame_size: int, output_address: int, size: int) -> None:
        context = ctypes.c_void_p()
        if is_error(create(ctypes.byref(context), _VERSION)):
            raise MemoryError("cannot create an LZ4 decompression context")
        try:
            written = ctypes.c_size_t(size)
            consumed = ctypes.c_size_t(frame_size)
            result = decode_frame(context, output_address, ctypes.byref(written), frame_address, ctypes.byref(consumed),
                                  ctypes.byref(options))
            if is_error(result):
                raise ValueError(error_name(result).decode())
            if result != 0 or written.value != size or consumed.value != frame_size:
                raise ValueError(f"frame decodes to {written.value} bytes from {consumed.value} of {frame_size}, expected {size}")
        finally:
            free(context)

    def decompress(frame: bytes, size: int) -> bytes:
        """The `size` bytes a whole frame decodes to; ValueError when it does not."""
        # A new bytes object no one else holds yet, filled in place (as C extensions do).
        output = new_bytes(None, size)
        source = np.frombuffer(frame, dtype=np.uint8)
        decode(source.ctypes.data, source.size, bytes_address(output), size)
        return output

    def decompress_into(frame: object, output: np.ndarray) -> None:
        """Decodes a whole frame (any bytes-like object) into the contiguous uint8 array
        `output`, which it must fill exactly; ValueError when it does not."""
        source = np.frombuffer(frame, dtype=np.uint8)
        decode(source.ctypes.data, source.size, output.ctypes.data, output.nbytes)

    return decompress, decompress_into


_LIBRARY = _library()
decompress, decompress_into = _load(_LIBRARY)
decompress_block = _block_decoder(_LIBRARY)
