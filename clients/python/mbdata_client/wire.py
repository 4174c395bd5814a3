"""The messages of an `mbdata serve` batch stream (schemas/serve-protocol.md §4).

Each message is a 56-byte little-endian header followed by `length` bytes of payload:

    offset size field
    0      4    magic "MBW1"
    4      1    kind: 1 batch, 2 end of stream, 3 error
    5      3    reserved (zero)
    8      4    epoch
    12     4    batch (global batch index within the epoch)
    16     4    rank
    20     4    samples (real rows)
    24     8    uncompressed (bytes of the safetensors buffer in the frame)
    32     8    length (payload bytes)
    40     8    checksum (xxh64, seed 0, of the payload)
    48     8    lease (share mode; otherwise 0)

A batch payload is one LZ4 frame holding a safetensors buffer (schemas/shard-format.md
§3–5); an end or error payload is JSON. A message with a wrong magic, kind or checksum is
rejected with `ProtocolError`; a stream that stops inside a message raises
`StreamCutError`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import lz4.frame
import numpy as np
import safetensors.numpy
import xxhash

from . import frames, lz4native
from .buffers import BufferPool
from .errors import ProtocolError, StreamCutError
from .localframes import LocalFiles, PendingFrame

MAGIC = b"MBW1"
HEADER = struct.Struct("<4sB3sIIIIQQQQ")
assert HEADER.size == 56

KIND_BATCH = 1
KIND_END = 2
KIND_ERROR = 3
#: A spooled batch read from the daemon's shard file (protocol 1.3, `delivery=local`).
KIND_LOCAL = 4
KINDS = {KIND_BATCH: "batch", KIND_END: "end", KIND_ERROR: "error", KIND_LOCAL: "local batch"}

#: The largest payload or safetensors buffer a reader accepts (1 GiB): a header claiming
#: more is treated as corrupt rather than allocated.
MAX_PAYLOAD = 1 << 30
#: The largest JSON payload of an end or error message.
MAX_JSON_PAYLOAD = 1 << 20
#: Bytes a `MessageReader` with `read1` asks for at once (at most a chunk of the response).
READ_CHUNK = 1 << 16


def xxh64(data: bytes) -> int:
    return xxhash.xxh64_intdigest(data)


@dataclass
class Message:
    kind: int
    epoch: int
    batch: int
    rank: int
    samples: int
    uncompressed: int
    length: int
    checksum: int
    lease: int
    payload: bytes = field(default=b"", repr=False)
    #: A batch's safetensors buffer when the frame was decoded as it was received
    #: (`MessageReader` with a pool); `payload` is then empty.
    decoded: Optional[np.ndarray] = field(default=None, repr=False)
    #: The read of a local batch's frame into `decoded` (`LocalFiles.start`), perhaps under
    #: way on the reader threads; `decompress_batch` waits for it and checks it.
    pending: Optional["PendingFrame"] = field(default=None, repr=False)

    @property
    def kind_name(self) -> str:
        return KINDS[self.kind]

    def json(self) -> dict:
        """The JSON payload of an end or error message."""
        try:
            value = json.loads(self.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ProtocolError(f"{self.kind_name} message: payload is not JSON ({error})") from None
        if not isinstance(value, dict):
            raise ProtocolError(f"{self.kind_name} message: payload is not a JSON object")
        return value


def parse_header(data: bytes) -> Message:
    """Parses and checks a 56-byte header (magic, kind, plausible sizes); the payload is
    not read."""
    if len(data) != HEADER.size:
        raise ProtocolError(f"message header of {len(data)} bytes, expected {HEADER.size}")
    magic, kind, _reserved, epoch, batch, rank, samples, uncompressed, length, checksum, lease = HEADER.unpack(data)
    if magic != MAGIC:
        raise ProtocolError(f"bad message magic {magic!r}, expected {MAGIC!r}")
    if kind not in KINDS:
        raise ProtocolError(f"bad message kind {kind}, expected 1 (batch), 2 (end), 3 (error) or 4 (local batch)")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"{KINDS[kind]} message: payload of {length} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    if kind in (KIND_BATCH, KIND_LOCAL):
        if length == 0:
            raise ProtocolError(f"{KINDS[kind]} message with an empty payload")
        if uncompressed == 0 or uncompressed > MAX_PAYLOAD:
            raise ProtocolError(f"{KINDS[kind]} message: {uncompressed} uncompressed bytes, expected 1 to the {MAX_PAYLOAD}-byte limit")
    if kind != KIND_BATCH and length > MAX_JSON_PAYLOAD:
        raise ProtocolError(f"{KINDS[kind]} message: JSON payload of {length} bytes")
    return Message(kind, epoch, batch, rank, samples, uncompressed, length, checksum, lease)


def carries_content_checksum(frame: bytes) -> bool:
    """Whether an LZ4 frame has its content-checksum flag (FLG bit 2) set."""
    return len(frame) > 4 and frame[:4] == b"\x04\x22\x4d\x18" and bool(frame[4] & 0x04)


def check_payload(message: Message, payload: bytes) -> Message:
    """Attaches the payload after checking its length and xxh64 against the header.
    Without native LZ4 (lz4native), a batch frame that carries its own content checksum is
    left to python-lz4, which verifies that checksum (and the frame header's) on every
    decode: a corrupted frame fails there, so hashing it too would only cost time
    (serve-protocol.md §4)."""
    if len(payload) != message.length:
        raise StreamCutError(f"{message.kind_name} message cut: {len(payload)} of {message.length} payload bytes")
    if message.kind == KIND_BATCH and lz4native.decompress is None and carries_content_checksum(payload):
        message.payload = payload
        return message
    actual = xxh64(payload)
    if actual != message.checksum:
        raise ProtocolError(
            f"{message.kind_name} message (epoch {message.epoch}, batch {message.batch}): payload checksum "
            f"{actual:016x}, header says {message.checksum:016x}"
        )
    message.payload = payload
    return message


def read_exact(read: Callable[[int], bytes], count: int) -> bytes:
    """Reads `count` bytes, fewer only at the end of the stream."""
    chunks = []
    remaining = count
    while remaining > 0:
        chunk = read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(read: Callable[[int], bytes]) -> Optional[Message]:
    """The next message of a stream, read through `read(n)`; None when the stream ends
    exactly at a message boundary. A stream ending inside a message raises
    `StreamCutError`; a corrupt message raises `ProtocolError`."""
    header = read_exact(read, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise StreamCutError(f"message header cut: {len(header)} of {HEADER.size} bytes")
    message = parse_header(header)
    if message.kind == KIND_LOCAL:  # only a stream asked with delivery=local has them (MessageReader)
        raise ProtocolError(f"a local batch message (batch {message.batch}) where no local delivery was asked for")
    return check_payload(message, read_exact(read, message.length))


def iter_messages(read: Callable[[int], bytes]) -> Iterator[Message]:
    while True:
        message = read_message(read)
        if message is None:
            return
        yield message


class MessageReader:
    """Reads a stream's messages through `readinto(view)` (an HTTP response's), and
    through `read1(n)` too where it is given: small messages then come from a chunk of the
    response read at once, many messages a call.

    With a `pool` (and liblz4), a batch's frame is decoded as it arrives into a buffer
    from the pool (`frames.FrameReceiver`: stored blocks land in place, no copy) and the
    message carries it as `decoded`. Otherwise each batch payload lands in one receive
    buffer that the next message reuses, so the payload is valid only until the next
    `read()`; decoding it (`decode_tensors` with a pool) copies it out. End and error
    payloads are bytes of their own."""

    def __init__(
        self, readinto: Callable[[memoryview], int], pool: Optional[BufferPool] = None, local: Optional[LocalFiles] = None,
        read1: Optional[Callable[[int], bytes]] = None,
    ):
        self._readinto = readinto
        self._read1 = read1
        self._buffered = b""
        self._position = 0
        self._receive = np.empty(0, dtype=np.uint8)
        self._pool = pool
        self._frames = frames.FrameReceiver(self._fill) if pool is not None and frames.available() else None
        self._local = local

    def _fill(self, view: memoryview) -> int:
        filled = 0
        if self._position < len(self._buffered):
            filled = min(len(view), len(self._buffered) - self._position)
            view[:filled] = self._buffered[self._position : self._position + filled]
            self._position += filled
        while filled < len(view):
            count = self._readinto(view[filled:])
            if not count:
                break
            filled += count
        return filled

    def _take(self, count: int) -> bytes:
        """The stream's next `count` bytes, fewer only at its end. With `read1` (a stream of
        small messages: local batches), read a chunk of the response at a time, many
        messages in one call, instead of two calls through `readinto` a message."""
        if self._read1 is None:
            return read_exact(self._read_bytes, count)
        chunks = []
        while count > 0:
            if self._position >= len(self._buffered):
                self._buffered, self._position = self._read1(READ_CHUNK), 0
                if not self._buffered:
                    break
            chunk = self._buffered[self._position : self._position + count]
            self._position += len(chunk)
            count -= len(chunk)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def read(self) -> Optional[Message]:
        """The next message; None when the stream ends exactly at a message boundary; as
        `read_message` for cut and corrupt messages."""
        header = self._take(HEADER.size)
        if not header:
            return None
        if len(header) < HEADER.size:
            raise StreamCutError(f"message header cut: {len(header)} of {HEADER.size} bytes")
        message = parse_header(header)
        if message.kind == KIND_LOCAL:
            return self._read_local(check_payload(message, self._take(message.length)))
        if message.kind != KIND_BATCH:
            return check_payload(message, self._take(message.length))
        if self._frames is not None:
            output = self._pool.take(message.uncompressed)
            self._frames.receive(
                f"batch message (epoch {message.epoch}, batch {message.batch})", message.length, message.checksum, output
            )
            message.decoded = output
            return message
        if self._receive.nbytes < message.length:
            self._receive = np.empty(message.length, dtype=np.uint8)
        payload = memoryview(self._receive)[: message.length]
        got = self._fill(payload)
        return check_payload(message, payload[:got])

    def _read_local(self, message: Message) -> Message:
        """A local batch message → the batch message its frame makes, read from the shard
        file and checked as a received frame is (`localframes`)."""
        if self._local is None:
            raise ProtocolError(f"a local batch message (batch {message.batch}) on a stream that did not ask for one")
        label = f"local batch message (epoch {message.epoch}, batch {message.batch})"
        reference, message.kind, message.payload = message.payload, KIND_BATCH, b""
        if self._frames is not None:
            output = self._pool.take(message.uncompressed)
            message.pending = self._local.start(reference, label, output)
            message.length, message.checksum = message.pending.length, message.pending.checksum
            message.decoded = output
            return message
        frame, message.checksum = self._local.frame(reference, label)
        message.length = len(frame)
        return check_payload(message, frame)

    def _read_bytes(self, count: int) -> bytes:
        buffer = bytearray(count)
        return bytes(buffer[: self._fill(memoryview(buffer))])

    def __iter__(self) -> Iterator[Message]:
        while True:
            message = self.read()
            if message is None:
                return
            yield message


def parse_messages(body: bytes) -> list[Message]:
    """Every message of a complete response body (a lease answer)."""
    view = memoryview(body)
    position = 0

    def read(count: int) -> bytes:
        nonlocal position
        chunk = bytes(view[position : position + count])
        position += len(chunk)
        return chunk

    return list(iter_messages(read))


def decompress_batch(message: Message, pool: Optional[BufferPool] = None) -> "bytes | np.ndarray":
    """The safetensors buffer inside a batch message's LZ4 frame (content checksum checked
    by the decoder, size checked against the header): with native LZ4 and a `pool`, a
    uint8 array from the pool; otherwise bytes."""
    if message.kind != KIND_BATCH:
        raise ProtocolError(f"{message.kind_name} message has no batch")
    if message.pending is not None:
        pending, message.pending = message.pending, None
        pending.wait()
    if message.decoded is not None:
        return message.decoded
    if lz4native.decompress is None:  # liblz4 itself refuses a frame of another content size
        try:
            info = lz4.frame.get_frame_info(message.payload)
        except RuntimeError as error:
            raise ProtocolError(f"batch {message.batch}: payload is not an LZ4 frame ({error})") from None
        declared = info.get("content_size")
        if declared and declared != message.uncompressed:
            raise ProtocolError(
                f"batch {message.batch}: LZ4 frame declares {declared} content bytes, header says {message.uncompressed}"
            )
    try:
        if lz4native.decompress is not None and pool is not None:  # the payload's xxh64 was checked on arrival
            buffer = pool.take(message.uncompressed)
            lz4native.decompress_into(message.payload, buffer)
        elif lz4native.decompress is not None:
            buffer = lz4native.decompress(message.payload, message.uncompressed)
        else:
            buffer = lz4.frame.decompress(message.payload)
    except (RuntimeError, ValueError) as error:
        raise ProtocolError(f"batch {message.batch}: LZ4 frame does not decode ({error})") from None
    if len(buffer) != message.uncompressed:
        raise ProtocolError(f"batch {message.batch}: {len(buffer)} bytes decoded, header says {message.uncompressed}")
    return buffer


def decode_batch(message: Message) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A batch message → (tensors by name, safetensors `__metadata__`)."""
    return decode_tensors(message)


