"""Decoding without copies: tensors are views into one decoded buffer, buffers are reused
only once nothing refers to them, a stream's messages are read into one receive buffer,
and a safetensors header that points outside its buffer is refused."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from mbdata_client import ProtocolError, lz4native, wire
from mbdata_client.buffers import BufferPool


def batch_message(index, rows=4):
    ids = np.arange(index * rows + 1, (index + 1) * rows + 1, dtype=np.int64)
    tensors = {"x": (ids * 10).astype(np.float32).reshape(rows, 1), "_id": ids}
    return wire.encode_batch(tensors, batch=index, metadata={"format": "mbdata-batch-1", "batch": str(index)})


def safetensors_buffer(header: dict, data: bytes) -> np.ndarray:
    text = json.dumps(header).encode()
    return np.frombuffer(struct.pack("<Q", len(text)) + text + data, dtype=np.uint8).copy()


def test_a_pooled_buffer_is_reused_only_when_nothing_refers_to_it():
    pool = BufferPool(capacity=2)
    first = pool.take(100)
    view = first[10:20].view(np.int16)
    del first
    second = pool.take(100)
    assert not np.shares_memory(second, view), "a buffer a view still refers to was handed out again"
    address = view.__array_interface__["data"][0] - 10
    del view
    again = pool.take(80)
    assert again.__array_interface__["data"][0] == address, "the first buffer, free again, is reused"
    assert again.nbytes == 80 and again.flags.writeable


def test_a_free_buffer_is_handed_out_again():
    pool = BufferPool(capacity=1)
    first = pool.take(64)
    address = first.__array_interface__["data"][0]
    del first
    assert pool.take(64).__array_interface__["data"][0] == address
    assert len(pool) == 1


def test_a_buffer_held_by_a_torch_tensor_is_not_reused():
    torch = pytest.importorskip("torch")
    pool = BufferPool(capacity=1)
    tensor = torch.from_numpy(pool.take(64).view(np.int64))
    tensor.fill_(7)
    other = pool.take(64)
    other.fill(0)
    assert tensor.tolist() == [7] * 8


@pytest.mark.skipif(lz4native.decompress is None, reason="needs liblz4 >= 1.9.4")
def test_tensors_are_writable_views_into_one_pooled_buffer():
    pool = BufferPool()
    message = wire.read_message(io.BytesIO(batch_message(2)).read)
    tensors, metadata = wire.decode_tensors(message, pool)
    assert tensors["_id"].tolist() == [9, 10, 11, 12]
    assert tensors["x"].shape == (4, 1) and tensors["x"].dtype == np.float32
    assert tensors["x"].flags.writeable
    assert tensors["x"].base is tensors["_id"].base, "both tensors view the same decoded buffer"
    assert metadata == {"format": "mbdata-batch-1", "batch": "2"}


def test_a_message_reader_reads_every_message_into_one_receive_buffer():
    stream = io.BytesIO(batch_message(0) + batch_message(1) + wire.encode_message(wire.KIND_END, b'{"reason": "complete"}'))
    reader = wire.MessageReader(stream.readinto)
    pool = BufferPool()
    first = reader.read()
    ids = wire.decode_tensors(first, pool)[0]["_id"].tolist()
    second = reader.read()
    assert ids == [1, 2, 3, 4]
    assert wire.decode_tensors(second, pool)[0]["_id"].tolist() == [5, 6, 7, 8]
    end = reader.read()
    assert end.kind == wire.KIND_END and end.json() == {"reason": "complete"}
    assert reader.read() is None


def test_a_message_reader_says_a_cut_payload_is_cut():
    data = batch_message(0)
    with pytest.raises(wire.StreamCutError):
        wire.MessageReader(io.BytesIO(data[:-3]).readinto).read()


def chunked(data: bytes, step: int):
    """An HTTP response's `readinto` and `read1` over `data`, `read1` handing out at most
    `step` bytes a call (a chunk), and how often each was called."""
    stream = io.BytesIO(data)
    calls = {"read1": 0, "readinto": 0}

    def read1(count: int) -> bytes:
        calls["read1"] += 1
        return stream.read(min(count, step))

    def readinto(view) -> int:
        calls["readinto"] += 1
        return stream.readinto(view)

    return readinto, read1, calls


def error_message(index: int) -> bytes:
    return wire.encode_message(wire.KIND_ERROR, json.dumps({"error": {"code": "x", "message": f"m{index}"}}).encode())


@pytest.mark.parametrize("step", [1, 7, 56, 100, 4096, 1 << 20])
def test_a_message_reader_reading_chunks_gives_the_messages_reading_each_gives(step):
    # Small messages from chunks read ahead, and a batch frame after bytes a chunk left.
    data = b"".join(error_message(i) for i in range(5)) + batch_message(0) + error_message(5) + batch_message(1)
    data += wire.encode_message(wire.KIND_END, b'{"reason": "complete"}')
    expected = []
    reader = wire.MessageReader(io.BytesIO(data).readinto, BufferPool())
    while (message := reader.read()) is not None:
        expected.append(message)
    readinto, read1, _ = chunked(data, step)
    reader = wire.MessageReader(readinto, BufferPool(), read1=read1)
    got = []
    while (message := reader.read()) is not None:
        got.append(message)
    assert [(m.kind, m.batch, m.payload) for m in got] == [(m.kind, m.batch, m.payload) for m in expected]
    pool = BufferPool()
    for a, b in zip(got, expected):
        if a.kind == wire.KIND_BATCH:
            assert wire.decode_tensors(a, pool)[0]["_id"].tolist() == wire.decode_tensors(b, pool)[0]["_id"].tolist()


def test_small_messages_read_in_chunks_take_one_read_for_many():
    data = b"".join(error_message(i) for i in range(40))
    readinto, read1, calls = chunked(data, 1 << 16)
    reader = wire.MessageReader(readinto, read1=read1)
    assert sum(1 for _ in reader) == 40
    assert calls == {"read1": 2, "readinto": 0}, "one chunk for 40 messages, then the end"


def read_every(reader: wire.MessageReader, pool: BufferPool) -> list:
    """What a reader makes of a stream: each message (kind, batch, payload, decoded ids),
    then the type of the error that stopped it, if any."""
    outcome = []
    try:
        while (message := reader.read()) is not None:
            ids = wire.decode_tensors(message, pool)[0]["_id"].tolist() if message.kind == wire.KIND_BATCH else None
            outcome.append((message.kind, message.batch, bytes(message.payload), ids))
    except (ProtocolError, wire.StreamCutError) as error:
        outcome.append(type(error))
    return outcome


def test_reading_chunks_and_reading_each_message_agree_on_mutated_streams():
    random = np.random.default_rng(15)
    stream = b"".join(error_message(i) for i in range(3)) + batch_message(0) + error_message(3) + batch_message(1)
    for trial in range(300):
        data = bytearray(stream)
        for _ in range(int(random.integers(1, 4))):
            data[int(random.integers(len(data)))] ^= int(random.integers(1, 256))
        if trial % 3 == 0:
            del data[int(random.integers(len(data))) :]
        whole = read_every(wire.MessageReader(io.BytesIO(bytes(data)).readinto, BufferPool()), BufferPool())
        readinto, read1, _ = chunked(bytes(data), int(random.integers(1, 5000)))
        assert read_every(wire.MessageReader(readinto, BufferPool(), read1=read1), BufferPool()) == whole, trial


@pytest.mark.parametrize("cut", [3, wire.HEADER.size + 5, -3])
def test_a_message_reader_reading_chunks_says_a_cut_message_is_cut(cut):
    data = error_message(0) + error_message(1)
    readinto, read1, _ = chunked(data[: len(error_message(0)) + cut] if cut > 0 else data[:cut], 5)
    reader = wire.MessageReader(readinto, read1=read1)
    with pytest.raises(wire.StreamCutError):
        while reader.read() is not None:
            pass


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "I64", "shape": [4], "data_offsets": [0, 64]},      # past the end
        {"dtype": "I64", "shape": [3], "data_offsets": [0, 32]},      # size not the shape's
        {"dtype": "X9", "shape": [4], "data_offsets": [0, 32]},       # unknown dtype
        {"dtype": "I64", "shape": [-4], "data_offsets": [0, 32]},     # negative dimension
        {"dtype": "I64", "shape": [4], "data_offsets": [16, 8]},      # reversed range
        {"dtype": "I64", "shape": [4]},                                # no offsets
        {"dtype": "I64", "shape": [True, 4], "data_offsets": [0, 32]}, # not an integer
        {"dtype": "I64", "shape": [4], "data_offsets": [0.0, 32]},    # not an integer
    ],
)
def test_a_tensor_outside_its_buffer_is_refused(entry):
    buffer = safetensors_buffer({"t": entry}, bytes(32))
    with pytest.raises(ProtocolError):
        wire.tensor_views(buffer)


def test_a_header_longer_than_its_buffer_is_refused():
    buffer = np.frombuffer(struct.pack("<Q", 1 << 40) + b"{}", dtype=np.uint8)
    with pytest.raises(ProtocolError, match="does not fit"):
        wire.tensor_views(buffer)
