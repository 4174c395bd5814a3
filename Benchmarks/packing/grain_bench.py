#!/usr/bin/env python3
"""Grain's first-fit packing on the packing benchmark's sequences (run in the Grain virtualenv).

Reads lengths.npy and tokens.int32 from the data folder into memory, cuts samples longer than L
into L-token pieces as mbdata's `--overlong split` does (or drops them: `drop`; Grain itself
refuses elements longer than L), and for each NUM_PACKING_BINS value iterates

    grain.MapDataset.source(pieces).to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
      -> grain.experimental.FirstFitPackIterDataset(length_struct={"tokens": L},
                                                   num_packing_bins=B, shuffle_bins=False)
      -> .batch(BATCH)

to the end, ROUNDS times for each B (by default without prefetch threads, --threads/--prefetch set them: the
source is already in memory, and Grain's default ReadOptions, 16 threads and a 500-element buffer,
polled that buffer for most of the time on the two shared cores: 9.1 s against 1.7-3.3 s for
2,000 elements), counting rows and non-padding tokens (tokens_segment_ids != 0).
Prints one JSON object: per bins value, the efficiency and each round's seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

import grain
import packers


def elements(data: Path, row_length: int, overlong: str) -> tuple[list[dict], dict]:
    lengths = np.load(data / "lengths.npy")
    tokens = np.fromfile(data / "tokens.int32", dtype="<i4")
    assert len(tokens) == int(lengths.sum()), "tokens.int32 does not match lengths.npy"
    sizes, counts = packers.pieces(lengths, row_length, overlong)
    starts = np.cumsum(lengths) - lengths
    out: list[dict] = []
    for start, length in zip(starts.tolist(), lengths.tolist()):
        if length > row_length and overlong == "drop":
            continue
        for offset in range(0, length, row_length):
            out.append({"tokens": tokens[start + offset:start + min(length, offset + row_length)]})
    assert len(out) == len(sizes)
    return out, counts.as_dict()


def one_pass(source: list[dict], row_length: int, bins: int, batch: int, read: "grain.ReadOptions") -> tuple[float, float, int, int]:
    """Seconds, CPU seconds, rows and non-padding tokens of one pass over the packed dataset."""
    started, cpu = time.perf_counter(), time.process_time()
    dataset = grain.experimental.FirstFitPackIterDataset(
        grain.MapDataset.source(source).to_iter_dataset(read),
        length_struct={"tokens": row_length}, num_packing_bins=bins, shuffle_bins=False,
    ).batch(batch)
    rows = tokens = 0
    for packed in dataset:
        segment_ids = packed["tokens_segment_ids"]
        rows += segment_ids.shape[0]
        tokens += int(np.count_nonzero(segment_ids))
    return time.perf_counter() - started, time.process_time() - cpu, rows, tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--row-length", type=int, default=2048)
    ap.add_argument("--bins", default="21,84,335", help="num_packing_bins values, comma-separated")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", default="3", help="rounds for each bins value, comma-separated (one value: for all)")
    ap.add_argument("--overlong", choices=["split", "drop"], default="split")
    ap.add_argument("--threads", type=int, default=0, help="ReadOptions.num_threads (default 0: no prefetch threads)")
    ap.add_argument("--prefetch", type=int, default=0, help="ReadOptions.prefetch_buffer_size (default 0)")
    args = ap.parse_args()

    source, counts = elements(args.data, args.row_length, args.overlong)
    read = grain.ReadOptions(num_threads=args.threads, prefetch_buffer_size=args.prefetch)
    results = []
    all_bins = [int(b) for b in args.bins.split(",") if b]
    all_rounds = [int(r) for r in args.rounds.split(",") if r]
    if len(all_rounds) == 1:
        all_rounds *= len(all_bins)
    if len(all_rounds) != len(all_bins) or min(all_rounds) < 1:
        ap.error("--rounds needs one positive count, or one for each --bins value")
    for bins, count in zip(all_bins, all_rounds):
        rounds = [one_pass(source, args.row_length, bins, args.batch, read) for _ in range(count)]
        _, _, rows, tokens = rounds[0]
        assert all(r[2:] == (rows, tokens) for r in rounds), "Grain packed differently in two rounds"
        assert tokens == sum(len(e["tokens"]) for e in source), "Grain lost or repeated tokens"
        results.append({"num_packing_bins": bins, "rows": rows, "tokens": tokens,
                        "efficiency": tokens / (rows * args.row_length), "seconds": [r[0] for r in rounds],
                        "cpu_seconds": [r[1] for r in rounds]})
        print(f"[grain] bins {bins}: efficiency {results[-1]['efficiency']:.4%}, "
              f"rounds {', '.join(f'{r[0]:.2f}' for r in rounds)} s", file=sys.stderr, flush=True)
    print(json.dumps({"grain_version": metadata.version("grain"), "numpy_version": np.__version__,
                      "python": sys.version.split()[0], "elements": len(source), "overlong": args.overlong,
                      "counts": counts, "batch": args.batch,
                      "read_options": {"num_threads": args.threads, "prefetch_buffer_size": args.prefetch}, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
