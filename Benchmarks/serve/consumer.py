#!/usr/bin/env python3
"""The do-nothing trainer of the serve benchmark: one measured process.

Every mode delivers batches of 256 CIFAR-shaped samples and "trains" on each the same
way (touch()): the image tensor and the labels as torch tensors, then, through zero-copy
numpy views, a checksum of one byte per 4 KiB page of the image tensor plus the sum of
the labels. Serve modes also ack every batch.

Modes (each peer at its best: one index or query per batch, no per-sample objects):
  numpy      torch DataLoader over an in-memory numpy array (images.npy loaded into RAM):
             a BatchSampler hands the dataset a batch of indices, which it gathers with
             one fancy index per array into `torch.from_numpy` views (batch_size=None, so
             no collate runs)
  sqlite     torch DataLoader over SQLite rows, the same way: one `SELECT … WHERE id IN
             (…256 ids…)` per batch, the blobs joined once into one array; a read-only
             connection opened lazily in each process (worker)
  serve      `mbdata serve` through the Python client (mbdata_client); --ack default
             (`batch.ack()`, the README's loop), sync (`ack(wait=True)`) or window0
             (a Client with ack_window=0)
  adapter    `mbdata serve` through MBDataIterableDataset in a DataLoader (--workers)
  serve-raw  `mbdata serve` read with wire.py (http.client + lz4.frame + numpy, no client)
  idle       no data: the baseline cost of the process (Python, numpy, torch imported)

Protocol with the driver (bench.py): set-up (imports, loading, connecting objects), then
one line `READY {json}` on stdout; the driver answers `go` on stdin; the measured part
runs (the clock starts when `go` is read: time to first batch includes creating the
DataLoader iterator and its workers, or the first HTTP request); then one line
`RESULT {json}` on stdout. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import time
import warnings
from pathlib import Path

T_PROCESS = time.time()  # about when the interpreter got here (imports below count in set-up)

import numpy as np  # noqa: E402
import torch  # noqa: E402

PAGE = 4096
SAMPLE_BYTES = 3 * 32 * 32 + 8  # decoded image + label bytes of one sample

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
warnings.filterwarnings("ignore", message="The given buffer is not writable")


def log(msg: str) -> None:
    print(f"[consumer {os.getpid()}] {msg}", file=sys.stderr, flush=True)


class Trainer:
    """Touches every batch identically; counts samples and notes first/last batch times."""

    def __init__(self, t_go: float, keep_ids: bool, capacity: int) -> None:
        self.t_go = t_go
        self.t_first: float | None = None
        self.t_last = t_go
        self.batches = 0
        self.samples = 0
        self.page_sum = 0
        self.label_sum = 0
        self.keep_ids = keep_ids
        self.ids = np.empty(capacity if keep_ids else 0, dtype=np.int64)
        self.labels = np.empty(capacity if keep_ids else 0, dtype=np.int64)

    def touch(self, image: torch.Tensor, label: torch.Tensor, ids=None, samples: int | None = None) -> None:
        img = image.numpy().reshape(-1)
        lab = label.numpy()
        self.page_sum += int(img[::PAGE].sum(dtype=np.uint64))
        self.label_sum += int(lab.sum())
        n = int(lab.shape[0]) if samples is None else samples
        if self.keep_ids and ids is not None:  # correctness record, outside the touch proper
            self.ids[self.samples : self.samples + n] = ids[:n]
            self.labels[self.samples : self.samples + n] = lab[:n]
        self.samples += n
        self.batches += 1
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first = now
        self.t_last = now


# ------------------------------------------------------------------ DataLoader datasets

class NumpyBatches(torch.utils.data.Dataset):
    """Indexed by a list of indices (from a BatchSampler): one gather per array."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        index = np.asarray(indices)
        return torch.from_numpy(self.images[index]), torch.from_numpy(self.labels[index])


