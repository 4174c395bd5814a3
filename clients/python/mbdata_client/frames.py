"""Receiving a batch's LZ4 frame from the stream straight into the buffer it decodes to.

Tensor bytes such as images rarely compress, and LZ4 keeps such a block as it is (a
"stored" block, the high bit of its size word set). Reading the whole frame into a
receive buffer and then decoding it copied every stored byte a second time: on CIFAR
batches that copy was 68% of the reader thread (py-spy). `FrameReceiver` parses the frame
as it arrives instead (lz4 frame format 1.6.x): a stored block is received at its offset
in the output buffer, and only a compressed block passes through a scratch buffer, from
which liblz4's safe decoder writes it into place.

Every byte comes from a socket and is treated as hostile: the xxh64 of the frame (the
message header's checksum) is computed over the bytes as they arrive and checked before
the output is handed on; the frame header's own checksum, block sizes, block checksums
(when the frame has them) and the content size are checked as they are read; no read
goes past the message's payload and no write past the output. LZ4's content checksum
(an xxh32 of the decoded bytes) is read but not recomputed: the xxh64 already covers
every byte of the frame, and a decoded batch is a function of those bytes, while the
xxh32 pass would cost 0.35 ms per 790 KB batch — more than receiving it.
"""

from __future__ import annotations

import struct
from typing import Callable, NoReturn

import numpy as np
import xxhash

from . import lz4native
from .errors import ProtocolError, StreamCutError

__all__ = ["FrameReceiver", "available", "stored_parts"]

_MAGIC = 0x184D2204
_BLOCK_MAXIMUMS = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}
_STORED = 0x80000000
_WORD = struct.Struct("<I")
#: A frame header with the content size (magic, FLG, BD, size, header checksum) and the
#: first block's size word: what precedes the block of a one-block frame.
_STORED_HEADER = 4 + 1 + 1 + 8 + 1 + 4
#: Earlier output a linked block may refer to (LZ4's window).
_WINDOW = 64 << 10
#: LZ4 decodes at most 255 bytes per byte of input; a header claiming more is corrupt.
_MAX_RATIO = 255

_FLAG_VERSION_MASK, _FLAG_VERSION = 0xC0, 0x40
_FLAG_INDEPENDENT = 0x20
_FLAG_BLOCK_CHECKSUM = 0x10
_FLAG_CONTENT_SIZE = 0x08
_FLAG_CONTENT_CHECKSUM = 0x04
_FLAG_RESERVED = 0x02
_FLAG_DICTIONARY = 0x01


def stored_parts(length: int, output: np.ndarray) -> "list | None":
    """The buffers a `length`-byte frame laid out as one stored block is read into, in
    order — its header and first size word, `output` (the block), its end mark and
    content checksum — or None when the lengths say it is laid out otherwise."""
    trailer = length - output.nbytes - _STORED_HEADER
    if trailer not in (4, 8):
        return None
    return [bytearray(_STORED_HEADER), output, bytearray(trailer)]


def available() -> bool:
    """Whether frames can be received in place (needs liblz4's block decoder)."""
    return lz4native.decompress_block is not None


