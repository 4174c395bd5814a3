"""The client's native frame reader (clients/python/src/framereader.c): local frames read
and hashed on threads that never take the GIL, then checked on the consumer's thread as
every frame is. Its xxh64 is python-xxhash's; its reads fill the parts in order and say
how much they read; the buffers it reads into stay held until the read is collected; a
read dropped or a reader closed with reads under way is safe; and the stream reads local
frames ahead with it by default, with the same batches and the same refusals as without."""

from __future__ import annotations

import json
import os
import subprocess

import lz4.frame
import numpy as np
import pytest
import safetensors.numpy
import xxhash

from mbdata_client import Client, ProtocolError, localframes, wire
from mbdata_client.localframes import LocalFiles, read_ahead
from servetest import SEED, Server, frame_reference

# `make test` installs gcc (SYSTEM_DEPS), so the client's optional native module is built
# wherever these tests run: its absence fails them.
from mbdata_client import _framereader as native  # noqa: E402


def test_the_native_module_reads_ahead_unless_turned_off(monkeypatch):
    assert localframes.native_readers()
    monkeypatch.setenv("MBDATA_NATIVE_READER", "0")
    assert not localframes.native_readers()


@pytest.mark.parametrize("size", [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 100, 4096, 790_547])
def test_its_xxh64_is_python_xxhashs(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert native.xxh64(data) == xxhash.xxh64_intdigest(data)


def test_a_read_fills_its_parts_in_order_and_hashes_what_it_read(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    path = tmp_path / "file"
    path.write_bytes(b"-" * 11 + data)
    descriptor = os.open(path, os.O_RDONLY)
    reader = native.FrameReader(2)
    try:
        parts = [bytearray(19), np.empty(299_973, dtype=np.uint8), bytearray(8)]
        assert reader.start(descriptor, 11, parts).wait() == (300_000, xxhash.xxh64_intdigest(data))
        assert bytes(parts[0]) + parts[1].tobytes() + bytes(parts[2]) == data

        short = [bytearray(19), np.empty(100, dtype=np.uint8)]  # past the file's end
        got, digest = reader.start(descriptor, 11 + 299_990, short).wait()
        assert got == 10 and digest == xxhash.xxh64_intdigest(data[-10:])
    finally:
        reader.close()
        os.close(descriptor)


def test_a_failed_read_raises_oserror_when_collected():
    reader = native.FrameReader(1)
    read = reader.start(-1, 0, [bytearray(4)])
    with pytest.raises(OSError):
        read.wait()
    reader.close()


def test_a_buffer_being_read_into_is_held_until_the_read_is_collected(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x" * 64)
    descriptor = os.open(path, os.O_RDONLY)
    reader = native.FrameReader(1)
    part = bytearray(64)
    read = reader.start(descriptor, 0, [part])
    with pytest.raises(BufferError):
        part.extend(b"more")  # exported to the reader: cannot move
    read.wait()
    part.extend(b"more")  # released once collected
    assert bytes(part) == b"x" * 64 + b"more"
    reader.close()
    os.close(descriptor)


def test_reads_dropped_or_under_way_at_close_are_safe(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(os.urandom(1 << 20))
    descriptor = os.open(path, os.O_RDONLY)
    reader = native.FrameReader(2)
    for _ in range(50):
        reader.start(descriptor, 0, [np.empty(1 << 20, dtype=np.uint8)])  # dropped at once: waited for, then freed
    pending = [reader.start(descriptor, 0, [np.empty(1 << 20, dtype=np.uint8)]) for _ in range(8)]
    reader.close()  # every queued read is done before the threads stop
    assert all(read.wait()[0] == 1 << 20 for read in pending)
    with pytest.raises(RuntimeError):
        reader.start(descriptor, 0, [bytearray(4)])
    os.close(descriptor)


def test_parts_must_be_writable_buffers(tmp_path):
    reader = native.FrameReader(1)
    with pytest.raises(BufferError):
        reader.start(0, 0, [b"read-only bytes"])
    with pytest.raises(TypeError):
        reader.start(0, 0, [object()])
    with pytest.raises(ValueError):
        reader.start(0, 0, [])
    with pytest.raises(ValueError):
        reader.start(0, -1, [bytearray(1)])
    reader.close()


def test_an_error_reading_ahead_comes_before_the_messages_pulled_ahead_of_it():
    def messages():
        yield from (1, 2, 3)
        raise ProtocolError("the fourth is broken")

    seen = []
    with pytest.raises(ProtocolError):
        for message in read_ahead(messages(), depth=2):
            seen.append(message)
    assert seen == [1], "2 and 3 were pulled but not handed on: their batches come again"
    assert list(read_ahead(iter(range(5)), depth=2)) == [0, 1, 2, 3, 4]


def local_frame(tmp_path, payload: bytes, offset: int = 5):
    frame = lz4.frame.compress(payload, content_checksum=True, store_size=True, block_size=lz4.frame.BLOCKSIZE_MAX4MB)
    shard = tmp_path / "shard"
    shard.write_bytes(b"\0" * offset + frame)
    return shard, frame, frame_reference(shard, offset=offset, length=len(frame), checksum=f"{wire.xxh64(frame):016x}")


def test_frames_read_ahead_are_checked_as_frames_read_in_place(tmp_path):
    """Random byte changes to a stored frame in its file: read ahead, each either decodes
    to what the frame held or is refused with ProtocolError, as read on the consumer's thread."""
    payload = safetensors.numpy.save({"x": np.random.default_rng(3).integers(0, 256, 70_000, dtype=np.uint8)})
    shard, frame, reference = local_frame(tmp_path, payload)
    ahead, in_place = LocalFiles(readers=2), LocalFiles()
    assert ahead.reads_ahead and not in_place.reads_ahead
    output = np.empty(len(payload), dtype=np.uint8)
    pending = ahead.start(reference, "batch 0", output)
    assert pending.parts is not None, "a stored frame is read on the reader threads"
    pending.wait()
    assert output.tobytes() == payload
    generator = np.random.default_rng(5)
    outcomes = {"refused": 0, "decoded": 0}
    for _ in range(200):
        mutated = bytearray(frame)
        for _ in range(int(generator.integers(1, 3))):
            mutated[int(generator.integers(0, len(mutated)))] ^= int(generator.integers(1, 256))
        with open(shard, "r+b") as file:
            file.seek(5)
            file.write(mutated)
        results = []
        for files in (ahead, in_place):
            try:
                if files is ahead:
                    files.start(reference, "batch 0", output).wait()
                else:
                    files.receive(reference, "batch 0", output)
                results.append(output.tobytes() == payload)
            except ProtocolError:
                results.append("refused")
        assert results[0] == results[1], results
        outcomes["refused" if results[0] == "refused" else "decoded"] += 1
    assert outcomes["refused"] == 200, outcomes  # every change is caught by the frame's xxh64
    ahead.close()
    in_place.close()


def test_a_frame_laid_out_otherwise_is_received_on_the_consumers_thread(tmp_path):
    payload = bytes(range(256)) * 300  # compresses: not one stored block
    _, _, reference = local_frame(tmp_path, payload)
    files = LocalFiles(readers=1)
    output = np.empty(len(payload), dtype=np.uint8)
    pending = files.start(reference, "batch 0", output)
    assert pending.parts is None
    pending.wait()
    assert output.tobytes() == payload
    files.close()


NOISE_SAMPLES, NOISE_BATCH = 320, 32
DATASET = "digits"  # servetest.Server serves its dataset file as digits.mbdb


@pytest.fixture
def spooled(mbdata_binary, tmp_path):
    """A daemon serving a spool of random 3x32x32 uint8 images (frames that do not compress:
    one stored block each, what the reader threads read) → (daemon, its shard files, the
    images in ingest order: `_id` 1 is the first)."""
    schema = tmp_path / "noise.schema.json"
    schema.write_text(json.dumps({"name": "noise", "key": "id", "fields": [
        {"name": "id", "dtype": "int64"}, {"name": "image", "dtype": "uint8", "shape": [3, 32, 32]}]}))
    images = np.random.default_rng(9).integers(0, 256, (NOISE_SAMPLES, 3, 32, 32), dtype=np.uint8)
    rows = tmp_path / "noise.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "image": image.tolist()}) + "\n" for i, image in enumerate(images)))
    dataset = tmp_path / "noise.mbdb"
    for command in ([str(mbdata_binary), "ingest", str(dataset), "--schema", str(schema), str(rows)],
                    [str(mbdata_binary), "shard", str(dataset), "--out", str(tmp_path / "spool" / "noise"), "--batch-size",
                     str(NOISE_BATCH), "--seed", str(SEED), "--epochs", "1"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    daemon = Server(tmp_path / "serve", dataset, "--spool", tmp_path / "spool").start()
    yield daemon, sorted((tmp_path / "spool" / "noise").glob("*.mbshard")), images
    daemon.stop_ok()


def read_stream(url, group, **options):
    client = Client(url, **options)
    return [(b.index, b.ids.copy(), b["image"].copy()) for b in
            client.batches(DATASET, NOISE_BATCH, seed=SEED, rank=0, world=1, group=group)]


def test_a_stream_reads_its_local_frames_ahead_by_default_with_the_same_batches(spooled, monkeypatch):
    daemon, _, images = spooled
    made, started = [], []
    original_init, original_start = LocalFiles.__init__, LocalFiles.start

    def recording(self, readers=0):
        original_init(self, readers)
        made.append(self.reads_ahead)

    def counting(self, payload, label, output):
        pending = original_start(self, payload, label, output)
        started.append(self.reads_ahead and pending.parts is not None)  # queued on the reader threads
        return pending

    monkeypatch.setattr(LocalFiles, "__init__", recording)
    monkeypatch.setattr(LocalFiles, "start", counting)
    ahead = read_stream(daemon.url, "ahead")
    assert made == [True] and started == [True] * (NOISE_SAMPLES // NOISE_BATCH), "every frame read on the reader threads"
    in_place = read_stream(daemon.url, "in-place", prefetch=0)
    assert made == [True, False]
    monkeypatch.setenv("MBDATA_NATIVE_READER", "0")
    without = read_stream(daemon.url, "without")
    assert made == [True, False, False] and started == [True] * (NOISE_SAMPLES // NOISE_BATCH) + [False] * 2 * (NOISE_SAMPLES // NOISE_BATCH)
    assert [b[0] for b in ahead] == list(range(NOISE_SAMPLES // NOISE_BATCH))
    ids = np.concatenate([b[1] for b in ahead])
    assert sorted(ids.tolist()) == list(range(1, NOISE_SAMPLES + 1))
    assert np.array_equal(np.concatenate([b[2] for b in ahead]), images[ids - 1]), "each sample's own image"
    for a, b, c in zip(ahead, in_place, without):
        assert a[0] == b[0] == c[0]
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2]) and np.array_equal(a[1], c[1]) and np.array_equal(a[2], c[2])


def test_a_byte_flipped_in_a_spooled_frame_is_refused_when_read_ahead(spooled):
    daemon, shards, _ = spooled
    with open(shards[0], "r+b") as file:  # inside the first frame's stored block
        file.seek(300)
        byte = file.read(1)
        file.seek(300)
        file.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ProtocolError, match="checksum"):
        read_stream(daemon.url, "flipped")
