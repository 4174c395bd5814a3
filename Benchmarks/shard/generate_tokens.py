#!/usr/bin/env python3
"""Generate deterministic variable-length token sequences for the shard benchmark.

Writes into the work folder (default Benchmarks/work/shard/tokens):

  tokens.jsonl         one object per line: {"tokens":[t0,t1,...]}
  tokens.schema.json   {"name":"tokens","fields":[{"name":"tokens","dtype":"int32","shape":[null]}]}
  manifest.json        what was written (n, seed, lengths, vocab, sizes, token count),
                       used to skip regeneration

Lengths are uniform in [--min-len, --max-len] (default 64..1024, mean 544). Token ids
follow a Zipf-Mandelbrot law over a --vocab (default 32,000) vocabulary, frequency
∝ 1 / (rank + 2.7)^1.1, with ranks shuffled over the ids, so the bytes look roughly
like a tokenised text corpus stored as int32 (two high bytes always zero, skewed
low bytes) rather than either incompressible noise or runs of zeros. numpy PCG64,
fixed seed, drawn in fixed chunks of rows, so the first K rows are the same for any N.

JSONL rendering is vectorised like ingest/generate.py: every token becomes one
zero-padded 8-byte word (`digits,` or, for the last token of a line, `digits]}\\n`),
rows get a 2-word prefix `{"tokens":[`, and one bytes.translate per chunk deletes
the padding. 200,000 rows (~109 M tokens, ~0.65 GB) take well under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
CHUNK_ROWS = 10_000  # rows per RNG draw; part of the data definition, do not change
ZIPF_S = 1.1
ZIPF_Q = 2.7

SCHEMA = {
    "name": "tokens",
    "fields": [{"name": "tokens", "dtype": "int32", "shape": [None]}],
}
LINE_PREFIX = b'{"tokens":['  # 11 bytes -> two 8-byte words


def log(msg: str) -> None:
    print(f"[generate_tokens] {msg}", file=sys.stderr, flush=True)


def _word8(s: bytes) -> int:
    assert len(s) <= 8, s
    return int(np.frombuffer(s.ljust(8, b"\0"), dtype=np.uint64)[0])


class Generator:
    def __init__(self, seed: int, vocab: int, min_len: int, max_len: int) -> None:
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.min_len, self.max_len = min_len, max_len
        ranks = np.arange(vocab, dtype=np.float64)
        weights = 1.0 / (ranks + ZIPF_Q) ** ZIPF_S
        self.cdf = np.cumsum(weights / weights.sum())
        self.cdf[-1] = 1.0
        # rank -> token id; drawn from the same RNG before any row
        self.ids = self.rng.permutation(vocab).astype(np.int32)
        self.comma = np.array([_word8(str(v).encode() + b",") for v in range(vocab)], dtype=np.uint64)
        self.close = np.array([_word8(str(v).encode() + b"]}\n") for v in range(vocab)], dtype=np.uint64)
        pre = LINE_PREFIX.ljust(16, b"\0")
        self.prefix = np.frombuffer(pre, dtype=np.uint64)

    def chunk(self) -> tuple[np.ndarray, np.ndarray]:
        """One chunk of CHUNK_ROWS rows: (lengths int64 (k,), tokens int32 (sum lengths,))."""
        lengths = self.rng.integers(self.min_len, self.max_len + 1, size=CHUNK_ROWS, dtype=np.int64)
        u = self.rng.random(int(lengths.sum()))
        tokens = self.ids[np.searchsorted(self.cdf, u, side="right").clip(0, len(self.ids) - 1)]
        return lengths, tokens

    def render(self, lengths: np.ndarray, tokens: np.ndarray) -> bytes:
        k = len(lengths)
        ends = np.cumsum(lengths + 2)  # word index one past each row
        starts = ends - lengths - 2
        words = np.empty(int(ends[-1]), dtype=np.uint64)
        row_of_token = np.repeat(np.arange(k), lengths)
        tok_start = np.cumsum(lengths) - lengths
        pos = np.arange(len(tokens)) - tok_start[row_of_token] + starts[row_of_token] + 2
        words[pos] = self.comma[tokens]
        last = ends - 1
        words[last] = self.close[tokens[np.cumsum(lengths) - 1]]
        words[starts] = self.prefix[0]
        words[starts + 1] = self.prefix[1]
        return words.tobytes().translate(None, b"\0")


def check_sample(path: Path, first: list[np.ndarray]) -> None:
    with open(path, "rb") as f:
        for want in first:
            obj = json.loads(f.readline())
            assert set(obj) == {"tokens"}, obj.keys()
            assert np.array_equal(np.asarray(obj["tokens"], dtype=np.int32), want), "token row mismatch"
        size = path.stat().st_size
        f.seek(max(0, size - 64 * 1024))
        tail = f.read().splitlines()
        json.loads(tail[-1])


def main() -> int:
    repo_root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="number of sequences (default 200,000)")
    ap.add_argument("--work", type=Path, default=repo_root / "Benchmarks" / "work" / "shard" / "tokens")
    ap.add_argument("--seed", type=int, default=20240602)
    ap.add_argument("--vocab", type=int, default=32_000)
    ap.add_argument("--min-len", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--force", action="store_true", help="regenerate even if files look complete")
    args = ap.parse_args()
    if args.n <= 0 or not (0 < args.min_len <= args.max_len) or not (0 < args.vocab <= 99_999):
        ap.error("need n > 0, 0 < min-len <= max-len, 0 < vocab <= 99999 (5 digits fit one word)")

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    (work / "tokens.schema.json").write_text(json.dumps(SCHEMA) + "\n")
    params = {"format_version": FORMAT_VERSION, "n": args.n, "seed": args.seed, "vocab": args.vocab,
              "min_len": args.min_len, "max_len": args.max_len}
    manifest_path = work / "manifest.json"
    jsonl = work / "tokens.jsonl"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except json.JSONDecodeError:
        manifest = {}
    if (not args.force and all(manifest.get(k) == v for k, v in params.items())
            and jsonl.exists() and jsonl.stat().st_size == manifest.get("jsonl_bytes")):
        log(f"tokens.jsonl up to date (n={args.n:,}, {manifest['tokens']:,} tokens, "
            f"{manifest['jsonl_bytes'] / 1e9:.2f} GB); skipping")
        return 0

    manifest_path.unlink(missing_ok=True)
    gen = Generator(args.seed, args.vocab, args.min_len, args.max_len)
    tmp = work / "tokens.jsonl.tmp"
    t0 = time.perf_counter()
    total_tokens = 0
    first_rows: list[np.ndarray] = []
    with open(tmp, "wb", buffering=0) as f:
        for start in range(0, args.n, CHUNK_ROWS):
            lengths, tokens = gen.chunk()  # always a full chunk, so rows do not depend on N
            k = min(CHUNK_ROWS, args.n - start)
            if k < CHUNK_ROWS:
                tokens = tokens[: int(lengths[:k].sum())]
                lengths = lengths[:k]
            if start == 0:
                offs = np.concatenate([[0], np.cumsum(lengths[:3])])
                first_rows = [tokens[offs[i]:offs[i + 1]].copy() for i in range(min(3, k))]
            total_tokens += len(tokens)
            f.write(gen.render(lengths, tokens))
    os.replace(tmp, jsonl)
    secs = time.perf_counter() - t0
    size = jsonl.stat().st_size
    check_sample(jsonl, first_rows)
    manifest = {**params, "tokens": total_tokens, "payload_bytes": 4 * total_tokens,
                "jsonl_bytes": size, "seconds": round(secs, 2)}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"tokens.jsonl: {args.n:,} rows, {total_tokens:,} tokens (mean {total_tokens / args.n:.1f}), "
        f"{size / 1e9:.3f} GB in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
