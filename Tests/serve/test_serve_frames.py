"""Frames received in place (`frames.FrameReceiver` through `wire.MessageReader` with a
pool): stored blocks land in the output buffer, compressed ones are decoded into it, and
every malformed or corrupted frame is refused — the bytes come from a socket."""

from __future__ import annotations

import io
import struct

import lz4.block
import lz4.frame
import numpy as np
import pytest
import safetensors.numpy
import xxhash

from mbdata_client import ProtocolError, StreamCutError, frames, wire
from mbdata_client.buffers import BufferPool

pytestmark = pytest.mark.skipif(not frames.available(), reason="needs liblz4 >= 1.9.4")

STORED = 0x80000000


def safetensors_bytes(rows: int, compressible: bool, seed: int = 0) -> bytes:
    generator = np.random.default_rng(seed)
    image = np.zeros((rows, 3, 32, 32), np.uint8) if compressible else generator.integers(0, 256, (rows, 3, 32, 32), np.uint8)
    return safetensors.numpy.save({"image": image, "_id": np.arange(1, rows + 1, dtype=np.int64)})


def mixed_bytes() -> bytes:
    """A buffer whose 64 KB blocks alternate between incompressible and compressible."""
    generator = np.random.default_rng(3)
    parts = [generator.integers(0, 256, 70_000, np.uint8) if i % 2 else np.full(70_000, i, np.uint8) for i in range(6)]
    return safetensors.numpy.save({"x": np.concatenate(parts), "_id": np.arange(1, 5, dtype=np.int64)})


def block_kinds(frame: bytes) -> list[str]:
    """"stored" or "compressed" per block of a frame without block checksums."""
    flags = frame[4]
    position = 4 + 2 + (8 if flags & 0x08 else 0) + 1
    kinds = []
    while True:
        (word,) = struct.unpack_from("<I", frame, position)
        if word == 0:
            return kinds
        kinds.append("stored" if word & STORED else "compressed")
        position += 4 + (word & ~STORED) + (4 if flags & 0x10 else 0)


def frame_message(frame: bytes, size: int, **fields) -> bytes:
    return wire.encode_message(wire.KIND_BATCH, frame, uncompressed=size, **fields)


def trickle(data: bytes, step: int = 7):
    """A readinto that hands out at most `step` bytes a call, as a socket may."""
    stream = io.BytesIO(data)

    def readinto(view) -> int:
        return stream.readinto(memoryview(view)[:step])

    return readinto


def received(message: bytes, pool: BufferPool | None = None, step: int = 1 << 20) -> np.ndarray:
    reader = wire.MessageReader(trickle(message, step), pool or BufferPool())
    batch = reader.read()
    assert batch.payload == b"", "the frame was decoded on arrival, not kept"
    return wire.decompress_batch(batch)


def frame_header(content_size: int | None, flags: int = 0x60, descriptor: int = 0x70) -> bytes:
    """An LZ4 frame header (version 01, independent blocks, 4 MB blocks by default)."""
    if content_size is not None:
        flags |= 0x08
    described = bytes((flags, descriptor)) + (struct.pack("<Q", content_size) if content_size is not None else b"")
    return struct.pack("<I", 0x184D2204) + described + bytes(((xxhash.xxh32_intdigest(described) >> 8) & 0xFF,))


@pytest.mark.parametrize("block_size", [lz4.frame.BLOCKSIZE_MAX64KB, lz4.frame.BLOCKSIZE_MAX4MB])
@pytest.mark.parametrize("linked", [True, False])
@pytest.mark.parametrize("contents", ["stored", "compressed", "mixed"])
def test_a_frame_decodes_in_place_whatever_its_blocks(block_size, linked, contents):
    buffer = {"stored": safetensors_bytes(64, False), "compressed": safetensors_bytes(64, True), "mixed": mixed_bytes()}[contents]
    frame = lz4.frame.compress(buffer, block_size=block_size, block_linked=linked, content_checksum=True, store_size=True)
    kinds = set(block_kinds(frame))
    if contents != "mixed":
        assert contents in kinds
    elif block_size == lz4.frame.BLOCKSIZE_MAX64KB:
        assert kinds == {"stored", "compressed"}
    assert received(frame_message(frame, len(buffer)), step=4096).tobytes() == buffer


