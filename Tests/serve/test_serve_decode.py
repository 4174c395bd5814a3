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


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "I64", "shape": [4], "data_offsets": [0, 64]},      # past the end
        {"dtype": "I64", "shape": [3], "data_offsets": [0, 32]},      # size not the shape's
        {"dtype": "X9", "shape": [4], "data_offsets": [0, 32]},       # unknown dtype
        {"dtype": "I64", "shape": [-4], "data_offsets": [0, 32]},     # negative dimension
        {"dtype": "I64", "shape": [4], "data_offsets": [16, 8]},      # reversed range
        {"dtype": "I64", "shape": [4]},                                # no offsets
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
