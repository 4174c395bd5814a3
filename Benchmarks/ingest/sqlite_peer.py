#!/usr/bin/env python3
"""Peer for the mbdata ingest benchmark: plain Python sqlite3.

Reads images.npy / labels.npy through mmap and inserts every sample as
(image BLOB of 3072 bytes, label INTEGER) into

    CREATE TABLE samples(image BLOB, label INTEGER)

in WAL mode, in ONE transaction, with ONE executemany over a generator.
Everything else is SQLite's default (page_size 4096, cache_size -2000,
synchronous FULL), unless overridden with the options below. The timed
section covers open/create, the inserts, COMMIT and close (close runs the
final WAL checkpoint, which copies the data into the main DB file).

By default the generator releases already-inserted pages of the input mmap
with madvise(MADV_DONTNEED) every chunk, so the peer's peak RSS reflects
SQLite, not the 3 GB input file (file-backed mmap pages count toward RSS).
Use --keep-mapped to disable that.

Prints a one-line JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np


def open_npy(path: Path) -> tuple[mmap.mmap, int, tuple[int, ...], np.dtype]:
    """mmap an NPY file; return (map, data offset, shape, dtype)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran:
            raise SystemExit(f"{path}: Fortran-ordered arrays are not supported")
        offset = f.tell()
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return mm, offset, shape, dtype


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True, help="output database (must not exist)")
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--chunk-rows", type=int, default=8192, help="rows between madvise calls")
    ap.add_argument("--synchronous", choices=["OFF", "NORMAL", "FULL", "EXTRA"], default=None,
                    help="PRAGMA synchronous (default: SQLite's default, FULL)")
    ap.add_argument("--keep-mapped", action="store_true", help="do not madvise(DONTNEED) consumed input")
    args = ap.parse_args()

    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(args.db) + suffix)
        if p.exists():
            raise SystemExit(f"{p} exists; remove it first")

    img_map, img_off, img_shape, img_dtype = open_npy(args.images)
    lab_map, lab_off, lab_shape, lab_dtype = open_npy(args.labels)
    if img_dtype != np.uint8 or len(img_shape) < 1:
        raise SystemExit(f"images: expected uint8, got {img_dtype} {img_shape}")
    n = img_shape[0]
    if lab_shape != (n,):
        raise SystemExit(f"labels: expected shape ({n},), got {lab_shape}")
    row_bytes = int(np.prod(img_shape[1:], dtype=np.int64))
    images = np.frombuffer(img_map, dtype=np.uint8, count=n * row_bytes, offset=img_off).reshape(n, row_bytes)
    labels = np.frombuffer(lab_map, dtype=lab_dtype, count=n, offset=lab_off)
    page = mmap.PAGESIZE
    release = not args.keep_mapped and hasattr(mmap, "MADV_DONTNEED")

    def rows():
        released = 0  # bytes of the image map already released
        for start in range(0, n, args.chunk_rows):
            stop = min(n, start + args.chunk_rows)
            chunk = images[start:stop]
            labs = labels[start:stop].tolist()
            for i in range(stop - start):
                yield chunk[i].data, labs[i]
            if release:
                end = ((img_off + stop * row_bytes) // page) * page
                if end > released:
                    img_map.madvise(mmap.MADV_DONTNEED, released, end - released)
                    released = end

    t0 = time.perf_counter()
    con = sqlite3.connect(args.db, isolation_level=None)
    journal = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if args.synchronous:
        con.execute(f"PRAGMA synchronous={args.synchronous}")
    sync = con.execute("PRAGMA synchronous").fetchone()[0]
    con.execute("CREATE TABLE samples(image BLOB, label INTEGER)")
    con.execute("BEGIN")
    con.executemany("INSERT INTO samples(image, label) VALUES (?, ?)", rows())
    t_insert = time.perf_counter()
    con.execute("COMMIT")
    t_commit = time.perf_counter()
    con.close()
    t1 = time.perf_counter()

    # Cheap sanity check on a fresh read-only connection.
    ro = sqlite3.connect(f"file:{args.db}?mode=ro&immutable=1", uri=True)  # no -shm/-wal created
    count = ro.execute("SELECT count(*) FROM samples").fetchone()[0]
    ro.close()
    if count != n:
        print(f"row count {count} != {n}", file=sys.stderr)
        return 1

    db_bytes = sum(os.path.getsize(str(args.db) + s) for s in ("", "-wal", "-shm") if os.path.exists(str(args.db) + s))
    wall = t1 - t0
    print(json.dumps({
        "rows": n,
        "seconds": round(wall, 3),
        "insert_s": round(t_insert - t0, 3),
        "commit_s": round(t_commit - t_insert, 3),
        "close_checkpoint_s": round(t1 - t_commit, 3),
        "samples_per_s": round(n / wall, 1),
        "journal_mode": journal,
        "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, sync),
        "sqlite_version": sqlite3.sqlite_version,
        "db_bytes": db_bytes,
        "madvise": release,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
