"""The client alone, without the daemon: the message reader against hand-made messages
(good, corrupt, cut), and the client's reconnects, retries, errors and share loop against
a scripted fake HTTP server."""

from __future__ import annotations

import io
import json

import lz4.frame
import numpy as np
import pytest
import safetensors.numpy

from mbdata_client import MBDataError, ProtocolError, StreamCutError, StreamFailedError, wire
from mbdata_client.client import acked_batches, rank_and_world
from servetest import fast_client


def batch_message(index, *, epoch=0, rank=0, lease=0, rows=4):
    ids = np.arange(index * rows + 1, (index + 1) * rows + 1, dtype=np.int64)
    tensors = {"x": (ids * 10).astype(np.int32), "_id": ids}
    metadata = {"format": "mbdata-batch-1", "epoch": str(epoch), "batch": str(index), "rank": str(rank)}
    return wire.encode_batch(tensors, epoch=epoch, batch=index, rank=rank, lease=lease, metadata=metadata)


def end_message(reason="complete", sent=0):
    return wire.encode_message(wire.KIND_END, json.dumps({"reason": reason, "sent": sent}).encode())


def reader(data: bytes):
    view = memoryview(data)
    position = 0

    def read(count):
        nonlocal position
        chunk = bytes(view[position:position + count])
        position += len(chunk)
        return chunk

    return read


# --- messages ---------------------------------------------------------------------------


def test_a_batch_message_round_trips():
    data = batch_message(3, epoch=2, rank=1)
    message = wire.read_message(reader(data))
    assert (message.kind, message.epoch, message.batch, message.rank, message.samples) == (1, 2, 3, 1, 4)
    assert message.length == len(data) - 56
    tensors, metadata = wire.decode_batch(message)
    assert tensors["_id"].tolist() == [13, 14, 15, 16]
    assert tensors["x"].tolist() == [130, 140, 150, 160]
    assert metadata["batch"] == "3"


def test_the_header_layout_is_the_protocols():
    payload = b'{"reason": "complete", "sent": 0}'
    data = wire.encode_message(wire.KIND_END, payload, epoch=5, batch=6, rank=7, samples=8, uncompressed=9, lease=10)
    assert data[0:4] == b"MBW1" and data[4] == 2 and data[5:8] == b"\0\0\0"
    assert int.from_bytes(data[8:12], "little") == 5
    assert int.from_bytes(data[12:16], "little") == 6
    assert int.from_bytes(data[16:20], "little") == 7
    assert int.from_bytes(data[20:24], "little") == 8
    assert int.from_bytes(data[24:32], "little") == 9
    assert int.from_bytes(data[32:40], "little") == len(payload)
    assert int.from_bytes(data[40:48], "little") == wire.xxh64(payload)
    assert int.from_bytes(data[48:56], "little") == 10
    assert data[56:] == payload


def test_a_message_with_a_wrong_magic_is_rejected():
    data = bytearray(batch_message(0))
    data[0:4] = b"MBW2"
    with pytest.raises(ProtocolError, match="magic"):
        wire.read_message(reader(bytes(data)))


@pytest.mark.parametrize("kind", [0, 5, 255])
def test_a_message_with_a_wrong_kind_is_rejected(kind):
    data = bytearray(batch_message(0))
    data[4] = kind
    with pytest.raises(ProtocolError, match="kind"):
        wire.read_message(reader(bytes(data)))


def test_a_local_batch_where_none_was_asked_for_is_rejected():
    data = bytearray(batch_message(0))
    data[4] = wire.KIND_LOCAL
    with pytest.raises(ProtocolError, match="no local delivery was asked for"):
        wire.read_message(reader(bytes(data)))
    with pytest.raises(ProtocolError, match="did not ask for one"):
        wire.MessageReader(io.BytesIO(bytes(data)).readinto).read()


def test_a_message_with_a_wrong_checksum_is_rejected():
    data = bytearray(end_message())
    data[-2] ^= 0xFF  # inside the JSON payload
    with pytest.raises(ProtocolError, match="checksum") as caught:
        wire.read_message(reader(bytes(data)))
    assert not isinstance(caught.value, StreamCutError)

    # A frame without a content checksum is checked against the message's xxh64.
    tensors = {"_id": np.arange(1, 5, dtype=np.int64)}
    bare = lz4.frame.compress(safetensors.numpy.save(tensors), store_size=True, content_checksum=False)
    data = bytearray(wire.encode_message(wire.KIND_BATCH, bare, uncompressed=len(safetensors.numpy.save(tensors))))
    data[-5] ^= 0xFF
    with pytest.raises(ProtocolError, match="checksum"):
        wire.read_message(reader(bytes(data)))