def test_block_checksums_are_checked():
    buffer = mixed_bytes()
    frame = bytearray(lz4.frame.compress(buffer, block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_checksum=True))
    assert received(frame_message(bytes(frame), len(buffer))).tobytes() == buffer
    (word,) = struct.unpack_from("<I", frame, 7)
    frame[7 + 4 + (word & ~STORED)] ^= 0xFF  # the first block's checksum; the xxh64 is recomputed
    with pytest.raises(ProtocolError, match="block checksum"):
        received(frame_message(bytes(frame), len(buffer)))


def test_a_frame_without_content_size_decodes():
    buffer = safetensors_bytes(8, False)
    frame = lz4.frame.compress(buffer, store_size=False)
    assert received(frame_message(frame, len(buffer))).tobytes() == buffer


def test_a_flipped_byte_in_a_stored_block_fails_the_checksum():
    buffer = safetensors_bytes(16, False)
    frame = lz4.frame.compress(buffer, content_checksum=True, store_size=True)
    assert block_kinds(frame) == ["stored"]
    message = bytearray(frame_message(frame, len(buffer)))
    message[wire.HEADER.size + 2000] ^= 0x01
    with pytest.raises(ProtocolError, match="payload checksum"):
        received(bytes(message))


def test_a_message_cut_inside_its_frame_is_cut():
    buffer = safetensors_bytes(16, False)
    message = frame_message(lz4.frame.compress(buffer), len(buffer))
    for cut in (wire.HEADER.size + 3, wire.HEADER.size + 11, len(message) - 5, len(message) - 1):
        with pytest.raises(StreamCutError):
            received(message[:cut])


def hostile(frame: bytes, size: int) -> bytes:
    """A message whose xxh64 matches its (malformed) frame, as a hostile sender makes it."""
    return frame_message(frame, size)


def wrong_header_checksum(header: bytes) -> bytes:
    return header[:-1] + bytes((header[-1] ^ 0xFF,))


@pytest.mark.parametrize(
    "frame, size, problem",
    [
        (b"\x00\x00\x00\x00" + bytes(12), 16, "not an LZ4 frame"),
        (wrong_header_checksum(frame_header(16)) + struct.pack("<I", STORED | 16) + bytes(16) + bytes(4), 16, "header checksum"),
        (frame_header(None, flags=0x61) + bytes(4), 16, "frame flags"),                           # dictionary id
        (frame_header(None, descriptor=0x30) + bytes(4), 16, "block descriptor"),                 # block size 3
        (frame_header(32) + struct.pack("<I", STORED | 16) + bytes(16) + bytes(4), 16, "declares 32"),
        (frame_header(None) + struct.pack("<I", STORED | 32) + bytes(32) + bytes(4), 16, "runs past the 16-byte content"),
        (frame_header(None, descriptor=0x40) + struct.pack("<I", STORED | 70_000) + bytes(4), 16, "exceeds"),
        (frame_header(None) + struct.pack("<I", 5) + b"\xff\xff\xff\xff\xff" + bytes(4), 16, "does not decode"),
        (frame_header(None) + struct.pack("<I", STORED | 8) + bytes(8) + bytes(4), 16, "decodes to 8 bytes"),
        (frame_header(None) + struct.pack("<I", STORED | 16) + bytes(16) + bytes(4) + b"junk", 16, "follow the frame"),
        (frame_header(None) + struct.pack("<I", STORED | 16) + bytes(16), 16, "runs past its"),  # no end mark
        (frame_header(None) + struct.pack("<I", STORED | 16) + bytes(16) + bytes(4), 1 << 20, "cannot decode to"),
    ],
)
def test_a_malformed_frame_is_refused(frame, size, problem):
    with pytest.raises(ProtocolError, match=problem):
        received(hostile(frame, size))


