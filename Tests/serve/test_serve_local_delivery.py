"""Local delivery (protocol 1.3): a client on the daemon's host reads spooled frames from
the daemon's shard files instead of the socket. The same batches as through the socket;
the daemon names each frame's file, identity and place; a file written over since the
daemon opened it, or one the client cannot read, makes the stream reopen through the
socket with nothing lost or repeated; bytes changed in place are caught by the frame's
checksum; and a reference to anything but a frame inside a regular file is refused."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading

import lz4.frame
import numpy as np
import pytest
import safetensors.numpy

from mbdata_client import Client, ProtocolError, wire
from mbdata_client.localframes import LocalFiles, LocalFilesUnavailable
from servetest import BATCH, SEED, TRAIN_BATCHES, frame_reference, metric_samples, request, shard_train_epoch

STREAM = "/v1/datasets/digits/batches"


@pytest.fixture
def spooled(make_server, mbdata_binary, tmp_path):
    """A daemon with a spool holding the train split's epoch 0 (seed SEED, batch BATCH)."""
    spool = tmp_path / "spool"
    daemon = make_server("--spool", spool, start=False)
    shard_train_epoch(mbdata_binary, daemon.dataset, spool / "digits-train")
    daemon.start()
    return daemon, sorted((spool / "digits-train").glob("*.mbshard"))


def read_all(url, group, **options):
    client = Client(url, **options)
    batches = [(b.index, b.ids.copy(), b["image"].copy(), b["label"].copy())
               for b in client.batches("digits", BATCH, seed=SEED, rank=0, world=1, group=group, split="train")]
    return client, batches


def test_local_delivery_gives_the_batches_the_socket_gives(spooled, reference):
    daemon, _ = spooled
    local, through_files = read_all(daemon.url, "local")
    assert local.stream_headers["mbdata-delivery"] == "local" and local.stream_headers["mbdata-source"] == "spool"
    assert local.stream_fallbacks == []
    socket_client, through_socket = read_all(daemon.url, "socket", local_files=False)
    assert socket_client.stream_headers["mbdata-delivery"] == "stream"
    assert [b[0] for b in through_files] == list(range(TRAIN_BATCHES))
    assert [b[1].tolist() for b in through_files] == [i.tolist() for i in reference(SEED, 0)]
    for a, b in zip(through_files, through_socket):
        assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])


def test_local_batches_written_in_runs_come_in_order_and_are_each_counted_once(spooled):
    # The daemon writes local batch messages 16 at a time: 22 batches are two runs.
    daemon, _ = spooled
    client = Client(daemon.url)
    before = metric_samples(client.metrics_text())
    batches = [b.index for b in client.batches("digits", BATCH, seed=SEED, rank=0, world=1, group="runs", split="train")]
    after = metric_samples(client.metrics_text())
    assert client.stream_headers["mbdata-delivery"] == "local"
    assert batches == list(range(TRAIN_BATCHES))
    assert after["mbdata_batches_served_total"] - before.get("mbdata_batches_served_total", 0) == TRAIN_BATCHES


def stream_threads_while_reading(url, group, **options) -> set[bool]:
    """Whether a reader thread ("mbdata-stream") ran at each batch of a stream."""
    seen = set()
    for _ in Client(url, **options).batches("digits", BATCH, seed=SEED, rank=0, world=1, group=group, split="train"):
        seen.add(any(thread.name == "mbdata-stream" for thread in threading.enumerate()))
    return seen


def test_spooled_frames_read_locally_are_read_on_the_consumers_thread_and_others_ahead(spooled, server):
    # A local frame costs a pread and a checksum: handing it between threads costs more.
    daemon, _ = spooled
    assert stream_threads_while_reading(daemon.url, "local") == {False}
    assert stream_threads_while_reading(daemon.url, "socket", local_files=False) == {True}
    assert stream_threads_while_reading(server.url, "live") == {True}  # no spool: frames come through the socket
    assert stream_threads_while_reading(daemon.url, "asked", prefetch=2) == {True}