@pytest.mark.parametrize("native", [True, False])
def test_a_corrupted_batch_frame_is_rejected(native, monkeypatch):
    from mbdata_client import lz4native

    if native and lz4native.decompress is None:
        pytest.skip("no liblz4 >= 1.9.4 here")
    if not native:
        monkeypatch.setattr(lz4native, "decompress", None)
    for position, flip in ((-1, 0xFF), (-12, 0x01)):  # the content checksum; a data byte
        data = bytearray(batch_message(0))
        data[position] ^= flip
        # natively the frame's xxh64 fails on arrival; python-lz4 fails the content checksum
        with pytest.raises(ProtocolError, match="(?i)checksum|does not decode"):
            wire.decode_batch(wire.read_message(reader(bytes(data))))
    good = wire.read_message(reader(batch_message(3)))
    tensors, metadata = wire.decode_batch(good)
    assert list(tensors["_id"]) == [13, 14, 15, 16] and metadata["batch"] == "3"


@pytest.mark.parametrize("keep", [1, 30, 55, 56, 57, -1])
def test_a_cut_message_raises_stream_cut(keep):
    data = batch_message(0)
    with pytest.raises(StreamCutError):
        wire.read_message(reader(data[:keep] if keep > 0 else data[:keep]))


def test_the_end_of_a_stream_at_a_message_boundary_is_not_an_error():
    data = batch_message(0) + batch_message(1)
    read = reader(data)
    assert wire.read_message(read).batch == 0
    assert wire.read_message(read).batch == 1
    assert wire.read_message(read) is None


def test_an_implausible_length_is_rejected_before_reading():
    data = bytearray(batch_message(0))
    data[32:40] = (1 << 40).to_bytes(8, "little")
    with pytest.raises(ProtocolError, match="limit"):
        wire.read_message(reader(bytes(data)))


@pytest.mark.parametrize("kind, length, uncompressed", [
    (wire.KIND_BATCH, 2**63 - 1, 10), (wire.KIND_BATCH, 2**64 - 1, 10), (wire.KIND_BATCH, 10, 2**63 - 1),
    (wire.KIND_BATCH, 0, 10), (wire.KIND_BATCH, 10, 0), (wire.KIND_END, (1 << 20) + 1, 0), (wire.KIND_ERROR, 2**62, 0),
])
def test_header_sizes_that_do_not_fit_are_rejected_before_reading(kind, length, uncompressed):
    header = wire.HEADER.pack(wire.MAGIC, kind, b"\0\0\0", 0, 0, 0, 0, uncompressed, length, 0, 0)
    with pytest.raises(ProtocolError):
        wire.parse_header(header)
    with pytest.raises(ProtocolError):  # nothing past the header is read or allocated
        wire.read_message(reader(header))


def test_a_payload_that_is_not_an_lz4_frame_is_rejected():
    data = wire.encode_message(wire.KIND_BATCH, b"not a frame at all", uncompressed=10)
    message = wire.read_message(reader(data))
    with pytest.raises(ProtocolError, match="LZ4"):
        wire.decode_batch(message)


def test_a_frame_whose_size_differs_from_the_header_is_rejected():
    good = wire.read_message(reader(batch_message(0)))
    data = wire.encode_message(wire.KIND_BATCH, good.payload, uncompressed=good.uncompressed + 1)
    with pytest.raises(ProtocolError):
        wire.decode_batch(wire.read_message(reader(data)))


def test_a_stream_reconnects_after_a_cut_a_draining_end_and_a_503(fake):
    fake.stream(batch_message(0) + batch_message(1) + batch_message(2)[:100])  # cut inside batch 2
    fake.stream(batch_message(2) + batch_message(3) + end_message("draining", 2))
    fake.json(503, {"error": {"code": "draining", "message": "shutting down"}})
    fake.stream(batch_message(4) + end_message("complete", 1))
    client = fast_client(fake.url)
    got = [b.index for b in client.batches("digits", 8, epoch=0, seed=7, rank=0, world=1, split="train")]
    assert got == [0, 1, 2, 3, 4]
    assert [r["method"] for r in fake.requests] == ["GET"] * 4
    queries = [r["query"] for r in fake.requests]
    assert all(q == queries[0] for q in queries), "reconnects must repeat the same parameters"
    # delivery=local: the daemon is on this host (a loopback URL), so the client offers to
    # read spooled frames from its files; a daemon that answers frames is read as before.
    assert queries[0] == {"batch_size": "8", "seed": "7", "epoch": "0", "world": "1", "rank": "0", "tail": "drop",
                          "shuffle": "true", "group": "default", "split": "train", "delivery": "local"}
    assert client.cursor_id == "c-test"


def test_a_stream_without_an_end_message_reconnects(fake):
    fake.stream(batch_message(0))
    fake.stream(batch_message(1) + end_message())
    assert [b.index for b in fast_client(fake.url).batches("d", 8, rank=0, world=1)] == [0, 1]


def test_a_stream_that_keeps_being_cut_gives_up(fake):
    for _ in range(4):
        fake.stream(batch_message(0)[:10])
    client = fast_client(fake.url, retries=3)
    with pytest.raises(StreamCutError, match="gave up"):
        list(client.batches("d", 8, rank=0, world=1))
    assert len(fake.requests) == 4


def test_a_corrupt_message_in_a_stream_raises(fake):
    data = bytearray(batch_message(0))
    data[-1] ^= 1
    fake.stream(bytes(data))
    with pytest.raises(ProtocolError, match="(?i)checksum"):
        list(fast_client(fake.url).batches("d", 8, rank=0, world=1))