def test_a_compressed_block_cannot_write_past_the_content():
    buffer = bytes(100_000)
    block = lz4.block.compress(buffer, store_size=False)
    frame = frame_header(None) + struct.pack("<I", len(block)) + block + bytes(4)
    with pytest.raises(ProtocolError, match="does not decode"):
        received(hostile(frame, 50_000))


def test_a_held_batch_is_never_overwritten_by_the_next():
    pool = BufferPool(capacity=2)
    first = safetensors_bytes(8, False, seed=1)
    second = safetensors_bytes(8, False, seed=2)
    stream = b"".join(frame_message(lz4.frame.compress(b), len(b), batch=i) for i, b in enumerate([first, second, first]))
    reader = wire.MessageReader(trickle(stream, 1 << 20), pool)
    image = wire.decode_tensors(reader.read())[0]["image"]
    expected = image.copy()
    assert wire.decompress_batch(reader.read()).tobytes() == second
    assert np.array_equal(image, expected)
    third = wire.decompress_batch(reader.read())
    assert not np.shares_memory(third, image), "a buffer a tensor still views was received into again"


def test_a_free_buffer_is_received_into_again():
    pool = BufferPool(capacity=1)
    buffer = safetensors_bytes(8, False)
    message = frame_message(lz4.frame.compress(buffer), len(buffer))
    reader = wire.MessageReader(trickle(message * 2, 1 << 20), pool)
    address = wire.decompress_batch(reader.read()).ctypes.data
    assert wire.decompress_batch(reader.read()).ctypes.data == address


# ------------------------------------------------------------------ one vectored read (local delivery)

def vectored(frame: bytes, limit: int | None = None):
    """A `read(buffers)` that scatters `frame` (at most `limit` bytes) over the buffers, as
    `os.preadv` does from the frame's start in a file."""

    def read(buffers) -> int:
        data, position = frame[:limit], 0
        for buffer in buffers:
            view = memoryview(buffer).cast("B")
            chunk = data[position : position + view.nbytes]
            view[: len(chunk)] = chunk
            position += len(chunk)
        return position

    return read


def receive_stored(frame: bytes, size: int, checksum: int | None = None, limit: int | None = None):
    """(whether the one-read path took the frame, the output) — after `receive` from the
    start when it did not, as `LocalFiles` does."""
    checksum = xxhash.xxh64_intdigest(frame) if checksum is None else checksum
    output = np.zeros(size, np.uint8)
    receiver = frames.FrameReceiver(lambda view, at=[0]: _fill_from(frame, at, view))
    taken = receiver.receive_stored("local batch", len(frame), checksum, output, vectored(frame, limit))
    if not taken:
        receiver.receive("local batch", len(frame), checksum, output)
    return taken, output


@pytest.mark.parametrize("content_checksum", [True, False])
def test_a_one_stored_block_frame_takes_one_read_straight_into_the_output(content_checksum):
    buffer = safetensors_bytes(64, False)
    frame = lz4.frame.compress(buffer, block_size=lz4.frame.BLOCKSIZE_MAX4MB, content_checksum=content_checksum, store_size=True)
    assert block_kinds(frame) == ["stored"]
    taken, output = receive_stored(frame, len(buffer))
    assert taken and output.tobytes() == buffer


@pytest.mark.parametrize(
    "frame_of",
    [
        lambda b: lz4.frame.compress(b, block_size=lz4.frame.BLOCKSIZE_MAX64KB, store_size=True),  # several blocks
        lambda b: lz4.frame.compress(b, store_size=False),                                         # no content size
        lambda b: lz4.frame.compress(b, block_checksum=True, store_size=True),                     # block checksums
    ],
)
def test_a_frame_laid_out_otherwise_is_received_as_any_frame(frame_of):
    buffer = safetensors_bytes(64, False)
    frame = frame_of(buffer)
    taken, output = receive_stored(frame, len(buffer))
    assert not taken and output.tobytes() == buffer