class SQLiteBatches(torch.utils.data.Dataset):
    """Indexed by a list of indices: one SELECT … IN (…) per batch (rows come back in id
    order, which is as random a batch as the sampler's order); the connection is opened
    lazily per process."""

    def __init__(self, db: str, n: int, table: str, id_col: str, id_base: int, shape: tuple[int, ...]) -> None:
        self.db, self.n, self.id_base, self.shape = db, n, id_base, shape
        self.table, self.id_col = table, id_col
        self.con: sqlite3.Connection | None = None
        self.pid = -1
        self.sql: dict[int, str] = {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, indices):
        if self.con is None or self.pid != os.getpid():
            self.con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, check_same_thread=False)
            self.pid = os.getpid()
        count = len(indices)
        sql = self.sql.get(count)
        if sql is None:
            marks = ",".join("?" * count)
            sql = self.sql[count] = f'SELECT image, label FROM "{self.table}" WHERE "{self.id_col}" IN ({marks})'
        rows = self.con.execute(sql, [int(i) + self.id_base for i in indices]).fetchall()
        images, labels = zip(*rows)
        image = np.frombuffer(b"".join(images), dtype=np.uint8).reshape(len(rows), *self.shape)
        return torch.from_numpy(image), torch.tensor(labels, dtype=torch.int64)

    def __getstate__(self):  # never ship an open connection to a worker
        state = dict(self.__dict__)
        state["con"], state["pid"] = None, -1
        return state


def make_loader(dataset, args) -> torch.utils.data.DataLoader:
    g = torch.Generator()
    g.manual_seed(args.seed)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(dataset, generator=g),
                                            batch_size=args.batch_size, drop_last=bool(args.drop_last))
    kw = dict(sampler=sampler, batch_size=None, num_workers=args.workers)
    if args.workers > 0:
        kw["persistent_workers"] = False
    return torch.utils.data.DataLoader(dataset, **kw)


# ------------------------------------------------------------------ serve