def test_an_error_message_in_a_stream_raises(fake):
    error = json.dumps({"error": {"code": "internal", "message": "disk on fire"}}).encode()
    fake.stream(batch_message(0) + wire.encode_message(wire.KIND_ERROR, error))
    stream = fast_client(fake.url).batches("d", 8, rank=0, world=1)
    assert next(stream).index == 0
    with pytest.raises(StreamFailedError) as caught:
        next(stream)
    assert caught.value.code == "internal" and "disk on fire" in caught.value.message


def test_http_errors_raise_mbdata_error_with_the_bodys_code(fake):
    fake.json(400, {"error": {"code": "invalid_parameter", "message": "world 3 does not divide batch_size 64"}})
    with pytest.raises(MBDataError) as caught:
        list(fast_client(fake.url).batches("d", 64, rank=0, world=3))
    assert (caught.value.status, caught.value.code) == (400, "invalid_parameter")
    assert "world" in caught.value.message


def test_a_wrong_content_type_is_a_protocol_error(fake):
    fake.script.append((200, {"Content-Type": "text/html", "MBData-Cursor": "c"}, b"<html>"))
    with pytest.raises(ProtocolError, match="content type"):
        list(fast_client(fake.url).batches("d", 8, rank=0, world=1))


def test_acks_post_the_protocols_bodies(fake):
    fake.stream(batch_message(0, epoch=3) + end_message())
    fake.json(200, {"cursor": "c-test", "epochs": [{"epoch": 3, "low_watermark": 1, "acked_above": []}]})
    client = fast_client(fake.url)
    (batch,) = list(client.batches("d", 8, epoch=3, rank=0, world=1))
    state = batch.ack(wait=True)
    assert acked_batches(state, 3) == {0}
    ack = fake.requests[-1]
    assert (ack["method"], ack["path"]) == ("POST", "/v1/cursors/c-test/acks")
    assert ack["body"] == b'{"epoch": 3, "batches": [0]}'  # byte for byte, as clients have always sent it
    assert ack["headers"]["Content-Type"] == "application/json"


def test_resume_puts_the_state_first_and_checks_the_plan(fake):
    state = {"cursor": "c-test", "dataset": "d", "group": "g", "mode": "partition", "rank": 0, "replica": 0,
             "plan": {"seed": 7, "batch_size": 8, "world": 1, "tail": "drop", "split": "train", "shuffle": True},
             "epochs": [{"epoch": 0, "low_watermark": 1, "acked_above": []}]}
    with pytest.raises(ValueError, match="seed"):
        fast_client(fake.url).batches("d", 8, seed=8, rank=0, world=1, group="g", split="train", resume=state)
    fake.json(200, state)
    fake.stream(batch_message(1) + end_message())
    got = list(fast_client(fake.url).batches("d", 8, seed=7, rank=0, world=1, group="g", split="train",
                                             resume=state))
    assert [b.index for b in got] == [1]
    put = fake.requests[0]
    assert (put["method"], put["path"], json.loads(put["body"])) == ("PUT", "/v1/cursors/c-test", state)


def test_share_waits_on_204_and_stops_at_the_end_message(fake):
    fake.script.append((204, {"Retry-After": "5"}, b""))
    fake.stream(batch_message(0, lease=17))
    fake.json(200, {"cursor": "c-test", "epochs": []})
    fake.stream(end_message())
    client = fast_client(fake.url, poll_interval=0.01)
    got = []
    for batch in client.share("d", 8, group="g", lease_seconds=5):
        assert batch.lease == 17
        got.append(batch.index)
        batch.ack(wait=True)  # before the next lease request, as the script expects
    assert got == [0]
    methods = [(r["method"], r["path"]) for r in fake.requests]
    assert methods == [("POST", "/v1/datasets/d/lease")] * 2 + [("POST", "/v1/cursors/c-test/acks"),
                                                                 ("POST", "/v1/datasets/d/lease")]
    assert fake.requests[2]["body"] == b'{"leases": [17]}'
    assert fake.requests[0]["query"]["lease_seconds"] == "5"


def test_the_token_comes_from_the_environment(fake, monkeypatch):
    monkeypatch.setenv("MBDATA_TOKEN", "s3cret")
    fake.json(200, {"status": "ok"})
    assert fast_client(fake.url).health() == {"status": "ok"}
    assert fake.requests[0]["headers"]["Authorization"] == "Bearer s3cret"


def test_dataset_names_are_quoted_into_one_path_segment(fake):
    fake.json(404, {"error": {"code": "unknown_dataset", "message": "no dataset ../x"}})
    with pytest.raises(MBDataError):
        fast_client(fake.url).dataset("../x")
    assert fake.requests[0]["path"] == "/v1/datasets/..%2Fx"


def test_rank_and_world_come_from_torchrun_variables(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_and_world() == (0, 1)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert rank_and_world() == (3, 4)
    assert rank_and_world(1, 2) == (1, 2)
    with pytest.raises(ValueError):
        rank_and_world(4, 4)
