#!/usr/bin/env python3
"""One measured consumer of the cluster benchmark (Benchmarks/cluster/bench.py).

Modes:
  stream  partition mode, one epoch, `batch.ack()` after every batch (synchronous: each ack
          is answered only after the daemon's state store committed it)
  first   time to first batch of FRESH consumer groups, one after the other: each group is
          new, so the daemon creates its cursor and pin before it sends the first batch
  share   share mode over one or several daemons (`--urls a,b`): lease, ack, record which
          batches this process acked

Prints one line `RESULT {json}` on stdout; logs go to stderr. Times are measured here,
from the first request to the last ack.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from mbdata_client import Client


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stream(args: argparse.Namespace) -> dict:
    client = Client(args.urls)
    t0 = time.perf_counter()
    t_first = None
    batches = samples = 0
    for batch in client.batches(args.dataset, batch_size=args.batch_size, seed=args.seed, group=args.group):
        if t_first is None:
            t_first = time.perf_counter() - t0
        samples += batch.samples
        batches += 1
        batch.ack()
    wall = time.perf_counter() - t0
    return {"batches": batches, "samples": samples, "wall_s": wall, "first_s": t_first}


def first(args: argparse.Namespace) -> dict:
    client = Client(args.urls)
    times = []
    for k in range(args.groups):
        t0 = time.perf_counter()
        for batch in client.batches(args.dataset, batch_size=args.batch_size, seed=args.seed, group=f"{args.group}-{k}"):
            times.append(time.perf_counter() - t0)
            break
    return {"first_s": times}


def share(args: argparse.Namespace) -> dict:
    client = Client(args.urls)
    acked: list[int] = []
    t0 = time.perf_counter()
    for batch in client.share(args.dataset, batch_size=args.batch_size, seed=args.seed, group=args.group,
                              lease_seconds=args.lease_seconds):
        batch.ack()
        acked.append(int(batch.index))
    return {"acked": acked, "wall_s": time.perf_counter() - t0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["stream", "first", "share"])
    p.add_argument("--urls", required=True, help="daemon URLs, comma-separated; the first is preferred")
    p.add_argument("--dataset", default="cifar")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--group", default="bench")
    p.add_argument("--groups", type=int, default=5)
    p.add_argument("--lease-seconds", type=int, default=30)
    args = p.parse_args()
    c0 = cpu_s()
    result = {"stream": stream, "first": first, "share": share}[args.mode](args)
    result["cpu_s"] = cpu_s() - c0
    result["pid"] = os.getpid()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