def raw_messages(body):
    """The messages of a stream body as sent (a client's readers turn local batches into batches)."""
    messages, position = [], 0
    while position < len(body):
        message = wire.parse_header(body[position : position + wire.HEADER.size])
        start = position + wire.HEADER.size
        message.payload = body[start : start + message.length]
        assert wire.xxh64(message.payload) == message.checksum
        messages.append(message)
        position = start + message.length
    return messages


def test_the_daemon_names_each_frames_file_identity_and_place(spooled):
    daemon, shards = spooled
    status, headers, body = request(
        daemon.port, "GET", f"{STREAM}?batch_size={BATCH}&seed={SEED}&group=raw&split=train&delivery=local")
    assert status == 200 and headers["mbdata-delivery"] == "local", (status, headers)
    messages = raw_messages(body)
    assert [m.kind for m in messages] == [wire.KIND_LOCAL] * TRAIN_BATCHES + [wire.KIND_END]
    identities = {(os.stat(p).st_dev, os.stat(p).st_ino): p for p in shards}
    for message in messages[:-1]:
        reference = json.loads(message.payload)
        assert os.path.isabs(reference["path"])
        info = os.stat(reference["path"])
        assert (reference["device"], reference["inode"]) == (info.st_dev, info.st_ino)
        assert (info.st_dev, info.st_ino) in identities
        with open(reference["path"], "rb") as file:
            file.seek(reference["offset"])
            frame = file.read(reference["length"])
        assert wire.xxh64(frame) == int(reference["frame_checksum"], 16)
        assert wire.carries_content_checksum(frame)

    # A plan with no shard set is prepared live: frames in the body, whatever was asked.
    status, headers, body = request(
        daemon.port, "GET", f"{STREAM}?batch_size={BATCH}&seed={SEED + 1}&group=raw-live&split=train&delivery=local")
    assert status == 200 and headers["mbdata-delivery"] == "stream" and headers["mbdata-source"] == "live"
    assert wire.read_message(io.BytesIO(body).read).kind == wire.KIND_BATCH


def test_delivery_is_checked(spooled):
    daemon, _ = spooled
    status, _, body = request(daemon.port, "GET", f"{STREAM}?batch_size={BATCH}&group=bad&delivery=shared-memory")
    assert status == 400 and b"delivery" in body, body
    status, _, body = request(daemon.port, "POST", f"/v1/datasets/digits/lease?batch_size={BATCH}&group=bad&delivery=local")
    assert status == 400 and b"delivery" in body, body


def test_a_shard_written_over_since_the_daemon_opened_it_sends_the_stream_through_the_socket(spooled, reference):
    daemon, shards = spooled
    for shard in shards:  # the same bytes in another file: another inode at the path
        copy = shard.with_suffix(".copy")
        shutil.copyfile(shard, copy)
        os.replace(copy, shard)
    client, batches = read_all(daemon.url, "replaced")
    assert client.stream_headers["mbdata-delivery"] == "stream", "reopened without local delivery"
    assert len(client.stream_fallbacks) == 1 and "not the file the daemon has open" in client.stream_fallbacks[0]
    assert [b[1].tolist() for b in batches] == [i.tolist() for i in reference(SEED, 0)], "nothing lost or repeated"


def test_bytes_changed_in_place_are_caught_by_the_frames_checksum(spooled):
    daemon, shards = spooled
    with open(shards[0], "r+b") as file:  # the same inode, a byte inside the first frame flipped
        file.seek(200)
        byte = file.read(1)
        file.seek(200)
        file.write(bytes([byte[0] ^ 0xFF]))
    client = Client(daemon.url)
    with pytest.raises(ProtocolError, match="checksum"):
        list(client.batches("digits", BATCH, seed=SEED, rank=0, world=1, group="flipped", split="train"))