def serve_raw_batches(args, info: dict):
    """(image, label, ids, samples) per batch, read with wire.py; acks every batch."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import wire

    stream = wire.Connection(args.url)
    acks = wire.Connection(args.url)
    path = wire.batches_path(args.dataset, batch_size=args.batch_size, seed=args.seed, epoch=0,
                             world=args.world, rank=args.rank, group=args.group)
    resp = stream.request("GET", path)
    if resp.status != 200:
        raise SystemExit(f"GET {path}: HTTP {resp.status} {resp.read()[:300]!r}")
    cursor = resp.getheader("MBData-Cursor")
    info["source"] = resp.getheader("MBData-Source")
    info["remaining"] = resp.getheader("MBData-Remaining")
    end = None
    while True:
        m = wire.read_message(resp)
        if m is None:
            break
        if m.kind == wire.KIND_BATCH:
            tensors, _, _ = wire.decode_batch(m.payload)
            yield tensors["image"], tensors["label"], tensors.get("_id"), m.samples
            wire.ack(acks, cursor, m.epoch, [m.batch])
        else:
            end = m.json()
            break
    info["end"] = end
    stream.close()
    acks.close()


def serve_client_batches(args, info: dict):
    """(image, label, ids, samples) per batch through mbdata_client, acking every batch
    after the trainer has touched it, in the style --ack names."""
    client = Client(args.url, **({"ack_window": 0} if args.ack == "window0" else {}), local_files=bool(args.local_files))
    stream = client.batches(args.dataset, batch_size=args.batch_size, epoch=0, seed=args.seed, rank=args.rank,
                            world=args.world, group=args.group)
    first = True
    wait = True if args.ack == "sync" else None
    for batch in stream:
        if first:
            info["source"] = client.stream_headers.get("mbdata-source")
            info["remaining"] = client.stream_headers.get("mbdata-remaining")
            first = False
        yield batch["image"], batch["label"], batch.ids, batch.samples
        batch.ack(wait=wait)
    client.close()


def adapter_batches(args, info: dict):
    """(image, label, ids, samples) per batch through MBDataIterableDataset in a DataLoader
    with --workers workers (acks: the adapter's default)."""
    data = MBDataIterableDataset(args.url, args.dataset, batch_size=args.batch_size, seed=args.seed,
                                 rank=args.rank, world=args.world, group=args.group)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=args.workers)
    for item in loader:
        yield item["image"], item["label"], item["_id"], int(item["_mbdata"]["samples"])
    info["source"] = "adapter"


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["idle", "numpy", "sqlite", "serve", "serve-raw", "adapter"], required=True)
    ap.add_argument("--ack", choices=["default", "sync", "window0"], default="default", help="serve mode's ack style")
    ap.add_argument("--local-files", type=int, default=1, help="serve mode: Client(local_files=…)")
    ap.add_argument("--n", type=int, required=True, help="samples in the dataset")
    ap.add_argument("--batch-size", type=int, default=256, help="per-process batch (serve: global, = 256 x world)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--drop-last", type=int, default=1)
    ap.add_argument("--images"), ap.add_argument("--labels")
    ap.add_argument("--db"), ap.add_argument("--table", default="samples")
    ap.add_argument("--id-col", default="id"), ap.add_argument("--id-base", type=int, default=1)
    ap.add_argument("--url"), ap.add_argument("--dataset", default="cifar")
    ap.add_argument("--group", default="default")
    ap.add_argument("--world", type=int, default=1), ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--save-ids", help="write the ids and labels seen (npz) after the run (serve modes)")
    args = ap.parse_args()

    t_setup0 = time.time()
    shape = (3, 32, 32)
    info: dict = {}
    if args.mode == "numpy":
        images = np.load(args.images)  # fully into memory
        labels = np.load(args.labels)
        if images.shape[0] != args.n:
            raise SystemExit(f"{args.images}: {images.shape[0]} rows, expected {args.n}")
        source = make_loader(NumpyBatches(images, labels), args)
        info["array_bytes"] = int(images.nbytes + labels.nbytes)
    elif args.mode == "sqlite":
        source = make_loader(SQLiteBatches(args.db, args.n, args.table, args.id_col, args.id_base, shape), args)
    else:
        source = None
    if args.mode in ("serve", "adapter"):  # imported in set-up, as the DataLoader peers' modules are
        global Client, MBDataIterableDataset
        from mbdata_client import Client
        from mbdata_client.torch import MBDataIterableDataset
    serving = args.mode.startswith("serve") or args.mode == "adapter"
    local_batch = args.batch_size // args.world if serving else args.batch_size
    capacity = args.n // max(1, args.world) + local_batch
    trainer_ready = {
        "pid": os.getpid(), "setup_s": round(time.time() - t_setup0, 3), "t_process": T_PROCESS,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    print("READY " + json.dumps(trainer_ready), flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2

    t_go_unix = time.time()
    t_go = time.perf_counter()
    tr = Trainer(t_go, keep_ids=bool(args.save_ids), capacity=capacity)
    if args.mode == "idle":
        time.sleep(0.5)  # lets the driver sample the idle process
    elif args.mode in ("numpy", "sqlite"):
        for image, label in source:
            tr.touch(image, label)
    else:
        readers = {"serve-raw": serve_raw_batches, "serve": serve_client_batches, "adapter": adapter_batches}
        gen = readers[args.mode](args, info)
        for image, label, ids, samples in gen:
            img_t = torch.from_numpy(image) if isinstance(image, np.ndarray) else image
            lab_t = torch.from_numpy(label) if isinstance(label, np.ndarray) else label
            tr.touch(img_t, lab_t, ids, samples)
    t_end = time.perf_counter()

    if args.save_ids:
        np.savez(args.save_ids, ids=tr.ids[: tr.samples], labels=tr.labels[: tr.samples])
    wall = tr.t_last - t_go
    ru = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "mode": args.mode, "workers": args.workers, "world": args.world, "rank": args.rank,
        "batches": tr.batches, "samples": tr.samples,
        "ttfb_s": None if tr.t_first is None else tr.t_first - t_go,
        "wall_s": wall, "loop_s": t_end - t_go,
        "samples_per_s": tr.samples / wall if wall > 0 else None,
        "mb_per_s": tr.samples * SAMPLE_BYTES / 1e6 / wall if wall > 0 else None,
        "t_go_unix": t_go_unix, "t_first_unix": None if tr.t_first is None else t_go_unix + (tr.t_first - t_go),
        "t_last_unix": t_go_unix + wall,
        "page_sum": tr.page_sum, "label_sum": tr.label_sum,
        "self_maxrss_mib": ru.ru_maxrss / 1024,
        **info,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
