#!/usr/bin/env python3
"""Build the plain SQLite rows database the DataLoader peer of the serve benchmark reads.

    CREATE TABLE samples(id INTEGER PRIMARY KEY, image BLOB, label INTEGER)

one row per sample of images.npy / labels.npy, id = row index + 1, with SQLite's
defaults for everything a reader sees (4 KiB pages, rollback journal). The build itself
uses synchronous=OFF and one transaction (not part of the benchmark). Writes to DB.tmp,
then renames. Prints a one-line JSON summary on stdout.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--chunk-rows", type=int, default=10_000)
    args = ap.parse_args()

    images = np.load(args.images, mmap_mode="r")
    labels = np.load(args.labels, mmap_mode="r")
    n = images.shape[0]
    flat = images.reshape(n, -1)
    tmp = args.db.with_name(args.db.name + ".tmp")
    for p in (tmp, Path(str(tmp) + "-journal")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE samples(id INTEGER PRIMARY KEY, image BLOB, label INTEGER)")
    con.execute("BEGIN")
    for start in range(0, n, args.chunk_rows):
        stop = min(n, start + args.chunk_rows)
        chunk = np.ascontiguousarray(flat[start:stop])
        labs = labels[start:stop].tolist()
        con.executemany("INSERT INTO samples(id, image, label) VALUES (?, ?, ?)",
                        ((start + i + 1, chunk[i].tobytes(), labs[i]) for i in range(stop - start)))
    con.execute("COMMIT")
    count = con.execute("SELECT count(*), min(id), max(id) FROM samples").fetchone()
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    os.replace(tmp, args.db)
    wall = time.perf_counter() - t0
    if count != (n, 1, n):
        print(f"unexpected rows: count/min/max {count}, expected ({n}, 1, {n})", file=sys.stderr)
        return 1
    print(json.dumps({"rows": n, "seconds": round(wall, 2), "db_bytes": args.db.stat().st_size,
                      "page_size": page_size, "sqlite_version": sqlite3.sqlite_version}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
