#!/usr/bin/env python3
"""The floor of a Python trainer reading a spool: what the numpy DataLoader does, what
reading the spool's frames costs without any client, and the client, in one process and
one sitting, interleaved (the machine's noise moves the peer by ±30% between sittings).

    floor.py --spool Benchmarks/work/serve/spool/w1 --data Benchmarks/work/serve/cifar \
             [--url http://127.0.0.1:PORT --dataset cifar] [--rounds 9]

Contenders, each over one epoch (the spool's frames, 256 samples each):
  peer          DataLoader(BatchSampler(RandomSampler), batch_size=None) over the arrays in
                memory, 0 workers: one gather per batch (bench.py's numpy peer)
  frames        the spool's frames read in batch order, each with one `os.preadv` into a
                reused buffer, its xxh64 checked against the shard footer, the tensors
                viewed: what the client must do at least, with no protocol at all
  frames-nosum  the same without the checksum (what trusting the file would buy)
  frames-threads  the frames read ahead by 2 threads (3 frames in flight), each `preadv` and
                xxh64 outside the GIL (libxxhash through ctypes), handed to the trainer's
                thread in order: what moving the copy and the checksum off the trainer's
                thread would buy in Python (only where libxxhash.so.0 loads)
  frames-native the frames read ahead (2 in flight) by the client's native module
                (`mbdata_client._framereader`: 2 threads that never take the GIL), each
                collected and compared with its checksum on the trainer's thread: the
                floor of the client's default local read-ahead, with no protocol
  client        `Client(url).batches(...)` with `batch.ack()`, the README's loop (--url)
Every contender touches each batch as consumer.py does (torch.from_numpy, a byte per
4 KiB page of the image, the labels' sum). Prints each contender's median samples/s and
its ratio to the peer's median; with --json, one JSON line too.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import struct
import threading
import time
from pathlib import Path

import numpy as np
import torch
import xxhash

from consumer import NumpyBatches  # the benchmark's numpy peer, one gather per batch

PAGE = 4096
FOOTER_ENTRY = struct.Struct("<QQQIIIIQ")  # shard-format.md §3: offset, length, uncompressed, epoch, batch, rank, samples, xxh64
TRAILER = struct.Struct("<QQ8s")  # footer_length, footer_xxh64, "MBSHARD1"
#: A one-stored-block LZ4 frame's bytes before its block: magic, FLG, BD, content size,
#: header checksum, the block's size word (frames.py).
BLOCK_START = 19


class Touch:
    def __init__(self) -> None:
        self.samples = 0
        self.page_sum = 0
        self.label_sum = 0

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> None:
        self.page_sum += int(image.numpy().reshape(-1)[::PAGE].sum(dtype=np.uint64))
        self.label_sum += int(label.numpy().sum())
        self.samples += int(label.shape[0])


class FrameTouch(Touch):
    """`Touch` of spool frames read into buffers: each frame's image and label viewed as
    tensors, at the places the first frame's safetensors header gives."""

    def __init__(self) -> None:
        super().__init__()
        self._tensors = None

    def frame(self, buffer: np.ndarray, uncompressed: int) -> None:
        content = buffer[BLOCK_START : BLOCK_START + uncompressed]
        if self._tensors is None:
            self._tensors = layout(content)
        image, label = (torch.from_numpy(content[begin:end].view(dtype).reshape(shape)) for _, dtype, shape, begin, end in self._tensors)
        self(image, label)


def spool_frames(spool: Path) -> list[tuple[int, int, int, int, int]]:
    """(descriptor, offset, length, uncompressed, xxh64) of every frame, in batch order."""
    frames = []
    for path in sorted(spool.glob("*.mbshard")):
        descriptor = os.open(path, os.O_RDONLY)
        size = os.fstat(descriptor).st_size
        footer_length, _, magic = TRAILER.unpack(os.pread(descriptor, TRAILER.size, size - TRAILER.size))
        assert magic == b"MBSHARD1", path
        footer = os.pread(descriptor, footer_length, size - TRAILER.size - footer_length)
        (count,) = struct.unpack_from("<Q", footer)
        for i in range(count):
            offset, length, uncompressed, _, batch, _, _, checksum = FOOTER_ENTRY.unpack_from(footer, 8 + i * FOOTER_ENTRY.size)
            frames.append((batch, descriptor, offset, length, uncompressed, checksum))
    return [frame[1:] for frame in sorted(frames)]


def layout(buffer: np.ndarray) -> list[tuple[str, np.dtype, tuple[int, ...], int, int]]:
    """The image and label tensors' (name, dtype, shape, begin, end) in a safetensors buffer."""
    (length,) = struct.unpack_from("<Q", buffer.tobytes()[:8])
    header = json.loads(buffer[8 : 8 + length].tobytes())
    dtypes = {"U8": np.uint8, "I64": np.int64}
    return [(name, np.dtype(dtypes[header[name]["dtype"]]), tuple(header[name]["shape"]), *(8 + length + o for o in header[name]["data_offsets"]))
            for name in ("image", "label")]


def read_frames(frames, check: bool) -> float:
    buffer = np.empty(max(f[2] for f in frames), np.uint8)
    touch = FrameTouch()
    started = time.perf_counter()
    for descriptor, offset, length, uncompressed, checksum in frames:
        view = memoryview(buffer)[:length]
        if os.preadv(descriptor, [view], offset) != length:
            raise SystemExit("a frame came short")
        if check and xxhash.xxh64_intdigest(view) != checksum:
            raise SystemExit("a frame's checksum is wrong")
        touch.frame(buffer, uncompressed)
    return touch.samples / (time.perf_counter() - started)


