#!/usr/bin/env python3
"""One measured Python process of the inference benchmark (bench.py starts it).

Write-back modes (a do-nothing model: outputs.Precomputed, a view per batch):
  serve      `mbdata serve` through the Python client: client.infer(...), batch.submit(outputs)
             (queued with --submit-window above 0)
  peer       read the samples from the dataset file batch by batch in _id order (numpy), write
             the outputs into an SQLite table of the same file with executemany, WAL mode, one
             transaction per batch, arrays as little-endian blobs
  npsave     the same reads; np.save of each batch's _id and outputs into a directory
Read-side modes (the same loops, nothing written):
  serve-read   client.infer(...) without submitting, stopped after --batches batches
  share-read   client.share(...) (training's work-sharing stream), every batch acked
  sqlite-read  the peer's reads alone

Protocol (as Benchmarks/serve/consumer.py): set up, print `READY {json}`, wait for `go` on
stdin (the clock starts there), run, print `RESULT {json}`. Every mode touches each batch
alike: one byte per 4 KiB page of the image, the sum of the labels.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outputs import Precomputed  # noqa: E402

PAGE = 4096


def log(msg: str) -> None:
    print(f"[consumer {os.getpid()}] {msg}", file=sys.stderr, flush=True)


class Tally:
    """Rows and batches done, the first and last batch's times, the touch's checksum."""

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0
        self.checksum = 0
        self.t_first: float | None = None
        self.t_last: float | None = None

    def touch(self, image: np.ndarray, label: np.ndarray) -> None:
        self.checksum += int(image.reshape(-1)[::PAGE].sum(dtype=np.uint64)) + int(label.sum())

    def done(self, rows: int) -> None:
        self.rows += rows
        self.batches += 1
        self.t_last = time.perf_counter()
        if self.t_first is None:
            self.t_first = self.t_last


# ------------------------------------------------------------------ through mbdata serve

def serve_infer(args, tally: Tally, model: Precomputed | None) -> dict:
    from mbdata_client import Client

    with Client(args.url, submit_window=args.submit_window) as client:
        stream = client.infer(args.dataset, output=args.output, batch_size=args.batch_size, lease_ahead=args.lease_ahead)
        for batch in stream:
            image, ids = batch["image"], batch["_id"]
            tally.touch(image, batch["label"])
            if model is None:  # serve-read: nothing submitted; stop once the plan is leased
                tally.done(int((ids >= 0).sum()))
                if tally.batches == args.batches:
                    break
                continue
            answer = batch.submit(model.outputs(batch.index, len(ids)))
            rows = answer.get("rows") if isinstance(answer, dict) else None
            tally.done(int((ids >= 0).sum()) if rows is None else int(rows))
        return {"reconnects": client.reconnects}


def share_read(args, tally: Tally) -> dict:
    from mbdata_client import Client

    with Client(args.url) as client:
        for batch in client.share(args.dataset, args.batch_size, seed=args.seed, group=args.group,
                                  shuffle=args.shuffle == 1, tail=args.tail):
            ids = batch["_id"]
            tally.touch(batch["image"], batch["label"])
            batch.ack(wait=False)
            tally.done(int((ids >= 0).sum()))
        return {"reconnects": client.reconnects}


# ------------------------------------------------------------------ the Python peers

def sqlite_batches(con: sqlite3.Connection, batch_size: int):
    """(batch number, ids, images, labels) in _id order, one SELECT per batch."""
    last, number = -1, 0
    while True:
        rows = con.execute("SELECT _id, image, label FROM samples WHERE _id > ? ORDER BY _id LIMIT ?",
                           (last, batch_size)).fetchall()
        if not rows:
            return
        n = len(rows)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
        images = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(n, 3, 32, 32)
        labels = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
        yield number, ids, images, labels
        last, number = int(ids[-1]), number + 1


def sqlite_rows(ids: np.ndarray, outputs: dict[str, np.ndarray]):
    """executemany's parameters: (_id, field, …) a row; arrays as their row's bytes."""
    columns = [ids.tolist()]
    for a in outputs.values():
        columns.append(a.tolist() if a.ndim == 1 else [row.tobytes() for row in a])
    return zip(*columns)


def peers(args, tally: Tally, model: Precomputed | None) -> dict:
    con = sqlite3.connect(args.db, isolation_level=None)  # transactions are explicit
    mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    con.execute(f"PRAGMA synchronous={args.synchronous}")
    insert = None
    if args.mode == "peer":
        names = list(model.arrays)
        insert = (f"INSERT INTO {args.table} (_id, {', '.join(names)}) "
                  f"VALUES ({', '.join('?' * (len(names) + 1))})")
    out_dir = Path(args.out_dir) if args.mode == "npsave" else None
    for number, ids, images, labels in sqlite_batches(con, args.batch_size):
        tally.touch(images, labels)
        if model is not None:
            outputs = model.outputs(number, len(ids))
            if insert is not None:
                con.execute("BEGIN")
                con.executemany(insert, sqlite_rows(ids, outputs))
                con.execute("COMMIT")
            else:
                for name, a in {"_id": ids, **outputs}.items():
                    np.save(out_dir / f"{number:06d}.{name}.npy", a)
        tally.done(len(ids))
    t0 = time.perf_counter()
    con.close()
    if insert is None:
        return {}
    return {"journal_mode": mode, "synchronous": args.synchronous, "close_s": time.perf_counter() - t0}


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", required=True, choices=["serve", "serve-read", "share-read", "peer", "npsave", "sqlite-read"])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--schema", help="output schema JSON (write-back modes)")
    ap.add_argument("--url")
    ap.add_argument("--dataset", default="cifar")
    ap.add_argument("--output")
    ap.add_argument("--lease-ahead", type=int, default=0, help="serve: client.infer(lease_ahead=…)")
    ap.add_argument("--submit-window", type=int, default=0, help="serve: Client(submit_window=…); 0 submits synchronously")
    ap.add_argument("--batches", type=int, default=0, help="serve-read: batches to take")
    ap.add_argument("--group", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffle", type=int, default=1)
    ap.add_argument("--tail", default="drop")
    ap.add_argument("--db")
    ap.add_argument("--table")
    ap.add_argument("--out-dir")
    ap.add_argument("--synchronous", default="NORMAL")
    args = ap.parse_args()

    model = None
    if args.mode in ("serve", "peer", "npsave"):
        model = Precomputed(json.loads(Path(args.schema).read_text()), args.batch_size)
    if args.mode in ("serve", "serve-read", "share-read"):
        import mbdata_client  # noqa: F401  (imported in set-up, not in the measured part)
    print("READY " + json.dumps({"pid": os.getpid()}), flush=True)
    if sys.stdin.readline().strip() != "go":
        log("no go; exiting")
        return 1
    t_go_unix = time.time()
    t_go = time.perf_counter()
    tally = Tally()
    if args.mode in ("serve", "serve-read"):
        extra = serve_infer(args, tally, model)
    elif args.mode == "share-read":
        extra = share_read(args, tally)
    else:
        extra = peers(args, tally, model)
    end = tally.t_last or time.perf_counter()
    result = {
        "mode": args.mode, "rows": tally.rows, "batches": tally.batches, "seconds": end - t_go,
        "t_go_unix": t_go_unix, "t_last_unix": t_go_unix + (end - t_go),
        "t_first_unix": None if tally.t_first is None else t_go_unix + (tally.t_first - t_go),
        "checksum": tally.checksum, **extra,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
