#!/usr/bin/env python3
"""First-batch latency of `mbdata serve` through the Python client, and an epoch's acks
for the daemon's memory: one process, one daemon, one new consumer group.

    first_batch.py --url URL --dataset cifar --batch-size 256 --seed 7 --group G [--ack default|sync]

1. new group: a new Client asks for the group's stream; the clock runs from the request
   to the first batch in hand (the daemon creates the cursor and plans the epoch);
2. reads the first half of the epoch, acking every batch (`--ack`), closes the stream
   and the Client (queued acks flushed), as a trainer that stops;
3. resume: a new Client asks for the same group's stream again; the clock runs from the
   request to the first batch in hand (the daemon resumes from the cursor); reads the
   rest, acking.

Prints one line `RESULT {json}`: new_ms, resume_ms, batches, samples, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mbdata_client import Client


def open_and_take_first(args):
    client = Client(args.url)
    t0 = time.perf_counter()
    stream = client.batches(args.dataset, batch_size=args.batch_size, epoch=0, seed=args.seed, rank=0, world=1,
                            group=args.group)
    first = next(stream)
    return client, stream, first, (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--dataset", default="cifar")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--group", required=True)
    ap.add_argument("--ack", choices=["default", "sync"], default="default")
    args = ap.parse_args()
    wait = True if args.ack == "sync" else None
    started = time.perf_counter()

    client, stream, batch, new_ms = open_and_take_first(args)
    half = int(client.stream_headers.get("mbdata-batches-per-epoch", "2")) // 2
    batches, samples = 0, 0
    while True:
        batch.ack(wait=wait)
        batches, samples = batches + 1, samples + batch.samples
        if batches == half:
            break
        batch = next(stream)
    stream.close()
    client.close()

    client, stream, batch, resume_ms = open_and_take_first(args)
    resumed_at = batch.index
    batch.ack(wait=wait)
    batches, samples = batches + 1, samples + batch.samples
    for batch in stream:
        batch.ack(wait=wait)
        batches, samples = batches + 1, samples + batch.samples
    client.close()
    print("RESULT " + json.dumps({"new_ms": new_ms, "resume_ms": resume_ms, "resumed_at": resumed_at, "half": half,
                                  "batches": batches, "samples": samples,
                                  "seconds": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