def gil_free_xxh64():
    """libxxhash's XXH64 through ctypes (which releases the GIL for the call), or None."""
    try:
        library = ctypes.CDLL("libxxhash.so.0")
    except OSError:
        return None
    library.XXH64.restype = ctypes.c_uint64
    library.XXH64.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint64]
    return library.XXH64


def read_frames_threaded(frames, xxh64, threads: int = 2, ahead: int = 3) -> float:
    """`read_frames` with the reads and checksums on `threads` threads, `ahead` frames in
    flight, each frame into a buffer of its own, delivered in order."""
    length = max(f[2] for f in frames)
    buffers: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(ahead + 2):
        buffers.put(np.empty(length, np.uint8))
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    done: dict[int, tuple[np.ndarray, bool]] = {}
    ready = threading.Condition()

    def reader() -> None:
        while (job := jobs.get()) is not None:
            index, (descriptor, offset, size, _, checksum), buffer = job
            ok = os.preadv(descriptor, [memoryview(buffer)[:size]], offset) == size and xxh64(buffer.ctypes.data, size, 0) == checksum
            with ready:
                done[index] = (buffer, ok)
                ready.notify_all()

    workers = [threading.Thread(target=reader, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    touch = FrameTouch()
    started = time.perf_counter()
    for index in range(min(ahead, len(frames))):
        jobs.put((index, frames[index], buffers.get()))
    for index in range(len(frames)):
        with ready:
            while index not in done:
                ready.wait()
            buffer, ok = done.pop(index)
        if not ok:
            raise SystemExit("a frame came short or its checksum is wrong")
        if index + ahead < len(frames):
            jobs.put((index + ahead, frames[index + ahead], buffers.get()))
        touch.frame(buffer, frames[index][3])
        buffers.put(buffer)
    seconds = time.perf_counter() - started
    for _ in workers:
        jobs.put(None)
    return touch.samples / seconds


def read_frames_native(frames, threads: int = 2, ahead: int = 2) -> float:
    """The frames read by `mbdata_client._framereader`, `ahead` in flight, in order."""
    from mbdata_client import _framereader

    reader = _framereader.FrameReader(threads)
    length = max(f[2] for f in frames)
    buffers = [np.empty(length, np.uint8) for _ in range(ahead + 2)]
    in_flight: list = []
    touch = FrameTouch()
    started = time.perf_counter()

    def start(index: int) -> None:
        descriptor, offset, size, _, _ = frames[index]
        buffer = buffers[index % len(buffers)]
        in_flight.append((reader.start(descriptor, offset, [memoryview(buffer)[:size]]), buffer))

    for index in range(min(ahead, len(frames))):
        start(index)
    for index, (_, _, size, uncompressed, checksum) in enumerate(frames):
        if index + ahead < len(frames):
            start(index + ahead)
        read, buffer = in_flight.pop(0)
        if read.wait() != (size, checksum):
            raise SystemExit("a frame came short or its checksum is wrong")
        touch.frame(buffer, uncompressed)
    seconds = time.perf_counter() - started
    reader.close()
    return touch.samples / seconds


def numpy_peer(images: np.ndarray, labels: np.ndarray, batch: int) -> float:
    generator = torch.Generator()
    generator.manual_seed(7)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(len(labels)), generator=generator), batch, drop_last=True)
    loader = torch.utils.data.DataLoader(NumpyBatches(images, labels), sampler=sampler, batch_size=None, num_workers=0)
    touch = Touch()
    started = time.perf_counter()
    for image, label in loader:
        touch(image, label)
    return touch.samples / (time.perf_counter() - started)


def client_loop(url: str, dataset: str, batch: int) -> float:
    from mbdata_client import Client

    client = Client(url)
    touch = Touch()
    started = time.perf_counter()
    for item in client.batches(dataset, batch_size=batch, epoch=0, seed=7, group=f"floor-{time.time_ns()}"):
        touch(torch.from_numpy(item["image"]), torch.from_numpy(item["label"]))
        item.ack()
    seconds = time.perf_counter() - started
    client.close()
    return touch.samples / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="folder of images.npy and labels.npy")
    ap.add_argument("--url")
    ap.add_argument("--dataset", default="cifar")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    frames = spool_frames(args.spool)
    images, labels = np.load(args.data / "images.npy"), np.load(args.data / "labels.npy")
    contenders = {
        "peer": lambda: numpy_peer(images, labels, args.batch_size),
        "frames": lambda: read_frames(frames, check=True),
        "frames-nosum": lambda: read_frames(frames, check=False),
    }
    xxh64 = gil_free_xxh64()
    if xxh64 is not None:
        contenders["frames-threads"] = lambda: read_frames_threaded(frames, xxh64)
    try:
        from mbdata_client import _framereader  # noqa: F401
        contenders["frames-native"] = lambda: read_frames_native(frames)
    except ImportError:
        pass
    if args.url:
        contenders["client"] = lambda: client_loop(args.url, args.dataset, args.batch_size)
    for run in contenders.values():  # warm the page cache and the allocator
        run()
    results: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else reversed(order):
            results[name].append(contenders[name]())
    peer = float(np.median(results["peer"]))
    summary = {}
    for name, values in results.items():
        median = float(np.median(values))
        summary[name] = {"median": median, "ratio": median / peer, "runs": values}
        print(f"{name:13s} {median:>12,.0f} samples/s  {median / peer:.2f}x the peer  "
              f"(quartiles {np.percentile(values, 25):,.0f}-{np.percentile(values, 75):,.0f})")
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