def decode_tensors(message: Message, pool: Optional[BufferPool] = None) -> tuple[dict[str, np.ndarray], dict]:
    """A batch message → (tensors by name, the safetensors `__metadata__`, {} when
    absent). The tensors are writable views into one decoded buffer (from `pool` when
    given), not copies."""
    buffer = decompress_batch(message, pool)
    if not isinstance(buffer, np.ndarray):
        buffer = np.frombuffer(buffer, dtype=np.uint8)
    try:
        return tensor_views(buffer)
    except ProtocolError as error:
        raise ProtocolError(f"batch {message.batch}: {error}") from None


#: safetensors dtypes → numpy dtypes (little-endian). BF16 has no numpy dtype: its
#: tensors are uint16 views with the same bits, as safetensors' own numpy loader refuses it.
DTYPES = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}


def tensor_views(buffer: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """The tensors of a safetensors buffer (a uint8 array) as views into it, each checked
    against the buffer (dtype known, shape of non-negative integers, byte range inside
    the data section and of the shape's size) → (tensors, the header's `__metadata__`,
    {} when absent: parsed with the tensors, as a batch's provenance reads it for every
    batch)."""
    if buffer.nbytes < 8:
        raise ProtocolError("safetensors buffer shorter than its header length")
    length = int(buffer[:8].view("<u8")[0])
    if length > buffer.nbytes - 8:
        raise ProtocolError(f"safetensors header of {length} bytes does not fit the {buffer.nbytes}-byte buffer")
    try:
        header = json.loads(buffer[8 : 8 + length].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"not a readable safetensors buffer: header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise ProtocolError("not a readable safetensors buffer: header is not a JSON object")
    data = buffer[8 + length :]
    tensors: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = tuple(entry["shape"])
            begin, end = entry["data_offsets"]
            count = 1
            for n in shape:
                if type(n) is not int or n < 0:
                    raise ValueError("shape and offsets must be non-negative integers")
                count *= n
            if type(begin) is not int or type(end) is not int or begin < 0:
                raise ValueError("shape and offsets must be non-negative integers")
        except (KeyError, TypeError, ValueError) as error:
            raise ProtocolError(f"not a readable safetensors buffer: tensor {name!r} is malformed ({error!r})") from None
        if not begin <= end <= data.nbytes or end - begin != count * dtype.itemsize:
            raise ProtocolError(
                f"not a readable safetensors buffer: tensor {name!r} bytes [{begin}, {end}) do not hold {shape} "
                f"{entry['dtype']} inside the {data.nbytes}-byte data section"
            )
        tensors[name] = np.ndarray(shape, dtype, data, begin)
    metadata = header.get("__metadata__")
    return tensors, dict(metadata) if isinstance(metadata, dict) else {}


def encode_message(
    kind: int,
    payload: bytes,
    *,
    epoch: int = 0,
    batch: int = 0,
    rank: int = 0,
    samples: int = 0,
    uncompressed: int = 0,
    lease: int = 0,
    checksum: Optional[int] = None,
    magic: bytes = MAGIC,
) -> bytes:
    """One message as the daemon writes it (for tests and tools)."""
    if checksum is None:
        checksum = xxh64(payload)
    header = HEADER.pack(magic, kind, b"\0\0\0", epoch, batch, rank, samples, uncompressed, len(payload), checksum, lease)
    return header + payload


def encode_batch(
    tensors: dict[str, np.ndarray], *, epoch: int = 0, batch: int = 0, rank: int = 0, lease: int = 0,
    metadata: Optional[dict[str, str]] = None,
) -> bytes:
    """A batch message holding `tensors` (for tests and tools)."""
    buffer = safetensors.numpy.save(tensors, metadata=metadata)
    frame = lz4.frame.compress(buffer, store_size=True, content_checksum=True)
    ids = tensors.get("_id")
    samples = int((np.asarray(ids) >= 0).sum()) if ids is not None else 0
    return encode_message(
        KIND_BATCH, frame, epoch=epoch, batch=batch, rank=rank, samples=samples, uncompressed=len(buffer), lease=lease
    )
