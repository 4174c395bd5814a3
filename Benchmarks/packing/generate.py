#!/usr/bin/env python3
"""Generate the packing benchmark's token sequences: log-normal lengths, Zipf token ids.

Writes into the work folder (default Benchmarks/work/packing/data):

  tokens.jsonl         one object per line: {"tokens":[t0,t1,...]}, ingest order
  tokens.schema.json   {"name":"tokens","fields":[{"name":"tokens","dtype":"int32","shape":[null]}]}
  lengths.npy          int64 (N,): every sequence's length, ingest order (what the packers read)
  tokens.int32         every sequence's tokens, concatenated in ingest order, raw little-endian
                       int32 (what the in-memory packers, Grain's among them, slice)
  manifest.json        parameters, token count and sizes, used to skip regeneration

Lengths: round(exp(N(ln MEDIAN, SIGMA²))) clipped to >= 1 (default median 400, sigma 1.0:
mean ~660, ~5% longer than 2,048). Token ids come from the shard benchmark's Zipf-Mandelbrot
generator (Benchmarks/shard/generate_tokens.py) and its vectorised JSONL rendering; numpy
PCG64, fixed seed, drawn in fixed chunks of rows so the first K rows are the same for any N.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
_spec = importlib.util.spec_from_file_location("generate_tokens", ROOT / "Benchmarks" / "shard" / "generate_tokens.py")
tokens_gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tokens_gen)  # type: ignore[union-attr]

FORMAT_VERSION = 1
CHUNK_ROWS = 10_000  # rows per RNG draw; part of the data definition, do not change


def log(msg: str) -> None:
    print(f"[packing/generate] {msg}", file=sys.stderr, flush=True)


def draw_lengths(rng: np.random.Generator, k: int, median: float, sigma: float) -> np.ndarray:
    """k log-normal lengths with the given median and sigma, rounded, at least 1."""
    return np.maximum(1, np.rint(rng.lognormal(np.log(median), sigma, size=k))).astype(np.int64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="number of sequences (default 200,000)")
    ap.add_argument("--work", type=Path, default=ROOT / "Benchmarks" / "work" / "packing" / "data")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--median", type=float, default=400.0, help="median length in tokens (default 400)")
    ap.add_argument("--sigma", type=float, default=1.0, help="sigma of ln(length) (default 1.0)")
    ap.add_argument("--vocab", type=int, default=32_000)
    ap.add_argument("--force", action="store_true", help="regenerate even if the files look complete")
    args = ap.parse_args()
    if args.n <= 0 or args.median < 1 or args.sigma < 0 or not (0 < args.vocab <= 99_999):
        ap.error("need n > 0, median >= 1, sigma >= 0, 0 < vocab <= 99999")

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    (work / "tokens.schema.json").write_text(json.dumps(tokens_gen.SCHEMA) + "\n")
    params = {"format_version": FORMAT_VERSION, "n": args.n, "seed": args.seed, "median": args.median,
              "sigma": args.sigma, "vocab": args.vocab}
    manifest_path, jsonl, lengths_path = work / "manifest.json", work / "tokens.jsonl", work / "lengths.npy"
    raw = work / "tokens.int32"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except json.JSONDecodeError:
        manifest = {}
    if (not args.force and all(manifest.get(k) == v for k, v in params.items()) and lengths_path.exists()
            and jsonl.exists() and jsonl.stat().st_size == manifest.get("jsonl_bytes")
            and raw.exists() and raw.stat().st_size == 4 * manifest.get("tokens", -1)):
        log(f"up to date (n={args.n:,}, {manifest['tokens']:,} tokens); skipping")
        return 0

    manifest_path.unlink(missing_ok=True)
    # The shard benchmark's generator supplies the Zipf ids and the rendering; its uniform
    # length draw is not used, our own RNG draws lengths and ids.
    gen = tokens_gen.Generator(args.seed, args.vocab, 1, 1)
    rng = np.random.Generator(np.random.PCG64(args.seed + 1))
    all_lengths: list[np.ndarray] = []
    tmp = work / "tokens.jsonl.tmp"
    started = time.perf_counter()
    with open(tmp, "wb", buffering=0) as f, open(raw, "wb") as raw_file:
        for start in range(0, args.n, CHUNK_ROWS):
            lengths = draw_lengths(rng, CHUNK_ROWS, args.median, args.sigma)
            u = rng.random(int(lengths.sum()))
            tokens = gen.ids[np.searchsorted(gen.cdf, u, side="right").clip(0, len(gen.ids) - 1)]
            k = min(CHUNK_ROWS, args.n - start)
            if k < CHUNK_ROWS:
                tokens, lengths = tokens[: int(lengths[:k].sum())], lengths[:k]
            all_lengths.append(lengths)
            raw_file.write(tokens.astype("<i4").tobytes())
            f.write(gen.render(lengths, tokens))
    os.replace(tmp, jsonl)
    lengths = np.concatenate(all_lengths)
    np.save(lengths_path, lengths)
    seconds = time.perf_counter() - started
    manifest = {**params, "tokens": int(lengths.sum()), "mean_length": float(lengths.mean()),
                "median_length": float(np.median(lengths)), "max_length": int(lengths.max()),
                "jsonl_bytes": jsonl.stat().st_size, "seconds": round(seconds, 2)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"tokens.jsonl: {args.n:,} rows, {manifest['tokens']:,} tokens (median {manifest['median_length']:.0f}, "
        f"mean {manifest['mean_length']:.1f}, max {manifest['max_length']:,}), {manifest['jsonl_bytes'] / 1e9:.3f} GB "
        f"in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