class FrameReceiver:
    """Receives one LZ4 frame after another through `fill(view)`, which fills as much of
    `view` as the stream still holds and returns how many bytes it wrote."""

    def __init__(self, fill: Callable[[memoryview], int]):
        self._fill = fill
        self._scratch = np.empty(0, dtype=np.uint8)
        self._small = bytearray(16)
        self._label = ""
        self._length = 0
        self._left = 0
        self._hash = xxhash.xxh64()

    def receive(self, label: str, length: int, checksum: int, output: np.ndarray) -> None:
        """Receives the `length`-byte frame whose xxh64 is `checksum` and decodes it into
        the contiguous uint8 array `output`, which its content must fill exactly.
        `ProtocolError` (naming `label`) when the frame is malformed or its checksum is
        wrong, `StreamCutError` when the stream ends inside it; `output` then holds
        garbage."""
        self._label, self._length, self._left = label, length, length
        self._hash.reset()
        if output.nbytes > length * _MAX_RATIO:
            self._refuse(f"{length} frame bytes cannot decode to {output.nbytes}")
        flags, block_maximum = self._frame_header(output.nbytes)
        position = self._blocks(flags, block_maximum, output)
        if flags & _FLAG_CONTENT_CHECKSUM:
            self._word()
        if self._left:
            self._refuse(f"{self._left} bytes follow the frame's end mark")
        if position != output.nbytes:
            self._refuse(f"frame decodes to {position} bytes, header says {output.nbytes}")
        actual = self._hash.intdigest()
        if actual != checksum:
            self._refuse(f"payload checksum {actual:016x}, header says {checksum:016x}")

    def receive_stored(
        self, label: str, length: int, checksum: int, output: np.ndarray, read: Callable[[list], int]
    ) -> bool:
        """Receives a frame laid out as mbdata writes a batch that does not compress — a
        header with the content size, one stored block, the end mark, perhaps LZ4's
        content checksum — with one vectored `read(buffers)` (from the frame's start):
        its block straight into `output`. Checked as `receive` checks (the header, the
        block's size word, the end mark, the xxh64 over every byte). Returns False when
        the frame's length or words say it is laid out otherwise, or the read came short;
        the caller then receives it from its start with `receive`."""
        parts = stored_parts(length, output)
        return parts is not None and self.check_stored(label, length, checksum, parts, read(parts), lambda: self._python_digest(parts))

    def check_stored(
        self, label: str, length: int, checksum: int, parts: list, got: int, digest: Callable[[], int]
    ) -> bool:
        """Checks a frame read into `stored_parts` (`got` bytes) as `receive_stored` does, its
        xxh64 from `digest()`: False when it is not laid out as one stored block or the
        read came short; `ProtocolError` when it is and something in it is wrong."""
        header, output, end = parts
        self._label, self._length, self._left = label, length, 0
        if got != length:
            return False
        flags = header[4]
        if (
            flags & (_FLAG_CONTENT_SIZE | _FLAG_BLOCK_CHECKSUM) != _FLAG_CONTENT_SIZE
            or bool(flags & _FLAG_CONTENT_CHECKSUM) != (len(end) == 8)
            or _WORD.unpack_from(header, _STORED_HEADER - 4)[0] != _STORED | output.nbytes
            or _WORD.unpack_from(end)[0] != 0
        ):
            return False
        _, block_maximum = self._checked_header(bytes(header[: _STORED_HEADER - 4]), output.nbytes)
        if output.nbytes > block_maximum:
            self._refuse(f"LZ4 block of {output.nbytes} bytes exceeds the frame's {block_maximum}-byte blocks")
        actual = digest()
        if actual != checksum:
            self._refuse(f"payload checksum {actual:016x}, header says {checksum:016x}")
        return True

    def _python_digest(self, parts: list) -> int:
        digest = self._hash
        digest.reset()
        for part in parts:
            digest.update(part)
        return digest.intdigest()

    def _frame_header(self, size: int) -> tuple[int, int]:
        """Reads and checks the frame header → (FLG byte, block maximum size)."""
        start = self._read_small(6)
        content_size = 8 if start[4] & _FLAG_CONTENT_SIZE else 0
        return self._checked_header(start + self._read_small(content_size + 1), size)

    def _checked_header(self, header: bytes, size: int) -> tuple[int, int]:
        """Checks a whole frame header (magic to header checksum) of a frame that must
        decode to `size` bytes → (FLG byte, block maximum size)."""
        magic, flags, descriptor = struct.unpack_from("<IBB", header)
        if magic != _MAGIC:
            self._refuse(f"payload is not an LZ4 frame (magic {magic:08x})")
        if flags & _FLAG_VERSION_MASK != _FLAG_VERSION or flags & (_FLAG_RESERVED | _FLAG_DICTIONARY):
            self._refuse(f"unsupported LZ4 frame flags {flags:02x}")
        block_maximum = _BLOCK_MAXIMUMS.get((descriptor >> 4) & 0x07)
        if block_maximum is None or descriptor & 0x8F:
            self._refuse(f"bad LZ4 block descriptor {descriptor:02x}")
        content_size = 8 if flags & _FLAG_CONTENT_SIZE else 0
        if header[6 + content_size] != (xxhash.xxh32_intdigest(header[4 : 6 + content_size]) >> 8) & 0xFF:
            self._refuse("LZ4 frame header checksum is wrong")
        if content_size:
            (declared,) = struct.unpack_from("<Q", header, 6)
            if declared != size:
                self._refuse(f"LZ4 frame declares {declared} content bytes, header says {size}")
        return flags, block_maximum

    def _blocks(self, flags: int, block_maximum: int, output: np.ndarray) -> int:
        """Receives the blocks up to the end mark into `output` → bytes written."""
        address = output.ctypes.data
        position = 0
        while True:
            word = self._word()
            if word == 0:
                return position
            count = word & ~_STORED
            if count > block_maximum:
                self._refuse(f"LZ4 block of {count} bytes exceeds the frame's {block_maximum}-byte blocks")
            if word & _STORED:
                if count > output.nbytes - position:
                    self._refuse(f"stored LZ4 block of {count} bytes runs past the {output.nbytes}-byte content")
                block = output[position : position + count]
                self._read_into(block)
                position += count
            else:
                block = self._scratch_of(count)
                self._read_into(block)
                prefix = 0 if flags & _FLAG_INDEPENDENT else min(position, _WINDOW)
                capacity = min(block_maximum, output.nbytes - position)
                try:
                    position += lz4native.decompress_block(
                        block.ctypes.data, count, address + position, capacity, address + position - prefix, prefix
                    )
                except ValueError as error:
                    self._refuse(f"LZ4 frame does not decode ({error})")
            if flags & _FLAG_BLOCK_CHECKSUM and self._word() != xxhash.xxh32_intdigest(block):
                self._refuse("LZ4 block checksum is wrong")

    def _scratch_of(self, count: int) -> np.ndarray:
        if self._scratch.nbytes < count:
            self._scratch = np.empty(count, dtype=np.uint8)
        return self._scratch[:count]

    def _word(self) -> int:
        return _WORD.unpack(self._read_small(4))[0]

    def _read_small(self, count: int) -> bytes:
        view = memoryview(self._small)[:count]
        self._read_into(view)
        return bytes(view)

    def _read_into(self, target: "np.ndarray | memoryview") -> None:
        """Fills `target` from the stream, within the payload, and hashes it."""
        view = memoryview(target)
        count = view.nbytes
        if count > self._left:
            self._refuse(f"LZ4 frame runs past its {self._length}-byte payload")
        got = self._fill(view)
        self._left -= got
        if got < count:
            raise StreamCutError(f"{self._label} cut: {self._length - self._left} of {self._length} payload bytes")
        self._hash.update(view)

    def _refuse(self, problem: str) -> NoReturn:
        raise ProtocolError(f"{self._label}: {problem}")