def test_a_compressed_frame_is_received_as_any_frame():
    buffer = safetensors_bytes(64, True)
    frame = lz4.frame.compress(buffer, store_size=True)
    taken, output = receive_stored(frame, len(buffer))
    assert not taken and output.tobytes() == buffer


def test_a_short_read_falls_back_and_the_frame_then_reads_whole():
    buffer = safetensors_bytes(16, False)
    frame = lz4.frame.compress(buffer, store_size=True)
    taken, output = receive_stored(frame, len(buffer), limit=len(frame) - 3)
    assert not taken and output.tobytes() == buffer


def test_the_one_read_path_refuses_what_receive_refuses():
    buffer = safetensors_bytes(16, False)
    frame = lz4.frame.compress(buffer, content_checksum=True, store_size=True)
    flipped = bytearray(frame)
    flipped[2000] ^= 0x01
    with pytest.raises(ProtocolError, match="payload checksum"):
        receive_stored(bytes(flipped), len(buffer), checksum=xxhash.xxh64_intdigest(frame))
    header = frame_header(16)
    hostile_frames = {
        "header checksum": wrong_header_checksum(header) + struct.pack("<I", STORED | 16) + bytes(16) + bytes(4),
        "declares 32": frame_header(32) + struct.pack("<I", STORED | 16) + bytes(16) + bytes(4),
        "exceeds": frame_header(70_000, descriptor=0x40) + struct.pack("<I", STORED | 70_000) + bytes(70_000) + bytes(4),
    }
    sizes = {"header checksum": 16, "declares 32": 16, "exceeds": 70_000}
    for problem, hostile_frame in hostile_frames.items():
        with pytest.raises(ProtocolError, match=problem):
            receive_stored(hostile_frame, sizes[problem])


def test_the_one_read_path_and_the_block_receiver_agree_on_mutated_frames():
    # Whatever a hostile file holds, reading it with one preadv decides as the block-by-block
    # receiver does: the same bytes accepted, the same refused.
    generator = np.random.default_rng(11)
    buffer = safetensors_bytes(16, False)
    original = lz4.frame.compress(buffer, content_checksum=True, store_size=True)
    for trial in range(300):
        frame = bytearray(original)
        for position in generator.integers(0, len(frame), generator.integers(1, 4)):
            if trial % 3 == 0:  # the structure: header and words, where a flip changes the layout
                position = generator.choice([*range(0, 19), *range(len(frame) - 8, len(frame))])
            frame[position] = int(generator.integers(0, 256))
        frame = bytes(frame)
        checksum = xxhash.xxh64_intdigest(frame)  # as a hostile sender or file names it
        outcomes = []
        for one_read in (True, False):
            output = np.zeros(len(buffer), np.uint8)
            receiver = frames.FrameReceiver(lambda view, data=frame, at=[0]: _fill_from(data, at, view))
            try:
                if not (one_read and receiver.receive_stored("f", len(frame), checksum, output, vectored(frame))):
                    receiver = frames.FrameReceiver(lambda view, data=frame, at=[0]: _fill_from(data, at, view))
                    receiver.receive("f", len(frame), checksum, output)
                outcomes.append(("ok", output.tobytes()))
            except (ProtocolError, StreamCutError):
                outcomes.append(("refused", None))
        assert outcomes[0] == outcomes[1], f"trial {trial}: one read {outcomes[0][0]}, blocks {outcomes[1][0]}"


def _fill_from(data: bytes, at: list, view) -> int:
    """A fill over `data` from position `at[0]`, as LocalFiles fills from a file."""
    view = memoryview(view).cast("B")
    chunk = data[at[0] : at[0] + view.nbytes]
    view[: len(chunk)] = chunk
    at[0] += len(chunk)
    return len(chunk)