def test_a_reference_to_anything_but_a_frame_inside_a_regular_file_is_refused(tmp_path):
    files = LocalFiles()
    output = np.empty(64, dtype=np.uint8)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(LocalFilesUnavailable, match="not a regular file"):
        files.receive(frame_reference(fifo), "batch 0", output)  # and the open did not block
    with pytest.raises(LocalFilesUnavailable, match="cannot open"):
        files.receive(frame_reference(tmp_path, path=str(tmp_path / "missing")), "batch 0", output)
    data = tmp_path / "data"
    data.write_bytes(b"x" * 100)
    with pytest.raises(ProtocolError, match="lies outside"):
        files.receive(frame_reference(data, offset=90, length=20), "batch 0", output)
    with pytest.raises(ProtocolError, match="absolute path"):
        files.receive(frame_reference(data, path="relative/shard"), "batch 0", output)
    with pytest.raises(ProtocolError, match="out of range"):
        files.receive(frame_reference(data, length=0), "batch 0", output)
    with pytest.raises(ProtocolError, match="not a local frame"):
        files.receive(b"[1, 2]", "batch 0", output)
    with pytest.raises(LocalFilesUnavailable, match="another device or inode"):
        files.receive(frame_reference(data, inode=os.stat(data).st_ino + 1), "batch 0", output)
    with pytest.raises(ProtocolError, match="not an LZ4 frame"):
        files.receive(frame_reference(data, length=50), "batch 0", output)
    files.close()


def test_a_fallback_mid_stream_delivers_each_batch_once(spooled, monkeypatch):
    """The files become unreadable after five frames: the stream reopens through the socket
    after the five acks reached the daemon, so no batch comes twice and none is missing."""
    daemon, _ = spooled
    opened = {"frames": 0}
    original = LocalFiles._open

    def failing_after_five(self, reference):
        opened["frames"] += 1
        if opened["frames"] > 5:
            raise LocalFilesUnavailable("the test took the files away")
        return original(self, reference)

    monkeypatch.setattr(LocalFiles, "_open", failing_after_five)
    client = Client(daemon.url)
    seen = []
    for batch in client.batches("digits", BATCH, seed=SEED, rank=0, world=1, group="midway", split="train"):
        seen.append(batch.index)
        batch.ack()
    client.close()
    assert seen == list(range(TRAIN_BATCHES)), seen
    assert client.stream_fallbacks == ["the test took the files away"]
    assert client.stream_headers["mbdata-delivery"] == "stream"


def test_a_reference_is_read_as_the_spec_writes_it(tmp_path):
    data = tmp_path / "data"
    data.write_bytes(b"x" * 100)
    files = LocalFiles()
    output = np.empty(64, dtype=np.uint8)
    for changes, problem in [({"offset": 1.0}, "must be integers"), ({"length": True}, "must be integers"),
                             ({"inode": "7"}, "must be integers"), ({"frame_checksum": "0x" + "0" * 14}, "16 lower-case"),
                             ({"frame_checksum": "A" * 16}, "16 lower-case"), ({"frame_checksum": 0}, "16 lower-case")]:
        with pytest.raises(ProtocolError, match=problem):
            files.receive(frame_reference(data, **changes), "batch 0", output)
    files.close()


def test_mutated_references_are_refused_as_protocol_errors(tmp_path):
    """Random byte changes to a good reference and to its frame: each read either decodes
    the frame or raises ProtocolError (LocalFilesUnavailable is one), nothing else."""
    payload = safetensors.numpy.save({"_id": np.arange(4, dtype=np.int64)})
    frame = lz4.frame.compress(payload, content_checksum=True, store_size=True)
    shard = tmp_path / "shard"
    shard.write_bytes(b"\0" * 7 + frame)
    good = frame_reference(shard, offset=7, length=len(frame), checksum=f"{wire.xxh64(frame):016x}")
    files = LocalFiles()
    output = np.empty(len(payload), dtype=np.uint8)
    assert files.receive(good, "batch 0", output) == (len(frame), wire.xxh64(frame))
    assert output.tobytes() == payload
    generator = np.random.default_rng(11)
    for _ in range(500):
        mutated = bytearray(good)
        for _ in range(int(generator.integers(1, 4))):
            mutated[int(generator.integers(0, len(mutated)))] = int(generator.integers(0, 256))
        try:
            files.receive(bytes(mutated), "batch 0", output)
        except ProtocolError:
            pass
    files.close()
